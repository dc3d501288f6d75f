"""Training Siamese trackers with PyTorch: pairs from :mod:`edgetrack.models.pairs`, SGD, safetensors checkpoints.

The paper's recipe (shared/papers/README.md): pairs of frames of one video, 50 epochs, batch 8, SGD with momentum
0.9 and weight decay 5e-4, the learning rate falling geometrically from 1e-2 to 1e-5 over the whole run — here per
step, ``lr(t) = lr_start · (lr_end / lr_start) ** (t / (T − 1))``, so a run of any length ends exactly at
``lr_end`` (siamfc-pytorch steps it per epoch). HSM-SiamFC is trained with the HSM loss (α = 0.6, γ = 2), plain
SiamFC with the balanced logistic loss.

Model families. Everything here is shared; what differs between families — building and saving the model, its
loss, the targets a batch needs beside the pair, the default augmentation — is a small hook object per family
(:data:`FAMILIES`): ``siamfc`` (HSM-SiamFC, SiamFC: label maps from the pair sampler) and ``siamrpn`` (SiamRPN with
EfficientNet-ECA or AlexNet: anchor targets from :mod:`edgetrack.models.rpn_targets`, computed next to the pairs in
the data-loader workers; cross-entropy (over the sampled anchors; with ``rpn-ohem`` also over each pair's hardest
negatives) + λ·smooth-L1, λ = ``reg_weight``; pysot's stronger scale jitter and shift,
:data:`~edgetrack.models.rpn_targets.RPN_PAIRS`). SiamRPN uses the same SGD recipe and schedule; pysot's recipe for
it differs (warm-up, lr 5e-3 -> 5e-4 over 20 epochs), pass those with --lr-start/--lr-end if wanted.

What a run writes into ``out``::

    config.json                         the TrainConfig (with steps_per_epoch and loss resolved)
    log.jsonl                           one line per logged step: step, epoch, lr, loss, time (s), pairs/s
    checkpoints/epoch-0001.safetensors  weights (load_siamfc / load_siamrpn), metadata: epoch, step, train_config
    checkpoints/epoch-0001.state.safetensors   SGD momentum buffers by parameter name, step, elapsed time
    final.safetensors                   weights at the end (what ``edgetrack eval --tracker checkpoint:PATH`` takes)

Resuming (``resume=True``) loads the newest epoch checkpoint and its state and continues at its step. Nothing else
needs restoring: the model has no random layers, the learning rate is a function of the step, and the pair stream's
batch ``k`` (with a family's targets, such as SiamRPN's sampled anchors) is a pure function of ``(seed, rank, k)``
(:mod:`edgetrack.models.pairs`), so the resumed run computes the same steps as an uninterrupted one.

Several processes (``torchrun --nproc_per_node N -m edgetrack train ...``): ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``
in the environment turn on DistributedDataParallel (NCCL on CUDA, gloo on the CPU), each rank drawing its own
pairs (seed ``(seed, rank)``), ``batch_size`` pairs per rank and step, and only rank 0 writing files. The learning
rate is not scaled with the number of ranks. SyncBatchNorm is not used, and not needed: each rank normalises its own
``batch_size`` pairs exactly as the paper's single-GPU batch of 8 was normalised, and DDP broadcasts rank 0's
running statistics to the others each step, so every rank evaluates the same model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edgetrack.errors import (
    BackendError,
    CheckpointError,
    EdgetrackError,
    InvalidArgumentError,
    MissingDependencyError,
    UnknownChoiceError,
    require,
)

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised on installs without the [torch] extra
    raise MissingDependencyError("PyTorch training and checkpoint:PATH trackers", "torch", extra="torch",
                                 detail=str(exc)) from exc

from edgetrack.models.pairs import CropCache, PairConfig, PairSampler, cache_file, open_sequences
from edgetrack.models.training import HSM_ALPHA, HSM_GAMMA, SiamFCFamily, SiamRPNFamily
from edgetrack.models.training import family_of as _family_of
from edgetrack.models.training import (  # the run folder, schedule and checks both trainers share
    TRAIN_STATE_FORMAT,
    check_resumable,
    config_record,
    config_from_dict,
    find_resume_point,
    lr_at,
    validate_common,
)
from edgetrack.models.training import atomic_write as _atomic
from edgetrack.models.training import ckpt_paths as _ckpt_paths
from edgetrack.models.training import rewrite_log as _rewrite_log

__all__ = ["TrainConfig", "train", "train_from_args", "config_from_args", "lr_at", "find_resume_point",
           "checkpoint_tracker", "PairBatches", "FAMILIES", "family_of"]

# Changing any other field between a run and its resumption would silently make a different run.
RESUMABLE_CHANGES = {"device", "workers", "out", "log_every", "progress", "amp", "channels_last", "checkpoint_every"}


# ------------------------------------------------------------------------------------------------ model families
class _SiamFCFamily(SiamFCFamily):
    framework = "torch"

    def loss(self, cfg: "TrainConfig", device):
        from edgetrack.models.torch.losses import build_loss

        loss_fn = build_loss(cfg.loss, **({"alpha": cfg.alpha, "gamma": cfg.gamma} if cfg.loss == "hsm" else {}))

        def compute(logits, batch):
            return loss_fn(logits.float(), _to(batch["labels"], device).unsqueeze(1))

        return compute


class _SiamRPNFamily(SiamRPNFamily):
    framework = "torch"

    def loss(self, cfg: "TrainConfig", device):
        from edgetrack.models.torch.siamrpn import rpn_loss

        def compute(outputs, batch):
            cls, loc = outputs
            return rpn_loss(cls.float(), loc.float(), _to(batch["cls"], device), _to(batch["loc"], device),
                            _to(batch["loc_weight"], device), reg_weight=cfg.reg_weight, **self.cls_loss(cfg))

        return compute


FAMILIES = {"siamfc": _SiamFCFamily(), "siamrpn": _SiamRPNFamily()}


def family_of(model: str):
    """The training hooks of the family ``model`` (a preset name) belongs to."""
    return _family_of(FAMILIES, model)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``loss=None`` picks the family's loss: ``logistic`` for plain ``siamfc``, ``hsm`` for the
    other SiamFC models, ``rpn`` for SiamRPN (``reg_weight``: its λ, default 1.2; None for SiamFC). SiamRPN's other
    losses: ``rpn-hsm`` (``alpha``, ``gamma``) and ``rpn-ohem`` (``neg_random`` random and the ``neg_hard`` hardest
    negatives per pair, default 16 and 32, the hardest taken ``hard_min_dist`` target sizes or more from the target,
    default 0; None for every other loss), :func:`~edgetrack.models.torch.siamrpn.rpn_loss`.

    ``steps_per_epoch=None``: one pair per cached frame and epoch (``len(cache) // (batch_size · ranks)``).
    ``batch_size`` is per rank. ``amp``: bf16 autocast (CUDA only). ``checkpoint_every``: epochs between
    checkpoints (the last epoch always gets one). ``log_every``: steps per log line (the mean loss over them).
    ``frame_stride``: crop every n-th annotated frame only (long videos). ``pairs``: the
    :class:`~edgetrack.models.pairs.PairConfig` of the crop cache and the augmentation (None: the family's
    default, ``PairConfig()`` for SiamFC, :data:`~edgetrack.models.rpn_targets.RPN_PAIRS` for SiamRPN).
    """

    model: str = "siamfc-hsm"
    loss: str | None = None
    alpha: float = HSM_ALPHA
    gamma: float = HSM_GAMMA
    epochs: int = 50
    steps_per_epoch: int | None = None
    batch_size: int = 8
    lr_start: float = 1e-2
    lr_end: float = 1e-5
    momentum: float = 0.9
    weight_decay: float = 5e-4
    device: str = "cpu"
    workers: int = 0
    seed: int = 0
    out: str = "runs/train"
    checkpoint_every: int = 1
    amp: bool = False
    channels_last: bool = False
    log_every: int = 10
    progress: bool = True
    frame_stride: int = 1
    pairs: PairConfig | None = None
    reg_weight: float | None = None
    neg_random: int | None = None
    neg_hard: int | None = None
    hard_min_dist: float | None = None
    init_backbone: str | None = None
    freeze_backbone: bool = False

    def __post_init__(self):
        family = family_of(self.model)
        if self.loss is None:
            object.__setattr__(self, "loss", family.default_loss(self.model))
        if self.loss not in family.losses():
            raise UnknownChoiceError("loss", self.loss, family.losses(), fix=f"{self.model} trains with these")
        if self.pairs is None:
            object.__setattr__(self, "pairs", family.default_pairs())
        if self.reg_weight is None:
            object.__setattr__(self, "reg_weight", family.default_reg_weight)
        elif family.default_reg_weight is None:
            raise InvalidArgumentError(f"reg_weight is for models with a regression branch; {self.model} has none",
                                       fix="leave reg_weight unset")
        elif not (isinstance(self.reg_weight, (int, float)) and math.isfinite(self.reg_weight)
                  and self.reg_weight >= 0):
            raise InvalidArgumentError(f"TrainConfig.reg_weight must be a finite number >= 0, got {self.reg_weight!r}")
        validate_common(self)

    def to_dict(self) -> dict:
        return config_record(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return config_from_dict(cls, data)


# ------------------------------------------------------------------------------------------------ data loading
class PairBatches(torch.utils.data.IterableDataset):
    """Batches ``start .. stop − 1`` of a :class:`PairSampler` stream, split over DataLoader workers in order.

    Use with ``DataLoader(..., batch_size=None)``: the sampler already makes whole batches (no per-pair collation).
    Worker ``w`` of ``W`` makes batches ``start + w, start + w + W, ...``; the DataLoader hands out workers' results
    round-robin, so the batches arrive in stream order whatever ``W`` is (the trainer checks each batch's index).
    ``transform`` (optional): applied to every batch in the worker that made it (a family's training targets).
    """

    def __init__(self, sampler: PairSampler, batch_size: int, start: int, stop: int, transform=None):
        self.sampler, self.batch_size, self.start, self.stop = sampler, batch_size, start, stop
        self.transform = transform

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w, n = (info.id, info.num_workers) if info is not None else (0, 1)
        batches = self.sampler.batches(self.batch_size, start=self.start + w, stop=self.stop, step=n)
        return batches if self.transform is None else map(self.transform, batches)


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # every worker is one core's worth of cropping; OpenCV threads would oversubscribe
    torch.set_num_threads(1)


def _batch_stream(sampler: PairSampler, cfg: TrainConfig, start: int, stop: int, pin: bool, transform=None):
    dataset = PairBatches(sampler, cfg.batch_size, start, stop, transform)
    if cfg.workers == 0:
        return iter(dataset)
    import multiprocessing as mp

    # fork shares the (possibly many-GB) crop cache with the workers copy-on-write; spawn would pickle it to each.
    ctx = "fork" if "fork" in mp.get_all_start_methods() else None
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=cfg.workers, pin_memory=pin, worker_init_fn=_worker_init,
        multiprocessing_context=ctx, prefetch_factor=4, persistent_workers=False,
    )
    return iter(loader)


# ------------------------------------------------------------------------------------------------ distributed
@dataclass(frozen=True)
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "_Dist":
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise InvalidArgumentError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers ({exc})",
                                       fix="launch with torchrun, which sets them") from exc
        if world < 1 or not 0 <= rank < world:
            raise InvalidArgumentError(f"RANK {rank} is not within WORLD_SIZE {world}")
        return cls(world, rank, local)


def _barrier(dist_env: _Dist) -> None:
    if dist_env.enabled:
        torch.distributed.barrier()


def _device(cfg: TrainConfig, dist_env: _Dist) -> torch.device:
    from edgetrack.models.torch.siamfc_tracker import resolve_device

    device = resolve_device(cfg.device)
    if device.type == "cuda" and dist_env.enabled:
        if dist_env.local_rank >= torch.cuda.device_count():
            raise BackendError(f"LOCAL_RANK {dist_env.local_rank} has no GPU: {torch.cuda.device_count()} visible",
                               fix="start at most one process per GPU (torchrun --nproc_per_node)")
        device = torch.device("cuda", dist_env.local_rank)  # one GPU per process
    if cfg.amp and device.type != "cuda":
        raise InvalidArgumentError("amp (bf16 autocast) was asked for, but the device is the CPU",
                                   fix="use device='cuda', or leave amp off")
    return device


# ------------------------------------------------------------------------------------------------ checkpoints
def _save_checkpoint(model, optimizer, names: dict, out: Path, epoch: int, step: int, elapsed: float,
                     cfg: TrainConfig) -> Path:
    from safetensors.torch import save_file

    weights, state = _ckpt_paths(out, epoch)
    weights.parent.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "step": step, "train_config": cfg.to_dict()}
    save = family_of(cfg.model).save
    _atomic(weights, lambda p: save(model, p, meta))
    buffers = {}
    for p, name in names.items():
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            buffers[f"momentum.{name}"] = buf.detach().to("cpu", torch.float32).contiguous()
    info = {"format": TRAIN_STATE_FORMAT, "epoch": str(epoch), "step": str(step), "elapsed": repr(elapsed)}
    _atomic(state, lambda p: save_file(buffers, str(p), metadata=info))
    return weights


def _load_checkpoint(model, optimizer, names: dict, weights: Path, state: Path, device) -> tuple[int, float]:
    from safetensors import safe_open

    from edgetrack.models.torch.checkpoint import load_weights

    load_weights(model, weights)
    with safe_open(str(state), framework="pt") as f:
        info = dict(f.metadata() or {})
        if info.get("format") != TRAIN_STATE_FORMAT:
            raise CheckpointError(f"{str(state)!r} is not a training state file (format {info.get('format')!r})",
                                  fix="resume from a folder written by edgetrack train")
        keys = set(f.keys())
        for p, name in names.items():
            key = f"momentum.{name}"
            if key in keys:
                optimizer.state[p]["momentum_buffer"] = f.get_tensor(key).to(device)
    return int(info["step"]), float(info.get("elapsed", 0.0))


def _check_resumable(out: Path, cfg: TrainConfig) -> None:
    check_resumable(out, cfg.to_dict(), RESUMABLE_CHANGES)


# ------------------------------------------------------------------------------------------------ the trainer
def _get_cache(data, cfg: TrainConfig, cache_path, out: Path, dist_env: _Dist) -> CropCache:
    if isinstance(data, CropCache):
        return data
    path = cache_file(cache_path) if cache_path is not None else None
    if path is not None and path.is_file():
        return CropCache.load(path)
    if data is None:
        raise InvalidArgumentError("train() needs data: sequences, data sets, a CropCache, or an existing cache_path",
                                   fix="pass --data SPEC (or --cache PATH of a cache built before)")
    if dist_env.enabled:
        # One rank crops, the others read its file: cropping is the slow part and gives the same result on each.
        path = path or out / "pairs-cache.npz"
        if dist_env.main:
            _build_cache(data, cfg).save(path)
        _barrier(dist_env)
        return CropCache.load(path)
    cache = _build_cache(data, cfg)
    if path is not None:
        cache.save(path)
    return cache


def _build_cache(data, cfg: TrainConfig) -> CropCache:
    return CropCache.build(data, cfg.pairs, workers=cfg.workers, progress=cfg.progress, frame_stride=cfg.frame_stride)


def train(cfg: TrainConfig, data=None, *, cache_path: str | Path | None = None, resume: bool = False) -> Path:
    """Train ``cfg.model`` on ``data`` and return the path of ``final.safetensors`` (see the module docstring).

    ``data``: tracking sequences, Datasets of them, or a :class:`CropCache`. ``cache_path``: a crop cache file,
    read if it exists (``data`` may then be None), else written after cropping ``data``. ``resume``: continue the
    run in ``cfg.out`` from its newest checkpoint (starts afresh, with a message, if it has none).
    """
    if not isinstance(cfg, TrainConfig):
        raise InvalidArgumentError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    require("safetensors", feature="training checkpoints", extra="torch")
    dist_env = _Dist.from_env()
    device = _device(cfg, dist_env)
    created_group = False
    if dist_env.enabled and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created_group = True
    try:
        return _train(cfg, data, cache_path, resume, dist_env, device)
    finally:
        if created_group:
            torch.distributed.destroy_process_group()


def _train(cfg, data, cache_path, resume, dist_env: _Dist, device) -> Path:
    family = family_of(cfg.model)
    out = Path(cfg.out)
    final = out / "final.safetensors"
    resume_from = find_resume_point(out) if resume else None
    if not resume and (find_resume_point(out) is not None or final.exists()):
        raise InvalidArgumentError(f"{str(out)!r} already holds a training run",
                                   fix="pass resume=True (--resume) to continue it, or choose another out folder")
    if dist_env.main:
        out.mkdir(parents=True, exist_ok=True)
    _barrier(dist_env)

    cache = _get_cache(data, cfg, cache_path, out, dist_env)
    sampler = PairSampler(cache, cfg.pairs, seed=(cfg.seed, dist_env.rank))
    spe = cfg.steps_per_epoch or max(1, len(cache) // (cfg.batch_size * dist_env.world))
    cfg = dataclasses.replace(cfg, steps_per_epoch=spe)
    total = cfg.epochs * spe

    if resume_from is not None:
        _check_resumable(out, cfg)
    if dist_env.main:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank (DDP would broadcast rank 0's anyway)
    model = family.build(cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest kernels once
    loss_fn = family.loss(cfg, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr_start, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    names = {p: n for n, p in model.named_parameters()}

    start, elapsed0 = 0, 0.0
    log = out / "log.jsonl"
    if resume_from is not None:
        start, elapsed0 = _load_checkpoint(model, optimizer, names, *resume_from, device)
        if dist_env.main:
            print(f"resuming {out} at step {start} of {total} ({resume_from[0].name})")
            _rewrite_log(log, start)
    elif resume and dist_env.main:
        print(f"no checkpoint in {out}: starting a new run")
        _rewrite_log(log, 0)
    elif dist_env.main:
        _rewrite_log(log, 0)
    if start >= total:
        if dist_env.main and not final.exists():
            family.save(model, final, {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict()})
        _barrier(dist_env)
        return final

    net = model
    if dist_env.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    batches = _batch_stream(sampler, cfg, start, total, pin=device.type == "cuda",
                            transform=family.batch_transform(cfg, model, sampler.seed))
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

    steps = range(start, total)
    bar = None
    if dist_env.main and cfg.progress:
        from edgetrack.progress import progress

        desc = f"training {cfg.model}" + (f" from step {start}" if start else "")
        steps = bar = progress(steps, desc=desc, total=total - start, unit="step")

    model.train()
    t0 = time.perf_counter()
    acc = torch.zeros((), device=device)
    acc_n, acc_t = 0, t0
    logfile = open(log, "a", buffering=1) if dist_env.main else None
    try:
        for step in steps:
            batch = next(batches)
            if batch["index"] != step:  # cannot happen with PairBatches; guards the resume/determinism promise
                raise EdgetrackError(f"the pair stream delivered batch {batch['index']} at step {step}")
            lr = lr_at(step, total, cfg.lr_start, cfg.lr_end)
            for group in optimizer.param_groups:
                group["lr"] = lr
            z = _to(batch["z"], device, memory_format)
            x = _to(batch["x"], device, memory_format)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                outputs = net(z, x)
            loss = loss_fn(outputs, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            acc += loss.detach()
            acc_n += 1

            done = step + 1
            epoch_end = done % spe == 0
            if done % cfg.log_every == 0 or epoch_end or done == total:
                mean = acc / acc_n
                if dist_env.enabled:
                    torch.distributed.all_reduce(mean)
                    mean = mean / dist_env.world
                value = float(mean)
                if not math.isfinite(value):
                    raise EdgetrackError(f"the loss became {value} at step {done} (lr {lr:.3g})",
                                         fix="lower the learning rate (--lr-start), or train without --amp")
                now = time.perf_counter()
                if logfile is not None:
                    rate = acc_n * cfg.batch_size * dist_env.world / max(now - acc_t, 1e-9)
                    logfile.write(json.dumps({"step": done, "epoch": (done - 1) // spe + 1, "lr": lr, "loss": value,
                                              "time": round(elapsed0 + now - t0, 3),
                                              "pairs_per_s": round(rate, 1)}) + "\n")
                if bar is not None and hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", refresh=False)
                acc = torch.zeros((), device=device)
                acc_n, acc_t = 0, now
            if epoch_end:
                epoch = done // spe
                if dist_env.main and (epoch % cfg.checkpoint_every == 0 or done == total):
                    _save_checkpoint(model, optimizer, names, out, epoch, done, elapsed0 + time.perf_counter() - t0,
                                     cfg)
        if dist_env.main:
            meta = {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict()}
            _atomic(final, lambda p: family.save(model, p, meta))
    finally:
        if logfile is not None:
            logfile.close()
        if bar is not None and hasattr(bar, "close"):
            bar.close()
        del batches  # stops DataLoader workers
    _barrier(dist_env)
    return final


def _to(array, device, memory_format=torch.contiguous_format) -> torch.Tensor:
    t = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    return t.to(device, non_blocking=True, memory_format=memory_format)


# ------------------------------------------------------------------------------------------------ entry points
def config_from_args(args) -> TrainConfig:
    """A :class:`TrainConfig` from ``edgetrack train``'s parsed arguments (fields the user did not give keep
    their defaults)."""
    fields = {
        "model": args.model, "loss": args.loss, "alpha": args.alpha, "gamma": args.gamma, "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size, "lr_start": args.lr_start,
        "lr_end": args.lr_end, "device": args.device, "workers": args.workers, "seed": args.seed,
        "out": str(args.out), "amp": args.amp, "channels_last": args.channels_last, "log_every": args.log_every,
        "frame_stride": getattr(args, "frame_stride", None), "reg_weight": getattr(args, "reg_weight", None),
        "neg_random": getattr(args, "neg_random", None), "neg_hard": getattr(args, "neg_hard", None),
        "hard_min_dist": getattr(args, "hard_min_dist", None),
        "init_backbone": getattr(args, "init_backbone", None),
        "freeze_backbone": getattr(args, "freeze_backbone", None),
    }
    fields = {k: v for k, v in fields.items() if v is not None or k == "loss"}
    pair_fields = {"max_gap": getattr(args, "max_gap", None), "max_shift": getattr(args, "max_shift", None),
                   "blur_prob": getattr(args, "blur_prob", None)}
    pair_fields = {k: v for k, v in pair_fields.items() if v is not None}
    fields["pairs"] = dataclasses.replace(family_of(args.model).default_pairs(), **pair_fields)
    return TrainConfig(**fields)


def train_from_args(args) -> Path:
    """``edgetrack train --framework torch``: open the data, train, print where the result is."""
    cfg = config_from_args(args)
    cache_path = getattr(args, "cache", None)
    has_cache = cache_path is not None and cache_file(cache_path).is_file()
    if not args.data and not has_cache:
        raise InvalidArgumentError("no training data",
                                   fix="pass --data SPEC (repeatable), or --cache PATH of a cache built before")
    data = None if has_cache else open_sequences(args.data)
    final = train(cfg, data, cache_path=cache_path, resume=args.resume)
    if _Dist.from_env().main:
        print(f"final checkpoint: {final}\nlog: {Path(cfg.out) / 'log.jsonl'}")
    return final


# ------------------------------------------------------------------------------------------------ evaluation
class _BoxTracker:
    """Adapts :class:`TorchSiamFCTracker` (``update`` -> ``(box, score)``) to the evaluation runner (a box)."""

    def __init__(self, tracker):
        self.tracker = tracker

    def init(self, frame, box) -> None:
        self.tracker.init(frame, box)

    def update(self, frame):
        box, _score = self.tracker.update(frame)
        return box


def checkpoint_tracker(spec: str):
    """``checkpoint:PATH[#DEVICE]`` for :data:`edgetrack.evaluation.TRACKERS`: a factory of PyTorch SiamFC trackers.

    The checkpoint is loaded once, here, so a bad path fails before any sequence runs; the trackers share it.
    """
    from edgetrack.models.torch.siamfc import load_siamfc
    from edgetrack.models.torch.siamfc_tracker import TorchSiamFCTracker, resolve_device

    require("safetensors", feature="reading checkpoints", extra="torch")
    _, _, rest = spec.partition(":")
    path, _, device = rest.partition("#")
    if not path:
        raise InvalidArgumentError(f"tracker spec {spec!r} names no checkpoint",
                                   fix="write checkpoint:PATH (optionally checkpoint:PATH#cuda)")
    dev = resolve_device(device or "cpu")
    model = load_siamfc(path).to(dev)

    def factory():
        return _BoxTracker(TorchSiamFCTracker(model, device=str(dev)))

    factory.tracker_name = f"{model.config.name}-{Path(path).stem}"  # type: ignore[attr-defined]
    return factory
