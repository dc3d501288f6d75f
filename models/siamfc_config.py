"""SiamFC's architecture configuration and presets, framework-free (shared by the PyTorch and MindSpore twins).

Kept apart from the model files so the MindSpore twin (and tools that only read a checkpoint's config) need not
import torch. ``edgetrack.models.torch.siamfc`` re-exports every name here.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgetrack.errors import InvalidArgumentError

__all__ = ["SiamFCConfig", "SIAMFC_PRESETS", "CONV3_CROP", "CONV2_CROP", "TOTAL_STRIDE", "FAMILY"]

# Geometry of the backbone (see models/torch/siamfc.py's docstring): conv3 cell i+2 is conv5 cell i (two valid 3×3
# convs); conv2 cell i+7 is conv5's grid upsampled ×2, cell i ((43 - 15) / 4 = 7).
CONV3_CROP = 2
CONV2_CROP = 7
TOTAL_STRIDE = 8

# The checkpoint metadata's ``family`` for SiamFC models (both frameworks).
FAMILY = "siamfc"


@dataclass(frozen=True)
class SiamFCConfig:
    """Architecture of one SiamFC model. Geometry (127/255 crops, stride 8, 17×17 response) is fixed.

    ``channels``: output channels of conv1..conv5 (the paper: 192, 512, 768, 768, 512). ``fusion``: the HSM
    feature-fusion module on (HSM-SiamFC) or off (plain SiamFC on conv5). ``out_scale``: the head's constant
    factor. ``name``: the preset's name, or ``"custom"``.
    """

    channels: tuple[int, int, int, int, int] = (192, 512, 768, 768, 512)
    fusion: bool = True
    out_scale: float = 0.001
    name: str = "custom"

    exemplar_size = 127
    instance_size = 255
    response_size = 17
    total_stride = TOTAL_STRIDE

    def __post_init__(self):
        channels = tuple(self.channels)
        if len(channels) != 5 or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
            raise InvalidArgumentError(
                f"SiamFCConfig.channels must be five positive integers (conv1..conv5), got {self.channels!r}"
            )
        object.__setattr__(self, "channels", channels)
        if not isinstance(self.fusion, bool):
            raise InvalidArgumentError(f"SiamFCConfig.fusion must be True or False, got {self.fusion!r}")
        if not (isinstance(self.out_scale, (int, float)) and math.isfinite(self.out_scale) and self.out_scale > 0):
            raise InvalidArgumentError(f"SiamFCConfig.out_scale must be a finite number > 0, got {self.out_scale!r}")

    @property
    def feature_channels(self) -> int:
        """Channels of the features that are correlated (c2 with fusion, c5 without)."""
        return self.channels[1] if self.fusion else self.channels[4]

    @property
    def kernel_size(self) -> int:
        """Side of the template features (the correlation kernel)."""
        return 5 if self.fusion else 6

    @property
    def search_feature_size(self) -> int:
        return self.kernel_size + self.response_size - 1

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "fusion": self.fusion, "out_scale": self.out_scale, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict) -> "SiamFCConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgumentError(f"SiamFCConfig has no field(s) {sorted(unknown)}; fields: {sorted(known)}")
        data = dict(data)
        if "channels" in data:
            data["channels"] = tuple(int(c) for c in data["channels"])
        return cls(**data)


SIAMFC_PRESETS: dict[str, SiamFCConfig] = {
    # The paper's model: wide AlexNet + feature fusion (trained with the HSM loss).
    "siamfc-hsm": SiamFCConfig(fusion=True, name="siamfc-hsm"),
    # The baseline: the same backbone, conv5 correlated directly (trained with the balanced logistic loss).
    "siamfc": SiamFCConfig(fusion=False, name="siamfc"),
    # HSM-SiamFC at half and a quarter of the paper's width (about 1/4 and 1/16 of its multiply-adds): the CPU's
    # candidates, since the paper's width runs at about 1 FPS on a 2-core CPU.
    "siamfc-hsm-half": SiamFCConfig(channels=(96, 256, 384, 384, 256), fusion=True, name="siamfc-hsm-half"),
    "siamfc-hsm-quarter": SiamFCConfig(channels=(48, 128, 192, 192, 128), fusion=True, name="siamfc-hsm-quarter"),
    # Same geometry, a few channels: for CI and quick tests.
    "siamfc-tiny": SiamFCConfig(channels=(8, 16, 24, 24, 16), fusion=True, name="siamfc-tiny"),
}
