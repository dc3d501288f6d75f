"""SiamFC's tracking procedure without a framework: crops in, response maps in, boxes out (numpy + OpenCV).

The network is somebody else's business — a PyTorch model (:mod:`edgetrack.models.torch.siamfc_tracker`), an ONNX
Runtime session or an Ascend OM graph — so the same logic drives every backend::

    logic = SiamFCTracking(SiamFCParams())
    z = logic.init(frame0, box)              # (1, 3, 127, 127) float32 -> template graph, once
    for frame in frames:
        x = logic.search_crops(frame)        # (3, 3, 255, 255) float32, all scales in one batch -> search graph
        box, score = logic.update_from_responses(responses)   # (3, 17, 17) from the head graph
        logic.lost                           # True while the target counts as lost (see below)

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

Losing the target and finding it again
--------------------------------------
Neither paper handles a target that disappears (HSM-SiamFC names occlusion as its open problem): plain SiamFC
follows the highest peak whatever it is, so under an occluder it drifts onto clutter and, since its search region
is only about twice the target, never sees the target again once it reappears elsewhere. :class:`LostParams` adds
a small state machine on top, at no cost to the network and nearly none to the hot path:

* **Confidence of a frame.** A frame is *confident* when ``score >= score_threshold`` (the network's own decision
  boundary, 0.5) *and* the peak is sharp: its APCE (average peak-to-correlation energy, Wang et al., CVPR 2017:
  ``(max - min)² / mean((F - min)²)`` of the chosen 17×17 raw map) is at least ``apce_ratio`` times the running
  APCE of the confident frames so far. The score alone misses occluders that still excite some channel; a
  relative sharpness measure catches the flat, multi-modal maps that an absent target gives, and being relative
  it needs no per-network calibration. Both are a handful of numpy operations on 289 values.
* **Hysteresis.** ``lost_after`` consecutive unconfident frames declare the target lost (one blurred frame does not);
  meanwhile the track still follows the peak, as SiamFC does, but its size is frozen (a scale read from an
  unconfident peak is noise, and size drift under occlusion is what ruins SiamFC tracks). On the declaring frame
  the track returns to the *anchor*, the last confident centre and size: the drift of the doubtful frames is undone.
* **Search while lost.** Template and size stay frozen. The graphs have static shapes, so the search widens by
  reusing the batch, not by enlarging it: the ``scale_num`` crops of each frame become ``scale_num`` search windows
  at the frozen scale — the first at the anchor (targets tend to reappear where they vanished), the others walking
  through tiles that cover the whole frame, nearest to the anchor first, so the search spreads in rings and the
  whole frame is visited every ``ceil(tiles / (scale_num - 1))`` frames. Each lost frame costs exactly one normal
  frame: latency stays flat. (Zooming out — one bigger crop resized to the same input — would shrink the target
  against a template that is not scale-invariant; SiamFC's scale pyramid covers only ±4 %.) The cosine window,
  SiamFC's motion prior, gets ``search_window_influence`` (0: the target may be anywhere in a window).
* **Re-acquisition.** A confident peak in any window becomes a *candidate*: the track moves there and the next
  frame's first window is centred on it. ``recover_after`` consecutive confident frames whose peaks stay within
  that window's reach (the default 2: agreement of two frames, so one look-alike flash does not end the search)
  end the search; an unconfident frame drops the candidate and the search goes on from the anchor. The running
  APCE is not updated while searching and decays slowly (half-life about 34 frames), so a target that returns
  with a blunter peak than it left with is not locked out for ever.

``lost`` (and ``TrackResult.lost``) is True from the declaring frame until the frame that confirms the recovery.
While lost, the box is the anchor's (or the candidate's) and ``score`` is the best window's. ``LostParams(enabled=
False)`` is plain SiamFC: ``lost`` is then ``score < score_threshold`` frame by frame and nothing else changes. On a
sequence the network tracks confidently, both give the same boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgetrack.errors import InvalidArgumentError, TrackerStateError
from edgetrack.tracking.crop import box_center, check_box, check_frame, context_size, crop_and_resize, mean_color

__all__ = ["SiamFCParams", "LostParams", "SiamFCTracking", "INPUT_CHANNEL_ORDER", "INPUT_VALUE_RANGE"]

INPUT_CHANNEL_ORDER = "BGR"
INPUT_VALUE_RANGE = (0.0, 255.0)

# The running APCE follows slow appearance change (about ten confident frames' memory) but not a sudden drop.
_APCE_RATE = 0.1
# While searching, the sharpness asked of a peak relaxes (half-life ~34 frames): a target that comes back changed,
# with a blunter peak than before it vanished, is not locked out for ever.
_APCE_SEARCH_DECAY = 0.98
# Neighbouring search tiles overlap by this share of the span one response map covers: a target on a tile's edge,
# where the map's border cells see it only partly, is then also near the next tile's centre.
_TILE_OVERLAP = 0.2


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


@dataclass(frozen=True)
class LostParams:
    """When a track counts as lost and how it finds the target again (the module docstring has the design).

    ``enabled``: False is plain SiamFC (``lost = score < score_threshold`` per frame, no search).
    ``score_threshold``: a confident frame's ``sigmoid(peak)`` is at least this. ``apce_ratio``: and its peak's
    APCE is at least this share of the running APCE of confident frames (0 turns this test off).
    ``lost_after``: consecutive unconfident frames that declare the target lost. ``recover_after``: consecutive
    confident frames on a candidate that end the search. ``search_window_influence``: the cosine window's weight
    while searching. ``global_search``: search tiles over the whole frame while lost (False: only the last
    confident position is watched, so the track can never jump).
    """

    enabled: bool = True
    score_threshold: float = 0.5
    apce_ratio: float = 0.4
    lost_after: int = 3
    recover_after: int = 2
    search_window_influence: float = 0.0
    global_search: bool = True

    def __post_init__(self):
        for name in ("enabled", "global_search"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidArgumentError(f"LostParams.{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("score_threshold", "apce_ratio", "search_window_influence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
                raise InvalidArgumentError(f"LostParams.{name} must be a number in [0, 1], got {value!r}")
        for name in ("lost_after", "recover_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"LostParams.{name} must be an integer >= 1 (frames), got {value!r}")


class SiamFCTracking:
    """The state of one SiamFC track: centre, size, search region, lost or not; see the module docstring."""

    def __init__(self, params: SiamFCParams | None = None, lost: LostParams | None = None):
        params = SiamFCParams() if params is None else params
        if not isinstance(params, SiamFCParams):
            raise InvalidArgumentError(f"params must be SiamFCParams, got {type(params).__name__}")
        lost = LostParams() if lost is None else lost
        if not isinstance(lost, LostParams):
            raise InvalidArgumentError(f"lost must be LostParams, got {type(lost).__name__}")
        self.params = params
        self.lost_params = lost
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
        self._reset_lost_state()

    def _reset_lost_state(self) -> None:
        self._lost = False
        self._searching = False
        self._low = 0  # consecutive unconfident frames while tracking
        self._confirm = 0  # consecutive confident frames on the current candidate while searching
        self._apce_ref: float | None = None  # running APCE of confident frames
        self._anchor: tuple[np.ndarray, np.ndarray] | None = None  # (centre, size) of the last confident frame
        self._tiles: np.ndarray | None = None  # search-window centres over the frame, nearest to the anchor first
        self._tiles_key: tuple | None = None
        self._next_tile = 0
        self._search_frames = 0
        self._windows: np.ndarray | None = None  # centres of the pending crops while searching

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self._center is not None

    @property
    def lost(self) -> bool:
        """Whether the target counts as lost after the last update (see the module docstring)."""
        return self._lost

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
        """Start a track (a new one if one runs); returns the exemplar crop as (1, 3, exemplar, exemplar) float32."""
        frame = check_frame(frame)
        box = check_box(box, frame_shape=frame.shape)
        self._center = box_center(box)
        self._size = box[2:].copy()
        self._init_size = box[2:].copy()
        self._frame_wh = (frame.shape[1], frame.shape[0])
        self._pending = False
        self._reset_lost_state()
        self._anchor = (self._center.copy(), self._size.copy())
        crop = crop_and_resize(frame, self._center, self.exemplar_side, self.params.exemplar_size, mean_color(frame))
        return _to_nchw(crop[None])

    def search_crops(self, frame: np.ndarray) -> np.ndarray:
        """This frame's search crops as one (scale_num, 3, instance, instance) float32 batch.

        While tracking: one crop per scale around the last centre. While lost: one search window per batch slot,
        all at the frozen scale (see the module docstring); the network runs the same way in both cases.
        """
        self._require_init("search_crops")
        frame = check_frame(frame)
        self._frame_wh = (frame.shape[1], frame.shape[0])
        pad = mean_color(frame)  # once per frame, shared by the scales
        side = self.search_side
        size = self.params.instance_size
        if self._searching:
            self._windows = self._search_windows()
            crops = np.stack([crop_and_resize(frame, c, side, size, pad) for c in self._windows])
        else:
            crops = np.stack([crop_and_resize(frame, self._center, side * f, size, pad) for f in self._scale_factors])
        self._pending = True
        return _to_nchw(crops)

    def update_from_responses(self, responses) -> tuple[np.ndarray, float]:
        """Move the track by the network's responses to the last :meth:`search_crops`; returns ``(box, score)``.

        ``responses``: (scale_num, R, R) or (scale_num, 1, R, R), in the order of the crops. ``score`` is in (0, 1).
        Whether the target now counts as lost is :attr:`lost`.
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
        if self._searching:
            return self._search_update(r, up)
        # siamfc-pytorch multiplies the raw maps (not probabilities) by the penalty; kept for fidelity.
        penalised_peaks = up.reshape(p.scale_num, -1).max(axis=1) * self._penalties
        best = int(np.argmax(penalised_peaks))
        response = up[best] - up[best].min()
        response /= response.sum() + 1e-16
        response = (1 - p.window_influence) * response + p.window_influence * self._window
        row, col = np.unravel_index(int(np.argmax(response)), response.shape)
        score = 1.0 / (1.0 + math.exp(-float(up[best, row, col])))
        self._center = self._peak_position(row, col, self._center, self.search_side * self._scale_factors[best])

        lp = self.lost_params
        if not lp.enabled:
            self._grow(best)
            self._lost = score < lp.score_threshold
            return self.box, score
        confident, apce = self._confidence(score, r[best])
        if confident:
            self._grow(best)
            self._low = 0
            self._confident_frame(apce)
        else:
            # Follow the peak as SiamFC does (a blurred frame is often still right) but keep the size: a scale
            # read off an unconfident peak is noise, and size drift is how occlusions ruin SiamFC tracks.
            self._low += 1
            if self._low >= lp.lost_after:
                self._start_search()
        self._lost = self._searching
        return self.box, score

    # -- helpers -------------------------------------------------------------------------------------------------
    def _peak_position(self, row: int, col: int, center: np.ndarray, side: float) -> np.ndarray:
        """Frame position of the upsampled map's cell (row, col) for a crop of ``side`` around ``center``."""
        p = self.params
        # Peak -> displacement: upsampled cells -> response cells -> instance-crop pixels -> frame pixels.
        disp_up = np.array([col, row], dtype=np.float64) - (p.upscaled_size - 1) / 2
        disp_instance = disp_up * p.total_stride / p.response_upscale
        disp_frame = disp_instance * side / p.instance_size
        w, h = self._frame_wh
        return np.clip(center + disp_frame, [0.0, 0.0], [w - 1.0, h - 1.0])

    def _grow(self, best: int) -> None:
        p = self.params
        scale = (1 - p.scale_lr) + p.scale_lr * self._scale_factors[best]
        self._size = np.clip(self._size * scale, self._init_size * p.min_scale, self._init_size * p.max_scale)

    def _confidence(self, score: float, raw: np.ndarray) -> tuple[bool, float | None]:
        """(confident, APCE of the raw map or None when not computed)."""
        lp = self.lost_params
        if score < lp.score_threshold:
            return False, None
        if lp.apce_ratio == 0:
            return True, None
        apce = _apce(raw)
        return self._apce_ref is None or apce >= lp.apce_ratio * self._apce_ref, apce

    def _confident_frame(self, apce: float | None) -> None:
        self._anchor = (self._center.copy(), self._size.copy())
        if apce is not None:
            ref = self._apce_ref
            self._apce_ref = apce if ref is None else ref + _APCE_RATE * (apce - ref)

    def _start_search(self) -> None:
        w, h = self._frame_wh
        self._searching = True
        self._low = self._confirm = self._next_tile = self._search_frames = 0
        self._center = np.clip(self._anchor[0], [0.0, 0.0], [w - 1.0, h - 1.0])
        self._size = self._anchor[1].copy()
        self._tiles = None

    def _search_windows(self) -> np.ndarray:
        """Centres of this frame's ``scale_num`` search windows: the anchor (or candidate), then the next tiles."""
        n = self.params.scale_num
        w, h = self._frame_wh
        # The candidate while confirming one, else the anchor; inside this frame, which may be smaller than the last.
        first = np.clip(self._center, [0.0, 0.0], [w - 1.0, h - 1.0])[None]
        tiles = self._search_tiles() if self.lost_params.global_search else np.empty((0, 2))
        if len(tiles) == 0:
            return np.repeat(first, n, axis=0)
        if n == 1:
            # One window a frame: alternate anchor and tiles, but watch a candidate every frame until confirmed.
            self._search_frames += 1
            if self._confirm or self._search_frames % 2:
                return first.copy()
            pick = tiles[self._next_tile % len(tiles)][None]
            self._next_tile = (self._next_tile + 1) % len(tiles)
            return pick
        idx = (self._next_tile + np.arange(n - 1)) % len(tiles)
        self._next_tile = (self._next_tile + n - 1) % len(tiles)
        return np.vstack([first, tiles[idx]])

    def _search_tiles(self) -> np.ndarray:
        key = (self._frame_wh, self.search_side)
        if self._tiles is None or self._tiles_key != key:
            self._tiles, self._tiles_key = self._tile_centres(), key
            self._next_tile %= max(len(self._tiles), 1)
        return self._tiles

    def _tile_centres(self) -> np.ndarray:
        """Window centres tiling the frame at the frozen scale, nearest to the anchor first."""
        p = self.params
        w, h = self._frame_wh
        # One window's map points at centres within ±(R - 1)·stride/2 instance pixels of the window's centre.
        reach = (p.response_size - 1) * p.total_stride / p.instance_size * self.search_side
        step = max(reach * (1 - _TILE_OVERLAP), 1.0)
        nx, ny = max(1, math.ceil(w / step)), max(1, math.ceil(h / step))
        xs = (np.arange(nx) + 0.5) * (w / nx) - 0.5
        ys = (np.arange(ny) + 0.5) * (h / ny) - 0.5
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        offset = grid - self._anchor[0]
        # A tile whose whole cell lies within the anchor window's reach adds nothing: the anchor is watched anyway.
        far = np.abs(offset).max(axis=1) + max(w / nx, h / ny) / 2 > reach / 2
        grid, offset = grid[far], offset[far]
        return grid[np.argsort(np.hypot(offset[:, 0], offset[:, 1]), kind="stable")]

    def _search_update(self, r: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float]:
        """One frame of the search while lost: every window at the same scale, so no scale penalty."""
        lp = self.lost_params
        if self._apce_ref is not None:
            self._apce_ref *= _APCE_SEARCH_DECAY
        best = int(np.argmax(up.reshape(len(up), -1).max(axis=1)))
        response = up[best] - up[best].min()
        response /= response.sum() + 1e-16
        if lp.search_window_influence:
            wi = lp.search_window_influence
            response = (1 - wi) * response + wi * self._window
        row, col = np.unravel_index(int(np.argmax(response)), response.shape)
        score = 1.0 / (1.0 + math.exp(-float(up[best, row, col])))
        confident, apce = self._confidence(score, r[best])
        if confident:
            position = self._peak_position(row, col, self._windows[best], self.search_side)
            # Agreement is by place, not by slot: windows overlap, so a tile may see the candidate better than the
            # window centred on it. Within the candidate window's reach counts, as a tracking step would.
            reach = (self.params.response_size - 1) * self.params.total_stride / self.params.instance_size
            agrees = self._confirm > 0 and np.abs(position - self._center).max() <= reach * self.search_side / 2
            self._confirm = self._confirm + 1 if agrees else 1
            self._center = position
            if self._confirm >= lp.recover_after:
                self._searching = False
                self._confirm = 0
                self._confident_frame(apce)
        else:
            self._confirm = 0
            w, h = self._frame_wh
            self._center = np.clip(self._anchor[0], [0.0, 0.0], [w - 1.0, h - 1.0])
        self._lost = self._searching
        return self.box, score


def _apce(m: np.ndarray) -> float:
    """Average peak-to-correlation energy of a response map: high for one sharp peak, low for flat or many peaks."""
    v = m.ravel()
    lo = v.min()
    d = v - lo
    energy = float(d.dot(d))  # a dot product: half the time of np.mean(d * d) on 289 values
    return 0.0 if energy == 0 else float((v.max() - lo) ** 2) * v.size / energy


def _to_nchw(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, contiguous: what every backend's input binding wants."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
