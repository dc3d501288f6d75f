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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgetrack.errors import InvalidArgumentError, TrackerStateError
from edgetrack.tracking.crop import box_center, check_box, check_frame, context_size, crop_and_resize, mean_color

__all__ = ["SiamRPNParams", "SiamRPNTracking", "anchor_shapes", "anchor_grid", "decode", "INPUT_CHANNEL_ORDER",
           "INPUT_VALUE_RANGE"]

INPUT_CHANNEL_ORDER = "BGR"
INPUT_VALUE_RANGE = (0.0, 255.0)
# Largest |dw|, |dh| decoded (torchvision's BoxCoder bound): a box at most 62.5× its anchor.
MAX_LOG_SCALE = math.log(1000.0 / 16)


@dataclass(frozen=True)
class SiamRPNParams:
    """SiamRPN's tracking hyper-parameters.

    Geometry (must match the network: ``SiamRPNConfig.tracking_params()`` builds these from a model's config):
    ``exemplar_size``/``instance_size`` crop sides, ``total_stride`` crop pixels per score cell, ``score_size``
    the maps' side (25 for EfficientNet, 17 for AlexNet), ``anchor_ratios`` (h/w) and ``anchor_scales`` (side /
    stride). Tracking (DaSiamRPN's published values for SiamRPN): ``penalty_k`` the scale/ratio change penalty,
    ``window_influence`` the weight of the cosine window, ``lr`` the size damping, ``context`` the crop's context
    margin; ``min_scale``/``max_scale`` bound the size relative to the initial one. There is no "lost" threshold
    here: the caller decides what score means lost.
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
        for name in ("window_influence", "lr"):
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


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def _context_side(w, h, context: float):
    extra = context * (w + h)
    return np.sqrt((w + extra) * (h + extra))


class SiamRPNTracking:
    """The state of one SiamRPN track: centre, size; see the module docstring for the protocol."""

    def __init__(self, params: SiamRPNParams | None = None):
        params = SiamRPNParams() if params is None else params
        if not isinstance(params, SiamRPNParams):
            raise InvalidArgumentError(f"params must be SiamRPNParams, got {type(params).__name__}")
        self.params = params
        self.anchors = anchor_grid(params)
        hann = np.hanning(params.score_size)
        self._window = np.outer(hann, hann)[None]  # (1, R, R): the same window for every anchor
        self._center: np.ndarray | None = None  # (cx, cy), pixel-index coordinates
        self._size: np.ndarray | None = None  # (w, h)
        self._init_size: np.ndarray | None = None
        self._frame_wh: tuple[int, int] | None = None
        self._pending = False  # a search crop was made and its outputs not consumed yet

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self._center is not None

    @property
    def box(self) -> np.ndarray:
        """Current box ``(x, y, w, h)``, float64."""
        self._require_init("box")
        (cx, cy), (w, h) = self._center, self._size
        return np.array([cx - (w - 1) / 2, cy - (h - 1) / 2, w, h], dtype=np.float64)

    @property
    def exemplar_side(self) -> float:
        """Side, in frame pixels, of the square the exemplar would be cropped from at the current size."""
        self._require_init("exemplar_side")
        return context_size(float(self._size[0]), float(self._size[1]), self.params.context)

    @property
    def search_side(self) -> float:
        """Side, in frame pixels, of the search region."""
        return self.exemplar_side * self.params.instance_size / self.params.exemplar_size

    def _require_init(self, what: str) -> None:
        if self._center is None:
            raise TrackerStateError(f"{what} needs an initialised track", fix="call init(frame, box) first")

    # -- protocol ------------------------------------------------------------------------------------------------
    def init(self, frame: np.ndarray, box) -> np.ndarray:
        """Start a track; returns the exemplar crop as (1, 3, exemplar, exemplar) float32 (BGR, 0..255)."""
        frame = check_frame(frame)
        box = check_box(box, frame_shape=frame.shape)
        self._center = box_center(box)
        self._size = box[2:].copy()
        self._init_size = box[2:].copy()
        self._frame_wh = (frame.shape[1], frame.shape[0])
        self._pending = False
        crop = crop_and_resize(frame, self._center, self.exemplar_side, self.params.exemplar_size, mean_color(frame))
        return _to_nchw(crop[None])

    def search_crops(self, frame: np.ndarray) -> np.ndarray:
        """The search crop of ``frame`` around the current centre as (1, 3, instance, instance) float32."""
        self._require_init("search_crops")
        frame = check_frame(frame)
        self._frame_wh = (frame.shape[1], frame.shape[0])
        crop = crop_and_resize(frame, self._center, self.search_side, self.params.instance_size, mean_color(frame))
        self._pending = True
        return _to_nchw(crop[None])

    def _check_map(self, name: str, value, channels: int) -> np.ndarray:
        p = self.params
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.shape != (channels, p.score_size, p.score_size):
            raise InvalidArgumentError(
                f"{name} must have shape (1, {channels}, {p.score_size}, {p.score_size}) or without the batch axis, "
                f"got {np.shape(value)}",
                fix="pass the head graph's outputs for one search crop, with params matching the model "
                    "(SiamRPNConfig.tracking_params())")
        if not np.all(np.isfinite(arr)):
            raise InvalidArgumentError(f"{name} contains NaN or infinity",
                                       fix="check the network's weights and its input crops")
        return arr

    def update_from_outputs(self, cls, loc) -> tuple[np.ndarray, float]:
        """Move the track by the head's outputs for the last :meth:`search_crops`; returns ``(box, score)``.

        ``cls``: (1, 2A, R, R) logits, ``loc``: (1, 4A, R, R) offsets (the batch axis may be left out).
        ``score`` in [0, 1] is the chosen anchor's target probability.
        """
        self._require_init("update_from_outputs")
        if not self._pending:
            raise TrackerStateError(
                "update_from_outputs needs the outputs for a fresh search_crops(frame)",
                fix="call search_crops(frame), run the network on its output, then update_from_outputs")
        p = self.params
        a, n = p.num_anchors, p.score_size
        logits = self._check_map("cls", cls, 2 * a).reshape(2, a, n, n)
        deltas = self._check_map("loc", loc, 4 * a).reshape(4, a, n, n)
        self._pending = False

        # Two-class softmax, written as a logistic of the difference (stable for any logits).
        score = 1.0 / (1.0 + np.exp(np.clip(logits[0] - logits[1], -700, 700)))
        boxes = decode(deltas, self.anchors)

        scale_z = p.exemplar_size / self.exemplar_side  # crop pixels per frame pixel
        tw, th = self._size * scale_z
        s_c = _change(_context_side(boxes[2], boxes[3], p.context) / _context_side(tw, th, p.context))
        r_c = _change((tw / th) / (boxes[2] / boxes[3]))
        penalty = np.exp(-(r_c * s_c - 1.0) * p.penalty_k)
        pscore = penalty * score
        pscore = pscore * (1 - p.window_influence) + self._window * p.window_influence
        best = np.unravel_index(int(np.argmax(pscore)), pscore.shape)

        half = (p.instance_size - 1) / 2
        disp = np.array([boxes[0][best] - half, boxes[1][best] - half]) / scale_z
        w, h = self._frame_wh
        self._center = np.clip(self._center + disp, [0.0, 0.0], [w - 1.0, h - 1.0])
        lr = float(penalty[best] * score[best] * p.lr)
        size = self._size * (1 - lr) + np.array([boxes[2][best], boxes[3][best]]) / scale_z * lr
        low = self._init_size * p.min_scale
        high = np.minimum(self._init_size * p.max_scale, np.maximum([w, h], low))
        self._size = np.clip(size, low, high)
        return self.box, float(score[best])


def _to_nchw(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, contiguous: what every backend's input binding wants."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
