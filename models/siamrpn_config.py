"""SiamRPN's architecture configuration, presets and geometry, framework-free (shared by the framework twins).

Kept apart from the model file so the MindSpore twin, the converters and tools that only read a checkpoint's
config need not import torch. ``edgetrack.models.torch.siamrpn`` re-exports every name here.

Two backbones share one RPN head (see ``models/torch/siamrpn.py`` for the layers and the geometry table):

- ``effnet-eca``: EfficientNet-B0's stem and stages 1-5 with ECA instead of squeeze-and-excitation (the
  Deblur-SiamRPN paper's tracker), stage 4's stride 2 set to 1 so the features stay at stride 8;
  127 -> 15×15 template features (centre 7×7 kept), 255 -> 31×31 search features, 25×25 score map.
- ``alexnet``: the original SiamRPN's AlexNet (conv1-conv5, 96/256/384/384/256), valid convolutions;
  127 -> 6×6, 255 -> 22×22, 17×17 score map. The paper's baseline.

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
]

# The checkpoint metadata's ``family`` for SiamRPN models (both frameworks).
FAMILY = "siamrpn"
TOTAL_STRIDE = 8
BACKBONES = ("effnet-eca", "alexnet")

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

    ``backbone``: ``"effnet-eca"`` or ``"alexnet"``. ``width``/``depth``: EfficientNet's channel and depth
    multipliers (effnet-eca only). ``alexnet_channels``: conv1..conv5 widths (alexnet only). ``corr_channels``:
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

    # -- geometry ------------------------------------------------------------------------------------------------
    @property
    def backbone_channels(self) -> int:
        """Channels of the backbone's output."""
        if self.backbone == "alexnet":
            return self.alexnet_channels[4]
        return effnet_stages(self.width, self.depth)[1][-1][4]

    @property
    def template_feature_size(self) -> int:
        """Side of the backbone's template map (before the centre crop)."""
        return 15 if self.backbone == "effnet-eca" else 6

    @property
    def template_crop(self) -> int:
        """Cells cut from each side of the template map: 4 for EfficientNet, which pads, so that only the centre 7×7
        is kept (SiamRPN++'s crop: the outer cells see mostly padding and context, and a 15×15 kernel would
        correlate the whole exemplar); 0 for AlexNet, which does not pad."""
        return 4 if self.backbone == "effnet-eca" else 0

    @property
    def search_feature_size(self) -> int:
        """Side of the backbone's search map."""
        return 31 if self.backbone == "effnet-eca" else 22

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
        """Side of the classification and regression maps: 25 (effnet-eca) or 17 (alexnet)."""
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
        return {"backbone": self.backbone, "width": self.width, "depth": self.depth,
                "alexnet_channels": list(self.alexnet_channels), "corr_channels": self.corr_channels,
                "anchor_ratios": list(self.anchor_ratios), "anchor_scales": list(self.anchor_scales),
                "name": self.name}

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
}
