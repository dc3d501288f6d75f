"""`edgetrack convert --framework mindspore`: the MindSpore twin exports the graphs (mindspore.onnx.export), each is
checked against MindSpore, and the bundle tracks as the PyTorch-exported one does (the checkpoint file is shared)."""
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

    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "jax",
                 "--target", "cpu", "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "jax" in err and "mindspore" in err and not (tmp_path / "c").exists()

    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "mindspore",
                 "--deblur", str(checkpoints["siamrpn"]), "--target", "cpu", "-o", str(tmp_path / "d")]) == 2
    assert "--framework torch" in capsys.readouterr().err and not (tmp_path / "d").exists()

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
