"""The synthetic generator makes the same bytes with numpy 1.26 or 2.x and OpenCV 4.10 or 5.0 (issue #7).

The digests below were taken from the generator as it was before the fix, with the pinned numpy 1.26.4 / OpenCV
4.10.0 and scikit-image 0.26.0's photos; the same seed must keep giving them under any numpy and OpenCV. Run this
file under numpy 2 / OpenCV 5 as well (a second venv), not just the pinned one.
"""
import hashlib
import math

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the generator uses the photos shipped in scikit-image ([eval] extra)")
cv2 = pytest.importorskip("cv2")

from edgetrack.data import photos  # noqa: E402
from edgetrack.data import synth  # noqa: E402
from edgetrack.errors import DatasetError  # noqa: E402

# The pools every set so far was drawn from, with scikit-image 0.26.0's file digests (synth.json's sha256_16).
POOLS = {
    "train": {"astronaut": "88431cd9653ccd53", "coffee": "cc02f8ca188b167c", "coins": "f8d773fc9cfa6f4d",
              "faces_train": "9560ec2f5edfac01", "hubble": "3a19c5dd8a927a93", "brick": "7966caf324f6ba84",
              "grass": "b6b6022426b38936", "ihc": "f8dd1aa387ddd1f4", "camera": "b0793d2adda0fa6a"},
    "test": {"chelsea": "596aa1e7cb875eb7", "motorcycle": "db18e9c415761740", "faces_test": "9560ec2f5edfac01",
             "motorcycle_right": "5fc913ae870e42a4", "rocket": "c2dd0de7c538df8d", "retina": "38a07f36f27f095e",
             "gravel": "c48615b451bf1e60", "moon": "78739619d11f7eb9"},
}

# (split, index) -> digest of every sharp and blurred frame, the boxes and the cover labels. Together they pass
# through every kind of draw: a face with a twin (hue/saturation shift), a textured patch with a neighbour, coins
# (found by thresholding coins.png), a grey background (random tint), panels and a bar, camera shake.
SCENES = {("test", 0): "65ba28e6d5cabc8a", ("test", 1): "bdf927dcfa5a78f4",
          ("train", 0): "bc5521e741b72598", ("train", 1): "b17bb4edd00d0224"}


def _same_photos_as_pinned(split):
    files = photos.describe_pool(split)["files"]
    return {k: v["sha256_16"] for k, v in files.items()} == POOLS[split]


def _scene_digest(split, index):
    cfg = synth.SynthConfig(sequences=2, frames=4, size=(160, 120), seed=7, split=split, blur="strong",
                            occlusion=1.0, patches=0.5)
    sharp, blurred, boxes, _, cover, _ = synth.render_sequence(cfg, index)
    h = hashlib.sha256()
    for frame in sharp + blurred:
        h.update(np.ascontiguousarray(frame).tobytes())
    h.update(np.nan_to_num(boxes, nan=-1.0).astype("<f8").tobytes())
    h.update(np.asarray(cover, "<i8").tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("split,index", sorted(SCENES))
def test_a_seed_renders_the_bytes_it_rendered_with_the_pinned_libraries(split, index):
    if not _same_photos_as_pinned(split):
        pytest.skip("this scikit-image ships other photo files than the pinned digests were taken with")
    assert _scene_digest(split, index) == SCENES[split, index], (
        f"numpy {np.__version__}, OpenCV {cv2.__version__}: the scene or its pixels changed")


def test_the_photo_pool_is_fixed_and_needs_no_optional_package():
    # Pools decide every scene (photos are drawn by index): adding, dropping or reordering one re-draws them all.
    assert set(photos.PACKAGES) == {"scikit-image"}
    for split, pool in POOLS.items():
        assert [p.key for p in photos.available(split)] == list(pool)


def test_a_missing_photo_is_an_error_not_a_smaller_pool(monkeypatch):
    real = photos.photo_path
    monkeypatch.setattr(photos, "photo_path", lambda spec: None if spec.key == "gravel" else real(spec))
    with pytest.raises(DatasetError, match="gravel.png") as exc:
        photos.available("test")
    assert "other scenes" in str(exc.value)
    assert [p.key for p in photos.available("train")] == list(POOLS["train"])


# ---------------------------------------------------------------------------------------------- NEP 50
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_texture_score_is_float64_whatever_the_input_type(dtype):
    """numpy 2 keeps ``float32 * 0.3`` in float32 (NEP 50), numpy 1 went to float64; the score decides which
    rectangle becomes the target, so it must not depend on that."""
    g, s = dtype(16777216.0), dtype(3.0)  # 2**24: float32 cannot hold + 0.9
    score = synth._texture_score(g, s)
    assert type(score) is float and score == 16777216.0 + 3.0 * 0.3
    assert synth._texture_score(g, s) > synth._texture_score(g, dtype(0.0))  # no float32 tie
    assert synth._texture_score(np.float32(0.1), np.float32(0.7)) == synth._texture_score(
        float(np.float32(0.1)), float(np.float32(0.7)))


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2, reason="NEP 50 promotion is numpy 2's")
def test_under_numpy2_the_old_score_expression_would_have_tied():
    g, s = np.float32(16777216.0), np.float32(3.0)
    naive = float(g) + s * 0.3  # what _textured_rect computed before: float32 under numpy 2
    assert isinstance(naive, np.float32) and naive == float(g)
    assert synth._texture_score(g, s) > float(g)


def test_textured_rect_picks_what_it_picked_under_numpy_1():
    picks = {key: synth._textured_rect(photos.load_image(key), np.random.default_rng(5))
             for key in ("rocket", "moon", "chelsea")}
    assert picks == {"rocket": (90, 302, 133, 91), "moon": (71, 26, 129, 95), "chelsea": (156, 107, 119, 93)}


# ---------------------------------------------------------------------------------------------- OpenCV
def _warp_case():
    h, w = 13, 17
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    src = np.stack([xx / w, yy / h, (xx * yy) % 1.7, np.sin(xx + 2 * yy) * 0.5 + 0.5], -1).astype(np.float32)
    th = math.radians(23.0)
    A = 1.37 * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    return src, np.hstack([A, [[4.3], [-2.6]]])


def test_warp_gives_opencv_410s_bytes_with_any_opencv():
    src, M = _warp_case()
    sprite = synth._warp_affine(src, M, (29, 31))
    background = synth._warp_affine(np.ascontiguousarray(src[..., :3]), M, (23, 19), inverse=True,
                                    border=cv2.BORDER_REFLECT_101)
    assert hashlib.sha256(sprite.tobytes()).hexdigest()[:16] == "bbe81ef074800008"  # cv2.warpAffine, 4.10.0
    assert hashlib.sha256(background.tobytes()).hexdigest()[:16] == "ccbcfbd51c793425"


@pytest.mark.skipif(tuple(int(v) for v in cv2.__version__.split(".")[:2]) >= (4, 11),
                    reason="OpenCV 4.11+ computes warpAffine's positions in float: other bytes by design")
def test_warp_equals_warpaffine_of_opencv_up_to_410():
    rng = np.random.default_rng(3)
    for trial in range(24):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        src = rng.random((h, w, (1, 3, 4)[trial % 3]), dtype=np.float32)
        th, s = rng.uniform(-3.2, 3.2), math.exp(rng.uniform(-1.5, 1.5))
        M = np.hstack([s * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]]),
                       rng.uniform(-60, 60, (2, 1))])
        if trial == 5:
            M[:, 2] += 5e4  # beyond int16 source positions: saturated as OpenCV does
        dsize = (int(rng.integers(1, 50)), int(rng.integers(1, 50)))
        inverse, border = trial % 2 == 0, (cv2.BORDER_CONSTANT, cv2.BORDER_REFLECT_101)[trial % 4 // 2]
        want = cv2.warpAffine(src, M, dsize, flags=cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0),
                              borderMode=border, borderValue=0)
        np.testing.assert_array_equal(synth._warp_affine(src, M, dsize, inverse=inverse, border=border), want)


def _steps():
    return synth._SRGB_STEPS.view(np.float32)


def test_srgb_steps_are_the_gamma_curve_to_a_few_ulps():
    steps = synth._SRGB_STEPS.astype(np.int64)
    assert len(steps) == 255 and (np.diff(steps) > 0).all()
    exact = ((np.arange(1, 256) - 0.5) / 255.0) ** synth.GAMMA
    ulps = (steps - exact.astype(np.float32).view(np.int32)).astype(np.int64)
    assert np.abs(ulps).max() <= 13
    # by construction: code v from the v-th step on, v - 1 one ulp below it; 0 and 1 and outside the range
    at = _steps()
    below = (synth._SRGB_STEPS - 1).view(np.float32)
    np.testing.assert_array_equal(synth._to_srgb(at), np.arange(1, 256))
    np.testing.assert_array_equal(synth._to_srgb(below), np.arange(0, 255))
    edge = np.array([-1.0, -0.0, 0.0, 1.0, 2.0, np.inf], np.float32)
    np.testing.assert_array_equal(synth._to_srgb(edge), [0, 0, 0, 255, 255, 255])
    assert synth._to_srgb(np.zeros((2, 3, 3), np.float32)).dtype == np.uint8


def _near_steps(radius):
    bits = synth._SRGB_STEPS.astype(np.int64)[:, None] + np.arange(-radius, radius + 1)[None, :]
    return bits.astype(np.uint32).view(np.float32).reshape(-1)


def test_srgb_agrees_with_opencvs_pow_away_from_the_steps():
    """Any OpenCV: cv2.pow (IPP) errs by a few ulps, so away from the steps both encodings agree."""
    x = np.random.default_rng(0).random(200_000, dtype=np.float32).reshape(-1, 1000)
    ours = synth._to_srgb(x)
    theirs = cv2.convertScaleAbs(cv2.pow(x, 1.0 / synth.GAMMA), alpha=255.0)
    steps, bits = synth._SRGB_STEPS.astype(np.int64), x.view(np.int32).astype(np.int64)
    i = np.clip(np.searchsorted(steps, bits), 1, len(steps) - 1)
    near = np.minimum(np.abs(bits - steps[i - 1]), np.abs(bits - steps[i])) <= 64
    assert (ours[~near] == theirs[~near]).all()
    assert (np.abs(ours.astype(int) - theirs) <= 1).all()


@pytest.mark.skipif(not (cv2.__version__ == "4.10.0" and cv2.ipp.getIppVersion().startswith("ippIP AVX-512")
                         and "2021.11" in cv2.ipp.getIppVersion()),
                    reason="the steps were taken from OpenCV 4.10.0's pow (IPP 2021.11, AVX-512)")
def test_srgb_equals_opencv_410s_pow_at_every_step():
    x = _near_steps(64).reshape(255, -1)
    np.testing.assert_array_equal(synth._to_srgb(x), cv2.convertScaleAbs(cv2.pow(x, 1.0 / synth.GAMMA), alpha=255.0))
