"""The framework-free tracking logic: exact crops, input checks, and SiamFC's decode of response maps."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgetrack.errors import InvalidArgumentError, TrackerStateError
from edgetrack.tracking import (
    SiamFCParams,
    SiamFCTracking,
    box_center,
    check_box,
    check_frame,
    context_size,
    crop_and_resize,
    reaches_outside,
    mean_color,
)


def _ramp_frame(h=120, w=200):
    """Channel 0 = x, channel 1 = y, channel 2 = 7: bilinear sampling of it returns the sample position itself."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.dstack([xs, ys, np.full_like(xs, 7)]).astype(np.uint8)


# -- crops ---------------------------------------------------------------------------------------------------------
def test_context_size_is_eq_11():
    w, h = 40.0, 20.0
    p = (w + h) / 4  # the paper's p
    assert context_size(w, h) == pytest.approx(np.sqrt((w + 2 * p) * (h + 2 * p)))
    assert context_size(w, h, context=0.0) == pytest.approx(np.sqrt(w * h))
    with pytest.raises(InvalidArgumentError):
        context_size(0, 10)


def test_box_center_convention():
    # A 1×1 box at (5, 7) is pixel (5, 7) itself; a 4-wide box starting at 0 is centred between pixels 1 and 2.
    assert box_center((5, 7, 1, 1)).tolist() == [5.0, 7.0]
    assert box_center((0, 0, 4, 2)).tolist() == [1.5, 0.5]


@pytest.mark.parametrize("center", [(100.0, 60.0), (73.25, 55.75), (120.6, 50.1)])
@pytest.mark.parametrize("size,out", [(63.0, 63), (31.5, 63), (90.0, 45)])
def test_crop_samples_the_exact_subpixel_positions(center, size, out):
    frame = _ramp_frame()
    crop = crop_and_resize(frame, center, size, out, pad_color=(0, 0, 0)).astype(np.float64)
    u = np.arange(out)
    expected = center[0] + (u - (out - 1) / 2) * size / out
    expected_y = center[1] + (u - (out - 1) / 2) * size / out
    # OpenCV interpolates at 1/32 pixel and rounds to uint8: at most ~0.53 off.
    assert np.abs(crop[:, :, 0] - expected[None, :]).max() <= 0.6
    assert np.abs(crop[:, :, 1] - expected_y[:, None]).max() <= 0.6
    assert np.all(crop[:, :, 2] == 7)


def test_crop_centre_pixel_lands_in_the_middle():
    frame = np.zeros((50, 60, 3), np.uint8)
    frame[20, 33] = (255, 128, 64)
    crop = crop_and_resize(frame, (33, 20), 15, 15, pad_color=(0, 0, 0))
    assert crop[7, 7].tolist() == [255, 128, 64]
    assert crop.sum() == 255 + 128 + 64  # only that pixel: size == out_size is a pure shift


def test_crop_pads_outside_the_frame_with_the_mean_colour():
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[:, :20] = (200, 100, 50)
    mean = mean_color(frame)
    assert mean == pytest.approx((100, 50, 25))
    # Centred on the top-left corner: the upper-left quarter of the crop lies outside the frame.
    crop = crop_and_resize(frame, (0, 0), 20, 20)
    assert crop[:9, :9].reshape(-1, 3).tolist() == [[100, 50, 25]] * 81
    assert crop[12:, 12:].reshape(-1, 3).tolist() == [[200, 100, 50]] * 64
    # Entirely outside: every pixel is the padding colour.
    far = crop_and_resize(frame, (500, -300), 30, 16, pad_color=(1, 2, 3))
    assert far.reshape(-1, 3).tolist() == [[1, 2, 3]] * 256


def test_crops_inside_the_frame_never_read_the_padding_colour():
    """The frame's mean colour is computed only for crops that reach outside (reaches_outside): for every other crop
    the padding colour must not change a single pixel, also at sub-pixel centres right at the margin."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    inside = outside = 0
    for _ in range(400):
        out = int(rng.integers(5, 40))
        size = float(rng.uniform(4, 70))
        center = rng.uniform(-5, 85), rng.uniform(-5, 65)
        black = crop_and_resize(frame, center, size, out, pad_color=(0, 0, 0))
        white = crop_and_resize(frame, center, size, out, pad_color=(255, 255, 255))
        if not reaches_outside(frame.shape, center, size, out):
            inside += 1
            assert np.array_equal(black, white), (center, size, out)
            assert np.array_equal(black, crop_and_resize(frame, center, size, out))  # default: no mean needed
        else:
            outside += 1
            assert np.array_equal(crop_and_resize(frame, center, size, out),
                                  crop_and_resize(frame, center, size, out, pad_color=mean_color(frame)))
    assert inside > 50 and outside > 50
    # The margin is one pixel: samples spanning rows 1..58 of a 60-row frame are inside, a tenth of a pixel more not.
    assert not reaches_outside((60, 80, 3), (39.5, 29.5), 2 * 28.5 * 11 / 10, 11)
    assert reaches_outside((60, 80, 3), (39.5, 29.5), 2 * 28.6 * 11 / 10, 11)


def test_crop_rejects_bad_geometry():
    frame = _ramp_frame()
    for size in (0, -3, float("nan")):
        with pytest.raises(InvalidArgumentError):
            crop_and_resize(frame, (10, 10), size, 15)
    with pytest.raises(InvalidArgumentError):
        crop_and_resize(frame, (float("nan"), 10), 10, 15)
    with pytest.raises(InvalidArgumentError):
        crop_and_resize(frame, (10, 10), 10, 0)


# -- input checks --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame,words",
    [
        (None, "None"),
        ([[1, 2, 3]], "numpy array"),
        (np.zeros((10, 10), np.uint8), "grayscale"),
        (np.zeros((10, 10, 1), np.uint8), "grayscale"),
        (np.zeros((10, 10, 4), np.uint8), r"\(10, 10, 4\)(.|\n)*BGRA2BGR"),
        (np.zeros((10, 10, 3), np.float32), "uint8.*float32"),
        (np.zeros((10, 10, 3), np.uint16), "uint8.*uint16(.|\n)*>> 8"),
        (np.zeros((10, 10, 3), np.int64), "uint8.*int64"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((0, 0, 3), np.uint8), r"empty \(shape \(0, 0, 3\)\)"),
    ],
)
def test_bad_frames_are_named(frame, words):
    with pytest.raises(InvalidArgumentError, match=words):
        check_frame(frame)


@pytest.mark.parametrize(
    "box,words",
    [
        (None, "None"),
        ((1, 2, 3), "four numbers"),
        ((1, 2, 0, 5), "must be > 0"),
        ((1, 2, 5, -1), "must be > 0"),
        ((1, float("nan"), 5, 5), "NaN"),
        ((1, 2, float("inf"), 5), "NaN or infinity"),
        ("abcd", "four numbers"),
    ],
)
def test_bad_boxes_are_named(box, words):
    with pytest.raises(InvalidArgumentError, match=words):
        check_box(box)


def test_good_box_comes_back_as_float64():
    assert check_box([1, 2, 3, 4]).dtype == np.float64


@pytest.mark.parametrize(
    "box,words",
    [
        ((100, 2, 5, 5), "(100.0, 2.0, 5.0, 5.0) lies entirely outside the 60×40 frame"),
        ((-5, 2, 5, 5), "lies entirely outside"),  # ends exactly at the border: no pixel inside
        ((2, 2, 241, 5), "is more than 4× the 60×40 frame"),
    ],
)
def test_boxes_are_checked_against_the_frame(box, words):
    with pytest.raises(InvalidArgumentError) as info:
        check_box(box, frame_shape=(40, 60, 3))
    assert words in str(info.value)


def test_boxes_past_the_border_or_larger_than_the_frame_are_kept():
    for box in [(-4, -4, 5, 5), (55, 35, 20, 20), (-30, -20, 120, 80), (0, 0, 240, 160)]:
        assert check_box(box, frame_shape=(40, 60, 3)).tolist() == list(box)


def test_non_contiguous_frames_give_the_crops_of_their_contiguous_copies():
    frame = _ramp_frame(120, 200)
    views = [np.pad(frame, ((3, 3), (5, 5), (0, 0)))[3:-3, 5:-5], np.ascontiguousarray(frame[..., ::-1])[..., ::-1]]
    t, u = SiamFCTracking(), SiamFCTracking()
    for view in views:
        assert not view.flags.c_contiguous and check_frame(view) is view  # accepted as is, no copy
        np.testing.assert_array_equal(t.init(view, (90, 50, 20, 16)), u.init(frame, (90, 50, 20, 16)))
        np.testing.assert_array_equal(t.search_crops(view), u.search_crops(frame))


# -- parameters ----------------------------------------------------------------------------------------------------
def test_params_validate_themselves():
    assert SiamFCParams().upscaled_size == 272
    assert SiamFCParams().scale_factors == pytest.approx([1 / 1.0375, 1.0, 1.0375])
    with pytest.raises(InvalidArgumentError, match="odd"):
        SiamFCParams(scale_num=2)
    with pytest.raises(InvalidArgumentError, match="response"):
        SiamFCParams(response_size=15)
    with pytest.raises(InvalidArgumentError):
        SiamFCParams(scale_lr=1.5)
    with pytest.raises(InvalidArgumentError):
        SiamFCParams(exemplar_size=0)
    with pytest.raises(InvalidArgumentError, match=r"motion must be in \[0, 1\], got 2"):
        SiamFCParams(motion=2)
    with pytest.raises(InvalidArgumentError, match="templates'\], got 'pyramid'"):
        SiamFCParams(scale_search="pyramid")
    assert (SiamFCParams().search_batch, SiamFCParams().template_batch) == (3, 1)
    templates = SiamFCParams(scale_search="templates")
    assert (templates.search_batch, templates.template_batch) == (1, 3)


# -- the tracking procedure ----------------------------------------------------------------------------------------
FRAME = np.full((300, 400, 3), 90, np.uint8)
BOX = (180.0, 130.0, 40.0, 40.0)  # centre (199.5, 149.5); exemplar side 80, search side 80·255/127


def _peak(scale_num=3, scale=1, row=8, col=8, value=10.0):
    r = np.zeros((scale_num, 17, 17), np.float32)
    r[scale, row, col] = value
    return r


def test_init_and_search_crops_shapes_and_convention():
    t = SiamFCTracking()
    z = t.init(FRAME, BOX)
    assert z.shape == (1, 3, 127, 127) and z.dtype == np.float32 and z.flags.c_contiguous
    assert np.all(z == 90.0)  # 0..255, not normalised
    x = t.search_crops(FRAME)
    assert x.shape == (3, 3, 255, 255) and x.dtype == np.float32
    assert t.exemplar_side == pytest.approx(80.0)
    assert t.search_side == pytest.approx(80.0 * 255 / 127)


def test_template_crop_is_centred_on_the_box():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[149:151, 199:201] = 255  # the 2×2 block around the box centre (199.5, 149.5)
    z = SiamFCTracking().init(frame, BOX)[0, 0]
    ys, xs = np.nonzero(z > 0)
    assert ys.mean() == pytest.approx(63, abs=0.01) and xs.mean() == pytest.approx(63, abs=0.01)


@pytest.mark.parametrize("row,col", [(8, 10), (5, 8), (12, 3)])
def test_peak_offset_moves_the_box_by_the_expected_amount(row, col):
    t = SiamFCTracking(SiamFCParams(window_influence=0.0))
    t.init(FRAME, BOX)
    t.search_crops(FRAME)
    side = t.search_side
    box, score = t.update_from_responses(_peak(row=row, col=col))
    # One response cell is 8 instance pixels; one instance pixel is side/255 frame pixels.
    expected = np.array([199.5 + (col - 8) * 8 * side / 255, 149.5 + (row - 8) * 8 * side / 255])
    tol = 8 / 16 * side / 255  # one upsampled cell
    assert np.abs(box_center(box) - expected).max() <= tol
    assert box[2:].tolist() == [40.0, 40.0]  # centre scale: no size change
    assert score == pytest.approx(1 / (1 + np.exp(-10.0)), rel=0.05)


@pytest.mark.parametrize("scale_search", ["crops", "templates"])
def test_the_motion_model_moves_the_crops_ahead_of_a_moving_target(scale_search):
    # A peak two cells right of the crop's centre every frame: the target moves 16 crop pixels a frame. With the
    # motion model the crop follows (its centre leads), so the peak comes to the centre cell.
    t = SiamFCTracking(SiamFCParams(motion=1.0, window_influence=0.0, scale_search=scale_search))
    t.init(FRAME, BOX)
    step = 2 * 8 * t.search_side / 255
    t.search_crops(FRAME)
    box, _ = t.update_from_responses(_peak(col=10))
    assert box_center(box)[0] == pytest.approx(199.5 + step, abs=0.3)
    t.search_crops(FRAME)
    assert box_center(t.box)[0] == pytest.approx(199.5 + 2 * step, abs=0.6)  # the crops are placed ahead
    box, _ = t.update_from_responses(_peak(col=8))  # the target is where the motion model said
    assert box_center(box)[0] == pytest.approx(199.5 + 2 * step, abs=0.6)
    still = SiamFCTracking(SiamFCParams(window_influence=0.0, scale_search=scale_search))
    still.init(FRAME, BOX)
    for _ in range(2):
        still.search_crops(FRAME)
        box, _ = still.update_from_responses(_peak(col=10))
    assert box_center(box)[0] == pytest.approx(199.5 + 2 * step, abs=0.6)  # the same place, peak off-centre


def test_cosine_window_prefers_the_centre_between_equal_peaks():
    t = SiamFCTracking()
    t.init(FRAME, BOX)
    t.search_crops(FRAME)
    r = _peak()
    r[1, 8, 14] = 10.0
    box, _ = t.update_from_responses(r)
    assert np.abs(box_center(box) - [199.5, 149.5]).max() < 0.5


def test_best_scale_changes_the_size_with_damping_and_penalty():
    p = SiamFCParams(scale_penalty=0.9745)  # SiamFC's (the default is 1.0: no penalty)
    t = SiamFCTracking(p)
    t.init(FRAME, BOX)
    t.search_crops(FRAME)
    r = _peak(scale=2, value=10.0)
    r[1, 8, 8] = 5.0
    box, _ = t.update_from_responses(r)
    grow = (1 - p.scale_lr) + p.scale_lr * p.scale_step
    assert box[2:] == pytest.approx([40 * grow, 40 * grow])
    assert t.search_side == pytest.approx(80 * grow * 255 / 127)
    # A bigger scale whose peak is higher by less than the penalty loses to the centre scale.
    t.search_crops(FRAME)
    r = _peak(scale=2, value=10.0)
    r[1, 8, 8] = 9.9
    box2, _ = t.update_from_responses(r)
    assert box2[2:] == pytest.approx(box[2:])


def test_centre_and_size_stay_bounded():
    t = SiamFCTracking(SiamFCParams(window_influence=0.0))
    t.init(FRAME, (380.0, 10.0, 15.0, 15.0))
    for _ in range(60):
        t.search_crops(FRAME)
        t.update_from_responses(_peak(scale=2, row=0, col=16))
    cx, cy = box_center(t.box)
    assert 0 <= cx <= 399 and 0 <= cy <= 299
    assert t.box[2] <= 15 * 5.0 + 1e-9


# -- scale_search="templates": one search crop, a template per scale ---------------------------------------------------
TEMPLATES = SiamFCParams(window_influence=0.0, scale_search="templates")


def test_templates_are_cut_per_scale_around_the_box_and_the_search_is_one_crop():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[120:180, 170:230] = 200  # a 60×60 square around the box centre (199.5, 149.5)
    t, c = SiamFCTracking(TEMPLATES), SiamFCTracking(SiamFCParams(window_influence=0.0))
    z, zc = t.init(frame, BOX), c.init(frame, BOX)
    assert z.shape == (3, 3, 127, 127) and z.dtype == np.float32
    np.testing.assert_array_equal(z[1:2], zc)  # the centre scale's template is the one template
    # Template k is cut 1/k as wide: the square looks k times as large in it.
    widths = [(zi[0, 63] > 100).sum() for zi in z]
    for w, f in zip(widths, TEMPLATES.scale_factors):
        assert w == pytest.approx(widths[1] * f, abs=1.01)
    x = t.search_crops(frame)
    assert x.shape == (1, 3, 255, 255) and t.crop_layout == (1, 255)
    np.testing.assert_array_equal(x[0], c.search_crops(frame)[1])  # the crops mode's centre scale
    one = SiamFCTracking(SiamFCParams(scale_num=1, scale_search="templates"))
    assert one.init(frame, BOX).shape == (1, 3, 127, 127) and one.search_crops(frame).shape == (1, 3, 255, 255)


def test_templates_move_by_the_one_crop_and_grow_by_the_chosen_template():
    t = SiamFCTracking(TEMPLATES)
    t.init(FRAME, BOX)
    side = t.search_side
    t.search_crops(FRAME)
    box, _ = t.update_from_responses(_peak(scale=2, row=8, col=12))
    # The displacement is read in the one crop, of the tracked size, whichever template won.
    assert box_center(box)[0] == pytest.approx(199.5 + 4 * 8 * side / 255, abs=8 / 16 * side / 255)
    grow = (1 - TEMPLATES.scale_lr) + TEMPLATES.scale_lr * TEMPLATES.scale_step
    assert box[2:] == pytest.approx([40 * grow, 40 * grow])


def test_templates_search_one_window_a_frame_while_lost():
    t = SiamFCTracking(TEMPLATES)
    t.init(FRAME, BOX)
    t._start_search()
    seen = []
    for _ in range(4):
        x = t.search_crops(FRAME)
        assert x.shape == (1, 3, 255, 255) and len(t._windows) == 1
        seen.append(t._windows[0].copy())
        t.update_from_responses(np.full((3, 17, 17), -5.0, np.float32))  # nothing found
        assert t.lost
    # The anchor and the tiles take turns.
    assert np.allclose(seen[0], [199.5, 149.5]) and not np.allclose(seen[1], seen[0])


def test_protocol_errors():
    t = SiamFCTracking()
    with pytest.raises(TrackerStateError):
        t.search_crops(FRAME)
    with pytest.raises(TrackerStateError):
        _ = t.box
    t.init(FRAME, BOX)
    with pytest.raises(TrackerStateError, match="search_crops"):
        t.update_from_responses(_peak())
    t.search_crops(FRAME)
    with pytest.raises(InvalidArgumentError, match="shape"):
        t.update_from_responses(np.zeros((3, 15, 15)))
    bad = _peak()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        t.update_from_responses(bad)
    t.update_from_responses(_peak()[:, None])  # (3, 1, 17, 17) is accepted
    with pytest.raises(InvalidArgumentError, match="grayscale"):
        t.init(FRAME[:, :, 0], BOX)
    with pytest.raises(InvalidArgumentError, match="width"):
        t.init(FRAME, (1, 1, 0, 4))


def test_tracking_logic_imports_without_any_framework():
    code = textwrap.dedent(
        """
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"torch", "mindspore", "onnx", "safetensors"}:
                    raise ImportError(name + " is blocked")
                return None
        sys.meta_path.insert(0, _Block())
        import edgetrack.tracking
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
