"""SiamRPN's architecture configuration, presets and geometry, framework-free (shared by the framework twins).

Kept apart from the model file so the MindSpore twin, the converters and tools that only read a checkpoint's
config need not import torch. ``edgetrack.models.torch.siamrpn`` re-exports every name here.

Two backbones share one RPN head (see ``models/torch/siamrpn.py`` for the layers and the geometry table):

- ``effnet-eca``: EfficientNet-B0's stem and stages 1-5 with ECA instead of squeeze-and-excitation (the
  Deblur-SiamRPN paper's tracker), stage 4's stride 2 set to 1 so the features stay at stride 8;
  127 -> 15×15 template features (centre 7×7 kept), 255 -> 31×31 search features, 25×25 score map.
- ``alexnet``: the original SiamRPN's AlexNet (conv1-conv5, 96/256/384/384/256), valid convolutions;
  127 -> 6×6, 255 -> 22×22, 17×17 score map. The paper's baseline.
- ``deblur-fpn``: the DeblurGAN-v2 generator's own encoder (MobileNetV2 at the deblurrer's width, ``enc0``-``enc4``)
  and its FPN's top-down path down to stride 8 (``lateral4``..``lateral2``, ``td1``, ``td2``), the same parameter
  names as the generator's ``fpn.*`` so a trained deblurrer's weights copy in (the paper's feature reuse; see
  ``models/torch/siamrpn.py``). One replicated row and column before the crop, and the first feature row and column
  dropped after, give effnet-eca's maps exactly: 127 -> 15×15 (centre 7×7 kept), 255 -> 31×31, 25×25 score map.

Either way score cell ``r`` (row or column) is centred on search-crop pixel ``(I - 1) / 2 + 8 · (r - (R - 1) / 2)``
— the centre cell on the crop's centre, as in pysot (``ori = -(R // 2) · stride``) — which is what
:func:`edgetrack.tracking.siamrpn.anchor_grid` assumes.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgetrack.errors import InvalidArgumentError

__all__ = [
    "SiamRPNConfig",
    "SIAMRPN_PRESETS",
    "BACKBONES",
    "EFFNET_B0_STAGES",
    "GRAPH_IO",
    "FAMILY",
    "TOTAL_STRIDE",
    "round_filters",
    "prior_bias",
    "round_repeats",
    "eca_kernel_size",
    "effnet_stages",
    "FPN_NORMS",
    "REUSE_DEBLUR_PRESETS",
    "trunk_source_name",
]

# The checkpoint metadata's ``family`` for SiamRPN models (both frameworks).
FAMILY = "siamrpn"
TOTAL_STRIDE = 8
BACKBONES = ("effnet-eca", "alexnet", "deblur-fpn")
# The deblur-fpn backbone's decoder normalisations (DeblurGANConfig.norm's choices).
FPN_NORMS = ("batch", "none")

# EfficientNet-B0's stages 1-5 (Tan & Le 2019, Table 1): (expand ratio, kernel, stride, output channels, repeats).
# Stages 6-7 (stride 32) are not used. Stage 4's stride is 1 here instead of 2 (see effnet_stages).
EFFNET_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
)
EFFNET_STEM = 32
# Stages whose stride is set to 1 to keep the features at stride 8 (SiamRPN++'s practice with ResNet, without the
# dilation it adds: dilated depthwise convolutions are one more thing for NPU converters to get wrong, and the
# receptive field of stages 1-5 at stride 8 is already 211 px, more than the 127 px exemplar).
_UNSTRIDED_STAGES = (3,)

# The graphs' tensor names: the bundle's contract with the runtime (as converters/torch2onnx.py's GRAPH_IO for
# SiamFC). template: z (1, 3, 127, 127) -> kernel (1, 2C, k, k); search: x (1, 3, 255, 255) -> features
# (1, 2C, S, S); head: (kernel, features) -> cls (1, 2A, R, R), loc (1, 4A, R, R).
GRAPH_IO = {
    "template": (("z",), ("kernel",)),
    "search": (("x",), ("features",)),
    "head": (("kernel", "features"), ("cls", "loc")),
}


def prior_bias(num_anchors: int, prob: float):
    """Biases (2A,) of the last classification layer that start every anchor at target probability ``prob``:
    0 for the background channels, ``ln(prob / (1 − prob))`` for the target channels (RetinaNet's prior, π = 0.01).
    A loss summed over every anchor (``rpn-hsm``) starts from even odds otherwise, and thousands of negatives at
    p = 0.5 make the first steps' loss and gradients huge."""
    import numpy as np

    if not 0 < prob < 1:
        raise InvalidArgumentError(f"the prior probability must be in (0, 1), got {prob!r}")
    bias = np.zeros(2 * num_anchors, np.float32)
    bias[num_anchors:] = math.log(prob / (1.0 - prob))
    return bias


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel scaling: ``channels · width`` to the nearest multiple of ``divisor`` (at least
    ``divisor``), never more than 10 % below the scaled value (the reference implementation's rule)."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def round_repeats(repeats: int, depth: float) -> int:
    """EfficientNet's depth scaling: ``ceil(repeats · depth)`` blocks."""
    return int(math.ceil(repeats * depth))


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA's adaptive kernel size: ``t = int(|log2(C) / γ + b / γ|)``, ``t`` if odd else ``t + 1``.

    The ECA paper's eq. 12 ("the nearest odd number") as its authors' code computes it: truncate, then go up to
    odd. C = 16 -> 3, 64 -> 3, 256 -> 5, 1152 -> 5.
    """
    if not isinstance(channels, int) or channels < 1:
        raise InvalidArgumentError(f"ECA needs a positive channel count, got {channels!r}")
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return t if t % 2 else t + 1


def effnet_stages(width: float, depth: float) -> tuple[int, list[tuple[int, int, int, int, int, int]]]:
    """(stem channels, stages as (expand, kernel, stride, in, out, repeats)) for the width/depth multipliers."""
    stem = round_filters(EFFNET_STEM, width)
    stages, cin = [], stem
    for i, (expand, kernel, stride, cout, repeats) in enumerate(EFFNET_B0_STAGES):
        cout = round_filters(cout, width)
        stages.append((expand, kernel, 1 if i in _UNSTRIDED_STAGES else stride, cin, cout,
                       round_repeats(repeats, depth)))
        cin = cout
    return stem, stages


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@dataclass(frozen=True)
class SiamRPNConfig:
    """Architecture of one SiamRPN model. The crops (127/255) and the stride (8) are fixed.

    ``backbone``: ``"effnet-eca"``, ``"alexnet"`` or ``"deblur-fpn"``. ``width``/``depth``: EfficientNet's channel
    and depth multipliers (effnet-eca); for deblur-fpn ``width`` is MobileNetV2's (the deblurrer's
    ``DeblurGANConfig.width``) and ``depth`` is unused. ``fpn_channels`` / ``fpn_norm`` (deblur-fpn only): the
    deblurrer's ``fpn_channels`` / ``norm``; ``top_down``: the FPN's top-down path to stride 8 (its 1/8 map is the
    backbone's output, ``fpn_channels`` wide) or, False, the stride-8 encoder map ``enc2`` alone. ``alexnet_channels``: conv1..conv5 widths (alexnet only). ``corr_channels``:
    channels of each of the two correlations (classification and regression; the template and search adjust
    convolutions output twice this). ``anchor_ratios`` (h/w) and ``anchor_scales`` (anchor side / stride, for a
    square anchor): one anchor per (ratio, scale), pysot's integer rounding (see
    :func:`edgetrack.tracking.siamrpn.anchor_shapes`). ``name``: the preset's name, or ``"custom"``.
    """

    backbone: str = "effnet-eca"
    width: float = 1.0
    depth: float = 1.0
    alexnet_channels: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)
    corr_channels: int = 128
    anchor_ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    anchor_scales: tuple[float, ...] = (8.0,)
    fpn_channels: int = 64
    fpn_norm: str = "batch"
    top_down: bool = True
    name: str = "custom"

    exemplar_size = 127
    instance_size = 255
    total_stride = TOTAL_STRIDE

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise InvalidArgumentError(
                f"SiamRPNConfig.backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        for name in ("width", "depth"):
            if not _positive_number(getattr(self, name)):
                raise InvalidArgumentError(f"SiamRPNConfig.{name} must be a finite number > 0, "
                                           f"got {getattr(self, name)!r}")
        channels = tuple(self.alexnet_channels)
        if len(channels) != 5 or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
            raise InvalidArgumentError(f"SiamRPNConfig.alexnet_channels must be five positive integers, "
                                       f"got {self.alexnet_channels!r}")
        object.__setattr__(self, "alexnet_channels", channels)
        c = self.corr_channels
        if not isinstance(c, int) or isinstance(c, bool) or c < 1:
            raise InvalidArgumentError(f"SiamRPNConfig.corr_channels must be a positive integer, got {c!r}")
        for name in ("anchor_ratios", "anchor_scales"):
            values = tuple(float(v) if _positive_number(v) else v for v in getattr(self, name))
            if not values or not all(_positive_number(v) for v in values):
                raise InvalidArgumentError(f"SiamRPNConfig.{name} must be one or more finite numbers > 0, "
                                           f"got {getattr(self, name)!r}")
            object.__setattr__(self, name, values)
        f = self.fpn_channels
        if not isinstance(f, int) or isinstance(f, bool) or f < 1:
            raise InvalidArgumentError(f"SiamRPNConfig.fpn_channels must be a positive integer, got {f!r}")
        if self.fpn_norm not in FPN_NORMS:
            raise InvalidArgumentError(f"SiamRPNConfig.fpn_norm must be one of {', '.join(FPN_NORMS)}, "
                                       f"got {self.fpn_norm!r}")
        if not isinstance(self.top_down, bool):
            raise InvalidArgumentError(f"SiamRPNConfig.top_down must be True or False, got {self.top_down!r}")
        if self.backbone == "deblur-fpn":
            self.deblur_config()  # the deblurrer's own checks (width in (0, 4])

    def deblur_config(self):
        """The :class:`~edgetrack.models.deblur_config.DeblurGANConfig` whose generator's encoder (and FPN) this
        deblur-fpn backbone is: width, FPN channels and normalisation; the rest of it (the image decoder's heads)
        is not part of the tracker."""
        from edgetrack.models.deblur_config import DeblurGANConfig

        return DeblurGANConfig(width=float(self.width), fpn_channels=self.fpn_channels, norm=self.fpn_norm)

    # -- geometry ------------------------------------------------------------------------------------------------
    @property
    def backbone_channels(self) -> int:
        """Channels of the backbone's output."""
        if self.backbone == "alexnet":
            return self.alexnet_channels[4]
        if self.backbone == "deblur-fpn":
            return self.fpn_channels if self.top_down else self.deblur_config().encoder_channels[2]
        return effnet_stages(self.width, self.depth)[1][-1][4]

    @property
    def template_feature_size(self) -> int:
        """Side of the backbone's template map (before the centre crop)."""
        return 6 if self.backbone == "alexnet" else 15

    @property
    def template_crop(self) -> int:
        """Cells cut from each side of the template map: 4 for EfficientNet, which pads, so that only the centre 7×7
        is kept (SiamRPN++'s crop: the outer cells see mostly padding and context, and a 15×15 kernel would
        correlate the whole exemplar); 0 for AlexNet, which does not pad."""
        return 0 if self.backbone == "alexnet" else 4

    @property
    def search_feature_size(self) -> int:
        """Side of the backbone's search map."""
        return 22 if self.backbone == "alexnet" else 31

    @property
    def kernel_size(self) -> int:
        """Side of the correlation kernel (after the crop and the head's 3×3 valid adjust convolution)."""
        return self.template_feature_size - 2 * self.template_crop - 2

    @property
    def search_size(self) -> int:
        """Side of the correlated search features (after the 3×3 valid adjust convolution)."""
        return self.search_feature_size - 2

    @property
    def score_size(self) -> int:
        """Side of the classification and regression maps: 25 (effnet-eca, deblur-fpn) or 17 (alexnet)."""
        return self.search_size - self.kernel_size + 1

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_ratios) * len(self.anchor_scales)

    def tracking_params(self, **overrides):
        """The runtime's :class:`~edgetrack.tracking.siamrpn.SiamRPNParams` for this geometry and these anchors."""
        from edgetrack.tracking.siamrpn import SiamRPNParams

        return SiamRPNParams(exemplar_size=self.exemplar_size, instance_size=self.instance_size,
                             total_stride=self.total_stride, score_size=self.score_size,
                             anchor_ratios=self.anchor_ratios, anchor_scales=self.anchor_scales, **overrides)

    # -- serialisation -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"backbone": self.backbone, "width": self.width, "depth": self.depth,
             "alexnet_channels": list(self.alexnet_channels), "corr_channels": self.corr_channels,
             "anchor_ratios": list(self.anchor_ratios), "anchor_scales": list(self.anchor_scales),
             "name": self.name}
        if self.backbone == "deblur-fpn":
            # Only here: the other backbones' checkpoints keep the fields (and bytes) they had before this backbone.
            d.update(fpn_channels=self.fpn_channels, fpn_norm=self.fpn_norm, top_down=self.top_down)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "SiamRPNConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgumentError(f"SiamRPNConfig has no field(s) {sorted(unknown)}; fields: {sorted(known)}")
        data = dict(data)
        for name in ("alexnet_channels", "anchor_ratios", "anchor_scales"):
            if name in data:
                data[name] = tuple(data[name])
        return cls(**data)


SIAMRPN_PRESETS: dict[str, SiamRPNConfig] = {
    # The paper's tracker: EfficientNet-B0 with ECA at full width and depth.
    "siamrpn-eca": SiamRPNConfig(backbone="effnet-eca", name="siamrpn-eca"),
    # Half the width and depth: 0.26 M parameters, a fifth of the search graph's multiply-adds (0.19 vs 0.97 G by
    # edgetrack.backends.simulator.graph_cost). Measured at 0.37x siamrpn-eca's CPU time per frame and 0.07-0.08 AUC
    # below it (benchmarks/results/rpn-loss-lite/), so it is not shipped.
    "siamrpn-eca-lite": SiamRPNConfig(backbone="effnet-eca", width=0.5, depth=0.5, corr_channels=64,
                                      name="siamrpn-eca-lite"),
    # The baseline: the original SiamRPN's AlexNet under the same head.
    "siamrpn-alexnet": SiamRPNConfig(backbone="alexnet", name="siamrpn-alexnet"),
    # Same geometry, a few channels and one block per stage: for CI and quick tests.
    "siamrpn-tiny": SiamRPNConfig(backbone="effnet-eca", width=0.25, depth=0.25, corr_channels=16,
                                  name="siamrpn-tiny"),
    # Feature reuse (the paper's "features DeblurGAN-v2 already extracted are reused by the tracking network"): the
    # trunk is deblurgan-lite's generator encoder and FPN down to stride 8 (width 0.5, 64 channels), initialised from
    # a trained deblurgan-lite checkpoint (edgetrack train --init-backbone); siamrpn-eca's head (C = 128).
    "siamrpn-reuse": SiamRPNConfig(backbone="deblur-fpn", width=0.5, fpn_channels=64, name="siamrpn-reuse"),
    # The same over deblurgan-tiny's encoder: for CI.
    "siamrpn-reuse-tiny": SiamRPNConfig(backbone="deblur-fpn", width=0.25, fpn_channels=32, corr_channels=16,
                                        name="siamrpn-reuse-tiny"),
}

# The deblurrer preset each reuse preset's trunk is the encoder of (what --init-backbone expects).
REUSE_DEBLUR_PRESETS = {"siamrpn-reuse": "deblurgan-lite", "siamrpn-reuse-tiny": "deblurgan-tiny"}


def trunk_source_name(name: str) -> str:
    """The DeblurGAN-v2 generator's checkpoint key a deblur-fpn backbone parameter copies: ``backbone.X`` ->
    ``fpn.X`` (the backbone keeps the generator's ``FPN`` submodule names, so the map is this one rename)."""
    prefix, _, rest = name.partition(".")
    if prefix != "backbone" or not rest:
        raise InvalidArgumentError(f"{name!r} is not a backbone parameter (backbone.<name>)")
    return f"fpn.{rest}"


def read_deblur_trunk(path, trunk_shapes: dict, config: SiamRPNConfig | None = None) -> tuple[dict, dict]:
    """The arrays of a trained DeblurGAN-v2 generator checkpoint that a deblur-fpn backbone copies, checked.

    ``trunk_shapes``: the backbone's checkpoint keys (``backbone.*``, in the model's order) and shapes. Each key maps
    to the generator's ``fpn.*`` key (:func:`trunk_source_name`); the first one that the file lacks or holds with
    another shape raises :class:`~edgetrack.errors.CheckpointError` naming both keys. The generator's image decoder
    (``head1``..``final``, ``fpn.lateral1``, ``fpn.lateral0``, ``fpn.td3``) is not copied. Returns (arrays by
    backbone key, a record for the tracker checkpoint's metadata: path, sha256, the deblurrer's config name).
    Framework-free: both twins' ``init_backbone`` call it.
    """
    import json

    from edgetrack.bundle import sha256_file
    from edgetrack.errors import CheckpointError
    from edgetrack.models.checkpoint_format import open_checkpoint
    from edgetrack.models.deblur_config import FAMILY as DEBLUR_FAMILY

    with open_checkpoint(path) as f:
        meta = dict(f.metadata() or {})
        if meta.get("family") != DEBLUR_FAMILY:
            raise CheckpointError(
                f"--init-backbone {str(path)!r} is not a DeblurGAN-v2 generator checkpoint "
                f"(family {meta.get('family')!r})",
                fix="pass the final.safetensors of an edgetrack train --model deblurgan-* run")
        try:
            deblur = json.loads(meta.get("config", "{}"))
        except ValueError:
            deblur = {}
        want = config.deblur_config().to_dict() if config is not None else {}
        hint = (f"train the tracker with the preset whose trunk is this deblurrer ({deblur.get('name')!r}: width "
                f"{deblur.get('width')}, fpn_channels {deblur.get('fpn_channels')}, norm {deblur.get('norm')!r}); "
                f"this model's trunk wants width {want.get('width')}, fpn_channels {want.get('fpn_channels')}, "
                f"norm {want.get('norm')!r}")
        keys = set(f.keys())
        arrays = {}
        for name, shape in trunk_shapes.items():
            source = trunk_source_name(name)
            shape = tuple(shape)
            if source not in keys:
                raise CheckpointError(
                    f"deblurrer {str(path)!r} has no {source!r} for the tracker's {name!r} (shape {shape})", fix=hint)
            got = tuple(f.get_slice(source).get_shape())
            if got != shape:
                raise CheckpointError(
                    f"deblurrer {str(path)!r}: {source!r} has shape {got}, the tracker's {name!r} has {shape}",
                    fix=hint)
            arrays[name] = f.get_tensor(source)
    record = {"path": str(path), "sha256": sha256_file(path), "deblur_config": deblur.get("name"),
              "tensors": len(arrays)}
    return arrays, record
