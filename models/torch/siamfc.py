"""HSM-SiamFC in PyTorch: wide AlexNet, conv2/conv3/conv5 feature fusion, cross-correlation + bias.

The paper is shared/papers/siamfc_hsm.txt (Table 1, Fig. 2, eq. 1, 9, 10). ``models/mindspore/siamfc.py`` is this
file's twin: same class names, same submodule and parameter names, so one safetensors file (see
:mod:`edgetrack.models.torch.checkpoint`) loads into both.

Three graphs. A tracker runs :meth:`SiamFC.template` once (z -> kernel), :meth:`SiamFC.search` per frame on a batch
of scales (x -> features) and ``SiamFC.head`` (kernel, features -> response); :func:`graph_modules` wraps them as
three ``nn.Module``\\ s for export. Training calls ``forward(z, x)`` on a batch of pairs.

Backbone (Table 1; siamfc-pytorch's ``AlexNetV3``): valid convolutions, BN + ReLU after conv1-conv4, BN only after
conv5; max-pool 3/2 after conv1 and conv2. Channel widths come from :class:`SiamFCConfig`.

=========  ============  =============  ========================================================
 map        template      search         centre of cell ``i`` in input pixels (stride, offset)
=========  ============  =============  ========================================================
 conv2      25×25×c2      57×57×c2       4·i + 15   (taken after ReLU, before pool2)
 conv3      10×10×c3      26×26×c3       8·i + 27
 conv5      6×6×c5        22×22×c5       8·i + 43
 fused      5×5×c2        21×21×c2       8·i + 47
 response   17×17 = 22 − 6 + 1 = 21 − 5 + 1; cell ``k`` at 8·k + 63 of the search crop (centre k = 8 -> 127)
=========  ============  =============  ========================================================

Feature fusion (:class:`FeatureFusion`, the paper's steps a-d, cascaded deep to shallow). The paper gives no sizes;
these are chosen so the module stays *fully convolutional* — template and search features of the same image content
are identical (``tests/test_siamfc_torch.py`` checks this exactly), which the correlation relies on — and so every
operation exports to ONNX from both frameworks:

1. conv5 into conv3. Both have stride 8, so the aligned "upsampling" of conv5 to conv3's grid is the identity: conv5
   cell ``i`` is conv3 cell ``i + 2``. conv3 is centre-cropped by 2 (to conv5's 6×6 / 22×22) instead; resizing
   6→10 and 22→26 bilinearly would stretch template and search by different factors (10/6 vs 26/22) and break
   the correlation. ``lateral5`` (1×1 conv + BN) brings c5 channels to c3; add; ReLU.
2. that into conv2. Bilinear upsampling ×2 with aligned corners (n -> 2n − 1: cell ``i`` -> ``2i``, midpoints in
   between) puts it exactly on conv2's stride-4 grid, 7 cells in from conv2's border (11×11 / 43×43); conv2 is
   cropped by 7 to match. ``lateral3`` (1×1 conv + BN, c3 -> c2 channels) runs *before* the upsampling: a 1×1
   convolution and a per-channel affine BN commute with interpolation whose weights sum to one, so this equals the
   paper's order (upsample, then conv) in inference and costs 4× less. Add; ReLU.
3. interpolation back to stride 8 (step d): a fixed 3×3 tent filter ``[1,2,1]ᵀ[1,2,1]/16`` with stride 2, no
   padding (bilinear downsampling by 2 with anti-aliasing): 11 -> 5, 43 -> 21, cell ``m`` at conv2-grid ``2m+1``.
   Plain subsampling would make the fusion pointless (it would only ever read conv2's even cells, where the
   upsampled map equals conv3's values); the tent keeps the odd, interpolated cells. Output channels = c2 (512 in
   the paper's width, the same count as plain SiamFC's conv5), followed by ``out_bn`` (BN, no ReLU — like conv5) so
   the fused features are zero-centred and the correlation starts near zero, as plain SiamFC's does.

Export-safe forms (DESIGN.md: MindSpore's ONNX export rejects bilinear resize, and its transposed convolution
exports but ONNX Runtime refuses the result): the ×2 bilinear upsampling is *nearest* ×2 followed by a fixed
depthwise 2×2 averaging convolution (valid) — exactly ``F.interpolate(size=2n-1, mode='bilinear',
align_corners=True)``, tested — and the downsampling is a fixed depthwise strided convolution. Both fixed kernels
are non-persistent buffers: no trainable parameters and not in the checkpoint; the MindSpore twin holds them as
constant tensors. The crops are plain slices. Checked on this machine (MindSpore 2.10 -> ONNX -> ONNX Runtime): the
twin must use the primitive ``ops.ResizeNearestNeighbor((2h, 2w))``, which exports as ``Resize``;
``ops.interpolate(mode="nearest")`` lowers to ResizeNearestNeighborV2, which the ONNX exporter rejects. Constant
depthwise ``ops.conv2d``, slices and the head's ``ops.conv2d(features, kernel)`` with a runtime kernel export and
run. PyTorch's export of the three graphs uses only Conv, MaxPool, Relu, Add, Mul, Slice and nearest Resize.

Head (eq. 10): ``response = out_scale · (kernel ⋆ features) + bias``. ``out_scale`` = 0.001 as siamfc-pytorch's
``out_scale`` (the MatConvNet original's ``adjust`` layer starts at 1e-3): the correlation sums c·k² products
(512·6·6 = 18 432 for plain SiamFC) of BN-normalised features, so raw scores are in the thousands and the logistic
losses would saturate at initialisation; the constant brings them to O(1). It is a constant, not a parameter; the
learnable part is ``head.bias`` (eq. 10's ``b``, shape (1,)). The head multiplies the *kernel* by ``out_scale`` before
correlating (``(out_scale · kernel) ⋆ features``, equal in real arithmetic): on an NPU that correlates in fp16 the
unscaled sum reaches ~1e7 and saturates at fp16's 65 504 (found by the Ascend simulator backend).
"""
from __future__ import annotations

import json

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError
# The configuration, presets and geometry constants are framework-free so the MindSpore twin shares them without
# importing torch; re-exported here under their old names.
from edgetrack.models.siamfc_config import (
    CONV2_CROP,
    CONV3_CROP,
    FAMILY,
    SIAMFC_PRESETS,
    TOTAL_STRIDE,  # noqa: F401  (re-exported: it was defined here)
    SiamFCConfig,
)
from edgetrack.models.torch.checkpoint import load_weights, read_metadata, save_weights

__all__ = [
    "SiamFCConfig",
    "SIAMFC_PRESETS",
    "AlexNet",
    "FeatureFusion",
    "CorrelationHead",
    "SiamFC",
    "build_siamfc",
    "graph_modules",
    "upsample2x_aligned",
    "save_siamfc",
    "load_siamfc",
]

def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AlexNet(nn.Module):
    """Table 1's wide AlexNet; returns (conv2 after ReLU, conv3, conv5), all unpadded."""

    def __init__(self, channels: tuple[int, int, int, int, int]):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.conv1 = _conv_bn(3, c1, 11, 2)
        self.pool1 = nn.MaxPool2d(3, 2)
        self.conv2 = _conv_bn(c1, c2, 5)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3 = _conv_bn(c2, c3, 3)
        self.conv4 = _conv_bn(c3, c4, 3)
        self.conv5 = _conv_bn(c4, c5, 3, relu=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f2 = self.conv2(self.pool1(self.conv1(x)))
        f3 = self.conv3(self.pool2(f2))
        f5 = self.conv5(self.conv4(f3))
        return f2, f3, f5


def _fixed_depthwise(kernel_1d: list[float], channels: int) -> torch.Tensor:
    k = torch.tensor(kernel_1d, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2.expand(channels, 1, len(kernel_1d), len(kernel_1d)).contiguous()


def upsample2x_aligned(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Bilinear ×2 upsampling with aligned corners, n -> 2n − 1, in export-safe operators.

    Nearest ×2 repeats each cell; a depthwise 2×2 average (``kernel``: (C, 1, 2, 2) of 0.25) over that gives the
    cell itself at even positions and the mean of two neighbours at odd ones — exactly
    ``F.interpolate(x, size=(2h-1, 2w-1), mode="bilinear", align_corners=True)``.
    """
    return F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), kernel, groups=x.shape[1])


class FeatureFusion(nn.Module):
    """The HSM feature-fusion module over conv2/conv3/conv5 (see the module docstring for the geometry)."""

    def __init__(self, c2: int, c3: int, c5: int):
        super().__init__()
        self.lateral5 = nn.Sequential(nn.Conv2d(c5, c3, 1), nn.BatchNorm2d(c3))
        self.lateral3 = nn.Sequential(nn.Conv2d(c3, c2, 1), nn.BatchNorm2d(c2))
        self.register_buffer("up_kernel", _fixed_depthwise([0.5, 0.5], c2), persistent=False)
        self.register_buffer("down_kernel", _fixed_depthwise([0.25, 0.5, 0.25], c2), persistent=False)
        # BN on the fused map, as conv5 has BN without ReLU: the fused features come out of a ReLU, so without it
        # they are all non-negative and the correlation of two of them starts large and positive on every cell
        # (+4.7 at initialisation, measured), which saturates both losses at the start of training.
        self.out_bn = nn.BatchNorm2d(c2)

    def forward(self, f2: torch.Tensor, f3: torch.Tensor, f5: torch.Tensor) -> torch.Tensor:
        # (1) conv5 into conv3: same stride, conv3 cropped onto conv5's grid.
        f3 = f3[:, :, CONV3_CROP:-CONV3_CROP, CONV3_CROP:-CONV3_CROP]
        f35 = F.relu(f3 + self.lateral5(f5))
        # (2) that into conv2: ×2 aligned bilinear upsampling onto conv2's grid, conv2 cropped to match.
        up = upsample2x_aligned(self.lateral3(f35), self.up_kernel)
        f2 = f2[:, :, CONV2_CROP:-CONV2_CROP, CONV2_CROP:-CONV2_CROP]
        f235 = F.relu(f2 + up)
        # (3) back to stride 8 through a fixed tent filter.
        return self.out_bn(F.conv2d(f235, self.down_kernel, stride=2, groups=f235.shape[1]))


class CorrelationHead(nn.Module):
    """``out_scale · (kernel ⋆ features) + bias`` (eq. 10).

    ``kernel``: (1, C, k, k) — one template against every search crop of ``features`` (N, C, S, S), as when
    tracking with several scales — or (N, C, k, k), one template per search crop (training pairs; a grouped
    convolution over the batch), or (N, C, k, k) against one search crop (1, C, S, S), every template against it
    (``scale_search="templates"``: the templates carry the scales). Returns (N, 1, S − k + 1, S − k + 1).
    """

    def __init__(self, out_scale: float = 0.001):
        super().__init__()
        self.out_scale = float(out_scale)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, kernel: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        nk, nx = kernel.shape[0], features.shape[0]
        # Scale before correlating: equal in real arithmetic, and the raw sum (c·k² products, ~1e7 on natural
        # crops) would saturate fp16 (max 65 504) on an NPU that correlates in fp16 (Ascend's AI Core).
        kernel = kernel * self.out_scale
        if nk == 1:
            out = F.conv2d(features, kernel)
        elif nx == 1:
            # Every template against the one search crop: the templates are the output channels.
            out = F.conv2d(features, kernel)
            out = out.reshape(nk, 1, out.shape[2], out.shape[3])
        elif nk == nx:
            c, h, w = features.shape[1:]
            out = F.conv2d(features.reshape(1, nx * c, h, w), kernel, groups=nk)
            out = out.reshape(nx, 1, out.shape[2], out.shape[3])
        else:
            raise InvalidArgumentError(
                f"correlation needs 1 template, one per search crop or 1 search crop; got {nk} templates for {nx} "
                "search crops"
            )
        return out + self.bias


class SiamFC(nn.Module):
    """HSM-SiamFC (``config.fusion``) or plain SiamFC: ``template``, ``search``, ``head``; ``forward(z, x)``."""

    def __init__(self, config: SiamFCConfig | None = None):
        super().__init__()
        config = SIAMFC_PRESETS["siamfc-hsm"] if config is None else config
        if not isinstance(config, SiamFCConfig):
            raise InvalidArgumentError(f"config must be a SiamFCConfig, got {type(config).__name__}")
        self.config = config
        _, c2, c3, _, c5 = config.channels
        self.backbone = AlexNet(config.channels)
        self.fusion = FeatureFusion(c2, c3, c5) if config.fusion else None
        self.head = CorrelationHead(config.out_scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """siamfc-pytorch's initialisation: Kaiming-normal (fan-out, ReLU) convolutions, BN at identity.

        ``head.bias`` starts at 0 (CorrelationHead's own initialisation)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features that get correlated: the fused map, or conv5 without fusion."""
        f2, f3, f5 = self.backbone(images)
        return self.fusion(f2, f3, f5) if self.fusion is not None else f5

    def template(self, z: torch.Tensor) -> torch.Tensor:
        """(N, 3, 127, 127) exemplar crops -> (N, C, k, k) correlation kernels."""
        return self.embed(z)

    def search(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 255, 255) search crops -> (N, C, S, S) features."""
        return self.embed(x)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Training pairs: (N, 3, 127, 127), (N, 3, 255, 255) -> (N, 1, 17, 17) response maps (logits)."""
        return self.head(self.template(z), self.search(x))


def build_siamfc(name_or_config: str | SiamFCConfig = "siamfc-hsm") -> SiamFC:
    """A freshly initialised model from a preset name (``SIAMFC_PRESETS``) or a :class:`SiamFCConfig`."""
    if isinstance(name_or_config, SiamFCConfig):
        return SiamFC(name_or_config)
    if isinstance(name_or_config, str):
        if name_or_config not in SIAMFC_PRESETS:
            raise UnknownChoiceError(
                "SiamFC model", name_or_config, SIAMFC_PRESETS, fix="pick a preset or pass a SiamFCConfig"
            )
        return SiamFC(SIAMFC_PRESETS[name_or_config])
    raise InvalidArgumentError(
        f"build_siamfc takes a preset name or a SiamFCConfig, got {type(name_or_config).__name__}"
    )


class _Branch(nn.Module):
    def __init__(self, model: SiamFC):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.embed(images)


def graph_modules(model: SiamFC) -> dict[str, nn.Module]:
    """The three graphs a deployment exports: ``template`` (z -> kernel), ``search`` (x -> features), ``head``."""
    return {"template": _Branch(model), "search": _Branch(model), "head": model.head}


def save_siamfc(model: SiamFC, path, metadata: dict | None = None):
    """Save ``model`` with its configuration (``family``, ``config``) so :func:`load_siamfc` can rebuild it."""
    meta = {"family": FAMILY, "config": model.config.to_dict(), **(metadata or {})}
    return save_weights(model, path, meta)


def load_siamfc(path) -> SiamFC:
    """Rebuild the model a :func:`save_siamfc` checkpoint describes and load its weights (eval mode, CPU)."""
    meta = read_metadata(path)
    if meta.get("family") != FAMILY or "config" not in meta:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a SiamFC checkpoint (family {meta.get('family')!r}, "
            f"config {'present' if 'config' in meta else 'missing'})",
            fix="pass a file written by save_siamfc, or build the model yourself and use load_weights",
        )
    try:
        config = SiamFCConfig.from_dict(json.loads(meta["config"]))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unreadable SiamFC config: {exc}") from exc
    model = SiamFC(config)
    load_weights(model, path)
    return model.eval()
