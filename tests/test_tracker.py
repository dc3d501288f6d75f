"""edgetrack.Tracker on a tiny SiamFC bundle: results, parity with the PyTorch tracker, errors, backends, eval."""
import json
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgetrack import Tracker, TrackResult, list_models  # noqa: E402
from edgetrack.backends import BACKENDS, get_backend  # noqa: E402
from edgetrack.errors import (  # noqa: E402
    BackendError,
    BundleError,
    InvalidArgumentError,
    MissingDependencyError,
    TrackerStateError,
    UnknownChoiceError,
)

N_FRAMES = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from edgetrack.converters.torch2onnx import siamfc_bundle
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    torch.manual_seed(0)
    model = build_siamfc("siamfc-tiny").eval()
    root = tmp_path_factory.mktemp("tracker")
    ckpt = save_siamfc(model, root / "tiny.safetensors")
    return ckpt, siamfc_bundle(ckpt, root / "bundle")


def _frames(n=N_FRAMES, size=(96, 72)):
    frames, boxes = [], []
    for i in range(n):
        img = np.full((size[1], size[0], 3), 110, np.uint8)
        x, y = 10 + 4 * i, 12 + 2 * i
        cv2.rectangle(img, (x, y), (x + 19, y + 15), (30, 40, 220), -1)
        cv2.circle(img, (x + 6, y + 5), 3, (240, 240, 40), -1)
        frames.append(img)
        boxes.append((x, y, 20, 16))
    return frames, boxes


def _run(tracker, frames, box):
    tracker.init(frames[0], box)
    return [tracker.update(f) for f in frames[1:]]


def test_tracker_returns_results_equal_to_the_torch_tracker(tiny):
    from edgetrack.models.torch.siamfc_tracker import TorchSiamFCTracker
    from edgetrack.tracking.siamfc import SiamFCParams

    ckpt, bundle = tiny
    frames, boxes = _frames()
    tracker = Tracker(bundle)
    assert tracker.backend == "onnxruntime" and "siamfc-tiny" in repr(tracker)
    results = _run(tracker, frames, boxes[0])
    for r in results:
        assert isinstance(r, TrackResult)
        assert len(r.box) == 4 and all(isinstance(v, float) for v in r.box) and np.isfinite(r.box).all()
        assert 0 <= r.score <= 1 and r.lost == (r.score < tracker.lost_threshold)

    reference = TorchSiamFCTracker(ckpt, params=SiamFCParams(**tracker.bundle.manifest.tracking))
    reference.init(frames[0], boxes[0])
    for frame, r in zip(frames[1:], results):
        box, score = reference.update(frame)
        np.testing.assert_allclose(r.box, box, atol=1e-4)
        assert r.score == pytest.approx(score, abs=1e-4)


def test_lost_threshold_and_frames_of_another_size(tiny):
    frames, boxes = _frames()
    strict = Tracker(tiny[1], lost_threshold=1.0)
    strict.init(frames[0], boxes[0])
    r = strict.update(frames[1])
    assert r.lost == (r.score < 1.0)  # the untrained tiny net may saturate the sigmoid to exactly 1.0
    never_lost = Tracker(tiny[1], lost_threshold=0.0)
    never_lost.init(frames[0], boxes[0])
    assert not never_lost.update(frames[1]).lost
    # A smaller frame than at init: allowed for SiamFC, the centre stays inside it.
    r = never_lost.update(np.ascontiguousarray(frames[2][:40, :50]))
    cx, cy = r.box[0] + (r.box[2] - 1) / 2, r.box[1] + (r.box[3] - 1) / 2
    assert 0 <= cx <= 49 and 0 <= cy <= 39
    with pytest.raises(InvalidArgumentError, match="lost_threshold"):
        Tracker(tiny[1], lost_threshold=2)


def test_wrong_order_and_bad_input_are_typed_errors(tiny):
    frames, boxes = _frames(2)
    tracker = Tracker(tiny[1])
    with pytest.raises(TrackerStateError, match="before init"):
        tracker.update(frames[1])
    with pytest.raises(InvalidArgumentError):
        tracker.init(frames[0].astype(np.float32), boxes[0])
    with pytest.raises(InvalidArgumentError):
        tracker.init(frames[0], (10, 10, 0, 5))
    with pytest.raises(TrackerStateError):  # the failed inits started nothing
        tracker.update(frames[1])
    tracker.init(frames[0], boxes[0])
    with pytest.raises(InvalidArgumentError, match="None"):
        tracker.update(None)
    assert isinstance(tracker.update(frames[1]), TrackResult)  # a bad frame does not break the track


def test_models_backends_and_devices_are_checked(tiny, tmp_path):
    assert list_models() == []
    for model in (None, "siamfc-hsm"):
        with pytest.raises(InvalidArgumentError, match="no model ships"):
            Tracker(model)
    with pytest.raises(UnknownChoiceError, match="siamfc-hsm"):
        Tracker("siamfc-hsm")
    with pytest.raises(BundleError, match="does not exist"):
        Tracker(tmp_path / "nowhere")
    with pytest.raises(UnknownChoiceError, match="onnxruntime"):
        Tracker(tiny[1], backend="tensorrt")
    with pytest.raises(UnknownChoiceError, match="device"):
        Tracker(tiny[1], device="npu")
    with pytest.raises(UnknownChoiceError, match="onnxruntime"):
        get_backend("nope")


def test_a_missing_backend_library_names_its_package(monkeypatch):
    from edgetrack.backends.onnxruntime import OnnxRuntimeBackend

    monkeypatch.setattr(OnnxRuntimeBackend, "is_available", lambda self: False)
    with pytest.raises(MissingDependencyError, match="'onnxruntime'"):
        get_backend("onnxruntime")
    assert "onnxruntime" in BACKENDS


@pytest.mark.filterwarnings("ignore:Specified provider")
@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_cuda_on_a_cpu_only_onnxruntime_is_an_error_not_a_cpu_run(tiny, monkeypatch):
    with pytest.raises(BackendError, match="CUDAExecutionProvider"):
        Tracker(tiny[1], device="cuda")
    # Even when the provider is listed, a session that ONNX Runtime quietly put on the CPU is refused
    # (onnxruntime#22229): pretend the provider exists, as a broken onnxruntime-gpu install does.
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(BackendError, match="asked for"):
        Tracker(tiny[1], device="cuda:0")


def test_other_families_are_not_supported_yet(tiny, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny[1], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["family"] = "siamrpn"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not support yet"):
        Tracker(copy)


def test_two_trackers_in_two_threads_match_a_sequential_run(tiny):
    frames, boxes = _frames(4)
    expected = [r.box for r in _run(Tracker(tiny[1]), frames, boxes[0])]
    trackers = [Tracker(tiny[1]), Tracker(tiny[1])]
    got: dict[int, list] = {}

    def work(i):
        got[i] = [r.box for r in _run(trackers[i], frames, boxes[0])]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        np.testing.assert_allclose(got[i], expected, atol=1e-5)


def test_eval_command_runs_a_bundle(tiny, tmp_path):
    from edgetrack.cli import main
    from edgetrack.data.got10k import write_list, write_sequence

    frames, boxes = _frames(4)
    write_sequence(tmp_path / "got" / "seq0", frames, np.array(boxes, float))
    write_list(tmp_path / "got", ["seq0"])
    out = tmp_path / "eval"
    argv = ["eval", "--dataset", f"got10k:{tmp_path / 'got'}", "--tracker", f"bundle:{tiny[1]}", "--out", str(out)]
    assert main(argv) == 0
    (result,) = json.loads((out / "summary.json").read_text())["results"]
    assert result["tracker"] == "siamfc-tiny-bundle" and result["failed_frames"] == 0 and result["frames"] == 4


def test_tracker_runs_with_training_libraries_blocked(tiny):
    code = f"""
import sys
class _Block:
    blocked = {{"torch", "mindspore", "onnx", "matplotlib", "skimage", "tqdm", "safetensors"}}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(name + " is blocked in this test")
sys.meta_path.insert(0, _Block())
import numpy as np, edgetrack
t = edgetrack.Tracker({str(tiny[1])!r})
frame = np.full((72, 96, 3), 110, np.uint8)
t.init(frame, (10, 12, 20, 16))
print("ok", t.update(frame).box)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
