"""What the PyTorch and MindSpore trainers share, framework-free: the run folder, the schedule, the checks.

Both trainers write the same run folder (``config.json``, ``log.jsonl``, ``checkpoints/epoch-NNNN[.state]
.safetensors``, ``final.safetensors``) and follow the same recipe, so these pieces live here once; the trainers
keep only what needs their framework (the model, the optimiser state, the step).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

from edgetrack.errors import InvalidArgumentError, UnknownChoiceError
from edgetrack.models.pairs import PairConfig

# The training-state file's format: momentum buffers under ``momentum.<checkpoint key>``, the same in both SGDs.
TRAIN_STATE_FORMAT = "edgetrack-train-state-1"
DEFAULT_LOSS = {"siamfc": "logistic"}  # every other preset: the paper's HSM loss
# The HSM loss's settings the paper picks (Tables 2-3), every trainer's default.
HSM_ALPHA = 0.6
HSM_GAMMA = 2.0
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.safetensors$")


def check_numbers(cfg, what: str, ints: dict[str, int], positive=(), non_negative=(), optional=("steps_per_epoch",)):
    """Refuse a config field that is not a number of its kind: ``ints`` integers at least their minimum (names in
    ``optional`` may also be None), ``positive`` finite numbers > 0, ``non_negative`` finite numbers >= 0. ``what``
    names the config class in the message."""
    for name, low in ints.items():
        value = getattr(cfg, name)
        if value is None and name in optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            kind = "None or an integer" if name in optional else "an integer"
            raise InvalidArgumentError(f"{what}.{name} must be {kind} >= {low}, got {value!r}")
    for names, bound, ok in ((positive, "> 0", lambda v: v > 0), (non_negative, ">= 0", lambda v: v >= 0)):
        for name in names:
            value = getattr(cfg, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
                raise InvalidArgumentError(f"{what}.{name} must be a finite number {bound}, got {value!r}")


def validate_common(cfg) -> None:
    """The checks every trainer's ``TrainConfig.__post_init__`` makes on the fields they share (in place)."""
    ints = {"epochs": 1, "batch_size": 1, "workers": 0, "seed": 0, "checkpoint_every": 1, "log_every": 1,
            "frame_stride": 1, "steps_per_epoch": 1}
    check_numbers(cfg, "TrainConfig", ints, positive=("lr_start", "lr_end"))
    if not 0 <= cfg.momentum < 1 or not cfg.weight_decay >= 0:
        raise InvalidArgumentError(f"need 0 <= momentum < 1 and weight_decay >= 0, got {cfg.momentum}, "
                                   f"{cfg.weight_decay}")
    if not 0 <= cfg.alpha <= 1 or cfg.gamma < 0:
        raise InvalidArgumentError(f"need 0 <= alpha <= 1 and gamma >= 0, got {cfg.alpha}, {cfg.gamma}")
    _resolve_ohem_counts(cfg)
    _check_backbone_init(cfg)
    if isinstance(cfg.pairs, dict):
        object.__setattr__(cfg, "pairs", PairConfig.from_dict(cfg.pairs))
    if not isinstance(cfg.pairs, PairConfig):
        raise InvalidArgumentError(f"TrainConfig.pairs must be a PairConfig, got {type(cfg.pairs).__name__}")
    object.__setattr__(cfg, "out", str(cfg.out))


# TrainConfig fields that config.json and the checkpoints' train_config hold only when they are set, so the records
# of runs without them (and resuming runs written before these fields existed) are unchanged.
OPTIONAL_RECORD = {"init_backbone": None, "freeze_backbone": False}


def config_record(cfg) -> dict:
    """``cfg`` as the dict written to config.json and the checkpoints (:data:`OPTIONAL_RECORD` fields only when set)."""
    d = dataclasses.asdict(cfg)
    for name, default in OPTIONAL_RECORD.items():
        if name in d and d[name] == default:
            del d[name]
    return d


def _check_backbone_init(cfg) -> None:
    """``init_backbone`` (a DeblurGAN-v2 checkpoint) is for models whose trunk is the generator's encoder;
    ``freeze_backbone`` needs it (a frozen random trunk would track on noise)."""
    if not isinstance(cfg.freeze_backbone, bool):
        raise InvalidArgumentError(f"TrainConfig.freeze_backbone must be True or False, got {cfg.freeze_backbone!r}")
    if cfg.init_backbone is None:
        if cfg.freeze_backbone:
            raise InvalidArgumentError("freeze_backbone freezes a trunk copied from a deblurrer, but no "
                                       "init_backbone was given",
                                       fix="pass --init-backbone DEBLUR.safetensors with --freeze-backbone")
        return
    object.__setattr__(cfg, "init_backbone", str(cfg.init_backbone))
    from edgetrack.models.siamrpn_config import SIAMRPN_PRESETS

    preset = SIAMRPN_PRESETS.get(cfg.model)
    if preset is None or preset.backbone != "deblur-fpn":
        reuse = [n for n, c in SIAMRPN_PRESETS.items() if c.backbone == "deblur-fpn"]
        raise InvalidArgumentError(
            f"--init-backbone copies a DeblurGAN-v2 encoder into a deblur-fpn trunk; {cfg.model} has "
            f"{'no such trunk' if preset is None else f'the {preset.backbone} backbone'}",
            fix=f"train one of {', '.join(reuse)} with --init-backbone, or drop the option")


def _resolve_ohem_counts(cfg) -> None:
    """``neg_random`` / ``neg_hard``, the rpn-ohem loss's random and hardest negatives per pair: their defaults
    (:data:`~edgetrack.models.rpn_targets.OHEM_RANDOM`, :data:`~edgetrack.models.rpn_targets.OHEM_HARD`) filled in
    for that loss, so config.json and the checkpoints record them; None for every other loss (and a value given
    there is refused: it would change nothing)."""
    names = {"neg_random": ("--neg-random", 0), "neg_hard": ("--neg-hard", 1), "hard_min_dist": ("--hard-min-dist", 0)}
    if cfg.loss != "rpn-ohem":
        for name, (flag, _) in names.items():
            if getattr(cfg, name) is not None:
                raise InvalidArgumentError(
                    f"TrainConfig.{name} ({getattr(cfg, name)!r}) is a setting of the rpn-ohem loss; this run's loss "
                    f"is {cfg.loss!r}", fix=f"train a SiamRPN model with --loss rpn-ohem, or leave {flag} unset")
        return
    from edgetrack.models.rpn_targets import OHEM_HARD, OHEM_RANDOM

    defaults = {"neg_random": OHEM_RANDOM, "neg_hard": OHEM_HARD, "hard_min_dist": 0.0}
    for name, (flag, low) in names.items():
        value = getattr(cfg, name)
        if value is None:
            object.__setattr__(cfg, name, defaults[name])
        elif name == "hard_min_dist":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise InvalidArgumentError(f"TrainConfig.hard_min_dist must be a finite number >= 0, got {value!r}",
                                           fix="pass --hard-min-dist D (target sizes), D >= 0, or leave it unset (0)")
            object.__setattr__(cfg, name, float(value))
        elif not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidArgumentError(f"TrainConfig.{name} must be an integer >= {low}, got {value!r}",
                                       fix=f"pass {flag} N with N >= {low}, or leave it unset ({defaults[name]})")


def config_from_dict(cls, data: dict):
    """``cls(**data)`` for a TrainConfig dataclass, naming unknown fields instead of a bare TypeError."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise InvalidArgumentError(f"TrainConfig has no field(s) {sorted(unknown)}; fields: {sorted(known)}")
    return cls(**data)


def lr_at(step: int, total: int, lr_start: float, lr_end: float) -> float:
    """The geometric schedule: ``lr_start`` at step 0, ``lr_end`` at step ``total − 1``."""
    if total <= 1:
        return float(lr_start)
    return float(lr_start * (lr_end / lr_start) ** (step / (total - 1)))


def ckpt_paths(out: Path, epoch: int) -> tuple[Path, Path]:
    """(weights, training state) of epoch ``epoch`` in run folder ``out``."""
    d = out / "checkpoints"
    return d / f"epoch-{epoch:04d}.safetensors", d / f"epoch-{epoch:04d}.state.safetensors"


def find_resume_point(out: str | Path) -> tuple[Path, Path] | None:
    """(weights, state) of the newest complete epoch checkpoint under ``out``, or None."""
    d = Path(out) / "checkpoints"
    if not d.is_dir():
        return None
    epochs = sorted((int(m.group(1)) for p in d.iterdir() if (m := _EPOCH_FILE.match(p.name))), reverse=True)
    for e in epochs:
        weights, state = ckpt_paths(Path(out), e)
        if weights.is_file() and state.is_file():
            return weights, state
    return None


def atomic_write(path: Path, write) -> None:
    """``write(tmp)`` then rename onto ``path``: a crash never leaves a half-written checkpoint under its name."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


# Settings newer than some runs' config.json, and the values those runs trained with.
_ADDED_LATER = {"hard_min_dist": (None, 0.0)}


def check_resumable(out: Path, record: dict, resumable_changes) -> None:
    """Refuse to resume ``out`` when a run-defining setting (any key not in ``resumable_changes``) changed."""
    path = out / "config.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    for key in sorted(set(old) | set(record)):
        if key in resumable_changes:
            continue
        if key not in old and record.get(key) in _ADDED_LATER.get(key, ()):
            continue  # a run started before the setting existed ran with its neutral value
        if old.get(key) != record.get(key):
            raise InvalidArgumentError(
                f"cannot resume {str(out)!r}: {key} was {old.get(key)!r}, now {record.get(key)!r}",
                fix=f"resume with the run's own settings (see {path}), or start a new run with another --out")


def rewrite_log(log: Path, upto: int) -> None:
    """Keep the log lines of steps up to ``upto`` (a resumed run rewrites what came after its checkpoint)."""
    if not log.is_file():
        return
    keep = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= upto:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    log.write_text("".join(k + "\n" for k in keep))


# ------------------------------------------------------------------------------------------------ model families
class SiameseFamily:
    """A model family's training hooks that need no framework; each trainer subclasses it with ``framework`` set
    (``"torch"`` or ``"mindspore"``) and adds its loss hooks. The model modules follow one naming scheme in both
    frameworks (``edgetrack.models.<framework>.<name>`` with ``build_<name>`` / ``save_<name>``), so building and
    saving need no per-framework code."""

    name = ""
    framework = ""
    default_reg_weight: float | None = None

    def _module(self, module: str):
        import importlib

        return importlib.import_module(f"edgetrack.models.{self.framework}.{module}")

    def build(self, cfg):
        return getattr(self._module(self.name), f"build_{self.name}")(cfg.model)

    def save(self, model, path, meta: dict):
        return getattr(self._module(self.name), f"save_{self.name}")(model, path, meta)


class SiamFCFamily(SiameseFamily):
    """HSM-SiamFC and SiamFC: one response map, label maps from the pair sampler, the HSM or logistic loss."""

    name = "siamfc"
    default_reg_weight = None  # no regression branch

    def presets(self):
        from edgetrack.models.siamfc_config import SIAMFC_PRESETS

        return SIAMFC_PRESETS

    def losses(self):
        return self._module("losses").LOSSES

    def default_loss(self, model: str) -> str:
        return DEFAULT_LOSS.get(model, "hsm")

    def default_pairs(self) -> PairConfig:
        return PairConfig()

    def batch_transform(self, cfg, model, seed):
        return None  # the sampler's label maps are all the loss needs


# The rpn-hsm loss starts every anchor at this target probability (RetinaNet's prior; see prior_bias).
RPN_HSM_PRIOR = 0.01


class SiamRPNFamily(SiameseFamily):
    """SiamRPN (EfficientNet-ECA, AlexNet): classification + regression over anchors, targets per batch."""

    name = "siamrpn"
    default_reg_weight = 1.2  # pysot's LOC_WEIGHT for SiamRPN; the paper gives no λ

    def presets(self):
        from edgetrack.models.siamrpn_config import SIAMRPN_PRESETS

        return SIAMRPN_PRESETS

    def losses(self):
        # rpn: the papers' cross-entropy on sampled anchors; rpn-hsm: HSM-SiamFC's loss on every anchor (alpha, gamma);
        # rpn-ohem: the cross-entropy on the sampled positives, neg_random random and the neg_hard hardest negatives.
        from edgetrack.models.rpn_targets import ANCHOR_TARGETS

        return dict.fromkeys(ANCHOR_TARGETS)

    def default_loss(self, model: str) -> str:
        return "rpn"

    def build(self, cfg):
        model = super().build(cfg)
        if cfg.loss == "rpn-hsm":
            model.set_prior(RPN_HSM_PRIOR)
        if getattr(cfg, "init_backbone", None):
            # The deblurrer's encoder into the deblur-fpn trunk (recorded in the checkpoints' backbone_init).
            self._module(self.name).init_backbone(model, cfg.init_backbone, freeze=cfg.freeze_backbone)
        return model

    @staticmethod
    def cls_loss(cfg) -> dict:
        """The RPN loss's classification term for ``cfg.loss`` (keyword arguments of ``rpn_loss`` / ``RPNLoss``)."""
        if cfg.loss == "rpn-hsm":
            return {"cls_loss": "hsm", "alpha": cfg.alpha, "gamma": cfg.gamma}
        if cfg.loss == "rpn-ohem":
            return {"cls_loss": "ohem", "neg_hard": cfg.neg_hard}
        return {"cls_loss": "ce"}

    def default_pairs(self) -> PairConfig:
        from edgetrack.models.rpn_targets import RPN_PAIRS

        return RPN_PAIRS

    def batch_transform(self, cfg, model, seed):
        from edgetrack.models.rpn_targets import RPNTargets, anchor_target_config
        from edgetrack.tracking.siamrpn import anchor_grid

        return RPNTargets(anchor_grid(model.config.tracking_params()), seed,
                          anchor_target_config(cfg.loss, cfg.neg_random, cfg.hard_min_dist or 0.0))


def family_of(families: dict, model: str):
    """The training hooks, among ``families``, of the family ``model`` (a preset name) belongs to."""
    for family in families.values():
        if model in family.presets():
            return family
    raise UnknownChoiceError("model", model, [m for f in families.values() for m in f.presets()])
