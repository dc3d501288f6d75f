"""What the Siamese families' tracking classes share (numpy + OpenCV): the track's state, and the lost-target
search and recovery around it.

:class:`~edgetrack.tracking.siamfc.SiamFCTracking` and :class:`~edgetrack.tracking.siamrpn.SiamRPNTracking` derive
from :class:`SiameseTracking`, which holds the target's centre and size, the exemplar crop, and the bookkeeping of
the lost state: a few unconfident frames declare the target lost and send the track back to the last confident
box, candidates found while searching are confirmed by agreeing frames. What a "peak" and a "search window" are
depends on a family's maps and batch, so each family decides those; the pieces that mean the same for both live here:

* :class:`LostParams`, the knobs (the SiamFC module docstring explains the design they configure);
* :class:`Confidence`, the test of one frame — score at least ``score_threshold`` and the chosen map's APCE at
  least ``apce_ratio`` × the running APCE of confident frames — with that running reference;
* :class:`TileSweep`, window centres tiling the frame, nearest to the last confident position first, handed out
  in turn so a few windows a frame sweep the whole frame.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from edgetrack.errors import InvalidArgumentError, TrackerStateError
from edgetrack.tracking.crop import (box_center, check_box, check_frame, context_size, crop_affine, crop_and_resize,
                                     crop_request, mean_color, reaches_outside)

__all__ = ["SiameseTracking", "LostParams", "Confidence", "TileSweep", "apce", "tile_centres", "to_nchw"]

# The running APCE follows slow appearance change (about ten confident frames' memory) but not a sudden drop.
APCE_RATE = 0.1
# While searching, the sharpness asked of a peak relaxes (half-life ~34 frames): a target that comes back changed,
# with a blunter peak than before it vanished, is not locked out for ever.
APCE_SEARCH_DECAY = 0.98
# Neighbouring search tiles overlap by this share of the span one map covers: a target on a tile's edge, where the
# map's border cells see it only partly, is then also near the next tile's centre.
TILE_OVERLAP = 0.2


@dataclass(frozen=True)
class LostParams:
    """When a track counts as lost and how it finds the target again (each family's module docstring has the design).

    ``enabled``: False is the plain tracker (``lost = score < score_threshold`` per frame, no search).
    ``score_threshold``: a confident frame's score is at least this. ``apce_ratio``: and its peak's APCE is at
    least this share of the running APCE of confident frames (0 turns this test off). None, for either, takes the
    family's calibrated default (SiamFC: 0.5, the sigmoid's decision boundary, and 0.4; SiamRPN: 0.5 and 0, see
    :mod:`edgetrack.tracking.siamrpn`). ``lost_after``: consecutive unconfident frames that declare the target
    lost. ``recover_after``: consecutive confident frames on a candidate that end the search.
    ``search_window_influence``: the cosine window's weight while searching. ``global_search``: search tiles over
    the whole frame while lost (False: only around the last confident position, so the track can never jump far).
    """

    enabled: bool = True
    score_threshold: float | None = None
    apce_ratio: float | None = None
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
            if value is None and name != "search_window_influence":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
                raise InvalidArgumentError(f"LostParams.{name} must be a number in [0, 1], got {value!r}")
        for name in ("lost_after", "recover_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"LostParams.{name} must be an integer >= 1 (frames), got {value!r}")


def apce(m: np.ndarray) -> float:
    """Average peak-to-correlation energy of a map: high for one sharp peak, low for flat or many peaks.

    ``(max - min)² / mean((F - min)²)`` (Wang et al., CVPR 2017).
    """
    v = m.ravel()
    lo = v.min()
    d = v - lo
    energy = float(d.dot(d))  # a dot product: half the time of np.mean(d * d) on a few hundred values
    return 0.0 if energy == 0 else float((v.max() - lo) ** 2) * v.size / energy


class Confidence:
    """The confidence test of one frame and the running APCE of the confident frames it is measured against."""

    def __init__(self, score_threshold: float, apce_ratio: float):
        self.score_threshold = float(score_threshold)
        self.apce_ratio = float(apce_ratio)
        self.reference: float | None = None

    def reset(self) -> None:
        self.reference = None

    def judge(self, score: float, peak_map) -> tuple[bool, float | None]:
        """(confident, APCE of ``peak_map`` or None where it was not needed). ``peak_map``: the chosen map (numpy),
        or a function returning it, called only when the APCE is needed (a map on a device is copied back then)."""
        if score < self.score_threshold:
            return False, None
        if self.apce_ratio == 0:
            return True, None
        sharpness = apce(peak_map() if callable(peak_map) else peak_map)
        return self.reference is None or sharpness >= self.apce_ratio * self.reference, sharpness

    def accept(self, sharpness: float | None) -> None:
        """A confident frame: its APCE joins the running reference."""
        if sharpness is not None:
            ref = self.reference
            self.reference = sharpness if ref is None else ref + APCE_RATE * (sharpness - ref)

    def relax(self) -> None:
        """One frame of searching: the demand on sharpness decays (see :data:`APCE_SEARCH_DECAY`)."""
        if self.reference is not None:
            self.reference *= APCE_SEARCH_DECAY


def tile_centres(frame_wh: tuple[int, int], reach: float, anchor: np.ndarray) -> np.ndarray:
    """(N, 2) window centres tiling a ``frame_wh`` frame, nearest to ``anchor`` first.

    ``reach``: the side, in frame pixels, of the square of target centres one window's map can point at. Tiles
    whose whole cell lies within the reach of a window on ``anchor`` are left out: that window is watched anyway.
    """
    w, h = frame_wh
    step = max(reach * (1 - TILE_OVERLAP), 1.0)
    nx, ny = max(1, math.ceil(w / step)), max(1, math.ceil(h / step))
    xs = (np.arange(nx) + 0.5) * (w / nx) - 0.5
    ys = (np.arange(ny) + 0.5) * (h / ny) - 0.5
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    offset = grid - anchor
    far = np.abs(offset).max(axis=1) + max(w / nx, h / ny) / 2 > reach / 2
    grid, offset = grid[far], offset[far]
    return grid[np.argsort(np.hypot(offset[:, 0], offset[:, 1]), kind="stable")]


class TileSweep:
    """:func:`tile_centres` handed out in turn, recomputed only when the frame size or the reach changes."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._tiles: np.ndarray | None = None
        self._key: tuple | None = None
        self._next = 0

    def tiles(self, frame_wh: tuple[int, int], reach: float, anchor: np.ndarray) -> np.ndarray:
        """The tiles for this frame size and reach (``anchor`` is read only when they are first computed)."""
        key = (tuple(frame_wh), reach)
        if self._tiles is None or self._key != key:
            self._tiles, self._key = tile_centres(frame_wh, reach, anchor), key
            self._next %= max(len(self._tiles), 1)
        return self._tiles

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` tiles (wrapping around) of the last :meth:`tiles`, which must not be empty."""
        tiles = self._tiles
        idx = (self._next + np.arange(count)) % len(tiles)
        self._next = (self._next + count) % len(tiles)
        return tiles[idx]


def to_nchw(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, contiguous: what every backend's input binding wants."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)


class SiameseTracking:
    """The state of one track that a family's tracking class builds on: centre, size, frame size, lost or not.

    A subclass sets :attr:`default_score_threshold` and :attr:`default_apce_ratio` (what None means in its
    :class:`LostParams`), makes its search crops and decodes its maps; it reports each frame through
    :meth:`_tracking_frame` while tracking and :meth:`_search_frame` while searching (:attr:`_searching`).
    """

    default_score_threshold: float = 0.5
    default_apce_ratio: float = 0.4
    # None: crops and decoding in numpy + OpenCV on the host (every backend's default). A backend's
    # DeviceOps (edgetrack.tracking.device) moves the pixel work to its device: see use_device.
    ops = None
    # Whether moving the crops and the decode to a GPU makes this family's frames faster, measured on one (the
    # backend's default where it is not told; edgetrack.tracking.device has the figures).
    device_tracking_pays: bool = False

    def __init__(self, params, lost: LostParams | None, params_type: type):
        if not isinstance(params, params_type):
            raise InvalidArgumentError(f"params must be {params_type.__name__}, got {type(params).__name__}")
        lost = LostParams() if lost is None else lost
        if not isinstance(lost, LostParams):
            raise InvalidArgumentError(f"lost must be LostParams, got {type(lost).__name__}")
        if lost.score_threshold is None:
            lost = dataclasses.replace(lost, score_threshold=self.default_score_threshold)
        if lost.apce_ratio is None:
            lost = dataclasses.replace(lost, apce_ratio=self.default_apce_ratio)
        self.params = params
        self.lost_params = lost
        self._confidence = Confidence(lost.score_threshold, lost.apce_ratio)
        self._sweep = TileSweep()  # search-window centres over the frame, nearest to the anchor first
        self._center: np.ndarray | None = None  # (cx, cy), pixel-index coordinates
        self._size: np.ndarray | None = None  # (w, h)
        self._init_size: np.ndarray | None = None
        self._frame_wh: tuple[int, int] | None = None
        self._pending = False  # search crops were made and the network's outputs for them not consumed yet
        self._reset_lost_state()

    def _reset_lost_state(self) -> None:
        self._lost = False
        self._searching = False
        self._low = 0  # consecutive unconfident frames while tracking
        self._confirm = 0  # consecutive confident frames on the current candidate while searching
        self._confidence.reset()
        self._anchor: tuple[np.ndarray, np.ndarray] | None = None  # (centre, size) of the last confident frame
        self._sweep.reset()
        self._search_frames = 0
        self._velocity = np.zeros(2)  # the motion model's estimate, frame pixels per frame
        self._previous: np.ndarray | None = None  # the centre before this frame's prediction

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self._center is not None

    @property
    def lost(self) -> bool:
        """Whether the target counts as lost after the last update (see the family's module docstring)."""
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

    def _require_init(self, what: str) -> None:
        if self._center is None:
            raise TrackerStateError(f"{what} needs an initialised track", fix="call init(frame, box) first")

    def _in_frame(self, point: np.ndarray) -> np.ndarray:
        w, h = self._frame_wh
        return np.clip(point, [0.0, 0.0], [w - 1.0, h - 1.0])

    def use_device(self, ops) -> None:
        """Decode on a backend's device through ``ops`` (a :class:`~edgetrack.tracking.device.DeviceOps`), or on the
        host again with None. With ops, a frame is :meth:`search_request` (host), the family's
        ``decode_on_device`` (on the device, inside the backend's frame program) and :meth:`update_from_device`
        (host); :mod:`edgetrack.tracking.device` has the design. The host methods (``search_crops`` and the
        family's update from the maps) keep working either way."""
        self.ops = ops

    def _crop_batch(self, frame: np.ndarray, regions, out_size: int, pad) -> np.ndarray:
        """(N, 3, out_size, out_size) float32 crops of ``regions`` ``[(centre, side), ...]`` through
        :func:`crop_and_resize`. ``pad``: the padding colour, or None to take the frame's mean colour where a crop
        reaches outside."""
        return to_nchw(np.stack([crop_and_resize(frame, c, s, out_size, pad) for c, s in regions]))

    def _crop_request(self, frame: np.ndarray, regions, out_size: int, pad) -> tuple[np.ndarray, np.ndarray]:
        """:func:`crop_request` for the crops :meth:`_crop_batch` would make of ``regions``, with the same
        :func:`crop_affine` maps at OpenCV's sample positions: what a device samples them from."""
        if pad is None:
            needed = any(reaches_outside(frame.shape, c, s, out_size) for c, s in regions)
            pad = mean_color(frame) if needed else (0.0, 0.0, 0.0)
        return crop_request(frame, np.stack([crop_affine(c, s, out_size) for c, s in regions]), out_size, pad)

    def search_request(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search_crops` for a device: the same decisions (regions, padding), but instead of crops the
        ``(region, params)`` of :func:`crop_request` to sample them from, with this frame's decode settings
        appended to ``params`` (the family's ``decode_on_device`` reads them there)."""
        region, params = self._crop_request(*self._search_regions(frame))
        self._pending = True
        return region, np.concatenate([params, self._decode_settings()])

    def _search_regions(self, frame: np.ndarray) -> tuple:
        """``(frame, regions, out_size, pad)`` of this frame's search crops (pad None: the mean colour if needed),
        with the frame checked and the track's choice of windows made."""
        raise NotImplementedError

    def _decode_settings(self) -> np.ndarray:
        """This frame's decode settings that change with the track's state (float64), for ``decode_on_device``."""
        raise NotImplementedError

    @property
    def crop_layout(self) -> tuple[int, int]:
        """``(crops per frame, crop side)`` of :meth:`search_crops`."""
        raise NotImplementedError

    def _check_pending(self, method: str) -> None:
        self._require_init(method)
        if not self._pending:
            raise TrackerStateError(
                f"{method} needs the outputs for a fresh search_crops(frame) or search_request(frame)",
                fix="call search_crops(frame) (or search_request on a device), run the network on it, then "
                    f"{method}")

    # -- protocol ------------------------------------------------------------------------------------------------
    def init(self, frame: np.ndarray, box) -> np.ndarray:
        """Start a track (a new one if one runs); returns the exemplar crop as (1, 3, exemplar, exemplar) float32
        (the frame's channel order, 0..255)."""
        frame = check_frame(frame)
        box = check_box(box, frame_shape=frame.shape)
        self._center = box_center(box)
        self._size = box[2:].copy()
        self._init_size = box[2:].copy()
        self._frame_wh = (frame.shape[1], frame.shape[0])
        self._pending = False
        self._reset_lost_state()
        self._anchor = (self._center.copy(), self._size.copy())
        crop = crop_and_resize(frame, self._center, self.exemplar_side, self.params.exemplar_size)
        return to_nchw(crop[None])

    # -- the lost state, for the subclasses ----------------------------------------------------------------------
    def _predict(self) -> None:
        """A tracking frame's search starts where the motion model expects the target: the centre moves by the
        estimated velocity (``params.motion`` 0: it stays). Called once per frame, before the crops are placed."""
        if self._pending:  # crops asked for again before the outputs came: the prediction is already made
            return
        self._previous = self._center.copy()
        if self.params.motion:
            self._center = self._in_frame(self._center + self._velocity)

    def _follow_motion(self, confident: bool) -> None:
        """The motion model after a tracking frame: a confident frame's displacement enters the velocity, an
        exponential average weighing the newest by ``params.motion``; an unconfident one leaves the velocity as it
        was (a target hidden for a frame or two goes on moving). The velocity is bounded by half the exemplar's side,
        about the target's size: a larger step per frame is beyond what one search crop follows."""
        if self._previous is None:
            return
        a = self.params.motion
        if confident and a:
            velocity = (1 - a) * self._velocity + a * (self._center - self._previous)
            bound = self.exemplar_side / 2
            speed = float(np.hypot(*velocity))
            self._velocity = velocity * (bound / speed) if speed > bound else velocity
        self._previous = None

    def _tracking_frame(self, confident: bool, sharpness: float | None) -> None:
        """A tracked frame was decoded (the subclass has moved the centre, and the size only if ``confident``)."""
        self._follow_motion(confident)
        if confident:
            self._low = 0
            self._confident_frame(sharpness)
        else:
            self._low += 1
            if self._low >= self.lost_params.lost_after:
                self._start_search()
        self._lost = self._searching

    def _confident_frame(self, sharpness: float | None) -> None:
        self._anchor = (self._center.copy(), self._size.copy())
        self._confidence.accept(sharpness)

    def _start_search(self) -> None:
        """Lost: back to the last confident box (the doubtful frames' drift is undone); the size stays there."""
        self._searching = True
        self._low = self._confirm = self._search_frames = 0
        self._velocity = np.zeros(2)
        self._center = self._in_frame(self._anchor[0])
        self._size = self._anchor[1].copy()
        self._sweep.reset()

    def _search_frame(self, found: np.ndarray | None, sharpness: float | None, same_place: float) -> None:
        """A frame of the search was decoded: ``found`` is the position of a confident candidate or None.

        ``recover_after`` consecutive candidates, each within ``same_place`` (frame pixels, per axis) of the one
        before, end the search; a frame without one drops the candidate and the search goes on from the anchor.
        """
        if found is not None:
            agrees = self._confirm > 0 and np.abs(found - self._center).max() <= same_place
            self._confirm = self._confirm + 1 if agrees else 1
            self._center = found
            if self._confirm >= self.lost_params.recover_after:
                self._searching = False
                self._confirm = 0
                self._confident_frame(sharpness)
        else:
            self._confirm = 0
            self._center = self._in_frame(self._anchor[0])
        self._lost = self._searching
