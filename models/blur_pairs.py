"""Aligned (blurred, sharp) crop pairs for training and testing the deblurrer, framework-free (numpy + OpenCV).

Both DeblurGAN-v2 trainers (PyTorch now, MindSpore later) feed on this module, so a pair is the same array whichever
framework consumes it.

**Sources** (:func:`open_blur_pairs`). A deblurrer needs the same scene sharp and blurred, pixel for pixel:

* ``synthetic:DIR`` — what ``edgetrack data synth`` writes: ``sharp/`` and ``blurred/`` hold the same sequences
  with identical annotations (the sharp frame is the middle sub-frame of the blurred frame's exposure), so the
  frames pair by sequence name and index, and the target's box is known — the tracker's crops can be cut.
* ``gopro:DIR[#train]`` — GoPro's ``blur/`` and ``sharp/`` (:class:`~edgetrack.data.BlurPairSequence`; also the
  ``gopro/`` folder of a synthetic set). No boxes: random crops only.

**Frames** (:class:`BlurFrames`). Every used frame pair is decoded once and kept in memory as uint8 (a crop costs a
fraction of a millisecond, decoding a frame several): 480×360 synthetic frames take 1 MiB a pair, GoPro's 1280×720
5.3 MiB (``frame_stride`` keeps every n-th frame of long videos).

**Crops** (:class:`BlurPairSampler`). The deblurrer runs on the tracker's crops, so it is trained on them: a
``crop_size`` window, at the pixel scale of the tracker's **search region** — ``context_size(w, h) · 255/127``
frame pixels per 255 crop pixels, the same scale as the 127 template (:mod:`edgetrack.tracking.crop`), times a
log-uniform scale jitter (the tracker's scale search and size changes) — whose centre is the target's plus a shift
of up to ``max_shift`` crop pixels (the target moved since the last frame); parts outside the frame take the
blurred frame's mean colour, as the tracker's crops do. With ``crop_size`` 255 a crop *is* a search crop; the
template (the search crop's centre 127 pixels) is covered by the same distribution. A share ``1 − tracker_prob``
(and every crop of a frame without a usable box) are random windows instead: anywhere in the frame, at a
log-uniform scale in ``random_scale``. The same affine map cuts both frames, so the pair stays aligned; flips
apply to both.

Arrays come out as the trainers' input: uint8 NCHW BGR (a quarter of float32's bytes to move to the device).
Randomness: batch ``k`` is a pure function of ``(seed, k)`` (as :mod:`edgetrack.models.pairs`), so data-loader
workers and resumed runs see the same batches. The held-out evaluation set (:func:`eval_batch`) comes from separate
sequences (``--eval-data``, or the last ones of the training data) and its own random stream.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence as Seq

import numpy as np

from edgetrack.errors import DatasetError, InvalidArgumentError
from edgetrack.tracking.crop import box_center, context_size, crop_and_resize, mean_color

__all__ = ["BlurCropConfig", "BlurPairSource", "BlurFrames", "BlurPairSampler", "open_blur_pairs",
           "sources_from_datasets", "eval_batch", "EVAL_STREAM"]

# The eval set's stream key: batches of the training stream are default_rng([*seed, k]), the eval set
# default_rng([*seed, EVAL_STREAM, 0]) — a different entropy sequence, so it never repeats a training batch.
EVAL_STREAM = 7919


@dataclass(frozen=True)
class BlurCropConfig:
    """Geometry and augmentation of deblurring crops (see the module docstring).

    ``crop_size``: side of a training crop (255: the tracker's search crop; any size >= 16 works, the generator is
    fully convolutional). ``exemplar_size``/``instance_size``/``context``: the tracker's crop geometry, which fixes
    the pixel scale of tracker crops. ``tracker_prob``: share of crops cut like the tracker's (where a frame has a
    usable box). ``max_shift``: the target lands up to that many crop pixels (each axis) from the crop's centre.
    ``scale_jitter``: the search region's side × a log-uniform factor in ``[1/(1+s), 1+s]``. ``random_scale``: frame
    pixels per crop pixel of random crops (log-uniform). ``hflip_prob``/``vflip_prob``: mirror both crops.
    ``min_target``: boxes smaller than this (px) get random crops.
    """

    crop_size: int = 255
    exemplar_size: int = 127
    instance_size: int = 255
    context: float = 0.5
    tracker_prob: float = 0.75
    max_shift: float = 64.0
    scale_jitter: float = 0.25
    random_scale: tuple[float, float] = (0.5, 2.0)
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    min_target: float = 4.0

    def __post_init__(self):
        for name in ("crop_size", "exemplar_size", "instance_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 16:
                raise InvalidArgumentError(f"BlurCropConfig.{name} must be an integer >= 16, got {value!r}")
        for name in ("context", "max_shift", "scale_jitter", "min_target"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"BlurCropConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("tracker_prob", "hflip_prob", "vflip_prob"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise InvalidArgumentError(f"BlurCropConfig.{name} must be a probability in [0, 1], got {value!r}")
        try:
            lo, hi = (float(v) for v in self.random_scale)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"BlurCropConfig.random_scale must be (low, high), got "
                                       f"{self.random_scale!r}") from None
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise InvalidArgumentError(f"BlurCropConfig.random_scale must satisfy 0 < low <= high, got {(lo, hi)}")
        object.__setattr__(self, "random_scale", (lo, hi))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["random_scale"] = list(self.random_scale)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "BlurCropConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgumentError(f"BlurCropConfig has no field(s) {sorted(unknown)}; fields: {sorted(known)}")
        data = dict(data)
        if "random_scale" in data:
            data["random_scale"] = tuple(data["random_scale"])
        return cls(**data)


# ------------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True, eq=False)
class BlurPairSource:
    """One video of aligned frames: file paths of the blurred and sharp frames, and the target's boxes (N, 4) where
    known (NaN rows where the target is absent), else None."""

    name: str
    blurred: tuple[str, ...]
    sharp: tuple[str, ...]
    boxes: np.ndarray | None = None

    def __post_init__(self):
        if len(self.blurred) != len(self.sharp):
            raise DatasetError(f"{self.name!r}: {len(self.blurred)} blurred frames but {len(self.sharp)} sharp ones")
        if self.boxes is not None:
            boxes = np.asarray(self.boxes, dtype=np.float64)
            if boxes.shape != (len(self.blurred), 4):
                raise DatasetError(f"{self.name!r}: boxes must be ({len(self.blurred)}, 4), got {boxes.shape}")
            object.__setattr__(self, "boxes", boxes)

    def __len__(self) -> int:
        return len(self.blurred)


def sources_from_datasets(datasets: Iterable) -> list[BlurPairSource]:
    """Pair the frames of opened data sets (:func:`edgetrack.data.open_dataset`'s Datasets).

    GoPro-style data sets (holding :class:`~edgetrack.data.BlurPairSequence`) pair within each sequence; synthetic
    sets pair their ``synthetic-blurred`` and ``synthetic-sharp`` variants by sequence name (boxes from the blurred
    variant, where absent frames are NaN). Anything else has no sharp counterpart and is a :class:`DatasetError`.
    """
    from edgetrack.data import BlurPairSequence

    datasets = list(datasets)
    out: list[BlurPairSource] = []
    variants: dict[str, dict] = {}
    for ds in datasets:
        seqs = list(ds.sequences)
        if seqs and all(isinstance(s, BlurPairSequence) for s in seqs):
            out.extend(BlurPairSource(f"{ds.name}/{s.name}", tuple(s.blur), tuple(s.sharp)) for s in seqs)
        elif ds.kind == "synthetic" and ds.name in ("synthetic-sharp", "synthetic-blurred"):
            variants.setdefault(ds.name.rsplit("-", 1)[1], {}).update({s.name: s for s in seqs})
        else:
            raise DatasetError(
                f"data set {ds.name!r} ({ds.kind}) has no sharp frames aligned with blurred ones",
                fix="train the deblurrer on synthetic:DIR (both variants) or gopro:DIR",
            )
    if variants:
        if set(variants) != {"sharp", "blurred"}:
            only = next(iter(variants))
            raise DatasetError(f"a synthetic set opened with only its {only} variant cannot give blurred/sharp pairs",
                               fix="name the set without '#sharp' / '#blurred': synthetic:DIR")
        sharp, blurred = variants["sharp"], variants["blurred"]
        missing = sorted(set(sharp) ^ set(blurred))
        if missing:
            raise DatasetError(f"synthetic sequence {missing[0]!r} is in one variant only",
                               fix="regenerate the set with `edgetrack data synth --force`")
        for name in blurred:
            b, s = blurred[name], sharp[name]
            if len(b) != len(s):
                raise DatasetError(f"synthetic sequence {name!r}: {len(b)} blurred frames, {len(s)} sharp")
            boxes = np.array(b.boxes, dtype=np.float64)
            if getattr(b, "absent", None) is not None:
                boxes[np.asarray(b.absent, dtype=bool)] = np.nan
            out.append(BlurPairSource(f"{b.dataset}/{name}", tuple(b.frames), tuple(s.frames), boxes))
    if not out:
        raise DatasetError("no blurred/sharp frame pairs to train on",
                           fix="pass --data synthetic:DIR or gopro:DIR")
    return out


def open_blur_pairs(specs: Seq[str] | str) -> list[BlurPairSource]:
    """The aligned frame pairs of the data sets named by ``specs`` (``KIND:PATH[#SUBSET]``)."""
    from edgetrack.data import open_dataset

    if isinstance(specs, str):
        specs = [specs]
    out = []
    for spec in dict.fromkeys(specs):
        out.extend(sources_from_datasets(open_dataset(spec)))
    return out


# ------------------------------------------------------------------------------------------------ frames
def _read_pair(task: tuple) -> tuple[np.ndarray, np.ndarray]:
    from edgetrack.data.sequence import read_frame

    name, blurred, sharp = task
    b, s = read_frame(blurred), read_frame(sharp)
    if b.shape != s.shape:
        raise DatasetError(f"{name!r}: blurred frame {blurred!r} is {b.shape[1]}×{b.shape[0]} but its sharp frame "
                           f"is {s.shape[1]}×{s.shape[0]}", fix="pairs must be aligned images of one size")
    return b, s


@dataclass(eq=False)
class BlurFrames:
    """Decoded frame pairs: ``blurred[i]``/``sharp[i]`` (H×W×3 uint8, per-frame sizes may differ), ``boxes`` (N, 4)
    (NaN: none), ``pad`` (N, 3) the blurred frame's mean colour, ``seq_index`` (N,) into ``names``."""

    blurred: list
    sharp: list
    boxes: np.ndarray
    pad: np.ndarray
    seq_index: np.ndarray
    names: list

    def __len__(self) -> int:
        return len(self.blurred)

    @property
    def nbytes(self) -> int:
        return int(sum(b.nbytes + s.nbytes for b, s in zip(self.blurred, self.sharp)))

    def __repr__(self) -> str:
        return (f"BlurFrames({len(self)} frame pairs of {len(self.names)} sequences, "
                f"{self.nbytes / 2**20:.0f} MiB)")

    @classmethod
    def build(cls, sources: Iterable[BlurPairSource], frame_stride: int = 1, workers: int = 0,
              progress: bool = True) -> "BlurFrames":
        """Decode every ``frame_stride``-th frame pair of ``sources`` (``workers`` > 0: that many reader threads;
        OpenCV's decoders release the GIL)."""
        if not isinstance(frame_stride, int) or frame_stride < 1:
            raise InvalidArgumentError(f"frame_stride must be an integer >= 1, got {frame_stride!r}")
        if not isinstance(workers, int) or workers < 0:
            raise InvalidArgumentError(f"workers must be an integer >= 0, got {workers!r}")
        sources = list(sources)
        tasks, boxes, seq_index, names = [], [], [], []
        for src in sources:
            if not isinstance(src, BlurPairSource):
                raise InvalidArgumentError(f"expected BlurPairSource items, got {type(src).__name__}",
                                           fix="open data with open_blur_pairs(specs)")
            idx = range(0, len(src), frame_stride)
            if not len(idx):
                continue
            sid = len(names)
            names.append(src.name)
            for i in idx:
                tasks.append((src.name, src.blurred[i], src.sharp[i]))
                boxes.append(src.boxes[i] if src.boxes is not None else np.full(4, np.nan))
                seq_index.append(sid)
        if not tasks:
            raise DatasetError("no frame pairs to read", fix="pass data sets that hold frames")
        if workers:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=workers)
            results: Iterable = pool.map(_read_pair, tasks)
        else:
            pool, results = None, map(_read_pair, tasks)
        if progress:
            from edgetrack.progress import progress as bar

            results = bar(results, desc="reading frame pairs", total=len(tasks), unit="pair")
        try:
            pairs = list(results)
        finally:
            if pool is not None:
                pool.shutdown()
        blurred = [p[0] for p in pairs]
        sharp = [p[1] for p in pairs]
        pad = np.array([mean_color(b) for b in blurred], dtype=np.float64)
        return cls(blurred, sharp, np.asarray(boxes, np.float64).reshape(-1, 4), pad,
                   np.asarray(seq_index, np.int32), names)

    def subset(self, sequences: Seq[int]) -> "BlurFrames":
        """The frames of the given sequence numbers (into ``names``), in order."""
        keep = set(int(s) for s in sequences)
        idx = [i for i, s in enumerate(self.seq_index) if int(s) in keep]
        old = sorted(keep)
        remap = {s: k for k, s in enumerate(old)}
        return BlurFrames([self.blurred[i] for i in idx], [self.sharp[i] for i in idx], self.boxes[idx],
                          self.pad[idx], np.array([remap[int(self.seq_index[i])] for i in idx], np.int32),
                          [self.names[s] for s in old])

    def split_holdout(self, fraction: float) -> tuple["BlurFrames", "BlurFrames"]:
        """(training, held-out): the last ``max(1, round(fraction · sequences))`` sequences are held out."""
        n = len(self.names)
        if n < 2:
            raise DatasetError(
                f"cannot hold out sequences for evaluation: the training data has {n} sequence",
                fix="pass a separate evaluation set (--eval-data synthetic:DIR made with --split test)")
        if not 0 < fraction < 1:
            raise InvalidArgumentError(f"the held-out fraction must be in (0, 1), got {fraction}")
        held = max(1, min(n - 1, int(round(fraction * n))))
        return self.subset(range(n - held)), self.subset(range(n - held, n))


# ------------------------------------------------------------------------------------------------ the sampler
class BlurPairSampler:
    """Draws aligned (blurred, sharp) crops from :class:`BlurFrames`; see the module docstring.

    ``seed``: an int or a tuple of ints. :meth:`sample_at` and :meth:`batches` address the stream's batches by
    number (the interface of :class:`edgetrack.models.pairs.PairSampler`, so the trainers' loaders take either).
    """

    def __init__(self, frames: BlurFrames, cfg: BlurCropConfig | None = None, seed: int | Seq[int] = 0):
        if not isinstance(frames, BlurFrames):
            raise InvalidArgumentError(f"frames must be BlurFrames, got {type(frames).__name__}")
        cfg = BlurCropConfig() if cfg is None else cfg
        if not isinstance(cfg, BlurCropConfig):
            raise InvalidArgumentError(f"cfg must be a BlurCropConfig, got {type(cfg).__name__}")
        if len(frames) == 0:
            raise DatasetError("no frame pairs to sample from")
        self.frames, self.cfg = frames, cfg
        self.seed = tuple(int(s) for s in (seed if isinstance(seed, (tuple, list)) else (seed,)))
        if any(s < 0 for s in self.seed):
            raise InvalidArgumentError(f"seed must be made of integers >= 0, got {seed!r}")
        b = frames.boxes
        with np.errstate(invalid="ignore"):
            self._has_box = np.isfinite(b).all(axis=1) & (np.minimum(b[:, 2], b[:, 3]) >= cfg.min_target)

    def geometry(self, i: int, rng: np.random.Generator, tracker: bool | None = None) -> tuple[np.ndarray, float, bool]:
        """(centre in frame pixel-index coordinates, frame pixels per crop pixel, is a tracker crop) of a crop of
        frame ``i``. ``tracker`` forces the kind (a tracker crop needs a usable box)."""
        cfg = self.cfg
        if tracker is None:
            tracker = bool(self._has_box[i]) and rng.random() < cfg.tracker_prob
        elif tracker and not self._has_box[i]:
            raise InvalidArgumentError(f"frame {i} has no usable box for a tracker crop")
        if tracker:
            box = self.frames.boxes[i]
            s_x = context_size(box[2], box[3], cfg.context) * cfg.instance_size / cfg.exemplar_size
            log_s = math.log1p(cfg.scale_jitter)
            k = s_x / cfg.instance_size * math.exp(rng.uniform(-log_s, log_s))
            shift = rng.uniform(-cfg.max_shift, cfg.max_shift, 2)
            return box_center(box) + shift * k, k, True
        h, w = self.frames.blurred[i].shape[:2]
        lo, hi = cfg.random_scale
        k = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        half = k * cfg.crop_size / 2
        centre = []
        for extent in (w, h):
            if 2 * half < extent:  # keep the window inside the frame where it fits
                centre.append(rng.uniform(half - 0.5, extent - half - 0.5))
            else:
                centre.append((extent - 1) / 2)
        return np.array(centre), k, False

    def pair(self, i: int, rng: np.random.Generator | None = None, *, tracker: bool | None = None,
             augment: bool = True) -> dict:
        """The crops of frame pair ``i``: ``blurred``/``sharp`` (S, S, 3) uint8 BGR, ``tracker`` (bool)."""
        rng = np.random.default_rng() if rng is None else rng
        cfg = self.cfg
        centre, k, is_tracker = self.geometry(i, rng, tracker)
        pad = self.frames.pad[i]
        size = cfg.crop_size
        b = crop_and_resize(self.frames.blurred[i], centre, k * size, size, pad)
        s = crop_and_resize(self.frames.sharp[i], centre, k * size, size, pad)
        if augment:
            if rng.random() < cfg.hflip_prob:
                b, s = b[:, ::-1], s[:, ::-1]
            if rng.random() < cfg.vflip_prob:
                b, s = b[::-1], s[::-1]
        return {"blurred": b, "sharp": s, "tracker": is_tracker}

    def sample_at(self, index: int, batch_size: int, *, augment: bool = True) -> dict:
        """Batch number ``index`` (a pure function of ``(seed, index, batch_size)``): ``blurred``/``sharp``
        (B, 3, S, S) uint8 NCHW BGR, ``frames`` (B,) frame numbers, ``tracker`` (B,) bool, ``index``."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        rng = np.random.default_rng([*self.seed, int(index)])
        s = self.cfg.crop_size
        b = int(batch_size)
        blurred = np.empty((b, 3, s, s), np.uint8)
        sharp = np.empty((b, 3, s, s), np.uint8)
        frames = rng.integers(len(self.frames), size=b)
        tracker = np.empty(b, bool)
        for j, i in enumerate(frames):
            p = self.pair(int(i), rng, augment=augment)
            blurred[j] = p["blurred"].transpose(2, 0, 1)
            sharp[j] = p["sharp"].transpose(2, 0, 1)
            tracker[j] = p["tracker"]
        return {"blurred": blurred, "sharp": sharp, "frames": frames.astype(np.int64), "tracker": tracker,
                "index": int(index)}

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[dict]:
        """Batches ``start, start + step, ...`` (before ``stop``; endless without it)."""
        if step < 1 or start < 0:
            raise InvalidArgumentError(f"need start >= 0 and step >= 1, got {start}, {step}")
        k = start
        while stop is None or k < stop:
            yield self.sample_at(k, batch_size)
            k += step


def eval_batch(frames: BlurFrames, cfg: BlurCropConfig, count: int, seed: int | Seq[int] = 0) -> dict:
    """The fixed held-out set: ``count`` crops of ``frames`` with ``cfg``'s geometry (tracker and random crops in
    its proportions), no flips, from a stream of its own (:data:`EVAL_STREAM`). Same arguments, same arrays."""
    if not isinstance(count, int) or count < 1:
        raise InvalidArgumentError(f"the evaluation set needs at least one crop, got {count!r}")
    seed = tuple(int(s) for s in (seed if isinstance(seed, (tuple, list)) else (seed,)))
    sampler = BlurPairSampler(frames, cfg, seed=(*seed, EVAL_STREAM))
    return sampler.sample_at(0, count, augment=False)
