"""SiamRPN's tracking procedure without a framework: anchors, crops in, classification/regression maps in, boxes out.

Like :mod:`edgetrack.tracking.siamfc`, the network is somebody else's business (a PyTorch model, an ONNX Runtime
session, an Ascend OM graph), so the same numpy logic drives every backend::

    logic = SiamRPNTracking(SiamRPNParams())
    z = logic.init(frame0, box)              # (1, 3, 127, 127) float32 -> template graph, once
    for frame in frames:
        x = logic.search_crops(frame)        # (1, 3, 255, 255) float32 -> search graph
        box, score = logic.update_from_outputs(cls, loc)   # (1, 2A, R, R), (1, 4A, R, R) from the head graph

The procedure is pysot's ``SiamRPNTracker.track`` (the SiamRPN / DaSiamRPN original): softmax over the two classes
of every anchor; the regression decoded against the anchors; a penalty on changes of scale and aspect ratio
relative to the current box, ``exp(−k · (max(r, 1/r) · max(s, 1/s) − 1))``; a cosine (Hanning) window against
large jumps; the best anchor moves the target, and the size follows its prediction with damping
``lr · penalty · score``.

Layouts (pysot's): ``cls`` channel ``c · A + a`` is class ``c`` (0 background, 1 target) of anchor ``a``; ``loc``
channel ``j · A + a`` is offset ``j`` (dx, dy, dw, dh) of anchor ``a``. Offsets are normalised as in Faster R-CNN:
``dx = (x − x_a) / w_a``, ``dw = ln(w / w_a)`` (SiamRPN's eq. 4).

Coordinates: anchor centres are in search-crop pixel-index coordinates (pixel ``u``'s centre is ``u``, as
:mod:`edgetrack.tracking.crop`); score cell ``r`` is centred on ``(I − 1) / 2 + stride · (r − (R − 1) / 2)``, the
centre cell on the crop's centre (which is the current target centre). A crop pixel is ``search_side / I`` frame
pixels, exactly (:func:`~edgetrack.tracking.crop.crop_and_resize`).

Differences from pysot, each deliberate: crops are sub-pixel exact and padded with the current frame's mean colour
(as SiamFC here); the size stays within [0.2, 5] × the initial size and the frame, and the centre within the frame
(pysot clips the size to [10 px, frame]), so a drifting tracker cannot grow or shrink without bound; regression
outputs are clipped to ``|dw|, |dh| ≤ ln(1000 / 16)`` before ``exp`` (torchvision's box decoding bound) so a wild
output cannot overflow. ``score`` is the target probability of the chosen anchor (before penalty and window), as
pysot reports it.

Network input convention: as SiamFC's — float32, NCHW, the frame's channel order (BGR), values 0..255.

Losing the target and finding it again
--------------------------------------
Neither paper handles a target that disappears; pysot's long-term variant (``SiamRPNLTTracker``, DaSiamRPN's
"local-to-global" search) widens the search when the score drops. Here SiamRPN gets SiamFC's state machine (see
:mod:`edgetrack.tracking.siamfc` for the reasoning; the bookkeeping is shared, :mod:`edgetrack.tracking.siamese`),
with :class:`~edgetrack.tracking.LostParams` meaning the same:

* **Confidence of a frame**: the chosen anchor's target probability is at least ``score_threshold``, by default
  :data:`DEFAULT_SCORE_THRESHOLD` = 0.5, the softmax's decision boundary. Recalibrated on the shipped
  ``siamrpn-eca`` (the model trained with the second recipe) by ``benchmarks/lost_threshold.py``
  (``benchmarks/results/lost-threshold/``): on 8 validation sequences (seed 14, sharp and blurred, 1 920 frames)
  thresholds 0.9 / 0.7 / 0.5 flagged 78 / 11 / 0 % of the 18 hidden frames lost, and
  0.9 / 0.5 / 0.2 % of well-tracked frames (IoU > 0.5); AUC sharp / blurred 0.677 / 0.657, 0.692 / 0.682,
  0.692 / 0.689 (no search at all: 0.697 / 0.673). On the report's 30 test sequences (seed 12) 0.9 gave
  0.637 / 0.613 and 0.5 gives 0.669 / 0.665. This model's probability stays high on a blurred, fast target as on a
  look-alike, so a strict threshold declares it lost while it is still in view and the frozen track falls behind:
  the default favours tracking. ``lost_threshold=0.9`` (or ``LostParams(score_threshold=0.9)``) flags most
  occlusions at that cost. (The first shipped model was calibrated at 0.9 on 10 occlusion sequences.) The APCE
  test is off (``apce_ratio`` None means 0 here): a look-alike gives one clean peak, so the best anchor's map was
  sharper on hidden frames (median APCE 30) than on tracked ones (21), and asking for sharpness lost blurred frames
  of the target instead (mean IoU 0.442 with it at 0.4). ``LostParams(apce_ratio=0.4)`` turns it on.
* **Hysteresis**: ``lost_after`` unconfident frames in a row declare the target lost; until then the track follows
  the best anchor but keeps its size; the declaring frame returns to the last confident box.
* **Search while lost**: the search graph takes one crop, so each lost frame is one crop, of the same cost as a
  tracked one. Odd search frames look at the last confident position through a widened region: its side grows by
  :data:`SEARCH_ZOOM_STEP` per lost frame up to :data:`MAX_SEARCH_ZOOM` × the tracking region, resized to the
  same 255 px (static shapes). The bound is where the network stops seeing the target: zoomed out, the target
  shrinks against anchors trained at IoU > 0.6. Measured on the first model's occlusion sequences, a window of 1, 1.25, 1.5, 1.75, 2
  × the region holding the target gave a score >= 0.9 in 97, 94, 78, 65, 49 % of cases, and a box of plausible size
  in 100, 100, 90, 28, 0 %. Even search frames (``global_search``) look at the next of the tiles covering the whole
  frame at the tracking scale, nearest first (SiamFC's tiles). No cosine window (``search_window_influence``); the
  scale/ratio penalty stays, against the frozen size.
* **Re-acquisition**: a confident anchor whose box is within :data:`SIZE_TOLERANCE` (1.5, in the penalty's scale
  and ratio terms) of the last confident size is a candidate; the next frames look at it at the tracking scale, and
  ``recover_after`` confident frames in a row, each within the target's size of the one before, end the search
  (SiamFC accepts any peak in the candidate's window; SiamRPN watches that one window only, so a look-alike in it
  would confirm itself). The size found again is the last confident one; tracking resizes from there.

``lost`` is True from the declaring frame until the frame that confirms the recovery; the box is then the last
confident one (or the candidate's position). ``LostParams(enabled=False)`` is pysot's tracker: ``lost`` is
``score < score_threshold`` frame by frame. On frames tracked confidently both give the same boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgetrack.errors import InvalidArgumentError
from edgetrack.tracking.crop import check_frame
from edgetrack.tracking.siamese import LostParams, SiameseTracking

__all__ = ["SiamRPNParams", "SiamRPNTracking", "anchor_shapes", "anchor_grid", "decode", "select_anchor", "PICKED",
           "INPUT_CHANNEL_ORDER", "INPUT_VALUE_RANGE", "DEFAULT_SCORE_THRESHOLD", "DEFAULT_APCE_RATIO",
           "SEARCH_ZOOM_STEP", "MAX_SEARCH_ZOOM", "SIZE_TOLERANCE"]

INPUT_CHANNEL_ORDER = "BGR"
INPUT_VALUE_RANGE = (0.0, 255.0)
# Largest |dw|, |dh| decoded (torchvision's BoxCoder bound): a box at most 62.5× its anchor.
MAX_LOG_SCALE = math.log(1000.0 / 16)
# What LostParams' None means for SiamRPN (see "Losing the target" in the module docstring for the calibration).
DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_APCE_RATIO = 0.0
# While lost, the window on the last confident position takes its crop from a region this much larger per lost
# frame, up to MAX_SEARCH_ZOOM: beyond it the target shrinks in the crop below what the anchors were trained on.
SEARCH_ZOOM_STEP = 1.1
MAX_SEARCH_ZOOM = 1.5
# A candidate found while lost is the target only if its size and aspect ratio are each within this factor of the
# last confident size (measured as the scale/ratio penalty measures them).
SIZE_TOLERANCE = 1.5


@dataclass(frozen=True)
class SiamRPNParams:
    """SiamRPN's tracking hyper-parameters.

    Geometry (must match the network: ``SiamRPNConfig.tracking_params()`` builds these from a model's config):
    ``exemplar_size``/``instance_size`` crop sides, ``total_stride`` crop pixels per score cell, ``score_size``
    the maps' side (25 for EfficientNet, 17 for AlexNet), ``anchor_ratios`` (h/w) and ``anchor_scales`` (side /
    stride). Tracking (DaSiamRPN's published values for SiamRPN): ``penalty_k`` the scale/ratio change penalty,
    ``window_influence`` the weight of the cosine window, ``lr`` the size damping, ``context`` the crop's context
    margin; ``min_scale``/``max_scale`` bound the size relative to the initial one. When the target counts as lost
    is :class:`~edgetrack.tracking.LostParams`' business (the module docstring). The best of 48 settings on a
    synthetic validation set (window 0.55, penalty 0.03) did worse than these on the report's test set
    (``benchmarks/results/siamrpn-tracking-sweep/``), so the published values stay.
    """

    exemplar_size: int = 127
    instance_size: int = 255
    total_stride: int = 8
    score_size: int = 25
    anchor_ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    anchor_scales: tuple[float, ...] = (8.0,)
    context: float = 0.5
    penalty_k: float = 0.055
    window_influence: float = 0.42
    lr: float = 0.295
    min_scale: float = 0.2
    max_scale: float = 5.0
    motion: float = 0.0

    def __post_init__(self):
        for name in ("exemplar_size", "instance_size", "total_stride", "score_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"SiamRPNParams.{name} must be a positive integer, got {value!r}")
        for name in ("anchor_ratios", "anchor_scales"):
            values = getattr(self, name)
            try:
                values = tuple(float(v) for v in values)
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(f"SiamRPNParams.{name} must be numbers, got {values!r}") from exc
            if not values or not all(math.isfinite(v) and v > 0 for v in values):
                raise InvalidArgumentError(f"SiamRPNParams.{name} must be one or more finite numbers > 0, "
                                           f"got {getattr(self, name)!r}")
            object.__setattr__(self, name, values)
        for name in ("context", "penalty_k", "min_scale", "max_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"SiamRPNParams.{name} must be a finite number >= 0, got {value!r}")
        for name in ("window_influence", "lr", "motion"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise InvalidArgumentError(f"SiamRPNParams.{name} must be in [0, 1], got {value!r}")
        if not 0 < self.min_scale <= 1 <= self.max_scale:
            raise InvalidArgumentError(
                f"SiamRPNParams needs 0 < min_scale <= 1 <= max_scale, got {self.min_scale}, {self.max_scale}")
        if (self.score_size - 1) * self.total_stride >= self.instance_size:
            raise InvalidArgumentError(
                f"SiamRPNParams: a {self.score_size}×{self.score_size} map at stride {self.total_stride} spans "
                f"{(self.score_size - 1) * self.total_stride} px, more than the {self.instance_size} px search crop",
                fix="take score_size from the model (SiamRPNConfig.score_size)")

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_ratios) * len(self.anchor_scales)


def anchor_shapes(ratios, scales, stride: int) -> np.ndarray:
    """(A, 2) anchor ``(w, h)`` in crop pixels, ratio-major: pysot's ``Anchors.generate_anchors``.

    For area ``stride²``: ``ws = int(sqrt(stride² / r))``, ``hs = int(ws · r)``, then ``(ws · s, hs · s)``. The
    integer truncation is pysot's (and DaSiamRPN's); kept so the anchors are the familiar ones — stride 8, scale
    8, ratios (0.33, 0.5, 1, 2, 3) give 104×32, 88×40, 64×64, 40×80, 32×96.
    """
    size = stride * stride
    out = []
    for r in ratios:
        ws = int(math.sqrt(size / r))
        hs = int(ws * r)
        for s in scales:
            out.append((ws * s, hs * s))
    shapes = np.array(out, dtype=np.float64)
    if np.any(shapes <= 0):
        raise InvalidArgumentError(f"anchor ratios {tuple(ratios)} at stride {stride} give an empty anchor",
                                   fix="use ratios between 1/stride² and stride²")
    return shapes


def anchor_grid(params: SiamRPNParams) -> np.ndarray:
    """(4, A, R, R) anchors ``(cx, cy, w, h)`` in search-crop pixel-index coordinates (see the module docstring).

    ``[:, a, r, c]`` is anchor ``a`` of score cell row ``r``, column ``c`` — the layout of the network's maps.
    """
    shapes = anchor_shapes(params.anchor_ratios, params.anchor_scales, params.total_stride)
    n, a = params.score_size, len(shapes)
    centres = (params.instance_size - 1) / 2 + params.total_stride * (np.arange(n) - (n - 1) / 2)
    grid = np.empty((4, a, n, n), dtype=np.float64)
    grid[0] = centres[None, None, :]
    grid[1] = centres[None, :, None]
    grid[2] = shapes[:, 0, None, None]
    grid[3] = shapes[:, 1, None, None]
    return grid


def decode(deltas: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Boxes ``(cx, cy, w, h)`` from offsets ``(dx, dy, dw, dh)`` against ``anchors``, both (4, ...)."""
    d = np.asarray(deltas, dtype=np.float64)
    out = np.empty(np.broadcast_shapes(d.shape, anchors.shape), dtype=np.float64)
    out[0] = anchors[0] + d[0] * anchors[2]
    out[1] = anchors[1] + d[1] * anchors[3]
    out[2] = anchors[2] * np.exp(np.clip(d[2], -MAX_LOG_SCALE, MAX_LOG_SCALE))
    out[3] = anchors[3] * np.exp(np.clip(d[3], -MAX_LOG_SCALE, MAX_LOG_SCALE))
    return out


def _change(r, xp=np):
    return xp.maximum(r, 1.0 / r)


def _context_side(w, h, context: float, xp=np):
    extra = context * (w + h)
    return xp.sqrt((w + extra) * (h + extra))


# What select_anchor's vector holds, in order, after the best anchor's flat index (its element 0).
PICKED = ("score", "penalty", "scale_change", "ratio_change", "w", "h", "dx", "dy")


def select_anchor(logits, deltas, anchors, window, window_influence, target_wh, penalty_k: float,
                  context: float, xp=np):
    """SiamRPN's choice of anchor from the head's maps: ``(picked, score, best)``.

    ``logits`` (2, A, R, R) and ``deltas`` (4, A, R, R), float64 (the head's maps, class- and offset-major);
    ``anchors`` (4, A, R, R) from :func:`anchor_grid`; ``window`` (1, R, R) the cosine window, mixed in by
    ``window_influence`` (0: not at all); ``target_wh`` the current size in search-crop pixels (two numbers), which
    the scale/ratio penalty ``exp(−k · (max(r, 1/r) · max(s, 1/s) − 1))`` compares every anchor's box with.
    The target probability is the two-class softmax, written as a logistic of the difference (stable for any
    logits); only the sizes are decoded for every anchor, the offsets of the best one are returned as they are.

    ``picked``: a float64 vector, the best anchor's flat index into (A, R, R), then its :data:`PICKED` values;
    ``score``: (A, R, R) target probabilities; ``best``: the flat index as the arrays' own integer scalar. Written
    once for numpy arrays and a backend's device arrays alike (:mod:`edgetrack.tracking.device`): ``xp`` is their
    namespace (numpy, or the device ops' ``xp``), and only functions both have are used. On a device
    ``window_influence`` and ``target_wh`` may be device values too, and no step needs a device value on the host,
    so the choice runs inside a captured graph and ``picked`` is one small copy back.
    """
    score = 1.0 / (1.0 + xp.exp(xp.clip(logits[0] - logits[1], -700, 700)))
    w = anchors[2] * xp.exp(xp.clip(deltas[2], -MAX_LOG_SCALE, MAX_LOG_SCALE))
    h = anchors[3] * xp.exp(xp.clip(deltas[3], -MAX_LOG_SCALE, MAX_LOG_SCALE))
    if xp is np or isinstance(target_wh, (np.ndarray, tuple, list)):
        # Python floats: a numpy scalar would pull a device array to numpy
        tw, th = float(target_wh[0]), float(target_wh[1])
        target_side = float(_context_side(tw, th, context))
    else:
        tw, th = target_wh[0], target_wh[1]
        target_side = _context_side(tw, th, context, xp)
    s_c = _change(_context_side(w, h, context, xp) / target_side, xp)
    r_c = _change((tw / th) / (w / h), xp)
    penalty = xp.exp(-(r_c * s_c - 1.0) * penalty_k)
    pscore = penalty * score
    if not isinstance(window_influence, (int, float)) or window_influence:
        pscore = pscore * (1 - window_influence) + window * window_influence
    best = pscore.argmax()  # flat; the first of equal maxima, on both
    # A 1-element index: a device index needs no copy to the host.
    fields = xp.stack([score, penalty, s_c, r_c, w, h, deltas[0], deltas[1]]).reshape(len(PICKED), -1)
    return xp.concatenate([xp.asarray(best, dtype=xp.float64).reshape(1),
                           fields[:, best.reshape(1)].reshape(-1)]), score, best


class SiamRPNTracking(SiameseTracking):
    """The state of one SiamRPN track: centre, size, lost or not, search windows; see the module docstring."""

    default_score_threshold = DEFAULT_SCORE_THRESHOLD
    default_apce_ratio = DEFAULT_APCE_RATIO
    # One CUDA graph a frame makes the device path ×1.3–1.6 the host path's frame rate (H200; as separate calls it
    # was ×0.78–0.83 on an H100: edgetrack.tracking.device).
    device_tracking_pays = True

    def __init__(self, params: SiamRPNParams | None = None, lost: LostParams | None = None):
        super().__init__(SiamRPNParams() if params is None else params, lost, SiamRPNParams)
        self.anchors = anchor_grid(self.params)
        hann = np.hanning(self.params.score_size)
        self._window = np.outer(hann, hann)[None]  # (1, R, R): the same window for every anchor

    def _reset_lost_state(self) -> None:
        super()._reset_lost_state()
        self._crop_center: np.ndarray | None = None  # centre of the last search crop
        self._zoom = 1.0  # the last search crop's region over the tracking search region

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def search_side(self) -> float:
        """Side, in frame pixels, of the region the last search crop covers: the tracking search region, or while
        lost a widened one (:attr:`search_zoom` times it)."""
        return self._tracking_side * self._zoom

    @property
    def search_zoom(self) -> float:
        """The last search crop's region over the tracking search region: 1 while tracking, up to
        :data:`MAX_SEARCH_ZOOM` while lost."""
        return self._zoom

    @property
    def _tracking_side(self) -> float:
        return self.exemplar_side * self.params.instance_size / self.params.exemplar_size

    # -- protocol ------------------------------------------------------------------------------------------------
    @property
    def crop_layout(self) -> tuple[int, int]:
        return 1, self.params.instance_size

    def search_crops(self, frame: np.ndarray) -> np.ndarray:
        """This frame's search crop as (1, 3, instance, instance) float32: around the current centre while tracking,
        a search window while lost (see the module docstring)."""
        crops = self._crop_batch(*self._search_regions(frame))
        self._pending = True
        return crops

    def _search_regions(self, frame: np.ndarray) -> tuple:
        self._require_init("search_crops")
        frame = check_frame(frame)
        self._frame_wh = (frame.shape[1], frame.shape[0])
        if self._searching:
            self._crop_center, self._zoom = self._search_window()
        else:
            self._predict()
            self._crop_center, self._zoom = self._center.copy(), 1.0
        return frame, [(self._crop_center, self.search_side)], self.params.instance_size, None

    def _scale_and_influence(self) -> tuple[float, float]:
        """(crop pixels per frame pixel, window influence) of the pending crop: the tracking region's, or while
        searching the window's (without the motion prior unless asked)."""
        p = self.params
        if self._searching:
            return p.instance_size / self.search_side, self.lost_params.search_window_influence
        return p.exemplar_size / self.exemplar_side, p.window_influence

    def _decode_settings(self) -> np.ndarray:
        scale_z, influence = self._scale_and_influence()
        # The scale/ratio penalty compares with the current size (while searching: the frozen one, the size prior).
        return np.array([self._size[0] * scale_z, self._size[1] * scale_z, influence], dtype=np.float64)

    def _check_map(self, name: str, value, channels: int, xp=np):
        """``value`` as float64 (channels, R, R), in ``xp``'s arrays. Shapes are checked here; finiteness too on the
        host, while on a device :meth:`decode_on_device` reports it in its vector (checked after the one copy)."""
        p = self.params
        arr = xp.asarray(value, dtype=xp.float64)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if tuple(arr.shape) != (channels, p.score_size, p.score_size):
            raise InvalidArgumentError(
                f"{name} must have shape (1, {channels}, {p.score_size}, {p.score_size}) or without the batch axis, "
                f"got {np.shape(value) if xp is np else tuple(value.shape)}",
                fix="pass the head graph's outputs for one search crop, with params matching the model "
                    "(SiamRPNConfig.tracking_params())")
        if xp is np and not np.all(np.isfinite(arr)):
            raise _not_finite(name)
        return arr

    def update_from_outputs(self, cls, loc) -> tuple[np.ndarray, float]:
        """Move the track by the head's outputs for the last :meth:`search_crops`; returns ``(box, score)``.

        ``cls``: (1, 2A, R, R) logits, ``loc``: (1, 4A, R, R) offsets (the batch axis may be left out).
        ``score`` in [0, 1] is the chosen anchor's target probability. Whether the target now counts as lost is
        :attr:`lost`. (On a device: :meth:`search_request`, :meth:`decode_on_device`, :meth:`update_from_device`.)
        """
        self._check_pending("update_from_outputs")
        p = self.params
        a, n = p.num_anchors, p.score_size
        logits = self._check_map("cls", cls, 2 * a, np).reshape(2, a, n, n)
        deltas = self._check_map("loc", loc, 4 * a, np).reshape(4, a, n, n)
        self._pending = False
        target_w, target_h, influence = self._decode_settings()
        picked, score, best = select_anchor(logits, deltas, self.anchors, self._window, influence,
                                            (target_w, target_h), p.penalty_k, p.context)
        return self._move(picked, score.reshape(a, -1)[int(best) // (n * n)].reshape(n, n))

    def decode_on_device(self, cls, loc, params):
        """The device half of :meth:`update_from_outputs` (inside the backend's frame program: no host
        synchronisation): the head's maps (device arrays) and the frame's ``params`` (of :meth:`search_request`, on
        the device) to one float64 vector, ``[select_anchor's picked (1 + len(PICKED)), all finite (1/0), the best
        anchor's score map (R · R, for the APCE test)]``, for :meth:`update_from_device`."""
        xp = self.ops.xp
        p = self.params
        a, n = p.num_anchors, p.score_size
        logits = self._check_map("cls", cls, 2 * a, xp).reshape(2, a, n, n)
        deltas = self._check_map("loc", loc, 4 * a, xp).reshape(4, a, n, n)
        anchors, window = self._device_constants()
        settings = params[params.shape[0] - 3:]
        picked, score, best = select_anchor(logits, deltas, anchors, window, settings[2], settings[:2], p.penalty_k,
                                            p.context, xp)
        finite = xp.isfinite(logits).all() & xp.isfinite(deltas).all()
        peak_map = score.reshape(a, -1)[(best // (n * n)).reshape(1)].reshape(-1)
        return xp.concatenate([picked, xp.asarray(finite, dtype=xp.float64).reshape(1), peak_map])

    def update_from_device(self, decoded) -> tuple[np.ndarray, float]:
        """:meth:`update_from_outputs` from :meth:`decode_on_device`'s vector (copied to the host)."""
        self._check_pending("update_from_device")
        n = self.params.score_size
        k = 1 + len(PICKED)
        v = np.asarray(decoded, dtype=np.float64)
        if v.shape != (k + 1 + n * n,):
            raise InvalidArgumentError(f"a decoded SiamRPN frame is {k + 1 + n * n} values here, got shape {v.shape}",
                                       fix="pass decode_on_device's output for this tracker's search_request")
        if not v[k]:
            raise _not_finite("cls or loc")
        self._pending = False
        return self._move(v[:k], v[k + 1:].reshape(n, n))

    def _move(self, picked: np.ndarray, peak_map: np.ndarray) -> tuple[np.ndarray, float]:
        """The track after this frame's choice of anchor: ``picked`` (:func:`select_anchor`'s vector) and the best
        anchor's score map (for the APCE test)."""
        p, lp = self.params, self.lost_params
        best = np.unravel_index(int(picked[0]), (p.num_anchors, p.score_size, p.score_size))
        best_score, penalty, s_c, r_c, w, h, dx, dy = (float(v) for v in picked[1:1 + len(PICKED)])
        scale_z, _ = self._scale_and_influence()
        position = self._position(best, dx, dy, scale_z)
        if self._searching:
            return self._search_update(best_score, peak_map, position, s_c, r_c)

        self._center = position
        if not lp.enabled:
            self._resize(w, h, penalty * best_score, scale_z)
            self._follow_motion(True)
            self._lost = best_score < lp.score_threshold
            return self.box, best_score
        confident, sharpness = self._confidence.judge(best_score, peak_map)
        if confident:
            # Otherwise follow the best anchor (a blurred frame is often still right) but keep the size: a size
            # regressed from a doubtful anchor is noise, and size drift under occlusion is what ruins a track.
            self._resize(w, h, penalty * best_score, scale_z)
        self._tracking_frame(confident, sharpness)
        return self.box, best_score

    # -- helpers -------------------------------------------------------------------------------------------------
    def _device_constants(self) -> tuple:
        """(anchors, window) on :attr:`ops`' device, made once per ops."""
        cached = getattr(self, "_device_cache", None)
        if cached is None or cached[0] is not self.ops:
            self._device_cache = cached = (self.ops, (self.ops.asarray(self.anchors), self.ops.asarray(self._window)))
        return cached[1]

    def _position(self, best: tuple, dx: float, dy: float, scale_z: float) -> np.ndarray:
        """Frame position of anchor ``best``'s box (offsets ``dx``, ``dy``) in the last search crop, kept inside
        the frame."""
        half = (self.params.instance_size - 1) / 2
        anchors = self.anchors
        cx = anchors[0][best] + dx * anchors[2][best]  # decode()'s arithmetic, for the one anchor
        cy = anchors[1][best] + dy * anchors[3][best]
        disp = np.array([cx - half, cy - half]) / scale_z
        return self._in_frame(self._crop_center + disp)

    def _resize(self, w: float, h: float, weight: float, scale_z: float) -> None:
        """The size follows the best anchor's box ``w`` × ``h`` (crop pixels) with damping ``lr · weight`` (pysot:
        ``weight`` = penalty · score), within [min_scale, max_scale] × the initial size and the frame."""
        p = self.params
        lr = float(weight * p.lr)
        size = self._size * (1 - lr) + np.array([w, h]) / scale_z * lr
        low = self._init_size * p.min_scale
        high = np.minimum(self._init_size * p.max_scale, np.maximum(self._frame_wh, low))
        self._size = np.clip(size, low, high)

    def _reach(self, side: float) -> float:
        """Side, in frame pixels, of the square of target centres the score map of a ``side`` crop spans."""
        p = self.params
        return (p.score_size - 1) * p.total_stride / p.instance_size * side

    def _search_window(self) -> tuple[np.ndarray, float]:
        """(centre, zoom) of this frame's one search window while lost.

        A candidate is watched every frame, at the tracking scale, until it is confirmed or dropped. Otherwise odd
        search frames look at the last confident position, through a region widened by :data:`SEARCH_ZOOM_STEP`
        per search frame up to :data:`MAX_SEARCH_ZOOM`; even ones (with ``global_search``) at the next tile of the
        frame, at the tracking scale, nearest first.
        """
        self._search_frames += 1
        # The candidate while confirming one, else the anchor; inside this frame, which may be smaller than the last.
        first = self._in_frame(self._center)
        if self._confirm:
            return first, 1.0
        if self.lost_params.global_search and self._search_frames % 2 == 0:
            if len(self._sweep.tiles(self._frame_wh, self._reach(self._tracking_side), self._anchor[0])):
                return self._sweep.take(1)[0], 1.0
        return first, min(SEARCH_ZOOM_STEP ** (self._search_frames - 1), MAX_SEARCH_ZOOM)

    def _search_update(self, best_score: float, peak_map, position: np.ndarray, s_c: float,
                       r_c: float) -> tuple[np.ndarray, float]:
        """One frame of the search while lost, given the window's best anchor (chosen without the motion prior)."""
        self._confidence.relax()
        confident, sharpness = self._confidence.judge(best_score, peak_map)
        plausible = s_c <= SIZE_TOLERANCE and r_c <= SIZE_TOLERANCE
        # The same place: a target moves less than its own size from one frame to the next. (The whole candidate
        # window, SiamFC's rule, would confirm any look-alike in it: SiamRPN watches only that one window.)
        self._search_frame(position if confident and plausible else None, sharpness, float(self._size.max()))
        return self.box, best_score


def _not_finite(name: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{name} contains NaN or infinity",
                                fix="check the network's weights and its input crops")
