"""benchmarks/failure_modes.py: the on-target split that tells a drifting tracker from a badly boxing one."""
import math

import numpy as np
import pytest

from bundle_helpers import load_benchmark


def test_on_target_split_and_size_bias():
    fm = load_benchmark("failure_modes")
    truth = np.array([[100.0, 100, 40, 40]] * 5)
    boxes = truth.copy()
    boxes[1] = (100, 100, 60, 40)      # on target (centre 10 px off, under half of 40), 1.5 times as wide
    boxes[2] = (300, 300, 40, 40)      # off target: a look-alike far away
    boxes[3] = (104, 100, 40, 40)      # on target, shifted right by a tenth of the size
    absent = np.array([False, False, False, False, True])  # the hidden frame does not count
    rows = fm.sequence_rows(boxes, truth, absent)
    assert rows.shape == (3, 7)  # frame 0 (init) and the hidden frame left out
    s = fm.summarise(rows)
    assert s["frames"] == 3 and s["on_target"] == pytest.approx(2 / 3)
    assert s["on_target_iou"] == pytest.approx((40 / 60 + 36 / 44) / 2)
    assert s["log_w"] == pytest.approx(math.log(1.5) / 2) and s["log_h"] == pytest.approx(0.0)
    assert s["dx"] == pytest.approx((0.25 + 0.1) / 2) and s["dy"] == pytest.approx(0.0)
    assert fm.summarise(rows[:0]) == {"frames": 0}
