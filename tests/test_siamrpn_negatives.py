"""Negative pairs (issue #4): SiamRPN trained without them learnt to ignore its exemplar.

A template from another sequence still gave the target 0.88 (0.94 with its own) and score maps correlating at 0.89
with the right template's: the classification had become "find the object near the centre". Pairs whose exemplar
comes from another sequence, all of whose anchors are negative, make the exemplar matter.
"""
import numpy as np
import pytest

from edgetrack.errors import InvalidArgumentError
from edgetrack.models.labels import NEGATIVE as LABEL_NEGATIVE
from edgetrack.models.pairs import CropCache, PairConfig, PairSampler
from edgetrack.models.rpn_targets import (
    NEGATIVE,
    POSITIVE,
    RPN_PAIRS,
    RPNTargets,
    anchor_iou,
    anchor_targets,
    batch_targets,
)
from edgetrack.models.siamrpn_config import SIAMRPN_PRESETS
from edgetrack.tracking.siamrpn import anchor_grid

GRID = anchor_grid(SIAMRPN_PRESETS["siamrpn-tiny"].tracking_params())


@pytest.fixture
def cache(moving_target_sequence):
    seqs = [moving_target_sequence("a", n=4), moving_target_sequence("b", n=4, step=(2, 3))]
    return CropCache.build(seqs, RPN_PAIRS, progress=False)


def test_siamrpn_trains_with_negative_pairs_by_default():
    assert RPN_PAIRS.neg_prob == pytest.approx(0.2)  # pysot's DATASET.NEG
    assert PairConfig().neg_prob == 0  # SiamFC's recipe and streams are unchanged
    with pytest.raises(InvalidArgumentError, match="neg_prob"):
        PairConfig(neg_prob=1.5)


def test_negative_pairs_take_the_exemplar_from_another_sequence(cache):
    sampler = PairSampler(cache, PairConfig(**{**RPN_PAIRS.to_dict(), "neg_prob": 0.5}), seed=1)
    negatives = 0
    for k in range(6):
        b = sampler.sample_at(k, 8)
        seq_z, seq_x = cache.seq_index[b["pairs"][:, 0]], cache.seq_index[b["pairs"][:, 1]]
        np.testing.assert_array_equal(seq_z != seq_x, b["negative"])
        assert np.all(b["labels"][b["negative"]] == LABEL_NEGATIVE)
        negatives += int(b["negative"].sum())
    assert 10 <= negatives <= 38  # about half of 48


def test_without_neg_prob_no_pair_is_negative(cache):
    b = PairSampler(cache, PairConfig(**{**RPN_PAIRS.to_dict(), "neg_prob": 0.0}), seed=1).sample_at(0, 8)
    assert not b["negative"].any()
    assert np.all(cache.seq_index[b["pairs"][:, 0]] == cache.seq_index[b["pairs"][:, 1]])


def test_negative_pair_targets_reject_the_object_and_train_no_regression():
    box = (127 - 31.5, 127 - 31.5, 64, 64)  # a 64 px object on the crop's centre
    rng = np.random.default_rng(0)
    t = anchor_targets(GRID, box, rng, negative=True)
    would_be_positive = anchor_iou(GRID, box) > 0.6
    assert not (t["cls"] == POSITIVE).any()
    assert np.all(t["cls"][would_be_positive] == NEGATIVE)  # the wrong object is exactly what must be rejected
    assert (t["cls"] == NEGATIVE).sum() == 64
    assert t["loc_weight"].sum() == 0
    both = batch_targets(GRID, np.array([box, box]), rng, negative=[False, True])
    assert (both["cls"][0] == POSITIVE).any() and not (both["cls"][1] == POSITIVE).any()
    with pytest.raises(InvalidArgumentError, match="negative"):
        batch_targets(GRID, np.array([box, box]), rng, negative=[True])


def test_rpn_targets_follow_the_batch_negative_flags(cache):
    sampler = PairSampler(cache, PairConfig(**{**RPN_PAIRS.to_dict(), "neg_prob": 0.5}), seed=2)
    b = RPNTargets(GRID, sampler.seed)(sampler.sample_at(0, 8))
    assert b["negative"].any() and not b["negative"].all()
    positives = (b["cls"] == POSITIVE).reshape(8, -1).any(1)
    np.testing.assert_array_equal(positives, ~b["negative"])
    assert np.all(b["loc_weight"][b["negative"]] == 0)
