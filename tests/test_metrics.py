"""Golden tests of edgetrack.metrics: every expected value is worked out by hand in the comments.

They pin the got10k toolkit's conventions (strict `>` for success, `<=` for precision, (w - 1)/2 centres, its
image clipping, OTB frame 1 counted, GOT-10k frame 1 dropped, pooled GOT-10k IoUs) and the papers' protocols.
"""
import numpy as np
import pytest

from edgetrack.errors import InvalidArgumentError
from edgetrack.metrics import (
    box_centers,
    center_error,
    got10k_metrics,
    iou,
    otb_metrics,
    otb_summary,
)

BOX = [10.0, 20.0, 30.0, 40.0]


def far(n):
    """n boxes far from BOX: no overlap, centre error > 50 px."""
    return np.tile([500.0, 500.0, 30.0, 40.0], (n, 1))


# ------------------------------------------------------------------------------------------------------------ IoU
def test_iou_identical_boxes_is_exactly_one():
    # inter = union = 30 * 40 = 1200; 1200 / (1200 + eps) rounds to exactly 1.0 in float64.
    assert iou([BOX], [BOX])[0] == 1.0


def test_iou_half_width_shift_is_one_third():
    # a = [0, 10] x [0, 10], b = [5, 15] x [0, 10]: inter = 5 * 10 = 50, union = 100 + 100 - 50 = 150 -> 1/3.
    assert iou([[0, 0, 10, 10]], [[5, 0, 10, 10]])[0] == pytest.approx(1 / 3, abs=1e-15)


def test_iou_zero_area_and_disjoint_boxes_give_zero_not_nan():
    a = [[5, 5, 0, 0], [0, 0, 0, 10], [0, 0, 10, 10]]
    b = [[5, 5, 0, 0], [0, 0, 10, 10], [20, 20, 10, 10]]
    # 0 / (0 + eps) = 0; 0 / (0 + 100 + eps) = 0; disjoint: inter = max(10 - 20, 0) * ... = 0.
    np.testing.assert_array_equal(iou(a, b), [0.0, 0.0, 0.0])


def test_iou_nan_box_gives_nan():
    out = iou([[np.nan, 0, 10, 10], [0, 0, 10, 10]], [[0, 0, 10, 10], [0, 0, 10, 10]])
    assert np.isnan(out[0]) and out[1] == 1.0


def test_iou_clipped_to_image_the_toolkit_way():
    W, H = 100, 50
    a, b = [[90, 40, 20, 20]], [[95, 45, 20, 20]]
    # Unclipped: inter = [95, 110] x [45, 60] = 15 * 15 = 225; union = 400 + 400 - 225 = 575 -> 225/575 = 9/23.
    assert iou(a, b)[0] == pytest.approx(9 / 23, abs=1e-15)
    # Clipped: a -> w = min(20, 100 - 90) = 10, h = min(20, 50 - 40) = 10 -> (90, 40, 10, 10);
    #          b -> w = min(20, 100 - 95) = 5,  h = min(20, 50 - 45) = 5  -> (95, 45, 5, 5);
    # inter = [95, 100] x [45, 50] = 25; union = 100 + 25 - 25 = 100 -> 0.25.
    assert iou(a, b, bound=(W, H))[0] == pytest.approx(0.25, abs=1e-15)


def test_iou_clip_bound_is_w_not_w_minus_one():
    # (90, 0, 20, 10) in a 100 px wide image: w -> min(20, 100 - 90) = 10 = the other box: IoU 1.
    # (A [0, W-1] image would cut it to w = 9 and give 90/100.)
    assert iou([[90, 0, 20, 10]], [[90, 0, 10, 10]], bound=(100, 100))[0] == 1.0


def test_iou_clip_moves_a_box_left_of_the_image_instead_of_cutting_it():
    a, b = [[-10, 0, 30, 10]], [[10, 0, 20, 10]]
    # Unclipped: a = [-10, 20], b = [10, 30]: inter = 10 * 10 = 100; union = 300 + 200 - 100 = 400 -> 0.25.
    assert iou(a, b)[0] == pytest.approx(0.25, abs=1e-15)
    # Toolkit: x -> 0, then w -> clip(30, 0, 100 - 0) = 30: a = [0, 30] (moved, not cut to [0, 20]);
    # inter = [10, 30] = 20 * 10 = 200; union = 300 + 200 - 200 = 300 -> 2/3. (A true cut would give 1/3.)
    assert iou(a, b, bound=(100, 100))[0] == pytest.approx(2 / 3, abs=1e-15)


def test_iou_box_outside_the_image():
    a = [[120, 10, 10, 10]]
    # Unclipped: identical boxes -> 1.
    assert iou(a, a)[0] == 1.0
    # Clipped: x -> 100, w -> clip(10, 0, 100 - 100) = 0: zero area -> 0.
    assert iou(a, a, bound=(100, 100))[0] == 0.0


def test_iou_does_not_modify_its_inputs():
    a = np.array([[-10.0, -5.0, 300.0, 300.0]])
    b = a.copy()
    iou(a, b, bound=(100, 100))
    np.testing.assert_array_equal(a, [[-10.0, -5.0, 300.0, 300.0]])


# --------------------------------------------------------------------------------------------------- centre error
def test_centre_convention_is_x_plus_w_minus_one_over_two():
    # (0, 0, 10, 20): centre (0 + 9/2, 0 + 19/2) = (4.5, 9.5), not (5, 10).
    np.testing.assert_array_equal(box_centers([[0, 0, 10, 20]]), [[4.5, 9.5]])


def test_center_error_3_4_5():
    # centres (4.5, 4.5) and (4.5 + 3, 4.5 + 4): distance sqrt(9 + 16) = 5.
    assert center_error([[0, 0, 10, 10]], [[3, 4, 10, 10]])[0] == 5.0
    # Size change: (0, 0, 10, 10) -> (4.5, 4.5); (0, 0, 12, 10) -> (5.5, 4.5): 1 px (the -1/2 cancels).
    assert center_error([[0, 0, 10, 10]], [[0, 0, 12, 10]])[0] == 1.0


# ------------------------------------------------------------------------------------------------------------ OTB
def test_otb_perfect_tracker_scores_twenty_of_twenty_one():
    gt = np.tile(BOX, (5, 1))
    m = otb_metrics(gt, gt)
    # IoU 1.0 > t for the 20 thresholds 0, 0.05, ..., 0.95 but not for t = 1.0 (strict >): AUC = 20/21.
    assert m["success_auc"] == 20 / 21
    np.testing.assert_array_equal(m["success_curve"], [1.0] * 20 + [0.0])
    assert m["precision_20"] == 1.0 and m["success_rate_50"] == 1.0
    assert m["precision_15"] == 1.0 and m["success_60"] == 1.0
    assert m["n_frames"] == 5
    np.testing.assert_array_equal(m["success_thresholds"], np.linspace(0, 1, 21))
    np.testing.assert_array_equal(m["precision_thresholds"], np.arange(51))


def test_otb_counts_frame_one_with_the_ground_truth_box():
    gt = np.tile(BOX, (2, 1))
    pred = far(2)  # the tracker's frame 1 box is wrong too, but the toolkit sets boxes[0] = anno[0]
    m = otb_metrics(pred, gt)
    # frame 1 perfect, frame 2 IoU 0 and error > 50: success = [1/2] * 20 + [0] -> AUC = 10/21; precision 1/2.
    assert m["success_auc"] == pytest.approx(10 / 21, abs=1e-15)
    np.testing.assert_array_equal(m["precision_curve"], [0.5] * 51)
    assert m["n_frames"] == 2


def test_otb_precision_boundary_at_20_px_is_counted():
    gt = np.tile([0.0, 0.0, 10.0, 10.0], (2, 1))
    pred = gt.copy()
    pred[1, :2] += (12, 16)  # centre moved by sqrt(144 + 256) = 20 px exactly
    m = otb_metrics(pred, gt)
    # frame 1: error 0; frame 2: error 20. err <= 20 counts both, err <= 19 only frame 1.
    assert m["precision_curve"][20] == 1.0 and m["precision_20"] == 1.0
    assert m["precision_curve"][19] == 0.5


def test_otb_deblur_siamrpn_protocol_is_strict_at_15_px_and_iou_0_6():
    gt = np.tile([0.0, 0.0, 10.0, 10.0], (3, 1))
    pred = gt.copy()
    pred[1, :2] += (9, 12)  # centre error sqrt(81 + 144) = 15 px exactly
    pred[2] = [0, 0, 6, 10]  # inter 60, union 100 -> IoU 0.6 exactly; centre error (10 - 6)/2 = 2 px
    m = otb_metrics(pred, gt)
    # precision_15 is "less than 15": frames 1 and 3 (errors 0, 2), not frame 2 (15) -> 2/3;
    # the curve's point at 15 uses <= and counts all three.
    assert m["precision_15"] == pytest.approx(2 / 3, abs=1e-15)
    assert m["precision_curve"][15] == 1.0
    # success_60 is IoU > 0.6: frame 1 (IoU 1) only. Frame 2: [9, 19] x [12, 22] vs [0, 10]^2 overlaps
    # 1 x 0 -> IoU 0; frame 3 is exactly 0.6, not > 0.6.
    assert iou(pred[2:], gt[2:])[0] == 0.6
    assert m["success_60"] == pytest.approx(1 / 3, abs=1e-15)


def test_otb_nan_ground_truth_frames_are_excluded():
    gt = np.tile(BOX, (4, 1))
    gt[2] = np.nan  # target absent / unannotated
    pred = np.tile(BOX, (4, 1))
    pred[2] = far(1)[0]  # whatever the tracker says there does not count
    m = otb_metrics(pred, gt)
    # 3 frames counted, all perfect: AUC 20/21, precision 1.
    assert m["n_frames"] == 3
    assert m["success_auc"] == 20 / 21 and m["precision_20"] == 1.0


def test_otb_zero_size_ground_truth_is_kept_as_in_the_toolkit():
    gt = np.tile([0.0, 0.0, 10.0, 10.0], (2, 1))
    gt[1, 2:] = 0  # zero size: IoU 0 with anything; centre (-0.5, -0.5)
    pred = np.tile([0.0, 0.0, 10.0, 10.0], (2, 1))
    m = otb_metrics(pred, gt)
    # frame 2: IoU 0 -> success [1/2] * 20 + [0]; centre error |4.5 - (-0.5)| * sqrt(2) = 5 sqrt(2) = 7.07 px:
    # precision at 7 px = 1/2 (frame 1 only), at 8 px = 1.
    assert m["n_frames"] == 2
    assert m["success_auc"] == pytest.approx(10 / 21, abs=1e-15)
    assert m["precision_curve"][7] == 0.5 and m["precision_curve"][8] == 1.0


def test_otb_nan_prediction_is_a_failure():
    gt = np.tile(BOX, (2, 1))
    pred = gt.copy()
    pred[1] = np.nan
    m = otb_metrics(pred, gt)
    # frame 2 fails every threshold: success [1/2] * 20 + [0] -> 10/21; precision 1/2 everywhere.
    assert m["success_auc"] == pytest.approx(10 / 21, abs=1e-15)
    np.testing.assert_array_equal(m["precision_curve"], [0.5] * 51)
    assert m["precision_15"] == 0.5 and m["success_60"] == 0.5


def test_otb_summary_averages_per_sequence_not_per_frame():
    a = otb_metrics(np.tile(BOX, (4, 1)), np.tile(BOX, (4, 1)))  # 4 perfect frames: AUC 20/21, precision 1
    b = otb_metrics(far(2), np.tile(BOX, (2, 1)))  # frame 1 perfect, frame 2 lost: AUC 10/21, precision 1/2
    s = otb_summary([a, b])
    # Per sequence: (20/21 + 10/21) / 2 = 15/21. (Pooling the 6 frames, 5 perfect, would give 5/6 * 20/21.)
    assert s["success_auc"] == pytest.approx(15 / 21, abs=1e-15)
    assert s["precision_20"] == pytest.approx(0.75, abs=1e-15)  # (1 + 1/2) / 2
    assert s["success_rate_50"] == pytest.approx(0.75, abs=1e-15)
    assert s["precision_15"] == pytest.approx(0.75, abs=1e-15) and s["success_60"] == pytest.approx(0.75)
    assert s["n_sequences"] == 2 and s["n_frames"] == 6
    np.testing.assert_allclose(s["success_curve"], [0.75] * 20 + [0.0], atol=1e-15)


# -------------------------------------------------------------------------------------------------------- GOT-10k
def test_got10k_drops_the_first_frame():
    gt = np.tile(BOX, (3, 1))
    pred = gt.copy()
    pred[0] = far(1)[0]  # frame 1 is the initialisation: never scored
    m = got10k_metrics([pred], [gt])
    # frames 2, 3: IoU 1, 1 -> AO 1, SR50 = SR75 = 1; succ curve 1 for t < 1, 0 at t = 1 (strict >).
    assert m["ao"] == 1.0 and m["sr50"] == 1.0 and m["sr75"] == 1.0
    assert m["n_frames"] == 2 and m["seq_frames"] == [2]
    np.testing.assert_array_equal(m["succ_curve"], [1.0] * 100 + [0.0])
    np.testing.assert_array_equal(m["succ_thresholds"], np.linspace(0, 1, 101))


def test_got10k_excludes_cover_zero_frames():
    gt = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
    pred = gt.copy()
    pred[1] = far(1)[0]  # lost while the target is fully occluded
    pred[3] = [5, 0, 10, 10]  # IoU 1/3
    cover = [8, 0, 8, 8]
    m = got10k_metrics([pred], [gt], covers=[cover])
    # frames 3, 4 (frame 2 has cover 0): IoU 1, 1/3 -> AO 2/3, SR50 = 1/2, SR75 = 1/2.
    assert m["ao"] == pytest.approx(2 / 3, abs=1e-15)
    assert m["sr50"] == 0.5 and m["sr75"] == 0.5 and m["n_frames"] == 2
    # Without covers frame 2 counts: (0 + 1 + 1/3) / 3 = 4/9.
    assert got10k_metrics([pred], [gt])["ao"] == pytest.approx(4 / 9, abs=1e-15)


def test_got10k_clips_to_the_image_when_sizes_are_given():
    gt = np.array([[0, 0, 10, 10], [90, 40, 20, 20]], dtype=float)
    pred = np.array([[0, 0, 10, 10], [95, 45, 20, 20]], dtype=float)
    # Frame 2 as in test_iou_clipped_to_image_the_toolkit_way: 9/23 unclipped, 1/4 in a 100 x 50 image.
    assert got10k_metrics([pred], [gt])["ao"] == pytest.approx(9 / 23, abs=1e-15)
    assert got10k_metrics([pred], [gt], image_sizes=[(100, 50)])["ao"] == pytest.approx(0.25, abs=1e-15)


def test_got10k_pools_frames_over_sequences():
    gt_a, pred_a = np.tile(BOX, (2, 1)), np.tile(BOX, (2, 1))  # 1 scored frame, IoU 1
    gt_b, pred_b = np.tile(BOX, (4, 1)), far(4)  # 3 scored frames, IoU 0
    m = got10k_metrics([pred_a, pred_b], [gt_a, gt_b])
    # Pooled: (1 + 0 + 0 + 0) / 4 = 0.25; the mean of per-sequence AOs would be (1 + 0) / 2 = 0.5.
    assert m["ao"] == 0.25 and m["sr50"] == 0.25
    assert m["seq_ao"] == [1.0, 0.0] and m["seq_frames"] == [1, 3]


def test_got10k_mao_balances_unbalanced_classes():
    gt = np.tile([0.0, 0.0, 10.0, 10.0], (2, 1))
    perfect, lost, third = gt.copy(), np.array([gt[0], far(1)[0]]), np.array([gt[0], [5, 0, 10, 10]])
    m = got10k_metrics([perfect, perfect, lost, third], [gt] * 4, classes=["cat", "cat", "cat", "dog"])
    # seq AO: 1, 1, 0, 1/3. cat: (1 + 1 + 0) / 3 = 2/3; dog: 1/3. mAO = (2/3 + 1/3) / 2 = 1/2.
    # AO (pooled, one frame each): (1 + 1 + 0 + 1/3) / 4 = 7/12.
    assert m["class_ao"] == pytest.approx({"cat": 2 / 3, "dog": 1 / 3}, abs=1e-15)
    assert m["mao"] == pytest.approx(0.5, abs=1e-15)
    assert m["ao"] == pytest.approx(7 / 12, abs=1e-15)


def test_got10k_nan_prediction_counts_as_iou_zero_and_nan_gt_is_skipped():
    gt = np.tile(BOX, (4, 1))
    gt[3] = np.nan
    pred = np.tile(BOX, (4, 1))
    pred[2] = np.nan  # tracker failure
    m = got10k_metrics([pred], [gt])
    # frames 2, 3 scored (frame 4 has no ground truth): IoU 1, 0 -> AO 1/2 (finite, not NaN).
    assert m["ao"] == 0.5 and m["n_frames"] == 2


def test_got10k_sequence_with_nothing_left_has_nan_ao_and_is_left_out_of_mao():
    gt = np.tile(BOX, (3, 1))
    m = got10k_metrics([gt, gt], [gt, gt], covers=[[8, 8, 8], [8, 0, 0]], classes=["a", "b"])
    assert m["seq_ao"][0] == 1.0 and np.isnan(m["seq_ao"][1])
    assert m["mao"] == 1.0 and m["class_ao"] == {"a": 1.0}


# ----------------------------------------------------------------------------------------------------- validation
def test_mismatched_lengths_name_both_lengths():
    with pytest.raises(InvalidArgumentError, match=r"pred_boxes has 3 rows but gt_boxes has 5"):
        otb_metrics(np.zeros((3, 4)), np.ones((5, 4)))
    with pytest.raises(InvalidArgumentError, match=r"pred_boxes\[1\] has 2 rows but gt_boxes\[1\] has 3"):
        got10k_metrics([np.ones((3, 4)), np.ones((2, 4))], [np.ones((3, 4)), np.ones((3, 4))])
    with pytest.raises(InvalidArgumentError, match=r"gt_boxes has 1 entries but pred_boxes has 2"):
        got10k_metrics([np.ones((3, 4))] * 2, [np.ones((3, 4))])
    with pytest.raises(InvalidArgumentError, match=r"covers\[0\] has shape \(2,\) but gt_boxes\[0\] has 3"):
        got10k_metrics([np.ones((3, 4))], [np.ones((3, 4))], covers=[[1, 1]])
    with pytest.raises(InvalidArgumentError, match=r"a has 1 rows but b has 2"):
        iou(np.ones((1, 4)), np.ones((2, 4)))


def test_wrong_shapes_and_values_are_typed_errors():
    with pytest.raises(InvalidArgumentError, match=r"shape \(N, 4\).*\(2, 3\)"):
        iou(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(InvalidArgumentError, match="shape"):
        center_error(np.ones(4), np.ones(4))
    with pytest.raises(InvalidArgumentError, match="numeric"):
        iou([["a", 1, 2, 3]], [[0, 1, 2, 3]])
    with pytest.raises(InvalidArgumentError, match="image size"):
        iou(np.ones((1, 4)), np.ones((1, 4)), bound=(0, 10))
    with pytest.raises(InvalidArgumentError, match="one entry per sequence"):
        got10k_metrics(np.ones((3, 4)), np.ones((3, 4)))  # one sequence's array, not a list of sequences
    with pytest.raises(InvalidArgumentError, match="first frame"):
        otb_metrics(np.ones((2, 4)), np.full((2, 4), np.nan))
    with pytest.raises(InvalidArgumentError, match="no frame is left"):
        got10k_metrics([np.ones((1, 4))], [np.ones((1, 4))])
    with pytest.raises(InvalidArgumentError, match="missing"):
        otb_summary([{"success_auc": 1.0}])
    with pytest.raises(InvalidArgumentError, match="empty"):
        otb_summary([])


def test_bootstrap_interval_of_a_mean_and_of_a_paired_difference():
    from edgetrack.metrics import bootstrap_interval

    rng = np.random.default_rng(3)
    values = rng.uniform(0.4, 0.9, 30)
    mean, low, high = bootstrap_interval(values)
    assert mean == pytest.approx(values.mean()) and low < mean < high
    # The normal approximation of the mean's 95 % interval: ±1.96 standard errors, within resampling noise.
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert bootstrap_interval(values) == (mean, low, high)  # seeded: the same inputs, the same interval
    assert bootstrap_interval(values, level=0.5)[2] - bootstrap_interval(values, level=0.5)[1] < high - low
    # Paired: a shift common to every sequence is not uncertain; only the per-sequence differences are.
    other = values - 0.05 + rng.normal(0, 0.01, 30)
    d, dlow, dhigh = bootstrap_interval(values, other)
    assert d == pytest.approx(np.mean(values - other)) and 0 < dlow < d < dhigh and dhigh - dlow < 0.02
    assert bootstrap_interval(values, values) == (0.0, 0.0, 0.0)
    assert bootstrap_interval(np.full(5, 0.7)) == pytest.approx((0.7, 0.7, 0.7))


def test_bootstrap_interval_bad_inputs_are_typed_errors():
    from edgetrack.metrics import bootstrap_interval

    with pytest.raises(InvalidArgumentError, match="one value per sequence"):
        bootstrap_interval([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(InvalidArgumentError, match="at least 2 sequences"):
        bootstrap_interval([0.5])
    with pytest.raises(InvalidArgumentError, match="finite"):
        bootstrap_interval([0.5, float("nan")])
    with pytest.raises(InvalidArgumentError, match="level"):
        bootstrap_interval([0.5, 0.6], level=95)
    with pytest.raises(InvalidArgumentError, match="resamples"):
        bootstrap_interval([0.5, 0.6], resamples=10)
