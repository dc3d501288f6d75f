"""Training DeblurGAN-v2 with PyTorch: aligned crop pairs from :mod:`edgetrack.models.blur_pairs`, Adam for the
generator and the double-scale discriminator, RaLSGAN + content loss, PSNR/SSIM on a held-out set.

DeblurGAN-v2's recipe: Adam at 1e-4 for both networks, decayed towards 1e-7 (here per step over the whole run,
cosine by default, so a run of any length ends exactly at ``lr_end``); adversarial weight 0.001; the generator's
loss = content + 0.001 · RaLSGAN (see :mod:`edgetrack.models.torch.deblurgan` for the content terms that replace
its VGG loss). Each step updates the discriminator on (sharp, generated.detach()) first, then the generator
against the updated discriminator, as the authors' trainer does. ``adv_weight=0`` trains the generator on the
content loss alone (no discriminator is built).

The run folder is the SiamFC trainer's (:mod:`edgetrack.models.training`)::

    config.json                         the DeblurTrainConfig (steps_per_epoch resolved)
    log.jsonl                           one line per logged step: step, epoch, lr, loss (G total), content,
                                        content_blurred (the content loss of the blurred input itself: the
                                        do-nothing baseline on the same crops), adv, loss_d, l1, ssim_loss, edge,
                                        time (s), pairs/s
    eval.jsonl                          held-out PSNR/SSIM: step 0 (the untrained generator, which is the
                                        identity) and every ``eval_every`` epochs: psnr, ssim of the output vs sharp
                                        and psnr_blurred, ssim_blurred of the input vs sharp (the do-nothing baseline)
    checkpoints/epoch-0001.safetensors  generator weights (loadable by load_deblurgan), metadata: epoch, step, config
    checkpoints/epoch-0001.state.safetensors   discriminator weights, both Adams' moments, step, elapsed time
    final.safetensors                   the generator at the end (what a bundle converts)

Metrics: PSNR (dB, peak 255) and SSIM (Gaussian 11×11, σ 1.5) per crop, averaged over the held-out crops, computed
by the small torch implementations in :mod:`edgetrack.models.torch.deblurgan` (they run on the training device;
``tests/test_deblurgan_torch.py`` checks them against ``skimage.metrics`` to 1e-4). The held-out crops are the
generator's float output in eval mode, fp32, unrounded — what the runtime hands the tracker.

Resuming (``resume=True``) restores the generator (BN statistics included), the discriminator and both Adams'
moments, and continues at the checkpoint's step; batch ``k`` of the crop stream is a pure function of
``(seed, k)`` and the learning rate of the step, so the resumed run computes the same steps as an uninterrupted one.
One process, one device; ``workers`` threads cut the crops ahead (see :func:`_batch_stream`). Measured on the H200
(deblurgan-v2, 255 crops, 6-12 crop threads): batch 8 ≈ 325 crops/s (40 steps/s), 16 ≈ 480, 32 ≈ 560; bf16
autocast (``amp``) gave no measurable gain at batch 8 — the step is launch-bound, not arithmetic-bound.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgetrack.errors import (
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
    raise MissingDependencyError("PyTorch training", "torch", extra="torch", detail=str(exc)) from exc

from edgetrack.models.blur_pairs import BlurCropConfig, BlurFrames, BlurPairSampler, eval_batch, open_blur_pairs
from edgetrack.models.training import (
    atomic_write,
    check_resumable,
    ckpt_paths,
    config_from_dict,
    find_resume_point,
    lr_at,
    rewrite_log,
)

__all__ = ["DeblurTrainConfig", "train", "train_from_args", "config_from_args", "lr_schedule", "evaluate",
           "SCHEDULES"]

STATE_FORMAT = "edgetrack-deblur-train-state-1"
SCHEDULES = ("cosine", "linear", "geometric")
# Changing any other field between a run and its resumption would silently make a different run.
RESUMABLE_CHANGES = {"device", "workers", "out", "log_every", "progress", "amp", "channels_last", "checkpoint_every",
                     "eval_every"}


@dataclass(frozen=True)
class DeblurTrainConfig:
    """One DeblurGAN-v2 training run.

    ``steps_per_epoch=None``: one crop per training frame pair and epoch (``frames // batch_size``).
    ``schedule``: the learning rate from ``lr_start`` to ``lr_end`` over the run, per step (``cosine``, ``linear``
    or ``geometric``), for both networks. Loss weights: ``l1_weight``, ``ssim_weight``, ``edge_weight`` (content),
    ``adv_weight`` (RaLSGAN; 0 = no discriminator), ``perceptual`` a SiamFC checkpoint whose frozen backbone adds a
    feature term of weight ``perceptual_weight``. ``workers``: threads that decode frames and cut crops ahead. Held-out set: ``eval_crops`` crops from the evaluation data, or
    (without it) from the last ``holdout`` share of the training sequences, evaluated at step 0 and every
    ``eval_every`` epochs. ``amp``: bf16 autocast (CUDA only). ``frame_stride``: decode every n-th frame only.
    ``crops``: the :class:`~edgetrack.models.blur_pairs.BlurCropConfig` (crop size, tracker/random mix, jitter).
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
    amp: bool = False
    channels_last: bool = False
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
                "frame_stride": 1, "eval_crops": 1, "eval_every": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidArgumentError(f"DeblurTrainConfig.{name} must be an integer >= {low}, got {value!r}")
        if self.steps_per_epoch is not None and (not isinstance(self.steps_per_epoch, int)
                                                 or self.steps_per_epoch < 1):
            raise InvalidArgumentError(f"DeblurTrainConfig.steps_per_epoch must be None or an integer >= 1, "
                                       f"got {self.steps_per_epoch!r}")
        for name in ("lr_start", "lr_end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidArgumentError(f"DeblurTrainConfig.{name} must be a finite number > 0, got {value!r}")
        for name in ("adv_weight", "l1_weight", "ssim_weight", "edge_weight", "perceptual_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"DeblurTrainConfig.{name} must be a finite number >= 0, got {value!r}")
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
    def from_dict(cls, data: dict) -> "DeblurTrainConfig":
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
def _frames(data, cfg: DeblurTrainConfig, what: str) -> BlurFrames:
    if isinstance(data, BlurFrames):
        return data
    if data is None or (isinstance(data, (list, tuple)) and not data):
        raise InvalidArgumentError(f"train() needs {what}: data set specs, BlurPairSources or BlurFrames",
                                   fix="pass --data synthetic:DIR (or gopro:DIR)")
    specs = [data] if isinstance(data, str) else list(data)
    sources = open_blur_pairs(specs) if all(isinstance(s, str) for s in specs) else specs
    return BlurFrames.build(sources, frame_stride=cfg.frame_stride, workers=cfg.workers, progress=cfg.progress)


def _split(data, eval_data, cfg: DeblurTrainConfig) -> tuple[BlurFrames, BlurFrames]:
    frames = _frames(data, cfg, "training data")
    if eval_data is not None and not (isinstance(eval_data, (list, tuple)) and not eval_data):
        return frames, _frames(eval_data, cfg, "evaluation data")
    train_frames, held = frames.split_holdout(cfg.holdout)
    if cfg.progress:
        print(f"no evaluation data given: holding out {len(held.names)} of {len(frames.names)} sequences "
              f"({', '.join(held.names[:3])}{', ...' if len(held.names) > 3 else ''})")
    return train_frames, held


def _batch_stream(sampler: BlurPairSampler, batch_size: int, start: int, stop: int, workers: int):
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


def _to_unit_range(array, device, memory_format=torch.contiguous_format) -> torch.Tensor:
    """uint8 NCHW (0..255) -> float32 in [-1, 1] on ``device``."""
    t = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    t = t.to(device, non_blocking=True).float().mul_(1.0 / 127.5).sub_(1.0)
    return t.contiguous(memory_format=memory_format)


# ------------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate(generator, batch: dict, device, batch_size: int = 8) -> dict:
    """Mean per-crop PSNR/SSIM of the generator's output (eval mode, fp32) and of the blurred input against sharp.

    ``batch``: :func:`~edgetrack.models.blur_pairs.eval_batch`'s arrays. Returns ``psnr``, ``ssim``,
    ``psnr_blurred``, ``ssim_blurred``, ``crops``.
    """
    from edgetrack.models.torch.deblurgan import psnr, ssim, to_unit

    was_training = generator.training
    generator.eval()
    sums = {"psnr": 0.0, "ssim": 0.0, "psnr_blurred": 0.0, "ssim_blurred": 0.0}
    n = len(batch["blurred"])
    try:
        for i in range(0, n, batch_size):
            xb = _to_unit_range(batch["blurred"][i:i + batch_size], device)
            xs = _to_unit_range(batch["sharp"][i:i + batch_size], device)
            out = to_unit(generator.restore(xb))
            xb, xs = to_unit(xb), to_unit(xs)
            sums["psnr"] += float(psnr(out, xs).sum())
            sums["ssim"] += float(ssim(out, xs).sum())
            sums["psnr_blurred"] += float(psnr(xb, xs).sum())
            sums["ssim_blurred"] += float(ssim(xb, xs).sum())
    finally:
        generator.train(was_training)
    return {**{k: round(v / n, 5) for k, v in sums.items()}, "crops": n}


# ------------------------------------------------------------------------------------------------ checkpoints
def _adam_tensors(prefix: str, optimizer, names: dict) -> dict:
    out = {}
    for p, name in names.items():
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                out[f"{prefix}.{key}.{name}"] = state[key].detach().to("cpu", torch.float32).contiguous()
    return out


def _save_checkpoint(out: Path, epoch: int, step: int, elapsed: float, cfg: DeblurTrainConfig, nets: dict) -> Path:
    from safetensors.torch import save_file

    from edgetrack.models.torch.checkpoint import checkpoint_state
    from edgetrack.models.torch.deblurgan import save_deblurgan

    weights, state = ckpt_paths(out, epoch)
    weights.parent.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "step": step, "train_config": cfg.to_dict()}
    atomic_write(weights, lambda p: save_deblurgan(nets["g"], p, meta))
    tensors = _adam_tensors("adam_g", nets["opt_g"], nets["names_g"])
    if nets["d"] is not None:
        tensors.update({f"disc.{k}": v.detach().to("cpu", torch.float32).contiguous()
                        for k, v in checkpoint_state(nets["d"]).items()})
        tensors.update(_adam_tensors("adam_d", nets["opt_d"], nets["names_d"]))
    info = {"format": STATE_FORMAT, "epoch": str(epoch), "step": str(step), "elapsed": repr(elapsed)}
    atomic_write(state, lambda p: save_file(tensors, str(p), metadata=info))
    return weights


def _restore_adam(prefix: str, optimizer, names: dict, f, keys: set, step: int, device) -> None:
    for p, name in names.items():
        a, b = f"{prefix}.exp_avg.{name}", f"{prefix}.exp_avg_sq.{name}"
        if a in keys and b in keys:
            optimizer.state[p] = {"step": torch.tensor(float(step)), "exp_avg": f.get_tensor(a).to(device),
                                  "exp_avg_sq": f.get_tensor(b).to(device)}


def _load_checkpoint(weights: Path, state: Path, nets: dict, device) -> tuple[int, float]:
    from safetensors import safe_open

    from edgetrack.models.torch.checkpoint import load_weights

    load_weights(nets["g"], weights)
    with safe_open(str(state), framework="pt") as f:
        info = dict(f.metadata() or {})
        if info.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{str(state)!r} is not a DeblurGAN training state (format {info.get('format')!r})",
                                  fix="resume from a folder written by edgetrack train --model deblurgan-*")
        step = int(info["step"])
        keys = set(f.keys())
        _restore_adam("adam_g", nets["opt_g"], nets["names_g"], f, keys, step, device)
        if nets["d"] is not None:
            d_state = nets["d"].state_dict()
            missing = [k for k in d_state if f"disc.{k}" not in keys]
            if missing:
                raise CheckpointError(f"{str(state)!r} has no discriminator weight {missing[0]!r}",
                                      fix="resume with the run's own settings (adv_weight > 0)")
            with torch.no_grad():
                for k, v in d_state.items():
                    v.copy_(f.get_tensor(f"disc.{k}"))
            _restore_adam("adam_d", nets["opt_d"], nets["names_d"], f, keys, step, device)
    return step, float(info.get("elapsed", 0.0))


# ------------------------------------------------------------------------------------------------ the trainer
def _device(cfg: DeblurTrainConfig) -> torch.device:
    from edgetrack.models.torch.siamfc_tracker import resolve_device

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise InvalidArgumentError("the DeblurGAN-v2 trainer runs as one process (WORLD_SIZE > 1 was set)",
                                   fix="start it with python -m edgetrack train, not torchrun")
    device = resolve_device(cfg.device)  # CUDA asked for and missing is an error, never a CPU fallback
    if cfg.amp and device.type != "cuda":
        raise InvalidArgumentError("amp (bf16 autocast) was asked for, but the device is the CPU",
                                   fix="use device='cuda', or leave amp off")
    return device


def train(cfg: DeblurTrainConfig, data=None, *, eval_data=None, resume: bool = False) -> Path:
    """Train ``cfg.model`` on ``data`` and return the path of ``final.safetensors`` (see the module docstring).

    ``data``/``eval_data``: data set specs (``synthetic:DIR``, ``gopro:DIR#train``), a list of
    :class:`~edgetrack.models.blur_pairs.BlurPairSource`, or :class:`~edgetrack.models.blur_pairs.BlurFrames`.
    Without ``eval_data`` the last ``cfg.holdout`` share of the training sequences is held out. ``resume``: continue
    the run in ``cfg.out`` from its newest checkpoint (starts afresh, with a message, if it has none).
    """
    if not isinstance(cfg, DeblurTrainConfig):
        raise InvalidArgumentError(f"cfg must be a DeblurTrainConfig, got {type(cfg).__name__}")
    require("safetensors", feature="training checkpoints", extra="torch")
    device = _device(cfg)
    from edgetrack.models.torch.deblurgan import (
        ContentLoss,
        TrackerPerceptual,
        build_deblurgan,
        build_discriminator,
        double_scale_loss,
        ralsgan_d_loss,
        ralsgan_g_loss,
        save_deblurgan,
    )

    out = Path(cfg.out)
    final = out / "final.safetensors"
    resume_from = find_resume_point(out) if resume else None
    if not resume and (find_resume_point(out) is not None or final.exists()):
        raise InvalidArgumentError(f"{str(out)!r} already holds a training run",
                                   fix="pass resume=True (--resume) to continue it, or choose another out folder")

    use_d = cfg.adv_weight > 0
    if use_d:
        smallest = build_discriminator(cfg.model).min_size()
        if cfg.crops.crop_size < smallest:
            raise InvalidArgumentError(
                f"crop size {cfg.crops.crop_size} is smaller than {cfg.model}'s discriminators accept ({smallest})",
                fix=f"use --crop-size {smallest} or more (255 is the tracker's search crop)")
    out.mkdir(parents=True, exist_ok=True)
    train_frames, held = _split(data, eval_data, cfg)
    sampler = BlurPairSampler(train_frames, cfg.crops, seed=cfg.seed)
    spe = cfg.steps_per_epoch or max(1, len(train_frames) // cfg.batch_size)
    cfg = dataclasses.replace(cfg, steps_per_epoch=spe)
    total = cfg.epochs * spe
    if resume_from is not None:
        check_resumable(out, cfg.to_dict(), RESUMABLE_CHANGES)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")

    torch.manual_seed(cfg.seed)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    g = build_deblurgan(cfg.model).to(device, memory_format=memory_format)
    d = build_discriminator(cfg.model).to(device, memory_format=memory_format) if use_d else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels once
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_start)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_start) if use_d else None
    nets = {"g": g, "d": d, "opt_g": opt_g, "opt_d": opt_d,
            "names_g": {p: n for n, p in g.named_parameters()},
            "names_d": {p: n for n, p in d.named_parameters()} if use_d else {}}
    perceptual = TrackerPerceptual(cfg.perceptual).to(device) if cfg.perceptual else None
    content_loss = ContentLoss(cfg.l1_weight, cfg.ssim_weight, cfg.edge_weight, perceptual, cfg.perceptual_weight)
    held_out = eval_batch(held, cfg.crops, cfg.eval_crops, seed=cfg.seed)

    log, eval_log = out / "log.jsonl", out / "eval.jsonl"
    start, elapsed0 = 0, 0.0
    if resume_from is not None:
        start, elapsed0 = _load_checkpoint(*resume_from, nets, device)
        print(f"resuming {out} at step {start} of {total} ({resume_from[0].name})")
    elif resume:
        print(f"no checkpoint in {out}: starting a new run")
    rewrite_log(log, start)
    rewrite_log(eval_log, start)

    def run_eval(step: int, epoch: int) -> None:
        result = {"step": step, "epoch": epoch, **evaluate(g, held_out, device, cfg.batch_size)}
        with open(eval_log, "a") as f:
            f.write(json.dumps(result) + "\n")
        if cfg.progress:
            print(f"step {step}: held-out PSNR {result['psnr']:.2f} dB (blurred {result['psnr_blurred']:.2f}), "
                  f"SSIM {result['ssim']:.4f} (blurred {result['ssim_blurred']:.4f})", flush=True)

    if start >= total:
        if not final.exists():
            save_deblurgan(g, final, {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict()})
        return final
    if start == 0:
        run_eval(0, 0)

    batches = _batch_stream(sampler, cfg.batch_size, start, total, cfg.workers)
    steps = range(start, total)
    bar = None
    if cfg.progress:
        from edgetrack.progress import progress

        desc = f"training {cfg.model}" + (f" from step {start}" if start else "")
        steps = bar = progress(steps, desc=desc, total=total - start, unit="step")

    keys = ("loss", "content", "content_blurred", "adv", "loss_d", "l1", "ssim_loss", "edge")
    acc = torch.zeros(len(keys), device=device)
    acc_n = 0
    g.train()
    if d is not None:
        d.train()
    t0 = time.perf_counter()
    acc_t = t0
    logfile = open(log, "a", buffering=1)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp)
    try:
        for step in steps:
            batch = next(batches)
            if batch["index"] != step:  # cannot happen; guards the resume/determinism promise
                raise EdgetrackError(f"the crop stream delivered batch {batch['index']} at step {step}")
            lr = lr_schedule(step, total, cfg.lr_start, cfg.lr_end, cfg.schedule)
            for opt in (opt_g, opt_d):
                if opt is not None:
                    for group in opt.param_groups:
                        group["lr"] = lr
            blurred = _to_unit_range(batch["blurred"], device, memory_format)
            sharp = _to_unit_range(batch["sharp"], device, memory_format)
            with torch.autocast(**autocast):
                fake = g.restore(blurred)

            zero = torch.zeros((), device=device)
            loss_d, adv = zero, zero
            if d is not None:
                d.requires_grad_(True)
                with torch.autocast(**autocast):
                    loss_d = double_scale_loss(ralsgan_d_loss, d(sharp), d(fake.detach()))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                d.requires_grad_(False)  # the generator's step needs gradients through D, not into it
                with torch.autocast(**autocast):
                    with torch.no_grad():
                        real_out = d(sharp)
                    adv = double_scale_loss(ralsgan_g_loss, real_out, d(fake))
            content, parts = content_loss(fake.float(), sharp)
            with torch.no_grad():  # the do-nothing baseline on the same crops: content / this < 1 is progress
                identity, _ = content_loss(blurred, sharp)
            loss_g = content + cfg.adv_weight * adv
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            acc += torch.stack([loss_g.detach(), content.detach(), identity, adv.detach().float(),
                                loss_d.detach().float(), parts["l1"].detach(), parts["ssim"].detach(),
                                parts["edge"].detach()])
            acc_n += 1
            done = step + 1
            epoch_end = done % spe == 0
            if done % cfg.log_every == 0 or epoch_end or done == total:
                means = (acc / acc_n).tolist()
                if not all(math.isfinite(v) for v in means):
                    raise EdgetrackError(f"the loss became {means[0]} at step {done} (lr {lr:.3g})",
                                         fix="lower the learning rate (--lr-start), or train without --amp")
                now = time.perf_counter()
                entry = {"step": done, "epoch": (done - 1) // spe + 1, "lr": lr,
                         **{k: round(v, 6) for k, v in zip(keys, means)},
                         "time": round(elapsed0 + now - t0, 3),
                         "pairs_per_s": round(acc_n * cfg.batch_size / max(now - acc_t, 1e-9), 1)}
                logfile.write(json.dumps(entry) + "\n")
                if bar is not None and hasattr(bar, "set_postfix"):
                    bar.set_postfix(content=f"{means[1]:.4f}", vs_blurred=f"{means[1] / max(means[2], 1e-12):.3f}",
                                    d=f"{means[4]:.3f}", lr=f"{lr:.2e}", refresh=False)
                acc = torch.zeros(len(keys), device=device)
                acc_n, acc_t = 0, now
            if epoch_end:
                epoch = done // spe
                if epoch % cfg.eval_every == 0 or done == total:
                    run_eval(done, epoch)
                if epoch % cfg.checkpoint_every == 0 or done == total:
                    _save_checkpoint(out, epoch, done, elapsed0 + time.perf_counter() - t0, cfg, nets)
        meta = {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict()}
        atomic_write(final, lambda p: save_deblurgan(g, p, meta))
    finally:
        logfile.close()
        if bar is not None and hasattr(bar, "close"):
            bar.close()
        batches.close()  # stops the crop threads
    return final


# ------------------------------------------------------------------------------------------------ entry points
# edgetrack train options that belong to the tracker trainers: refused rather than silently ignored.
_TRACKER_ONLY = {"loss": "--loss", "alpha": "--alpha", "gamma": "--gamma", "cache": "--cache",
                 "max_gap": "--max-gap", "max_shift": "--max-shift", "blur_prob": "--blur-prob",
                 "reg_weight": "--reg-weight"}


def config_from_args(args) -> DeblurTrainConfig:
    """A :class:`DeblurTrainConfig` from ``edgetrack train``'s parsed arguments (unset ones keep their defaults)."""
    for attr, flag in _TRACKER_ONLY.items():
        if getattr(args, attr, None) not in (None, False):
            raise InvalidArgumentError(f"{flag} does not apply to {args.model} (a deblurrer)",
                                       fix=f"drop {flag}; see edgetrack train --help")
    fields = {
        "model": args.model, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size, "lr_start": args.lr_start, "lr_end": args.lr_end, "device": args.device,
        "workers": args.workers, "seed": args.seed, "out": str(args.out), "amp": args.amp,
        "channels_last": args.channels_last, "log_every": args.log_every,
        "frame_stride": getattr(args, "frame_stride", None),
    }
    fields = {k: v for k, v in fields.items() if v is not None}
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
    return DeblurTrainConfig(**fields)


def train_from_args(args) -> Path:
    """``edgetrack train --model deblurgan-v2 --framework torch``: open the data, train, print where the result is."""
    cfg = config_from_args(args)
    if not args.data:
        raise InvalidArgumentError("no training data", fix="pass --data synthetic:DIR or gopro:DIR (repeatable)")
    eval_specs = list(getattr(args, "eval_data", None) or [])
    final = train(cfg, args.data, eval_data=eval_specs or None, resume=args.resume)
    print(f"final checkpoint: {final}\nlog: {Path(cfg.out) / 'log.jsonl'}\n"
          f"held-out PSNR/SSIM: {Path(cfg.out) / 'eval.jsonl'}")
    return final
