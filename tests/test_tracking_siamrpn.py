"""SiamRPN's framework-free tracking logic: anchors, decoding, the update on synthetic outputs, input checks."""
import math
import subprocess
import sys

import numpy as np
import pytest

from edgetrack.errors import InvalidArgumentError, TrackerStateError
from edgetrack.models.rpn_targets import anchor_iou, encode
from edgetrack.models.siamrpn_config import SIAMRPN_PRESETS
from edgetrack.tracking.crop import box_center
from edgetrack.tracking.siamrpn import SiamRPNParams, SiamRPNTracking, anchor_grid, anchor_shapes, decode


def test_anchor_shapes_are_pysots():
    shapes = anchor_shapes((0.33, 0.5, 1, 2, 3), (8,), 8)
    np.testing.assert_array_equal(shapes, [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]])
    assert anchor_shapes((1, 2), (4, 8), 8).tolist() == [[32, 32], [64, 64], [20, 40], [40, 80]]


@pytest.mark.parametrize("preset, size, first", [("siamrpn-eca", 25, 31.0), ("siamrpn-alexnet", 17, 63.0)])
def test_anchor_grid_centres_follow_the_score_map(preset, size, first):
    params = SIAMRPN_PRESETS[preset].tracking_params()
    assert params.score_size == size
    grid = anchor_grid(params)
    assert grid.shape == (4, 5, size, size)
    # Column c -> cx, row r -> cy; the centre cell lies on the crop's centre pixel 127, cells 8 px apart.
    np.testing.assert_array_equal(grid[0, 2, 0], first + 8 * np.arange(size))
    np.testing.assert_array_equal(grid[1, 2, :, 0], first + 8 * np.arange(size))
    assert grid[0, :, :, size // 2].max() == grid[0, :, :, size // 2].min() == 127
    assert np.all(grid[0].std(axis=1) == 0)  # cx does not depend on the row
    np.testing.assert_array_equal(grid[2:, :, 3, 4], anchor_shapes(params.anchor_ratios, params.anchor_scales, 8).T)


def test_decode_of_a_known_offset_gives_the_known_box():
    anchors = np.array([127.0, 127.0, 64.0, 32.0]).reshape(4, 1)
    deltas = np.array([0.5, -0.25, math.log(2), math.log(0.5)]).reshape(4, 1)
    np.testing.assert_allclose(decode(deltas, anchors)[:, 0], [159, 119, 128, 16])
    # encode (training) is its inverse; a box equal to an anchor has IoU 1 and zero offsets.
    box = (50.0, 60.0, 30.0, 70.0)
    grid = anchor_grid(SiamRPNParams())
    back = decode(encode(grid, box), grid)
    cx, cy = box_center(box)
    np.testing.assert_allclose(back[:, 1, 3, 7], [cx, cy, 30, 70], atol=1e-9)
    x0 = grid[:, 2, 12, 12]
    assert anchor_iou(grid, (x0[0] - (x0[2] - 1) / 2, x0[1] - (x0[3] - 1) / 2, x0[2], x0[3]))[2, 12, 12] == 1.0
    # Wild regression outputs stay finite.
    assert np.isfinite(decode(np.full((4, 1), 1e4), anchors)).all()


def _perfect_outputs(logic: SiamRPNTracking, true_box, frame_centre):
    """cls/loc a perfect network would give: the best anchor at the target's cell is certain and regresses exactly."""
    p = logic.params
    side = logic.search_side
    k = p.instance_size / side  # crop pixels per frame pixel
    half = (p.instance_size - 1) / 2
    cx, cy = box_center(true_box)
    w, h = true_box[2] * k, true_box[3] * k
    ccx, ccy = (cx - frame_centre[0]) * k + half, (cy - frame_centre[1]) * k + half
    crop_box = (ccx - (w - 1) / 2, ccy - (h - 1) / 2, w, h)
    grid = logic.anchors
    r = int(np.clip(round((ccy - grid[1, 0, 0, 0]) / p.total_stride), 0, p.score_size - 1))
    c = int(np.clip(round((ccx - grid[0, 0, 0, 0]) / p.total_stride), 0, p.score_size - 1))
    a = int(np.argmax(anchor_iou(grid, crop_box)[:, r, c]))
    n, na = p.score_size, p.num_anchors
    cls = np.zeros((2, na, n, n), np.float32)
    cls[0] = 10.0
    cls[1] = -10.0
    cls[:, a, r, c] = (-10.0, 10.0)
    loc = encode(grid, crop_box).astype(np.float32)
    return cls.reshape(1, 2 * na, n, n), loc.reshape(1, 4 * na, n, n)


def test_a_perfect_response_tracks_a_moving_box():
    logic = SiamRPNTracking(SiamRPNParams())
    frame = np.full((240, 320, 3), 90, np.uint8)
    box = np.array([40.0, 50.0, 30.0, 20.0])
    z = logic.init(frame, box)
    assert z.shape == (1, 3, 127, 127) and z.dtype == np.float32
    for i in range(1, 25):
        box = box + (5.0, 3.0, 0, 0) if i < 15 else box + (-7.0, 2.5, 0, 0)
        centre = box_center(logic.box)
        x = logic.search_crops(frame)
        assert x.shape == (1, 3, 255, 255) and x.dtype == np.float32
        got, score = logic.update_from_outputs(*_perfect_outputs(logic, box, centre))
        assert score > 0.99
        np.testing.assert_allclose(got, box, atol=1e-6)


def _track_constant_motion(motion: float, step=(6.0, -4.0), frames=12):
    """A perfect network on a box moving ``step`` a frame: (crop centre's lag behind the truth per frame, boxes
    right)."""
    logic = SiamRPNTracking(SiamRPNParams(motion=motion))
    frame = np.full((300, 400, 3), 90, np.uint8)
    box = np.array([100.0, 200.0, 30.0, 30.0])
    logic.init(frame, box)
    lags = []
    for _ in range(frames):
        box = box + (*step, 0, 0)
        logic.search_crops(frame)
        centre = box_center(logic.box)  # after search_crops: the crop's centre, the motion model's prediction
        lags.append(float(np.hypot(*(centre - box_center(box)))))
        got, _ = logic.update_from_outputs(*_perfect_outputs(logic, box, centre))
        np.testing.assert_allclose(got, box, atol=1e-6)
    return np.array(lags)


def test_the_motion_model_centres_the_search_where_the_target_is_going():
    still = _track_constant_motion(0.0)
    moving = _track_constant_motion(0.5)
    assert still == pytest.approx(np.hypot(6, 4))  # without it the crop lags one step behind every frame
    assert moving[0] == pytest.approx(np.hypot(6, 4))  # nothing is known of the motion at the first frame
    assert np.all(np.diff(moving) < 0) and moving[-1] < 0.01 * moving[0]  # halves every frame at 0.5
    assert _track_constant_motion(1.0)[1:] == pytest.approx(0.0, abs=1e-6)


def test_the_motion_model_forgets_its_velocity_when_the_target_is_lost():
    logic = SiamRPNTracking(SiamRPNParams(motion=1.0))
    frame = np.full((300, 400, 3), 90, np.uint8)
    box = np.array([100.0, 200.0, 30.0, 30.0])
    logic.init(frame, box)
    for _ in range(3):
        box = box + (6.0, 0, 0, 0)
        logic.search_crops(frame)
        logic.update_from_outputs(*_perfect_outputs(logic, box, box_center(logic.box)))
    assert logic._velocity == pytest.approx([6.0, 0.0])
    n, na = logic.params.score_size, logic.params.num_anchors
    unsure = np.zeros((1, 2 * na, n, n), np.float32)  # p = 0.5 everywhere, below the 0.5 threshold's tie
    unsure[0, :na] = 1.0
    while not logic.lost:
        logic.search_crops(frame)
        logic.update_from_outputs(unsure, np.zeros((1, 4 * na, n, n), np.float32))
    assert logic._velocity == pytest.approx([0.0, 0.0])


def test_a_size_change_is_followed_with_damping():
    p = SiamRPNParams()
    logic = SiamRPNTracking(p)
    frame = np.full((240, 320, 3), 90, np.uint8)
    logic.init(frame, (100, 100, 40, 40))
    true = np.array([100.0, 100.0, 48.0, 48.0])
    sizes = []
    for _ in range(12):
        centre = box_center(logic.box)
        logic.search_crops(frame)
        sizes.append(logic.update_from_outputs(*_perfect_outputs(logic, true, centre))[0][2])
    sizes = np.array(sizes)
    assert np.all(np.diff(sizes) > 0) and 40 < sizes[0] < 44 and abs(sizes[-1] - 48) < 1.0
    # The first step is lr · penalty · score of the way: the penalty for a 20 % scale change is below 1.
    assert sizes[0] - 40 < p.lr * 8 + 1e-9


def test_search_region_and_crops_follow_the_context_rule():
    logic = SiamRPNTracking()
    logic.init(np.zeros((100, 100, 3), np.uint8), (10, 20, 30, 10))
    assert logic.exemplar_side == pytest.approx(math.sqrt(50 * 30))
    assert logic.search_side == pytest.approx(logic.exemplar_side * 255 / 127)
    assert logic.initialized and not SiamRPNTracking().initialized


def test_bad_inputs_are_typed_errors():
    logic = SiamRPNTracking()
    frame = np.zeros((60, 80, 3), np.uint8)
    with pytest.raises(TrackerStateError, match="init"):
        logic.search_crops(frame)
    with pytest.raises(InvalidArgumentError, match="grayscale"):
        logic.init(frame[..., 0], (1, 1, 5, 5))
    with pytest.raises(InvalidArgumentError, match="width"):
        logic.init(frame, (1, 1, 0, 5))
    logic.init(frame, (10, 10, 20, 20))
    cls, loc = np.zeros((1, 10, 25, 25), np.float32), np.zeros((1, 20, 25, 25), np.float32)
    with pytest.raises(TrackerStateError, match="search_crops"):
        logic.update_from_outputs(cls, loc)
    logic.search_crops(frame)
    with pytest.raises(InvalidArgumentError, match=r"cls must have shape \(1, 10, 25, 25\)"):
        logic.update_from_outputs(np.zeros((1, 10, 17, 17)), loc)
    with pytest.raises(InvalidArgumentError, match="loc must have shape"):
        logic.update_from_outputs(cls, loc[:, :4])
    bad = loc.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        logic.update_from_outputs(cls, bad)
    # A failed call leaves the crop pending; the right outputs (batch axis optional) still work.
    box, score = logic.update_from_outputs(cls[0], loc[0])
    assert score == pytest.approx(0.5) and np.isfinite(box).all()
    with pytest.raises(InvalidArgumentError, match="SiamRPNParams"):
        SiamRPNTracking("fast")


@pytest.mark.parametrize("kwargs, match", [
    ({"score_size": 40}, "spans"),
    ({"lr": 1.5}, "lr"),
    ({"anchor_ratios": ()}, "anchor_ratios"),
    ({"anchor_scales": (8, -1)}, "anchor_scales"),
    ({"total_stride": 0}, "total_stride"),
    ({"min_scale": 2.0}, "min_scale"),
    ({"motion": 1.5}, "motion"),
    ({"motion": -0.1}, "motion"),
])
def test_params_are_validated(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        SiamRPNParams(**kwargs)


def test_the_runtime_module_imports_no_framework():
    code = ("import sys, edgetrack.tracking.siamrpn, edgetrack.models.siamrpn_config, edgetrack.models.rpn_targets\n"
            "bad = [m for m in ('torch', 'mindspore', 'onnx', 'onnxruntime') if m in sys.modules]\n"
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
