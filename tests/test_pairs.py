"""The framework-free pair pipeline: crop cache, pair sampler, labels that follow the target."""
import dataclasses
import math

import numpy as np
import pytest

from edgetrack.data.sequence import Sequence
from edgetrack.errors import DatasetError, InvalidArgumentError
from edgetrack.models.labels import siamfc_labels
from edgetrack.models.pairs import (
    CropCache,
    PairConfig,
    PairSampler,
    cache_file,
    motion_blur_kernel,
    shifted_labels,
)

# Geometry only: no photometric or geometric augmentation, so the target can be found exactly.
PLAIN = PairConfig(scale_jitter=0, stretch=0, colour_jitter=0, grey_prob=0, blur_prob=0)


def target_centroid(img_hwc: np.ndarray) -> np.ndarray:
    """Centre (x, y) of the fixture's target (a red body with a cyan spot on grey 110), weighting every pixel by
    its target fraction: each pixel is unmixed into background, red and cyan, so bilinear edges count by how much
    of the target they hold and the red-cyan boundary counts fully."""
    colours = np.array([[110, 110, 110], [30, 40, 220], [240, 240, 40]], np.float64).T  # columns: bg, red, cyan
    a = np.vstack([colours, np.ones(3)])  # with the constraint that the fractions sum to 1
    px = img_hwc.reshape(-1, 3).astype(np.float64)
    fractions = np.linalg.lstsq(a, np.hstack([px, np.ones((len(px), 1))]).T, rcond=None)[0]
    w = np.clip(1 - fractions[0], 0, 1).reshape(img_hwc.shape[:2])
    w = np.where(w > 0.3, w, 0)  # the mean-colour padding unmixes to ~0.2 "target": not the target
    ys, xs = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


def positive_centre(labels: np.ndarray) -> np.ndarray:
    r, c = np.nonzero(labels == 1)
    return np.array([c.mean(), r.mean()])


@pytest.fixture
def seq(moving_target_sequence):
    return moving_target_sequence("a", n=8)


@pytest.fixture
def cache(seq, moving_target_sequence):
    return CropCache.build([seq, moving_target_sequence("b", n=6, step=(2, 3))], PLAIN, progress=False)


# -- config ---------------------------------------------------------------------------------------------------------
def test_config_checks_geometry_and_ranges():
    with pytest.raises(InvalidArgumentError, match="response"):
        PairConfig(response_size=15)
    with pytest.raises(InvalidArgumentError, match="grey_prob"):
        PairConfig(grey_prob=1.5)
    with pytest.raises(InvalidArgumentError, match="max_gap"):
        PairConfig(max_gap=0)
    assert PairConfig.from_dict(PairConfig().to_dict()) == PairConfig()
    # The cache holds the largest augmented search crop: (1.05 · 1.05) · (127 + 32) + 1 px each side of the centre.
    assert PairConfig().cache_size == math.ceil(2 * (1.05 * 1.05 * (127 + 32) + 1) + 1)
    assert PLAIN.cache_size == 2 * (127 + 32 + 1) + 1


def test_shifted_labels_equal_siamfc_labels_at_zero_shift():
    np.testing.assert_array_equal(shifted_labels((0, 0), PairConfig()), siamfc_labels(17, 16, 0, 8))
    np.testing.assert_array_equal(shifted_labels((0, 0), PairConfig(r_neg=40)), siamfc_labels(17, 16, 40, 8))


@pytest.mark.parametrize("shift", [(16, -8), (-32, 24), (8, 8)])
def test_label_disc_moves_by_shift_over_stride(shift):
    labels = shifted_labels(shift, PairConfig())
    np.testing.assert_allclose(positive_centre(labels), 8 + np.array(shift) / 8)
    assert (labels == 1).sum() == (siamfc_labels() == 1).sum()  # whole-cell shifts keep the disc whole


def test_motion_blur_kernel_is_a_normalised_streak():
    k = motion_blur_kernel(9, 0.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    rows = np.nonzero(k.sum(axis=1) > 1e-6)[0]
    cols = np.nonzero(k.sum(axis=0) > 1e-6)[0]
    assert len(rows) <= 2 and 8 <= len(cols) <= 11  # horizontal, about 9 px long
    kd = motion_blur_kernel(9, math.pi / 2)
    np.testing.assert_allclose(kd, k.T, atol=1e-6)


# -- cache ----------------------------------------------------------------------------------------------------------
def test_cache_crops_centre_the_target(cache, seq):
    s = PLAIN.cache_size
    assert cache.crops.shape == (14, s, s, 3) and cache.crops.dtype == np.uint8
    assert cache.names == ["tiny/a", "tiny/b"]
    np.testing.assert_array_equal(cache.seq_index, [0] * 8 + [1] * 6)
    np.testing.assert_array_equal(cache.frame_index, list(range(8)) + list(range(6)))
    for crop in cache.crops[[0, 5, 9]]:
        np.testing.assert_allclose(target_centroid(crop), [(s - 1) / 2] * 2, atol=0.3)
    # One cache pixel is one search-crop pixel: the 255 px search region spans context_size · 255/127 frame pixels.
    from edgetrack.tracking.crop import context_size

    side = context_size(20, 16) * 255 / 127
    np.testing.assert_allclose(cache.sizes[0], np.array([20, 16]) * 255 / side, rtol=1e-5)


def test_cache_skips_unusable_frames_and_strides(tmp_path, seq):
    boxes = seq.boxes.copy()
    boxes[1] = np.nan
    boxes[2, 2] = 2  # narrower than min_target
    boxes[3, 2:] = (60, 4)  # 15:1, more elongated than max_aspect
    absent = np.zeros(8, bool)
    absent[4] = True
    cover = np.full(8, 8)
    cover[5] = 0
    bad = Sequence("bad", seq.frames, boxes, dataset="tiny", absent=absent, cover=cover)
    c = CropCache.build([bad], PLAIN, progress=False)
    np.testing.assert_array_equal(c.frame_index, [0, 6, 7])
    c2 = CropCache.build([seq], PLAIN, progress=False, frame_stride=3)
    np.testing.assert_array_equal(c2.frame_index, [0, 3, 6])
    nothing = Sequence("none", seq.frames, np.full((8, 4), np.nan))
    with pytest.raises(DatasetError, match="usable"):
        CropCache.build([nothing], PLAIN, progress=False)


def test_cache_accepts_datasets_and_rejects_boxless_data(seq):
    from edgetrack.data import Dataset
    from edgetrack.data.sequence import BlurPairSequence

    c = CropCache.build([Dataset("d", "tiny", [seq])], PLAIN, progress=False)
    assert len(c) == 8
    with pytest.raises(DatasetError, match="no box annotations"):
        CropCache.build([BlurPairSequence("g", ("a",), ("b",))], PLAIN, progress=False)


def test_cache_save_load_round_trip_and_workers_agree(tmp_path, cache, seq, moving_target_sequence):
    path = cache.save(tmp_path / "c")
    assert path == tmp_path / "c.npz" == cache_file(tmp_path / "c")
    loaded = CropCache.load(path)
    np.testing.assert_array_equal(loaded.crops, cache.crops)
    np.testing.assert_array_equal(loaded.sizes, cache.sizes)
    np.testing.assert_array_equal(loaded.frame_index, cache.frame_index)
    assert loaded.names == cache.names and loaded.config == cache.config
    parallel = CropCache.build([seq, moving_target_sequence("b-again", n=6, step=(2, 3))], PLAIN, workers=2,
                               progress=False, chunk=3)
    np.testing.assert_array_equal(parallel.crops, cache.crops)
    with pytest.raises(DatasetError, match="does not exist"):
        CropCache.load(tmp_path / "missing.npz")


# -- sampler --------------------------------------------------------------------------------------------------------
def test_batch_shapes_and_types(cache):
    batch = PairSampler(cache, seed=3).sample(5)
    assert batch["z"].shape == (5, 3, 127, 127) and batch["z"].dtype == np.float32
    assert batch["x"].shape == (5, 3, 255, 255) and batch["x"].dtype == np.float32
    assert batch["labels"].shape == (5, 17, 17) and batch["labels"].dtype == np.float32
    assert set(np.unique(batch["labels"])) <= {0.0, 1.0}
    assert batch["z"].min() >= 0 and batch["z"].max() <= 255


def test_sampler_is_deterministic_and_addressable(cache):
    full = PairConfig(scale_jitter=0, stretch=0, blur_prob=0.5, grey_prob=0.3)  # photometric on, fits the cache
    a, b = PairSampler(cache, full, seed=7), PairSampler(cache, full, seed=7)
    first, second = a.sample(4), a.sample(4)
    np.testing.assert_array_equal(first["x"], b.sample(4)["x"])
    np.testing.assert_array_equal(second["x"], b.sample_at(1, 4)["x"])
    assert not np.array_equal(first["x"], second["x"])
    other = PairSampler(cache, full, seed=8).sample(4)
    assert not np.array_equal(first["x"], other["x"])
    # Three "workers" interleaving the stream give exactly the single stream's batches.
    workers = [list(a.batches(2, start=w, stop=7, step=3)) for w in range(3)]
    merged = sorted((b for w in workers for b in w), key=lambda b: b["index"])
    single = list(a.batches(2, stop=7))
    assert [b["index"] for b in merged] == list(range(7))
    for m, s in zip(merged, single):
        np.testing.assert_array_equal(m["x"], s["x"])
        np.testing.assert_array_equal(m["pairs"], s["pairs"])


def test_template_has_the_target_at_its_centre(cache):
    sampler = PairSampler(cache, seed=0)
    for iz in (0, 4, 10):
        z = sampler.pair(iz, iz, np.random.default_rng(0), augment=False)["z"]
        np.testing.assert_allclose(target_centroid(z), [63, 63], atol=0.3)
        b, g, r = z[63, 63]
        assert r > 150 and b < 100  # the red body (or the spot's edge), not the grey background


@pytest.mark.parametrize("shift", [(16, -8), (-24, 32), (5.5, -13.25)])
def test_forced_shift_moves_target_and_label_together(cache, shift):
    sampler = PairSampler(cache, seed=0)
    p = sampler.pair(2, 5, np.random.default_rng(0), shift=shift, augment=False)
    np.testing.assert_allclose(target_centroid(p["x"]), 127 + np.array(shift), atol=0.3)
    np.testing.assert_array_equal(p["labels"], shifted_labels(shift, PLAIN))
    if float(shift[0]).is_integer() and shift[0] % 8 == 0 and shift[1] % 8 == 0:
        np.testing.assert_allclose(positive_centre(p["labels"]), 8 + np.array(shift) / 8)
    x, y, w, h = p["box"]
    np.testing.assert_allclose([x + (w - 1) / 2, y + (h - 1) / 2], 127 + np.array(shift), atol=1e-4)
    with pytest.raises(InvalidArgumentError, match="max_shift"):
        sampler.pair(2, 5, shift=(40, 0), augment=False)


def test_random_shifts_are_reported_and_labelled_where_the_target_is(cache):
    batch = PairSampler(cache, seed=11).sample(6)
    assert np.abs(batch["shift"]).max() <= 32 and np.abs(batch["shift"]).max() > 4
    for x, labels, shift in zip(batch["x"], batch["labels"], batch["shift"]):
        np.testing.assert_allclose(target_centroid(x.transpose(1, 2, 0)), 127 + shift, atol=0.5)
        np.testing.assert_array_equal(labels, shifted_labels(shift, PLAIN))
        c, r = np.round(8 + shift / 8).astype(int)
        assert labels[r, c] == 1  # the cell nearest the target is positive


def test_augmented_sampling_on_a_full_cache(seq):
    cfg = PairConfig(colour_jitter=0, grey_prob=0, blur_prob=0)
    c = CropCache.build([seq], cfg, progress=False)
    batch = PairSampler(c, seed=5).sample(6)
    for x, box, shift in zip(batch["x"], batch["box"], batch["shift"]):
        centre = target_centroid(x.transpose(1, 2, 0))
        np.testing.assert_allclose(centre, 127 + shift, atol=0.5)
        # The box follows scale and stretch: the 20×16 target is 20·255/side px wide at scale 1, within ±10 %.
        assert 0.85 < box[2] / (c.sizes[0][0]) < 1.15 and 0.85 < box[3] / c.sizes[0][1] < 1.15


def test_pairs_come_from_one_sequence_within_max_gap(moving_target_sequence):
    long_seq = moving_target_sequence("long", n=12, step=(2, 1))
    other = moving_target_sequence("other", n=3)
    c = CropCache.build([long_seq, other], PairConfig(max_gap=2, **_no_aug()), progress=False)
    batch = PairSampler(c, seed=1).sample(64)
    iz, ix = batch["pairs"].T
    assert (c.seq_index[iz] == c.seq_index[ix]).all()
    gaps = np.abs(c.frame_index[iz] - c.frame_index[ix])
    assert gaps.max() <= 2 and (gaps > 0).all()  # never z paired with itself when another frame is in reach
    assert set(c.seq_index[iz]) == {0, 1}


def test_grey_and_blur_augmentations(cache):
    grey = PairSampler(cache, PairConfig(scale_jitter=0, stretch=0, grey_prob=1.0, blur_prob=0), seed=0).sample(2)
    np.testing.assert_allclose(grey["x"][:, 0], grey["x"][:, 2])
    sharp = PairSampler(cache, PLAIN)
    blurred = PairSampler(cache, PairConfig(scale_jitter=0, stretch=0, colour_jitter=0, grey_prob=0, blur_prob=1.0,
                                            blur_min=9, blur_max=9))
    # One rng seed: the same geometric draws (they come first), then blur only where blur_prob says so.
    sharp, blurred = (s.pair(1, 4, np.random.default_rng(3)) for s in (sharp, blurred))
    np.testing.assert_array_equal(sharp["shift"], blurred["shift"])

    def edges(img):  # gradient energy: blur spreads each edge over the streak, which lowers its square sum
        return (np.diff(img, axis=0) ** 2).sum() + (np.diff(img, axis=1) ** 2).sum()

    assert edges(blurred["x"]) < 0.75 * edges(sharp["x"])
    assert edges(blurred["z"]) < 0.75 * edges(sharp["z"])


def test_flip_and_channel_swap_mirror_both_crops_and_the_labels(cache):
    """The same draws with flip_prob / swap_prob 1: the crops are the mirror (channel-permuted) of the plain pair,
    and the shift, box and labels follow the mirrored target."""
    plain = PairSampler(cache, PLAIN).pair(1, 4, np.random.default_rng(3))
    flip_cfg = dataclasses.replace(PLAIN, flip_prob=1.0)
    flipped = PairSampler(cache, flip_cfg).pair(1, 4, np.random.default_rng(3))
    np.testing.assert_array_equal(flipped["z"], plain["z"][:, ::-1])
    np.testing.assert_array_equal(flipped["x"], plain["x"][:, ::-1])
    np.testing.assert_allclose(flipped["shift"], plain["shift"] * [-1, 1])
    np.testing.assert_allclose(target_centroid(flipped["x"]), 127 + flipped["shift"], atol=0.5)
    np.testing.assert_array_equal(flipped["labels"], shifted_labels(flipped["shift"], PLAIN))
    x, y, w, h = flipped["box"]
    np.testing.assert_allclose([x + (w - 1) / 2, y + (h - 1) / 2], 127 + flipped["shift"], atol=1e-4)
    np.testing.assert_allclose([w, h], plain["box"][2:])
    assert flipped["x"].flags.c_contiguous

    swapped = PairSampler(cache, dataclasses.replace(PLAIN, swap_prob=1.0)).pair(1, 4, np.random.default_rng(3))
    perm = [int(np.argmin(np.abs(plain["x"][..., c:c + 1] - swapped["x"]).sum(axis=(0, 1)))) for c in range(3)]
    assert sorted(perm) == [0, 1, 2]
    for c, d in enumerate(perm):  # the same permutation in both crops
        np.testing.assert_array_equal(swapped["x"][..., d], plain["x"][..., c])
        np.testing.assert_array_equal(swapped["z"][..., d], plain["z"][..., c])
    with pytest.raises(InvalidArgumentError, match="flip_prob"):
        PairConfig(flip_prob=1.5)


def test_sampler_rejects_caches_it_does_not_fit(cache):
    with pytest.raises(InvalidArgumentError, match="rebuild the cache"):
        PairSampler(cache, PairConfig(max_shift=64, scale_jitter=0, stretch=0))
    with pytest.raises(InvalidArgumentError, match="context"):
        PairSampler(cache, PairConfig(context=0.4, scale_jitter=0, stretch=0))
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        PairSampler(cache).sample(0)


def _no_aug() -> dict:
    return {"scale_jitter": 0, "stretch": 0, "colour_jitter": 0, "grey_prob": 0, "blur_prob": 0}
