"""Training Siamese trackers with MindSpore: the twin of :mod:`edgetrack.models.torch.train`.

Same recipe, same pairs, same files. Pairs come from the framework-free :mod:`edgetrack.models.pairs` (batch ``k``
is a pure function of ``(seed, rank, k)``); SGD with momentum 0.9 and weight decay 5e-4 on *every* parameter (as
PyTorch's SGD; MindSpore's optimisers skip BatchNorm's gamma/beta unless the parameters are grouped, so they are);
the learning rate falls geometrically per step, ``lr(t) = lr_start · (lr_end / lr_start) ** (t / (T − 1))``. The
training step (forward, loss, gradients, SGD) is compiled into one graph with ``mindspore.jit``: on Ascend that is
what makes it fast.

Model families, as in the PyTorch trainer: everything here is shared, and what differs — building and saving the
model, its loss, the targets a batch needs beside the pair, the default augmentation — is a small hook object per
family (:data:`FAMILIES`). ``siamfc`` (HSM-SiamFC, SiamFC): the sampler's label maps, the HSM loss (α = 0.6, γ = 2)
for HSM-SiamFC, the balanced logistic loss for plain SiamFC. ``siamrpn`` (SiamRPN with EfficientNet-ECA or
AlexNet): the numpy anchor targets of :mod:`edgetrack.models.rpn_targets` (the very arrays the PyTorch trainer
uses), computed next to the pairs in the pair workers; cross-entropy + λ·smooth-L1 (λ = ``reg_weight``, 1.2), the
hardest negatives of ``rpn-ohem`` chosen inside the compiled step by the rule the PyTorch loss uses;
pysot's stronger scale jitter and shift (:data:`~edgetrack.models.rpn_targets.RPN_PAIRS`).

``device``: ``cpu``, ``gpu`` (``cuda`` is accepted for it) or ``ascend`` — the production target, Ascend 910 —
handed to ``mindspore.set_context(device_target=...)``. A device this MindSpore cannot use is a
:class:`~edgetrack.errors.BackendError`, never a silent run on the CPU.

What a run writes into ``out`` (as the PyTorch trainer, so ``edgetrack eval`` and the converters take either)::

    config.json                         the TrainConfig (steps_per_epoch and loss resolved, framework: mindspore)
    log.jsonl                           one line per logged step: step, epoch, lr, loss, time (s), pairs/s
    checkpoints/epoch-0001.safetensors  weights in the shared format (either framework's load_siamfc /
                                        load_siamrpn reads them)
    checkpoints/epoch-0001.state.safetensors   SGD momentum buffers under the parameters' checkpoint names
    final.safetensors                   weights at the end

Resuming (``resume=True``) loads the newest epoch checkpoint and its momentum buffers and continues at its step; the
learning rate is a function of the step and the pair stream (with a family's targets, such as SiamRPN's sampled
anchors) is addressable by batch number, so the resumed run computes the steps an uninterrupted one would. The state file has the PyTorch trainer's format (momentum buffers
``momentum.<checkpoint key>``): both SGDs keep ``buf = momentum · buf + grad``.

Several devices: launch with MindSpore's launcher, e.g. ::

    msrun --worker_num 8 --local_worker_num 8 --master_port 8118 --log_dir msrun_log \\
        -m edgetrack train --framework mindspore --device ascend --model siamfc-hsm --data ... --out runs/hsm

``msrun`` sets ``MS_ROLE=MS_WORKER`` and ``MS_WORKER_NUM`` in every worker; when they say more than one worker,
the trainer calls ``mindspore.communication.init()`` and
``set_auto_parallel_context(parallel_mode=DATA_PARALLEL, gradients_mean=True)``, averages the gradients over the
workers with ``nn.DistributedGradReducer`` in the compiled step, gives each worker its own pair stream
(seed ``(seed, rank)``, ``batch_size`` pairs per worker and step) and lets rank 0 alone write files. The learning
rate is not scaled with the number of workers. BatchNorm normalises each worker's own batch (as the paper's single
batch of 8); each worker keeps its own running statistics, and the checkpoints hold rank 0's. (Not exercised by
the tests here: this machine has one CPU device.)

Why ``ONEDNN_MAX_CPU_ISA`` may be set: see :mod:`edgetrack.models.mindspore` (CPU convolutions, 100× faster).
"""
from __future__ import annotations

import collections
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
    import mindspore as ms
    from mindspore import nn, ops
except ImportError as exc:  # pragma: no cover - exercised on installs without the [mindspore] extra
    raise MissingDependencyError("MindSpore training", "mindspore", extra="mindspore", detail=str(exc)) from exc

import numpy as np

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
           "set_device", "DEVICES", "FAMILIES", "family_of"]

# Changing any other field between a run and its resumption would silently make a different run.
RESUMABLE_CHANGES = {"device", "workers", "out", "log_every", "progress", "checkpoint_every", "jit"}
# edgetrack's device names -> MindSpore's device_target.
DEVICES = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "ascend": "Ascend"}


# ------------------------------------------------------------------------------------------------ model families
# The hooks' names and meanings are the PyTorch trainer's; ``objective`` and ``targets`` are this trainer's form of
# its ``loss``: the compiled step calls ``objective(model(z, x), *targets(batch))``, so everything it feeds on is a
# tensor argument of the graph.
class _SiamFCFamily(SiamFCFamily):
    framework = "mindspore"

    def objective(self, cfg: "TrainConfig"):
        from edgetrack.models.mindspore.losses import build_loss

        return build_loss(cfg.loss, **({"alpha": cfg.alpha, "gamma": cfg.gamma} if cfg.loss == "hsm" else {}))

    def targets(self, batch: dict) -> tuple:
        return (ms.Tensor(batch["labels"][:, None]),)


class _SiamRPNFamily(SiamRPNFamily):
    framework = "mindspore"

    def objective(self, cfg: "TrainConfig"):
        from edgetrack.models.mindspore.siamrpn import RPNLoss

        loss = RPNLoss(reg_weight=cfg.reg_weight, **self.cls_loss(cfg))

        def objective(outputs, cls_target, loc_target, loc_weight):
            return loss(outputs[0], outputs[1], cls_target, loc_target, loc_weight)

        return objective

    def targets(self, batch: dict) -> tuple:
        # The class labels go in as float32 (1 / 0 / −1, exact): int64 tensors are poorly supported on Ascend.
        return (ms.Tensor(batch["cls"].astype(np.float32)), ms.Tensor(batch["loc"]), ms.Tensor(batch["loc_weight"]))


FAMILIES = {"siamfc": _SiamFCFamily(), "siamrpn": _SiamRPNFamily()}


def family_of(model: str):
    """The training hooks of the family ``model`` (a preset name) belongs to."""
    return _family_of(FAMILIES, model)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (the PyTorch trainer's fields, less its CUDA-only ``amp``/``channels_last``).

    ``loss=None`` picks the family's loss: ``logistic`` for plain ``siamfc``, ``hsm`` for the other SiamFC models,
    ``rpn`` for SiamRPN (``reg_weight``: its λ, default 1.2; None for SiamFC; ``rpn-hsm`` and ``rpn-ohem`` with
    ``neg_random`` / ``neg_hard`` / ``hard_min_dist`` as in the PyTorch trainer). ``steps_per_epoch=None``: one pair per
    cached frame and epoch (``len(cache) // (batch_size · workers of the launcher)``). ``batch_size`` is per device.
    ``device``: ``cpu``, ``gpu`` or ``ascend``. ``checkpoint_every``: epochs between checkpoints (the last epoch
    always gets one). ``log_every``: steps per log line (the mean loss over them). ``frame_stride``: crop every n-th
    annotated frame only. ``jit``: compile the training step into one graph (off: step by step, for debugging).
    ``pairs``: the :class:`~edgetrack.models.pairs.PairConfig` of the crop cache and the augmentation (None: the
    family's default, ``PairConfig()`` for SiamFC, :data:`~edgetrack.models.rpn_targets.RPN_PAIRS` for SiamRPN).
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
    log_every: int = 10
    progress: bool = True
    frame_stride: int = 1
    jit: bool = True
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
        elif not (isinstance(self.reg_weight, (int, float)) and not isinstance(self.reg_weight, bool)
                  and math.isfinite(self.reg_weight) and self.reg_weight >= 0):
            raise InvalidArgumentError(f"TrainConfig.reg_weight must be a finite number >= 0, got {self.reg_weight!r}")
        device = str(self.device).lower()
        if device not in DEVICES:
            raise UnknownChoiceError("MindSpore device", self.device, DEVICES, fix="pass --device cpu, gpu or ascend")
        object.__setattr__(self, "device", device)
        validate_common(self)

    def to_dict(self) -> dict:
        return config_record(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return config_from_dict(cls, data)


# ------------------------------------------------------------------------------------------------ device
def set_device(device: str) -> str:
    """Point MindSpore at ``device`` (cpu, gpu/cuda, ascend); returns MindSpore's name for it.

    A device this MindSpore build or machine cannot use raises :class:`BackendError` — never a CPU fallback.
    """
    key = str(device).lower()
    if key not in DEVICES:
        raise UnknownChoiceError("MindSpore device", device, DEVICES, fix="pass --device cpu, gpu or ascend")
    target = DEVICES[key]
    available = None
    hal = getattr(ms, "hal", None)
    if hal is not None and hasattr(hal, "is_available"):
        try:
            available = bool(hal.is_available(target))
        except Exception:  # noqa: BLE001 - an API that cannot answer is not an answer; set_context decides
            available = None
    if available is False:
        raise BackendError(_no_device_message(target), fix=_device_fix(target))
    try:
        ms.set_context(device_target=target)
    except (RuntimeError, ValueError) as exc:
        raise BackendError(f"{_no_device_message(target)} ({str(exc).splitlines()[0]})",
                           fix=_device_fix(target)) from exc
    got = ms.get_context("device_target")
    if got != target:
        raise BackendError(f"asked MindSpore for {target}, but it runs on {got}", fix=_device_fix(target))
    return target


def _no_device_message(target: str) -> str:
    return f"device {target!r} was asked for, but this MindSpore ({ms.__version__}) cannot use it here"


def _device_fix(target: str) -> str:
    if target == "Ascend":
        return ("run on an Ascend host with CANN and the Ascend build of MindSpore (source the CANN set_env.sh), "
                "or pass --device cpu")
    if target == "GPU":
        return "install MindSpore's GPU build on a machine with an NVIDIA GPU and CUDA, or pass --device cpu"
    return "check the MindSpore installation"


# ------------------------------------------------------------------------------------------------ distributed
@dataclass(frozen=True)
class _Dist:
    world: int = 1
    rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _launched_workers() -> int:
    """How many workers msrun (MindSpore's dynamic-cluster launcher) started, 1 when not launched by it."""
    if os.environ.get("MS_ROLE") != "MS_WORKER":
        return 1
    try:
        return max(1, int(os.environ.get("MS_WORKER_NUM", "1")))
    except ValueError as exc:
        raise InvalidArgumentError(f"MS_WORKER_NUM must be an integer, got {os.environ.get('MS_WORKER_NUM')!r}",
                                   fix="launch with msrun, which sets it") from exc


def _init_distributed() -> _Dist:
    if _launched_workers() <= 1:
        return _Dist()
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return _Dist(world=get_group_size(), rank=get_rank())


# ------------------------------------------------------------------------------------------------ data loading
def _batch_stream(sampler: PairSampler, batch_size: int, start: int, stop: int, workers: int, transform=None):
    """Batches ``start .. stop − 1`` in order; ``workers`` > 0 makes them in that many threads, a few ahead.

    ``transform`` (optional): applied to every batch where it is made (a family's training targets), in the worker.

    Threads, not processes: the crop cache is shared without copying, and forking a process that has already run
    MindSpore's, PyTorch's or OpenCV's thread pools can deadlock the child (seen here: forked pair workers hung
    under pytest-xdist once torch had been imported). OpenCV's warps and numpy's array work release the GIL, so
    the threads do run in parallel. The stream is the same for any number of workers (batch ``k`` depends on ``k``
    only).
    """
    if workers == 0:
        for batch in sampler.batches(batch_size, start=start, stop=stop):
            yield batch if transform is None else transform(batch)
        return
    from concurrent.futures import ThreadPoolExecutor

    def make(k: int) -> dict:
        batch = sampler.sample_at(k, batch_size)
        return batch if transform is None else transform(batch)

    ahead = 2 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pairs") as pool:
        pending: collections.deque = collections.deque()
        k = start
        try:
            while k < stop or pending:
                while k < stop and len(pending) < ahead:
                    pending.append(pool.submit(make, k))
                    k += 1
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


# ------------------------------------------------------------------------------------------------ checkpoints
class _Momentum:
    """The SGD momentum buffers (``accum``) and first-step flags (``stat``) by the parameters' checkpoint keys."""

    def __init__(self, model, optimizer):
        from edgetrack.models.mindspore.checkpoint import checkpoint_state

        key_of = {id(p): k for k, p in checkpoint_state(model).items()}
        self.slots = {}
        for param, accum, stat in zip(optimizer.parameters, optimizer.accum, optimizer.stat, strict=True):
            self.slots[key_of[id(param)]] = (accum, stat)

    def save(self, path: Path, info: dict) -> None:
        from safetensors.numpy import save_file

        buffers = {}
        for key, (accum, stat) in self.slots.items():
            if float(stat.asnumpy().reshape(-1)[0]) == 0.0:  # stat 1: no step taken, no buffer (as PyTorch)
                buffers[f"momentum.{key}"] = np.ascontiguousarray(accum.asnumpy(), dtype=np.float32)
        save_file(buffers, str(path), metadata=info)

    def load(self, path: Path) -> dict:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            info = dict(f.metadata() or {})
            if info.get("format") != TRAIN_STATE_FORMAT:
                raise CheckpointError(f"{str(path)!r} is not a training state file (format {info.get('format')!r})",
                                      fix="resume from a folder written by edgetrack train")
            keys = set(f.keys())
            for key, (accum, stat) in self.slots.items():
                name = f"momentum.{key}"
                if name not in keys:
                    continue
                value = f.get_tensor(name)
                if tuple(value.shape) != tuple(accum.shape):
                    raise CheckpointError(f"{str(path)!r}: {name!r} has shape {tuple(value.shape)}, the optimizer's "
                                          f"has {tuple(accum.shape)}", fix="resume with the run's own model")
                ops.assign(accum, ms.Tensor(value.astype(np.float32)))
                ops.assign(stat, ms.Tensor(np.zeros(stat.shape, np.float32)))  # 0: not the first step any more
        return info


def _save_checkpoint(model, momentum: _Momentum, out: Path, epoch: int, step: int, elapsed: float,
                     cfg: TrainConfig) -> Path:
    weights, state = _ckpt_paths(out, epoch)
    weights.parent.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "step": step, "train_config": cfg.to_dict(), "framework": "mindspore"}
    save = family_of(cfg.model).save
    _atomic(weights, lambda p: save(model, p, meta))
    info = {"format": TRAIN_STATE_FORMAT, "epoch": str(epoch), "step": str(step), "elapsed": repr(elapsed)}
    _atomic(state, lambda p: momentum.save(p, info))
    return weights


def _check_resumable(out: Path, cfg: TrainConfig) -> None:
    check_resumable(out, _config_record(cfg), RESUMABLE_CHANGES)


def _config_record(cfg: TrainConfig) -> dict:
    return {**cfg.to_dict(), "framework": "mindspore"}


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
        # Rank 0 crops, the others wait for its file: cropping is the slow part and gives the same result on each.
        path = path or out / "pairs-cache.npz"
        if dist_env.main:
            _build_cache(data, cfg).save(path)
        _wait_for(path)
        return CropCache.load(path)
    cache = _build_cache(data, cfg)
    if path is not None:
        cache.save(path)
    return cache


def _wait_for(path: Path, timeout: float = 24 * 3600.0) -> None:
    # CropCache.save writes a temporary name and renames it: the file appears complete or not at all.
    t0 = time.monotonic()
    while not path.is_file():
        if time.monotonic() - t0 > timeout:
            raise EdgetrackError(f"rank 0 did not write the crop cache {str(path)!r} in {timeout:.0f} s")
        time.sleep(2.0)


def _build_cache(data, cfg: TrainConfig) -> CropCache:
    return CropCache.build(data, cfg.pairs, workers=cfg.workers, progress=cfg.progress, frame_stride=cfg.frame_stride)


def _make_step(model, loss_fn, optimizer, dist_env: _Dist, compile_step: bool):
    """``step(z, x, *targets) -> loss``: ``loss_fn(model(z, x), *targets)``, its gradients and one SGD update."""

    def forward(z, x, *targets):
        return loss_fn(model(z, x), *targets)

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)
    if dist_env.enabled:
        # Mean and degree come from the auto-parallel context set in _init_distributed (gradients_mean=True).
        reducer = nn.DistributedGradReducer(optimizer.parameters)

        def step(z, x, *targets):
            loss, grads = grad_fn(z, x, *targets)
            optimizer(reducer(grads))
            return loss
    else:
        def step(z, x, *targets):
            loss, grads = grad_fn(z, x, *targets)
            optimizer(grads)
            return loss

    return ms.jit(step) if compile_step else step


def _mean_over_ranks(value: float, dist_env: _Dist) -> float:
    if not dist_env.enabled:
        return value
    total = ops.AllReduce()(ms.Tensor(np.array([value], np.float32)))
    return float(total.asnumpy()[0]) / dist_env.world


def train(cfg: TrainConfig, data=None, *, cache_path: str | Path | None = None, resume: bool = False) -> Path:
    """Train ``cfg.model`` on ``data`` with MindSpore and return the path of ``final.safetensors``.

    ``data``: tracking sequences, Datasets of them, or a :class:`CropCache`. ``cache_path``: a crop cache file,
    read if it exists (``data`` may then be None), else written after cropping ``data``. ``resume``: continue the
    run in ``cfg.out`` from its newest checkpoint (starts afresh, with a message, if it has none).
    """
    if not isinstance(cfg, TrainConfig):
        raise InvalidArgumentError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    require("safetensors", feature="training checkpoints", extra="mindspore")
    set_device(cfg.device)
    dist_env = _init_distributed()
    return _train(cfg, data, cache_path, resume, dist_env)


def _train(cfg: TrainConfig, data, cache_path, resume: bool, dist_env: _Dist) -> Path:
    family = family_of(cfg.model)
    out = Path(cfg.out)
    final = out / "final.safetensors"
    resume_from = find_resume_point(out) if resume else None
    if not resume and (find_resume_point(out) is not None or final.exists()):
        raise InvalidArgumentError(f"{str(out)!r} already holds a training run",
                                   fix="pass resume=True (--resume) to continue it, or choose another out folder")
    if dist_env.main:
        out.mkdir(parents=True, exist_ok=True)

    cache = _get_cache(data, cfg, cache_path, out, dist_env)
    sampler = PairSampler(cache, cfg.pairs, seed=(cfg.seed, dist_env.rank))
    spe = cfg.steps_per_epoch or max(1, len(cache) // (cfg.batch_size * dist_env.world))
    cfg = dataclasses.replace(cfg, steps_per_epoch=spe)
    total = cfg.epochs * spe

    if resume_from is not None:
        _check_resumable(out, cfg)
    if dist_env.main:
        (out / "config.json").write_text(json.dumps(_config_record(cfg), indent=2, sort_keys=True) + "\n")

    ms.set_seed(cfg.seed)  # the same initial weights on every rank
    model = family.build(cfg)
    loss_fn = family.objective(cfg)
    # One group with its own weight decay: decay applies to every parameter, BatchNorm's too (PyTorch's behaviour).
    groups = [{"params": model.trainable_params(), "weight_decay": cfg.weight_decay}]
    optimizer = nn.SGD(groups, learning_rate=cfg.lr_start, momentum=cfg.momentum)
    momentum = _Momentum(model, optimizer)

    start, elapsed0 = 0, 0.0
    log = out / "log.jsonl"
    if resume_from is not None:
        from edgetrack.models.mindspore.checkpoint import load_weights

        load_weights(model, resume_from[0])
        info = momentum.load(resume_from[1])
        start, elapsed0 = int(info["step"]), float(info.get("elapsed", 0.0))
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
            meta = {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict(), "framework": "mindspore"}
            _atomic(final, lambda p: family.save(model, p, meta))
        return final

    train_step = _make_step(model, loss_fn, optimizer, dist_env, cfg.jit)
    batches = _batch_stream(sampler, cfg.batch_size, start, total, cfg.workers,
                            transform=family.batch_transform(cfg, model, sampler.seed))

    steps = range(start, total)
    bar = None
    if dist_env.main and cfg.progress:
        from edgetrack.progress import progress

        desc = f"training {cfg.model} (MindSpore {ms.get_context('device_target')})" + (
            f" from step {start}" if start else "")
        steps = bar = progress(steps, desc=desc, total=total - start, unit="step")

    model.set_train(True)
    t0 = time.perf_counter()
    acc, acc_n, acc_t = 0.0, 0, t0
    logfile = open(log, "a", buffering=1) if dist_env.main else None
    try:
        for step in steps:
            batch = next(batches)
            if batch["index"] != step:  # cannot happen with _batch_stream; guards the resume/determinism promise
                raise EdgetrackError(f"the pair stream delivered batch {batch['index']} at step {step}")
            lr = lr_at(step, total, cfg.lr_start, cfg.lr_end)
            # ops.assign writes into the parameter the compiled step reads; Parameter.set_data would swap in a new
            # tensor that an already compiled graph never sees (MindSpore 2.10: the rate would stay at lr_start).
            ops.assign(optimizer.learning_rate, ms.Tensor(lr, ms.float32))
            loss = train_step(ms.Tensor(batch["z"]), ms.Tensor(batch["x"]), *family.targets(batch))
            acc += float(loss.asnumpy())
            acc_n += 1

            done = step + 1
            epoch_end = done % spe == 0
            if done % cfg.log_every == 0 or epoch_end or done == total:
                value = _mean_over_ranks(acc / acc_n, dist_env)
                if not math.isfinite(value):
                    raise EdgetrackError(f"the loss became {value} at step {done} (lr {lr:.3g})",
                                         fix="lower the learning rate (--lr-start)")
                now = time.perf_counter()
                if logfile is not None:
                    rate = acc_n * cfg.batch_size * dist_env.world / max(now - acc_t, 1e-9)
                    logfile.write(json.dumps({"step": done, "epoch": (done - 1) // spe + 1, "lr": lr, "loss": value,
                                              "time": round(elapsed0 + now - t0, 3),
                                              "pairs_per_s": round(rate, 1)}) + "\n")
                if bar is not None and hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", refresh=False)
                acc, acc_n, acc_t = 0.0, 0, now
            if epoch_end:
                epoch = done // spe
                if dist_env.main and (epoch % cfg.checkpoint_every == 0 or done == total):
                    _save_checkpoint(model, momentum, out, epoch, done, elapsed0 + time.perf_counter() - t0, cfg)
        if dist_env.main:
            meta = {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict(), "framework": "mindspore"}
            _atomic(final, lambda p: family.save(model, p, meta))
    finally:
        if logfile is not None:
            logfile.close()
        if bar is not None and hasattr(bar, "close"):
            bar.close()
        batches.close()  # stops the pair workers
    return final


# ------------------------------------------------------------------------------------------------ entry points
def config_from_args(args) -> TrainConfig:
    """A :class:`TrainConfig` from ``edgetrack train``'s parsed arguments (fields not given keep their defaults).

    ``--amp`` and ``--channels-last`` are PyTorch/CUDA options: asked of this trainer they are an error, not ignored.
    """
    for flag, name in (("amp", "--amp"), ("channels_last", "--channels-last")):
        if getattr(args, flag, None):
            raise InvalidArgumentError(f"{name} is an option of the PyTorch trainer; the MindSpore trainer has none",
                                       fix=f"drop {name}, or train with --framework torch")
    fields = {
        "model": args.model, "loss": getattr(args, "loss", None), "alpha": getattr(args, "alpha", None),
        "gamma": getattr(args, "gamma", None), "epochs": getattr(args, "epochs", None),
        "steps_per_epoch": getattr(args, "steps_per_epoch", None), "batch_size": getattr(args, "batch_size", None),
        "lr_start": getattr(args, "lr_start", None), "lr_end": getattr(args, "lr_end", None),
        "device": getattr(args, "device", None), "workers": getattr(args, "workers", None),
        "seed": getattr(args, "seed", None), "out": str(args.out), "log_every": getattr(args, "log_every", None),
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
    """``edgetrack train --framework mindspore``: open the data, train, print where the result is."""
    cfg = config_from_args(args)
    cache_path = getattr(args, "cache", None)
    has_cache = cache_path is not None and cache_file(cache_path).is_file()
    if not getattr(args, "data", None) and not has_cache:
        raise InvalidArgumentError("no training data",
                                   fix="pass --data SPEC (repeatable), or --cache PATH of a cache built before")
    data = None if has_cache else open_sequences(args.data)
    final = train(cfg, data, cache_path=cache_path, resume=bool(getattr(args, "resume", False)))
    if _launched_workers() <= 1 or _rank_from_env() == 0:
        print(f"final checkpoint: {final}\nlog: {Path(cfg.out) / 'log.jsonl'}")
    return final


def _rank_from_env() -> int:
    try:
        from mindspore.communication import get_rank

        return int(get_rank())
    except Exception:  # noqa: BLE001 - not initialised: a single process
        return 0
