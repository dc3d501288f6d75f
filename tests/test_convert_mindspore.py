"""`edgetrack convert --framework mindspore`: the MindSpore twin exports the graphs (mindspore.onnx.export), each is
checked against MindSpore, and the bundle tracks as the PyTorch-exported one does (the checkpoint file is shared)."""
import numpy as np
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
from edgetrack.models.torch.siamrpn import build_siamrpn, save_siamrpn  # noqa: E402


def _randomised(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms-convert")
    torch.manual_seed(0)
    rpn = save_siamrpn(_randomised(build_siamrpn("siamrpn-tiny")), root / "rpn.safetensors")
    fc = save_siamfc(_randomised(build_siamfc("siamfc-tiny")), root / "fc.safetensors")
    return {"siamrpn": rpn, "siamfc": fc}


def _frames(n=5):
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 255, (24, 30, 3), np.uint8)
    frames, boxes = [], []
    for i in range(n):
        f = np.full((120, 160, 3), 100, np.uint8)
        x, y = 40 + 5 * i, 30 + 3 * i
        f[y:y + 24, x:x + 30] = texture
        frames.append(f)
        boxes.append((x, y, 30, 24))
    return frames, boxes


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
        import onnx

        head = onnx.load(str(load_bundle(ms_bundle).path / "head.onnx"), load_external_data=False)
        constant = {t.name for t in head.graph.initializer} | {
            o for n in head.graph.node if n.op_type == "Constant" for o in n.output}
        assert sum(n.op_type == "Conv" and n.input[1] not in constant for n in head.graph.node) == 1
        assert "grouped Conv" in m.notes

    frames, boxes = _frames()
    a, b = Tracker(ms_bundle), Tracker(torch_bundle)
    a.init(frames[0], boxes[0])
    b.init(frames[0], boxes[0])
    for f in frames[1:]:
        ra, rb = a.update(f), b.update(f)
        np.testing.assert_allclose(ra.box, rb.box, atol=1e-2)
        assert abs(ra.score - rb.score) < 1e-3


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
    head = onnx.load(str(b.path / b.manifest.graphs["head"].file))
    constant = {t.name for t in head.graph.initializer} | {
        o for n in head.graph.node if n.op_type == "Constant" for o in n.output}
    assert all(n.input[1] in constant for n in head.graph.node if n.op_type == "Conv")
    assert {"Slice", "Mul", "Add"} <= {n.op_type for n in head.graph.node}
    for name, spec in b.manifest.graphs.items():
        proto = onnx.load(str(b.path / spec.file), load_external_data=False)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer), name
