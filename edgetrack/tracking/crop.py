"""Exact crops around a target, and the checks on what a user hands a tracker (frames and boxes).

Coordinates. Pixel ``i`` covers the continuous interval ``[i, i + 1)`` and its centre is at ``i + 0.5``; centres
below are given in *pixel-index* coordinates, where the centre of pixel ``i`` is ``i`` (OpenCV's convention for
``warpAffine``). A box ``(x, y, w, h)`` (0-based top-left, as every reader in :mod:`edgetrack.data` returns) covers
``[x, x + w) × [y, y + h)``, so its centre is ``(x + (w - 1) / 2, y + (h - 1) / 2)`` — the same expression
siamfc-pytorch uses after converting OTB's 1-based boxes.

A crop of side ``size`` (frame pixels) around centre ``c`` covers ``[c - size/2, c + size/2]`` around the centre
point and is resampled to ``out_size × out_size`` with one affine map (bilinear, 1/32-pixel sub-pixel accuracy in
OpenCV), so no rounding of the centre or the size happens anywhere. Whatever falls outside the frame takes
``pad_color``, by SiamFC's convention the frame's per-channel mean colour. That mean is computed only for a crop
that samples outside the frame (:func:`reaches_outside`): on a 1920×1080 frame it costs about as much as the crop
itself, and a target well inside the frame never needs it.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

from edgetrack.errors import InvalidArgumentError

# A box this many times wider or taller than the frame is a unit or format mistake, not a target close to the camera.
MAX_BOX_TO_FRAME = 4

__all__ = [
    "check_frame",
    "check_box",
    "MAX_BOX_TO_FRAME",
    "box_center",
    "context_size",
    "mean_color",
    "reaches_outside",
    "crop_affine",
    "sample_positions",
    "opencv_rounds_positions",
    "positions_at",
    "crop_request",
    "CROP_REQUEST_HEADER",
    "crop_and_resize",
]


def check_frame(frame: object, *, what: str = "frame") -> np.ndarray:
    """Return ``frame`` if it is a BGR uint8 H×W×3 array, else raise :class:`InvalidArgumentError` saying why.

    A 4-channel (BGRA) frame is refused, not stripped of its alpha: an RGBA image from PIL or imageio would then be
    read as BGR without a word. A non-contiguous view (a slice, ``frame[..., ::-1]``) is accepted as is: OpenCV
    reads strided arrays, and its crops equal those of the contiguous copy, without copying the whole frame here.
    """
    if frame is None:
        raise InvalidArgumentError(
            f"{what} is None",
            fix="pass the image as a numpy array; cv2.imread and cv2.VideoCapture.read return None when they fail",
        )
    if not isinstance(frame, np.ndarray):
        raise InvalidArgumentError(
            f"{what} must be a numpy array (BGR uint8 H×W×3), got {type(frame).__name__}",
            fix="convert it with np.asarray(...)",
        )
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        raise InvalidArgumentError(
            f"{what} is grayscale (shape {frame.shape}); trackers take BGR H×W×3",
            fix="convert it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)",
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        hint = "cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)" if frame.ndim == 3 and frame.shape[2] == 4 else None
        raise InvalidArgumentError(
            f"{what} must have shape H×W×3 (BGR), got {frame.shape}",
            fix=f"convert it with {hint}" if hint else "pass a colour image with three channels, height × width × 3",
        )
    if frame.dtype != np.uint8:
        if frame.dtype == np.uint16:
            fix = "convert it, e.g. (frame >> 8).astype(np.uint8) for a 16-bit image"
        elif np.issubdtype(frame.dtype, np.floating):
            fix = "convert it, e.g. np.clip(frame * 255, 0, 255).astype(np.uint8) for a float image in 0..1"
        else:
            fix = "convert it to 8 bits per channel, e.g. cv2.convertScaleAbs(frame) or frame.astype(np.uint8)"
        raise InvalidArgumentError(f"{what} must be uint8 (0..255), got dtype {frame.dtype}", fix=fix)
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InvalidArgumentError(f"{what} is empty (shape {frame.shape})")
    return frame


def check_box(box: object, *, what: str = "box", frame_shape: Sequence[int] | None = None) -> np.ndarray:
    """Return ``box`` as a float64 ``(x, y, w, h)`` array, or raise :class:`InvalidArgumentError`.

    The size must be positive and every value finite. Given ``frame_shape`` (``frame.shape``), the box must also
    overlap that frame and be at most :data:`MAX_BOX_TO_FRAME` times its width and height. A box reaching past the
    border, or even larger than the frame, is kept as given, not clipped: SiamFC crops around the box's centre with
    mean-colour padding, and clipping would move that centre and change the target's extent the template learns.
    """
    if box is None:
        raise InvalidArgumentError(f"{what} is None", fix="pass (x, y, w, h): top-left corner, width and height")
    if isinstance(box, (str, bytes, dict, set)):
        raise InvalidArgumentError(
            f"{what} {_show(box)} is a {type(box).__name__}, not four numbers (x, y, w, h)",
            fix="pass a tuple, list or array (x, y, w, h), e.g. (10, 20, 40, 30)",
        )
    try:
        arr = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{what} {_show(box)} is not four numbers (x, y, w, h)",
            fix="pass a tuple, list or array (x, y, w, h), e.g. (10, 20, 40, 30)",
        ) from exc
    if arr.shape != (4,):
        raise InvalidArgumentError(
            f"{what} must be four numbers (x, y, w, h), got {_show(box)} of shape {arr.shape}",
            fix="pass (x, y, w, h): top-left corner, width and height in pixels",
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidArgumentError(f"{what} {tuple(arr.tolist())} contains NaN or infinity")
    if arr[2] <= 0 or arr[3] <= 0:
        raise InvalidArgumentError(
            f"{what} {tuple(arr.tolist())} has width {arr[2]:g} and height {arr[3]:g}; both must be > 0",
            fix="boxes are (x, y, w, h), not corners (x1, y1, x2, y2)",
        )
    if frame_shape is not None:
        fh, fw = int(frame_shape[0]), int(frame_shape[1])
        x, y, w, h = arr.tolist()
        if x >= fw or y >= fh or x + w <= 0 or y + h <= 0:
            raise InvalidArgumentError(
                f"{what} {tuple(arr.tolist())} lies entirely outside the {fw}×{fh} frame",
                fix="give the target's box in this frame's pixels, 0-based (x, y, w, h)",
            )
        if w > MAX_BOX_TO_FRAME * fw or h > MAX_BOX_TO_FRAME * fh:
            raise InvalidArgumentError(
                f"{what} {tuple(arr.tolist())} is more than {MAX_BOX_TO_FRAME}× the {fw}×{fh} frame",
                fix="check the box's units (pixels of this frame) and format (x, y, w, h)",
            )
    return arr


def _show(value: object) -> str:
    """A short repr for error messages (a user may pass a whole image by mistake)."""
    import reprlib

    short = reprlib.Repr()  # keyword arguments to Repr() need Python 3.12
    short.maxstring = short.maxother = 60
    return short.repr(value)


def box_center(box: Sequence[float]) -> np.ndarray:
    """Centre ``(cx, cy)`` of a box ``(x, y, w, h)`` in pixel-index coordinates (see the module docstring)."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x + (w - 1) / 2, y + (h - 1) / 2], dtype=np.float64)


def context_size(w: float, h: float, context: float = 0.5) -> float:
    """Side of the square crop around a ``w × h`` target: ``sqrt((w + 2p)(h + 2p))`` with ``2p = context·(w + h)``.

    With ``context = 0.5`` this is the paper's eq. 11 (``p = (w + h) / 4``) and siamfc-pytorch's ``z_sz``; the
    exemplar is this square resized to 127 px, the search region the same square times 255/127.
    """
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise InvalidArgumentError(f"target size {w}×{h} must be positive and finite")
    if not (context >= 0 and math.isfinite(context)):
        raise InvalidArgumentError(f"context {context} must be finite and >= 0")
    extra = context * (w + h)
    return math.sqrt((w + extra) * (h + extra))


def mean_color(frame: np.ndarray) -> tuple[float, float, float]:
    """Per-channel mean of a BGR frame: SiamFC's padding colour for crops reaching outside the image."""
    import cv2

    b, g, r, _ = cv2.mean(frame)  # several times faster than numpy's mean on a full frame
    return (b, g, r)


def reaches_outside(frame_shape: Sequence[int], center_xy: Sequence[float], size_in_frame: float,
                    out_size: int) -> bool:
    """Whether :func:`crop_and_resize` with these arguments can sample a pixel outside the frame (so its result
    depends on the padding colour).

    The samples span ``c ± k · (out_size − 1) / 2`` (``k = size_in_frame / out_size``); bilinear interpolation also
    reads the next pixel, and OpenCV rounds the sample position to 1/32 px, so the test keeps a one-pixel margin
    on each side: False guarantees the padding colour is never read, True may be cautious by a pixel.
    """
    h, w = int(frame_shape[0]), int(frame_shape[1])
    reach = size_in_frame / out_size * (out_size - 1) / 2
    cx, cy = (float(v) for v in center_xy)
    return not (cx - reach >= 1 and cy - reach >= 1 and cx + reach <= w - 2 and cy + reach <= h - 2)


def crop_affine(center_xy: Sequence[float], size_in_frame: float, out_size: int) -> np.ndarray:
    """The 2×3 float64 map from a crop's pixel ``(u, v)`` to the frame position it samples, ``src = M · (u, v, 1)``:
    the geometry of :func:`crop_and_resize` (see there), and the one definition of it that every implementation of
    a crop uses (``cv2.warpAffine`` with ``WARP_INVERSE_MAP`` here, a backend's own crop on its device).

    The map is axis-aligned (``M[0, 1] = M[1, 0] = 0``): ``x = k · u + (cx − k · (out_size − 1) / 2)``,
    ``k = size_in_frame / out_size``, likewise for ``y``.
    """
    cx, cy = (float(v) for v in center_xy)
    k = float(size_in_frame) / int(out_size)
    half = (int(out_size) - 1) / 2
    # Destination -> source map, applied as is (WARP_INVERSE_MAP): src = k · dst + (c - k · half).
    return np.array([[k, 0.0, cx - k * half], [0.0, k, cy - k * half]], dtype=np.float64)


# OpenCV 4's warpAffine (fixed point): positions in 1/1024 px, rounded to 1/32 px (INTER_BITS = 5).
_AB_SCALE = 1024
_TAB_SHIFT = 5
_ROUND_DELTA = _AB_SCALE // 32 // 2


@functools.lru_cache(maxsize=None)
def opencv_rounds_positions() -> bool:
    """Whether the installed OpenCV's ``warpAffine`` rounds its sample positions to 1/32 px (the fixed-point
    kernels of OpenCV 4.x, up to 4.13 at least) rather than sampling at float32 positions with float weights (the
    kernels OpenCV 5 brought, opencv/opencv#25984). Answered by warping a two-pixel ramp once: a shift of 0.01 px
    rounds to 0 in fixed point and moves the value by 0.01 · 255 ≈ 3 grey levels in float. Cached."""
    import cv2

    ramp = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    shift = np.array([[1.0, 0.0, 0.01], [0.0, 1.0, 0.0]])
    out = cv2.warpAffine(ramp, shift, (1, 1), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT)
    return int(out[0, 0, 0]) == 0


def sample_positions(affine: np.ndarray, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame positions ``(xs, ys)`` (each ``(out_size,)`` float64, pixel-index) that ``cv2.warpAffine`` samples for
    the axis-aligned ``affine`` of :func:`crop_affine`: output pixel ``(u, v)`` reads the frame at ``(xs[u], ys[v])``.
    A stack of maps, (N, 2, 3), gives (N, out_size) arrays, one row per map.

    OpenCV 4 computes them in fixed point and rounds them to 1/32 px (``WarpAffineInvoker``: ``X = (round(M02 ·
    1024) + 16 + round(M00 · u · 1024)) >> 5``; ``Y = (round((M11 · v + M12) · 1024) + 16) >> 5``, in 1/32 px);
    OpenCV 5 computes ``M · (u, v, 1)`` in float32 (:func:`opencv_rounds_positions` tells which). A crop made on
    another device at these positions equals OpenCV's up to the rounding of the interpolated value. The exact
    positions are at most 1/64 + 1/1024 px from OpenCV 4's, which moves a value by up to 1/64 of the step between
    neighbouring pixels per axis (a few grey levels on one-pixel noise, nothing on smooth content).
    """
    return positions_at(affine, np.arange(int(out_size)))


def positions_at(affine: np.ndarray, u) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_positions` at output pixels ``u`` only (e.g. the first and last, for a crop's extent): the
    same numbers, by the same arithmetic."""
    m = np.asarray(affine, dtype=np.float64)
    # (2, 3) -> (len(u),) positions; a stack of maps (N, 2, 3) -> (N, len(u)) at once, the same numbers.
    a, c = m[..., 0, 0, None], m[..., 0, 2, None]
    d, f = m[..., 1, 1, None], m[..., 1, 2, None]
    if not opencv_rounds_positions():
        u = np.asarray(u, dtype=np.float32)
        a, c, d, f = (v.astype(np.float32) for v in (a, c, d, f))
        return (u * a + c).astype(np.float64), (u * d + f).astype(np.float64)
    u = np.asarray(u, dtype=np.float64)
    x = (np.rint(c * _AB_SCALE).astype(np.int64) + _ROUND_DELTA
         + np.rint(a * u * _AB_SCALE).astype(np.int64)) >> _TAB_SHIFT
    y = (np.rint((d * u + f) * _AB_SCALE).astype(np.int64) + _ROUND_DELTA) >> _TAB_SHIFT
    return x / 32.0, y / 32.0


# crop_request's vector: region width, height, the padding colour (3), the region's first column and row, then the
# maps' four numbers (k_x, x offset, k_y, y offset) per crop.
CROP_REQUEST_HEADER = 7


def crop_request(frame: np.ndarray, affines: np.ndarray, out_size: int, pad) -> tuple[np.ndarray, np.ndarray]:
    """What a device needs to make crops, computed on the host: ``(region, params)``.

    ``affines``: the (N, 2, 3) maps of :func:`crop_affine`, one per crop of side ``out_size``; ``pad``: the
    padding colour (3 values; rounded to whole values, as a uint8 crop's padding is). ``region``: the part of
    ``frame`` the crops' bilinear taps read at :func:`sample_positions` (a uint8 view, clipped to the frame: only it
    need cross to the device, not the whole frame; found from each crop's first and last position, the positions
    growing with the pixel index). ``params``: float64 ``[region width, region height, pad (3), x0, y0, then per
    crop M[0, 0], M[0, 2], M[1, 1], M[1, 2]]`` (:data:`CROP_REQUEST_HEADER` values, then 4·N): the device computes
    the positions from the maps as :func:`sample_positions` does, relative to the region's first column ``x0`` and
    row ``y0``; a tap outside the region lies outside the frame and reads ``pad``.
    """
    m = np.asarray(affines, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (2, 3) or m.shape[0] < 1:
        raise InvalidArgumentError(f"crop maps must be an (N, 2, 3) array, got shape {m.shape}",
                                   fix="stack edgetrack.tracking.crop.crop_affine maps")
    if not np.isfinite(m).all() or (m[:, 0, 0] <= 0).any() or (m[:, 1, 1] <= 0).any():
        raise InvalidArgumentError("crop maps must be finite with positive scales",
                                   fix="check the crop centres and sides given to crop_affine")
    xs, ys = positions_at(m, [0, int(out_size) - 1])
    h, w = frame.shape[:2]
    # The frame's columns and rows the bilinear taps (floor, floor + 1) read; taps outside it read the pad.
    x0 = min(max(math.floor(xs.min()), 0), w - 1)
    x1 = min(max(math.floor(xs.max()) + 1, x0), w - 1)
    y0 = min(max(math.floor(ys.min()), 0), h - 1)
    y1 = min(max(math.floor(ys.max()) + 1, y0), h - 1)
    region = frame[y0:y1 + 1, x0:x1 + 1]
    pad = np.rint(np.asarray(pad, dtype=np.float64).reshape(3))
    params = np.concatenate([[region.shape[1], region.shape[0]], pad, [x0, y0],
                             m[:, 0, 0], m[:, 0, 2], m[:, 1, 1], m[:, 1, 2]])
    return region, params


def crop_and_resize(
    frame: np.ndarray,
    center_xy: Sequence[float],
    size_in_frame: float,
    out_size: int,
    pad_color: Sequence[float] | None = None,
) -> np.ndarray:
    """Square crop of side ``size_in_frame`` centred on ``center_xy``, resampled to ``out_size × out_size``.

    ``center_xy`` is in pixel-index coordinates (pixel ``i``'s centre is ``i``). Output pixel ``u`` samples the
    frame at ``cx + (u - (out_size - 1) / 2) · size_in_frame / out_size``: the output's pixels tile the crop
    exactly, and its centre (``(out_size - 1) / 2``) lands on ``center_xy``. Regions outside the frame take
    ``pad_color`` (default: the frame's mean colour, computed only when the crop reaches outside the frame: see
    :func:`reaches_outside`). Returns an array of the frame's dtype, out_size×out_size×3.
    """
    import cv2

    if not (size_in_frame > 0 and math.isfinite(size_in_frame)):
        raise InvalidArgumentError(f"crop size {size_in_frame} must be positive and finite")
    if int(out_size) != out_size or out_size < 1:
        raise InvalidArgumentError(f"output size {out_size} must be a positive integer")
    cx, cy = (float(v) for v in center_xy)
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise InvalidArgumentError(f"crop centre ({cx}, {cy}) must be finite")
    out_size = int(out_size)
    if pad_color is None:
        reaches = reaches_outside(frame.shape, (cx, cy), size_in_frame, out_size)
        pad_color = mean_color(frame) if reaches else (0.0, 0.0, 0.0)  # (never read when inside)
    m = crop_affine((cx, cy), size_in_frame, out_size)
    return cv2.warpAffine(
        frame,
        m,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(v) for v in pad_color),
    )
