"""Synthetic motion-blurred tracking sequences, made the way GoPro made its deblurring data.

Why: this project's machines cannot download a data set, so training and evaluation run on scenes composed
from real photos that ship inside PyPI packages (see :mod:`edgetrack.data.photos`).

A scene (one sequence) is:

* a **background**: a photo of the split, panned by a camera on a smooth random path (with acceleration), with
  slow zoom and roll, optional hand-held shake and a global illumination drift;
* a **target**: an object cut from a photo (a face, a coin, a cat's eye, a cup, a wheel, ...) or a textured patch,
  with an anti-aliased ellipse / rounded / rectangular alpha mask, moving on its own smooth random path (speed
  varies between waypoints, so it accelerates and brakes) with scale change, small rotation and its own
  illumination change; sometimes it leaves the frame for a while;
* **distractors**: look-alikes of the target (the other coins, other faces, the cat's other eye, the same crop
  flipped and colour-shifted, or a neighbouring crop of the same texture) orbiting near it, behind or in front;
* **occluders**: panels, bars and large plates cut from background photos, crossing in front of the target; the
  large ones travel with the target for a moment and hide it completely (absence label).

**Blur.** Every output frame ``i`` is rendered as ``K`` sub-frames at times ``i + e*(k/(K-1) - 1/2)`` along the
continuous motion of everything (``e`` the exposure as a fraction of the frame interval). Sub-frames are composed in
linear intensity (sRGB-ish gamma 2.2 undone), averaged, and gamma is re-applied: the blurred frame. The sharp frame
is the middle sub-frame (time ``i`` exactly), as in GoPro. ``K`` grows with the fastest motion in the frame (at most
2 px of travel between sub-frames, up to :data:`MAX_SUBFRAMES`) so streaks are continuous rather than ghosted.
The sharp frames are identical for every blur level of the same seed.

**Ground truth** (the same for sharp and blurred): the tight axis-aligned box of the target's visible pixels
(alpha >= 0.5 after occluders in front, clipped to the frame) in the sharp sub-frame; ``cover`` is GOT-10k's
visible-ratio class (0 = fully hidden, 1 = (0, 15%), ..., 7 = [90%, 100%), 8 = fully visible), with truncation by
the frame edge counting as hidden; ``absent`` = 1 when no pixel of the target is visible (fully occluded or out of
frame), and then the box is NaN. Frame 0 always shows the target fully visible.

**Determinism.** Sequence ``index`` of a set draws only from
``numpy.random.default_rng(numpy.random.SeedSequence([seed, SPLITS.index(split), index]))`` (and, for
``blur="mixed"``, its level from ``SeedSequence([seed, SPLITS.index(split), index, 1])``), so sequences can be
made independently and in parallel (``workers``), train and test sets made with the same seed still differ, and
the same (config, index, scikit-image photo files) always gives the same bytes, with numpy 1.26 or 2.x and OpenCV
4.10 or 5.0 alike:

* the photo pool is fixed (scikit-image's photos only; one that grew when scikit-learn happened to be installed
  gave a seed other scenes: see :mod:`edgetrack.data.photos`);
* the two OpenCV results that changed between 4.10 and 5.0 are computed here as 4.10 computed them: affine warps
  (fixed-point maps and ``cv2.remap``, :func:`_warp_affine`; OpenCV 5's ``warpAffine`` moved ground-truth boxes
  by a pixel) and the gamma encoding (a step table, :func:`_to_srgb`; ``cv2.pow`` runs Intel IPP, whose last bits
  change with the IPP release and the CPU);
* decisions never read a float32 result whose type numpy 2's promotion rules (NEP 50) changed
  (:func:`_texture_score`).

``tests/test_synth_versions.py`` pins frames rendered before these changes. ``synth.json`` still records numpy's
and OpenCV's versions. Train and test never share a photo (see :mod:`edgetrack.data.photos`).

Output of :func:`generate` (``edgetrack data synth``)::

    OUT/synth.json                          every parameter, seed, photo pool, edgetrack version, per-sequence facts
    OUT/sharp/list.txt, OUT/sharp/SYN_0001/{00000001.jpg.., groundtruth.txt, absence.label, cover.label, meta_info.ini}
    OUT/blurred/...                         the same layout and identical annotation files
    OUT/gopro/{train|test}/SYN_0001/{blur,sharp}/000001.jpg ...   aligned deblurring pairs (hard links: no extra disk)
    OUT/contact_sheet.png                   (the command line's) sharp | blurred side by side with the boxes

``groundtruth.txt`` holds 0,0,0,0 on absent frames (GOT-10k files hold numbers); the reader turns them into NaN.
Read a set back with ``open_dataset("synthetic:OUT")`` (two data sets) or ``synthetic:OUT#blurred``.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from edgetrack.data import photos
from edgetrack.errors import DatasetError, InvalidArgumentError, UnknownChoiceError

GAMMA = 2.2
BLUR_LEVELS = {"none": 0.0, "mild": 0.5, "strong": 1.0}  # exposure, as a fraction of the frame interval
BLUR_CHOICES = (*BLUR_LEVELS, "mixed")
PATCH_PHOTOS = ("objects", "all")
SPLITS = photos.SPLITS
MAX_SUBFRAMES = 31
SUBFRAME_STEP_PX = 2.0
VARIANTS = ("sharp", "blurred")
FORMAT = "edgetrack-synth/2"
OUTPUTS = ("sharp", "blurred", "gopro", "synth.json", "contact_sheet.png")

_TO_LINEAR = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)


# --------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SynthConfig:
    """What :func:`generate` makes. ``size`` is (width, height).

    ``blur`` is ``"none"``, ``"mild"``, ``"strong"``, ``"mixed"`` (mild or strong, drawn per sequence) or an
    exposure fraction in [0, 1]; ``speed`` scales every motion; ``occlusion`` is the probability that a sequence
    has occluders passing in front of the target; ``distractors`` is the (min, max) number of look-alikes;
    ``pairs`` also writes the GoPro-layout deblurring pairs (hard links to the GOT-10k frames: no extra disk).
    ``patches`` is the probability that the target is a textured patch instead of a hand-picked object, and
    ``patch_photos`` where patches come from: ``"objects"`` (the photos that have hand-picked objects) or
    ``"all"`` (every photo of the split, the background textures included). A split holds only a few dozen
    objects; training sets made with more and wider-sourced patches show a tracker many more distinct targets
    (the defaults are what every set made so far used, so their sequences stay the same).
    """

    sequences: int = 20
    frames: int = 120
    size: tuple[int, int] = (480, 360)
    seed: int = 0
    split: str = "train"
    blur: str | float = "mixed"
    speed: float = 1.0
    occlusion: float = 0.6
    distractors: tuple[int, int] = (1, 3)
    jpeg_quality: int = 92
    pairs: bool = True
    patches: float = 0.25
    patch_photos: str = "objects"

    def __post_init__(self):
        for name in ("sequences", "frames", "seed"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < (0 if name == "seed" else 1):
                raise InvalidArgumentError(f"{name} must be a {'non-negative' if name == 'seed' else 'positive'} "
                                           f"integer, got {v!r}")
        if self.frames < 2:
            raise InvalidArgumentError(f"frames must be at least 2 (one to initialise, one to track), "
                                       f"got {self.frames}",
                                       fix="use --frames 2 or more")
        try:
            w, h = (int(v) for v in self.size)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"size must be (width, height), got {self.size!r}") from None
        if not (64 <= w <= 4096 and 48 <= h <= 4096):
            raise InvalidArgumentError(f"size must be between 64x48 and 4096x4096, got {w}x{h}",
                                       fix="use e.g. --size 480x360")
        object.__setattr__(self, "size", (w, h))
        if self.split not in photos.SPLITS:
            raise UnknownChoiceError("split", self.split, photos.SPLITS,
                                     fix="train sets use --split train, test sets --split test")
        if isinstance(self.blur, str) and self.blur not in BLUR_CHOICES:
            try:
                object.__setattr__(self, "blur", float(self.blur))
            except ValueError:
                raise UnknownChoiceError("blur level", self.blur, BLUR_CHOICES,
                                         fix="or give an exposure fraction between 0 and 1, e.g. --blur 0.7") from None
        if not isinstance(self.blur, str) and not 0.0 <= float(self.blur) <= 1.0:
            raise InvalidArgumentError(f"blur exposure {self.blur} is outside [0, 1]",
                                       fix="use none, mild, strong, mixed or a fraction such as 0.7")
        if not 0 < self.speed <= 5:
            raise InvalidArgumentError(f"speed must be in (0, 5], got {self.speed}")
        if not 0 <= self.occlusion <= 1:
            raise InvalidArgumentError(f"occlusion must be a probability in [0, 1], got {self.occlusion}")
        try:
            lo, hi = (int(v) for v in self.distractors)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"distractors must be (min, max), got {self.distractors!r}") from None
        if not 0 <= lo <= hi <= 8:
            raise InvalidArgumentError(
                f"distractors must be (min, max) with 0 <= min <= max <= 8, got {self.distractors}")
        object.__setattr__(self, "distractors", (lo, hi))
        if isinstance(self.patches, bool) or not isinstance(self.patches, (int, float)) or not 0 <= self.patches <= 1:
            raise InvalidArgumentError(f"patches must be a probability in [0, 1], got {self.patches!r}")
        if self.patch_photos not in PATCH_PHOTOS:
            raise UnknownChoiceError("patch_photos", self.patch_photos, PATCH_PHOTOS,
                                     fix="'objects' (the default) or 'all'")
        if not 1 <= self.jpeg_quality <= 100:
            raise InvalidArgumentError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def blur_name(self) -> str:
        return self.blur if isinstance(self.blur, str) else f"{float(self.blur):g}"


def exposure_of(level: str | float) -> float:
    return BLUR_LEVELS[level] if isinstance(level, str) else float(level)


def base_subframes(exposure: float) -> int:
    """Fewest sub-frames per blurred frame: 1 without blur, 11 at mild, 15 at strong (odd: one is the middle)."""
    if exposure <= 0:
        return 1
    k = int(round(7 + 8 * exposure))
    return k if k % 2 else k + 1


def sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The only source of randomness of sequence ``index`` (0-based) of a ``split`` set made with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), photos.SPLITS.index(split), int(index)]))


# --------------------------------------------------------------------------------------------------- motion
class _Spline:
    """Cubic Hermite (Catmull-Rom tangents) through knots; values are scalars or 2-vectors; evaluated anywhere."""

    def __init__(self, t, v):
        self.t = np.asarray(t, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        self.scalar = v.ndim == 1
        self.v = v[:, None] if self.scalar else v
        m = np.empty_like(self.v)
        m[1:-1] = (self.v[2:] - self.v[:-2]) / (self.t[2:] - self.t[:-2])[:, None]
        m[0] = (self.v[1] - self.v[0]) / (self.t[1] - self.t[0])
        m[-1] = (self.v[-1] - self.v[-2]) / (self.t[-1] - self.t[-2])
        self.m = m

    def __call__(self, tq) -> np.ndarray:
        tq = np.asarray(tq, dtype=np.float64)
        i = np.clip(np.searchsorted(self.t, tq, side="right") - 1, 0, len(self.t) - 2)
        h = self.t[i + 1] - self.t[i]
        s = ((tq - self.t[i]) / h)[..., None]
        s2, s3 = s * s, s * s * s
        out = ((2 * s3 - 3 * s2 + 1) * self.v[i] + (s3 - 2 * s2 + s) * h[..., None] * self.m[i]
               + (-2 * s3 + 3 * s2) * self.v[i + 1] + (s3 - s2) * h[..., None] * self.m[i + 1])
        return out[..., 0] if self.scalar else out


class _Const:
    def __init__(self, value):
        self.value = np.asarray(value, dtype=np.float64)

    def __call__(self, tq):
        tq = np.asarray(tq, dtype=np.float64)
        return np.broadcast_to(self.value, tq.shape + self.value.shape).copy()


def _loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _walk(rng, n_frames, start, lo, hi, speed, gaps) -> tuple[list[float], list[np.ndarray]]:
    """Waypoints of a 2-D path from ``start`` inside the box [lo, hi]: each leg has its own speed (px/frame)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    p = np.asarray(start, float)
    times, pts = [0.0], [p.copy()]
    t = 0.0
    while t <= n_frames + 1:
        dt = rng.uniform(*gaps)
        step = _loguniform(rng, *speed) * dt
        best = None
        for _ in range(12):
            ang = rng.uniform(0, 2 * math.pi)
            cand = p + step * np.array([math.cos(ang), math.sin(ang)])
            if np.all(cand >= lo) and np.all(cand <= hi):
                best = cand
                break
        if best is None:  # no direction fits: head for a random point of the box instead, as far as the step goes
            goal = rng.uniform(lo, hi)
            d = goal - p
            dist = float(np.hypot(*d))
            best = goal if dist <= step or dist == 0 else p + d * (step / dist)
        t += dt
        p = best
        times.append(t)
        pts.append(p.copy())
    return times, pts


def _path(times, pts) -> _Spline:
    """A spline through the waypoints, extended one leg back in time (sub-frames of frame 0 start before 0)."""
    t0, t1 = times[0], times[1]
    pre = pts[0] - (pts[1] - pts[0]) * 0.3
    return _Spline([t0 - (t1 - t0)] + list(times), [pre] + list(pts))


def _scalar(rng, n_frames, lo, hi, gaps, start=None) -> _Spline:
    times = [-rng.uniform(*gaps), 0.0]
    vals = [rng.uniform(lo, hi), start if start is not None else rng.uniform(lo, hi)]
    t = 0.0
    while t <= n_frames + 1:
        t += rng.uniform(*gaps)
        times.append(t)
        vals.append(rng.uniform(lo, hi))
    if start is not None:
        vals[0] = start
    return _Spline(times, vals)


# --------------------------------------------------------------------------------------------------- sprites
def _shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """Anti-aliased float32 mask h×w of ``shape`` (drawn 4× larger and averaged down)."""
    import cv2

    if shape == "rect":
        return np.ones((h, w), np.float32)
    S = 4
    big = np.zeros((h * S, w * S), np.uint8)
    if shape == "ellipse":
        cv2.ellipse(big, (((w * S - 1) / 2, (h * S - 1) / 2), (w * S - 2, h * S - 2), 0), 255, -1)
    else:  # rounded rectangle
        r = max(1, int(0.2 * min(w, h) * S))
        cv2.rectangle(big, (r, 0), (w * S - 1 - r, h * S - 1), 255, -1)
        cv2.rectangle(big, (0, r), (w * S - 1, h * S - 1 - r), 255, -1)
        for cx, cy in ((r, r), (w * S - 1 - r, r), (r, h * S - 1 - r), (w * S - 1 - r, h * S - 1 - r)):
            cv2.circle(big, (cx, cy), r, 255, -1)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@dataclass
class _Sprite:
    rgba: np.ndarray  # (h, w, 4) float32, linear colour premultiplied by alpha, 2 px transparent border
    name: str
    source: str
    shape: str

    @property
    def size(self) -> tuple[int, int]:
        return self.rgba.shape[1] - 4, self.rgba.shape[0] - 4


def _make_sprite(crop: np.ndarray, shape: str, out_w: int, out_h: int, name: str, source: str,
                 tint: np.ndarray | None = None) -> _Sprite:
    import cv2

    out_w, out_h = max(4, int(out_w)), max(4, int(out_h))
    interp = cv2.INTER_AREA if out_w < crop.shape[1] else cv2.INTER_CUBIC
    tex = cv2.resize(crop, (out_w, out_h), interpolation=interp)
    lin = _TO_LINEAR[tex]
    if tint is not None:
        lin = lin * tint.astype(np.float32)
    mask = _shape_mask(shape, out_w, out_h)
    rgba = np.zeros((out_h + 4, out_w + 4, 4), np.float32)
    rgba[2:-2, 2:-2, :3] = lin * mask[..., None]
    rgba[2:-2, 2:-2, 3] = mask
    return _Sprite(rgba, name, source, shape)


def _crop(photo_key: str, obj: photos.ObjectCrop, rng, jitter: float = 0.0, hue: float = 0.0,
          sat: float = 1.0, flip: bool = False) -> np.ndarray:
    """The pixels of ``obj`` (BGR uint8), optionally shifted by ``jitter`` × its size, recoloured and mirrored."""
    import cv2

    img = photos.load_image(photo_key)
    if img.ndim == 4:  # a stack of faces: rect[0] is the index
        crop = img[obj.rect[0]]
    else:
        x, y, w, h = obj.rect
        if jitter:
            x += int(round(rng.uniform(-jitter, jitter) * w))
            y += int(round(rng.uniform(-jitter, jitter) * h))
        H, W = img.shape[:2]
        x, y = min(max(0, x), max(0, W - w)), min(max(0, y), max(0, H - h))
        crop = img[y:y + h, x:x + w]
    if flip:
        crop = crop[:, ::-1]
    if hue or sat != 1.0:
        hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + int(round(hue))) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
        crop = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    return np.ascontiguousarray(crop)


def _textured_rect(img: np.ndarray, rng, min_frac=0.15, max_frac=0.4, tries=8) -> tuple[int, int, int, int]:
    """The most textured of a few random rectangles of ``img`` (so patches are not flat sky)."""
    import cv2

    H, W = img.shape[:2]
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    best, best_score = None, -1.0
    for _ in range(tries):
        side = rng.uniform(min_frac, max_frac) * min(H, W)
        aspect = _loguniform(rng, 0.65, 1.5)
        w, h = max(8, int(side * math.sqrt(aspect))), max(8, int(side / math.sqrt(aspect)))
        w, h = min(w, W), min(h, H)
        x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        patch = grey[y:y + h, x:x + w]
        # float64 on purpose: written as ``... + patch.std() * 0.3`` the float32 std made the score float64 under
        # numpy 1 and float32 under numpy 2 (NEP 50), and a near tie then picks another rectangle.
        score = _texture_score(np.abs(np.diff(patch, axis=1)).mean() + np.abs(np.diff(patch, axis=0)).mean(),
                               patch.std())
        if score > best_score:
            best, best_score = (x, y, w, h), score
    return best


def _texture_score(gradient, std) -> float:
    """Mean absolute gradient plus 0.3 × standard deviation, in float64 whatever the inputs' type (the value numpy 1
    computed for float32 inputs, which every set made so far used)."""
    return float(gradient) + float(std) * 0.3


# --------------------------------------------------------------------------------------------------- scene
@dataclass
class _Layer:
    kind: str  # "target", "distractor", "occluder"
    sprite: _Sprite
    center: object  # t -> (..., 2) screen px (before shake)
    scale: object  # t -> (...)
    angle: object  # t -> (...) degrees
    gain: object  # t -> (...)
    front: bool = False  # in front of the target (counts for its visibility)
    info: dict = field(default_factory=dict)


class SyntheticScene:
    """One synthetic sequence: its ground truth (computed at construction) and its frames (rendered on demand)."""

    def __init__(self, config: SynthConfig, index: int):
        self.config, self.seed, self.index = config, int(config.seed), int(index)
        rng = sequence_rng(config.seed, config.split, index)
        # "mixed" draws the level from its own stream, so the scene (and its sharp frames) is the same at every level
        pick = np.random.default_rng(np.random.SeedSequence([config.seed, photos.SPLITS.index(config.split), index, 1]))
        level = config.blur if config.blur != "mixed" else ("mild", "strong")[int(pick.integers(2))]
        self.blur_level = level if isinstance(level, str) else f"{float(level):g}"
        self.exposure = exposure_of(level)
        self._patch_rng = np.random.default_rng(
            np.random.SeedSequence([config.seed, photos.SPLITS.index(config.split), index, 2]))
        for attempt in range(8):
            self._build(rng)
            self.attempts = attempt + 1
            if self._ground_truth_at(0)[2] == 8:  # the first frame (tracker init) shows the whole target
                break
        self._ground_truth()

    # ----------------------------------------------------------------------------------------- building
    def _build(self, rng: np.random.Generator) -> None:
        import cv2

        cfg = self.config
        W, H = cfg.size
        N = cfg.frames
        diag = math.hypot(W, H)
        pool = photos.available(cfg.split)
        sources = [p for p in pool if photos.objects_of(p.key)]
        backs = [p for p in pool if p.background]
        if not sources or not backs:
            raise DatasetError(f"the installed photo pool of split {cfg.split!r} has no target or background photo",
                               fix="reinstall scikit-image (pip install 'edgetrack[eval]')")
        pace = rng.uniform(0.6, 1.4) * cfg.speed  # slow and fast sequences

        # ---- target
        src = sources[int(rng.integers(len(sources)))]
        objs = photos.objects_of(src.key)
        generic = (src.auto != "faces" or cfg.patch_photos == "all") and rng.random() < cfg.patches
        if generic and cfg.patch_photos == "all":
            # From its own stream, so the main one draws as it does with patches from the object photos.
            anywhere = [p for p in pool if p.auto != "faces"]
            src = anywhere[int(self._patch_rng.integers(len(anywhere)))]
        if generic:
            img = photos.load_image(src.key)
            rect = _textured_rect(img, rng)
            obj = photos.ObjectCrop(f"{src.key}_patch", rect, str(rng.choice(photos.SHAPES)))
        else:
            obj = objs[int(rng.integers(len(objs)))]
        native_w, native_h = obj.rect[2], obj.rect[3]
        long_side = min(rng.uniform(0.16, 0.32) * H, 2.6 * max(native_w, native_h))
        long_side = max(long_side, 12.0)
        k = long_side / max(native_w, native_h)
        tw, th = max(6, int(round(native_w * k))), max(6, int(round(native_h * k)))
        target_sprite = _make_sprite(_crop(src.key, obj, rng, jitter=0.04 if not generic else 0.0), obj.shape,
                                     tw, th, obj.name, src.key)
        tsize = float(max(tw, th))

        # target path: inside the frame with a margin; sometimes one waypoint outside (it leaves for a while)
        margin = np.array([0.1 * W + 0.3 * tw, 0.1 * H + 0.3 * th])
        lo, hi = margin, np.array([W, H]) - margin
        hi = np.maximum(hi, lo + 1)
        start = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo))
        times, pts = _walk(rng, N, start, lo, hi, (0.012 * diag * pace, 0.06 * diag * pace), (6, 18))
        leaves = rng.random() < 0.15 and N >= 30
        if leaves:
            j = int(rng.integers(2, len(pts) - 1)) if len(pts) > 3 else 1
            if times[j] >= 10:
                side = int(rng.integers(4))
                p = pts[j].copy()
                if side == 0:
                    p[0] = -0.6 * tw
                elif side == 1:
                    p[0] = W + 0.6 * tw
                elif side == 2:
                    p[1] = -0.6 * th
                else:
                    p[1] = H + 0.6 * th
                pts[j] = p
        t_center = _path(times, pts)
        amax = rng.uniform(0, 15)
        target = _Layer(
            "target", target_sprite, t_center,
            _Exp(_scalar(rng, N, math.log(0.72), math.log(1.38), (15, 40), start=0.0)),
            _scalar(rng, N, -amax, amax, (12, 35), start=rng.uniform(-amax, amax) * 0.5),
            _scalar(rng, N, 0.7, 1.3, (20, 50), start=1.0),
            info={"object": obj.name, "photo": src.key, "generic": generic, "leaves_frame": bool(leaves)},
        )

        # ---- distractors: look-alikes orbiting near the target
        n_d = int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))
        layers_behind, layers_front = [], []
        kinds_d = []
        for _ in range(n_d):
            siblings = [o for o in objs if obj.group and o.group == obj.group and o.rect != obj.rect]
            r = rng.random()
            if siblings and r < 0.65:
                o = siblings[int(rng.integers(len(siblings)))]
                crop = _crop(src.key, o, rng, jitter=0.03)
                how = "sibling"
            elif generic and r < 0.8:
                x, y, w, h = obj.rect
                img = photos.load_image(src.key)
                dx, dy = rng.uniform(-1, 1, 2) * np.array([w, h])
                o = photos.ObjectCrop(obj.name, (int(x + dx), int(y + dy), w, h), obj.shape)
                crop = _crop(src.key, o, rng)
                how = "neighbour"
            else:
                crop = _crop(src.key, obj, rng, jitter=0.08, hue=rng.uniform(-10, 10), sat=rng.uniform(0.7, 1.3),
                             flip=bool(rng.random() < 0.6))
                how = "twin"
            ds = rng.uniform(0.8, 1.2)
            sprite = _make_sprite(crop, obj.shape, tw * ds, th * ds, obj.name, src.key)
            off_times, offs = [], []
            t = -rng.uniform(8, 25)
            while t <= N + 25:
                rad = rng.uniform(0.6, 3.0) * tsize
                if abs(t) < 25:
                    rad = max(rad, 2.0 * tsize)
                ang = rng.uniform(0, 2 * math.pi)
                off_times.append(t)
                offs.append(np.array([math.cos(ang), math.sin(ang)]) * rad)
                t += rng.uniform(8, 25)
            offset = _Spline(off_times, offs)
            front = bool(rng.random() < 0.3)
            da = rng.uniform(0, 20)
            layer = _Layer(
                "distractor", sprite, _Sum(t_center, offset),
                _Exp(_scalar(rng, N, math.log(0.72), math.log(1.38), (15, 40))),
                _scalar(rng, N, -da, da, (12, 35)),
                _scalar(rng, N, 0.7, 1.3, (20, 50)),
                front=front, info={"how": how, "front": front},
            )
            kinds_d.append(how)
            (layers_front if front else layers_behind).append(layer)

        # ---- background and camera
        bg_spec = [p for p in backs if p.key != src.key]
        bg_spec = (bg_spec or backs)[int(rng.integers(len(bg_spec or backs)))]
        bg_img = photos.load_image(bg_spec.key)
        if rng.random() < 0.5:
            bg_img = bg_img[:, ::-1]
        ph, pw = bg_img.shape[:2]
        z_lo, z_hi = 0.95, 1.12
        sb = max(1.7 * W / pw, 1.7 * H / ph, 1.0)
        bg = cv2.resize(np.ascontiguousarray(bg_img), (int(round(pw * sb)), int(round(ph * sb))),
                        interpolation=cv2.INTER_CUBIC if sb > 1 else cv2.INTER_AREA)
        bg_lin = _TO_LINEAR[bg]
        if _is_grey(bg_img):
            bg_lin = bg_lin * rng.uniform(0.85, 1.15, 3).astype(np.float32)
        Hb, Wb = bg_lin.shape[:2]
        half = np.array([W / 2 / z_lo + 0.05 * H, H / 2 / z_lo + 0.05 * W])
        c_lo, c_hi = half, np.array([Wb, Hb]) - half
        mid = np.array([Wb / 2, Hb / 2])
        c_lo, c_hi = np.where(c_lo < c_hi, c_lo, mid), np.where(c_lo < c_hi, c_hi, mid)
        cam_style = rng.choice(["pan", "pan", "pan", "still", "fast"])
        cam_speed = {"pan": (0.004, 0.03), "still": (0.0005, 0.003), "fast": (0.02, 0.05)}[str(cam_style)]
        c_start = rng.uniform(c_lo, c_hi) if np.all(c_hi > c_lo) else mid
        ctimes, cpts = _walk(rng, N, c_start, c_lo, c_hi,
                             (cam_speed[0] * diag * pace, cam_speed[1] * diag * pace), (6, 20))
        self.cam_center = _path(ctimes, cpts)
        self.cam_zoom = _scalar(rng, N, z_lo, z_hi, (20, 50), start=1.0)
        roll = rng.uniform(0, 3)
        self.cam_roll = _scalar(rng, N, -roll, roll, (20, 50))
        shake = rng.uniform(1, 4) * H / 360 if rng.random() < 0.5 else 0.0
        if shake:
            st, sv, t = [], [], -2.0
            while t <= N + 2:
                st.append(t)
                sv.append(rng.normal(0, shake, 2))
                t += rng.uniform(1.0, 2.0)
            self.shake = _Spline(st, sv)
        else:
            self.shake = _Const([0.0, 0.0])
        self.light = [_scalar(rng, N, 0.8, 1.2, (25, 60), start=1.0)] + [
            _scalar(rng, N, -0.05, 0.05, (25, 60)) for _ in range(3)]

        # ---- occluders: panels and bars crossing in front; big plates hiding the target for a moment
        occluders = []
        n_occ = 1 + int(rng.poisson(N / 80.0)) if rng.random() < cfg.occlusion else 0
        occ_sources = [p for p in backs if p.key != bg_spec.key] or backs
        for _ in range(n_occ):
            tc = rng.uniform(min(8.0, N - 1.0), N - 0.5)
            kind = str(rng.choice(["panel", "bar", "plate"], p=[0.45, 0.3, 0.25]))
            o_src = occ_sources[int(rng.integers(len(occ_sources)))]
            o_img = photos.load_image(o_src.key)
            follow = 0.0
            if kind == "bar":
                thick, length = rng.uniform(0.2, 0.45) * min(tw, th), rng.uniform(2.5, 4.0) * tsize
                vertical = rng.random() < 0.6
                ow, oh = (thick, length) if vertical else (length, thick)
                base_dir = 0.0 if vertical else math.pi / 2
                ang = base_dir + rng.uniform(-0.35, 0.35) + (math.pi if rng.random() < 0.5 else 0.0)
                speed = rng.uniform(0.03, 0.08) * diag * pace
                shape = "rect"
                off = rng.normal(0, 0.2, 2) * np.array([tw, th])
            elif kind == "panel":
                ow, oh = rng.uniform(0.5, 1.3) * tw, rng.uniform(0.6, 1.5) * th
                ang = rng.uniform(0, 2 * math.pi)
                speed = rng.uniform(0.03, 0.08) * diag * pace
                shape = str(rng.choice(photos.SHAPES))
                off = rng.normal(0, 0.25, 2) * np.array([tw, th])
            else:
                # just larger than the target's extent at tc; it slides over it at a relative speed that keeps
                # the target fully hidden for a few frames, and travels with the target only around tc
                ext = float(target.scale(np.array([tc]))[0]) * math.hypot(tw, th)
                ow, oh = ext * rng.uniform(1.8, 2.4), ext * rng.uniform(1.8, 2.4)
                ang = rng.uniform(0, 2 * math.pi)
                hidden = rng.uniform(2.0, 6.0)  # frames fully hidden (about a third of the frames it overlaps)
                speed = max(1.0, (min(ow, oh) - ext) / hidden)
                shape = "rect"
                off = np.zeros(2)
                follow = 1.5 * (min(ow, oh) + ext) / speed  # width (frames) of the travel-along window
            rect = _textured_rect(o_img, rng, 0.3, 0.7, tries=3)
            x, y, w, h = rect
            crop = o_img[y:y + h, x:x + w]
            tint = rng.uniform(0.7, 1.3, 3) if _is_grey(o_img) else None
            sprite = _make_sprite(np.ascontiguousarray(crop), shape, ow, oh, kind, o_src.key, tint=tint)
            vel = speed * np.array([math.cos(ang), math.sin(ang)])
            occluders.append(_Layer(
                "occluder", sprite, _Crossing(t_center, tc, off, vel, follow),
                _Const(1.0), _Const(rng.uniform(-8, 8)), _scalar(rng, N, 0.8, 1.2, (20, 50)), front=True,
                info={"kind": kind, "t": round(float(tc), 2), "photo": o_src.key},
            ))

        self.bg_lin = np.ascontiguousarray(bg_lin, dtype=np.float32)
        self.layers = layers_behind + [target] + layers_front + occluders
        self.target = target
        self.meta_facts = {
            "object_class": obj.name,
            "target_photo": src.key,
            "background_photo": bg_spec.key,
            "distractors": ",".join(kinds_d) if kinds_d else "none",
            "occluders": ",".join(o.info["kind"] for o in occluders) if occluders else "none",
            "camera": f"{cam_style}{'+shake' if shake else ''}",
        }
        self._timeline()

    # ----------------------------------------------------------------------------------------- timing
    def _timeline(self) -> None:
        """Sub-frame times of every frame; ``K`` grows with the fastest motion so streaks stay continuous."""
        cfg = self.config
        N, e = cfg.frames, self.exposure
        k0 = base_subframes(e)
        idx = np.arange(N, dtype=np.float64)
        if e > 0:
            ta, tb = idx - e / 2, idx + e / 2
            travel = self._bg_travel(ta, tb)
            W, H = cfg.width, cfg.height
            for layer in self.layers:
                ca, cb, cm = layer.center(ta), layer.center(tb), layer.center(idx)
                sw, sh = layer.sprite.size
                rad = 0.5 * math.hypot(sw, sh) * np.maximum(layer.scale(ta), layer.scale(tb))
                d = np.hypot(*(cb - ca).T) + np.radians(np.abs(layer.angle(tb) - layer.angle(ta))) * rad \
                    + np.abs(layer.scale(tb) - layer.scale(ta)) * rad
                onscreen = (cm[:, 0] > -rad) & (cm[:, 0] < W + rad) & (cm[:, 1] > -rad) & (cm[:, 1] < H + rad)
                travel = np.maximum(travel, np.where(onscreen, d, 0.0))
            travel += np.hypot(*(self.shake(tb) - self.shake(ta)).T)
            ks = np.ceil(travel / SUBFRAME_STEP_PX).astype(int) + 1
            ks = np.clip(ks, k0, MAX_SUBFRAMES)
            ks = ks + (ks % 2 == 0)
            ks = np.minimum(ks, MAX_SUBFRAMES if MAX_SUBFRAMES % 2 else MAX_SUBFRAMES - 1)
        else:
            ks = np.ones(N, dtype=int)
            travel = np.zeros(N)
        self.subframes = ks
        self.travel = travel
        times, mids, starts = [], [], []
        for i, k in enumerate(ks):
            starts.append(len(times))
            if k == 1:
                mids.append(len(times))
                times.append(float(i))
                continue
            m = (k - 1) // 2
            for j in range(k):
                times.append(i + e * (j - m) / (k - 1))
            mids.append(starts[-1] + m)
        self.times = np.asarray(times)
        self.starts, self.mids = np.asarray(starts), np.asarray(mids)
        T = self.times
        self._cam = (self.cam_center(T), self.cam_zoom(T), self.cam_roll(T), self.shake(T))
        self._light = np.stack([self.light[0](T) + c(T) for c in self.light[1:]], axis=-1)  # (n, 3) as RGB
        self._poses = [(la.center(T), la.scale(T), la.angle(T), la.gain(T)) for la in self.layers]

    def _bg_travel(self, ta, tb) -> np.ndarray:
        W, H = self.config.width, self.config.height
        z = self.cam_zoom(ta)
        d = np.hypot(*(self.cam_center(tb) - self.cam_center(ta)).T) * z
        r = 0.5 * math.hypot(W, H)
        d += np.radians(np.abs(self.cam_roll(tb) - self.cam_roll(ta))) * r
        d += np.abs(self.cam_zoom(tb) - z) / z * r
        return d

    # ----------------------------------------------------------------------------------------- rendering
    def _affine(self, li: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """2×2 matrix and translation mapping sprite pixels to screen pixels for layer ``li`` at sub-frame ``j``."""
        c, s, a, _ = self._poses[li]
        sprite = self.layers[li].sprite.rgba
        th = math.radians(a[j])
        A = s[j] * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        sh, sw = sprite.shape[:2]
        center = c[j] + self._cam[3][j]
        t = center - A @ np.array([(sw - 1) / 2, (sh - 1) / 2])
        return A, t

    def _extent(self, A, t, sprite) -> tuple[int, int, int, int]:
        sh, sw = sprite.shape[:2]
        corners = A @ np.array([[-0.5, sw - 0.5, sw - 0.5, -0.5], [-0.5, -0.5, sh - 0.5, sh - 0.5]]) + t[:, None]
        return (int(math.floor(corners[0].min())) - 1, int(math.floor(corners[1].min())) - 1,
                int(math.ceil(corners[0].max())) + 2, int(math.ceil(corners[1].max())) + 2)

    def _warp(self, sprite, A, t, x0, y0, x1, y1):
        M = np.hstack([A, (t - np.array([x0, y0]))[:, None]])
        return _warp_affine(sprite, M, (x1 - x0, y1 - y0))

    def _render_linear(self, j: int, kinds=None, light: bool = True) -> np.ndarray:
        """Sub-frame ``j`` in linear RGB-in-BGR-order float32 (H, W, 3). ``kinds`` picks layers (None: all)."""
        import cv2

        W, H = self.config.width, self.config.height
        cc, zz, rr, sk = self._cam
        z, th = zz[j], math.radians(rr[j])
        B = np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]]) / z  # screen -> bg
        origin = np.array([(W - 1) / 2, (H - 1) / 2]) + sk[j]
        M = np.hstack([B, (cc[j] - B @ origin)[:, None]])
        frame = _warp_affine(self.bg_lin, M, (W, H), inverse=True, border=cv2.BORDER_REFLECT_101)
        if kinds is None or "background" in kinds:
            pass
        else:
            frame[:] = 0
        for li, layer in enumerate(self.layers):
            if kinds is not None and layer.kind not in kinds:
                continue
            A, t = self._affine(li, j)
            x0, y0, x1, y1 = self._extent(A, t, layer.sprite.rgba)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            patch = self._warp(layer.sprite.rgba, A, t, cx0, cy0, cx1, cy1)
            roi = frame[cy0:cy1, cx0:cx1]
            np.multiply(roi, 1.0 - patch[..., 3:4], out=roi)
            colour = patch[..., :3]
            np.multiply(colour, np.float32(self._poses[li][3][j]), out=colour)
            np.add(roi, colour, out=roi)
        if light:
            frame *= self._light[j][::-1].astype(np.float32)  # light is (R, G, B) gains; frames are BGR
        return frame

    def render_sharp(self, i: int, kinds=None) -> np.ndarray:
        """The sharp frame ``i`` (BGR uint8); ``kinds`` ⊂ {"background", "target", "distractor", "occluder"}."""
        return _to_srgb(self._render_linear(int(self.mids[i]), kinds))

    def render(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(sharp, blurred) frame ``i``, BGR uint8: the middle sub-frame and the mean of all sub-frames."""
        k, s0, mid = int(self.subframes[i]), int(self.starts[i]), int(self.mids[i])
        acc = None
        sharp = None
        # the global light drifts slowly: applied once per output frame (its mean over the exposure for the blur)
        for j in range(s0, s0 + k):
            lin = self._render_linear(j, light=False)
            if j == mid:
                sharp = _to_srgb(lin * self._light[j][::-1].astype(np.float32))
            if acc is None:
                acc = lin
            else:
                acc += lin
        if k == 1:
            return sharp, sharp
        gain = self._light[s0:s0 + k].mean(axis=0)[::-1].astype(np.float32) / np.float32(k)
        return sharp, _to_srgb(acc * gain)

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self.config.frames):
            yield self.render(i)

    # ----------------------------------------------------------------------------------------- ground truth
    def _ground_truth_at(self, i: int, j: int | None = None) -> tuple[np.ndarray, float, int]:
        """(box, visible ratio, cover class) of the target in the sharp sub-frame of frame ``i``."""
        if j is None:
            # before _timeline ran (first-frame check) evaluate at t = i directly
            return self._gt_direct(float(i))
        return self._gt_from(lambda li: self._affine(li, j))

    def _gt_direct(self, t: float):
        def aff(li):
            layer = self.layers[li]
            tt = np.array([t])
            c, s, a = layer.center(tt)[0], float(layer.scale(tt)[0]), float(layer.angle(tt)[0])
            th = math.radians(a)
            A = s * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
            sh, sw = layer.sprite.rgba.shape[:2]
            center = c + self.shake(np.array([t]))[0]
            return A, center - A @ np.array([(sw - 1) / 2, (sh - 1) / 2])
        return self._gt_from(aff)

    def _gt_from(self, aff) -> tuple[np.ndarray, float, int]:
        W, H = self.config.width, self.config.height
        ti = self.layers.index(self.target)
        A, t = aff(ti)
        sprite = np.ascontiguousarray(self.target.sprite.rgba[..., 3])
        x0, y0, x1, y1 = self._extent(A, t, sprite)
        full = self._warp(sprite, A, t, x0, y0, x1, y1)
        total = float(full.sum())
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        nan = np.full(4, np.nan)
        if cx1 <= cx0 or cy1 <= cy0 or total <= 0:
            return nan, 0.0, 0
        vis = full[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].copy()
        for li in range(ti + 1, len(self.layers)):
            layer = self.layers[li]
            if not layer.front:
                continue
            B, u = aff(li)
            ox0, oy0, ox1, oy1 = self._extent(B, u, layer.sprite.rgba)
            if ox1 <= cx0 or oy1 <= cy0 or ox0 >= cx1 or oy0 >= cy1:
                continue
            occ = self._warp(np.ascontiguousarray(layer.sprite.rgba[..., 3]), B, u, cx0, cy0, cx1, cy1)
            vis *= 1.0 - occ
        ratio = min(1.0, float(vis.sum()) / total)
        mask = vis >= 0.5
        if not mask.any():
            return nan, 0.0, 0
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = np.array([cx0 + cols[0], cy0 + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], np.float64)
        return box, ratio, cover_class(ratio)

    def _ground_truth(self) -> None:
        N = self.config.frames
        boxes, ratios, cover = np.full((N, 4), np.nan), np.zeros(N), np.zeros(N, np.int64)
        for i in range(N):
            boxes[i], ratios[i], cover[i] = self._ground_truth_at(i, int(self.mids[i]))
        self.boxes, self.visible, self.cover = boxes, ratios, cover
        self.absent = (cover == 0).astype(np.int64)
        c = self.target.center(np.arange(N, dtype=np.float64))
        speed = np.zeros(N)
        speed[1:] = np.hypot(*np.diff(c, axis=0).T)
        speed[0] = speed[1] if N > 1 else 0.0
        self.target_speed = speed

    # ----------------------------------------------------------------------------------------- facts
    def meta(self) -> dict[str, str]:
        cfg = self.config
        k = self.subframes
        return {
            "object_class": self.meta_facts["object_class"],
            "motion_class": "synthetic",
            "major_class": self.meta_facts["target_photo"],
            "root_class": "object",
            "motion_adverb": "fast" if np.median(self.target_speed) > 0.03 * math.hypot(*cfg.size) else "slow",
            "resolution": f"({cfg.width}, {cfg.height})",
            "blur": self.blur_level,
            "exposure": f"{self.exposure:g}",
            "subframes": f"{int(k.min())}-{int(k.max())}",
            "gamma": f"{GAMMA:g}",
            "target_photo": self.meta_facts["target_photo"],
            "background_photo": self.meta_facts["background_photo"],
            "distractors": self.meta_facts["distractors"],
            "occluders": self.meta_facts["occluders"],
            "camera": self.meta_facts["camera"],
            "split": cfg.split,
            "seed": str(self.seed),
            "index": str(self.index),
            "generator": "edgetrack.data.synth",
        }

    def facts(self) -> dict:
        """What synth.json records about this sequence."""
        k = self.subframes
        return {
            "index": self.index,
            **self.meta_facts,
            "blur": self.blur_level,
            "exposure": round(self.exposure, 4),
            "frames": self.config.frames,
            "absent_frames": int(self.absent.sum()),
            "occluded_frames": int((self.cover < 8).sum()),
            "subframes": [int(k.min()), int(k.max())],
            "target_speed_px": [round(float(np.median(self.target_speed)), 2),
                                round(float(self.target_speed.max()), 2)],
            "redraws": self.attempts - 1,
            "highlights": self.highlights(),
        }

    def highlights(self) -> dict[str, int]:
        """Frames worth looking at: the fastest, the most hidden, the one with a distractor closest to the target."""
        N = self.config.frames
        out = {"fastest": int(np.argmax(self.target_speed))}
        out["most_hidden"] = int(np.argmin(self.cover * 10 + (1 - self.visible)))
        idx = np.arange(N, dtype=np.float64)
        tc = self.target.center(idx)
        dists = [np.hypot(*(d.center(idx) - tc).T) for d in self.layers if d.kind == "distractor"]
        out["closest_distractor"] = int(np.argmin(np.min(dists, axis=0))) if dists else N // 2
        return out


class _Exp:
    def __init__(self, f):
        self.f = f

    def __call__(self, t):
        return np.exp(self.f(t))


class _Sum:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def __call__(self, t):
        return self.a(t) + self.b(t)


class _Crossing:
    """An occluder's path: through the target's position at ``tc`` (plus ``off``) with velocity ``vel``.
    ``follow`` > 0 (frames) makes it also travel with the target within about that window around ``tc`` (a
    plate sliding over the target, hiding it for a moment), and leaves it behind outside it."""

    def __init__(self, target_center, tc, off, vel, follow):
        self.tcenter, self.tc, self.off, self.vel, self.follow = target_center, tc, off, vel, follow
        self.p0 = target_center(np.array([tc]))[0]

    def __call__(self, t):
        t = np.asarray(t, dtype=np.float64)
        p = self.p0 + self.off + (t - self.tc)[..., None] * self.vel
        if self.follow:
            w = np.exp(-0.5 * ((t - self.tc) / (0.5 * self.follow)) ** 4)[..., None]  # flat top, smooth sides
            p = p + w * (self.tcenter(t) - self.p0)
        return p


def _is_grey(img: np.ndarray) -> bool:
    return img.ndim == 3 and img.shape[2] == 3 and bool(
        np.array_equal(img[::7, ::7, 0], img[::7, ::7, 1]) and np.array_equal(img[::7, ::7, 1], img[::7, ::7, 2]))


# ------------------------------------------------------------------------- pixels that do not depend on the libraries
# The two steps whose results changed between OpenCV 4.10 and 5.0 are done here so that a seed gives the same bytes
# with either. Both reproduce exactly what OpenCV 4.10 computed, so every set made before stays byte-identical;
# tests/test_synth_versions.py holds them to that.

_AB_BITS, _INTER_BITS = 10, 5  # OpenCV's fixed point for warp coordinates: 1/1024 px, rounded to 1/32 px


def _affine_maps(M, dsize: tuple[int, int], inverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-point maps (int16 x/y pairs and uint16 1/32-px fractions, cv2.remap's CV_16SC2 + CV_16UC1) that
    OpenCV 4.x's warpAffine built for ``M``, operation for operation (imgwarp.cpp, WarpAffineInvoker)."""
    m = np.array(M, dtype=np.float64).reshape(6)
    if not inverse:  # M maps source to destination; the maps need the inverse, computed as OpenCV does
        d = m[0] * m[4] - m[1] * m[3]
        d = 1.0 / d if d != 0 else 0.0
        a11, a22 = m[4] * d, m[0] * d
        m[0], m[1], m[3], m[4] = a11, m[1] * -d, m[3] * -d, a22
        m[2], m[5] = -m[0] * m[2] - m[1] * m[5], -m[3] * m[2] - m[4] * m[5]
    width, height = dsize
    scale = float(1 << _AB_BITS)
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)

    def fixed(v):  # saturate_cast<int>(double): round half to even, clamp to int32
        return np.minimum(np.maximum(np.rint(v), -2.0 ** 31), 2.0 ** 31 - 1).astype(np.int64)

    half = 1 << (_AB_BITS - _INTER_BITS - 1)  # rounds the 1/1024-px position to the nearest 1/32 px
    one = (1 << _AB_BITS) - 1

    def grid(row, col):
        """Source position of every pixel, row part + column part in 1/1024 px: whole pixels (int16, saturated as
        OpenCV does) and the remainder (0..2046). Splitting the parts first leaves only small-integer additions per
        pixel: a fifth of the time of 64-bit arithmetic on every pixel."""
        rem = (row & one).astype(np.int16)[:, None] + (col & one).astype(np.int16)[None, :]
        rw, cw = row >> _AB_BITS, col >> _AB_BITS
        if rw.min() + cw.min() >= -32768 and rw.max() + cw.max() + 1 <= 32767:
            whole = rw.astype(np.int16)[:, None] + cw.astype(np.int16)[None, :]
            whole += rem >> _AB_BITS
        else:
            whole = np.clip(rw[:, None] + cw[None, :] + (rem >> _AB_BITS), -32768, 32767).astype(np.int16)
        return whole, rem

    wx, rx = grid(fixed((m[1] * ys + m[2]) * scale) + half, fixed(m[0] * xs * scale))
    wy, ry = grid(fixed((m[4] * ys + m[5]) * scale) + half, fixed(m[3] * xs * scale))
    # 1/32-px fraction index y * 32 + x: bits 5..9 of each remainder (AB_BITS - INTER_BITS == INTER_BITS == 5)
    mask = ((1 << _INTER_BITS) - 1) << (_AB_BITS - _INTER_BITS)
    frac = (ry & mask) | ((rx & mask) >> _INTER_BITS)
    return np.stack([wx, wy], axis=-1), frac.view(np.uint16)


def _warp_affine(src: np.ndarray, M, dsize: tuple[int, int], *, inverse: bool = False, border: int | None = None):
    """``cv2.warpAffine(src, M, dsize, INTER_LINEAR [| WARP_INVERSE_MAP], border, 0)`` as OpenCV 4.10 computed it.

    Why not warpAffine itself: 4.10 rounds every source position to 1/32 px and remaps with fixed-point maps;
    OpenCV 4.11+ and 5 compute positions in float, which moves interpolated values by up to 2 % of their range and
    ground-truth boxes (alpha >= 0.5) by a pixel. ``cv2.remap`` with fixed-point maps gives the same bytes in both.
    """
    import cv2

    xy, frac = _affine_maps(M, dsize, inverse)
    return cv2.remap(src, xy, frac, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT if border is None else border, borderValue=0)


# sRGB encoding of a linear value x in [0, 1]: code v for x at or above the v-th of these float32 bit patterns.
# They are exactly where OpenCV 4.10's cv2.convertScaleAbs(cv2.pow(x, 1/2.2), alpha=255) stepped up on the machine
# every set so far was made on (AMD EPYC, AVX-512; found by running it on every float32 in [0, 1]: monotone, 255
# steps). That pow runs Intel IPP, whose results change with the IPP release and the CPU: OpenCV 5.0's IPP moves 185
# of the steps by up to 8 ulps (about 1 pixel value in 100 000 one level off). Each step lies within 13 ulps of
# ((v - 0.5) / 255) ** 2.2.
_SRGB_STEPS = np.array([
    0x35944e10, 0x374fd767, 0x381fdc24, 0x38a7916a, 0x3911a3c0, 0x3962782a, 0x39a38709, 0x39e00901,
    0x3a13870e, 0x3a3c6d5c, 0x3a6ad679, 0x3a8f6f81, 0x3aac50af, 0x3acc1b24, 0x3aeeda6f, 0x3b0a4cba,
    0x3b1eb141, 0x3b349fba, 0x3b4c1cc2, 0x3b652cd8, 0x3b7fd448, 0x3b8e0b83, 0x3b9cfc9e, 0x3bacbf46,
    0x3bbd554f, 0x3bcec088, 0x3be102a8, 0x3bf41d4b, 0x3c04090e, 0x3c0e7151, 0x3c194835, 0x3c248e6e,
    0x3c3044c6, 0x3c3c6be3, 0x3c490478, 0x3c560f22, 0x3c638cae, 0x3c717d97, 0x3c7fe29e, 0x3c875e24,
    0x3c8f05a4, 0x3c96e804, 0x3c9f05a5, 0x3ca75ebb, 0x3caff3a9, 0x3cb8c49d, 0x3cc1d1e1, 0x3ccb1bb1,
    0x3cd4a261, 0x3cde6627, 0x3ce8674b, 0x3cf2a5fe, 0x3cfd2285, 0x3d03ee90, 0x3d096b07, 0x3d0f06bc,
    0x3d14c1dc, 0x3d1a9c74, 0x3d2096a8, 0x3d26b08f, 0x3d2cea51, 0x3d3343fe, 0x3d39bdac, 0x3d40577f,
    0x3d471194, 0x3d4debfa, 0x3d54e6d7, 0x3d5c023b, 0x3d633e3e, 0x3d6a9aff, 0x3d721899, 0x3d79b70f,
    0x3d80bb4a, 0x3d84ab97, 0x3d88ac80, 0x3d8cbe0e, 0x3d90e048, 0x3d95133f, 0x3d9956fb, 0x3d9dab86,
    0x3da210f6, 0x3da68748, 0x3dab0e8c, 0x3dafa6c7, 0x3db4500d, 0x3db90a62, 0x3dbdd5dc, 0x3dc2b26e,
    0x3dc7a037, 0x3dcc9f37, 0x3dd1af84, 0x3dd6d115, 0x3ddc0400, 0x3de14848, 0x3de69dfc, 0x3dec0521,
    0x3df17dca, 0x3df707f6, 0x3dfca3bd, 0x3e012887, 0x3e040802, 0x3e06f053, 0x3e09e183, 0x3e0cdb8e,
    0x3e0fde79, 0x3e12ea4e, 0x3e15ff0f, 0x3e191cc3, 0x3e1c4367, 0x3e1f7302, 0x3e22aba0, 0x3e25ed3e,
    0x3e2937dd, 0x3e2c8b86, 0x3e2fe83e, 0x3e334e0a, 0x3e36bce7, 0x3e3a34dc, 0x3e3db5f5, 0x3e414025,
    0x3e44d386, 0x3e48700b, 0x3e4c15c1, 0x3e4fc4a3, 0x3e537cba, 0x3e573e0b, 0x3e5b089b, 0x3e5edc66,
    0x3e62b978, 0x3e669fd3, 0x3e6a8f74, 0x3e6e8864, 0x3e728ab5, 0x3e76964e, 0x3e7aab48, 0x3e7ec99a,
    0x3e8178a5, 0x3e83912e, 0x3e85ae70, 0x3e87d067, 0x3e89f716, 0x3e8c227d, 0x3e8e529c, 0x3e908779,
    0x3e92c11c, 0x3e94ff74, 0x3e974297, 0x3e998a75, 0x3e9bd71d, 0x3e9e2885, 0x3ea07ebd, 0x3ea2d9c1,
    0x3ea5398f, 0x3ea79e21, 0x3eaa078e, 0x3eac75bf, 0x3eaee8cd, 0x3eb160a8, 0x3eb3dd5f, 0x3eb65ee8,
    0x3eb8e548, 0x3ebb7083, 0x3ebe0099, 0x3ec0958a, 0x3ec32f61, 0x3ec5ce0e, 0x3ec871a3, 0x3ecb1a15,
    0x3ecdc778, 0x3ed079b2, 0x3ed330de, 0x3ed5ecf1, 0x3ed8adec, 0x3edb73cd, 0x3ede3ea8, 0x3ee10e67,
    0x3ee3e31e, 0x3ee6bcc5, 0x3ee99b5a, 0x3eec7ee7, 0x3eef676f, 0x3ef254e8, 0x3ef5475d, 0x3ef83eca,
    0x3efb3b36, 0x3efe3c9a, 0x3f00a17f, 0x3f022730, 0x3f03af61, 0x3f053a12, 0x3f06c747, 0x3f085703,
    0x3f09e93c, 0x3f0b7dfa, 0x3f0d1541, 0x3f0eaf06, 0x3f104b55, 0x3f11ea2b, 0x3f138b8d, 0x3f152f6c,
    0x3f16d5db, 0x3f187ecc, 0x3f1a2a50, 0x3f1bd85a, 0x3f1d88f5, 0x3f1f3c10, 0x3f20f1bf, 0x3f22a9f8,
    0x3f2464c2, 0x3f262219, 0x3f27e1fe, 0x3f29a471, 0x3f2b6979, 0x3f2d310d, 0x3f2efb34, 0x3f30c7ec,
    0x3f329738, 0x3f346915, 0x3f363d8d, 0x3f381492, 0x3f39ee30, 0x3f3bca63, 0x3f3da928, 0x3f3f8a87,
    0x3f416e83, 0x3f43550c, 0x3f453e39, 0x3f4729f3, 0x3f491855, 0x3f4b093f, 0x3f4cfcd7, 0x3f4ef2f9,
    0x3f50ebc5, 0x3f52e72b, 0x3f54e526, 0x3f56e5c8, 0x3f58e907, 0x3f5aeee2, 0x3f5cf75d, 0x3f5f0276,
    0x3f611035, 0x3f632090, 0x3f653394, 0x3f674932, 0x3f69617e, 0x3f6b7c63, 0x3f6d99f2, 0x3f6fba1e,
    0x3f71dcf8, 0x3f740270, 0x3f762a94, 0x3f785557, 0x3f7a82c8, 0x3f7cb2dc, 0x3f7ee5a1,
], dtype=np.uint32)
_SRGB_ONE = int(np.float32(1.0).view(np.uint32))
_SRGB_BUCKET = 15  # bits >> 15: steps are more than 2**15 ulps apart, so a bucket holds at most one


def _srgb_tables() -> tuple[np.ndarray, np.ndarray]:
    buckets = _SRGB_STEPS >> _SRGB_BUCKET
    if len(np.unique(buckets)) != len(_SRGB_STEPS) or not (np.diff(_SRGB_STEPS.astype(np.int64)) > 0).all():
        raise RuntimeError("sRGB step table: steps must increase and fall in distinct buckets")  # pragma: no cover
    n = (_SRGB_ONE >> _SRGB_BUCKET) + 1
    below = np.searchsorted(buckets, np.arange(n), side="left").astype(np.uint8)  # steps in lower buckets
    step = np.full(n, np.iinfo(np.uint32).max, np.uint32)
    step[buckets] = _SRGB_STEPS
    return below, step


_SRGB_BELOW, _SRGB_STEP = _srgb_tables()


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear float32 (clipped to [0, 1]) -> gamma-encoded uint8, the same bytes with every library and CPU."""
    x = np.ascontiguousarray(np.clip(lin, 0.0, 1.0), dtype=np.float32)
    bits = np.minimum(x.view(np.uint32) & np.uint32(0x7FFFFFFF), np.uint32(_SRGB_ONE))  # -0.0 -> 0; NaN -> 1
    bucket = bits >> np.uint32(_SRGB_BUCKET)
    return _SRGB_BELOW.take(bucket) + (bits >= _SRGB_STEP.take(bucket))


def cover_class(ratio: float) -> int:
    """GOT-10k's cover label for a visible ratio: 0 hidden, 1..7 in 15 % steps, 8 fully visible."""
    if ratio <= 0.0:
        return 0
    if ratio >= 0.999:
        return 8
    return 1 + min(int(ratio / 0.15), 6)


# --------------------------------------------------------------------------------------------------- writing
def make_scene(cfg: SynthConfig, index: int) -> SyntheticScene:
    """The scene of sequence ``index`` of the set ``cfg`` describes (deterministic in (seed, split, index))."""
    return SyntheticScene(cfg, index)


def render_sequence(cfg: SynthConfig, index: int):
    """Render sequence ``index`` in memory: (sharp frames, blurred frames, boxes (N,4), absent (N,), cover (N,),
    facts)."""
    scene = make_scene(cfg, index)
    sharp, blurred = [], []
    for s, b in scene.frames():
        sharp.append(s)
        blurred.append(b)
    return sharp, blurred, scene.boxes.copy(), scene.absent.copy(), scene.cover.copy(), scene.facts()


def sequence_name(cfg: SynthConfig, index: int) -> str:
    return f"SYN_{index + 1:0{max(4, len(str(cfg.sequences)))}d}"


def write_scene(scene: SyntheticScene, out: Path, name: str) -> dict:
    """Write one scene's frames and labels into OUT/sharp, OUT/blurred (and OUT/gopro); returns its facts."""
    from edgetrack.data.got10k import frame_name, write_sequence

    cfg = scene.config
    out = Path(out)
    blurred_frames = []

    def sharp_frames():
        for sharp, blurred in scene.frames():
            blurred_frames.append(blurred)
            yield sharp

    meta = scene.meta()
    gt = np.where(np.isfinite(scene.boxes), scene.boxes, 0.0)  # GOT-10k files hold numbers; absence.label marks gaps
    labels = dict(absent=scene.absent, cover=scene.cover, meta=meta, jpeg_quality=cfg.jpeg_quality)
    write_sequence(out / "sharp" / name, sharp_frames(), gt, **labels)
    write_sequence(out / "blurred" / name, blurred_frames, gt, **labels)
    if cfg.pairs:  # GoPro layout: NAME/blur/000001.jpg + NAME/sharp/000001.jpg, hard links to the frames above
        for variant, folder in (("blurred", "blur"), ("sharp", "sharp")):
            dst = out / "gopro" / cfg.split / name / folder
            dst.mkdir(parents=True, exist_ok=True)
            for i in range(cfg.frames):
                src, target = out / variant / name / frame_name(i), dst / f"{i + 1:06d}.jpg"
                try:
                    os.link(src, target)
                except OSError:  # file systems without hard links
                    shutil.copyfile(src, target)
    return {"name": name, **scene.facts()}


def _write_one(task) -> dict:
    cfg, index, out = task
    return write_scene(make_scene(cfg, index), Path(out), sequence_name(cfg, index))


def _worker_init():  # pragma: no cover - runs in worker processes
    import cv2

    cv2.setNumThreads(1)


def prepare_output(out: Path, force: bool) -> None:
    """Refuse a non-empty ``out`` unless ``force``; with ``force`` remove only what the generator writes there."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"output path {str(out)!r} exists and is not a folder", fix="choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InvalidArgumentError(
                f"output folder {str(out)!r} exists and is not empty",
                fix="choose another --out, or pass --force to replace the synthetic set in it",
            )
        for name in OUTPUTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate(cfg: SynthConfig, out: str | Path, *, workers: int = 0, force: bool = False,
             progress: bool = True) -> Path:
    """Render the data set ``cfg`` describes into ``out`` (layout in the module docstring); returns ``out``.

    ``workers`` > 1 renders sequences in that many processes (same bytes as one process). A non-empty ``out`` is
    refused unless ``force`` (then only the generator's own outputs in it are replaced).
    """
    from edgetrack._version import __version__
    from edgetrack.data.got10k import write_list

    if not isinstance(cfg, SynthConfig):
        raise InvalidArgumentError(f"generate() takes a SynthConfig first, got {type(cfg).__name__}")
    if not isinstance(workers, int) or workers < 0:
        raise InvalidArgumentError(f"workers must be 0 or more, got {workers!r}")
    pool = photos.describe_pool(cfg.split)  # raises MissingDependencyError without scikit-image
    out = Path(out)
    prepare_output(out, force)
    n = cfg.sequences
    tasks = [(cfg, i, str(out)) for i in range(n)]
    facts: list[dict] = [{}] * n
    desc = f"synth {cfg.split} {cfg.blur_name}"
    if workers > 1 and n > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(workers, n), mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init) as ex:
            futures = {ex.submit(_write_one, t): t[1] for t in tasks}
            for fut in _bar(as_completed(futures), n, progress, desc):
                facts[futures[fut]] = fut.result()
    else:
        for i, f in enumerate(_bar(map(_write_one, tasks), n, progress, desc)):
            facts[i] = f
    names = [f["name"] for f in facts]
    for variant in VARIANTS:
        write_list(out / variant, names)
    if cfg.pairs:
        write_list(out / "gopro" / cfg.split, names)
    record = {
        "format": FORMAT,
        "generator": "edgetrack.data.synth",
        "edgetrack_version": __version__,
        "seed": cfg.seed,
        "seed_rule": "sequence i (0-based) draws only from numpy.random.default_rng("
                     "numpy.random.SeedSequence([seed, SPLITS.index(split), i])), SPLITS = ('train', 'test')",
        "config": {**asdict(cfg), "size": list(cfg.size), "distractors": list(cfg.distractors)},
        "image_size": list(cfg.size),
        "blur_levels": BLUR_LEVELS,
        "max_subframes": MAX_SUBFRAMES,
        "subframe_step_px": SUBFRAME_STEP_PX,
        "gamma": GAMMA,
        "photo_pool": pool,
        "libraries": _library_versions(),  # what rendered it; the bytes do not depend on them (Determinism)
        "layout": {
            "sharp": "sharp/ (GOT-10k layout; frame = middle sub-frame)",
            "blurred": "blurred/ (GOT-10k layout; frame = mean of the sub-frames in linear intensity)",
            "gopro": (f"gopro/{cfg.split}/NAME/{{blur,sharp}}/NNNNNN.jpg (hard links to the frames)"
                      if cfg.pairs else "none"),
        },
        "sequences": facts,
    }
    (out / "synth.json").write_text(json.dumps(record, indent=1) + "\n")
    return out


def _library_versions() -> dict[str, str]:
    import cv2

    return {"numpy": np.__version__, "opencv": cv2.__version__}


def _bar(it, total, enabled, desc="sequences"):
    if not enabled:
        return it
    from edgetrack.progress import progress

    return progress(it, desc=desc, total=total, unit="seq")


# --------------------------------------------------------------------------------------------------- looking
def contact_sheet(root: str | Path, path: str | Path | None = None, *, rows: int = 6, cols: int = 3,
                  cell_width: int = 320) -> Path:
    """A PNG for a person: one row per sequence, ``cols`` telling frames (the target's fastest, its most hidden,
    a distractor closest to it), each cell sharp | blurred with the ground-truth box (green; red text if absent)."""
    import cv2

    root = Path(root)
    record = read_record(root)
    sharp, blurred = open_synthetic(root)
    facts = {f["name"]: f for f in record.get("sequences", [])}
    out_rows = []
    for s, b in list(zip(sharp.sequences, blurred.sequences))[:rows]:
        f = facts.get(s.name, {})
        picks: list[int] = []
        for key in ("fastest", "most_hidden", "closest_distractor"):
            i = f.get("highlights", {}).get(key)
            if i is not None and i not in picks:
                picks.append(int(i))
        n = len(s)
        for j in range(cols + 4):
            if len(picks) >= cols:
                break
            i = int(round(j * (n - 1) / max(cols - 1, 1))) % n
            if i not in picks:
                picks.append(i)
        cells = []
        for i in sorted(picks[:cols]):
            pair = []
            for seq, tag in ((s, "sharp"), (b, f"blurred K={f.get('subframes', ['?'])[-1]}")):
                img = seq.frame(i)
                scale = cell_width / img.shape[1]
                img = cv2.resize(img, (cell_width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
                box = seq.boxes[i]
                if np.isfinite(box).all():
                    x0, y0 = int(round(box[0] * scale)), int(round(box[1] * scale))
                    x1, y1 = int(round((box[0] + box[2]) * scale)) - 1, int(round((box[1] + box[3]) * scale)) - 1
                    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 255, 0), 1)
                label = f"{s.name} #{i + 1} cover {int(s.cover[i])}" if tag == "sharp" else tag
                _text(img, label, (0, 0, 255) if (tag == "sharp" and s.absent[i]) else (255, 255, 255))
                if tag == "sharp" and s.absent[i]:
                    _text(img, "ABSENT", (0, 0, 255), y=28)
                pair.append(img)
            cell = np.concatenate([pair[0], np.full((pair[0].shape[0], 2, 3), 255, np.uint8), pair[1]], axis=1)
            cells.append(np.pad(cell, ((3, 3), (3, 3), (0, 0)), constant_values=40))
        while len(cells) < cols:
            cells.append(np.full_like(cells[0], 40))
        out_rows.append(np.concatenate(cells, axis=1))
    sheet = np.concatenate(out_rows, axis=0)
    path = Path(path) if path is not None else root / "contact_sheet.png"
    if not cv2.imwrite(str(path), sheet):
        raise DatasetError(f"cannot write {str(path)!r}", fix="check disk space and permissions")
    return path


def _text(img, s, colour=(255, 255, 255), y=13):
    import cv2

    cv2.putText(img, s, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, s, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)


# --------------------------------------------------------------------------------------------------- reading
def read_record(root: str | Path) -> dict:
    """synth.json of a folder :func:`generate` wrote."""
    path = Path(root) / "synth.json"
    if not path.is_file():
        raise DatasetError(
            f"{str(root)!r} is not a synthetic data set (no synth.json)",
            fix="make one with `edgetrack data synth --out DIR`, or name this folder's format (got10k:, otb:, ...)",
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{str(path)!r} is not valid JSON: {exc}", fix="regenerate the set with --force") from exc


def open_synthetic(root: Path, subset: str | None = None) -> list:
    """``synthetic:DIR`` -> [synthetic-sharp, synthetic-blurred] (same ground truth); ``#sharp`` or ``#blurred``
    picks one. Sequences carry ``known_size`` from synth.json, so metrics need not read a frame."""
    import dataclasses

    from edgetrack.data import Dataset
    from edgetrack.data.got10k import read_split

    record = read_record(root)
    try:
        size = tuple(int(v) for v in record.get("image_size") or record["config"]["size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{str(Path(root) / 'synth.json')!r} has no image size: {exc}",
                           fix="regenerate the set with `edgetrack data synth --force`") from exc
    variants = VARIANTS if subset is None else tuple(v.strip() for v in subset.split(","))
    for v in variants:
        if v not in VARIANTS:
            raise UnknownChoiceError("synthetic variant", v, VARIANTS,
                                     fix="write synthetic:DIR#sharp or synthetic:DIR#blurred")
    out = []
    for v in variants:
        seqs = [dataclasses.replace(s, known_size=size) for s in read_split(Path(root) / v, dataset=f"synthetic-{v}")]
        out.append(Dataset(f"synthetic-{v}", "synthetic", seqs))
    return out


__all__ = ["SynthConfig", "SyntheticScene", "make_scene", "render_sequence", "generate", "open_synthetic",
           "read_record", "contact_sheet", "cover_class", "sequence_rng", "sequence_name", "BLUR_LEVELS", "SPLITS"]
