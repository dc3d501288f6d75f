"""SiamRPN through the whole chain: checkpoint -> bundle (shared weights) -> edgetrack.Tracker, equal to torch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgetrack import Tracker  # noqa: E402
from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.converters.torch2onnx import siamrpn_bundle  # noqa: E402
from edgetrack.models.torch.siamrpn import graph_modules, save_siamrpn  # noqa: E402
from edgetrack.tracking.siamrpn import SiamRPNTracking  # noqa: E402

from bundle_helpers import assert_track_alike, moving_texture_frames, runtime_weight_convs  # noqa: E402
from torch_helpers import tiny_siamrpn  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = tiny_siamrpn()
    root = tmp_path_factory.mktemp("rpn")
    ckpt = save_siamrpn(model, root / "tiny.safetensors")
    return model, ckpt, siamrpn_bundle(ckpt, root / "bundle")


def test_bundle_holds_three_graphs_sharing_one_weights_file(tiny):
    _, _, out = tiny
    b = load_bundle(out)
    m = b.manifest
    assert (m.family, m.model, m.precision) == ("siamrpn", "siamrpn-tiny", "fp32")
    assert [t.name for t in m.graphs["head"].outputs] == ["cls", "loc"]
    assert m.graphs["search"].inputs[0].shape == (1, 3, 255, 255)  # one search crop: anchors cover scale
    assert "weights.bin" in m.files and all(r["passed"] for r in m.parity["torch->onnx"].values())


def test_tracker_gives_the_boxes_torch_gives(tiny):
    model, _, out = tiny
    frames, boxes = moving_texture_frames()
    tracker = Tracker(out)
    tracker.init(frames[0], boxes[0])
    got = [tracker.update(f) for f in frames[1:]]

    modules = graph_modules(model)
    logic = SiamRPNTracking(model.config.tracking_params(), tracker.logic.lost_params)
    with torch.no_grad():
        kernel = modules["template"](torch.from_numpy(logic.init(frames[0], boxes[0])))
        for f, r in zip(frames[1:], got):
            features = modules["search"](torch.from_numpy(logic.search_crops(f)))
            cls, loc = modules["head"](kernel, features)
            box, score = logic.update_from_outputs(cls.numpy(), loc.numpy())
            np.testing.assert_allclose(r.box, box, atol=1e-2)
            assert abs(r.score - score) < 1e-4
            assert r.lost == logic.lost


def test_head_form_follows_the_runtime(tiny, tmp_path):
    """ONNX Runtime bundles correlate with one grouped Conv whose weight is the kernel input; the form for NPU converters
    (``runtime_weights=False``, what an Ascend --target exports) has no such Conv. Both track alike."""
    model, ckpt, out = tiny
    grouped, _ = runtime_weight_convs(load_bundle(out).path / "head.onnx")
    assert len(grouped) == 1
    assert {a.name: a.i for a in grouped[0].attribute}["group"] == 2 * model.config.corr_channels
    assert "grouped Conv" in load_bundle(out).manifest.notes

    npu = siamrpn_bundle(ckpt, tmp_path / "npu", runtime_weights=False)
    runtime_convs, ops = runtime_weight_convs(load_bundle(npu).path / "head.onnx")
    assert not runtime_convs and {"Slice", "Mul", "Add"} <= ops
    assert "Slice/Mul/Add only" in load_bundle(npu).manifest.notes

    assert_track_alike(Tracker(out), Tracker(npu), *moving_texture_frames(), box_atol=1e-3, score_tol=1e-5)


def test_unknown_head_form_is_refused(tiny):
    from edgetrack.errors import UnknownChoiceError

    with pytest.raises(UnknownChoiceError, match="elementwise"):
        graph_modules(tiny[0], head="im2col")
