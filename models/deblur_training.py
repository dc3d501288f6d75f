"""What the PyTorch and MindSpore DeblurGAN-v2 trainers share, framework-free: the run configuration, the
learning-rate schedule, the data and its held-out split, the crop stream, the command line, and the training loop's
bookkeeping (resuming, logging, evaluation, checkpoint times).

:mod:`edgetrack.models.torch.deblur_train` has the recipe and the run folder; its MindSpore twin
:mod:`edgetrack.models.mindspore.deblur_train` writes the same files. Each trainer keeps only what needs its
framework — the networks, the optimisers and their state, one training step, the metrics — and hands them to
:func:`run_training` as callables. The tracker trainers share their pieces through :mod:`edgetrack.models.training`,
which this module builds on (checkpoint names, resume points, atomic writes).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgetrack.errors import CheckpointError, EdgetrackError, InvalidArgumentError, UnknownChoiceError
from edgetrack.models.blur_pairs import BlurCropConfig, BlurFrames, BlurPairSampler, eval_batch, open_blur_pairs
from edgetrack.models.training import (
    atomic_write,
    check_numbers,
    check_resumable,
    ckpt_paths,
    config_from_dict,
    find_resume_point,
    lr_at,
    rewrite_log,
)

__all__ = ["DeblurTrainConfigBase", "lr_schedule", "batch_stream", "write_checkpoint", "read_state_info",
           "resume_point", "check_crop_size", "plan_run", "run_training", "config_from_args", "train_from_args",
           "STATE_FORMAT", "SCHEDULES", "LOG_KEYS", "RESUMABLE_CHANGES", "TRACKER_ONLY"]

# The training-state file (discriminator, both Adams' moments): the same keys in the same file for both frameworks.
STATE_FORMAT = "edgetrack-deblur-train-state-1"
SCHEDULES = ("cosine", "linear", "geometric")
# One training step's numbers, in this order, in log.jsonl (each averaged over the steps since the last line).
LOG_KEYS = ("loss", "content", "content_blurred", "adv", "loss_d", "l1", "ssim_loss", "edge")
# Fields both frameworks may change between a run and its resumption; changing any other would silently make a
# different run. Each trainer adds its own (PyTorch: amp, channels_last; MindSpore: jit).
RESUMABLE_CHANGES = frozenset({"device", "workers", "out", "log_every", "progress", "checkpoint_every",
                               "eval_every"})
# edgetrack train options of the tracker trainers: refused by the deblur trainers rather than silently ignored.
TRACKER_ONLY = {"loss": "--loss", "alpha": "--alpha", "gamma": "--gamma", "cache": "--cache", "max_gap": "--max-gap",
                "max_shift": "--max-shift", "blur_prob": "--blur-prob", "reg_weight": "--reg-weight"}


@dataclass(frozen=True)
class DeblurTrainConfigBase:
    """The fields of one DeblurGAN-v2 training run that mean the same in both frameworks; each trainer's
    ``DeblurTrainConfig`` adds its own (see :class:`edgetrack.models.torch.deblur_train.DeblurTrainConfig`).

    ``steps_per_epoch=None``: one crop per training frame pair and epoch (``frames // batch_size``).
    ``schedule``: the learning rate from ``lr_start`` to ``lr_end`` over the run, per step (``cosine``, ``linear``
    or ``geometric``), for both networks. Loss weights: ``l1_weight``, ``ssim_weight``, ``edge_weight`` (content),
    ``adv_weight`` (RaLSGAN; 0 = no discriminator), ``perceptual`` a SiamFC checkpoint whose frozen backbone adds a
    feature term of weight ``perceptual_weight``. ``workers``: threads that decode frames and cut crops ahead.
    Held-out set: ``eval_crops`` crops from the evaluation data, or (without it) from the last ``holdout`` share of
    the training sequences, evaluated at step 0 and every ``eval_every`` epochs. ``frame_stride``: decode every n-th
    frame only. ``crops``: the :class:`~edgetrack.models.blur_pairs.BlurCropConfig` (crop size, tracker/random mix,
    jitter).
    """

    model: str = "deblurgan-v2"
    epochs: int = 50
    steps_per_epoch: int | None = None
    batch_size: int = 8
    lr_start: float = 1e-4
    lr_end: float = 1e-7
    schedule: str = "cosine"
    adv_weight: float = 0.001
    l1_weight: float = 1.0
    ssim_weight: float = 1.0
    edge_weight: float = 1.0
    perceptual: str | None = None
    perceptual_weight: float = 0.1
    holdout: float = 0.1
    eval_crops: int = 200
    eval_every: int = 1
    device: str = "cpu"
    workers: int = 0
    seed: int = 0
    out: str = "runs/deblur"
    checkpoint_every: int = 1
    log_every: int = 10
    progress: bool = True
    frame_stride: int = 1
    crops: BlurCropConfig = field(default_factory=BlurCropConfig)

    def __post_init__(self):
        from edgetrack.models.deblur_config import DEBLURGAN_PRESETS

        if self.model not in DEBLURGAN_PRESETS:
            raise UnknownChoiceError("DeblurGAN model", self.model, DEBLURGAN_PRESETS)
        if self.schedule not in SCHEDULES:
            raise UnknownChoiceError("learning-rate schedule", self.schedule, SCHEDULES)
        ints = {"epochs": 1, "batch_size": 1, "workers": 0, "seed": 0, "checkpoint_every": 1, "log_every": 1,
                "frame_stride": 1, "eval_crops": 1, "eval_every": 1, "steps_per_epoch": 1}
        check_numbers(self, "DeblurTrainConfig", ints, positive=("lr_start", "lr_end"),
                      non_negative=("adv_weight", "l1_weight", "ssim_weight", "edge_weight", "perceptual_weight"))
        if not 0 < self.holdout < 1:
            raise InvalidArgumentError(f"DeblurTrainConfig.holdout must be in (0, 1), got {self.holdout!r}")
        if self.perceptual is not None and not isinstance(self.perceptual, str):
            raise InvalidArgumentError(f"DeblurTrainConfig.perceptual must be a checkpoint path or None, "
                                       f"got {self.perceptual!r}")
        if isinstance(self.crops, dict):
            object.__setattr__(self, "crops", BlurCropConfig.from_dict(self.crops))
        if not isinstance(self.crops, BlurCropConfig):
            raise InvalidArgumentError(f"DeblurTrainConfig.crops must be a BlurCropConfig, "
                                       f"got {type(self.crops).__name__}")
        object.__setattr__(self, "out", str(self.out))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["crops"] = self.crops.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict):
        return config_from_dict(cls, data)


def lr_schedule(step: int, total: int, lr_start: float, lr_end: float, kind: str = "cosine") -> float:
    """The learning rate of ``step`` of ``total``: ``lr_start`` at step 0, ``lr_end`` at step ``total − 1``."""
    if kind == "geometric":
        return lr_at(step, total, lr_start, lr_end)
    t = step / (total - 1) if total > 1 else 0.0
    if kind == "linear":
        return float(lr_start + (lr_end - lr_start) * t)
    if kind == "cosine":
        return float(lr_end + (lr_start - lr_end) * 0.5 * (1.0 + math.cos(math.pi * t)))
    raise UnknownChoiceError("learning-rate schedule", kind, SCHEDULES)


# ------------------------------------------------------------------------------------------------ data
def _frames(data, cfg: DeblurTrainConfigBase, what: str) -> BlurFrames:
    if isinstance(data, BlurFrames):
        return data
    if data is None or (isinstance(data, (list, tuple)) and not data):
        raise InvalidArgumentError(f"train() needs {what}: data set specs, BlurPairSources or BlurFrames",
                                   fix="pass --data synthetic:DIR (or gopro:DIR)")
    specs = [data] if isinstance(data, str) else list(data)
    sources = open_blur_pairs(specs) if all(isinstance(s, str) for s in specs) else specs
    return BlurFrames.build(sources, frame_stride=cfg.frame_stride, workers=cfg.workers, progress=cfg.progress)


def _split(data, eval_data, cfg: DeblurTrainConfigBase) -> tuple[BlurFrames, BlurFrames]:
    frames = _frames(data, cfg, "training data")
    if eval_data is not None and not (isinstance(eval_data, (list, tuple)) and not eval_data):
        return frames, _frames(eval_data, cfg, "evaluation data")
    train_frames, held = frames.split_holdout(cfg.holdout)
    if cfg.progress:
        print(f"no evaluation data given: holding out {len(held.names)} of {len(frames.names)} sequences "
              f"({', '.join(held.names[:3])}{', ...' if len(held.names) > 3 else ''})")
    return train_frames, held


def batch_stream(sampler: BlurPairSampler, batch_size: int, start: int, stop: int, workers: int):
    """Batches ``start .. stop − 1`` in order; ``workers`` > 0 cuts them ahead in that many threads.

    Threads, not DataLoader processes: a crop is two ``cv2.warpAffine`` calls, which release the GIL, so threads
    keep a GPU fed (a 255-crop batch of 8 takes a few ms on one core) while sharing the decoded frames without copies.
    Forked worker processes deadlocked on the GPU machine as soon as the parent had used OpenCV's own thread pool
    (the held-out crops are cut in the parent), which is OpenCV's known fork hazard.
    """
    if workers == 0:
        yield from sampler.batches(batch_size, start=start, stop=stop)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deblur-crops")
    pending: deque = deque()
    k = start
    try:
        while k < stop or pending:
            while k < stop and len(pending) < 2 * workers:
                pending.append(pool.submit(sampler.sample_at, k, batch_size))
                k += 1
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------------ checkpoints
def write_checkpoint(out: Path, epoch: int, step: int, elapsed: float, save_generator: Callable[[Path], None],
                     save_state: Callable[[Path, dict], None]) -> Path:
    """Epoch ``epoch``'s two files (:func:`~edgetrack.models.training.ckpt_paths`), each written atomically:
    ``save_generator(path)`` the generator, ``save_state(path, metadata)`` the training state (discriminator,
    optimiser moments) with the metadata its reader checks. Returns the generator's path."""
    weights, state = ckpt_paths(out, epoch)
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(weights, save_generator)
    info = {"format": STATE_FORMAT, "epoch": str(epoch), "step": str(step), "elapsed": repr(elapsed)}
    atomic_write(state, lambda p: save_state(p, info))
    return weights


def read_state_info(info: dict, path: Path, keys: set, discriminator_keys) -> tuple[int, float]:
    """(step, elapsed seconds) of a training-state file with metadata ``info`` and tensor names ``keys``, after
    checking it is one and that it holds every ``disc.<key>`` of ``discriminator_keys`` (None: no discriminator)."""
    if info.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a DeblurGAN training state (format {info.get('format')!r})",
                              fix="resume from a folder written by edgetrack train --model deblurgan-*")
    missing = [k for k in (discriminator_keys or ()) if f"disc.{k}" not in keys]
    if missing:
        raise CheckpointError(f"{str(path)!r} has no discriminator weight {missing[0]!r}",
                              fix="resume with the run's own settings (adv_weight > 0)")
    return int(info["step"]), float(info.get("elapsed", 0.0))


# ------------------------------------------------------------------------------------------------ the run
def resume_point(cfg: DeblurTrainConfigBase, resume: bool) -> tuple[Path, Path] | None:
    """(weights, state) to resume ``cfg.out`` from, None to start afresh; refuses to overwrite a run unasked."""
    out = Path(cfg.out)
    found = find_resume_point(out)
    if not resume and (found is not None or (out / "final.safetensors").exists()):
        raise InvalidArgumentError(f"{str(out)!r} already holds a training run",
                                   fix="pass resume=True (--resume) to continue it, or choose another out folder")
    return found if resume else None


def check_crop_size(cfg: DeblurTrainConfigBase, smallest: int) -> None:
    """The discriminators see the whole crop down to a few cells: a smaller crop fails deep inside them."""
    if cfg.crops.crop_size < smallest:
        raise InvalidArgumentError(
            f"crop size {cfg.crops.crop_size} is smaller than {cfg.model}'s discriminators accept ({smallest})",
            fix=f"use --crop-size {smallest} or more (255 is the tracker's search crop)")


def plan_run(cfg, data, eval_data, resume_from, resumable_changes, extra_record: dict | None = None):
    """Open the data and write the run's ``config.json``: returns ``(cfg, sampler, held_out, total)``.

    ``cfg`` comes back with ``steps_per_epoch`` resolved; ``held_out`` is the fixed evaluation batch
    (:func:`~edgetrack.models.blur_pairs.eval_batch`); ``total`` the number of steps. A resumed run's settings
    must match its ``config.json`` but for ``resumable_changes``. ``extra_record``: more keys for ``config.json``.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_frames, held = _split(data, eval_data, cfg)
    sampler = BlurPairSampler(train_frames, cfg.crops, seed=cfg.seed)
    spe = cfg.steps_per_epoch or max(1, len(train_frames) // cfg.batch_size)
    cfg = dataclasses.replace(cfg, steps_per_epoch=spe)
    record = {**cfg.to_dict(), **(extra_record or {})}
    if resume_from is not None:
        check_resumable(out, record, resumable_changes)
    (out / "config.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    held_out = eval_batch(held, cfg.crops, cfg.eval_crops, seed=cfg.seed)
    return cfg, sampler, held_out, cfg.epochs * spe


def run_training(cfg, sampler: BlurPairSampler, total: int, resume_from, resume: bool, *,
                 load: Callable, step: Callable, evaluate: Callable[[], dict], save_checkpoint: Callable,
                 save_final: Callable[[Path], None], desc: str, nonfinite_fix: str) -> Path:
    """The training loop of both trainers, from the resume point to ``final.safetensors``; returns its path.

    The framework's part comes as callables: ``load(weights, state) -> (step, elapsed)`` restores a checkpoint;
    ``step(batch, lr)`` sets the learning rate and makes one training step on a crop batch, returning the step's
    :data:`LOG_KEYS` as one array (a torch tensor may stay on its device: the sums are read only when logged);
    ``evaluate()`` gives the held-out metrics; ``save_checkpoint(epoch, step, elapsed)`` writes an epoch's
    checkpoint; ``save_final(path)`` writes the generator to ``path``. ``desc`` names the progress bar;
    ``nonfinite_fix`` is the advice when the loss stops being finite.
    """
    out = Path(cfg.out)
    final = out / "final.safetensors"
    log, eval_log = out / "log.jsonl", out / "eval.jsonl"
    start, elapsed0 = 0, 0.0
    if resume_from is not None:
        start, elapsed0 = load(*resume_from)
        print(f"resuming {out} at step {start} of {total} ({resume_from[0].name})")
    elif resume:
        print(f"no checkpoint in {out}: starting a new run")
    rewrite_log(log, start)
    rewrite_log(eval_log, start)

    def run_eval(at: int, epoch: int) -> None:
        result = {"step": at, "epoch": epoch, **evaluate()}
        with open(eval_log, "a") as f:
            f.write(json.dumps(result) + "\n")
        if cfg.progress:
            print(f"step {at}: held-out PSNR {result['psnr']:.2f} dB (blurred {result['psnr_blurred']:.2f}), "
                  f"SSIM {result['ssim']:.4f} (blurred {result['ssim_blurred']:.4f})", flush=True)

    if start >= total:
        if not final.exists():
            atomic_write(final, save_final)
        return final
    if start == 0:
        run_eval(0, 0)

    spe = cfg.steps_per_epoch
    batches = batch_stream(sampler, cfg.batch_size, start, total, cfg.workers)
    steps = range(start, total)
    bar = None
    if cfg.progress:
        from edgetrack.progress import progress

        steps = bar = progress(steps, desc=desc + (f" from step {start}" if start else ""), total=total - start,
                               unit="step")
    acc, acc_n = None, 0
    t0 = acc_t = time.perf_counter()
    logfile = open(log, "a", buffering=1)
    try:
        for k in steps:
            batch = next(batches)
            if batch["index"] != k:  # cannot happen; guards the resume/determinism promise
                raise EdgetrackError(f"the crop stream delivered batch {batch['index']} at step {k}")
            lr = lr_schedule(k, total, cfg.lr_start, cfg.lr_end, cfg.schedule)
            values = step(batch, lr)
            acc = values if acc is None else acc + values
            acc_n += 1
            done = k + 1
            epoch_end = done % spe == 0
            if done % cfg.log_every == 0 or epoch_end or done == total:
                means = (acc / acc_n).tolist()
                if not all(math.isfinite(v) for v in means):
                    raise EdgetrackError(f"the loss became {means[0]} at step {done} (lr {lr:.3g})", fix=nonfinite_fix)
                now = time.perf_counter()
                entry = {"step": done, "epoch": (done - 1) // spe + 1, "lr": lr,
                         **{key: round(v, 6) for key, v in zip(LOG_KEYS, means)},
                         "time": round(elapsed0 + now - t0, 3),
                         "pairs_per_s": round(acc_n * cfg.batch_size / max(now - acc_t, 1e-9), 1)}
                logfile.write(json.dumps(entry) + "\n")
                if bar is not None and hasattr(bar, "set_postfix"):
                    bar.set_postfix(content=f"{means[1]:.4f}", vs_blurred=f"{means[1] / max(means[2], 1e-12):.3f}",
                                    d=f"{means[4]:.3f}", lr=f"{lr:.2e}", refresh=False)
                acc, acc_n, acc_t = None, 0, now
            if epoch_end:
                epoch = done // spe
                if epoch % cfg.eval_every == 0 or done == total:
                    run_eval(done, epoch)
                if epoch % cfg.checkpoint_every == 0 or done == total:
                    save_checkpoint(epoch, done, elapsed0 + time.perf_counter() - t0)
        atomic_write(final, save_final)
    finally:
        logfile.close()
        if bar is not None and hasattr(bar, "close"):
            bar.close()
        batches.close()  # stops the crop threads
    return final


# ------------------------------------------------------------------------------------------------ entry points
def config_from_args(cls, args, framework: str, refused: dict[str, tuple[str, str]], extra: tuple[str, ...] = ()):
    """A ``cls`` (a trainer's ``DeblurTrainConfig``) from ``edgetrack train``'s parsed arguments; unset ones keep
    their defaults. ``refused``: attribute -> (flag, whose option it is) for options that do not apply here;
    ``extra``: attributes of this trainer's own fields to take over."""
    for attr, (flag, owner) in refused.items():
        if getattr(args, attr, None) not in (None, False):
            raise InvalidArgumentError(f"{flag} does not apply to {args.model} with {framework} (an option of {owner})",
                                       fix=f"drop {flag}; see edgetrack train --help")
    names = ("epochs", "steps_per_epoch", "batch_size", "lr_start", "lr_end", "device", "workers", "seed",
             "log_every", "frame_stride", *extra)
    fields = {name: getattr(args, name, None) for name in names}
    fields = {k: v for k, v in fields.items() if v is not None}
    fields.update(model=args.model, out=str(args.out))
    content = getattr(args, "content", None)
    if content not in (None, "default"):
        kind, _, path = str(content).partition(":")
        if kind != "perceptual" or not path:
            raise InvalidArgumentError(f"--content {content!r} is not understood",
                                       fix="write --content perceptual:SIAMFC_CHECKPOINT, or leave it out "
                                       "(L1 + SSIM + edge)")
        fields["perceptual"] = path
    crop_size = getattr(args, "crop_size", None)
    fields["crops"] = BlurCropConfig(crop_size=crop_size) if crop_size is not None else BlurCropConfig()
    return cls(**fields)


def train_from_args(args, cfg, train: Callable) -> Path:
    """``edgetrack train --model deblurgan-*``: train ``cfg`` on ``args``' data with ``train``; say where the result
    is."""
    if not getattr(args, "data", None):
        raise InvalidArgumentError("no training data", fix="pass --data synthetic:DIR or gopro:DIR (repeatable)")
    eval_specs = list(getattr(args, "eval_data", None) or [])
    final = train(cfg, args.data, eval_data=eval_specs or None, resume=bool(getattr(args, "resume", False)))
    print(f"final checkpoint: {final}\nlog: {Path(cfg.out) / 'log.jsonl'}\n"
          f"held-out PSNR/SSIM: {Path(cfg.out) / 'eval.jsonl'}")
    return final
