"""The deblur stage's gate: a cheap motion-blur measure of a crop, and the deblur stage as the tracker runs it.

Deblurring a crop costs more than tracking on it (DeblurGAN-v2's generator is several times the tracker's search
branch), and on a sharp frame it buys nothing. So the tracker asks a gate first (issue #6): *is this crop blurred?*
Only then does the deblur graph run. The gate must cost a small fraction of a frame and need nothing but numpy and
OpenCV.

The measure: gradient energy kept after re-blurring
---------------------------------------------------
Blur is the loss of high-frequency energy, but how much gradient energy a crop has depends mostly on what is in it
(a face vs a brick wall) and on its contrast, so a raw sharpness number (variance of the Laplacian, gradient energy)
separates "blurred" from "plain" poorly. The re-blur principle (Crété-Roffet et al., "The blur effect: perception
and estimation with a new no-reference perceptual blur metric", SPIE 2007; scikit-image's ``blur_effect``) compares
the crop with a copy of itself blurred once more: a sharp crop loses much of its gradient energy to the extra blur,
an already blurred one little. Per axis ``a`` (horizontal, vertical)::

    r_a = Σ (∂_a box_a(g))²  /  Σ (∂_a g)²          g: the grey crop, box_a: a ``kernel``-tap box blur along a

and the measure is ``max_a r_a`` in [0, 1] (1: fully blurred): the most blurred direction, since motion blur smears
along one direction and leaves the other sharp. A ratio of two energies of the same crop is invariant to contrast
and brightness (scale and offset cancel), and far less dependent on content than the energy itself. A (nearly)
flat crop has nothing to deblur: an axis whose RMS gradient is below :data:`FLAT_RMS_GRADIENT` grey levels per pixel
counts 0.

Calibration (``benchmarks/deblur_gate.py calibrate``; search crops at the previous frame's box, measured in the
central window, sharp vs blurred variant of the same frame; "visibly blurred": the blurred window's PSNR against the
sharp one under 30 dB):

====================================  ========  =========  =============  ==============  ===============
set (``edgetrack data synth``)         crops     ROC AUC    AUC, visibly   sharp frames    blurred frames
                                                 all        blurred        deblurred       (visibly) deblurred
====================================  ========  =========  =============  ==============  ===============
train split, seed 2024, 24 × 60       1366      0.852      0.885          10 %            65 % (72 %)
test split, seed 11, 16 × 60          907       0.870      0.879          13 %            70 % (71 %)
====================================  ========  =========  =============  ==============  ===============

at the default threshold 0.25 (the train set's 90th percentile of sharp crops; fitted on train photos only). Template
crops (one per sequence): AUC 0.81 (train), 0.87 (test). A measure costs about 0.3 ms per crop on this
machine. The blur it misses is mostly mild: it opens on 84 % (train) and 79 % (test) of the frames whose blurred
search crop is under 25 dB PSNR against the sharp one, and with ``--blur mixed`` about a quarter of the blurred
frames are not visibly blurred at all.

Squared gradients (energy) rather than Crété-Roffet's absolute differences, a 9-tap box rather than 11, and the
crop measured at the frame's own resolution: on the synthetic generator's sharp/blurred frame pairs (tracker search
crops, ``benchmarks/deblur_gate.py calibrate``) these choices separated blurred from sharp crops best among the
variants tried (variance of the Laplacian, Laplacian/gradient energy ratio, isotropic and four-direction re-blur,
kernels 5 to 21).

**Frame resolution.** The tracker's crops are resized from the frame: a small target's search region is upsampled to
255 pixels, which softens the crop whether or not the frame is blurred. Motion blur is a property of the frame, so
the measure takes ``scale`` (frame pixels per crop pixel) and first brings an upsampled crop back to the frame's
resolution (``cv2.INTER_AREA``); crops cut at or below the frame's resolution are measured as they are.

**Where.** The gate runs once per frame, on the search batch's middle crop (for SiamFC the unit scale, for SiamRPN
the only crop), because the deblur graph has a static batch and deblurs the whole batch or nothing; and within that
crop on its central exemplar-sized window (127 of 255 pixels): the target and its context where the tracker last saw
it, the same frame region the template crop covers, which is measured whole at ``init``. A fast target over a
still background is blurred while the background is not; measured over the whole search crop, that blur is diluted
by sharp background (on the calibration set the centre window raised the ROC AUC from 0.80 to 0.85).

:class:`BlurGate` holds the gate's parameters (frozen; written into the bundle's manifest); :class:`DeblurStage` is
what :class:`edgetrack.Tracker` runs: the gate, its open/closed state (hysteresis), the two deblur graphs, and the
counters behind ``Tracker.stats``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Mapping

import cv2
import numpy as np

from edgetrack.errors import BundleError, InvalidArgumentError, UnknownChoiceError

__all__ = [
    "DEBLUR_MODES",
    "DEBLUR_SECTION",
    "MEASURE_NAME",
    "DEFAULT_KERNEL",
    "DEFAULT_THRESHOLD",
    "FLAT_RMS_GRADIENT",
    "blur_measure",
    "centre_window",
    "BlurGate",
    "DeblurSpec",
    "DeblurStats",
    "DeblurStage",
    "roc_auc",
    "gate_rates",
]

# Tracker(deblur=...): "auto" runs the deblur graph when the gate says the crop is blurred, "always" on every crop,
# "never" not at all.
DEBLUR_MODES = ("auto", "always", "never")
# Key of the deblur stage's description in a bundle manifest's ``preprocessing`` section (see DeblurSpec).
DEBLUR_SECTION = "deblur"
MEASURE_NAME = "reblur-gradient-energy"
DEFAULT_KERNEL = 9
# Calibrated on the synthetic generator's sharp and blurred tracker crops (benchmarks/deblur_gate.py calibrate; the
# figures are in the module docstring): the measure's 90th percentile on sharp search crops of a train-split set, so
# a sharp video runs the deblurrer on about one frame in ten.
DEFAULT_THRESHOLD = 0.25
# Below this RMS gradient (grey levels per pixel) an axis is flat: it has nothing to deblur and its ratio is noise.
FLAT_RMS_GRADIENT = 0.5
# Smallest side a crop is brought down to when it is measured at the frame's resolution.
_MIN_SIDE = 16
# BGR -> grey weights (ITU-R BT.601, as cv2.COLOR_BGR2GRAY).
_GREY = np.array([0.114, 0.587, 0.299], dtype=np.float32)


# -------------------------------------------------------------------------------------------------- the measure
def _grey(image: np.ndarray, layout: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InvalidArgumentError(f"blur_measure takes a numpy array, got {type(image).__name__}")
    if layout == "HW":
        ok = image.ndim == 2
    elif layout == "HWC":
        ok = image.ndim == 3 and image.shape[2] == 3
    elif layout == "CHW":
        ok = image.ndim == 3 and image.shape[0] == 3
    else:
        raise UnknownChoiceError("layout", layout, ("HW", "HWC", "CHW"))
    if not ok or min(image.shape[:2] if layout != "CHW" else image.shape[1:]) < 3:
        raise InvalidArgumentError(
            f"blur_measure with layout {layout!r} needs an image of at least 3×3 pixels in that layout, got shape "
            f"{image.shape}", fix="pass an (H, W, 3) BGR image, a (3, H, W) crop with layout='CHW', or (H, W) grey")
    if layout == "HW":
        return image.astype(np.float32, copy=False)
    if layout == "HWC":
        return cv2.transform(np.ascontiguousarray(image, dtype=np.float32), _GREY[None])
    c = image.astype(np.float32, copy=False)
    return _GREY[0] * c[0] + _GREY[1] * c[1] + _GREY[2] * c[2]


def blur_measure(image: np.ndarray, scale: float = 1.0, *, kernel: int = DEFAULT_KERNEL,
                 layout: str = "HWC") -> float:
    """How blurred ``image`` is, in [0, 1]: the share of its gradient energy a further ``kernel``-tap box blur keeps,
    in its most blurred direction (module docstring). Contrast- and brightness-invariant.

    ``image``: a BGR (H, W, 3) image (``layout="HWC"``), a (3, H, W) crop as the tracker's graphs take it
    (``"CHW"``), or grey (H, W) (``"HW"``); any real dtype, values in grey levels (0..255). ``scale``: frame pixels
    per image pixel (below 1 the image was upsampled from the frame and is measured at the frame's resolution).
    """
    if not (isinstance(scale, (int, float, np.floating)) and math.isfinite(scale) and scale > 0):
        raise InvalidArgumentError(f"scale must be a positive number (frame pixels per crop pixel), got {scale!r}")
    if not isinstance(kernel, (int, np.integer)) or isinstance(kernel, bool) or kernel < 2:
        raise InvalidArgumentError(f"kernel must be an integer >= 2 (box blur taps), got {kernel!r}")
    g = _grey(image, layout)
    if scale < 1.0:
        h, w = g.shape
        size = (max(_MIN_SIDE, int(round(w * scale))), max(_MIN_SIDE, int(round(h * scale))))
        if size[0] < w or size[1] < h:
            g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
    floor = FLAT_RMS_GRADIENT ** 2
    worst = 0.0
    for axis, ksize in ((1, (int(kernel), 1)), (0, (1, int(kernel)))):
        d = np.diff(g, axis=axis).ravel()
        energy = float(d.dot(d))
        if energy <= floor * d.size:
            continue
        b = np.diff(cv2.blur(g, ksize, borderType=cv2.BORDER_REFLECT), axis=axis).ravel()
        worst = max(worst, float(b.dot(b)) / energy)
    return min(worst, 1.0)


def centre_window(crop: np.ndarray, side: int | None, *, layout: str = "CHW") -> np.ndarray:
    """The central ``side``×``side`` window of a crop (the whole crop for None or a side at least the crop's)."""
    h, w = (crop.shape[1], crop.shape[2]) if layout == "CHW" else crop.shape[:2]
    if side is None or side >= min(h, w):
        return crop
    top, left = (h - side) // 2, (w - side) // 2
    if layout == "CHW":
        return crop[:, top:top + side, left:left + side]
    return crop[top:top + side, left:left + side]


# -------------------------------------------------------------------------------------------------- the gate
@dataclass(frozen=True)
class BlurGate:
    """The gate's parameters: deblur a crop when :func:`blur_measure` ``>= threshold``.

    ``hysteresis``: once open (a crop was deblurred), the gate stays open until the measure falls below
    ``threshold - hysteresis``: blur comes in bursts (an acceleration, a shake), and a gate that flickers inside a
    burst hands the tracker alternately deblurred and raw crops. 0 (the default) is a plain threshold.
    ``kernel``: the measure's box-blur taps. ``measure``: the measure's name (only :data:`MEASURE_NAME` exists).
    """

    threshold: float = DEFAULT_THRESHOLD
    hysteresis: float = 0.0
    kernel: int = DEFAULT_KERNEL
    measure: str = MEASURE_NAME

    def __post_init__(self):
        for name in ("threshold", "hysteresis"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InvalidArgumentError(f"BlurGate.{name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.threshold > 1:
            raise InvalidArgumentError(
                f"BlurGate.threshold must be in [0, 1] (the measure's range), got {self.threshold}",
                fix="0 deblurs every crop, 1 only fully blurred ones")
        if not isinstance(self.kernel, int) or isinstance(self.kernel, bool) or self.kernel < 2:
            raise InvalidArgumentError(f"BlurGate.kernel must be an integer >= 2, got {self.kernel!r}")
        if self.measure != MEASURE_NAME:
            raise UnknownChoiceError("blur measure", self.measure, (MEASURE_NAME,),
                                     fix="rebuild the bundle with this edgetrack, or upgrade edgetrack")

    def value(self, crop: np.ndarray, scale: float = 1.0, *, layout: str = "CHW") -> float:
        """:func:`blur_measure` of one crop with this gate's kernel (``layout`` "CHW": the tracker's crops)."""
        return blur_measure(crop, scale, kernel=self.kernel, layout=layout)

    def opens(self, value: float, was_open: bool = False) -> bool:
        """Whether a crop measuring ``value`` is deblurred, given whether the previous one was."""
        return value >= (self.threshold - self.hysteresis if was_open else self.threshold)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "BlurGate":
        known = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping) or set(data) - known:
            raise BundleError(
                f"the deblur gate's parameters must be an object with fields {sorted(known)}, got {data!r}",
                fix="rebuild the bundle with the edgetrack version that runs it")
        return cls(**dict(data))


# -------------------------------------------------------------------------------------------------- the stage
@dataclass(frozen=True)
class DeblurSpec:
    """A bundle's deblur stage, as ``manifest.preprocessing["deblur"]`` describes it.

    ``graphs``: crop role (``"template"``, ``"search"``) -> the bundle graph that deblurs that crop (input and output
    the crop batch, float32 NCHW BGR 0..255, the same shape). ``gate``: the :class:`BlurGate`. ``model``: the
    deblurrer (e.g. ``deblurgan-v2``). The section's other keys (checkpoint, calibration, ...) are descriptive.
    """

    graphs: dict
    gate: BlurGate
    model: str = ""

    @classmethod
    def from_manifest(cls, manifest) -> "DeblurSpec | None":
        """The spec of ``manifest`` (an :class:`edgetrack.bundle.Manifest`), or None for a bundle without a stage."""
        section = manifest.preprocessing.get(DEBLUR_SECTION)
        if section is None:
            return None
        where = f"manifest preprocessing.{DEBLUR_SECTION}"
        if not isinstance(section, Mapping) or not isinstance(section.get("graphs"), Mapping):
            raise BundleError(f"{where} must be an object with 'graphs' and 'gate', got {section!r}",
                              fix="rebuild the bundle with edgetrack's add_deblur")
        graphs = dict(section["graphs"])
        if set(graphs) != {"template", "search"}:
            raise BundleError(f"{where}.graphs must name the 'template' and 'search' deblur graphs, got {graphs}")
        missing = [g for g in graphs.values() if g not in manifest.graphs]
        if missing:
            raise BundleError(f"{where} names graph(s) {missing} the bundle does not have ({sorted(manifest.graphs)})",
                              fix="rebuild the bundle")
        return cls(graphs=graphs, gate=BlurGate.from_dict(section.get("gate", {})),
                   model=str(section.get("model", "")))


@dataclass(frozen=True)
class DeblurStats:
    """What the deblur stage did since ``init``: ``frames`` (``update`` calls), ``deblurred`` (frames whose search
    crops went through the deblurrer), ``template_deblurred``, seconds spent measuring blur (``gate_seconds``) and
    deblurring (``deblur_seconds``, template included), and the last search crop's measure (None when the gate did
    not measure: no stage, or ``deblur="always"``/``"never"``)."""

    mode: str
    frames: int = 0
    deblurred: int = 0
    template_deblurred: bool = False
    gate_seconds: float = 0.0
    deblur_seconds: float = 0.0
    last_blur: float | None = None

    @property
    def deblurred_share(self) -> float:
        """Share of frames deblurred (NaN before the first frame)."""
        return self.deblurred / self.frames if self.frames else float("nan")


Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class DeblurStage:
    """The deblur stage of one tracker: ``template(crop, scale)`` at init, ``search(crops, scale)`` each frame.

    ``mode``: one of :data:`DEBLUR_MODES`; ``gate``: the bundle's :class:`BlurGate` (None: no stage, crops pass
    through); ``run_template``/``run_search``: the deblur graphs as functions of a crop batch. Not thread-safe:
    one per tracker, as the tracker itself.
    """

    mode: str
    gate: BlurGate | None = None
    run_template: Runner | None = None
    run_search: Runner | None = None
    _open: bool = field(default=False, init=False)
    _stats: DeblurStats = field(init=False)

    def __post_init__(self):
        if self.mode not in DEBLUR_MODES:
            raise UnknownChoiceError("deblur mode", self.mode, DEBLUR_MODES)
        self.reset()

    @property
    def active(self) -> bool:
        return self.gate is not None and self.mode != "never"

    @property
    def stats(self) -> DeblurStats:
        return self._stats

    def reset(self) -> None:
        self._open = False
        self._stats = DeblurStats(self.mode)

    def _decide(self, crop: np.ndarray, scale: float) -> tuple[bool, float | None, float]:
        if self.mode == "always":
            return True, None, 0.0
        start = time.perf_counter()
        value = self.gate.value(crop, scale)
        self._open = self.gate.opens(value, self._open)
        return self._open, value, time.perf_counter() - start

    def template(self, crop: np.ndarray, scale: float) -> np.ndarray:
        """The (1, 3, E, E) template crop, deblurred when the gate says so; starts the stage's statistics afresh."""
        self.reset()
        if not self.active:
            return crop
        deblur, _, gate_s = self._decide(crop[0], scale)
        self._open = False  # the template's blur says nothing about the first search frame's
        deblur_s = 0.0
        if deblur:
            start = time.perf_counter()
            crop = self.run_template(crop)
            deblur_s = time.perf_counter() - start
        self._stats = DeblurStats(self.mode, template_deblurred=deblur, gate_seconds=gate_s, deblur_seconds=deblur_s)
        return crop

    def search(self, crops: np.ndarray, scale: float, window: int | None = None) -> np.ndarray:
        """The (n, 3, I, I) search batch, deblurred as a whole when the gate says so, measured on the central
        ``window``×``window`` pixels (the exemplar size; None: all) of its middle crop."""
        s = self._stats
        if not self.active:
            self._stats = DeblurStats(s.mode, s.frames + 1, s.deblurred, s.template_deblurred, s.gate_seconds,
                                      s.deblur_seconds, None)
            return crops
        deblur, value, gate_s = self._decide(centre_window(crops[len(crops) // 2], window), scale)
        deblur_s = 0.0
        if deblur:
            start = time.perf_counter()
            crops = self.run_search(crops)
            deblur_s = time.perf_counter() - start
        self._stats = DeblurStats(s.mode, s.frames + 1, s.deblurred + int(deblur), s.template_deblurred,
                                  s.gate_seconds + gate_s, s.deblur_seconds + deblur_s, value)
        return crops


# -------------------------------------------------------------------------------------------------- calibration
def roc_auc(positive, negative) -> float:
    """Area under the ROC curve of a score that should be higher for ``positive`` than for ``negative`` samples:
    P(pos > neg) + P(pos == neg) / 2 (the Mann-Whitney U statistic over n_pos · n_neg)."""
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.sort(np.asarray(negative, dtype=np.float64).ravel())
    if pos.size == 0 or neg.size == 0:
        raise InvalidArgumentError(f"roc_auc needs samples of both kinds, got {pos.size} and {neg.size}")
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (pos.size * neg.size))


def gate_rates(sharp, blurred, threshold: float) -> dict:
    """A threshold's rates on measured crops: the share of ``sharp`` crops it would deblur (false positives) and of
    ``blurred`` crops it would (true positives)."""
    sharp, blurred = np.asarray(sharp, np.float64), np.asarray(blurred, np.float64)
    return {"threshold": float(threshold), "sharp_deblurred": float((sharp >= threshold).mean()),
            "blurred_deblurred": float((blurred >= threshold).mean())}
