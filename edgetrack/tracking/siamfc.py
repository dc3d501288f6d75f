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

Differences from siamfc-pytorch, each deliberate: no scale penalty by default (``scale_penalty`` 1.0, not SiamFC's
0.9745: on a validation set of training-split photos, seed 13, 1.0 gave siamfc-hsm +0.024 / +0.024 AUC over 0.9745,
sharp / blurred, and the report's test set then showed +0.021 / +0.020 for siamfc-hsm and +0.019 / +0.023 for
siamfc-hsm-half; ``benchmarks/results/siamfc-scale-search/``); the paper's damping 0.35 (siamfc-pytorch uses 0.59);
crops are sub-pixel exact (:func:`~edgetrack.tracking.crop.crop_and_resize`) instead of rounded to whole pixels;
padding uses the current frame's mean colour (siamfc-pytorch keeps the first frame's); the target size stays within
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

The state machine's bookkeeping, :class:`LostParams`, the confidence test and the tiles are shared with SiamRPN
(:mod:`edgetrack.tracking.siamese`).

``lost`` (and ``TrackResult.lost``) is True from the declaring frame until the frame that confirms the recovery.
While lost, the box is the anchor's (or the candidate's) and ``score`` is the best window's. ``LostParams(enabled=
False)`` is plain SiamFC: ``lost`` is then ``score < score_threshold`` frame by frame and nothing else changes. On a
sequence the network tracks confidently, both give the same boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgetrack.errors import InvalidArgumentError
from edgetrack.tracking.crop import check_frame, crop_and_resize, mean_color, reaches_outside
from edgetrack.tracking.siamese import LostParams, SiameseTracking, to_nchw

__all__ = ["SiamFCParams", "LostParams", "SiamFCTracking", "DEFAULT_SCORE_THRESHOLD", "DEFAULT_APCE_RATIO",
           "INPUT_CHANNEL_ORDER", "INPUT_VALUE_RANGE", "SCALE_SEARCHES", "peak_search"]

INPUT_CHANNEL_ORDER = "BGR"
INPUT_VALUE_RANGE = (0.0, 255.0)
# What LostParams' None means for SiamFC: sigmoid(peak) = 0.5 is the logistic loss's own decision boundary; the APCE
# test (module docstring) asks for 0.4 of the usual sharpness.
DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_APCE_RATIO = 0.4
# SiamFCParams.scale_search: scale_num search crops against one template (the paper's), or one search crop against
# scale_num templates.
SCALE_SEARCHES = ("crops", "templates")


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

    ``scale_search``: how the scales are searched. ``"crops"`` (the paper's, SiamFC's): ``scale_num`` search crops
    a frame against one template. ``"templates"``: one search crop a frame against ``scale_num`` templates cut at
    ``init`` with their context scaled by ``1 / scale_factors`` (a target ``k`` times its tracked size in the
    search crop matches the template whose target is ``k`` times larger): the same scale choices for a third of the
    search branch's work, the template pyramid's extra cost paid once at ``init``. The graphs' batch sizes follow
    (:attr:`search_batch`, :attr:`template_batch`), so a bundle is converted for one of the two.
    """

    exemplar_size: int = 127
    instance_size: int = 255
    response_size: int = 17
    total_stride: int = 8
    response_upscale: int = 16
    scale_num: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 1.0  # SiamFC's 0.9745 costs these models 0.02 AUC (module docstring)
    scale_lr: float = 0.35
    window_influence: float = 0.176
    context: float = 0.5
    min_scale: float = 0.2
    max_scale: float = 5.0
    scale_search: str = "crops"
    motion: float = 0.0

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
        for name in ("scale_lr", "window_influence", "motion"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise InvalidArgumentError(f"SiamFCParams.{name} must be in [0, 1], got {value!r}")
        if self.scale_num % 2 != 1:
            raise InvalidArgumentError(
                f"SiamFCParams.scale_num must be odd (one centre scale), got {self.scale_num}", fix="use 1, 3 or 5"
            )
        if self.scale_search not in SCALE_SEARCHES:
            raise InvalidArgumentError(
                f"SiamFCParams.scale_search must be one of {list(SCALE_SEARCHES)}, got {self.scale_search!r}",
                fix="'crops' searches scale_num crops against one template (the paper's), 'templates' one crop "
                    "against scale_num templates")
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
    def search_batch(self) -> int:
        """Search crops a frame: the search graph's batch."""
        return 1 if self.scale_search == "templates" else self.scale_num

    @property
    def template_batch(self) -> int:
        """Template crops at ``init``: the template graph's batch, and the head's kernels."""
        return self.scale_num if self.scale_search == "templates" else 1

    @property
    def upscaled_size(self) -> int:
        return self.response_size * self.response_upscale

    @property
    def scale_factors(self) -> np.ndarray:
        half = self.scale_num // 2
        return self.scale_step ** np.linspace(-half, half, self.scale_num)


def _max_rows(a: np.ndarray) -> np.ndarray:
    return a.max(axis=1)


def peak_search(up, penalties, window, window_influence, max_rows) -> tuple:
    """SiamFC's peak in upsampled maps: ``(best map, flat index of the peak in it, its raw value)``, as the arrays'
    own scalars (0-d / 1-element arrays; ``int()`` and ``float()`` them on the host).

    ``up``: (N, U, U) upsampled responses; the best map has the largest peak times ``penalties[n]``; its response,
    shifted to a minimum of 0 and normalised to a sum of 1, is mixed with ``window`` (U×U, sum 1) by
    ``window_influence`` (0: not at all; a number, or a 0-d device array), and its largest cell is the peak.
    Written once for numpy arrays and a backend's device arrays alike (:mod:`edgetrack.tracking.device`): only
    methods both have, arithmetic and ``max_rows(a)`` (each row's maximum of a 2-D array) given by the caller, and
    no step that needs a device value on the host (the device runs it inside a captured graph).
    """
    n = up.shape[0]
    best = (max_rows(up.reshape(n, -1)) * penalties).argmax()
    chosen = up[best.reshape(1)][0]  # a 1-element index: a device index needs no copy to the host
    response = chosen - chosen.min()
    response /= response.sum() + 1e-16  # in place, as numpy has always computed it (float32 throughout)
    if not isinstance(window_influence, (int, float)) or window_influence:
        response = (1 - window_influence) * response + window_influence * window
    index = response.argmax()
    return best, index, chosen.reshape(-1)[index.reshape(1)]


class SiamFCTracking(SiameseTracking):
    """The state of one SiamFC track: centre, size, search region, lost or not; see the module docstring."""

    default_score_threshold = DEFAULT_SCORE_THRESHOLD
    default_apce_ratio = DEFAULT_APCE_RATIO
    # Three crops and 3 × 272² upsampled values: one CUDA graph a frame makes the device path ×2.2–2.7 the host
    # path's frame rate (H200; edgetrack.tracking.device).
    device_tracking_pays = True

    def __init__(self, params: SiamFCParams | None = None, lost: LostParams | None = None):
        super().__init__(SiamFCParams() if params is None else params, lost, SiamFCParams)
        params = self.params
        self._scale_factors = params.scale_factors
        # Penalty per scale: 1 for the centre scale, scale_penalty for the others.
        self._penalties = np.where(np.arange(params.scale_num) == params.scale_num // 2, 1.0, params.scale_penalty)
        hann = np.outer(np.hanning(params.upscaled_size), np.hanning(params.upscaled_size))
        self._window = (hann / hann.sum()).astype(np.float32)
        self._no_penalties = np.ones(params.scale_num)  # while searching: every window at the same scale
        self._templates = params.scale_search == "templates"

    def _reset_lost_state(self) -> None:
        super()._reset_lost_state()
        self._windows: np.ndarray | None = None  # centres of the pending crops while searching

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def search_side(self) -> float:
        """Side, in frame pixels, of the centre scale's search region."""
        return self.exemplar_side * self.params.instance_size / self.params.exemplar_size

    @property
    def crop_layout(self) -> tuple[int, int]:
        return self.params.search_batch, self.params.instance_size

    # -- protocol ------------------------------------------------------------------------------------------------
    def init(self, frame: np.ndarray, box) -> np.ndarray:
        """Start a track; returns the exemplar crop(s) as (template_batch, 3, exemplar, exemplar) float32: one
        crop, or with ``scale_search="templates"`` one per scale, the context of scale ``k`` cut ``1 / k`` as
        wide (the centre scale's crop is the one crop)."""
        z = super().init(frame, box)
        if self.params.template_batch == 1:
            return z
        frame, side, size = check_frame(frame), self.exemplar_side, self.params.exemplar_size
        c = self.params.scale_num // 2  # the centre scale: the one crop already cut
        others = to_nchw(np.stack([crop_and_resize(frame, self._center, side / f, size)
                                   for i, f in enumerate(self._scale_factors) if i != c]))
        return np.concatenate([others[:c], z, others[c:]])

    def search_crops(self, frame: np.ndarray) -> np.ndarray:
        """This frame's search crops as one (search_batch, 3, instance, instance) float32 batch.

        While tracking: one crop per scale around the last centre (``scale_search="templates"``: one crop, the
        templates carry the scales). While lost: one search window per batch slot,
        all at the frozen scale (see the module docstring); the network runs the same way in both cases.
        """
        crops = self._crop_batch(*self._search_regions(frame))
        self._pending = True
        return crops

    def _search_regions(self, frame: np.ndarray) -> tuple:
        self._require_init("search_crops")
        frame = check_frame(frame)
        self._frame_wh = (frame.shape[1], frame.shape[0])
        side = self.search_side
        size = self.params.instance_size
        if self._searching:
            self._windows = self._search_windows()
            regions = [(c, side) for c in self._windows]
        else:
            self._predict()
            regions = [(self._center, side * f) for f in ((1.0,) if self._templates else self._scale_factors)]
        # The frame's mean colour once per frame, shared by the crops, and only if one of them needs padding.
        needed = any(reaches_outside(frame.shape, c, s, size) for c, s in regions)
        # When no crop reaches outside, no crop reads the padding: any colour does, and crop_and_resize need not ask.
        pad = mean_color(frame) if needed else (0.0, 0.0, 0.0)
        return frame, regions, size, pad

    def _peak_settings(self) -> tuple[np.ndarray, float]:
        """(scale penalties, window influence) of this frame: tracking, or searching while lost (every window at
        the same scale, so no penalty -- but with ``scale_search="templates"`` the maps are one window's scales,
        penalised as when tracking; the search's own window influence)."""
        if self._searching:
            return (self._penalties if self._templates else self._no_penalties,
                    self.lost_params.search_window_influence)
        return self._penalties, self.params.window_influence

    def _decode_settings(self) -> np.ndarray:
        penalties, influence = self._peak_settings()
        return np.concatenate([penalties, [influence]])

    def update_from_responses(self, responses) -> tuple[np.ndarray, float]:
        """Move the track by the network's responses to the last :meth:`search_crops`; returns ``(box, score)``.

        ``responses``: (scale_num, R, R) or (scale_num, 1, R, R), in the order of the crops (of the templates with
        ``scale_search="templates"``). ``score`` is in (0, 1).
        Whether the target now counts as lost is :attr:`lost`.
        """
        import cv2

        self._check_pending("update_from_responses")
        p = self.params
        r = self._check_responses(np.asarray(responses, dtype=np.float32), np.shape(responses))
        if not np.all(np.isfinite(r)):
            raise _not_finite()
        self._pending = False
        up = np.stack([cv2.resize(m, (p.upscaled_size, p.upscaled_size), interpolation=cv2.INTER_CUBIC) for m in r])
        penalties, influence = self._peak_settings()
        # siamfc-pytorch multiplies the raw maps (not probabilities) by the penalty; kept for fidelity.
        best, index, peak = peak_search(up, penalties, self._window, influence, _max_rows)
        return self._move(r, int(best), int(index), float(peak[0]))

    def decode_on_device(self, responses, params):
        """The device half of :meth:`update_from_responses` (inside the backend's frame program: no host
        synchronisation): the head's ``responses`` (device array) and the frame's ``params`` (of
        :meth:`search_request`, on the device) to one float64 vector, ``[best map, flat peak index, peak value,
        all finite (1/0), the raw maps (scale_num · R · R)]``, for :meth:`update_from_device`."""
        ops, p = self.ops, self.params
        xp = ops.xp
        n = p.scale_num
        r = self._check_responses(responses, tuple(responses.shape)).float()
        max_rows, window = self._device_constants()
        settings = params[params.shape[0] - n - 1:]
        # The influence stays float64, as a Python number is, so that 1 − influence rounds as on the host.
        best, index, peak = peak_search(ops.upsample_bicubic(r, p.upscaled_size), settings[:n], window, settings[n],
                                        max_rows)
        f64 = xp.float64
        return xp.concatenate([xp.stack([best.to(f64), index.to(f64)]), peak.to(f64),
                               xp.isfinite(r).all().to(f64).reshape(1), r.reshape(-1).to(f64)])

    def update_from_device(self, decoded) -> tuple[np.ndarray, float]:
        """:meth:`update_from_responses` from :meth:`decode_on_device`'s vector (copied to the host)."""
        self._check_pending("update_from_device")
        p = self.params
        v = np.asarray(decoded, dtype=np.float64)
        size = p.scale_num * p.response_size ** 2
        if v.shape != (4 + size,):
            raise InvalidArgumentError(f"a decoded SiamFC frame is {4 + size} values here, got shape {v.shape}",
                                       fix="pass decode_on_device's output for this tracker's search_request")
        if not v[3]:
            raise _not_finite()
        self._pending = False
        r = v[4:].astype(np.float32).reshape(p.scale_num, p.response_size, p.response_size)
        return self._move(r, int(v[0]), int(v[1]), float(v[2]))

    # -- helpers -------------------------------------------------------------------------------------------------
    def _check_responses(self, r, shape):
        """(scale_num, R, R) of ``r`` (numpy or device), a channel axis of 1 dropped; any other shape refused."""
        p = self.params
        if r.ndim == 4 and r.shape[1] == 1:
            r = r[:, 0]
        if tuple(r.shape) != (p.scale_num, p.response_size, p.response_size):
            raise InvalidArgumentError(
                f"responses must have shape ({p.scale_num}, {p.response_size}, {p.response_size}) "
                f"(or with a channel axis of 1), got {tuple(shape)}"
            )
        return r

    def _move(self, r: np.ndarray, best: int, index: int, peak: float) -> tuple[np.ndarray, float]:
        """The track after this frame's peak: map ``best``, flat cell ``index`` of the upsampled map, raw value
        ``peak``; ``r``, the raw maps, for the confidence test."""
        row, col = divmod(index, self.params.upscaled_size)
        if self._searching:
            return self._search_update(r, best, row, col, peak)
        score = 1.0 / (1.0 + math.exp(-peak))
        # With scale_search="templates" every map is of the one crop, at the tracked size.
        side = self.search_side * (1.0 if self._templates else self._scale_factors[best])
        self._center = self._peak_position(row, col, self._center, side)

        lp = self.lost_params
        if not lp.enabled:
            self._grow(best)
            self._follow_motion(True)
            self._lost = score < lp.score_threshold
            return self.box, score
        confident, apce = self._confidence.judge(score, r[best])
        if confident:
            # Otherwise follow the peak as SiamFC does (a blurred frame is often still right) but keep the size: a
            # scale read off an unconfident peak is noise, and size drift is how occlusions ruin SiamFC tracks.
            self._grow(best)
        self._tracking_frame(confident, apce)
        return self.box, score

    def _device_constants(self) -> tuple:
        """(max_rows, window) on :attr:`ops`' device, made once per ops."""
        cached = getattr(self, "_device_cache", None)
        if cached is None or cached[0] is not self.ops:
            self._device_cache = cached = (self.ops, (self.ops.max_rows, self.ops.asarray(self._window)))
        return cached[1]

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

    def _search_windows(self) -> np.ndarray:
        """Centres of this frame's ``search_batch`` search windows: the anchor (or candidate), then the next tiles."""
        n = self.params.search_batch
        # The candidate while confirming one, else the anchor; inside this frame, which may be smaller than the last.
        first = self._in_frame(self._center)[None]
        tiles = self._search_tiles() if self.lost_params.global_search else ()
        if len(tiles) == 0:
            return np.repeat(first, n, axis=0)
        if n == 1:
            # One window a frame: alternate anchor and tiles, but watch a candidate every frame until confirmed.
            self._search_frames += 1
            if self._confirm or self._search_frames % 2:
                return first.copy()
            return self._sweep.take(1)
        return np.vstack([first, self._sweep.take(n - 1)])

    def _search_tiles(self) -> np.ndarray:
        p = self.params
        # One window's map points at centres within ±(R - 1)·stride/2 instance pixels of the window's centre.
        reach = (p.response_size - 1) * p.total_stride / p.instance_size * self.search_side
        return self._sweep.tiles(self._frame_wh, reach, self._anchor[0])

    def _search_update(self, r: np.ndarray, best: int, row: int, col: int, peak: float) -> tuple[np.ndarray, float]:
        """One frame of the search while lost, given the best map's peak (:meth:`_peak_settings`: a window each,
        without a scale penalty, or with ``scale_search="templates"`` the one window's scales)."""
        self._confidence.relax()
        score = 1.0 / (1.0 + math.exp(-peak))
        confident, apce = self._confidence.judge(score, r[best])
        window = self._windows[0 if self._templates else best]  # templates: the maps are one window's scales
        position = self._peak_position(row, col, window, self.search_side) if confident else None
        # Agreement is by place, not by slot: windows overlap, so a tile may see the candidate better than the
        # window centred on it. Within the candidate window's reach counts, as a tracking step would.
        reach = (self.params.response_size - 1) * self.params.total_stride / self.params.instance_size
        self._search_frame(position, apce, reach * self.search_side / 2)
        return self.box, score


def _not_finite() -> InvalidArgumentError:
    return InvalidArgumentError("responses contain NaN or infinity",
                                fix="check the network's weights and its input crops")
