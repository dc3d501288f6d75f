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

The configuration, the learning-rate schedule and the data helpers repeat the PyTorch trainer's (same fields, same
numbers), because that module imports torch at the top; they would move into a framework-free module the way
:mod:`edgetrack.models.training` holds the tracker trainers' shared pieces.

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

import dataclasses
import json
import math
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
    import mindspore as ms
    from mindspore import nn, ops
except ImportError as exc:  # pragma: no cover - exercised on installs without the [mindspore] extra
    raise MissingDependencyError("MindSpore training", "mindspore", extra="mindspore", detail=str(exc)) from exc

import numpy as np

from edgetrack.models.blur_pairs import BlurCropConfig, BlurFrames, BlurPairSampler, eval_batch, open_blur_pairs
from edgetrack.models.mindspore.train import DEVICES, _batch_stream, set_device
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
           "make_step", "name_state", "SCHEDULES", "LOG_KEYS"]

STATE_FORMAT = "edgetrack-deblur-train-state-1"  # the PyTorch trainer's: the same keys in the same file
SCHEDULES = ("cosine", "linear", "geometric")
RESUMABLE_CHANGES = {"device", "workers", "out", "log_every", "progress", "checkpoint_every", "eval_every", "jit"}
# Held-out crops per evaluation call. Not the training batch: op by op (PyNative), MindSpore spends far more on each
# operator call than on a small crop's arithmetic (200 crops in batches of 2 took 19 s on the CPU, in one batch of
# 32 a few), and evaluation keeps no activations for a backward pass.
EVAL_BATCH = 32
LOG_KEYS = ("loss", "content", "content_blurred", "adv", "loss_d", "l1", "ssim_loss", "edge")


@dataclass(frozen=True)
class DeblurTrainConfig:
    """One DeblurGAN-v2 training run: the PyTorch trainer's fields (same meanings, same defaults) less its
    CUDA-only ``amp``/``channels_last``, plus ``jit`` (compile the training step into one graph; off: step by step).
    ``device``: ``cpu``, ``gpu`` or ``ascend``."""

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
    jit: bool = True
    crops: BlurCropConfig = field(default_factory=BlurCropConfig)

    def __post_init__(self):
        from edgetrack.models.deblur_config import DEBLURGAN_PRESETS

        if self.model not in DEBLURGAN_PRESETS:
            raise UnknownChoiceError("DeblurGAN model", self.model, DEBLURGAN_PRESETS)
        if self.schedule not in SCHEDULES:
            raise UnknownChoiceError("learning-rate schedule", self.schedule, SCHEDULES)
        device = str(self.device).lower()
        if device not in DEVICES:
            raise UnknownChoiceError("MindSpore device", self.device, DEVICES, fix="pass --device cpu, gpu or ascend")
        object.__setattr__(self, "device", device)
        ints = {"epochs": 1, "batch_size": 1, "workers": 0, "seed": 0, "checkpoint_every": 1, "log_every": 1,
                "frame_stride": 1, "eval_crops": 1, "eval_every": 1}
        if self.steps_per_epoch is not None:
            ints["steps_per_epoch"] = 1
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidArgumentError(f"DeblurTrainConfig.{name} must be an integer >= {low}, got {value!r}")
        for name, low_ok in (("lr_start", False), ("lr_end", False), ("adv_weight", True), ("l1_weight", True),
                             ("ssim_weight", True), ("edge_weight", True), ("perceptual_weight", True)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 or low_ok and value == 0)):
                raise InvalidArgumentError(f"DeblurTrainConfig.{name} must be a finite number "
                                           f"{'>= 0' if low_ok else '> 0'}, got {value!r}")
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

    weights, state = ckpt_paths(out, epoch)
    weights.parent.mkdir(parents=True, exist_ok=True)
    meta = {"epoch": epoch, "step": step, "train_config": cfg.to_dict(), "framework": "mindspore"}
    atomic_write(weights, lambda p: save_deblurgan(nets["g"], p, meta))
    tensors = nets["adam_g"].tensors()
    if nets["d"] is not None:
        tensors.update({f"disc.{k}": p.asnumpy() for k, p in checkpoint_state(nets["d"]).items()})
        tensors.update(nets["adam_d"].tensors())
    tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}
    info = {"format": STATE_FORMAT, "epoch": str(epoch), "step": str(step), "elapsed": repr(elapsed)}
    atomic_write(state, lambda p: save_file(tensors, str(p), metadata=info))
    return weights


def _load_checkpoint(weights: Path, state: Path, nets: dict) -> tuple[int, float]:
    from safetensors import safe_open

    from edgetrack.models.mindspore.checkpoint import checkpoint_state, load_weights

    load_weights(nets["g"], weights)
    with safe_open(str(state), framework="numpy") as f:
        info = dict(f.metadata() or {})
        if info.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{str(state)!r} is not a DeblurGAN training state (format {info.get('format')!r})",
                                  fix="resume from a folder written by edgetrack train --model deblurgan-*")
        step = int(info["step"])
        keys = set(f.keys())
        nets["adam_g"].restore(f, keys, step)
        if nets["d"] is not None:
            d_state = checkpoint_state(nets["d"])
            missing = [k for k in d_state if f"disc.{k}" not in keys]
            if missing:
                raise CheckpointError(f"{str(state)!r} has no discriminator weight {missing[0]!r}",
                                      fix="resume with the run's own settings (adv_weight > 0)")
            for k, p in d_state.items():
                ops.assign(p, ms.Tensor(f.get_tensor(f"disc.{k}").astype(np.float32)))
            nets["adam_d"].restore(f, keys, step)
    return step, float(info.get("elapsed", 0.0))


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

    out = Path(cfg.out)
    final = out / "final.safetensors"
    resume_from = find_resume_point(out) if resume else None
    if not resume and (find_resume_point(out) is not None or final.exists()):
        raise InvalidArgumentError(f"{str(out)!r} already holds a training run",
                                   fix="pass resume=True (--resume) to continue it, or choose another out folder")
    use_d = cfg.adv_weight > 0
    ms.set_seed(cfg.seed)
    d = build_discriminator(cfg.model) if use_d else None
    if use_d and cfg.crops.crop_size < d.min_size():
        raise InvalidArgumentError(
            f"crop size {cfg.crops.crop_size} is smaller than {cfg.model}'s discriminators accept ({d.min_size()})",
            fix=f"use --crop-size {d.min_size()} or more (255 is the tracker's search crop)")
    out.mkdir(parents=True, exist_ok=True)
    train_frames, held = _split(data, eval_data, cfg)
    sampler = BlurPairSampler(train_frames, cfg.crops, seed=cfg.seed)
    spe = cfg.steps_per_epoch or max(1, len(train_frames) // cfg.batch_size)
    cfg = dataclasses.replace(cfg, steps_per_epoch=spe)
    total = cfg.epochs * spe
    record = {**cfg.to_dict(), "framework": "mindspore"}
    if resume_from is not None:
        check_resumable(out, record, RESUMABLE_CHANGES)
    (out / "config.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")

    g = build_deblurgan(cfg.model)
    opt_g = name_state(nn.Adam(g.trainable_params(), learning_rate=cfg.lr_start), "adam_g")
    opt_d = name_state(nn.Adam(d.trainable_params(), learning_rate=cfg.lr_start), "adam_d") if use_d else None
    nets = {"g": g, "d": d, "adam_g": _AdamState("adam_g", g, opt_g),
            "adam_d": _AdamState("adam_d", d, opt_d) if use_d else None}
    perceptual = TrackerPerceptual(cfg.perceptual) if cfg.perceptual else None
    content_loss = ContentLoss(cfg.l1_weight, cfg.ssim_weight, cfg.edge_weight, perceptual, cfg.perceptual_weight)
    held_out = eval_batch(held, cfg.crops, cfg.eval_crops, seed=cfg.seed)
    meta_final = {"epoch": cfg.epochs, "step": total, "train_config": cfg.to_dict(), "framework": "mindspore"}

    log, eval_log = out / "log.jsonl", out / "eval.jsonl"
    start, elapsed0 = 0, 0.0
    if resume_from is not None:
        start, elapsed0 = _load_checkpoint(*resume_from, nets)
        print(f"resuming {out} at step {start} of {total} ({resume_from[0].name})")
    elif resume:
        print(f"no checkpoint in {out}: starting a new run")
    rewrite_log(log, start)
    rewrite_log(eval_log, start)

    def run_eval(step: int, epoch: int) -> None:
        result = {"step": step, "epoch": epoch, **evaluate(g, held_out, max(cfg.batch_size, EVAL_BATCH))}
        with open(eval_log, "a") as f:
            f.write(json.dumps(result) + "\n")
        if cfg.progress:
            print(f"step {step}: held-out PSNR {result['psnr']:.2f} dB (blurred {result['psnr_blurred']:.2f}), "
                  f"SSIM {result['ssim']:.4f} (blurred {result['ssim_blurred']:.4f})", flush=True)

    if start >= total:
        if not final.exists():
            save_deblurgan(g, final, meta_final)
        return final
    if start == 0:
        run_eval(0, 0)

    train_step = make_step(g, d, content_loss, opt_g, opt_d, cfg.adv_weight, cfg.jit)
    batches = _batch_stream(sampler, cfg.batch_size, start, total, cfg.workers)
    steps = range(start, total)
    bar = None
    if cfg.progress:
        from edgetrack.progress import progress

        desc = f"training {cfg.model} (MindSpore {ms.get_context('device_target')})" + (
            f" from step {start}" if start else "")
        steps = bar = progress(steps, desc=desc, total=total - start, unit="step")

    g.set_train(True)
    if d is not None:
        d.set_train(True)
    t0 = time.perf_counter()
    acc, acc_n, acc_t = np.zeros(len(LOG_KEYS)), 0, t0
    logfile = open(log, "a", buffering=1)
    try:
        for step in steps:
            batch = next(batches)
            if batch["index"] != step:  # cannot happen; guards the resume/determinism promise
                raise EdgetrackError(f"the crop stream delivered batch {batch['index']} at step {step}")
            lr = lr_schedule(step, total, cfg.lr_start, cfg.lr_end, cfg.schedule)
            for opt in (opt_g, opt_d):
                if opt is not None:  # ops.assign: a compiled step reads the parameter, not a Python number
                    ops.assign(opt.learning_rate, ms.Tensor(lr, ms.float32))
            values = train_step(_to_unit_range(batch["blurred"]), _to_unit_range(batch["sharp"]))
            acc += values.asnumpy().astype(np.float64)
            acc_n += 1
            done = step + 1
            epoch_end = done % spe == 0
            if done % cfg.log_every == 0 or epoch_end or done == total:
                means = (acc / acc_n).tolist()
                if not all(math.isfinite(v) for v in means):
                    raise EdgetrackError(f"the loss became {means[0]} at step {done} (lr {lr:.3g})",
                                         fix="lower the learning rate (--lr-start)")
                now = time.perf_counter()
                entry = {"step": done, "epoch": (done - 1) // spe + 1, "lr": lr,
                         **{k: round(v, 6) for k, v in zip(LOG_KEYS, means)},
                         "time": round(elapsed0 + now - t0, 3),
                         "pairs_per_s": round(acc_n * cfg.batch_size / max(now - acc_t, 1e-9), 1)}
                logfile.write(json.dumps(entry) + "\n")
                if bar is not None and hasattr(bar, "set_postfix"):
                    bar.set_postfix(content=f"{means[1]:.4f}", vs_blurred=f"{means[1] / max(means[2], 1e-12):.3f}",
                                    d=f"{means[4]:.3f}", lr=f"{lr:.2e}", refresh=False)
                acc, acc_n, acc_t = np.zeros(len(LOG_KEYS)), 0, now
            if epoch_end:
                epoch = done // spe
                if epoch % cfg.eval_every == 0 or done == total:
                    run_eval(done, epoch)
                if epoch % cfg.checkpoint_every == 0 or done == total:
                    _save_checkpoint(out, epoch, done, elapsed0 + time.perf_counter() - t0, cfg, nets)
        atomic_write(final, lambda p: save_deblurgan(g, p, meta_final))
    finally:
        logfile.close()
        if bar is not None and hasattr(bar, "close"):
            bar.close()
        batches.close()  # stops the crop threads
    return final


# ------------------------------------------------------------------------------------------------ entry points
# edgetrack train options of the tracker trainers and of PyTorch: refused rather than silently ignored.
_NOT_HERE = {"loss": "--loss", "alpha": "--alpha", "gamma": "--gamma", "cache": "--cache", "max_gap": "--max-gap",
             "max_shift": "--max-shift", "blur_prob": "--blur-prob", "reg_weight": "--reg-weight", "amp": "--amp",
             "channels_last": "--channels-last"}


def config_from_args(args) -> DeblurTrainConfig:
    """A :class:`DeblurTrainConfig` from ``edgetrack train``'s parsed arguments (unset ones keep their defaults)."""
    for attr, flag in _NOT_HERE.items():
        if getattr(args, attr, None) not in (None, False):
            what = "the PyTorch trainer" if attr in ("amp", "channels_last") else "the tracker trainers"
            raise InvalidArgumentError(f"{flag} does not apply to {args.model} with MindSpore (an option of {what})",
                                       fix=f"drop {flag}; see edgetrack train --help")
    fields = {
        "model": args.model, "epochs": getattr(args, "epochs", None),
        "steps_per_epoch": getattr(args, "steps_per_epoch", None), "batch_size": getattr(args, "batch_size", None),
        "lr_start": getattr(args, "lr_start", None), "lr_end": getattr(args, "lr_end", None),
        "device": getattr(args, "device", None), "workers": getattr(args, "workers", None),
        "seed": getattr(args, "seed", None), "out": str(args.out), "log_every": getattr(args, "log_every", None),
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
    """``edgetrack train --model deblurgan-* --framework mindspore``: open the data, train, say where the result is."""
    cfg = config_from_args(args)
    if not getattr(args, "data", None):
        raise InvalidArgumentError("no training data", fix="pass --data synthetic:DIR or gopro:DIR (repeatable)")
    eval_specs = list(getattr(args, "eval_data", None) or [])
    final = train(cfg, args.data, eval_data=eval_specs or None, resume=bool(getattr(args, "resume", False)))
    print(f"final checkpoint: {final}\nlog: {Path(cfg.out) / 'log.jsonl'}\n"
          f"held-out PSNR/SSIM: {Path(cfg.out) / 'eval.jsonl'}")
    return final
