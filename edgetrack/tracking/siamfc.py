"""SiamFC's tracking procedure without a framework: crops in, response maps in, boxes out (numpy + OpenCV).

The network is somebody else's business — a PyTorch model (:mod:`edgetrack.models.torch.siamfc_tracker`), an ONNX
Runtime session or an Ascend OM graph — so the same logic drives every backend::

    logic = SiamFCTracking(SiamFCParams())
    z = logic.init(frame0, box)              # (1, 3, 127, 127) float32 -> template graph, once
    for frame in frames:
        x = logic.search_crops(frame)        # (3, 3, 255, 255) float32, all scales in one batch -> search graph
        box, score = logic.update_from_responses(responses)   # (3, 17, 17) from the head graph

This follows siamfc-pytorch's ``TrackerSiamFC.update`` (itself the MatConvNet original): every response map is
upsampled 16× bicubically (17 -> 272), the non-centre scales are multiplied by the scale penalty, the best scale is
the one with the highest peak, its map is shifted to start at 0 and normalised to sum 1, blended with a Hanning
window, and the peak's displacement from the centre, converted through the instance crop (stride 8, upsampling 16)
into frame pixels, moves the target; the size follows the chosen scale with damping ``scale_lr``.

Differences from siamfc-pytorch, each deliberate: the paper's damping 0.35 (siamfc-pytorch uses 0.59); crops are
sub-pixel exact (:func:`~edgetrack.tracking.crop.crop_and_resize`) instead of rounded to whole pixels; padding uses
the current frame's mean colour (siamfc-pytorch keeps the first frame's); the target size stays within
[0.2, 5] × the initial size (the MatConvNet original's ``minSfactor``/``maxSfactor``) and the centre within the
frame, so a tracker that drifts cannot grow, shrink or wander without bound.

Network input convention (one convention, written into every bundle's manifest): crops are float32, NCHW, the
frame's channel order (BGR), values 0..255 un-normalised — siamfc-pytorch's convention; the first BatchNorm
absorbs the scale. ``score`` is ``sigmoid`` of the raw response at the chosen peak: the network is trained with a
logistic loss, so this reads as the probability that the peak is the target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgetrack.errors import InvalidArgumentError, TrackerStateError
from edgetrack.tracking.crop import box_center, check_box, check_frame, context_size, crop_and_resize, mean_color

__all__ = ["SiamFCParams", "SiamFCTracking", "INPUT_CHANNEL_ORDER", "INPUT_VALUE_RANGE"]

INPUT_CHANNEL_ORDER = "BGR"
INPUT_VALUE_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class SiamFCParams:
    """SiamFC's tracking hyper-parameters (the paper's §2.1 c, the rest from siamfc-pytorch).

    ``exemplar_size``/``instance_size``: template and search crop sides in pixels; ``response_size``: the
    network's output map side; ``total_stride``: input pixels per response cell; ``response_upscale``: the map is
    upsampled by this factor before the peak is read; ``scale_num`` scales ``scale_step ** (-(n//2) .. n//2)``;
    ``scale_penalty`` multiplies the non-centre scales' maps; ``scale_lr`` damps size changes;
    ``window_influence`` weighs the Hanning window against the response; ``context`` is the crop's context
    margin (see :func:`~edgetrack.tracking.crop.context_size`); ``min_scale``/``max_scale`` bound the target size
    relative to the initial one.
    """

    exemplar_size: int = 127
    instance_size: int = 255
    response_size: int = 17
    total_stride: int = 8
    response_upscale: int = 16
    scale_num: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.35
    window_influence: float = 0.176
    context: float = 0.5
    min_scale: float = 0.2
    max_scale: float = 5.0

    def __post_init__(self):
        integers = ("exemplar_size", "instance_size", "response_size", "total_stride", "response_upscale", "scale_num")
        for name in integers:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"SiamFCParams.{name} must be a positive integer, got {value!r}")
        for name in ("scale_step", "scale_penalty", "context", "min_scale", "max_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"SiamFCParams.{name} must be a finite number >= 0, got {value!r}")
        for name in ("scale_lr", "window_influence"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise InvalidArgumentError(f"SiamFCParams.{name} must be in [0, 1], got {value!r}")
        if self.scale_num % 2 != 1:
            raise InvalidArgumentError(
                f"SiamFCParams.scale_num must be odd (one centre scale), got {self.scale_num}", fix="use 1, 3 or 5"
            )
        if self.scale_step <= 0 or self.scale_penalty <= 0:
            raise InvalidArgumentError("SiamFCParams.scale_step and scale_penalty must be > 0")
        if not 0 < self.min_scale <= 1 <= self.max_scale:
            raise InvalidArgumentError(
                f"SiamFCParams needs 0 < min_scale <= 1 <= max_scale, got {self.min_scale}, {self.max_scale}"
            )
        expected = (self.instance_size - self.exemplar_size) // self.total_stride + 1
        if (self.instance_size - self.exemplar_size) % self.total_stride or self.response_size != expected:
            raise InvalidArgumentError(
                f"SiamFCParams: instance {self.instance_size}, exemplar {self.exemplar_size} and stride "
                f"{self.total_stride} give a {expected}×{expected} response, not {self.response_size}",
                fix="response_size = (instance_size - exemplar_size) / total_stride + 1",
            )

    @property
    def upscaled_size(self) -> int:
        return self.response_size * self.response_upscale

    @property
    def scale_factors(self) -> np.ndarray:
        half = self.scale_num // 2
        return self.scale_step ** np.linspace(-half, half, self.scale_num)


class SiamFCTracking:
    """The state of one SiamFC track: centre, size, search region; see the module docstring for the protocol."""

    def __init__(self, params: SiamFCParams | None = None):
        params = SiamFCParams() if params is None else params
        if not isinstance(params, SiamFCParams):
            raise InvalidArgumentError(f"params must be SiamFCParams, got {type(params).__name__}")
        self.params = params
        self._scale_factors = params.scale_factors
        # Penalty per scale: 1 for the centre scale, scale_penalty for the others.
        self._penalties = np.where(np.arange(params.scale_num) == params.scale_num // 2, 1.0, params.scale_penalty)
        hann = np.outer(np.hanning(params.upscaled_size), np.hanning(params.upscaled_size))
        self._window = (hann / hann.sum()).astype(np.float32)
        self._center: np.ndarray | None = None  # (cx, cy), pixel-index coordinates
        self._size: np.ndarray | None = None  # (w, h)
        self._init_size: np.ndarray | None = None
        self._frame_wh: tuple[int, int] | None = None
        self._pending = False  # search crops were made and their responses not consumed yet

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
        """Side, in frame pixels, of the centre scale's search region."""
        return self.exemplar_side * self.params.instance_size / self.params.exemplar_size

    def _require_init(self, what: str) -> None:
        if self._center is None:
            raise TrackerStateError(f"{what} needs an initialised track", fix="call init(frame, box) first")

    # -- protocol ------------------------------------------------------------------------------------------------
    def init(self, frame: np.ndarray, box) -> np.ndarray:
        """Start a track; returns the exemplar crop as (1, 3, exemplar, exemplar) float32 (BGR, 0..255)."""
        frame = check_frame(frame)
        box = check_box(box)
        self._center = box_center(box)
        self._size = box[2:].copy()
        self._init_size = box[2:].copy()
        self._frame_wh = (frame.shape[1], frame.shape[0])
        self._pending = False
        crop = crop_and_resize(frame, self._center, self.exemplar_side, self.params.exemplar_size, mean_color(frame))
        return _to_nchw(crop[None])

    def search_crops(self, frame: np.ndarray) -> np.ndarray:
        """All scales' search crops of ``frame`` as one (scale_num, 3, instance, instance) float32 batch."""
        self._require_init("search_crops")
        frame = check_frame(frame)
        self._frame_wh = (frame.shape[1], frame.shape[0])
        pad = mean_color(frame)  # once per frame, shared by the scales
        side = self.search_side
        size = self.params.instance_size
        crops = np.stack([crop_and_resize(frame, self._center, side * f, size, pad) for f in self._scale_factors])
        self._pending = True
        return _to_nchw(crops)

    def update_from_responses(self, responses) -> tuple[np.ndarray, float]:
        """Move the track by the network's responses to the last :meth:`search_crops`; returns ``(box, score)``.

        ``responses``: (scale_num, R, R) or (scale_num, 1, R, R), in the order of the crops. ``score`` is in (0, 1).
        """
        self._require_init("update_from_responses")
        if not self._pending:
            raise TrackerStateError(
                "update_from_responses needs the responses to a fresh search_crops(frame)",
                fix="call search_crops(frame), run the network on its output, then update_from_responses",
            )
        p = self.params
        r = np.asarray(responses, dtype=np.float32)
        if r.ndim == 4 and r.shape[1] == 1:
            r = r[:, 0]
        if r.shape != (p.scale_num, p.response_size, p.response_size):
            raise InvalidArgumentError(
                f"responses must have shape ({p.scale_num}, {p.response_size}, {p.response_size}) "
                f"(or with a channel axis of 1), got {np.shape(responses)}"
            )
        if not np.all(np.isfinite(r)):
            raise InvalidArgumentError(
                "responses contain NaN or infinity", fix="check the network's weights and its input crops"
            )
        self._pending = False
        import cv2

        up = np.stack(
            [cv2.resize(m, (p.upscaled_size, p.upscaled_size), interpolation=cv2.INTER_CUBIC) for m in r]
        )
        # siamfc-pytorch multiplies the raw maps (not probabilities) by the penalty; kept for fidelity.
        penalised_peaks = up.reshape(p.scale_num, -1).max(axis=1) * self._penalties
        best = int(np.argmax(penalised_peaks))
        response = up[best] - up[best].min()
        response /= response.sum() + 1e-16
        response = (1 - p.window_influence) * response + p.window_influence * self._window
        row, col = np.unravel_index(int(np.argmax(response)), response.shape)
        score = 1.0 / (1.0 + math.exp(-float(up[best, row, col])))

        # Peak -> displacement: upsampled cells -> response cells -> instance-crop pixels -> frame pixels.
        disp_up = np.array([col, row], dtype=np.float64) - (p.upscaled_size - 1) / 2
        disp_instance = disp_up * p.total_stride / p.response_upscale
        disp_frame = disp_instance * self.search_side * self._scale_factors[best] / p.instance_size
        w, h = self._frame_wh
        self._center = np.clip(self._center + disp_frame, [0.0, 0.0], [w - 1.0, h - 1.0])

        scale = (1 - p.scale_lr) + p.scale_lr * self._scale_factors[best]
        self._size = np.clip(self._size * scale, self._init_size * p.min_scale, self._init_size * p.max_scale)
        return self.box, score


def _to_nchw(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, contiguous: what every backend's input binding wants."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
