"""Losing the target and finding it again (SiamFCTracking's LostParams), without a trained network.

Two kinds of test. The state machine is driven with response maps built by hand (a sharp peak, a flat map, a peak
in a far search window) and its search windows are read back from the crops of a ramp frame whose pixels hold
their own coordinates. The full-occlusion test replaces the network by normalised cross-correlation of the crops
(``cv2.matchTemplate``), which responds to the target where a randomly initialised network would respond to
nothing in particular: a textured target moves, is covered by a plate, and reappears far outside the search region.
"""
import functools
import math

import cv2
import numpy as np
import pytest

from edgetrack.errors import InvalidArgumentError
from edgetrack.tracking import LostParams, SiamFCParams, SiamFCTracking, box_center

P = SiamFCParams()
MID = P.response_size // 2  # the response cell of "no displacement"


def _ramp_frame(w=240, h=180):
    """Channel 0 = x, channel 1 = y: a crop's centre pixel holds the centre of the window it was cut from."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.dstack([xs, ys, np.full_like(xs, 7)]).astype(np.uint8)


RAMP = _ramp_frame()
BOX = (100.0, 80.0, 20.0, 20.0)  # centre (109.5, 89.5); exemplar side 40, search side ~80


def _centres(crops):
    """Window centres (x, y) of a batch of search crops cut from RAMP (bilinear: within 0.6 px)."""
    c = (P.instance_size - 1) // 2
    return crops[:, :2, c, c].astype(np.float64)


def _flat(value=-3.0, n=P.scale_num):
    return np.full((n, P.response_size, P.response_size), value, np.float32)


def _peak(slot=1, row=MID, col=MID, value=8.0, n=P.scale_num, noise=0.0, seed=0):
    r = np.random.default_rng(seed).normal(0, noise, (n, P.response_size, P.response_size)).astype(np.float32) - 2
    r[slot, row, col] = value
    return r


def _step(logic, responses, frame=RAMP):
    crops = logic.search_crops(frame)
    box, score = logic.update_from_responses(responses)
    return crops, box, score


def _lose(logic, frames=None):
    """Drive a fresh track into the lost state with flat maps; returns the crops of the first search frame."""
    for _ in range(frames or logic.lost_params.lost_after):
        _step(logic, _flat())
    assert logic.lost
    return logic.search_crops(RAMP)


# -- the state machine on hand-made maps ---------------------------------------------------------------------------
def test_lost_params_validate_themselves():
    assert LostParams() == LostParams(True, None, None, 3, 2, 0.0, True)
    # None: the family's default, for SiamFC the sigmoid's decision boundary and 0.4 of the usual sharpness.
    assert SiamFCTracking(P).lost_params == LostParams(True, 0.5, 0.4, 3, 2, 0.0, True)
    for kwargs, words in [
        ({"lost_after": 0}, "lost_after"),
        ({"recover_after": 1.5}, "recover_after"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"apce_ratio": -0.1}, "apce_ratio"),
        ({"search_window_influence": float("nan")}, "search_window_influence"),
        ({"enabled": "yes"}, "enabled"),
    ]:
        with pytest.raises(InvalidArgumentError, match=words):
            LostParams(**kwargs)
    with pytest.raises(InvalidArgumentError, match="LostParams"):
        SiamFCTracking(P, lost={"lost_after": 3})


def test_confident_tracking_is_plain_siamfc():
    """On maps with one sharp peak the recovery logic changes nothing: same boxes, never lost."""
    rng = np.random.default_rng(1)
    on, off = SiamFCTracking(P, LostParams()), SiamFCTracking(P, LostParams(enabled=False))
    for t in (on, off):
        t.init(RAMP, BOX)
    for i in range(12):
        r = _peak(slot=int(rng.integers(3)), row=int(rng.integers(5, 12)), col=int(rng.integers(5, 12)), noise=0.5,
                  seed=i)
        (_, box_on, s_on), (_, box_off, s_off) = _step(on, r), _step(off, r)
        np.testing.assert_array_equal(box_on, box_off)
        assert s_on == s_off and not on.lost and not off.lost


def test_one_unconfident_frame_is_not_a_loss_and_does_not_change_the_size():
    t = SiamFCTracking(P)
    t.init(RAMP, BOX)
    _step(t, _peak())
    r = _flat(-1.0)
    r[2, MID, MID] = -0.01  # the biggest scale wins, with a score a hair under 0.5: unconfident
    _, box, score = _step(t, r)
    assert score < 0.5 and not t.lost and box[2:].tolist() == [20.0, 20.0]
    _, box, _ = _step(t, _peak(slot=2))
    assert not t.lost and box[2] > 20.0  # confident again: the size follows the scale as usual


def test_lost_after_n_unconfident_frames_and_back_to_the_last_confident_box():
    t = SiamFCTracking(P, LostParams(lost_after=4))
    t.init(RAMP, BOX)
    _, anchor, _ = _step(t, _peak(row=MID + 2))  # confident: moves down, becomes the anchor
    for i in range(3):
        _, box, _ = _step(t, _peak(row=MID + 4, value=-0.5))  # unconfident peaks still move the track
        assert not t.lost
    assert box[1] > anchor[1] + 5
    _, box, _ = _step(t, _peak(row=MID + 4, value=-0.5))
    assert t.lost
    np.testing.assert_allclose(box, anchor)  # the doubtful frames' drift is undone


def test_a_flat_map_is_unconfident_even_with_a_high_score():
    """APCE: after sharp peaks, a map high everywhere (an occluder exciting every position) is not confident."""
    def run(lost):
        t = SiamFCTracking(P, lost)
        t.init(RAMP, BOX)
        for i in range(3):
            _step(t, _peak(noise=0.3, seed=i))
        plateau = np.random.default_rng(9).normal(3.0, 0.05, (3, 17, 17)).astype(np.float32)
        scores = [_step(t, plateau)[2] for _ in range(3)]
        return t.lost, min(scores)

    lost, score = run(LostParams())
    assert lost and score > 0.9
    lost, _ = run(LostParams(apce_ratio=0.0))
    assert not lost


def test_a_target_back_with_a_blunter_peak_is_not_locked_out():
    t = SiamFCTracking(P)
    t.init(RAMP, BOX)
    for i in range(3):
        _step(t, _peak(noise=0.3, seed=i))
    yy, xx = np.mgrid[: P.response_size, : P.response_size]
    blob = -2 + 10 * np.exp(-((yy - MID) ** 2 + (xx - MID) ** 2) / (2 * 2.5**2))
    blunt = np.repeat(blob[None], P.scale_num, axis=0).astype(np.float32)  # score ~1, a sixth of the sharpness
    frames = 0
    while frames < 3 or t.lost:
        _step(t, blunt)
        frames += 1
        assert frames < 100, "never re-acquired"
    assert frames > 30  # at first the blunt peak is refused, then the demand relaxes


def test_search_windows_start_at_the_anchor_and_cover_the_frame_nearest_first():
    t = SiamFCTracking(P)
    t.init(RAMP, BOX)
    anchor = box_center(BOX)
    reach = (P.response_size - 1) * P.total_stride / P.instance_size * t.search_side  # one map's span of centres
    first = _centres(_lose(t))
    t.update_from_responses(_flat())
    np.testing.assert_allclose(first[0], anchor, atol=0.6)
    seen, dist = [first], [np.hypot(*(first[1:] - anchor).T)]
    for _ in range(40):
        c = _centres(_step(t, _flat())[0])
        np.testing.assert_allclose(c[0], anchor, atol=0.6)  # the anchor is watched in every frame
        seen.append(c)
        dist.append(np.hypot(*(c[1:] - anchor).T))
    d = np.concatenate(dist)
    n_tiles = int(np.argmax(d[1:] < d[:-1] - 1)) + 1  # where the sweep wraps around to the nearest tile
    assert np.all(np.diff(d[:n_tiles]) >= -1.0)  # nearest first
    assert n_tiles <= 2 * math.ceil(RAMP.shape[1] / (0.8 * reach)) * math.ceil(RAMP.shape[0] / (0.8 * reach))
    # Every frame position is within half a span of some window's centre, so a peak there can be seen.
    windows = np.vstack(seen)
    ys, xs = np.mgrid[0:RAMP.shape[0]:7, 0:RAMP.shape[1]:7]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    gap = np.abs(points[:, None] - windows[None]).max(axis=2).min(axis=1)
    assert gap.max() <= reach / 2
    assert t.lost and t.box[2:].tolist() == [20.0, 20.0]  # size frozen while searching


def test_recovery_at_a_far_peak_needs_two_agreeing_frames():
    t = SiamFCTracking(P)
    t.init(RAMP, BOX)
    anchor = box_center(BOX)
    _lose(t)
    t.update_from_responses(_flat())
    for _ in range(30):  # sweep until the last window is outside the normal search crop altogether
        far = _centres(t.search_crops(RAMP))[2]
        if np.hypot(*(far - anchor)) > t.search_side / 2:
            break
        t.update_from_responses(_flat())
    else:
        pytest.fail("the search never reached beyond the normal search crop")
    _, score = t.update_from_responses(_peak(slot=2))
    assert t.lost and score > 0.99  # a candidate, not yet a recovery
    candidate = box_center(t.box)
    np.testing.assert_allclose(candidate, far, atol=0.6)
    crops, box, _ = _step(t, _peak(slot=0, row=MID, col=MID + 1))
    np.testing.assert_allclose(_centres(crops)[0], candidate, atol=0.6)  # the candidate is looked at again
    assert not t.lost
    one_cell = P.total_stride * t.search_side / P.instance_size
    np.testing.assert_allclose(box_center(box), candidate + [one_cell, 0], atol=0.2)
    # Back to normal tracking: the crops are the scale pyramid around the recovered centre.
    crops = t.search_crops(RAMP)
    np.testing.assert_allclose(_centres(crops), [box_center(box)] * 3, atol=0.6)


def test_a_single_confident_flash_does_not_end_the_search():
    t = SiamFCTracking(P)
    t.init(RAMP, BOX)
    _lose(t)
    t.update_from_responses(_flat())
    _step(t, _peak(slot=1))
    assert t.lost
    _, box, _ = _step(t, _flat())
    assert t.lost
    np.testing.assert_allclose(box, BOX)  # the candidate is dropped: back to the anchor


def test_recover_after_one_frame_and_a_global_search_that_is_off():
    t = SiamFCTracking(P, LostParams(recover_after=1))
    t.init(RAMP, BOX)
    _lose(t)
    t.update_from_responses(_flat())
    _step(t, _peak(slot=1))
    assert not t.lost
    local = SiamFCTracking(P, LostParams(global_search=False))
    local.init(RAMP, BOX)
    np.testing.assert_allclose(_centres(_lose(local)), [box_center(BOX)] * 3, atol=0.6)


def test_disabled_recovery_is_the_per_frame_score_test():
    t = SiamFCTracking(P, LostParams(enabled=False, score_threshold=0.7))
    t.init(RAMP, BOX)
    for value, lost in [(2.0, False), (0.5, True), (-3.0, True), (-3.0, True), (-3.0, True), (1.0, False)]:
        r = _flat(-5.0)
        r[1, MID, MID] = value
        _step(t, r)
        assert t.lost == lost


def test_one_scale_alternates_between_the_anchor_and_the_tiles():
    p1 = SiamFCParams(scale_num=1)
    t = SiamFCTracking(p1)
    t.init(RAMP, BOX)
    anchor = box_center(BOX)
    for _ in range(3):
        t.search_crops(RAMP)
        t.update_from_responses(_flat(n=1))
    assert t.lost
    c = [_centres(_step(t, _flat(n=1))[0])[0] for _ in range(5)]
    for k in (0, 2, 4):
        np.testing.assert_allclose(c[k], anchor, atol=0.6)
    assert np.hypot(*(c[1] - anchor)) > 5 and np.hypot(*(c[3] - anchor)) > 5 and not np.allclose(c[1], c[3])
    # A confident peak in a tile window is then watched every frame until it is confirmed.
    tile = _centres(t.search_crops(RAMP))[0]
    assert np.hypot(*(tile - anchor)) > 5
    t.update_from_responses(_peak(slot=0, n=1))
    candidate = box_center(t.box)
    np.testing.assert_allclose(candidate, tile, atol=0.6)
    crops, box, _ = _step(t, _peak(slot=0, n=1))
    np.testing.assert_allclose(_centres(crops)[0], candidate, atol=0.6)
    assert not t.lost


def test_a_smaller_frame_while_lost_moves_the_windows_inside_it():
    t = SiamFCTracking(P)
    t.init(RAMP, (200.0, 150.0, 20.0, 20.0))
    _lose(t)
    t.update_from_responses(_flat())
    small = np.ascontiguousarray(RAMP[:100, :120])
    for _ in range(6):
        crops, box, _ = _step(t, _flat(), frame=small)
        c = _centres(crops)
        assert np.all(c[:, 0] <= 119.6) and np.all(c[:, 1] <= 99.6)
        cx, cy = box_center(box)
        assert 0 <= cx <= 119 and 0 <= cy <= 99


def test_init_again_resets_the_lost_state():
    t = SiamFCTracking(P)
    t.init(RAMP, BOX)
    _lose(t)
    t.update_from_responses(_flat())
    assert t.lost
    t.init(RAMP, (30.0, 40.0, 16.0, 12.0))
    assert not t.lost
    crops = t.search_crops(RAMP)
    np.testing.assert_allclose(_centres(crops), [box_center((30, 40, 16, 12))] * 3, atol=0.6)
    t.update_from_responses(_flat())  # one unconfident frame after a fresh init: not lost yet
    assert not t.lost


# -- full occlusion, with normalised cross-correlation standing in for the network ---------------------------------
W, H, T = 192, 144, 32  # frame and target sides: the search crop (~128 px) sees a third of the frame
OCCLUDED = range(12, 22)  # frames where a plate covers the target completely
N = 36


REAPPEAR = [(140, 96), (150, 8), (6, 100)]  # top-left corners, 80-120 px from where the target vanished


def occlusion_scene(reappear=REAPPEAR[0], seed=3):
    """Frames and true boxes: a textured square moves, is covered by a plate, reappears at ``reappear``."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.normal(110, 14, (H, W, 3)), (0, 0), 1.5).clip(0, 255).astype(np.uint8)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (T, T, 3)), (0, 0), 2.0)
    texture = ((texture - texture.mean()) * 3 + 128).clip(0, 255).astype(np.uint8)
    frames, boxes = [], []
    for i in range(N):
        # Up to the end of the occlusion it moves right and down from the top-left; then it drifts from `reappear`.
        if i < OCCLUDED.stop:
            x, y = 20 + 2 * i, 16 + i
        else:
            x, y = reappear[0] + (i - OCCLUDED.stop) * (1 if reappear[0] < W // 2 else -1), reappear[1]
        f = background.copy()
        f[y:y + T, x:x + T] = texture
        if i in OCCLUDED:
            f[y - 12:y + T + 12, x - 12:x + T + 12] = (70, 150, 160)
        frames.append(f)
        boxes.append((x, y, T, T))
    return frames, np.array(boxes, np.float64)


def ncc_network(exemplar):
    """A stand-in for the graphs: the logit is 10·(NCC − 0.35) of the exemplar over each search crop.

    Sampled every ``total_stride`` pixels like SiamFC's response, after a light blur (a network's receptive field is
    smooth too), so a (255, 255) crop gives the 17×17 map.
    """
    template = np.ascontiguousarray(exemplar[0].transpose(1, 2, 0))

    def run(crops):
        maps = []
        for c in crops:
            ncc = cv2.matchTemplate(np.ascontiguousarray(c.transpose(1, 2, 0)), template, cv2.TM_CCOEFF_NORMED)
            maps.append(cv2.GaussianBlur(ncc, (0, 0), 2)[:: P.total_stride, :: P.total_stride])
        return 10.0 * (np.stack(maps) - 0.35)

    return run


def iou(a, b):
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


@functools.lru_cache(maxsize=None)
def track_scene(lost_params, reappear=REAPPEAR[0]):
    frames, truth = occlusion_scene(reappear)
    logic = SiamFCTracking(P, lost_params)
    net = ncc_network(logic.init(frames[0], truth[0]))
    rows = []
    for i in range(1, N):
        box, score = logic.update_from_responses(net(logic.search_crops(frames[i])))
        rows.append((i, iou(box, truth[i]), score, logic.lost))
    return rows, logic


@pytest.fixture(scope="module")
def scene_runs():
    return {
        name: track_scene(lp)
        for name, lp in [
            ("default", LostParams()),
            ("off", LostParams(enabled=False)),
            ("local", LostParams(global_search=False)),
        ]
    }


def check_lost_and_found(rows, logic, reappear, min_overlap=0.8) -> int:
    """The verdicts a track of :func:`occlusion_scene` must give: tracked before the plate, lost from the
    ``lost_after``-th covered frame on, tracked again (``min_overlap``) from some frame after it reappears outside
    the tracking search region, which is returned (frames after the reappearance)."""
    far = occlusion_scene(reappear)[1]
    jump = np.hypot(*(box_center(far[OCCLUDED.stop]) - box_center(far[OCCLUDED.start - 1])))
    assert jump > logic.search_side / 2  # it reappears outside the normal search crop altogether
    lost_after = logic.lost_params.lost_after
    for i, overlap, score, lost in rows:
        if i < OCCLUDED.start:
            assert not lost and overlap > min_overlap, (i, overlap, score)
        elif OCCLUDED.start + lost_after - 1 <= i < OCCLUDED.stop:
            assert lost, (i, score)
    found = next(i for i, overlap, _, lost in rows if i >= OCCLUDED.stop and not lost)
    for i, overlap, score, lost in rows[found - 1:]:
        assert not lost and overlap > min_overlap, (i, overlap, score)
    return found - OCCLUDED.stop


@pytest.mark.parametrize("reappear", REAPPEAR)
def test_full_occlusion_is_reported_lost_and_the_target_is_found_far_away(reappear):
    rows, logic = track_scene(LostParams(), reappear)
    # This frame is 12 tiles, 2 a frame besides the anchor's: one sweep is 6 frames, and 1 more to agree.
    assert check_lost_and_found(rows, logic, reappear) <= 7


def test_without_recovery_the_target_is_not_found_again(scene_runs):
    for name in ("off", "local"):
        rows, _ = scene_runs[name]
        after = [overlap for i, overlap, _, _ in rows if i >= OCCLUDED.stop]
        assert max(after) == 0.0, name
    # Plain SiamFC reports each occluded frame lost, but it follows the occluder and never looks further.
    rows, _ = scene_runs["off"]
    assert all(lost for i, _, _, lost in rows if i in OCCLUDED)
    assert all(lost for i, _, _, lost in rows if i >= OCCLUDED.stop)
    # Before the occlusion all three agree on every box: the recovery logic costs nothing while tracking.
    default = [r[:3] for r in scene_runs["default"][0] if r[0] < OCCLUDED.start]
    assert default == [r[:3] for r in rows if r[0] < OCCLUDED.start]
