"""`edgetrack convert --framework mindspore`: the MindSpore twin exports the graphs (mindspore.onnx.export), each is
checked against MindSpore, and the bundle tracks as the PyTorch-exported one does (the checkpoint file is shared);
with --deblur the MindSpore DeblurGAN-v2 generator is exported too."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mindspore")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgetrack import Tracker  # noqa: E402
from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.cli import main  # noqa: E402
from edgetrack.converters.torch2onnx import tracker_bundle  # noqa: E402
from edgetrack.errors import InvalidArgumentError  # noqa: E402
from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc  # noqa: E402
from edgetrack.models.torch.siamrpn import save_siamrpn  # noqa: E402

from bundle_helpers import assert_track_alike, moving_texture_frames, runtime_weight_convs  # noqa: E402
from torch_helpers import randomise_bn, tiny_siamrpn  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms-convert")
    rpn = save_siamrpn(tiny_siamrpn(), root / "rpn.safetensors")
    fc = save_siamfc(randomise_bn(build_siamfc("siamfc-tiny")), root / "fc.safetensors")  # seeded by tiny_siamrpn
    return {"siamrpn": rpn, "siamfc": fc}


@pytest.mark.parametrize("family", ["siamrpn", "siamfc"])
def test_mindspore_export_tracks_as_the_pytorch_export(checkpoints, tmp_path, family):
    ms_bundle = tracker_bundle(checkpoints[family], tmp_path / "ms", family=family, framework="mindspore")
    torch_bundle = tracker_bundle(checkpoints[family], tmp_path / "torch", family=family)
    m = load_bundle(ms_bundle).manifest
    assert m.source["framework"] == "mindspore" and m.tools["exporter"] == "mindspore.export"
    assert "mindspore" in m.tools and "torch" not in m.tools
    assert set(m.parity["mindspore->onnx"]) == {"template", "search", "head"}
    assert all(r["passed"] and r["reference"] == "mindspore" for r in m.parity["mindspore->onnx"].values())

    def io(manifest):  # tensor names, shapes and files (the hashes differ: other exporters)
        return {n: (g.file, g.inputs, g.outputs) for n, g in manifest.graphs.items()}

    assert io(m) == io(load_bundle(torch_bundle).manifest)

    # MindSpore writes every BatchNorm and Pad; the simplifier folds them into the convolutions, as PyTorch's
    # exporter does (the rest differs in form only: ReduceMean for GlobalAveragePool, one Slice for two).
    import collections

    import onnx

    def ops(bundle):
        return {g: collections.Counter(n.op_type for n in onnx.load(str(load_bundle(bundle).graph_path(g))).graph.node)
                for g in ("template", "search", "head")}

    assert m.tools["simplifier"].startswith("onnxscript")
    assert sum(r["removed"].get("BatchNormalization", 0) for r in m.tools["simplified"].values()) > 0
    ms_ops, torch_ops = ops(ms_bundle), ops(torch_bundle)
    for graph, counts in ms_ops.items():
        assert counts["BatchNormalization"] == counts["Pad"] == 0
        assert counts["Conv"] == torch_ops[graph]["Conv"]

    if family == "siamrpn":  # the head in the ONNX Runtime form, as the PyTorch export's
        assert len(runtime_weight_convs(load_bundle(ms_bundle).path / "head.onnx")[0]) == 1
        assert "grouped Conv" in m.notes

    assert_track_alike(Tracker(ms_bundle), Tracker(torch_bundle), *moving_texture_frames(5), box_atol=1e-2,
                       score_tol=1e-3)


def test_cli_mindspore_fp16_and_bad_framework(checkpoints, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "mindspore",
                 "--target", "cpu", "--precision", "fp16", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mindspore->onnx" in printed and "mindspore->fp16" in printed
    assert load_bundle(out).manifest.precision == "fp16"
    raw = tmp_path / "raw"
    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "mindspore",
                 "--target", "cpu", "--no-simplify", "-o", str(raw)]) == 0
    m = load_bundle(raw).manifest
    assert m.tools["simplifier"] == "off (--no-simplify)" and "simplified" not in m.tools
    assert all(r["passed"] for r in m.parity["mindspore->onnx"].values())

    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "jax",
                 "--target", "cpu", "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "jax" in err and "mindspore" in err and not (tmp_path / "c").exists()

    # A tracker checkpoint given as the deblurrer: the typed error, before any export, whatever the framework.
    for framework in ("mindspore", "torch"):
        assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", framework,
                     "--deblur", str(checkpoints["siamrpn"]), "--target", "cpu", "-o", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert "'siamrpn' model (siamrpn-tiny), not a DeblurGAN-v2" in err and not (tmp_path / "d").exists()

    with pytest.raises(InvalidArgumentError, match="frameworks: torch, mindspore"):
        tracker_bundle(checkpoints["siamrpn"], tmp_path / "e", family="siamrpn", framework="jax")

    from edgetrack.errors import UnknownChoiceError
    from edgetrack.models.mindspore.siamrpn import graph_modules, load_siamrpn

    with pytest.raises(UnknownChoiceError, match="grouped"):
        graph_modules(load_siamrpn(checkpoints["siamrpn"]), head="im2col")


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_ascend_target_from_either_framework(checkpoints, tmp_path, framework):
    """The Ascend path starts from an ONNX bundle whose template and search share an external weights file; each
    graph it audits and hands to ATC must stand alone (this failed with "weights.bin ... not accessible"). Its
    SiamRPN head is the elementwise form NPU converters take."""
    import onnx

    out = tmp_path / "a310"
    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", framework,
                 "--target", "ascend310", "-o", str(out)]) == 0
    b = load_bundle(out)
    assert (b.manifest.target, b.manifest.precision) == ("ascend310", "fp16")
    runtime_convs, ops = runtime_weight_convs(b.path / b.manifest.graphs["head"].file)
    assert not runtime_convs and {"Slice", "Mul", "Add"} <= ops
    for name, spec in b.manifest.graphs.items():
        proto = onnx.load(str(b.path / spec.file), load_external_data=False)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer), name


@pytest.fixture(scope="module")
def deblur_ckpt(checkpoints):
    """A trained-like tiny DeblurGAN-v2 (not the identity an untrained one is), saved by PyTorch: one file, both
    frameworks."""
    from edgetrack.models.torch.deblurgan import save_deblurgan
    from torch_helpers import trained_like_deblurgan

    return save_deblurgan(trained_like_deblurgan(), checkpoints["siamrpn"].parent / "deblur.safetensors")


def test_cli_mindspore_deblur_stage_tracks_as_the_pytorch_export(checkpoints, deblur_ckpt, tmp_path, capsys):
    """`convert --framework mindspore --deblur`: tracker and deblur graphs exported by MindSpore, each checked against
    it; the bundle tracks with the stage on, as the PyTorch-converted bundle of the same two checkpoints does, and the
    two exporters' deblur graphs agree in ONNX Runtime."""
    import numpy as np
    import onnxruntime as ort

    from edgetrack.bundle import sha256_file

    outs = {"mindspore": tmp_path / "ms", "torch": tmp_path / "torch"}
    for framework, out in outs.items():
        assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", framework,
                     "--deblur", str(deblur_ckpt), "--name", "deblur-rpn-tiny", "--target", "cpu", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "deblur mindspore->onnx" in printed and "deblur torch->onnx" in printed

    ms_bundle, torch_bundle = load_bundle(outs["mindspore"]), load_bundle(outs["torch"])
    m = ms_bundle.manifest
    section = m.preprocessing["deblur"]
    assert m.model == "deblur-rpn-tiny" and m.source["framework"] == section["framework"] == "mindspore"
    assert section["checkpoint_sha256"] == sha256_file(deblur_ckpt) and section["model"] == "deblurgan-tiny"
    assert m.tools["deblur_exporter"] == "mindspore.onnx.export" and m.tools["deblur_onnx_opset"] >= 11
    assert "mindspore" in m.tools and "torch" not in m.tools
    assert torch_bundle.manifest.preprocessing["deblur"]["framework"] == "torch"
    rows = m.parity["deblur mindspore->onnx"]
    assert set(rows) == {"deblur_template", "deblur_search"} and "deblur mindspore->onnx" in section["parity"]
    for graph, row in rows.items():
        print(f"\n{graph}: max |onnxruntime - mindspore| / scale = {row['max_rel']:.2e}")
        assert row["passed"] and row["reference"] == "mindspore" and row["max_rel"] <= 1e-4

    def io(manifest):  # tensor names, shapes and files (the hashes differ: other exporters)
        return {n: (g.file, g.inputs, g.outputs) for n, g in manifest.graphs.items()}

    assert io(m) == io(torch_bundle.manifest)

    # One checkpoint, two exporters: the deblur graphs agree, the correction (output - input) to its own scale too.
    rng = np.random.default_rng(5)
    for graph in ("deblur_template", "deblur_search"):
        x = rng.uniform(0, 255, m.graphs[graph].inputs[0].shape).astype(np.float32)
        ys = [ort.InferenceSession(str(b.graph_path(graph)), providers=["CPUExecutionProvider"]).run(
            None, {"crop": x})[0] for b in (ms_bundle, torch_bundle)]
        output = np.abs(ys[0] - ys[1]).max() / np.abs(ys[1]).max()
        correction = np.abs((ys[0] - x) - (ys[1] - x)).max() / np.abs(ys[1] - x).max()
        print(f"{graph}: mindspore vs torch export, output {output:.2e}, correction {correction:.2e}")
        assert output <= 1e-4 and correction <= 1e-4 and np.abs(ys[1] - x).max() > 1.0

    trackers = [Tracker(outs["mindspore"], deblur="always"), Tracker(outs["torch"], deblur="always")]
    assert_track_alike(*trackers, *moving_texture_frames(5), box_atol=1e-2, score_tol=1e-3)
    assert all(t.stats.deblurred == 4 and t.stats.template_deblurred for t in trackers)


def test_cli_mindspore_int8_keeps_the_deblur_stage_at_fp16(checkpoints, deblur_ckpt, tmp_path):
    import numpy as np

    from edgetrack.data.synth import SynthConfig, generate

    data = generate(SynthConfig(sequences=2, frames=6, size=(160, 120), seed=3, pairs=False), tmp_path / "synth",
                    progress=False)
    out = tmp_path / "int8"
    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "mindspore",
                 "--target", "cpu", "--precision", "int8", "--calibration", f"synthetic:{data}",
                 "--calibration-frames", "4", "--deblur", str(deblur_ckpt), "-o", str(out)]) == 0
    m = load_bundle(out).manifest
    assert m.precision == "int8" and m.preprocessing["deblur"]["precision"].startswith("fp16")
    assert m.preprocessing["deblur"]["framework"] == "mindspore"
    for stage in ("deblur mindspore->fp16", "deblur onnx-fp32->fp16"):
        assert all(r["passed"] and r["max_rel"] <= 1e-2 for r in m.parity[stage].values()), stage
    assert all(r["passed"] is not False for rows in m.parity.values() for r in rows.values())
    tracker = Tracker(out, deblur="always")
    frames, boxes = moving_texture_frames(3)
    tracker.init(frames[0], boxes[0])
    assert np.all(np.isfinite(tracker.update(frames[1]).box)) and tracker.stats.deblurred == 1


def test_mindspore_export_of_scale_search_by_templates(checkpoints, tmp_path):
    """The MindSpore twin exports the templates form too (a template per scale, one search crop), checked against
    MindSpore and tracking as the PyTorch export."""
    kw = dict(family="siamfc", scale_search="templates")
    ms_bundle = tracker_bundle(checkpoints["siamfc"], tmp_path / "ms", framework="mindspore", **kw)
    torch_bundle = tracker_bundle(checkpoints["siamfc"], tmp_path / "torch", **kw)
    m = load_bundle(ms_bundle).manifest
    assert all(r["passed"] for r in m.parity["mindspore->onnx"].values())
    assert m.graphs["template"].inputs[0].shape[0] == 3 and m.graphs["search"].inputs[0].shape[0] == 1
    assert_track_alike(Tracker(ms_bundle), Tracker(torch_bundle), *moving_texture_frames(5), box_atol=1e-2,
                       score_tol=1e-3)
