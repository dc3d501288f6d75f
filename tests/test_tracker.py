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
from edgetrack.tracking import LostParams  # noqa: E402

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


def _frames(n=N_FRAMES, size=(96, 72), start=(10, 12), step=(4, 2), color=(30, 40, 220)):
    frames, boxes = [], []
    for i in range(n):
        img = np.full((size[1], size[0], 3), 110, np.uint8)
        x, y = start[0] + step[0] * i, start[1] + step[1] * i
        cv2.rectangle(img, (x, y), (x + 19, y + 15), color, -1)
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
        assert 0 <= r.score <= 1 and isinstance(r.lost, bool)
    plain = _run(Tracker(bundle, lost_params=LostParams(enabled=False)), frames, boxes[0])
    assert [r.lost for r in plain] == [r.score < tracker.lost_threshold for r in plain]

    reference = TorchSiamFCTracker(ckpt, params=SiamFCParams(**tracker.bundle.manifest.tracking))
    reference.init(frames[0], boxes[0])
    for frame, r in zip(frames[1:], results):
        box, score = reference.update(frame)
        np.testing.assert_allclose(r.box, box, atol=1e-4)
        assert r.score == pytest.approx(score, abs=1e-4)


def test_lost_threshold_and_frames_of_another_size(tiny):
    frames, boxes = _frames()
    strict = Tracker(tiny[1], lost_threshold=1.0, lost_params=LostParams(lost_after=1))
    strict.init(frames[0], boxes[0])
    r = strict.update(frames[1])
    assert r.lost == (r.score < 1.0)  # the untrained tiny net may saturate the sigmoid to exactly 1.0
    assert strict.logic.lost_params.score_threshold == 1.0 and strict.logic.lost_params.lost_after == 1
    # lost_threshold overrides LostParams' threshold, which overrides the default.
    assert Tracker(tiny[1], lost_params=LostParams(score_threshold=0.3)).lost_threshold == 0.3
    assert Tracker(tiny[1], lost_threshold=0.2, lost_params=LostParams(score_threshold=0.3)).lost_threshold == 0.2
    with pytest.raises(InvalidArgumentError, match="lost_params must be .*dict"):
        Tracker(tiny[1], lost_params={"lost_after": 2})
    never_lost = Tracker(tiny[1], lost_threshold=0.0)
    never_lost.init(frames[0], boxes[0])
    assert not never_lost.update(frames[1]).lost
    # A smaller frame than at init: allowed for SiamFC, the centre stays inside it.
    r = never_lost.update(np.ascontiguousarray(frames[2][:40, :50]))
    cx, cy = r.box[0] + (r.box[2] - 1) / 2, r.box[1] + (r.box[3] - 1) / 2
    assert 0 <= cx <= 49 and 0 <= cy <= 39
    # And a larger one (the camera switched resolution back up): tracked in the new frame's coordinates.
    bigger = cv2.resize(frames[3], (192, 144))
    r = never_lost.update(bigger)
    cx, cy = r.box[0] + (r.box[2] - 1) / 2, r.box[1] + (r.box[3] - 1) / 2
    assert np.isfinite(r.box).all() and 0 <= cx <= 191 and 0 <= cy <= 143
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


def test_models_backends_and_devices_are_checked(tiny, tmp_path, monkeypatch):
    import shutil

    import edgetrack.tracker as tracker_module

    # Shipped models are the bundle folders under _MODELS_DIR: an empty one, then one holding the default model.
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(tracker_module, "_MODELS_DIR", models)
    default = tracker_module.DEFAULT_MODEL
    assert list_models() == []
    with pytest.raises(BundleError, match=f"default model '{default}' is missing"):
        Tracker()
    with pytest.raises(UnknownChoiceError, match="siamfc-hsm"):
        Tracker("siamfc-hsm")
    shutil.copytree(tiny[1], models / default)
    shutil.copytree(tiny[1], models / "siamfc-hsm")
    assert list_models() == sorted({default, "siamfc-hsm"})
    assert Tracker().bundle.path == (models / default).resolve()
    assert Tracker("siamfc-hsm").bundle.path == (models / "siamfc-hsm").resolve()
    with pytest.raises(UnknownChoiceError, match="siamfc-hsm"):
        Tracker("siamrpn-nope")
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


def test_unknown_families_and_mismatched_parameters_are_bundle_errors(tiny, tmp_path):
    import shutil

    for family, match in (("goturn", r"'goturn' model, which this Tracker does not run \(families: \['siamfc', "
                                      r"'siamrpn'\]\)"),
                          ("siamrpn", "do not fit SiamRPNParams")):
        copy = tmp_path / family
        shutil.copytree(tiny[1], copy)
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["family"] = family
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match=match):
            Tracker(copy)


def test_four_trackers_in_four_threads_match_a_sequential_run(tiny):
    """Each Tracker owns its sessions and state: threads running at once give exactly the sequential results."""
    sequences = [
        _frames(4, start=(10, 12), step=(4, 2)),
        _frames(4, start=(60, 40), step=(-3, -2), color=(200, 60, 20)),
        _frames(4, size=(120, 90), start=(40, 10), step=(1, 5), color=(20, 180, 40)),
        _frames(4, start=(30, 30), step=(0, 0), color=(90, 20, 160)),
    ]

    def results(tracker, frames, boxes):
        return [(r.box, r.score, r.lost) for r in _run(tracker, frames, boxes[0])]

    expected = [results(Tracker(tiny[1]), *seq) for seq in sequences]
    assert len({str(e) for e in expected}) == 4  # four different tracks, so a mix-up would show
    trackers = [Tracker(tiny[1]) for _ in sequences]
    start = threading.Barrier(len(sequences))
    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(i):
        try:
            start.wait(timeout=60)  # all four run at the same time, not one after another
            got[i] = results(trackers[i], *sequences[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sequences))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    for i in range(len(sequences)):
        assert got[i] == expected[i]  # exactly: same floats, same order


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


def test_tracking_overrides_and_spec_options(tiny):
    """Tracker(tracking=...) replaces the bundle's hyper-parameters (and changes the boxes); the eval spec's
    ?options reach the Tracker; bad names and values are typed errors naming them."""
    from edgetrack.tracker import bundle_tracker

    frames, boxes = _frames()
    plain = _run(Tracker(tiny[1]), frames, boxes[0])
    tuned = Tracker(tiny[1], tracking={"window_influence": 0.0, "scale_lr": 1.0})
    assert tuned.logic.params.window_influence == 0.0
    assert [r.box for r in _run(tuned, frames, boxes[0])] != [r.box for r in plain]
    with pytest.raises(InvalidArgumentError, match="penalty_k.*do not exist"):
        Tracker(tiny[1], tracking={"penalty_k": 0.1})  # a SiamRPN parameter, not SiamFC's
    with pytest.raises(InvalidArgumentError, match="window_influence"):
        Tracker(tiny[1], tracking={"window_influence": 2.0})
    # What a Tracker tracks with, known without loading its graphs (benchmarks record it with their figures).
    from edgetrack.tracker import tracking_settings

    settings = tracking_settings(tiny[1], tracking={"window_influence": 0.0, "scale_lr": 1.0}, lost_threshold=0.3)
    assert settings.params == tuned.logic.params and settings.lost.score_threshold == 0.3
    assert tracking_settings(tiny[1]) == Tracker(tiny[1]).settings
    assert Tracker(tiny[1]).settings.lost == Tracker(tiny[1]).logic.lost_params  # None resolved as the logic does
    assert tracking_settings(tiny[1]).to_dict()["lost"]["score_threshold"] == Tracker(tiny[1]).lost_threshold
    with pytest.raises(InvalidArgumentError, match="penalty_k.*do not exist"):
        tracking_settings(tiny[1], tracking={"penalty_k": 0.1})

    factory = bundle_tracker(f"bundle:{tiny[1]}?deblur=never&window_influence=0.0")
    assert factory.tracker_name == "siamfc-tiny-bundle?deblur=never&window_influence=0.0"
    assert factory().logic.params.window_influence == 0.0
    with pytest.raises(InvalidArgumentError, match="not a number"):
        bundle_tracker(f"bundle:{tiny[1]}?window_influence=high")
    with pytest.raises(InvalidArgumentError, match="key=value"):
        bundle_tracker(f"bundle:{tiny[1]}?cpu")
    with pytest.raises(InvalidArgumentError, match="device twice"):
        bundle_tracker(f"bundle:{tiny[1]}#cpu?device=cpu")


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


# -- bad input: each a typed error naming the bad value, and the track survives it --------------------------------
@pytest.fixture(scope="module")
def tracker(tiny):
    return Tracker(tiny[1])


@pytest.mark.parametrize(
    "frame,words",
    [
        (None, "frame is None"),
        ("frame.png", "numpy array.*got str"),
        (np.zeros((0, 0, 3), np.uint8), r"empty \(shape \(0, 0, 3\)\)"),
        (np.zeros((72, 96, 3), np.float32), "got dtype float32(.|\n)*frame \\* 255"),
        (np.zeros((72, 96, 3), np.uint16), "got dtype uint16(.|\n)*frame >> 8"),
        (np.zeros((72, 96), np.uint8), r"grayscale \(shape \(72, 96\)\)(.|\n)*COLOR_GRAY2BGR"),
        (np.zeros((72, 96, 1), np.uint8), r"grayscale \(shape \(72, 96, 1\)\)"),
        (np.zeros((72, 96, 4), np.uint8), r"got \(72, 96, 4\)(.|\n)*cv2.cvtColor\(frame, cv2.COLOR_BGRA2BGR\)"),
        (np.zeros((2, 72, 96, 3), np.uint8), r"got \(2, 72, 96, 3\)"),
    ],
)
def test_bad_frames_are_typed_errors_naming_the_value(tracker, frame, words):
    frames, boxes = _frames(3)
    with pytest.raises(InvalidArgumentError, match=words):
        tracker.init(frame, boxes[0])
    tracker.init(frames[0], boxes[0])
    before = tracker.logic.box.copy()
    with pytest.raises(InvalidArgumentError, match=words):
        tracker.update(frame)
    np.testing.assert_array_equal(tracker.logic.box, before)  # nothing moved
    assert isinstance(tracker.update(frames[1]), TrackResult)  # and the track goes on


@pytest.mark.parametrize(
    "box,words",
    [
        (None, "box is None"),
        ((10, 12, 0, 16), "(10.0, 12.0, 0.0, 16.0) has width 0 and height 16; both must be > 0"),
        ((10, 12, 20, -16), "(10.0, 12.0, 20.0, -16.0) has width 20 and height -16"),
        ((10, float("nan"), 20, 16), "(10.0, nan, 20.0, 16.0) contains NaN"),
        ((10, 12, float("inf"), 16), "(10.0, 12.0, inf, 16.0) contains NaN or infinity"),
        ((200, 12, 20, 16), "(200.0, 12.0, 20.0, 16.0) lies entirely outside the 96×72 frame"),
        ((-30, 12, 20, 16), "(-30.0, 12.0, 20.0, 16.0) lies entirely outside"),
        ((10, 80, 20, 16), "(10.0, 80.0, 20.0, 16.0) lies entirely outside"),
        ((0, 0, 1000, 16), "(0.0, 0.0, 1000.0, 16.0) is more than 4× the 96×72 frame"),
        ((10, 12, 20), "got (10, 12, 20) of shape (3,)"),
        ((10, 12, 20, 16, 1), "got (10, 12, 20, 16, 1) of shape (5,)"),
        ([[10, 12, 20, 16]], "got [[10, 12, 20, 16]] of shape (1, 4)"),
        ("10,12,20,16", "'10,12,20,16' is a str"),
        ({"x": 10, "y": 12}, "{'x': 10, 'y': 12} is a dict"),
        (("a", 12, 20, 16), "('a', 12, 20, 16) is not four numbers"),
    ],
)
def test_bad_boxes_are_typed_errors_naming_the_value(tracker, box, words):
    frames, boxes = _frames(3)
    tracker.init(frames[0], boxes[0])
    before = tracker.logic.box.copy()
    with pytest.raises(InvalidArgumentError) as info:
        tracker.init(frames[1], box)
    assert words in str(info.value)
    np.testing.assert_array_equal(tracker.logic.box, before)  # the running track is untouched


def test_a_box_past_the_border_or_larger_than_the_frame_is_kept_as_given(tracker):
    frames, _ = _frames(3)
    for box in [(-8.0, -6.0, 20.0, 16.0), (-20.0, -10.0, 150.0, 100.0)]:  # partly outside; bigger than 96×72
        tracker.init(frames[0], box)
        assert tracker.logic.box.tolist() == list(box)  # not clipped
        r = tracker.update(frames[1])
        assert np.isfinite(r.box).all()


def test_non_contiguous_frames_track_exactly_like_their_contiguous_copies(tiny):
    frames, boxes = _frames()
    expected = [(r.box, r.score, r.lost) for r in _run(Tracker(tiny[1]), frames, boxes[0])]
    padded = [np.pad(f, ((5, 5), (7, 7), (0, 0))) for f in frames]
    region_views = [p[5:-5, 7:-7] for p in padded]  # a region of a bigger image
    channel_views = [np.ascontiguousarray(f[..., ::-1])[..., ::-1] for f in frames]  # RGB -> BGR by slicing
    for views in (region_views, channel_views):
        assert not views[0].flags.c_contiguous
        got = [(r.box, r.score, r.lost) for r in _run(Tracker(tiny[1]), views, boxes[0])]
        assert got == expected


def test_init_again_starts_afresh_and_a_failed_init_keeps_the_running_track(tiny):
    frames, boxes = _frames()
    reference = Tracker(tiny[1])
    expected = _run(reference, frames[:3], boxes[0])
    t = Tracker(tiny[1])
    t.init(frames[0], boxes[0])
    assert t.update(frames[1]) == expected[0]
    with pytest.raises(InvalidArgumentError, match="entirely outside"):
        t.init(frames[1], (500, 500, 10, 10))
    assert t.update(frames[2]) == expected[1]  # the failed init changed nothing
    other = (60.0, 40.0, 12.0, 12.0)  # a new target on the same tracker ...
    t.init(frames[2], other)
    assert t.logic.box.tolist() == list(other) and not t.logic.lost
    fresh = Tracker(tiny[1])  # ... behaves exactly like a new tracker on it
    fresh.init(frames[2], other)
    assert [t.update(f) for f in frames[3:]] == [fresh.update(f) for f in frames[3:]]


# -- the lost state through Tracker, with stub sessions standing in for the graphs --------------------------------
class _Identity:
    def __init__(self, name_in, name_out):
        self.name_in, self.name_out = name_in, name_out

    def run(self, feeds):
        return {self.name_out: feeds[self.name_in]}


class _NCCHead:
    """The "head": normalised cross-correlation of the exemplar over each search crop, as a 17×17 logit map."""

    def __init__(self, kernel_in, features_in, out):
        self.kernel_in, self.features_in, self.out = kernel_in, features_in, out

    def run(self, feeds):
        template = np.ascontiguousarray(feeds[self.kernel_in][0].transpose(1, 2, 0))
        maps = []
        for crop in feeds[self.features_in]:
            ncc = cv2.matchTemplate(np.ascontiguousarray(crop.transpose(1, 2, 0)), template, cv2.TM_CCOEFF_NORMED)
            maps.append(cv2.GaussianBlur(ncc, (0, 0), 2)[::8, ::8])
        return {self.out: 10.0 * (np.stack(maps)[:, None] - 0.35)}


def test_tracker_reports_lost_under_occlusion_and_recovers_far_away(tiny):
    rng = np.random.default_rng(5)
    background = cv2.GaussianBlur(rng.normal(110, 14, (144, 192, 3)), (0, 0), 1.5).clip(0, 255).astype(np.uint8)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (32, 32, 3)), (0, 0), 2.0)
    texture = ((texture - texture.mean()) * 3 + 128).clip(0, 255).astype(np.uint8)
    frames, truth, hidden = [], [], range(6, 13)
    for i in range(22):
        x, y = (24 + 2 * i, 20 + i) if i < hidden.stop else (150 - i, 100)
        f = background.copy()
        f[y:y + 32, x:x + 32] = texture
        if i in hidden:
            f[y - 12:y + 44, x - 12:x + 44] = (70, 150, 160)
        frames.append(f)
        truth.append((x, y))

    t = Tracker(tiny[1])
    n = t._names
    t._sessions = {
        "template": _Identity(n["z"], n["kernel_out"]),
        "search": _Identity(n["x"], n["features_out"]),
        "head": _NCCHead(n["kernel_in"], n["features_in"], n["maps"][0]),
    }
    t.init(frames[0], (*truth[0], 32, 32))
    results = [t.update(f) for f in frames[1:]]
    lost = [r.lost for r in results]
    near = [abs(r.box[0] - x) < 4 and abs(r.box[1] - y) < 4 for r, (x, y) in zip(results, truth[1:])]
    assert not any(lost[:hidden.start - 1]) and all(near[:hidden.start - 1])
    assert all(lost[hidden.start + 1:hidden.stop - 1])  # lost from the third covered frame on
    back = next(i for i in range(hidden.stop - 1, len(results)) if not lost[i])
    assert back - (hidden.stop - 1) <= 7 and all(near[back:]) and not any(lost[back:])
