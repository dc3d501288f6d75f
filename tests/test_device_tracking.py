"""Crops and decoding on the torch backend's device (edgetrack.tracking.device), checked on the CPU device against
the numpy + OpenCV host path: the crops equal cv2.warpAffine's, the upsampling cv2.resize's, SiamRPN's anchor choice
the numpy one's, and a Tracker gives the host path's boxes."""
import copy
import importlib.util

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
if importlib.util.find_spec("onnx2torch") is None:
    pytest.skip("onnx2torch is not installed", allow_module_level=True)

from edgetrack import Tracker  # noqa: E402
from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.backends.torchcuda import ENV_DEVICE_TRACKING, TorchBackend, TorchDeviceOps  # noqa: E402
from edgetrack.errors import InvalidArgumentError  # noqa: E402
from edgetrack.tracking.crop import (CROP_REQUEST_HEADER, crop_affine, crop_and_resize, crop_request,  # noqa: E402
                                     mean_color, opencv_rounds_positions, sample_positions)
from edgetrack.tracking.siamese import LostParams  # noqa: E402
from edgetrack.tracking.siamfc import SiamFCParams, SiamFCTracking, peak_search  # noqa: E402
from edgetrack.tracking.siamrpn import SiamRPNParams, SiamRPNTracking, select_anchor  # noqa: E402

from bundle_helpers import moving_texture_frames  # noqa: E402
from torch_helpers import single_torch_thread  # noqa: E402

pytestmark = pytest.mark.torch
one_thread = pytest.fixture(autouse=True)(single_torch_thread)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU that PyTorch can use")

def _frames_of_kinds():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (120, 160, 3), np.uint8)  # the worst case: one-pixel steps of any height
    smooth = cv2.GaussianBlur(noise, (0, 0), 2)
    return {"noise": noise, "smooth": smooth, "odd-sizes": noise[:37, :93]}


def _exact_positions(affine, size):
    u = np.arange(size, dtype=np.float64)
    return affine[0, 0] * u + affine[0, 2], affine[1, 1] * u + affine[1, 2]


def _assert_opencvs_crops(pairs):
    """Device crops against cv2.warpAffine's: equal under OpenCV 4's fixed point; under OpenCV 5's float kernels
    (the same float32 positions, weights summed in another order) at most 1 grey level apart in under 0.1 % of
    values."""
    if opencv_rounds_positions():
        for got, ref in pairs:
            np.testing.assert_array_equal(got, ref)
        return
    d = np.concatenate([np.abs(got - ref).ravel() for got, ref in pairs])
    assert d.max() <= 1 and (d > 0).mean() < 1e-3, (d.max(), (d > 0).mean())


@pytest.mark.parametrize("kind", ["noise", "smooth", "odd-sizes"])
def test_device_crops_equal_opencv_to_the_grey_level(kind):
    """From the crops' maps the device computes OpenCV's positions (OpenCV 4: 1/32 px) and its crops are
    cv2.warpAffine's, padding included; OpenCV's positions are within 1/64 + 1/1024 px of the exact ones."""
    frame = _frames_of_kinds()[kind]
    ops = TorchDeviceOps("cpu")
    rng = np.random.default_rng(1)
    h, w = frame.shape[:2]
    crops = []
    for i in range(40):
        # Centres inside, near the border and outside; crops smaller and much larger than the frame.
        c = rng.uniform(-0.3, 1.3, 2) * (w, h)
        side = rng.uniform(8, 3 * max(w, h))
        size = int(rng.choice([127, 255, 31]))
        pad = mean_color(frame) if i % 2 else (0.0, 0.0, 0.0)
        ref = crop_and_resize(frame, c, side, size, pad).transpose(2, 0, 1).astype(np.float32)
        m = crop_affine(c, side, size)
        got = ops.crops(frame, m[None], size, pad)
        assert got.dtype == torch.float32 and tuple(got.shape) == (1, 3, size, size)
        crops.append((got[0].numpy(), ref))
        xs, ys = sample_positions(m, size)
        ex, ey = _exact_positions(m, size)
        # 1/64 px from the rounding to 1/32, and up to 1/1024 more from OpenCV's two roundings to 1/1024 first
        assert np.abs(xs - ex).max() <= 1 / 64 + 1 / 1024 and np.abs(ys - ey).max() <= 1 / 64 + 1 / 1024
    _assert_opencvs_crops(crops)


def test_the_request_carries_the_maps_and_only_the_region_the_taps_read():
    """crop_request: the region is what the taps read (found from the end positions), the vector the maps;
    a stack of maps gives each map's positions; bad maps are refused, typed."""
    frame = _frames_of_kinds()["noise"]
    maps = np.stack([crop_affine((50.3, 60.7), 90.0, 63), crop_affine((52.0, 62.0), 93.4, 63)])  # inside the frame
    region, params = crop_request(frame, maps, 63, (1.2, 2.6, 3.5))
    xs, ys = sample_positions(maps, 63)
    assert xs.shape == (2, 63) and all((xs[k] == sample_positions(maps[k], 63)[0]).all() for k in range(2))
    x0, y0 = int(params[5]), int(params[6])
    assert (x0, y0) == (int(np.floor(xs.min())), int(np.floor(ys.min())))
    assert region.shape[:2] == (int(np.floor(ys.max())) + 2 - y0, int(np.floor(xs.max())) + 2 - x0)
    assert params[:5].tolist() == [region.shape[1], region.shape[0], 1, 3, 4]  # the pad rounded
    assert params.size == CROP_REQUEST_HEADER + 4 * 2
    for bad in (np.zeros((2, 3)), maps * np.nan, maps * -1):
        with pytest.raises(InvalidArgumentError, match="crop maps"):
            crop_request(frame, bad, 63, (0, 0, 0))


def test_batched_crops_share_one_upload():
    frame = _frames_of_kinds()["noise"]
    ops = TorchDeviceOps("cpu")
    regions = [((50.3, 40.7), 90.0), ((52.0, 41.0), 93.4), ((10.0, 5.0), 200.0)]
    pad = mean_color(frame)
    got = ops.crops(frame, np.stack([crop_affine(c, s, 63) for c, s in regions]), 63, pad).numpy()
    _assert_opencvs_crops([(got[k], crop_and_resize(frame, c, s, 63, pad).transpose(2, 0, 1))
                           for k, (c, s) in enumerate(regions)])


def test_upsampling_is_opencvs_bicubic_and_the_peak_search_is_the_same_on_both():
    rng = np.random.default_rng(2)
    maps = rng.normal(0, 3, (3, 17, 17)).astype(np.float32)
    ops = TorchDeviceOps("cpu")
    up_host = np.stack([cv2.resize(m, (272, 272), interpolation=cv2.INTER_CUBIC) for m in maps])
    up_dev = ops.upsample_bicubic(torch.from_numpy(maps)[:, None], 272)
    assert tuple(up_dev.shape) == (3, 272, 272)
    err = np.abs(up_dev.numpy() - up_host).max() / np.abs(up_host).max()
    assert err < 1e-5, err
    t = SiamFCTracking(SiamFCParams())
    for wi in (0.176, 0.0):
        host = peak_search(up_host, t._penalties, t._window, wi, lambda a: a.max(axis=1))
        # On the device the settings are device values (they come with the frame's request), read by no host step.
        for dev_wi in (wi, torch.tensor(wi, dtype=torch.float64)):
            dev = peak_search(up_dev, ops.asarray(t._penalties), ops.asarray(t._window), dev_wi, ops.max_rows)
            assert all(isinstance(v, torch.Tensor) for v in dev)
            assert (int(host[0]), int(host[1])) == (int(dev[0]), int(dev[1]))
            assert abs(float(host[2][0]) - float(dev[2][0])) < 1e-4


def _rpn_maps(rng, p, confident=True):
    """Head outputs (1, 2A, R, R), (1, 4A, R, R) as float32: a clear target anchor, or (unconfident) none."""
    a, r = p.num_anchors, p.score_size
    cls = rng.normal(0, 1, (1, 2 * a, r, r))
    if confident:
        cls[0, a + rng.integers(0, a), rng.integers(0, r), rng.integers(0, r)] += 8
    else:
        cls[0, :a] += 6
    return cls.astype(np.float32), rng.normal(0, 0.3, (1, 4 * a, r, r)).astype(np.float32)


def _select_anchor_on(device):
    ops = TorchDeviceOps(device)
    t = SiamRPNTracking(SiamRPNParams())
    p = t.params
    a, r = p.num_anchors, p.score_size
    rng = np.random.default_rng(3)
    for k in range(12):
        cls, loc = _rpn_maps(rng, p, confident=k % 3 != 0)
        logits, deltas = cls.astype(np.float64).reshape(2, a, r, r), loc.astype(np.float64).reshape(4, a, r, r)
        target = rng.uniform(10, 120, 2)
        wi = (0.42, 0.0)[k % 2]
        host, score, best = select_anchor(logits, deltas, t.anchors, t._window, wi, target, p.penalty_k, p.context)
        assert int(best) == host[0]
        dl, dd = (ops.asarray(m) for m in (logits, deltas))
        # The target size and the window's influence as the device gets them: device values, with the request.
        for dev_target, dev_wi in ((target, wi), (ops.asarray(target), torch.tensor(wi, dtype=torch.float64))):
            dev, dscore, dbest = select_anchor(dl, dd, ops.asarray(t.anchors), ops.asarray(t._window), dev_wi,
                                               dev_target, p.penalty_k, p.context, ops.xp)
            assert dev.device == ops._device and dev.dtype == torch.float64  # computed there, in float64 as on the host
            dev = ops.to_host(dev)
            assert host.shape == dev.shape == (9,) and host[0] == dev[0] == int(dbest)  # the same anchor
            np.testing.assert_allclose(dev, host, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(ops.to_host(dscore), score, rtol=1e-12, atol=1e-15)


def test_siamrpn_anchor_choice_is_the_same_on_both():
    """select_anchor with numpy arrays and with torch tensors: the same anchor, its numbers within 1e-12."""
    _select_anchor_on("cpu")


def _rpn_pair(lost, frame):
    """The same SiamRPN track on the host and with TorchDeviceOps('cpu')."""
    host, dev = SiamRPNTracking(SiamRPNParams(), lost), SiamRPNTracking(SiamRPNParams(), lost)
    ops = TorchDeviceOps("cpu")
    dev.use_device(ops)
    for t in (host, dev):
        t.init(frame, (100.5, 80.25, 40.0, 30.0))
    return host, dev, ops


def _decode_on_device(dev, ops, frame, cls, loc):
    """One frame of ``dev`` the device's way: its request, the decode on the device, the host's reading of it."""
    _, request = dev.search_request(frame)
    decoded = dev.decode_on_device(torch.from_numpy(cls), torch.from_numpy(loc), ops.asarray(request))
    assert decoded.dtype == torch.float64 and decoded.ndim == 1
    return dev.update_from_device(ops.to_host(decoded))


@pytest.mark.parametrize("lost", [LostParams(), LostParams(apce_ratio=0.4), LostParams(enabled=False),
                                  LostParams(search_window_influence=0.3, global_search=False)],
                         ids=["default", "apce", "plain", "search-window"])
def test_siamrpn_decode_on_the_device_gives_the_host_track(lost):
    """Random head outputs in phases (a clear target, none, a clear one again), so the track is tracked, declared
    lost, searched for with widened windows and tiles, and found again: the device decode (one vector a frame: the
    chosen anchor, the finiteness of the maps and the best anchor's score map) gives the host's boxes, scores and
    lost flags."""
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (240, 320, 3), np.uint8)
    host, dev, ops = _rpn_pair(lost, frame)
    states = []
    for i in range(70):
        cls, loc = _rpn_maps(rng, host.params, confident=(i // 12) % 3 != 1)
        host.search_crops(frame)
        searching = host._searching
        a = host.update_from_outputs(cls, loc)
        b = _decode_on_device(dev, ops, frame, cls, loc)
        np.testing.assert_allclose(b[0], a[0], atol=0.01, err_msg=f"frame {i}")
        assert abs(a[1] - b[1]) < 1e-4 and host.lost == dev.lost and host.search_zoom == dev.search_zoom
        states.append((dev.lost, searching))
    lost_flags, searched = zip(*states)
    assert any(lost_flags) and not all(lost_flags)
    if lost.enabled:
        assert any(searched) and any(not s for s in searched)


def test_siamrpn_device_decode_keeps_the_checks():
    """Shapes are refused before anything runs, and NaN or infinity after the one copy back, typed, with the
    outputs still pending; a vector of another length is refused."""
    rng = np.random.default_rng(8)
    frame = rng.integers(0, 256, (120, 160, 3), np.uint8)
    _, dev, ops = _rpn_pair(None, frame)
    _, request = dev.search_request(frame)
    request = ops.asarray(request)
    cls, loc = (torch.from_numpy(m) for m in _rpn_maps(rng, dev.params))
    with pytest.raises(InvalidArgumentError, match=r"cls must have shape \(1, 10, 25, 25\)"):
        dev.decode_on_device(cls[:, :4], loc, request)
    for bad in (float("nan"), float("inf")):
        broken = loc.clone()
        broken[0, 3, 2, 1] = bad
        with pytest.raises(InvalidArgumentError, match="NaN or infinity"):
            dev.update_from_device(dev.decode_on_device(cls, broken, request).numpy())
    with pytest.raises(InvalidArgumentError, match="a decoded SiamRPN frame is 635 values"):
        dev.update_from_device(np.zeros(9))
    box, score = dev.update_from_device(dev.decode_on_device(cls, loc, request).numpy())  # still pending
    assert np.all(np.isfinite(box)) and 0 <= score <= 1


def test_device_tracking_is_off_by_default_on_the_cpu_and_can_be_asked_for(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE_TRACKING, raising=False)
    assert TorchBackend().tracking_ops("cpu") is None
    assert isinstance(TorchBackend(device_tracking=True).tracking_ops("cpu"), TorchDeviceOps)
    monkeypatch.setenv(ENV_DEVICE_TRACKING, "1")
    assert isinstance(TorchBackend().tracking_ops("cpu"), TorchDeviceOps)
    assert TorchBackend(device_tracking=False).tracking_ops("cpu") is None
    with pytest.raises(InvalidArgumentError, match="device_tracking"):
        TorchBackend(device_tracking="yes")


def test_each_family_says_whether_the_device_path_pays_and_the_tracker_passes_it_on(bundles, monkeypatch):
    """The default follows the family (both gain from one CUDA graph a frame: measured on an H200); asking still
    wins."""
    asked = []

    def recording(self, device, pays=True):
        asked.append(pays)

    monkeypatch.setattr(TorchBackend, "tracking_ops", recording)
    Tracker(bundles["siamfc"], backend="torch", device="cpu")
    Tracker(bundles["siamrpn"], backend="torch", device="cpu")
    assert asked == [True, True]


@needs_cuda
def test_cuda_default_follows_the_family_unless_asked(monkeypatch):
    monkeypatch.delenv(ENV_DEVICE_TRACKING, raising=False)
    assert isinstance(TorchBackend().tracking_ops("cuda", pays=True), TorchDeviceOps)
    assert TorchBackend().tracking_ops("cuda", pays=False) is None
    assert isinstance(TorchBackend(device_tracking=True).tracking_ops("cuda", pays=False), TorchDeviceOps)
    monkeypatch.setenv(ENV_DEVICE_TRACKING, "1")
    assert isinstance(TorchBackend().tracking_ops("cuda", pays=False), TorchDeviceOps)


# -- Tracker ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from edgetrack.converters.torch2onnx import siamfc_bundle, siamrpn_bundle
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc
    from edgetrack.models.torch.siamrpn import build_siamrpn, save_siamrpn

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("device-tracking")
    torch.manual_seed(0)
    fc = save_siamfc(build_siamfc("siamfc-tiny").eval(), root / "fc.safetensors")
    rpn = save_siamrpn(build_siamrpn("siamrpn-tiny").eval(), root / "rpn.safetensors")
    return {"siamfc": siamfc_bundle(fc, root / "siamfc"), "siamrpn": siamrpn_bundle(rpn, root / "siamrpn"),
            "siamfc-templates": siamfc_bundle(fc, root / "siamfc-templates", scale_search="templates")}


def _long_frames(n=14):
    """moving_texture_frames, then the texture leaves the frame for a few frames (the lost search runs) and
    comes back: the frames near the border make crops that reach outside the frame."""
    frames, boxes = moving_texture_frames(8)
    # Not a blank frame: its response is flat, and a flat map's argmax is a tie that the last bit of the bicubic
    # sums (OpenCV's and torch's add in different orders) breaks either way.
    rng = np.random.default_rng(5)
    gone = cv2.GaussianBlur(rng.integers(60, 160, frames[0].shape, np.uint8), (0, 0), 1.5)
    frames = frames + [gone] * 3 + frames[-3:]
    return frames[:n], boxes


def _tracker(bundle, device):
    """A torch-backend Tracker on a test bundle. The untrained SiamFC's scale maps nearly tie, so SiamFC's scale
    penalty (not the default 1.0) keeps a one-grey-level crop difference (OpenCV 5's float positions against the
    device's) from flipping the chosen scale, and the tracks from parting."""
    fc = load_bundle(bundle).manifest.family == "siamfc"
    return Tracker(bundle, backend="torch", device=device, tracking={"scale_penalty": 0.9745} if fc else None)


def _assert_same_track(host, dev, frames, boxes, searching):
    """``host`` and ``dev`` give the same boxes (0.01 px), scores (1e-4) and lost flags over ``frames``; with
    ``searching`` both are sent into the lost state on the third frame (and must be lost somewhere).

    With an OpenCV that samples at float32 positions (OpenCV 5, the GPU machine's) the device crops are within one
    grey level of the host's, not equal, and the untrained nets' saturated maps nearly tie, so a peak may land one
    upsampled cell (about 0.25 px here) away and the tracks would then part: there each frame is compared from the
    same state (the host's, copied to the device tracker), boxes within 0.5 px and scores within 1e-3."""
    exact = opencv_rounds_positions()
    box_tol, score_tol = (0.01, 1e-4) if exact else (0.5, 1e-3)
    host.init(frames[0], boxes[0])
    dev.init(frames[0], boxes[0])
    lost = []
    for i, f in enumerate(frames[1:]):
        if searching and i == 2:
            host.logic._start_search()
            dev.logic._start_search()
        a, b = host.update(f), dev.update(f)
        np.testing.assert_allclose(a.box, b.box, atol=box_tol, err_msg=f"frame {i + 1}")
        assert abs(a.score - b.score) < score_tol and a.lost == b.lost
        lost.append(b.lost)
        if not exact:
            kept = {k: v for k, v in dev.logic.__dict__.items() if k in ("ops", "_device_cache")}
            dev.logic.__dict__.update(copy.deepcopy({k: v for k, v in host.logic.__dict__.items() if k not in kept}))
    assert any(lost) == searching


@pytest.mark.parametrize("searching", [False, True], ids=["tracking", "searching"])
@pytest.mark.parametrize("which", ["siamfc", "siamrpn", "siamfc-templates"])
def test_tracker_on_the_device_gives_the_host_boxes(bundles, which, searching, monkeypatch):
    """Tracking, and (sent into the lost state on the third frame: the untrained nets are too confident to get
    there themselves) searching for the target with windows over the frame."""
    frames, boxes = _long_frames()
    monkeypatch.setenv(ENV_DEVICE_TRACKING, "0")
    host = _tracker(bundles[which], "cpu")
    monkeypatch.setenv(ENV_DEVICE_TRACKING, "1")
    dev = _tracker(bundles[which], "cpu")
    assert not host.device_tracking and dev.device_tracking
    runs = {name: s.runs for name, s in dev._sessions.items()}
    _assert_same_track(host, dev, frames, boxes, searching)
    # Every frame ran as the frame program (eager on the CPU): the search and head sessions' own runs were not
    # used, and the decode's constants went to the device.
    assert dev._program.runs == len(frames) - 1 and dev._program.mode == "eager"
    assert all(dev._sessions[name].runs == runs[name] for name in ("search", "head"))
    assert dev.logic._device_cache[0] is dev.logic.ops


def test_device_program_follows_a_frame_of_another_size_and_a_new_target(bundles, monkeypatch):
    """A frame larger than the first and a second init (a new kernel) mid-stream: the device path gives the host
    path's boxes throughout. (On the CPU the program is eager; the GPU's static buffers are checked across a second
    init by the CUDA tracker test.)"""
    frames, boxes = _long_frames(6)
    big = [cv2.copyMakeBorder(f, 0, 40, 0, 60, cv2.BORDER_REFLECT) for f in frames]
    monkeypatch.setenv(ENV_DEVICE_TRACKING, "0")
    host = _tracker(bundles["siamfc"], "cpu")
    monkeypatch.setenv(ENV_DEVICE_TRACKING, "1")
    dev = _tracker(bundles["siamfc"], "cpu")
    _assert_same_track(host, dev, frames[:3] + big[3:], boxes, False)
    _assert_same_track(host, dev, big[2:], boxes[2:], False)


def test_onnxruntime_keeps_the_host_path(bundles):
    pytest.importorskip("onnxruntime")
    t = Tracker(bundles["siamrpn"], backend="onnxruntime", device="cpu")
    assert not t.device_tracking and t.logic.ops is None
    assert isinstance(t.logic.search_crops(moving_texture_frames(2)[0][1]) if t.logic.initialized else
                      np.zeros(1), np.ndarray)


# -- on a GPU (skipped elsewhere) -------------------------------------------------------------------------------------


@needs_cuda
def test_cuda_crops_equal_opencv():
    frame = _frames_of_kinds()["noise"]
    ops = TorchDeviceOps("cuda:0")
    rng = np.random.default_rng(4)
    for i in range(20):
        c, side, size = rng.uniform(-20, 180, 2), rng.uniform(8, 400), 255
        pad = mean_color(frame)
        got = ops.crops(frame, crop_affine(c, side, size)[None], size, pad)
        assert got.is_cuda
        _assert_opencvs_crops([(got[0].cpu().numpy(), crop_and_resize(frame, c, side, size, pad).transpose(2, 0, 1))])


@needs_cuda
def test_cuda_siamrpn_anchor_choice_is_the_same_as_numpys():
    _select_anchor_on("cuda:0")


@needs_cuda
@pytest.mark.parametrize("searching", [False, True], ids=["tracking", "searching"])
@pytest.mark.parametrize("which", ["siamfc", "siamrpn", "siamfc-templates"])
def test_cuda_tracker_on_the_device_gives_the_host_boxes(bundles, which, searching, monkeypatch):
    """Both trackers on the GPU (CUDA graphs from the second run, device feeds into them), IEEE fp32 convolutions,
    tracking and searching for the target."""
    frames, boxes = _long_frames()
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        monkeypatch.setenv(ENV_DEVICE_TRACKING, "0")
        host = _tracker(bundles[which], "cuda")
        monkeypatch.setenv(ENV_DEVICE_TRACKING, "1")
        dev = _tracker(bundles[which], "cuda")
        assert dev.device_tracking and not host.device_tracking
        _assert_same_track(host, dev, frames, boxes, searching)
        # One CUDA graph a frame: crops, search, head and decode; captured once, replayed after a second init.
        assert dev._program.mode == "cuda-graph" and dev._program.cuda_graph_error is None
        _assert_same_track(host, dev, frames[3:], boxes[3:], searching)
        assert dev._program.mode == "cuda-graph"
    finally:
        torch.backends.cudnn.allow_tf32 = before
