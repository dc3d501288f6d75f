"""Training DeblurGAN-v2 with PyTorch: aligned crop pairs from :mod:`edgetrack.models.blur_pairs`, Adam for the
generator and the double-scale discriminator, RaLSGAN + content loss, PSNR/SSIM on a held-out set.

DeblurGAN-v2's recipe: Adam at 1e-4 for both networks, decayed towards 1e-7 (here per step over the whole run,
cosine by default, so a run of any length ends exactly at ``lr_end``); adversarial weight 0.001; the generator's
loss = content + 0.001 · RaLSGAN (see :mod:`edgetrack.models.torch.deblurgan` for the content terms that replace
its VGG loss). Each step updates the discriminator on (sharp, generated.detach()) first, then the generator
against the updated discriminator, as the authors' trainer does. ``adv_weight=0`` trains the generator on the
content loss alone (no discriminator is built).

The run folder is the SiamFC trainer's (:mod:`edgetrack.models.training`); what does not need PyTorch (the
configuration's shared fields, the schedule, the data, the loop's bookkeeping) is in
:mod:`edgetrack.models.deblur_training`, shared with the MindSpore twin::

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
One process, one device; ``workers`` threads cut the crops ahead (see
:func:`~edgetrack.models.deblur_training.batch_stream`). Measured on the H200
(deblurgan-v2, 255 crops, 6-12 crop threads): batch 8 ≈ 325 crops/s (40 steps/s), 16 ≈ 480, 32 ≈ 560; bf16
autocast (``amp``) gave no measurable gain at batch 8 — the step is launch-bound, not arithmetic-bound.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgetrack.errors import InvalidArgumentError, MissingDependencyError, require

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised on installs without the [torch] extra
    raise MissingDependencyError("PyTorch training", "torch", extra="torch", detail=str(exc)) from exc

from edgetrack.models import deblur_training as shared
from edgetrack.models.deblur_training import (  # noqa: F401 - re-exported: importable from here as before
    LOG_KEYS,
    SCHEDULES,
    STATE_FORMAT,
    DeblurTrainConfigBase,
    lr_schedule,
)
from edgetrack.models.deblur_training import batch_stream as _batch_stream  # noqa: F401 - re-exported
from edgetrack.models.training import find_resume_point  # noqa: F401 - re-exported

__all__ = ["DeblurTrainConfig", "train", "train_from_args", "config_from_args", "lr_schedule", "evaluate",
           "SCHEDULES"]

RESUMABLE_CHANGES = shared.RESUMABLE_CHANGES | {"amp", "channels_last"}


@dataclass(frozen=True)
class DeblurTrainConfig(DeblurTrainConfigBase):
    """One DeblurGAN-v2 training run with PyTorch: the shared fields
    (:class:`~edgetrack.models.deblur_training.DeblurTrainConfigBase`) plus ``amp`` (bf16 autocast, CUDA only) and
    ``channels_last`` (NHWC memory format)."""

    amp: bool = False
    channels_last: bool = False


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

    meta = {"epoch": epoch, "step": step, "train_config": cfg.to_dict()}
    tensors = _adam_tensors("adam_g", nets["opt_g"], nets["names_g"])
    if nets["d"] is not None:
        tensors.update({f"disc.{k}": v.detach().to("cpu", torch.float32).contiguous()
                        for k, v in checkpoint_state(nets["d"]).items()})
        tensors.update(_adam_tensors("adam_d", nets["opt_d"], nets["names_d"]))
    return shared.write_checkpoint(out, epoch, step, elapsed, lambda p: save_deblurgan(nets["g"], p, meta),
                                   lambda p, info: save_file(tensors, str(p), metadata=info))


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
        keys = set(f.keys())
        d_state = nets["d"].state_dict() if nets["d"] is not None else None
        step, elapsed = shared.read_state_info(dict(f.metadata() or {}), state, keys, d_state)
        _restore_adam("adam_g", nets["opt_g"], nets["names_g"], f, keys, step, device)
        if d_state is not None:
            with torch.no_grad():
                for k, v in d_state.items():
                    v.copy_(f.get_tensor(f"disc.{k}"))
            _restore_adam("adam_d", nets["opt_d"], nets["names_d"], f, keys, step, device)
    return step, elapsed


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

    resume_from = shared.resume_point(cfg, resume)
    use_d = cfg.adv_weight > 0
    if use_d:
        shared.check_crop_size(cfg, build_discriminator(cfg.model).min_size())
    cfg, sampler, held_out, total = shared.plan_run(cfg, data, eval_data, resume_from, RESUMABLE_CHANGES)

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
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp)

    def step(batch: dict, lr: float) -> torch.Tensor:
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
        # Stays on the device: read back only when a log line is written, so a step never waits for the GPU.
        return torch.stack([loss_g.detach(), content.detach(), identity, adv.detach().float(),
                            loss_d.detach().float(), parts["l1"].detach(), parts["ssim"].detach(),
                            parts["edge"].detach()])

    g.train()
    if d is not None:
        d.train()
    meta = {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict()}
    return shared.run_training(
        cfg, sampler, total, resume_from, resume,
        load=lambda weights, state: _load_checkpoint(weights, state, nets, device),
        step=step,
        evaluate=lambda: evaluate(g, held_out, device, cfg.batch_size),
        save_checkpoint=lambda epoch, done, elapsed: _save_checkpoint(Path(cfg.out), epoch, done, elapsed, cfg, nets),
        save_final=lambda p: save_deblurgan(g, p, meta),
        desc=f"training {cfg.model}",
        nonfinite_fix="lower the learning rate (--lr-start), or train without --amp")


# ------------------------------------------------------------------------------------------------ entry points
# Options of edgetrack train that this trainer does not take: refused rather than silently ignored.
_REFUSED = {attr: (flag, "the tracker trainers") for attr, flag in shared.TRACKER_ONLY.items()}


def config_from_args(args) -> DeblurTrainConfig:
    """A :class:`DeblurTrainConfig` from ``edgetrack train``'s parsed arguments (unset ones keep their defaults)."""
    return shared.config_from_args(DeblurTrainConfig, args, "PyTorch", _REFUSED, extra=("amp", "channels_last"))


def train_from_args(args) -> Path:
    """``edgetrack train --model deblurgan-v2 --framework torch``: open the data, train, print where the result is."""
    return shared.train_from_args(args, config_from_args(args), train)
