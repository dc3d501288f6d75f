"""Losing the target and finding it again with SiamRPN (SiamRPNTracking's LostParams), without a trained network.

As for SiamFC (tests/test_lost_recovery.py): the state machine is driven with classification/regression maps built
by hand, and its search windows are read back from crops of a ramp frame whose pixels hold their own coordinates.
The full-occlusion tests replace the network by normalised cross-correlation of the crops with the exemplar, as
the target probability of the square anchor, first on the tracking logic alone, then through ``edgetrack.Tracker``
with stub sessions standing in for a tiny SiamRPN bundle's graphs.
"""
import dataclasses
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from test_lost_recovery import BOX, N, OCCLUDED, RAMP, REAPPEAR, check_lost_and_found, iou, occlusion_scene

from edgetrack.errors import InvalidArgumentError
from edgetrack.tracking import LostParams, SiamRPNParams, SiamRPNTracking, box_center
from edgetrack.tracking.siamrpn import (
    DEFAULT_APCE_RATIO,
    DEFAULT_SCORE_THRESHOLD,
    MAX_SEARCH_ZOOM,
    SEARCH_ZOOM_STEP,
    SIZE_TOLERANCE,
)

P = SiamRPNParams()
A, R = P.num_anchors, P.score_size
MID = R // 2
SQUARE = P.anchor_ratios.index(1.0)  # the 64×64 anchor: a 20×20 target in a 20×20 track's crop (80 px region)


# RAMP: channel 0 = x, channel 1 = y, so a crop's centre pixel holds the centre of the window it was cut from.
# BOX: centre (109.5, 89.5), exemplar side 40, search side ~80.


def _window(crops):
    """(centre x, centre y, side) of the frame region a (1, 3, I, I) crop of RAMP was cut from (within ~1 px)."""
    c, k = (P.instance_size - 1) // 2, 125
    x = crops[0, 0, c].astype(np.float64)
    side = (x[c + k] - x[c - k]) / (2 * k) * P.instance_size
    return np.array([x[c], crops[0, 1, c, c], side])


def _maps(cells=(), low=0.02, anchor=SQUARE, dw=0.0, dh=None, noise=0.0, seed=0):
    """cls/loc for one crop: every anchor's target probability ``low`` but ``anchor``'s at ``cells`` (row, col, p);
    every box is its anchor scaled by ``exp(dw)``, ``exp(dh)`` (dh defaults to dw)."""
    prob = np.full((A, R, R), low) + np.random.default_rng(seed).uniform(0, noise, (A, R, R))
    for row, col, p in cells:
        prob[anchor, row, col] = p
    logit = np.log(prob / (1 - prob))
    cls = np.stack([np.zeros_like(logit), logit]).reshape(1, 2 * A, R, R)
    loc = np.zeros((4, A, R, R))
    loc[2], loc[3] = dw, dw if dh is None else dh
    return cls.astype(np.float32), loc.reshape(1, 4 * A, R, R).astype(np.float32)


def _peak(row=MID, col=MID, p=0.99, **kw):
    return _maps([(row, col, p)], **kw)


def _flat(**kw):
    return _maps(**kw)  # the best anchor's probability 0.02: unconfident


def _step(logic, outputs, frame=RAMP):
    crops = logic.search_crops(frame)
    box, score = logic.update_from_outputs(*outputs)
    return crops, box, score


def _lose(logic):
    for _ in range(logic.lost_params.lost_after):
        _step(logic, _flat())
    assert logic.lost


# The state machine's tests below were written against this threshold (doubtful frames at 0.6, 0.8): they test the
# machinery, whatever the calibrated default (DEFAULT_SCORE_THRESHOLD) is.
STRICT = 0.9


def _track(lost=None, box=BOX):
    lost = LostParams() if lost is None else lost
    if lost.score_threshold is None:
        lost = dataclasses.replace(lost, score_threshold=STRICT)
    t = SiamRPNTracking(P, lost)
    t.init(RAMP, box)
    return t


# -- defaults and validation ---------------------------------------------------------------------------------------
def test_the_defaults_are_siamrpns_own():
    t = SiamRPNTracking(P)
    assert t.lost_params == LostParams(score_threshold=DEFAULT_SCORE_THRESHOLD, apce_ratio=DEFAULT_APCE_RATIO)
    assert 0 < DEFAULT_SCORE_THRESHOLD < 1 and 1 < SEARCH_ZOOM_STEP <= MAX_SEARCH_ZOOM and SIZE_TOLERANCE > 1
    given = SiamRPNTracking(P, LostParams(score_threshold=0.6, apce_ratio=0.3)).lost_params
    assert (given.score_threshold, given.apce_ratio) == (0.6, 0.3)
    with pytest.raises(InvalidArgumentError, match="LostParams"):
        SiamRPNTracking(P, lost={"lost_after": 3})
    assert not _track().lost and _track().search_zoom == 1.0
    assert _track().lost_params.score_threshold == STRICT


# -- the state machine on hand-made maps ---------------------------------------------------------------------------
def test_confident_tracking_is_plain_siamrpn():
    """On maps with one confident anchor the recovery logic changes nothing: same boxes, never lost."""
    rng = np.random.default_rng(1)
    on, off = _track(LostParams()), _track(LostParams(enabled=False))
    for i in range(12):
        out = _peak(int(rng.integers(8, 17)), int(rng.integers(8, 17)), dw=float(rng.uniform(-0.2, 0.2)), noise=0.3,
                    seed=i)
        (c_on, box_on, s_on), (c_off, box_off, s_off) = _step(on, out), _step(off, out)
        np.testing.assert_array_equal(c_on, c_off)
        np.testing.assert_array_equal(box_on, box_off)
        assert s_on == s_off > DEFAULT_SCORE_THRESHOLD and not on.lost and not off.lost


def test_lost_after_n_unconfident_frames_with_the_size_frozen_and_back_to_the_last_confident_box():
    t = _track(LostParams(lost_after=4))
    _, anchor, _ = _step(t, _peak(row=MID + 2))  # confident: moves down, becomes the anchor
    for _ in range(3):
        # Doubtful frames (0.6 < 0.9) still move the track, but their 30 % larger boxes do not change its size.
        _, box, score = _step(t, _peak(row=MID + 3, p=0.6, dw=math.log(1.3)))
        assert score == pytest.approx(0.6) and not t.lost and box[2:].tolist() == anchor[2:].tolist()
    assert box[1] > anchor[1] + 10
    _, box, _ = _step(t, _peak(row=MID + 3, p=0.6))
    assert t.lost
    np.testing.assert_allclose(box, anchor)  # the doubtful frames' drift is undone
    # A confident frame before lost_after resets the count.
    t = _track(LostParams(lost_after=2))
    for out in (_flat(), _peak(), _flat()):
        _step(t, out)
        assert not t.lost
    _step(t, _flat())
    assert t.lost


def test_the_search_region_grows_per_lost_frame_up_to_the_bound():
    t = _track(LostParams(global_search=False))
    side = t.search_side
    _lose(t)
    zooms = []
    for _ in range(12):
        crops, box, _ = _step(t, _flat())
        x, y, s = _window(crops)
        np.testing.assert_allclose([x, y], box_center(BOX), atol=0.6)  # always on the last confident position
        assert s == pytest.approx(t.search_side, abs=1.5) and t.search_side == pytest.approx(side * t.search_zoom)
        assert t.lost and box.tolist() == list(BOX)  # the size does not move while lost
        zooms.append(t.search_zoom)
    expected = np.minimum(SEARCH_ZOOM_STEP ** np.arange(12), MAX_SEARCH_ZOOM)
    np.testing.assert_allclose(zooms, expected)
    assert zooms[0] == 1.0 and zooms[-1] == MAX_SEARCH_ZOOM
    # Found again: the next crop is the tracking region again.
    _step(t, _peak(dw=-math.log(MAX_SEARCH_ZOOM)))
    _step(t, _peak(dw=0.0))
    assert not t.lost
    crops = t.search_crops(RAMP)
    assert t.search_zoom == 1.0 and _window(crops)[2] == pytest.approx(side, abs=1.5)


def test_global_search_alternates_the_widened_window_and_tiles_nearest_first_over_the_frame():
    t = _track()
    anchor = box_center(BOX)
    side = t.search_side
    reach = (R - 1) * P.total_stride / P.instance_size * side  # one crop's span of centres
    _lose(t)
    windows, zooms = [], []
    for _ in range(60):
        windows.append(_window(_step(t, _flat())[0]))
        zooms.append(t.search_zoom)
    for k, (x, y, s) in enumerate(windows[0::2]):  # search frames 1, 3, 5, ...: the anchor, widening
        np.testing.assert_allclose([x, y], anchor, atol=0.6)
        zoom = min(SEARCH_ZOOM_STEP ** (2 * k), MAX_SEARCH_ZOOM)
        assert zooms[2 * k] == pytest.approx(zoom) and s == pytest.approx(zoom * side, abs=1.5)
    assert set(zooms[1::2]) == {1.0}  # tiles at the tracking scale
    tiles = np.array([w[:2] for w in windows[1::2]])
    d = np.hypot(*(tiles - anchor).T)
    n_tiles = int(np.argmax(d[1:] < d[:-1] - 1)) + 1  # where the sweep wraps around to the nearest tile
    assert np.all(np.diff(d[:n_tiles]) >= -1.0) and n_tiles < 30
    # Every frame position is within half a span of some window's centre: a target there can be seen.
    ys, xs = np.mgrid[0:RAMP.shape[0]:7, 0:RAMP.shape[1]:7]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    centres = np.vstack([tiles[:n_tiles], anchor[None]])
    assert np.abs(points[:, None] - centres[None]).max(axis=2).min(axis=1).max() <= reach / 2


def test_recovery_at_a_far_tile_needs_two_agreeing_frames():
    t = _track()
    anchor = box_center(BOX)
    _lose(t)
    for _ in range(30):  # sweep until a tile lies outside the tracking search region altogether
        crops = t.search_crops(RAMP)
        far = _window(crops)[:2]
        if np.hypot(*(far - anchor)) > t.search_side / 2:
            break
        t.update_from_outputs(*_flat())
    else:
        pytest.fail("the search never reached beyond the tracking search region")
    _, score = t.update_from_outputs(*_peak())
    assert t.lost and score > 0.98  # a candidate, not yet a recovery
    candidate = box_center(t.box)
    np.testing.assert_allclose(candidate, far, atol=0.6)
    assert t.box[2:].tolist() == [20.0, 20.0]
    crops, box, _ = _step(t, _peak(col=MID + 1))
    np.testing.assert_allclose(_window(crops)[:2], candidate, atol=0.6)  # the candidate is looked at again, ...
    assert t.search_zoom == 1.0  # ... at the tracking scale
    assert not t.lost
    one_cell = P.total_stride * t.search_side / P.instance_size
    np.testing.assert_allclose(box_center(box), candidate + [one_cell, 0], atol=1e-6)
    assert box[2:].tolist() == [20.0, 20.0]  # the size found again is the last confident one
    crops = t.search_crops(RAMP)  # back to tracking: one crop around the recovered centre
    np.testing.assert_allclose(_window(crops)[:2], box_center(box), atol=0.6)
    assert t.search_zoom == 1.0


def test_a_target_found_in_the_widened_window_beyond_the_tracking_region():
    """Late in the search the anchor window is MAX_SEARCH_ZOOM times the tracking region: a target at its map's edge
    is outside what tracking would have seen. Its box, regressed in the zoomed crop, is scaled back to the frame."""
    t = _track(LostParams(global_search=False, recover_after=1))
    _lose(t)
    while t.search_zoom < MAX_SEARCH_ZOOM:
        _step(t, _flat())
    crops = t.search_crops(RAMP)
    assert t.search_zoom == MAX_SEARCH_ZOOM
    # The target's true size looks 1/zoom as large in this crop: the regression says so (dw = -ln zoom).
    _, score = t.update_from_outputs(*_peak(row=MID, col=R - 1, dw=-math.log(MAX_SEARCH_ZOOM)))
    assert not t.lost and score > 0.98
    reach_tracking = (R - 1) * P.total_stride / P.instance_size * t.search_side / MAX_SEARCH_ZOOM
    dx = box_center(t.box)[0] - box_center(BOX)[0]
    assert dx > reach_tracking / 2 + 5
    assert dx == pytest.approx((R - 1) / 2 * P.total_stride * _window(crops)[2] / P.instance_size, abs=1.0)


def test_a_candidate_of_implausible_size_is_not_taken():
    t = _track(LostParams(global_search=False, recover_after=1))
    _lose(t)
    _, box, score = _step(t, _peak(dw=math.log(2.0)))  # confident, but twice as large as the lost target
    assert score > 0.98 and t.lost and box.tolist() == list(BOX)
    _, box, _ = _step(t, _peak(dw=math.log(1.6), dh=0.0))  # an aspect ratio 1.6 times another
    assert t.lost
    t.search_crops(RAMP)
    zoom = t.search_zoom  # this crop's: the target looks 1/zoom as large in it
    box, _ = t.update_from_outputs(*_peak(col=MID + 3, dw=math.log(1.2) - math.log(zoom)))  # 20 % larger: plausible
    assert zoom > 1 and not t.lost and box[0] > BOX[0] + 5 and box[2:].tolist() == [20.0, 20.0]


def test_a_single_confident_flash_does_not_end_the_search():
    t = _track()
    _lose(t)
    _step(t, _peak(col=MID + 3))
    assert t.lost and box_center(t.box)[0] > box_center(BOX)[0] + 5
    _, box, _ = _step(t, _flat())
    assert t.lost
    np.testing.assert_allclose(box, BOX)  # the candidate is dropped: back to the anchor
    # A confident frame farther from the candidate than the target's size is a new candidate, not a confirmation.
    _step(t, _peak(col=MID + 3))
    first = box_center(t.box)
    _step(t, _peak(col=MID - 10))
    assert t.lost and box_center(t.box)[0] < first[0] - 20
    _step(t, _peak(col=MID + 1))  # near the new candidate: confirmed
    assert not t.lost


def test_a_flat_high_map_is_unconfident_when_sharpness_is_asked_for():
    """APCE on the best anchor's probability map: after sharp peaks, a plateau of high probability is unconfident."""
    def run(lost):
        t = _track(lost)
        for i in range(3):
            _step(t, _peak(noise=0.05, seed=i))
        plateau = _maps(low=0.97, noise=0.02, seed=9)
        scores = [_step(t, plateau)[2] for _ in range(3)]
        return t.lost, min(scores)

    lost, score = run(LostParams(apce_ratio=0.4))
    assert lost and score > DEFAULT_SCORE_THRESHOLD
    lost, _ = run(LostParams(apce_ratio=0.0))
    assert not lost


def test_disabled_recovery_is_the_per_frame_score_test():
    t = _track(LostParams(enabled=False, score_threshold=0.7))
    for p, lost in [(0.9, False), (0.6, True), (0.1, True), (0.1, True), (0.1, True), (0.8, False)]:
        crops, _, _ = _step(t, _peak(p=p))
        assert t.lost == lost and t.search_zoom == 1.0


def test_a_smaller_frame_while_lost_keeps_the_windows_inside_it():
    t = _track(box=(200.0, 150.0, 20.0, 20.0))
    _lose(t)
    small = np.ascontiguousarray(RAMP[:100, :120])
    for _ in range(8):
        crops, box, _ = _step(t, _flat(), frame=small)
        x, y, _ = _window(crops)
        assert x <= 119.6 and y <= 99.6
        cx, cy = box_center(box)
        assert 0 <= cx <= 119 and 0 <= cy <= 99


def test_init_again_resets_the_lost_state():
    t = _track()
    _lose(t)
    for _ in range(3):  # the third search frame looks at the anchor through a widened region
        _step(t, _flat())
    assert t.lost and t.search_zoom > 1
    t.init(RAMP, (30.0, 40.0, 16.0, 12.0))
    assert not t.lost
    crops = t.search_crops(RAMP)
    np.testing.assert_allclose(_window(crops)[:2], box_center((30, 40, 16, 12)), atol=0.6)
    assert t.search_zoom == 1.0
    t.update_from_outputs(*_flat())  # one unconfident frame after a fresh init: not lost yet
    assert not t.lost


# -- full occlusion, with normalised cross-correlation standing in for the network ---------------------------------
def ncc_outputs(exemplar, crop, params):
    """cls/loc a stand-in network gives: the square anchor's logit is 10·(NCC − 0.35) of the exemplar over the crop,
    sampled at the score cells (the crop padded so that every cell's centre has a full window), every other
    anchor's is −5; the regression is zero, so every box is its anchor (the square one fits a track's target)."""
    e, i, s, n = params.exemplar_size, params.instance_size, params.total_stride, params.score_size
    pad = max(0, ((n - 1) * s - (i - e)) // 2)
    image = cv2.copyMakeBorder(np.ascontiguousarray(crop.transpose(1, 2, 0)), pad, pad, pad, pad,
                               cv2.BORDER_REPLICATE)
    ncc = cv2.matchTemplate(image, np.ascontiguousarray(exemplar.transpose(1, 2, 0)), cv2.TM_CCOEFF_NORMED)
    ncc = cv2.GaussianBlur(ncc, (0, 0), 2)[::s, ::s][:n, :n]
    a = params.num_anchors
    logits = np.full((2, a, n, n), 0.0, np.float32)
    logits[1] = -5.0
    logits[1, params.anchor_ratios.index(1.0)] = 10.0 * (ncc - 0.35)
    return logits.reshape(1, 2 * a, n, n), np.zeros((1, 4 * a, n, n), np.float32)


def track_scene(lost, reappear):
    frames, truth = occlusion_scene(reappear)
    logic = SiamRPNTracking(P, lost)
    exemplar = logic.init(frames[0], truth[0])[0]
    rows = []
    for i in range(1, N):
        crop = logic.search_crops(frames[i])[0]
        box, score = logic.update_from_outputs(*ncc_outputs(exemplar, crop, P))
        rows.append((i, iou(box, truth[i]), score, logic.lost))
    return rows, logic


@pytest.mark.parametrize("reappear", REAPPEAR)
def test_full_occlusion_is_reported_lost_and_the_target_is_found_far_away(reappear):
    rows, logic = track_scene(LostParams(), reappear)
    # This frame is at most 6 tiles (3 × 2 less those the anchor's window covers), one every other frame: a sweep
    # is 12 frames, and 1 more to agree.
    assert check_lost_and_found(rows, logic, reappear) <= 13


def test_without_the_search_the_target_is_not_found_again():
    rows, _ = track_scene(LostParams(enabled=False), REAPPEAR[0])
    assert max(overlap for i, overlap, _, _ in rows if i >= OCCLUDED.stop) == 0.0
    assert all(lost for i, _, _, lost in rows if i >= OCCLUDED.stop)


# -- the same through edgetrack.Tracker, stub sessions in a tiny SiamRPN bundle --------------------------------------
def _stub_sessions(names, params):
    """Template and search graphs that pass their crop through, and a head that is :func:`ncc_outputs`."""
    def head(feeds):
        return dict(zip(names["maps"], ncc_outputs(feeds[names["kernel_in"]][0], feeds[names["features_in"]][0],
                                                   params)))

    return {"template": SimpleNamespace(run=lambda feeds: {names["kernel_out"]: feeds[names["z"]]}),
            "search": SimpleNamespace(run=lambda feeds: {names["features_out"]: feeds[names["x"]]}),
            "head": SimpleNamespace(run=head)}


@pytest.mark.slow
def test_tracker_reports_lost_under_occlusion_and_recovers_with_a_siamrpn_bundle(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from edgetrack import Tracker
    from edgetrack.converters.torch2onnx import siamrpn_bundle
    from edgetrack.models.torch.siamrpn import build_siamrpn, save_siamrpn

    torch.manual_seed(0)
    ckpt = save_siamrpn(build_siamrpn("siamrpn-tiny").eval(), tmp_path / "tiny.safetensors")
    t = Tracker(siamrpn_bundle(ckpt, tmp_path / "bundle"))
    assert t.family == "siamrpn" and t.lost_threshold == DEFAULT_SCORE_THRESHOLD
    assert t.logic.lost_params == LostParams(score_threshold=DEFAULT_SCORE_THRESHOLD, apce_ratio=DEFAULT_APCE_RATIO)
    # The threshold: the lost_threshold argument, else lost_params', else the family's.
    assert Tracker(t.bundle, lost_params=LostParams(score_threshold=0.7)).lost_threshold == 0.7
    assert Tracker(t.bundle, lost_threshold=0.6, lost_params=LostParams(score_threshold=0.7)).lost_threshold == 0.6
    t._sessions = _stub_sessions(t._names, t.logic.params)
    frames, truth = occlusion_scene(REAPPEAR[0])
    t.init(frames[0], truth[0])
    results = [t.update(f) for f in frames[1:]]
    expected, _ = track_scene(LostParams(), REAPPEAR[0])
    assert [r.lost for r in results] == [row[3] for row in expected]
    np.testing.assert_allclose([iou(r.box, b) for r, b in zip(results, truth[1:])], [row[1] for row in expected])
    assert any(r.lost for r in results) and not results[-1].lost
    plain = Tracker(t.bundle, lost_params=LostParams(enabled=False))
    assert plain.logic.lost_params.enabled is False and plain.lost_threshold == DEFAULT_SCORE_THRESHOLD
