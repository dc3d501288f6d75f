"""Synthetic blurred tracking video, made from real photos that ship inside PyPI packages.

No data set can be downloaded where edgetrack is developed and tested, so training and evaluation there use
video this module renders. Every sequence exists twice with identical ground truth: *sharp* and *blurred*.

How a sequence is made (all motion is a smooth function of continuous time, so any instant can be rendered):

- **Background**: a photo, scaled up and panned by a camera that accelerates, zooms a little and shakes.
- **Target**: a patch cut from a photo (or a face), with a rectangular, elliptical, rounded or silhouette mask,
  moving on a smooth random path (sums of low-frequency sinusoids: bounded, with acceleration), changing scale,
  rotating a little and changing brightness.
- **Distractors**: look-alikes of the target (a patch from the same photo next to the target's, a recoloured
  copy of the target, another face) that move close to it and cross it — the failure hard-sample mining targets.
- **Occluders**: patches that sweep across the target's path, covering it partly or fully for a while.
- **Motion blur as GoPro made it** (Nah et al., CVPR 2017): the blurred frame is the average, in linear intensity
  (gamma 2.2 undone, averaged, redone), of ``K`` sub-frames rendered at instants spread over the exposure; the
  sharp frame is the middle sub-frame. ``K`` grows with the fastest motion in the exposure so the blur is a smooth
  streak, not ghost copies.

Ground truth (GOT-10k conventions): the box is the tight box of the target's mask inside the frame at the middle
instant (occluded parts included); ``cover.label`` is the visible ratio class 0..8 (0 = fully occluded, 8 = fully
visible); ``absence.label`` is 1 when less than 2 % of the target is visible.

Train and test sets never share a photo: ``split="train"`` and ``split="test"`` draw targets, distractors and
backgrounds from disjoint photo pools (and disjoint halves of the face set).

Layout written by :func:`generate`::

    OUT/synth.json                       every parameter, the seed, the photo pools, per-sequence facts
    OUT/sharp/list.txt, OUT/sharp/SEQ/   GOT-10k layout (frames, groundtruth.txt, absence/cover labels, meta)
    OUT/blurred/...                      the same, blurred; identical annotation files
    OUT/gopro/<split>/SEQ/{blur,sharp}/  aligned pairs for training a deblurrer (hard links to the frames above)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgetrack.errors import DatasetError, InvalidArgumentError, MissingDependencyError, UnknownChoiceError

FORMAT = "edgetrack-synth/1"
BLUR_LEVELS = {"none": 0.0, "mild": 0.45, "strong": 1.0}  # exposure as a fraction of the frame interval
BLUR_CHOICES = (*BLUR_LEVELS, "mixed")
SPLITS = ("train", "test")

# Photo pools, disjoint between splits. Names are files in scikit-image's data folder (or scikit-learn's sample
# images, used when that package is installed). Grey photos are tinted when used.
PHOTO_POOLS = {
    "train": (
        "skimage:astronaut.png", "skimage:chelsea.png", "skimage:coffee.png", "skimage:hubble_deep_field.jpg",
        "skimage:motorcycle_left.png", "skimage:rocket.jpg", "skimage:brick.png", "skimage:grass.png",
        "skimage:camera.png", "skimage:moon.png", "sklearn:china.jpg",
    ),
    "test": (
        "skimage:retina.jpg", "skimage:ihc.png", "skimage:color.png", "skimage:gravel.png", "skimage:coins.png",
        "skimage:cell.png", "skimage:page.png", "sklearn:flower.jpg",
    ),
}
SILHOUETTES = ("skimage:horse.png",)  # dark-on-white shapes used as target masks (their pixels are not used)
FACES = "skimage:lfw_subset.npy"  # 200 faces; train uses the first half, test the second


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`generate` makes. ``size`` is (width, height)."""

    sequences: int = 20
    frames: int = 120
    size: tuple[int, int] = (480, 360)
    seed: int = 0
    split: str = "train"
    blur: str = "mixed"
    speed: float = 1.0  # multiplies every motion amplitude's speed
    occlusion: float = 0.5  # probability that a sequence has occluders
    distractors: tuple[int, int] = (1, 3)  # min, max look-alikes per sequence
    jpeg_quality: int = 92
    pairs: bool = True

    def __post_init__(self):
        for name in ("sequences", "frames"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {v!r}")
        if self.frames < 2:
            raise InvalidArgumentError(f"frames must be at least 2 (one to initialise, one to track), got {self.frames}")
        w, h = self.size
        if not (64 <= w <= 4096 and 64 <= h <= 4096):
            raise InvalidArgumentError(f"size must be between 64x64 and 4096x4096, got {w}x{h}")
        if self.split not in SPLITS:
            raise UnknownChoiceError("split", self.split, SPLITS, fix="train sets use --split train, test sets --split test")
        if self.blur not in BLUR_CHOICES:
            raise UnknownChoiceError("blur level", self.blur, BLUR_CHOICES)
        if not (0 < self.speed <= 5):
            raise InvalidArgumentError(f"speed must be in (0, 5], got {self.speed}")
        if not (0 <= self.occlusion <= 1):
            raise InvalidArgumentError(f"occlusion must be a probability in [0, 1], got {self.occlusion}")
        lo, hi = self.distractors
        if not (0 <= lo <= hi <= 8):
            raise InvalidArgumentError(f"distractors must be (min, max) with 0 <= min <= max <= 8, got {self.distractors}")
        if not (1 <= self.jpeg_quality <= 100):
            raise InvalidArgumentError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


# ---------------------------------------------------------------------------------------------------------------
# Photos
# ---------------------------------------------------------------------------------------------------------------
def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (scikit-image's import is slow)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _photo_path(name: str) -> Path | None:
    source, _, file = name.partition(":")
    if source == "skimage":
        base = _package_dir("skimage")
        path = base / "data" / file if base else None
    elif source == "sklearn":
        base = _package_dir("sklearn")
        path = base / "datasets" / "images" / file if base else None
    else:  # pragma: no cover - the pools above are fixed
        raise ValueError(name)
    return path if path is not None and path.exists() else None


def _require_photos() -> None:
    if _photo_path("skimage:astronaut.png") is None:
        raise MissingDependencyError(
            "the synthetic data generator (it uses the photos shipped inside scikit-image)",
            "scikit-image",
            extra="eval",
        )


@lru_cache(maxsize=None)
def _load_photo(name: str) -> np.ndarray | None:
    """BGR uint8 (grey photos as 3 equal channels), or BGRA for silhouettes; None if not installed."""
    import cv2

    path = _photo_path(name)
    if path is None:
        return None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img


@lru_cache(maxsize=None)
def _faces() -> np.ndarray | None:
    path = _photo_path(FACES)
    if path is None:
        return None
    return (np.load(path) * 255).astype(np.uint8)  # (200, 25, 25)


def photo_pool(split: str) -> list[str]:
    """The photos (installed ones only) that ``split`` uses."""
    return [n for n in PHOTO_POOLS[split] if _load_photo(n) is not None and _load_photo(n).shape[2] == 3]


def _tint(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Give a grey photo a random colour cast, so grey sources do not all look alike."""
    if img.ndim == 3 and np.abs(img[..., 0].astype(np.int16) - img[..., 2]).max() > 3:
        return img
    gains = rng.uniform(0.55, 1.15, size=3)
    return np.clip(img.astype(np.float32) * gains, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Motion: smooth random functions of continuous time t (in frames)
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wave:
    """Sum of sinusoids: bounded, smooth, accelerating. ``value(t)`` works on scalars and arrays."""

    amp: np.ndarray
    freq: np.ndarray
    phase: np.ndarray
    offset: float = 0.0

    @staticmethod
    def random(rng, amplitude: float, max_speed: float, terms: int = 3, offset: float = 0.0) -> "Wave":
        """Random wave of total amplitude ``amplitude`` whose speed never exceeds ``max_speed`` (units/frame)."""
        share = rng.dirichlet(np.ones(terms))
        amp = amplitude * share
        # speed of a term = 2*pi*f*A; pick f so the terms together stay under max_speed
        fmax = max_speed / (2 * math.pi * max(amplitude, 1e-9))
        freq = rng.uniform(0.5, 1.0, size=terms) * fmax
        return Wave(amp, freq, rng.uniform(0, 2 * math.pi, size=terms), offset)

    def value(self, t):
        t = np.asarray(t, dtype=np.float64)[..., None]
        return self.offset + (self.amp * np.sin(2 * math.pi * self.freq * t + self.phase)).sum(-1)


@dataclass
class _Object:
    """A textured patch with a mask, placed by centre/scale/angle waves (frame coordinates)."""

    texture: np.ndarray  # BGR uint8 h×w×3
    mask: np.ndarray  # float32 h×w in [0, 1]
    cx: Wave
    cy: Wave
    log_scale: Wave
    angle: Wave  # degrees
    gain: Wave | None = None  # illumination: multiplies the texture

    def affine(self, t: float) -> np.ndarray:
        """2×3 map from patch pixels to frame pixels at time t."""
        import cv2

        h, w = self.mask.shape
        s = math.exp(float(self.log_scale.value(t)))
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(self.angle.value(t)), s)
        m[:, 2] += np.array([float(self.cx.value(t)), float(self.cy.value(t))]) - np.array([(w - 1) / 2, (h - 1) / 2])
        return m

    def lit_texture(self, t: float) -> np.ndarray:
        if self.gain is None:
            return self.texture
        g = float(self.gain.value(t))
        return np.clip(self.texture.astype(np.float32) * g, 0, 255).astype(np.uint8)


def _roi(m: np.ndarray, shape_hw: tuple[int, int], frame_wh: tuple[int, int], clip: bool = True):
    """Integer frame box (x0, y0, x1, y1) covering the patch mapped by ``m``; None if outside (when clipping)."""
    h, w = shape_hw
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=np.float64) @ m.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    if clip:
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, frame_wh[0]), min(y1, frame_wh[1])
        if x1 <= x0 or y1 <= y0:
            return None
    return int(x0), int(y0), int(x1), int(y1)


def _warp_into(m: np.ndarray, patch: np.ndarray, roi) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = roi
    mm = m.copy()
    mm[:, 2] -= (x0, y0)
    flags = cv2.INTER_LINEAR
    return cv2.warpAffine(patch, mm, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _composite(canvas: np.ndarray, obj: _Object, t: float) -> None:
    """Draw ``obj`` at time ``t`` onto ``canvas`` (float32 H×W×3, sRGB 0..255) in place."""
    h, w = canvas.shape[:2]
    m = obj.affine(t)
    roi = _roi(m, obj.mask.shape, (w, h))
    if roi is None:
        return
    x0, y0, x1, y1 = roi
    alpha = _warp_into(m, obj.mask, roi)[..., None]
    tex = _warp_into(m, obj.lit_texture(t), roi).astype(np.float32)
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - alpha
    region += alpha * tex


def _mask_in_frame(obj: _Object, t: float, frame_wh: tuple[int, int]) -> tuple[np.ndarray, float, tuple]:
    """(alpha inside the frame as a full-frame float32 map, total alpha area incl. outside the frame, roi)."""
    w, h = frame_wh
    m = obj.affine(t)
    full = _roi(m, obj.mask.shape, frame_wh, clip=False)
    alpha_full = _warp_into(m, obj.mask, full)
    total = float(alpha_full.sum())
    out = np.zeros((h, w), np.float32)
    fx0, fy0, fx1, fy1 = full
    x0, y0, x1, y1 = max(fx0, 0), max(fy0, 0), min(fx1, w), min(fy1, h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = alpha_full[y0 - fy0 : y1 - fy0, x0 - fx0 : x1 - fx0]
    return out, total, (x0, y0, x1, y1)


# ---------------------------------------------------------------------------------------------------------------
# One scene
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Scene:
    """Everything needed to render one sequence at any instant."""

    size: tuple[int, int]
    background: np.ndarray
    cam_x: Wave
    cam_y: Wave
    cam_zoom: Wave
    shake_x: Wave
    shake_y: Wave
    target: _Object
    distractors: list
    occluders: list
    exposure: float
    facts: dict

    def camera(self, t: float) -> np.ndarray:
        """2×3 map from background-photo pixels to frame pixels."""
        z = float(self.cam_zoom.value(t))
        tx = float(self.cam_x.value(t) + self.shake_x.value(t))
        ty = float(self.cam_y.value(t) + self.shake_y.value(t))
        return np.array([[z, 0.0, tx], [0.0, z, ty]])

    def render(self, t: float) -> np.ndarray:
        """The sharp image at instant ``t`` as float32 sRGB 0..255."""
        import cv2

        w, h = self.size
        canvas = cv2.warpAffine(
            self.background, self.camera(t), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        ).astype(np.float32)
        for d in self.distractors:
            _composite(canvas, d, t)
        _composite(canvas, self.target, t)
        for o in self.occluders:
            _composite(canvas, o, t)
        return canvas

    def subframe_count(self, t: float) -> int:
        """Sub-frames so that nothing moves more than ~1.5 px between two of them (odd, 5..41)."""
        if self.exposure <= 0:
            return 1
        a, b = t - self.exposure / 2, t + self.exposure / 2
        moves = []
        for obj in [self.target, *self.distractors, *self.occluders]:
            moves.append(math.hypot(float(obj.cx.value(b) - obj.cx.value(a)), float(obj.cy.value(b) - obj.cy.value(a))))
        cam = self.camera(b)[:, 2] - self.camera(a)[:, 2]
        moves.append(float(np.hypot(*cam)))
        k = int(math.ceil(max(moves) / 1.5))
        k = max(5, min(41, k))
        return k | 1

    def ground_truth(self, t: float) -> tuple[np.ndarray, float]:
        """(box x,y,w,h of the target's mask inside the frame — NaN if outside —, visible ratio)."""
        alpha, total, _ = _mask_in_frame(self.target, t, self.size)
        inside = alpha > 0.5
        if total <= 0 or not inside.any():
            return np.full(4, np.nan), 0.0
        ys, xs = np.nonzero(inside)
        box = np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], dtype=np.float64)
        covered = np.zeros_like(alpha)
        w, h = self.size
        for o in self.occluders:
            oa, _, (x0, y0, x1, y1) = _mask_in_frame(o, t, self.size)
            covered = np.maximum(covered, oa)
        visible = float((alpha * (1.0 - covered)).sum()) / total
        return box, min(max(visible, 0.0), 1.0)


def cover_class(visible: float) -> int:
    """GOT-10k's cover label: 0 = fully occluded, 1..7 = (0,15],(15,30],...,(90,100) %, 8 = fully visible."""
    if visible <= 0.0:
        return 0
    if visible >= 0.999:
        return 8
    return int(min(7, max(1, math.ceil(visible * 100 / 15))))


def _crop_texture(rng, photo: np.ndarray, w: int, h: int, near: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple]:
    """A w×h crop of ``photo`` (resized up if the photo is small), optionally near a given top-left corner."""
    import cv2

    ph, pw = photo.shape[:2]
    if pw < w + 2 or ph < h + 2:
        f = max((w + 2) / pw, (h + 2) / ph) * 1.05
        photo = cv2.resize(photo, (int(pw * f) + 1, int(ph * f) + 1), interpolation=cv2.INTER_LINEAR)
        ph, pw = photo.shape[:2]
    if near is None:
        # the most textured of a few random crops: flat patches (sky, walls) make targets nobody could track
        best, best_std = None, -1.0
        for _ in range(16):
            c = (int(rng.integers(0, pw - w)), int(rng.integers(0, ph - h)))
            std = float(photo[c[1] : c[1] + h, c[0] : c[0] + w].std())
            if std > best_std:
                best, best_std = c, std
            if std > 30:
                break
        x, y = best
    else:
        x = int(np.clip(near[0] + rng.integers(-w, w + 1), 0, pw - w - 1))
        y = int(np.clip(near[1] + rng.integers(-h, h + 1), 0, ph - h - 1))
    return photo[y : y + h, x : x + w].copy(), (x, y)


def _make_mask(rng, w: int, h: int, kind: str) -> np.ndarray:
    import cv2

    if kind == "rect":
        m = np.ones((h, w), np.float32)
        m[[0, -1], :] = 0.5
        m[:, [0, -1]] = 0.5
        return m
    if kind == "silhouette":
        names = [n for n in SILHOUETTES if _load_photo(n) is not None]
        if names:
            src = _load_photo(names[int(rng.integers(len(names)))])
            alpha = np.where(cv2.cvtColor(src[..., :3], cv2.COLOR_BGR2GRAY) < 128, 255, 0).astype(np.uint8)
            ys, xs = np.nonzero(alpha)
            alpha = alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            return cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        kind = "ellipse"
    # ellipse / rounded rectangle drawn at 4× and shrunk, for anti-aliased edges
    big = np.zeros((h * 4, w * 4), np.uint8)
    if kind == "ellipse":
        cv2.ellipse(big, (w * 2, h * 2), (w * 2 - 2, h * 2 - 2), 0, 0, 360, 255, -1)
    else:
        r = int(min(w, h) * 4 * rng.uniform(0.15, 0.35))
        cv2.rectangle(big, (r, 0), (w * 4 - 1 - r, h * 4 - 1), 255, -1)
        cv2.rectangle(big, (0, r), (w * 4 - 1, h * 4 - 1 - r), 255, -1)
        for cx, cy in ((r, r), (w * 4 - 1 - r, r), (r, h * 4 - 1 - r), (w * 4 - 1 - r, h * 4 - 1 - r)):
            cv2.circle(big, (cx, cy), r, 255, -1)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def make_scene(cfg: SynthConfig, index: int) -> Scene:
    """The scene of sequence ``index`` of the set ``cfg`` describes (deterministic in (seed, split, index))."""
    import cv2

    _require_photos()
    rng = np.random.default_rng([cfg.seed, SPLITS.index(cfg.split), index])
    w, h = cfg.size
    pool = photo_pool(cfg.split)
    if len(pool) < 2:
        raise DatasetError(f"the {cfg.split} photo pool has {len(pool)} installed photo(s); need at least 2")
    level = cfg.blur if cfg.blur != "mixed" else ("mild", "strong")[int(rng.integers(2))]
    exposure = BLUR_LEVELS[level] * (rng.uniform(0.8, 1.0) if level != "none" else 1.0)
    speed = cfg.speed * (rng.uniform(0.9, 1.6) if level == "strong" else rng.uniform(0.6, 1.2))
    short = min(w, h)

    # background photo, scaled so the panning camera never shows its edge much
    bg_name = pool[int(rng.integers(len(pool)))]
    bg = _tint(rng, _load_photo(bg_name))
    f = max(1.6 * w / bg.shape[1], 1.6 * h / bg.shape[0], 1.0) * rng.uniform(1.0, 1.3)
    bg = cv2.resize(bg, (int(bg.shape[1] * f), int(bg.shape[0] * f)), interpolation=cv2.INTER_LINEAR)
    bh, bw = bg.shape[:2]
    pan_x, pan_y = (bw - w) / 2, (bh - h) / 2
    cam_x = Wave.random(rng, 0.8 * pan_x, 24 * speed, offset=-pan_x)
    cam_y = Wave.random(rng, 0.8 * pan_y, 16 * speed, offset=-pan_y)
    zoom = Wave.random(rng, 0.04, 0.004, terms=2, offset=1.0)
    shake_amp = rng.uniform(0.0, 2.5) * speed
    shake_x = Wave.random(rng, shake_amp, 6.0, terms=2)
    shake_y = Wave.random(rng, shake_amp, 6.0, terms=2)

    # target: a photo patch (or a face) with a mask
    faces = _faces()
    use_face = faces is not None and rng.random() < 0.2
    side = short * rng.uniform(0.1, 0.28)
    aspect = math.exp(rng.uniform(-0.6, 0.6))
    tw, th = max(12, int(side * math.sqrt(aspect))), max(12, int(side / math.sqrt(aspect)))
    tgt_name = pool[int(rng.integers(len(pool)))]
    if use_face:
        half = faces[:100] if cfg.split == "train" else faces[100:]
        face = half[int(rng.integers(len(half)))]
        tw = th = max(24, int(side))
        tex = _tint(rng, cv2.cvtColor(cv2.resize(face, (tw, th), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR))
        mask_kind, tgt_name, origin = "ellipse", "face", None
        tgt_photo = None
    else:
        tgt_photo = _tint(rng, _load_photo(tgt_name))
        tex, origin = _crop_texture(rng, tgt_photo, tw, th)
        mask_kind = ("rect", "ellipse", "rounded", "silhouette")[int(rng.integers(4))]
    mask = _make_mask(rng, tw, th, mask_kind)
    amp_x, amp_y = 0.36 * w - tw / 2, 0.36 * h - th / 2
    target = _Object(
        tex,
        mask,
        Wave.random(rng, max(amp_x, 5), 40 * speed, offset=w / 2 + rng.uniform(-0.1, 0.1) * w),
        Wave.random(rng, max(amp_y, 5), 28 * speed, offset=h / 2 + rng.uniform(-0.1, 0.1) * h),
        Wave.random(rng, rng.uniform(0.1, 0.45), 0.02 * speed, terms=2),
        Wave.random(rng, rng.uniform(0, 14), 1.2 * speed, terms=2),
        Wave.random(rng, rng.uniform(0.05, 0.3), 0.02, terms=2, offset=1.0),
    )

    # distractors: look-alikes moving near the target, crossing it now and then
    distractors = []
    lo, hi = cfg.distractors
    for _ in range(int(rng.integers(lo, hi + 1))):
        kind = rng.integers(3)
        if use_face:
            face = half[int(rng.integers(len(half)))]
            dtex = _tint(rng, cv2.cvtColor(cv2.resize(face, (tw, th), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR))
        elif kind == 0 and tgt_photo is not None:  # same photo, next to where the target was cut
            dtex, _ = _crop_texture(rng, tgt_photo, tw, th, near=origin)
        elif kind == 1:  # the target itself, recoloured and mirrored
            dtex = np.clip(tex[:, ::-1].astype(np.float32) * rng.uniform(0.75, 1.25, size=3), 0, 255).astype(np.uint8)
        else:  # same photo, anywhere
            dtex, _ = _crop_texture(rng, tgt_photo if tgt_photo is not None else bg, tw, th)
        reach = rng.uniform(1.0, 3.0) * max(tw, th)
        dx, dy = Wave.random(rng, reach, 10 * speed), Wave.random(rng, reach, 10 * speed)
        distractors.append(
            _Object(
                dtex,
                mask if rng.random() < 0.7 else _make_mask(rng, tw, th, "ellipse"),
                Wave(np.r_[target.cx.amp, dx.amp], np.r_[target.cx.freq, dx.freq],
                     np.r_[target.cx.phase + rng.uniform(0.3, 1.2), dx.phase], target.cx.offset + rng.uniform(-1, 1) * reach),
                Wave(np.r_[target.cy.amp, dy.amp], np.r_[target.cy.freq, dy.freq],
                     np.r_[target.cy.phase + rng.uniform(0.3, 1.2), dy.phase], target.cy.offset + rng.uniform(-1, 1) * reach),
                Wave.random(rng, 0.2, 0.02, terms=2, offset=rng.uniform(-0.2, 0.2)),
                Wave.random(rng, 10, 1.0, terms=2),
                None,
            )
        )

    # occluders: patches sweeping across the target's path at a chosen instant
    occluders = []
    if rng.random() < cfg.occlusion:
        for _ in range(int(rng.integers(1, 3))):
            t0 = rng.uniform(0.15, 0.9) * cfg.frames
            c0 = np.array([float(target.cx.value(t0)), float(target.cy.value(t0))])
            big = rng.uniform(0.5, 2.2)
            ow, oh = int(tw * big * rng.uniform(0.6, 1.4)) + 8, int(th * big * rng.uniform(0.6, 1.4)) + 8
            otex, _ = _crop_texture(rng, _tint(rng, _load_photo(pool[int(rng.integers(len(pool)))])), ow, oh)
            heading = rng.uniform(0, 2 * math.pi)
            v = rng.uniform(3, 12) * speed
            vx, vy = v * math.cos(heading), v * math.sin(heading)
            # a linear sweep is a wave of vanishing frequency; express it exactly with a tiny-frequency sinusoid pair
            occluders.append(
                _Object(
                    otex,
                    _make_mask(rng, ow, oh, ("rect", "rounded", "ellipse")[int(rng.integers(3))]),
                    _Linear(c0[0], vx, t0),
                    _Linear(c0[1], vy, t0),
                    Wave(np.zeros(1), np.zeros(1), np.zeros(1), 0.0),
                    Wave(np.zeros(1), np.zeros(1), np.zeros(1), 0.0),
                    None,
                )
            )

    facts = {
        "blur": level,
        "exposure": round(float(exposure), 3),
        "speed": round(float(speed), 3),
        "background": bg_name,
        "target": tgt_name,
        "mask": mask_kind,
        "distractors": len(distractors),
        "occluders": len(occluders),
    }
    return Scene(cfg.size, bg, cam_x, cam_y, zoom, shake_x, shake_y, target, distractors, occluders, exposure, facts)


@dataclass(frozen=True)
class _Linear:
    """Straight-line motion p(t) = p0 + v (t - t0), with Wave's ``value`` interface."""

    p0: float
    v: float
    t0: float

    def value(self, t):
        return self.p0 + self.v * (np.asarray(t, dtype=np.float64) - self.t0)


# linear-light averaging: sRGB-ish gamma 2.2, as GoPro's blur synthesis averages in (approximately) linear intensity
_GAMMA = 2.2


def render_sequence(cfg: SynthConfig, index: int):
    """Render sequence ``index``: (sharp frames, blurred frames, boxes (N,4), absent (N,), cover (N,), facts)."""
    scene = make_scene(cfg, index)
    sharp, blurred, boxes, absent, cover = [], [], [], [], []
    for i in range(cfg.frames):
        t = float(i)
        mid = scene.render(t)
        sharp.append(np.clip(mid + 0.5, 0, 255).astype(np.uint8))
        k = scene.subframe_count(t)
        if k == 1:
            blurred.append(sharp[-1])
        else:
            acc = np.zeros_like(mid)
            for s in np.linspace(t - scene.exposure / 2, t + scene.exposure / 2, k):
                img = mid if abs(s - t) < 1e-9 else scene.render(float(s))
                acc += np.power(np.clip(img, 0, 255) / 255.0, _GAMMA)
            out = np.power(acc / k, 1.0 / _GAMMA) * 255.0
            blurred.append(np.clip(out + 0.5, 0, 255).astype(np.uint8))
        box, visible = scene.ground_truth(t)
        boxes.append(box)
        absent.append(int(visible < 0.02 or not np.isfinite(box).all()))
        cover.append(cover_class(visible))
    boxes = np.array(boxes)
    # the tracker is initialised on frame 1: make sure the target is fully visible there
    return sharp, blurred, boxes, np.array(absent), np.array(cover), scene.facts


def sequence_name(cfg: SynthConfig, index: int) -> str:
    return f"SYN-{cfg.split}-s{cfg.seed}-{index + 1:04d}"


def _write_one(args) -> dict:
    cfg, index, out = args
    from edgetrack.data.got10k import frame_name, write_sequence

    name = sequence_name(cfg, index)
    for attempt in range(8):
        # a sequence whose first frame has the target hidden or cut by the border cannot be tracked: re-draw it
        sub = dataclasses.replace(cfg, seed=cfg.seed + 1000003 * attempt) if attempt else cfg
        sharp, blurred, boxes, absent, cover, facts = render_sequence(sub, index)
        b = boxes[0]
        w, h = cfg.size
        if cover[0] == 8 and np.isfinite(b).all() and b[0] > 0 and b[1] > 0 and b[0] + b[2] < w and b[1] + b[3] < h:
            break
    facts = {**facts, "redraws": attempt}
    gt = np.where(np.isfinite(boxes), boxes, 0.0)  # GOT-10k files hold numbers; absence.label marks the gaps
    meta = {"object_class": facts["target"].split(":")[-1].rsplit(".", 1)[0], "motion_class": facts["blur"],
            "generator": FORMAT, "background": facts["background"], "exposure": str(facts["exposure"]),
            "resolution": f"({w}, {h})"}
    for variant, frames in (("sharp", sharp), ("blurred", blurred)):
        write_sequence(out / variant / name, frames, gt, absent=absent, cover=cover, meta=meta,
                       jpeg_quality=cfg.jpeg_quality)
    if cfg.pairs:
        for variant, folder in (("blurred", "blur"), ("sharp", "sharp")):
            dst = out / "gopro" / cfg.split / name / folder
            dst.mkdir(parents=True, exist_ok=True)
            for i in range(cfg.frames):
                src = out / variant / name / frame_name(i)
                target = dst / f"{i + 1:06d}.jpg"
                try:
                    os.link(src, target)
                except OSError:  # file systems without hard links
                    import shutil

                    shutil.copyfile(src, target)
    return {"name": name, **facts, "absent_frames": int(absent.sum()), "occluded_frames": int((cover < 8).sum())}


def generate(cfg: SynthConfig, out: str | Path, *, workers: int = 0, force: bool = False, progress: bool = True) -> Path:
    """Render the data set ``cfg`` describes into ``out`` (see the module docstring for the layout)."""
    from edgetrack import __version__
    from edgetrack.data.got10k import write_list

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise InvalidArgumentError(
                f"output folder {str(out)!r} exists and is not empty", fix="choose another --out or pass --force"
            )
        import shutil

        shutil.rmtree(out)
    _require_photos()
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(cfg, i, out) for i in range(cfg.sequences)]
    if workers and workers > 1 and cfg.sequences > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            it = pool.imap(_write_one, jobs)
            facts = list(_bar(it, cfg.sequences, progress))
    else:
        facts = list(_bar(map(_write_one, jobs), cfg.sequences, progress))
    names = [f["name"] for f in facts]
    for variant in ("sharp", "blurred"):
        write_list(out / variant, names)
    if cfg.pairs:
        write_list(out / "gopro" / cfg.split, names)
    record = {
        "format": FORMAT,
        "edgetrack_version": __version__,
        "config": {**dataclasses.asdict(cfg), "size": list(cfg.size), "distractors": list(cfg.distractors)},
        "photo_pool": photo_pool(cfg.split),
        "sequences": facts,
    }
    (out / "synth.json").write_text(json.dumps(record, indent=2) + "\n")
    return out


def _bar(it, total, enabled):
    if not enabled:
        return it
    from edgetrack.progress import progress

    return progress(it, desc="sequences", total=total, unit="seq")


# ---------------------------------------------------------------------------------------------------------------
# Reading it back, and looking at it
# ---------------------------------------------------------------------------------------------------------------
def read_record(root: str | Path) -> dict:
    path = Path(root) / "synth.json"
    if not path.exists():
        raise DatasetError(
            f"{str(root)!r} is not a synthetic data set (no synth.json)",
            fix="make one with `edgetrack data synth --out DIR`, or name the format of this folder (got10k:, otb:, ...)",
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{str(path)!r} is not valid JSON: {exc}") from exc


def open_synthetic(root: Path, subset: str | None = None) -> list:
    """``synthetic:DIR`` -> [synthetic-sharp, synthetic-blurred]; ``#sharp`` or ``#blurred`` picks one."""
    from edgetrack.data import Dataset
    from edgetrack.data.got10k import read_split

    record = read_record(root)
    size = tuple(record["config"]["size"])
    variants = ("sharp", "blurred") if subset is None else tuple(s.strip() for s in subset.split(","))
    for v in variants:
        if v not in ("sharp", "blurred"):
            raise UnknownChoiceError("synthetic variant", v, ("sharp", "blurred"), fix="write synthetic:DIR#blurred")
    out = []
    for v in variants:
        seqs = [dataclasses.replace(s, known_size=size) for s in read_split(Path(root) / v, dataset=f"synthetic-{v}")]
        out.append(Dataset(f"synthetic-{v}", "synthetic", seqs))
    return out


def contact_sheet(root: str | Path, path: str | Path | None = None, *, rows: int = 6, cols: int = 4,
                  cell_width: int = 240) -> Path:
    """A PNG grid: rows = sequences, columns = instants; each cell is sharp | blurred with the box drawn."""
    import cv2

    root = Path(root)
    sharp, blurred = open_synthetic(root)
    seqs = list(zip(sharp.sequences, blurred.sequences))[:rows]
    cells = []
    for s, b in seqs:
        row = []
        for j in range(cols):
            i = int(round(j * (len(s) - 1) / max(cols - 1, 1)))
            pair = []
            for seq in (s, b):
                img = seq.frame(i)
                box = seq.boxes[i]
                if np.isfinite(box).all():
                    x, y, w, h = box
                    colour = (0, 255, 0) if not seq.absent[i] else (0, 0, 255)
                    cv2.rectangle(img, (int(round(x)), int(round(y))), (int(round(x + w - 1)), int(round(y + h - 1))), colour, 2)
                scale = cell_width / img.shape[1]
                img = cv2.resize(img, (cell_width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
                pair.append(img)
            cell = np.concatenate([pair[0], np.full((pair[0].shape[0], 3, 3), 255, np.uint8), pair[1]], axis=1)
            label = f"{s.name} #{i + 1} cover {int(s.cover[i])}"
            cv2.putText(cell, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            row.append(np.pad(cell, ((3, 3), (3, 3), (0, 0)), constant_values=40))
        cells.append(np.concatenate(row, axis=1))
    sheet = np.concatenate(cells, axis=0)
    path = Path(path) if path is not None else root / "contact_sheet.png"
    cv2.imwrite(str(path), sheet)
    return path
