"""Training DeblurGAN-v2 with MindSpore: the twin of :mod:`edgetrack.models.torch.deblur_train` (read its docstring
for the recipe and the run folder).

Same recipe, same crops, same files: aligned crop pairs from the framework-free
:mod:`edgetrack.models.blur_pairs` (batch ``k`` is a pure function of ``(seed, k)``), cut ahead by the MindSpore
tracker trainer's thread stream; Adam (β 0.9/0.999) for the generator and the double-scale discriminator, the
learning rate per step from ``lr_start`` to ``lr_end`` (cosine, linear or geometric); RaLSGAN averaged over both
scales with weight ``adv_weight``, plus the content loss (L1 + 1 − SSIM + gradient L1 [+ a tracker's features]);
held-out PSNR/SSIM of the generator in eval mode against the blurred input's. ``log.jsonl`` and ``eval.jsonl`` have
the PyTorch trainer's keys; ``config.json`` adds ``framework: mindspore``.

One step, as the twin's: the generator runs once (``mindspore.vjp`` keeps its backward for later, so BatchNorm's
running statistics move once per step, as in PyTorch); the discriminator is updated on (sharp, generated) first;
then the generator's loss is taken against the updated discriminator, differentiated with respect to the generated
crops and pulled back through the generator. With ``jit`` (the default) the whole step is one compiled graph: on
this project's 2-core CPU the tiny model's step compiles in about 10 s and then runs 4-10× faster than op by
op (``jit=False``, what most quick tests use). ``tests/test_deblurgan_parity.py`` checks both forms of the
step against the PyTorch trainer's recipe.

The configuration's shared fields, the learning-rate schedule, the data, the crop stream, the command line and the
training loop's bookkeeping are the PyTorch trainer's own, from the framework-free
:mod:`edgetrack.models.deblur_training`; this module holds what needs MindSpore.

Checkpoints are the twin's: ``epoch-NNNN.safetensors`` holds the generator (either framework's ``load_deblurgan``
reads it); ``epoch-NNNN.state.safetensors`` the discriminator (``disc.<key>``) and both Adams' moments
(``adam_g.exp_avg.<key>``, ``adam_g.exp_avg_sq.<key>``, ``adam_d...``) under the PyTorch parameter names, format
``edgetrack-deblur-train-state-1``. Adam's bias-correction powers are a function of the step, restored from it.
MindSpore's Adam adds ε to √v before the bias correction, PyTorch's after it: the same update wherever |gradient|
is well above 1e-8.

``device``: ``cpu``, ``gpu`` or ``ascend`` (a device this MindSpore cannot use is a ``BackendError``, never a run on
the CPU). One process; ``workers`` threads cut the crops ahead.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgetrack.errors import InvalidArgumentError, MissingDependencyError, UnknownChoiceError, require

try:
    import mindspore as ms
    from mindspore import nn, ops
except ImportError as exc:  # pragma: no cover - exercised on installs without the [mindspore] extra
    raise MissingDependencyError("MindSpore training", "mindspore", extra="mindspore", detail=str(exc)) from exc

import numpy as np

from edgetrack.models import deblur_training as shared
from edgetrack.models.deblur_training import (  # noqa: F401 - re-exported: importable from here as before
    LOG_KEYS,
    SCHEDULES,
    STATE_FORMAT,
    DeblurTrainConfigBase,
    lr_schedule,
)
from edgetrack.models.mindspore.train import DEVICES, set_device
from edgetrack.models.training import find_resume_point  # noqa: F401 - re-exported

__all__ = ["DeblurTrainConfig", "train", "train_from_args", "config_from_args", "lr_schedule", "evaluate",
           "make_step", "name_state", "SCHEDULES", "LOG_KEYS"]

RESUMABLE_CHANGES = shared.RESUMABLE_CHANGES | {"jit"}
# Held-out crops per evaluation call. Not the training batch: op by op (PyNative), MindSpore spends far more on each
# operator call than on a small crop's arithmetic (200 crops in batches of 2 took 19 s on the CPU, in one batch of
# 32 a few), and evaluation keeps no activations for a backward pass.
EVAL_BATCH = 32


@dataclass(frozen=True)
class DeblurTrainConfig(DeblurTrainConfigBase):
    """One DeblurGAN-v2 training run: the PyTorch trainer's fields (same meanings, same defaults) less its
    CUDA-only ``amp``/``channels_last``, plus ``jit`` (compile the training step into one graph; off: step by step).
    ``device``: ``cpu``, ``gpu`` or ``ascend``."""

    jit: bool = True

    def __post_init__(self):
        device = str(self.device).lower()
        if device not in DEVICES:
            raise UnknownChoiceError("MindSpore device", self.device, DEVICES, fix="pass --device cpu, gpu or ascend")
        object.__setattr__(self, "device", device)
        super().__post_init__()


def _to_unit_range(array: np.ndarray) -> "ms.Tensor":
    """uint8 NCHW (0..255) -> float32 in [-1, 1]."""
    return ms.Tensor(np.asarray(array, np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0))


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate(generator, batch: dict, batch_size: int = EVAL_BATCH) -> dict:
    """Mean per-crop PSNR/SSIM of the generator's output (eval mode) and of the blurred input against sharp: the
    twin's ``psnr``, ``ssim``, ``psnr_blurred``, ``ssim_blurred``, ``crops``."""
    from edgetrack.models.mindspore.deblurgan import psnr, ssim, to_unit

    was_training = generator.training
    generator.set_train(False)
    sums = {"psnr": 0.0, "ssim": 0.0, "psnr_blurred": 0.0, "ssim_blurred": 0.0}
    n = len(batch["blurred"])
    try:
        for i in range(0, n, batch_size):
            xb = _to_unit_range(batch["blurred"][i:i + batch_size])
            xs = to_unit(_to_unit_range(batch["sharp"][i:i + batch_size]))
            out = to_unit(generator.restore(xb))
            xb = to_unit(xb)
            sums["psnr"] += float(psnr(out, xs).sum().asnumpy())
            sums["ssim"] += float(ssim(out, xs).sum().asnumpy())
            sums["psnr_blurred"] += float(psnr(xb, xs).sum().asnumpy())
            sums["ssim_blurred"] += float(ssim(xb, xs).sum().asnumpy())
    finally:
        generator.set_train(was_training)
    return {**{k: round(v / n, 5) for k, v in sums.items()}, "crops": n}


# ------------------------------------------------------------------------------------------------ the step
def name_state(optimizer, prefix: str):
    """Prefix the names of ``optimizer``'s own state (learning rate, step count, moments, Adam's β powers): every
    MindSpore optimiser calls them ``learning_rate``, ``global_step``..., and one compiled graph refuses two
    parameters of one name — the generator's and the discriminator's optimisers share the training step."""
    model = {id(p) for p in optimizer.parameters}
    for _, param in optimizer.parameters_and_names(expand=False):
        if id(param) not in model and not param.name.startswith(prefix + "."):
            param.name = f"{prefix}.{param.name}"
    return optimizer


def make_step(g, d, content_loss, opt_g, opt_d, adv_weight: float, compile_step: bool = True):
    """``step(blurred, sharp) -> (8,)`` tensor of :data:`LOG_KEYS`: one discriminator and one generator update on a
    batch of [-1, 1] crops (the module docstring's order). ``d``/``opt_d`` None: content loss only. With
    ``compile_step``, the two optimisers' own parameters need distinct names (:func:`name_state`)."""
    from edgetrack.models.mindspore.deblurgan import double_scale_loss, ralsgan_d_loss, ralsgan_g_loss

    zero = ms.Tensor(0.0, ms.float32)
    use_d = d is not None
    if use_d:
        def d_objective(sharp, fake):
            return double_scale_loss(ralsgan_d_loss, d(sharp), d(fake))

        d_grad = ms.value_and_grad(d_objective, None, opt_d.parameters)

    def g_objective(fake, sharp):
        content, l1, ssim_term, edge = content_loss(fake, sharp)
        adv = zero
        if use_d:
            real_out = d(sharp)
            adv = double_scale_loss(ralsgan_g_loss, (ops.stop_gradient(real_out[0]), ops.stop_gradient(real_out[1])),
                                    d(fake))
        return content + adv_weight * adv, content, adv, l1, ssim_term, edge

    # Gradients with respect to the generated crops only (D's parameters are not in it: D is not trained here).
    g_grad = ms.value_and_grad(g_objective, 0, None, has_aux=True)

    def step(blurred, sharp):
        fake, pull_back = ms.vjp(g.restore, blurred, weights=opt_g.parameters)
        loss_d = zero
        if use_d:
            loss_d, grads = d_grad(sharp, ops.stop_gradient(fake))
            opt_d(grads)
        (loss_g, content, adv, l1, ssim_term, edge), d_fake = g_grad(fake, sharp)
        opt_g(pull_back(d_fake)[1])
        identity = ops.stop_gradient(content_loss(blurred, sharp)[0])  # the do-nothing baseline on the same crops
        return ops.stack([loss_g, content, identity, adv, loss_d, l1, ssim_term, edge])

    return ms.jit(step) if compile_step else step


# ------------------------------------------------------------------------------------------------ checkpoints
class _AdamState:
    """One Adam's moments by the parameters' checkpoint keys, saved and restored in the PyTorch trainer's layout."""

    def __init__(self, prefix: str, model, optimizer):
        from edgetrack.models.mindspore.checkpoint import checkpoint_state

        key_of = {id(p): k for k, p in checkpoint_state(model).items()}
        self.prefix, self.optimizer = prefix, optimizer
        self.slots = {key_of[id(p)]: (m, v) for p, m, v in zip(optimizer.parameters, optimizer.moment1,
                                                                 optimizer.moment2, strict=True)}

    def tensors(self) -> dict:
        out = {}
        for key, (m, v) in self.slots.items():
            out[f"{self.prefix}.exp_avg.{key}"] = m.asnumpy()
            out[f"{self.prefix}.exp_avg_sq.{key}"] = v.asnumpy()
        return out

    def restore(self, f, keys: set, step: int) -> None:
        for key, (m, v) in self.slots.items():
            a, b = f"{self.prefix}.exp_avg.{key}", f"{self.prefix}.exp_avg_sq.{key}"
            if a in keys and b in keys:
                ops.assign(m, ms.Tensor(f.get_tensor(a).astype(np.float32)))
                ops.assign(v, ms.Tensor(f.get_tensor(b).astype(np.float32)))
        # The bias corrections β^t, as the optimiser computes them: t float32 products (np.float32(0.9 ** t) is off
        # by an ulp or so, and a resumed run would no longer equal an uninterrupted one).
        opt = self.optimizer
        for power, beta in ((opt.beta1_power, opt.beta1), (opt.beta2_power, opt.beta2)):
            value = np.cumprod(np.full(step, beta.asnumpy(), np.float32), dtype=np.float32)[-1] if step else 1.0
            ops.assign(power, ms.Tensor(np.asarray(value, np.float32)))


def _save_checkpoint(out: Path, epoch: int, step: int, elapsed: float, cfg: DeblurTrainConfig, nets: dict) -> Path:
    from safetensors.numpy import save_file

    from edgetrack.models.mindspore.checkpoint import checkpoint_state
    from edgetrack.models.mindspore.deblurgan import save_deblurgan

    meta = {"epoch": epoch, "step": step, "train_config": cfg.to_dict(), "framework": "mindspore"}
    tensors = nets["adam_g"].tensors()
    if nets["d"] is not None:
        tensors.update({f"disc.{k}": p.asnumpy() for k, p in checkpoint_state(nets["d"]).items()})
        tensors.update(nets["adam_d"].tensors())
    tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}
    return shared.write_checkpoint(out, epoch, step, elapsed, lambda p: save_deblurgan(nets["g"], p, meta),
                                   lambda p, info: save_file(tensors, str(p), metadata=info))


def _load_checkpoint(weights: Path, state: Path, nets: dict) -> tuple[int, float]:
    from safetensors import safe_open

    from edgetrack.models.mindspore.checkpoint import checkpoint_state, load_weights

    load_weights(nets["g"], weights)
    with safe_open(str(state), framework="numpy") as f:
        keys = set(f.keys())
        d_state = checkpoint_state(nets["d"]) if nets["d"] is not None else None
        step, elapsed = shared.read_state_info(dict(f.metadata() or {}), state, keys, d_state)
        nets["adam_g"].restore(f, keys, step)
        if d_state is not None:
            for k, p in d_state.items():
                ops.assign(p, ms.Tensor(f.get_tensor(f"disc.{k}").astype(np.float32)))
            nets["adam_d"].restore(f, keys, step)
    return step, elapsed


# ------------------------------------------------------------------------------------------------ the trainer
def train(cfg: DeblurTrainConfig, data=None, *, eval_data=None, resume: bool = False) -> Path:
    """Train ``cfg.model`` with MindSpore and return the path of ``final.safetensors`` (the twin's arguments:
    data set specs, :class:`~edgetrack.models.blur_pairs.BlurPairSource` lists or ``BlurFrames``; without
    ``eval_data`` the last ``cfg.holdout`` share of the training sequences is held out)."""
    if not isinstance(cfg, DeblurTrainConfig):
        raise InvalidArgumentError(f"cfg must be a DeblurTrainConfig, got {type(cfg).__name__}")
    require("safetensors", feature="training checkpoints", extra="mindspore")
    set_device(cfg.device)
    from edgetrack.models.mindspore.deblurgan import (
        ContentLoss,
        TrackerPerceptual,
        build_deblurgan,
        build_discriminator,
        save_deblurgan,
    )

    resume_from = shared.resume_point(cfg, resume)
    use_d = cfg.adv_weight > 0
    ms.set_seed(cfg.seed)
    d = build_discriminator(cfg.model) if use_d else None
    if use_d:
        shared.check_crop_size(cfg, d.min_size())
    cfg, sampler, held_out, total = shared.plan_run(cfg, data, eval_data, resume_from, RESUMABLE_CHANGES,
                                                    {"framework": "mindspore"})

    g = build_deblurgan(cfg.model)
    opt_g = name_state(nn.Adam(g.trainable_params(), learning_rate=cfg.lr_start), "adam_g")
    opt_d = name_state(nn.Adam(d.trainable_params(), learning_rate=cfg.lr_start), "adam_d") if use_d else None
    nets = {"g": g, "d": d, "adam_g": _AdamState("adam_g", g, opt_g),
            "adam_d": _AdamState("adam_d", d, opt_d) if use_d else None}
    perceptual = TrackerPerceptual(cfg.perceptual) if cfg.perceptual else None
    content_loss = ContentLoss(cfg.l1_weight, cfg.ssim_weight, cfg.edge_weight, perceptual, cfg.perceptual_weight)
    train_step = make_step(g, d, content_loss, opt_g, opt_d, cfg.adv_weight, cfg.jit)

    def step(batch: dict, lr: float) -> np.ndarray:
        for opt in (opt_g, opt_d):
            if opt is not None:  # ops.assign: a compiled step reads the parameter, not a Python number
                ops.assign(opt.learning_rate, ms.Tensor(lr, ms.float32))
        values = train_step(_to_unit_range(batch["blurred"]), _to_unit_range(batch["sharp"]))
        return values.asnumpy().astype(np.float64)

    g.set_train(True)
    if d is not None:
        d.set_train(True)
    meta = {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict(), "framework": "mindspore"}
    return shared.run_training(
        cfg, sampler, total, resume_from, resume,
        load=lambda weights, state: _load_checkpoint(weights, state, nets),
        step=step,
        evaluate=lambda: evaluate(g, held_out, max(cfg.batch_size, EVAL_BATCH)),
        save_checkpoint=lambda epoch, done, elapsed: _save_checkpoint(Path(cfg.out), epoch, done, elapsed, cfg, nets),
        save_final=lambda p: save_deblurgan(g, p, meta),
        desc=f"training {cfg.model} (MindSpore {ms.get_context('device_target')})",
        nonfinite_fix="lower the learning rate (--lr-start)")


# ------------------------------------------------------------------------------------------------ entry points
# Options of edgetrack train that this trainer does not take (the tracker trainers' and PyTorch's): refused rather
# than silently ignored.
_REFUSED = {**{attr: (flag, "the tracker trainers") for attr, flag in shared.TRACKER_ONLY.items()},
            "amp": ("--amp", "the PyTorch trainer"), "channels_last": ("--channels-last", "the PyTorch trainer")}


def config_from_args(args) -> DeblurTrainConfig:
    """A :class:`DeblurTrainConfig` from ``edgetrack train``'s parsed arguments (unset ones keep their defaults)."""
    return shared.config_from_args(DeblurTrainConfig, args, "MindSpore", _REFUSED)


def train_from_args(args) -> Path:
    """``edgetrack train --model deblurgan-* --framework mindspore``: open the data, train, say where the result is."""
    return shared.train_from_args(args, config_from_args(args), train)
