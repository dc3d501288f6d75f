"""Training pairs for Siamese trackers, framework-free (numpy + OpenCV): a crop cache and a pair sampler.

Both trainers (:mod:`edgetrack.models.torch.train` and the MindSpore twin) feed on this module, so a pair is the
same array whichever framework consumes it.

**Crop cache** (:class:`CropCache`). Decoding a video frame costs far more than cropping it, and a training run draws
each frame hundreds of times, so every annotated frame is read *once*: a square around its target, the search
region (``context_size(w, h) · instance/exemplar`` frame pixels, resampled to ``instance_size`` pixels) enlarged by a
margin, is cropped with mean-colour padding and stored as uint8. The margin is what the augmentation can ask for
(largest scale × stretch, largest shift), so no augmented crop ever needs the original frame again. One cache pixel
is one search-crop pixel at scale 1; the target's centre is the cache crop's centre.

**Pair sampler** (:class:`PairSampler`). A pair is two cached frames of one sequence at most ``max_gap`` frames apart:
the exemplar ``z`` cut from one (centred on its target, 127 px), the search crop ``x`` from the other (255 px),
both with augmentation — scale jitter (x), stretch (both), a shift of up to ``max_shift`` px (x), colour jitter,
grey, and linear motion blur of a random length and direction (so the tracker meets blurred video in training).
The shift moves the *target* inside ``x`` by ``(dx, dy)`` pixels and the label map follows it: the positive disc
is centred on the target's true position, ``(dx, dy) / total_stride`` cells from the map's centre. (siamfc-pytorch
moves its search crop by at most 4 px, a random crop of 8 px slack, and keeps the labels centred, which teaches the
network a centre bias; with labels that follow the target the shift can be as large as a fast-moving target's real
displacement between frames.)

Arrays come out as the tracker's network input convention (:mod:`edgetrack.tracking.siamfc`): float32, NCHW, BGR,
values 0..255. Randomness: batch ``k`` of a stream is a pure function of ``(seed, k)``, drawn from its own
``numpy.random.Generator``; so a stream split over data-loader workers (worker ``w`` of ``W`` makes batches
``w, w + W, ...``) gives the same batches in the same order for any number of workers, and a run resumed at step
``k`` sees exactly the batches it would have seen.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence as Seq

import numpy as np

from edgetrack.errors import DatasetError, InvalidArgumentError
from edgetrack.models.labels import IGNORED, NEGATIVE, POSITIVE
from edgetrack.tracking.crop import box_center, context_size, crop_and_resize, mean_color

__all__ = ["PairConfig", "CropCache", "PairSampler", "shifted_labels", "motion_blur_kernel", "open_sequences",
           "cache_file"]

CACHE_FORMAT = 1


@dataclass(frozen=True)
class PairConfig:
    """Geometry, pair selection and augmentation of training pairs.

    Geometry: ``exemplar_size``/``instance_size`` crop sides, ``response_size`` label map side, ``total_stride``
    input pixels per response cell, ``context`` the crop's context margin (0.5: the paper's ``p = (w + h) / 4``).
    Pairs: frames at most ``max_gap`` frames apart. Labels: positive within ``r_pos`` px of the target, ignored
    below ``r_neg`` px (0: none ignored), negative elsewhere (:func:`edgetrack.models.labels.siamfc_labels`).

    Augmentation: ``scale_jitter`` — the search region's side × a log-uniform factor in ``[1/(1+s), 1+s]``;
    ``stretch`` — each axis of both crops × its own factor in ``[1/(1+s), 1+s]``; ``max_shift`` — the target lands
    up to that many pixels (each axis, uniform) from the search crop's centre; ``colour_jitter`` — brightness and
    contrast factors in ``1 ± c`` and per-channel gains in ``1 ± c/2``; ``grey_prob`` — both crops of a pair turn
    grey; ``blur_prob`` — each crop, independently, gets a linear motion blur ``blur_min``..``blur_max`` px long
    in a random direction. ``neg_prob`` — a pair is *negative* with this probability: its exemplar comes from
    another sequence, so the search crop holds an object that is not the exemplar's and every label is negative
    (pysot's ``DATASET.NEG``; DaSiamRPN's point). ``flip_prob`` — both crops of a pair are mirrored left-right
    (the target's shift and box follow); ``swap_prob`` — both crops' colour channels are permuted the same random
    way. These two multiply the few objects a synthetic training set shows: measured on SiamRPN (issue #4), a
    network trained without them localised training-photo objects to 1.8 px but held-out ones to 8-13 px. Without them nothing in training needs the exemplar whenever the
    target is the only salient object near the crop's centre, and a network may learn to detect "the object" while
    ignoring the exemplar (measured on SiamRPN: issue #4). Cache filter: frames whose box is smaller than
    ``min_target`` px on a side or more elongated than ``max_aspect`` are left out. ``seed`` is the default seed of
    a :class:`PairSampler`.
    """

    exemplar_size: int = 127
    instance_size: int = 255
    response_size: int = 17
    total_stride: int = 8
    context: float = 0.5
    max_gap: int = 100
    r_pos: float = 16.0
    r_neg: float = 0.0
    scale_jitter: float = 0.05
    stretch: float = 0.05
    max_shift: float = 32.0
    colour_jitter: float = 0.1
    grey_prob: float = 0.05
    blur_prob: float = 0.3
    blur_min: float = 3.0
    blur_max: float = 15.0
    neg_prob: float = 0.0
    flip_prob: float = 0.0
    swap_prob: float = 0.0
    min_target: float = 4.0
    max_aspect: float = 8.0
    seed: int = 0

    def __post_init__(self):
        for name in ("exemplar_size", "instance_size", "response_size", "total_stride", "max_gap"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"PairConfig.{name} must be a positive integer, got {value!r}")
        for name in ("context", "r_pos", "r_neg", "scale_jitter", "stretch", "max_shift", "colour_jitter",
                     "blur_min", "blur_max", "min_target"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"PairConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("grey_prob", "blur_prob", "neg_prob", "flip_prob", "swap_prob"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise InvalidArgumentError(f"PairConfig.{name} must be a probability in [0, 1], got {value!r}")
        if self.colour_jitter >= 1:
            raise InvalidArgumentError(f"PairConfig.colour_jitter must be < 1, got {self.colour_jitter}")
        if self.blur_min > self.blur_max:
            raise InvalidArgumentError(
                f"PairConfig.blur_min ({self.blur_min}) must not exceed blur_max ({self.blur_max})")
        if not (isinstance(self.max_aspect, (int, float)) and self.max_aspect >= 1):
            raise InvalidArgumentError(f"PairConfig.max_aspect must be >= 1, got {self.max_aspect!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise InvalidArgumentError(f"PairConfig.seed must be an integer >= 0, got {self.seed!r}")
        span = self.instance_size - self.exemplar_size
        if span % self.total_stride or span // self.total_stride + 1 != self.response_size:
            raise InvalidArgumentError(
                f"PairConfig: instance {self.instance_size}, exemplar {self.exemplar_size} and stride "
                f"{self.total_stride} do not give a {self.response_size}×{self.response_size} response",
                fix="response_size = (instance_size - exemplar_size) / total_stride + 1",
            )

    @property
    def max_zoom(self) -> float:
        """Largest cache-pixels-per-crop-pixel factor the augmentation can ask for (scale × stretch)."""
        return (1 + self.scale_jitter) * (1 + self.stretch)

    @property
    def cache_size(self) -> int:
        """Side of a cached crop: the largest augmented search crop, plus a pixel for bilinear sampling."""
        half = self.max_zoom * ((self.instance_size - 1) / 2 + self.max_shift) + 1
        return int(math.ceil(2 * half + 1))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PairConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgumentError(f"PairConfig has no field(s) {sorted(unknown)}; fields: {sorted(known)}")
        return cls(**data)


# ----------------------------------------------------------------------------------------------------- crop cache
def _valid_frames(seq, cfg: PairConfig, frame_stride: int) -> np.ndarray:
    """Indices of the frames worth a crop: annotated, visible, not degenerate, on the stride."""
    boxes = np.asarray(seq.boxes, dtype=np.float64)
    n = len(boxes)
    ok = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w, h = boxes[:, 2], boxes[:, 3]
        ok &= (w >= cfg.min_target) & (h >= cfg.min_target)
        ok &= np.maximum(w / h, h / w) <= cfg.max_aspect
    if getattr(seq, "absent", None) is not None:
        ok &= ~np.asarray(seq.absent, dtype=bool)
    if getattr(seq, "cover", None) is not None:
        ok &= np.asarray(seq.cover) != 0  # GOT-10k cover 0: fully occluded
    ok &= (np.arange(n) % frame_stride) == 0
    return np.flatnonzero(ok)


def _crop_chunk(task: tuple) -> tuple[int, np.ndarray, np.ndarray]:
    """Crop the frames ``indices`` of ``seq``; runs in worker processes, so it takes one picklable tuple."""
    offset, seq, indices, cfg_dict = task
    cfg = PairConfig.from_dict(cfg_dict)
    size = cfg.cache_size
    crops = np.empty((len(indices), size, size, 3), np.uint8)
    sizes = np.empty((len(indices), 2), np.float32)
    for k, i in enumerate(indices):
        frame = seq.frame(int(i))
        box = seq.boxes[i]
        side = context_size(box[2], box[3], cfg.context) * cfg.instance_size / cfg.exemplar_size
        region = side * size / cfg.instance_size  # frame pixels covered by the cache crop
        crops[k] = crop_and_resize(frame, box_center(box), region, size, mean_color(frame))
        sizes[k] = box[2:] * (size / region)
    return offset, crops, sizes


def _init_crop_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend


@dataclass(eq=False)
class CropCache:
    """Cached search-region crops of every usable annotated frame (see the module docstring).

    ``crops``: (N, S, S, 3) uint8, S = ``config.cache_size``, target centred; ``sizes``: (N, 2) float32 target
    ``(w, h)`` in cache pixels (= search-crop pixels at scale 1); ``seq_index``/``frame_index``: (N,) int32, the
    sequence (into ``names``) and frame each crop came from, grouped by sequence with frames ascending; ``names``:
    ``"dataset/sequence"`` per sequence that has at least one crop; ``config``: the :class:`PairConfig` it was
    built for (its geometry and augmentation ranges fix ``cache_size``).
    """

    crops: np.ndarray
    sizes: np.ndarray
    seq_index: np.ndarray
    frame_index: np.ndarray
    names: list
    config: PairConfig

    def __post_init__(self):
        n = len(self.crops)
        s = self.config.cache_size
        if self.crops.dtype != np.uint8 or self.crops.ndim != 4 or self.crops.shape[1:] != (s, s, 3):
            raise InvalidArgumentError(
                f"CropCache.crops must be (N, {s}, {s}, 3) uint8 for its config, got {self.crops.shape} "
                f"{self.crops.dtype}")
        for name, shape in (("sizes", (n, 2)), ("seq_index", (n,)), ("frame_index", (n,))):
            if getattr(self, name).shape != shape:
                raise InvalidArgumentError(f"CropCache.{name} must have shape {shape}, got {getattr(self, name).shape}")
        if n and (self.seq_index.min() < 0 or self.seq_index.max() >= len(self.names)):
            raise InvalidArgumentError("CropCache.seq_index points outside names")

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def num_sequences(self) -> int:
        return len(self.names)

    @property
    def nbytes(self) -> int:
        return int(self.crops.nbytes)

    def __repr__(self) -> str:
        return (f"CropCache({len(self)} crops of {self.num_sequences} sequences, {self.config.cache_size}px, "
                f"{self.nbytes / 2**20:.0f} MiB)")

    @classmethod
    def build(
        cls,
        sequences: Iterable,
        cfg: PairConfig | None = None,
        workers: int = 0,
        progress: bool = True,
        frame_stride: int = 1,
        chunk: int = 64,
    ) -> "CropCache":
        """Crop every usable frame of ``sequences`` (any :class:`~edgetrack.data.Sequence`, or Datasets of them).

        Frames are left out when their box is NaN, the target is absent or fully covered (GOT-10k cover 0), the box
        is smaller than ``cfg.min_target`` or more elongated than ``cfg.max_aspect``, or the frame is not on the
        ``frame_stride`` (keep every n-th frame of long videos). ``workers`` > 0 crops in that many processes.
        """
        cfg = PairConfig() if cfg is None else cfg
        if not isinstance(cfg, PairConfig):
            raise InvalidArgumentError(f"cfg must be a PairConfig, got {type(cfg).__name__}")
        for name, value in (("frame_stride", frame_stride), ("chunk", chunk)):
            if not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(workers, int) or workers < 0:
            raise InvalidArgumentError(f"workers must be an integer >= 0, got {workers!r}")
        seqs = _flatten(sequences)

        names, tasks, seq_index, frame_index = [], [], [], []
        total = 0
        cfg_dict = cfg.to_dict()
        for seq in seqs:
            idx = _valid_frames(seq, cfg, frame_stride)
            if not len(idx):
                continue
            sid = len(names)
            names.append(f"{seq.dataset}/{seq.name}" if getattr(seq, "dataset", "") else seq.name)
            seq_index.append(np.full(len(idx), sid, np.int32))
            frame_index.append(idx.astype(np.int32))
            for start in range(0, len(idx), chunk):
                part = idx[start:start + chunk]
                tasks.append((total + start, seq, part, cfg_dict))
            total += len(idx)
        if not total:
            raise DatasetError(
                f"none of the {len(seqs)} sequence(s) has a usable annotated frame (boxes NaN, absent, fully "
                f"covered, under {cfg.min_target:g} px or more elongated than {cfg.max_aspect:g}:1)",
                fix="train on annotated tracking sequences (GOT-10k train/val, VID, OTB, synthetic)",
            )

        size = cfg.cache_size
        crops = np.empty((total, size, size, 3), np.uint8)
        sizes = np.empty((total, 2), np.float32)
        results = _run_tasks(tasks, workers)
        if progress:
            from edgetrack.progress import progress as bar

            results = bar(results, desc="cropping frames", total=len(tasks), unit="chunk")
        for offset, c, s in results:
            crops[offset:offset + len(c)] = c
            sizes[offset:offset + len(c)] = s
        return cls(crops, sizes, np.concatenate(seq_index), np.concatenate(frame_index), names, cfg)

    def save(self, path: str | Path) -> Path:
        """Write the cache to ``path`` (an uncompressed .npz; written to a temporary name, then renamed)."""
        path = cache_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        meta = {"format": CACHE_FORMAT, "config": self.config.to_dict()}
        with open(tmp, "wb") as f:  # a file object: numpy would otherwise append .npz to the temporary name
            np.savez(f, crops=self.crops, sizes=self.sizes, seq_index=self.seq_index, frame_index=self.frame_index,
                     names=np.asarray(self.names, dtype=str), meta=np.asarray(json.dumps(meta)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CropCache":
        """Read a cache written by :meth:`save` (the whole file is read into memory)."""
        path = cache_file(path)
        if not path.is_file():
            raise DatasetError(f"crop cache {str(path)!r} does not exist",
                               fix="build it with CropCache.build(...).save(path)")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != CACHE_FORMAT:
                    raise DatasetError(
                        f"crop cache {str(path)!r} has format {meta.get('format')!r}; this edgetrack reads "
                        f"format {CACHE_FORMAT}", fix="rebuild the cache")
                return cls(data["crops"], data["sizes"], data["seq_index"], data["frame_index"],
                           [str(n) for n in data["names"]], PairConfig.from_dict(meta["config"]))
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"crop cache {str(path)!r} is not readable ({exc})", fix="rebuild the cache") from exc


def cache_file(path: str | Path) -> Path:
    """The file a cache named ``path`` lives in: ``path`` itself if it ends in .npz, else ``path`` + ".npz"."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _flatten(sequences) -> list:
    """A list of tracking sequences from sequences, Datasets, or lists of either."""
    out = []
    for item in sequences if not hasattr(sequences, "boxes") else [sequences]:
        if hasattr(item, "sequences") and not hasattr(item, "boxes"):
            out.extend(_flatten(item.sequences))
        elif hasattr(item, "boxes") and hasattr(item, "frame"):
            out.append(item)
        else:
            raise DatasetError(
                f"cannot train a tracker on {item!r}: it has no box annotations (a deblurring set such as GoPro?)",
                fix="train on got10k:, vid:, otb: or synthetic: data sets",
            )
    if not out:
        raise DatasetError("no sequences to train on", fix="pass at least one annotated tracking sequence")
    return out


def _run_tasks(tasks: list, workers: int) -> Iterator:
    if workers == 0:
        return map(_crop_chunk, tasks)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # Not fork: the executor's own threads may hold the import lock at the moment a worker is forked, and such a
    # worker hangs on its first import (seen here). Workers start clean and receive only the small task tuples.
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")

    def gen():
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_crop_worker) as pool:
            yield from pool.map(_crop_chunk, tasks)  # in order, streamed; chunks bound the memory per task

    return gen()


def open_sequences(specs: Seq[str]) -> list:
    """Every tracking sequence of the data sets named by ``specs`` (``KIND:PATH[#SUBSET]``, see
    :func:`edgetrack.data.open_dataset`). A synthetic spec without a subset gives both variants, sharp and blurred."""
    from edgetrack.data import open_dataset

    if isinstance(specs, str):
        specs = [specs]
    out = []
    for spec in dict.fromkeys(specs):
        out.extend(_flatten(open_dataset(spec)))
    return out


# ----------------------------------------------------------------------------------------------------- the sampler
def shifted_labels(shift_xy: Seq[float], cfg: PairConfig) -> np.ndarray:
    """The label map for a target ``shift_xy`` pixels from the search crop's centre (1 / 0 / 0.5 = ignored).

    Cell ``(r, c)`` looks at search-crop pixel ``centre + total_stride · ((c, r) − centre cell)``; its label is
    positive within ``r_pos`` px of the target, ignored under ``r_neg`` px, negative otherwise (Euclidean, as
    :func:`edgetrack.models.labels.siamfc_labels`, which this equals for a zero shift).
    """
    dx, dy = (float(v) for v in shift_xy)
    offsets = (np.arange(cfg.response_size, dtype=np.float64) - (cfg.response_size - 1) / 2) * cfg.total_stride
    dist = np.hypot(offsets[None, :] - dx, offsets[:, None] - dy)
    labels = np.where(dist <= cfg.r_pos, POSITIVE, np.where(dist < cfg.r_neg, IGNORED, NEGATIVE))
    return labels.astype(np.float32)


def motion_blur_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised linear motion-blur kernel: a straight streak ``length`` px long at ``angle`` radians.

    The streak is sampled densely and splatted bilinearly, so sub-pixel lengths and any direction are smooth.
    """
    length = max(float(length), 1.0)
    k = int(math.ceil(length)) | 1  # odd side: the streak's centre is the kernel's centre pixel
    kernel = np.zeros((k + 2, k + 2), np.float64)
    t = np.linspace(-length / 2 + 0.5, length / 2 - 0.5, max(2, int(length * 4)))
    xs = (k + 1) / 2 + t * math.cos(angle)
    ys = (k + 1) / 2 + t * math.sin(angle)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + oy, x0 + ox), w)
    return (kernel / kernel.sum()).astype(np.float32)


def _warp(img: np.ndarray, center: Seq[float], k: Seq[float], out_size: int) -> np.ndarray:
    """Crop ``out_size``² around ``center`` with ``k = (kx, ky)`` source pixels per output pixel.

    The same convention as :func:`edgetrack.tracking.crop.crop_and_resize` (output centre on ``center``, pixels
    tile the region exactly), with separate factors per axis for stretching. The cache margin keeps every sample
    inside the cached crop; replicating the border only guards against rounding.
    """
    import cv2

    kx, ky = k
    half = (out_size - 1) / 2
    m = np.array([[kx, 0.0, center[0] - kx * half], [0.0, ky, center[1] - ky * half]], dtype=np.float64)
    return cv2.warpAffine(img, m, (out_size, out_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


class PairSampler:
    """Draws augmented training pairs from a :class:`CropCache`; see the module docstring.

    ``cfg`` (default: the cache's config) may change the augmentation, but not the geometry, and its ranges must
    fit in the cache's margin. ``seed``: an int or a tuple of ints (a trainer passes ``(seed, rank)``); default
    ``cfg.seed``. :meth:`sample` continues one deterministic stream; :meth:`sample_at` and :meth:`batches` address
    its batches by number.
    """

    def __init__(self, cache: CropCache, cfg: PairConfig | None = None, seed: int | Seq[int] | None = None):
        if not isinstance(cache, CropCache):
            raise InvalidArgumentError(f"cache must be a CropCache, got {type(cache).__name__}")
        cfg = cache.config if cfg is None else cfg
        if not isinstance(cfg, PairConfig):
            raise InvalidArgumentError(f"cfg must be a PairConfig, got {type(cfg).__name__}")
        built = cache.config
        for name in ("exemplar_size", "instance_size", "context"):
            if getattr(cfg, name) != getattr(built, name):
                raise InvalidArgumentError(
                    f"PairConfig.{name} is {getattr(cfg, name)} but the cache was built with {getattr(built, name)}",
                    fix="rebuild the cache with this config, or sample with the cache's geometry")
        if cfg.cache_size > built.cache_size:
            raise InvalidArgumentError(
                f"the augmentation (scale_jitter {cfg.scale_jitter}, stretch {cfg.stretch}, max_shift "
                f"{cfg.max_shift}) needs {cfg.cache_size}px cached crops; this cache holds {built.cache_size}px",
                fix="rebuild the cache with this PairConfig, or reduce the augmentation ranges")
        if len(cache) == 0:
            raise DatasetError("the crop cache is empty")
        self.cache = cache
        self.cfg = cfg
        seed = cfg.seed if seed is None else seed
        self.seed = tuple(int(s) for s in (seed if isinstance(seed, (tuple, list)) else (seed,)))
        if any(s < 0 for s in self.seed):
            raise InvalidArgumentError(f"seed must be made of integers >= 0, got {seed!r}")
        self._next = 0
        # Per sequence: its cache indices and frame numbers, frames ascending (the cache is built that way).
        order = np.lexsort((cache.frame_index, cache.seq_index))
        seq_sorted = cache.seq_index[order]
        bounds = np.flatnonzero(np.diff(seq_sorted)) + 1
        self._entries = np.split(order, bounds)
        self._frames = [cache.frame_index[e] for e in self._entries]
        self._center = (built.cache_size - 1) / 2

    # -- pair selection ------------------------------------------------------------------------------------------
    def _pick(self, rng: np.random.Generator) -> tuple[int, int]:
        s = int(rng.integers(len(self._entries)))
        entries, frames = self._entries[s], self._frames[s]
        iz = int(rng.integers(len(entries)))
        lo = int(np.searchsorted(frames, frames[iz] - self.cfg.max_gap, "left"))
        hi = int(np.searchsorted(frames, frames[iz] + self.cfg.max_gap, "right"))
        if hi - lo <= 1:  # the only usable frame within reach is z's own: a pair of one frame
            return int(entries[iz]), int(entries[iz])
        ix = lo + int(rng.integers(hi - lo - 1))
        ix += ix >= iz  # skip z itself
        return int(entries[iz]), int(entries[ix])

    def _pick_other(self, ix: int, rng: np.random.Generator) -> int:
        """A random cache entry of another sequence than entry ``ix``'s (a negative pair's exemplar)."""
        own = int(self.cache.seq_index[ix])
        s = int(rng.integers(len(self._entries) - 1))
        s += s >= own  # skip ix's own sequence (entries are grouped by sequence index, in order)
        entries = self._entries[s]
        return int(entries[int(rng.integers(len(entries)))])

    # -- one pair ------------------------------------------------------------------------------------------------
    def pair(self, iz: int, ix: int, rng: np.random.Generator | None = None, *, shift: Seq[float] | None = None,
             augment: bool = True, negative: bool = False) -> dict:
        """The pair of cache entries ``iz`` (exemplar) and ``ix`` (search) as HWC float32 crops plus its labels.

        ``shift`` forces the target's displacement in the search crop (px); ``augment=False`` turns every other
        augmentation off. ``negative``: a negative pair (``iz`` from another sequence than ``ix``): every label is
        negative. Returns ``z`` (E, E, 3), ``x`` (I, I, 3), ``labels`` (R, R), ``shift`` (2,), ``box`` (4,): the
        box ``(x, y, w, h)`` in the search crop of ``ix``'s target (for a negative pair, the object to reject).
        """
        cfg = self.cfg
        rng = np.random.default_rng() if rng is None else rng
        c = self._center
        log_s = math.log1p(cfg.scale_jitter)
        log_t = math.log1p(cfg.stretch)
        if augment:
            scale = math.exp(rng.uniform(-log_s, log_s))
            stretch_z = np.exp(rng.uniform(-log_t, log_t, 2))
            stretch_x = np.exp(rng.uniform(-log_t, log_t, 2))
        else:
            scale, stretch_z, stretch_x = 1.0, np.ones(2), np.ones(2)
        if shift is None:
            shift = rng.uniform(-cfg.max_shift, cfg.max_shift, 2) if augment else np.zeros(2)
        shift = np.asarray(shift, dtype=np.float64).reshape(2)
        if np.any(np.abs(shift) > cfg.max_shift + 1e-9):
            raise InvalidArgumentError(f"shift {tuple(shift)} exceeds max_shift {cfg.max_shift}")

        # z: centred on its target. A cache pixel is a crop pixel at scale 1 for both crops (z covers E/I of x's side).
        z = _warp(self.cache.crops[iz], (c, c), stretch_z, cfg.exemplar_size)
        # x: crop centre placed so the target lands at (centre + shift) of the output.
        kx = scale * stretch_x
        x = _warp(self.cache.crops[ix], (c - shift[0] * kx[0], c - shift[1] * kx[1]), kx, cfg.instance_size)

        z = z.astype(np.float32)
        x = x.astype(np.float32)
        if augment:
            z, x = self._photometric(z, x, rng)
        # Drawn last and only when asked for, so streams without these augmentations are the same as before.
        if augment and cfg.flip_prob > 0 and rng.random() < cfg.flip_prob:
            z, x = z[:, ::-1], x[:, ::-1]
            shift = shift * np.array([-1.0, 1.0])  # the mirror of (half + s) is (half - s)
        if augment and cfg.swap_prob > 0 and rng.random() < cfg.swap_prob:
            order = rng.permutation(3)
            z, x = z[..., order], x[..., order]
        z, x = np.ascontiguousarray(z), np.ascontiguousarray(x)
        half = (cfg.instance_size - 1) / 2
        w, h = self.cache.sizes[ix] / kx
        cx, cy = half + shift
        box = np.array([cx - (w - 1) / 2, cy - (h - 1) / 2, w, h], np.float32)
        labels = (np.full((cfg.response_size,) * 2, NEGATIVE, np.float32) if negative
                  else shifted_labels(shift, cfg))
        return {"z": z, "x": x, "labels": labels, "shift": shift.astype(np.float32), "box": box}

    def _photometric(self, z: np.ndarray, x: np.ndarray, rng: np.random.Generator):
        import cv2

        cfg = self.cfg
        out = []
        grey = rng.random() < cfg.grey_prob
        for img in (z, x):
            if rng.random() < cfg.blur_prob and cfg.blur_max >= 1:
                kernel = motion_blur_kernel(rng.uniform(cfg.blur_min, cfg.blur_max), rng.uniform(0, math.pi))
                img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
            if cfg.colour_jitter > 0:
                cj = cfg.colour_jitter
                mean = img.mean()
                contrast = rng.uniform(1 - cj, 1 + cj)
                gain = rng.uniform(1 - cj, 1 + cj) * rng.uniform(1 - cj / 2, 1 + cj / 2, 3).astype(np.float32)
                img = ((img - mean) * contrast + mean) * gain
            if grey:
                g = img @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR weights of ITU-R BT.601 luma
                img = np.repeat(g[..., None], 3, axis=2)
            out.append(np.clip(img, 0, 255, out=img))
        return out[0], out[1]

    # -- batches -------------------------------------------------------------------------------------------------
    def sample_at(self, index: int, batch_size: int) -> dict:
        """Batch number ``index`` of this sampler's stream (a pure function of ``(seed, index, batch_size)``).

        Returns ``z`` (B, 3, E, E), ``x`` (B, 3, I, I) float32 NCHW BGR 0..255, ``labels`` (B, R, R) float32,
        ``shift`` (B, 2), ``box`` (B, 4) float32, ``pairs`` (B, 2) int64 cache indices, ``negative`` (B,) bool
        (negative pairs, ``cfg.neg_prob``), ``index`` the batch number.
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        rng = np.random.default_rng([*self.seed, int(index)])
        cfg = self.cfg
        b = int(batch_size)
        z = np.empty((b, 3, cfg.exemplar_size, cfg.exemplar_size), np.float32)
        x = np.empty((b, 3, cfg.instance_size, cfg.instance_size), np.float32)
        labels = np.empty((b, cfg.response_size, cfg.response_size), np.float32)
        shift = np.empty((b, 2), np.float32)
        box = np.empty((b, 4), np.float32)
        pairs = np.empty((b, 2), np.int64)
        negative = np.zeros(b, bool)
        # Drawn only when asked for, so streams without negative pairs are the same as before they existed.
        can_neg = cfg.neg_prob > 0 and len(self._entries) > 1
        for i in range(b):
            iz, ix = self._pick(rng)
            if can_neg and rng.random() < cfg.neg_prob:
                iz, negative[i] = self._pick_other(ix, rng), True
            p = self.pair(iz, ix, rng, negative=bool(negative[i]))
            z[i] = p["z"].transpose(2, 0, 1)
            x[i] = p["x"].transpose(2, 0, 1)
            labels[i], shift[i], box[i], pairs[i] = p["labels"], p["shift"], p["box"], (iz, ix)
        return {"z": z, "x": x, "labels": labels, "shift": shift, "box": box, "pairs": pairs, "negative": negative,
                "index": int(index)}

    def sample(self, batch_size: int) -> dict:
        """The next batch of this sampler's stream (see :meth:`sample_at`)."""
        out = self.sample_at(self._next, batch_size)
        self._next += 1
        return out

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[dict]:
        """Batches ``start, start + step, ...`` (before ``stop``; endless without it).

        Data-loader worker ``w`` of ``W`` iterates ``batches(b, start + w, stop, W)``: the workers together produce
        the stream's batches in order, whatever ``W`` is.
        """
        if step < 1 or start < 0:
            raise InvalidArgumentError(f"need start >= 0 and step >= 1, got {start}, {step}")
        k = start
        while stop is None or k < stop:
            yield self.sample_at(k, batch_size)
            k += step
