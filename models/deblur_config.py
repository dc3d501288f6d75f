"""DeblurGAN-v2's architecture configuration and presets, framework-free (shared by the PyTorch and MindSpore twins).

Kept apart from the model file so the MindSpore twin, the converters and tools that only read a checkpoint's
metadata need not import torch. ``edgetrack.models.torch.deblurgan`` re-exports every name here.

The generator is DeblurGAN-v2's ``FPNMobileNet`` (see :mod:`edgetrack.models.torch.deblurgan`); the
discriminators are its double-scale pair (a PatchGAN and a deeper, whole-crop one). Only the generator is deployed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgetrack.errors import InvalidArgumentError

__all__ = ["DeblurGANConfig", "DEBLURGAN_PRESETS", "FAMILY", "NORMS", "SIZE_MULTIPLE", "ENCODER_STAGES",
           "make_divisible"]

# The checkpoint metadata's ``family`` for DeblurGAN-v2 generators (both frameworks).
FAMILY = "deblurgan"

# Decoder normalisations (the MobileNetV2 encoder always has BatchNorm: see the model's docstring).
NORMS = ("batch", "none")

# The encoder's total stride: the generator pads its input inside the graph to a multiple of this.
SIZE_MULTIPLE = 32

# MobileNetV2's inverted-residual stages (expansion t, channels c, blocks n, first stride s) as DeblurGAN-v2's FPN
# slices them: enc0 = features[0:2] (stem + the t=1 block, stride 2), enc1 = [2:4] (1/4), enc2 = [4:7] (1/8),
# enc3 = [7:11] (1/16), enc4 = [11:16] (three 96-channel blocks and the first two 160-channel ones, 1/32).
# features[16:] (the third 160 block, 320 and the 1280 head) are unused by the FPN and left out.
ENCODER_STAGES: tuple[tuple[tuple[int, int, int, int], ...], ...] = (
    ((1, 16, 1, 1),),
    ((6, 24, 2, 2),),
    ((6, 32, 3, 2),),
    ((6, 64, 4, 2),),
    ((6, 96, 3, 1), (6, 160, 2, 2)),
)
STEM_CHANNELS = 32


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding (torchvision's ``_make_divisible``): nearest multiple of ``divisor``, at least
    ``divisor``, never more than 10 % below ``value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class DeblurGANConfig:
    """Architecture of one DeblurGAN-v2 (generator and discriminators).

    ``width``: MobileNetV2's width multiplier (1.0 in DeblurGAN-v2). ``fpn_channels``/``head_channels``: the FPN's
    top-down channels and the segmentation-style heads' channels (DeblurGAN-v2's MobileNet variant: 128 and 64).
    ``norm``: the decoder's normalisation, ``"batch"`` (BatchNorm, folded into the convolutions at export) or
    ``"none"`` (convolutions with bias); the encoder always uses BatchNorm. ``export_sizes``: the square input sides
    a deployment exports the generator at — the tracker's search crop (255) and template crop (127) by default.
    ``disc_channels``: the discriminators' first-layer width (pix2pix ``ndf``); ``patch_layers``: stride-2 layers of
    the PatchGAN (3: the 70×70 PatchGAN); ``global_layers``: those of the whole-crop discriminator (5 as
    DeblurGAN-v2's ``full`` discriminator: a 286-pixel receptive field, more than a 255 crop). ``name``: the preset's
    name, or ``"custom"``.
    """

    width: float = 1.0
    fpn_channels: int = 128
    head_channels: int = 64
    norm: str = "batch"
    export_sizes: tuple[int, ...] = (255, 127)
    disc_channels: int = 64
    patch_layers: int = 3
    global_layers: int = 5
    name: str = "custom"

    def __post_init__(self):
        if not (isinstance(self.width, (int, float)) and not isinstance(self.width, bool)
                and math.isfinite(self.width) and 0 < self.width <= 4):
            raise InvalidArgumentError(f"DeblurGANConfig.width must be a number in (0, 4], got {self.width!r}")
        object.__setattr__(self, "width", float(self.width))
        for name in ("fpn_channels", "head_channels", "disc_channels", "patch_layers", "global_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"DeblurGANConfig.{name} must be a positive integer, got {value!r}")
        if self.head_channels < 2 or self.head_channels % 2:
            raise InvalidArgumentError(
                f"DeblurGANConfig.head_channels must be even and >= 2 (the last smoothing conv halves it), "
                f"got {self.head_channels}")
        if self.norm not in NORMS:
            raise InvalidArgumentError(f"DeblurGANConfig.norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        try:
            sizes = tuple(int(s) for s in self.export_sizes)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"DeblurGANConfig.export_sizes must be square input sides, e.g. (255, 127), got "
                f"{self.export_sizes!r}") from None
        if not sizes or any(s < 16 for s in sizes):
            raise InvalidArgumentError(f"DeblurGANConfig.export_sizes must be one or more sides >= 16, got {sizes}")
        object.__setattr__(self, "export_sizes", sizes)

    @property
    def encoder_channels(self) -> tuple[int, int, int, int, int]:
        """Output channels of enc0..enc4 at this width (16, 24, 32, 64, 160 at width 1)."""
        channels = tuple(make_divisible(stage[-1][1] * self.width) for stage in ENCODER_STAGES)
        return channels  # type: ignore[return-value]

    @property
    def stem_channels(self) -> int:
        return make_divisible(STEM_CHANNELS * self.width)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["export_sizes"] = list(self.export_sizes)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "DeblurGANConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgumentError(f"DeblurGANConfig has no field(s) {sorted(unknown)}; fields: {sorted(known)}")
        data = dict(data)
        if "export_sizes" in data:
            data["export_sizes"] = tuple(int(s) for s in data["export_sizes"])
        return cls(**data)


DEBLURGAN_PRESETS: dict[str, DeblurGANConfig] = {
    # DeblurGAN-v2's edge model: FPN over MobileNetV2 (width 1), 128 FPN / 64 head channels.
    "deblurgan-v2": DeblurGANConfig(name="deblurgan-v2"),
    # The CPU edge variant: MobileNetV2 at width 0.5 and half the FPN/head channels (64 / 32). The decoder's
    # full-resolution layers dominate the cost at 255x255, so the channels matter more than the encoder's width:
    # about a tenth of deblurgan-v2's time per 255x255 crop on ONNX Runtime's CPU provider
    # (benchmarks/results/deblur-lite/).
    "deblurgan-lite": DeblurGANConfig(width=0.5, fpn_channels=64, head_channels=32, name="deblurgan-lite"),
    # The same graph with a few channels and a shallow discriminator pair: for CI (trains in seconds on a CPU).
    "deblurgan-tiny": DeblurGANConfig(width=0.25, fpn_channels=32, head_channels=16, disc_channels=8,
                                      patch_layers=2, global_layers=3, name="deblurgan-tiny"),
}
