"""SiamRPN in PyTorch: EfficientNet-B0 with ECA (Deblur-SiamRPN's tracker) or AlexNet, and a depthwise RPN head.

The paper is shared/papers/deblur_siamrpn.txt (its tracker; the deblurring front end is
``models/torch/deblurgan.py``). A MindSpore twin will hold the same classes with the same submodule and parameter
names (plain ``Conv2d`` / ``BatchNorm2d`` / ``SiLU`` / ``ReLU``, ``Sequential`` indices and a ``ModuleList`` of
blocks), so one safetensors file (:mod:`edgetrack.models.torch.checkpoint`) loads into both.

Three graphs, as SiamFC's (:data:`GRAPH_IO` names their tensors). The tracker runs :meth:`SiamRPN.template` once
(z -> kernel), :meth:`SiamRPN.search` per frame (x -> features) and the head (kernel, features -> cls, loc);
:func:`graph_modules` wraps them for export. Training calls ``forward(z, x)`` on a batch of pairs.

Backbones (:class:`EfficientNetECA`, :class:`AlexNetRPN`) and the geometry, for 127 / 255 px crops (``C`` =
``corr_channels``; cell ``i``'s centre in input pixels):

==================  ==========  ===========  ==================================================================
 map                 template    search       centre of cell ``i``
==================  ==========  ===========  ==================================================================
 effnet stem (s2)    63×63       127×127      2·i + 1
 stage 1             63×63       127×127      2·i + 1     (16 ch at width 1)
 stage 2 (s2)        31×31       63×63        4·i + 3     (24 ch)
 stage 3 (s2)        15×15       31×31        8·i + 7     (40 ch)
 stage 4, stage 5    15×15       31×31        8·i + 7     (80, 112 ch: stage 4's stride 2 -> 1)
 centre crop (4)     7×7         —            8·i + 39    (template only)
 adjust 3×3 valid    5×5×2C      29×29×2C     template 8·i + 47 (centre cell 2 -> 63), search 8·i + 15
 score / anchors     25×25: cell ``r`` at 8·r + 31 of the search crop (centre ``r`` = 12 -> 127)
------------------  ----------  -----------  ------------------------------------------------------------------
 alexnet conv5       6×6         22×22        8·i + 43    (256 ch)
 adjust 3×3 valid    4×4×2C      20×20×2C     8·i + 51    (template centre between cells 1 and 2 -> 63)
 score / anchors     17×17: cell ``r`` at 8·r + 63 (centre ``r`` = 8 -> 127), the original SiamRPN's map
==================  ==========  ===========  ==================================================================

Why these strides and paddings. EfficientNet-B0 reaches stride 8 after stage 3 and 32 after stage 7; SiamRPN needs
stride 8, and 40 channels after stage 3 are too few. Stages 4-5 run at stride 8 (stride 1 where B0 has 2, no
dilation: see :mod:`edgetrack.models.siamrpn_config`); stages 6-7 are dropped. Stride-1 convolutions pad "same"
(``(k − 1) / 2``) as EfficientNet does; stride-2 convolutions pad ``(k − 3) / 2`` (0 for 3×3, 1 for 5×5), one less
than "same", so an odd map ``n`` becomes ``(n − 1) / 2`` cells centred on its odd cells: 127 -> 63 -> 31 -> 15 and
255 -> 127 -> 63 -> 31, and the crop's centre pixel (63 / 127) is a cell centre at every level (with "same"
padding 127 px would give 16 cells, none centred on pixel 63). Padding makes the features only approximately
translation-equivariant near the borders, as in SiamRPN++ with ResNet; the template's centre 7×7 is kept as there.

ECA (:class:`ECA`) replaces squeeze-and-excitation inside every MBConv: global average pooling, a 1-D convolution
across channels (kernel :func:`~edgetrack.models.siamrpn_config.eca_kernel_size`, no bias), sigmoid, rescale. The
1-D convolution is a ``Conv2d(1, 1, (1, k))`` over the pooled vector reshaped to (N, 1, 1, C) with constant shapes:
a plain 4-D Conv with a constant weight, which every converter handles (``Conv1d`` is a 3-D Conv, not on every NPU
list). SiLU exports at opset 11 as Sigmoid · Mul.

Head (:class:`RPNHead`): SiamRPN++'s depthwise cross-correlation RPN, with the classification and regression
branches' adjust convolutions merged into one convolution of 2C outputs per side (a convolution with 2C outputs *is*
two of C outputs side by side, and depthwise correlation is per channel, so one correlation of 2C channels equals
two of C): ``template_conv`` (3×3 valid, BN, ReLU; in the template graph, run once), ``search_conv`` (same, search
graph), the correlation, then channels ``[:C]`` -> ``cls_head`` (1×1, BN, ReLU, 1×1 -> 2A) and ``[C:]`` ->
``loc_head`` (-> 4A). Output layouts are pysot's (:mod:`edgetrack.tracking.siamrpn`).

The correlation's two forms. A convolution whose weight is a graph input (SiamRPN's up-channel head, SiamFC's head)
is the classic conversion failure on Ascend ATC, TensorRT and RKNN. The head graph therefore correlates with
:func:`xcorr_depthwise_export`: for each of the k×k kernel positions, a ``Slice`` of the search features times the
kernel's value there (``Mul`` broadcasting a (N, 2C, 1, 1) slice), summed (``Add``) — elementwise operators only,
and every ``Conv`` in the head has a constant weight. Training uses :func:`xcorr_depthwise`, the same sum as one
grouped convolution (faster); ``tests/test_siamrpn_torch.py`` checks they agree. Runtimes that take a Conv weight
computed at run time (ONNX Runtime, PyTorch) get that grouped form in their bundles too (``graph_modules(model,
head="grouped")``; ``edgetrack convert --target cpu|cuda``): 1.7 against 12.2 ms per frame for ``siamrpn-eca``'s
head on a 2-core CPU (``benchmarks/precision_speed.py`` with a bundle of each form, side by side).

Feature reuse (``deblur-fpn``, presets ``siamrpn-reuse`` / ``siamrpn-reuse-tiny``; issue #4)
------------------------------------------------------------------------------------------
The paper: "DeblurGAN-v2 deblurs first; features it already extracted are reused by the tracking network". Here that
means the tracker's trunk *is* the DeblurGAN-v2 generator's encoder (MobileNetV2 at the deblurrer's width, ``enc0``-
``enc4``) with its FPN's top-down path down to stride 8 (``lateral4``..``lateral2``, ``td1``, ``td2``): the
generator's 1/8 pyramid map, the level at which its decoder reads the image's structure, feeds SiamRPN's head
(:class:`DeblurFPN`; ``top_down=False`` takes the stride-8 encoder map ``enc2`` alone). ``edgetrack train --model
siamrpn-reuse --init-backbone DEBLUR.safetensors`` copies a trained deblurgan-lite's ``fpn.*`` tensors into
``backbone.*`` (:func:`init_backbone`; names mapped one by one, the first missing or mis-shaped one a
:class:`~edgetrack.errors.CheckpointError`; recorded as the checkpoint's ``backbone_init``); ``--freeze-backbone``
keeps them (gradient-free, BN statistics fixed: pure reuse, only the head learns), else they are fine-tuned.

Why this form. (1) It exports: the trunk is the generator's own export-safe operator set (Conv, Clip, Add, nearest
Resize, Slice, Concat) inside the existing template / search / head split, and nothing else changes downstream. (2)
A crop is encoded once: the search graph encodes the crop and correlates; there is no deblurred image, no second
network reading it. (3) The image decoder (``head1``..``final``) only trains: it is what taught the encoder to see
through blur, and it is dropped from every tracker graph. The paper's other reading (deblur, then deconvolve the
deblurrer's features back to a 255×255 image for SiamRPN) is the deblur stage edgetrack already has.

Geometry. MobileNetV2 pads "same" (3×3, stride 2, padding 1): an even map of ``n`` becomes ``n / 2`` cells centred
on even pixels, cell ``j`` of the stride-8 map on pixel ``8·j``, so a 255 crop's centre (127) falls between cells.
:class:`DeblurFPN` repeats the crop's first row and column (127 -> 128, 255 -> 256, multiples of 32 as the encoder
needs; pixel ``p`` moves to ``p + 1``) and drops each map's first row and column: cell ``i`` is then centred on
pixel ``8·i + 7`` and the maps are effnet-eca's (15×15 / 31×31, centre 7×7 kept, 25×25 scores, the same
:func:`~edgetrack.tracking.siamrpn.anchor_grid`). The padded centre (128 = 8·16 = 16·8 = 32·4) is a cell centre at
every pyramid level. Nearest upsampling followed by the FPN's 3×3 convolutions leans a stride-8 cell's receptive
field up/left by 1-2 px (cell 2j+1 takes coarse cell j), the same lean in the template as in the search map, so it
cancels in the correlation (``tests/test_siamrpn_reuse.py`` measures both).

Cost at inference (multiply-adds of the exported graphs, :func:`edgetrack.backends.simulator.graph_cost`, one crop):

- siamrpn-reuse (deblur-fpn, width 0.5, FPN 64, C = 128): search 0.272 G, template 0.041 G;
- siamrpn-eca + deblurgan-lite's deblur stage: search 0.968 + 0.713 (deblur_search) = 1.681 G, template
  0.183 + 0.178 = 0.361 G;
- siamrpn-eca alone (no deblurring): search 0.968 G, template 0.183 G.

The head graph is the same (0.023 G, C = 128). Of siamrpn-reuse's search graph, 0.124 G is the head's 3×3 search
adjust convolution (64 -> 256 channels, 31×31 -> 29×29) and about 0.15 G the trunk: per searched crop about a
sixth of deblurring and tracking, and below siamrpn-eca alone, i.e. below the deblur pipeline even on the sharp
frames whose deblurring its blur gate skips.

How it tracks (``benchmarks/results/rpn-ohem-reuse/``: 6 000 steps from the shipped deblurgan-lite, the report's
30-sequence test set): fine-tuned, 0.574 / 0.605 AUC sharp / blurred against siamrpn-eca's 0.671 / 0.666 and
deblur-siamrpn's 0.668 / 0.657, at ×0.40 of siamrpn-eca's CPU time per frame, and the only SiamRPN that tracks
better on blurred video than on sharp; frozen (pure reuse), 0.554 / 0.411: the deblurrer's features need the
tracking loss.
"""
from __future__ import annotations

import json

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError
from edgetrack.models.siamrpn_config import (
    FAMILY,
    GRAPH_IO,
    SIAMRPN_PRESETS,
    TOTAL_STRIDE,
    SiamRPNConfig,
    eca_kernel_size,
    effnet_stages,
    prior_bias,
)
from edgetrack.models.deblur_config import ENCODER_STAGES, make_divisible
from edgetrack.models.siamrpn_config import read_deblur_trunk
from edgetrack.models.torch.checkpoint import checkpoint_state, load_weights, read_metadata, save_weights
from edgetrack.models.torch.deblurgan import InvertedResidual, _conv_bn_relu6, _decoder_conv, _upsample
from edgetrack.models.torch.siamfc import AlexNet

__all__ = [
    "SiamRPNConfig",
    "SIAMRPN_PRESETS",
    "GRAPH_IO",
    "TOTAL_STRIDE",
    "ECA",
    "MBConv",
    "EfficientNetECA",
    "AlexNetRPN",
    "DeblurFPN",
    "RPNHead",
    "SiamRPN",
    "build_siamrpn",
    "graph_modules",
    "HEAD_FORMS",
    "xcorr_depthwise",
    "xcorr_depthwise_export",
    "rpn_loss",
    "RPNLoss",
    "RPN_CLS_LOSSES",
    "hardest_negatives",
    "save_siamrpn",
    "load_siamrpn",
    "init_backbone",
]


# ------------------------------------------------------------------------------------------------ backbones
class ECA(nn.Module):
    """Efficient channel attention: ``x · sigmoid(conv1d_k(avgpool(x)))`` across channels, no bias.

    The 1-D convolution over the C pooled values is a ``Conv2d(1, 1, (1, k))`` on them laid out as (N, 1, 1, C);
    the reshapes use the constant ``channels``, so the exported graph has constant shapes only.
    """

    def __init__(self, channels: int, gamma: float = 2.0, b: float = 1.0):
        super().__init__()
        self.channels = int(channels)
        k = eca_kernel_size(self.channels, gamma, b)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(1, 1, (1, k), padding=(0, (k - 1) // 2), bias=False)

    @property
    def kernel_size(self) -> int:
        return self.conv.kernel_size[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x).reshape(-1, 1, 1, self.channels)
        y = torch.sigmoid(self.conv(y)).reshape(-1, self.channels, 1, 1)
        return x * y


def _pad(kernel: int, stride: int) -> int:
    """'same' for stride 1; one less for stride 2, so odd maps keep their centre on a cell (module docstring)."""
    return (kernel - 1) // 2 if stride == 1 else (kernel - 3) // 2


class MBConv(nn.Module):
    """EfficientNet's inverted residual block with ECA instead of SE: [expand 1×1, BN, SiLU], depthwise k×k, BN,
    SiLU, ECA, project 1×1, BN, + input when the shape is kept. No drop-path: the trainers rely on a model without
    random layers (exact resumption)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(mid)
        self.dw_conv = nn.Conv2d(mid, mid, kernel, stride, _pad(kernel, stride), groups=mid, bias=False)
        self.dw_bn = nn.BatchNorm2d(mid)
        self.eca = ECA(mid)
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU()
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.expand_bn(self.expand_conv(x))) if self.has_expand else x
        y = self.eca(self.act(self.dw_bn(self.dw_conv(y))))
        y = self.project_bn(self.project_conv(y))
        return x + y if self.residual else y


class EfficientNetECA(nn.Module):
    """EfficientNet-B0's stem and stages 1-5 (stride 8 throughout stages 3-5), ECA attention; ``width``/``depth``
    scale channels and blocks as EfficientNet does. Returns the stage-5 map."""

    def __init__(self, width: float = 1.0, depth: float = 1.0):
        super().__init__()
        stem, stages = effnet_stages(width, depth)
        self.stem_conv = nn.Conv2d(3, stem, 3, 2, _pad(3, 2), bias=False)
        self.stem_bn = nn.BatchNorm2d(stem)
        self.act = nn.SiLU()
        blocks = []
        for expand, kernel, stride, cin, cout, repeats in stages:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, expand, kernel, stride if r == 0 else 1))
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = stages[-1][4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem_bn(self.stem_conv(x)))
        for block in self.blocks:
            x = block(x)
        return x


class AlexNetRPN(AlexNet):
    """The original SiamRPN's AlexNet (conv1 11×11/2, pool, conv2 5×5, pool, conv3-conv5 3×3; BN; valid
    convolutions): SiamFC's :class:`~edgetrack.models.torch.siamfc.AlexNet` with the same parameter names, whose
    conv5 (BN, no ReLU) is the output."""

    def __init__(self, channels: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)):
        super().__init__(channels)
        self.out_channels = channels[4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[2]


class DeblurFPN(nn.Module):
    """The DeblurGAN-v2 generator's encoder and FPN top-down path to stride 8, as a SiamRPN backbone (the module
    docstring's "Feature reuse"). Submodules are named as the generator's ``fpn`` (:class:`~edgetrack.models.torch.
    deblurgan.FPN`): ``enc0``..``enc4``, ``lateral4``..``lateral2``, ``td1``, ``td2`` (``enc0``..``enc2`` only
    without ``top_down``), so ``backbone.X`` copies ``fpn.X``.

    Input: BGR 0..255 crops (the bundle's convention), scaled to the generator's [-1, 1] inside the graph. One
    replicated row and column on top and left (127 -> 128, 255 -> 256: multiples of 32, as the encoder needs), and the
    first cell of each axis dropped from the output: cell ``i`` is then centred on crop pixel ``8·i + 7``, the crop's
    centre on a cell centre at every level (127 -> 15×15, 255 -> 31×31, as :class:`EfficientNetECA`).
    """

    def __init__(self, width: float = 0.5, fpn_channels: int = 64, norm: str = "batch", top_down: bool = True):
        super().__init__()
        cin = make_divisible(32 * width)
        stages = ENCODER_STAGES if top_down else ENCODER_STAGES[:3]
        encoders = []
        for i, stage in enumerate(stages):
            blocks: list[nn.Module] = [_conv_bn_relu6(3, cin, 3, 2)] if i == 0 else []
            for expand, c, n, stride in stage:
                cout = make_divisible(c * width)
                for k in range(n):
                    blocks.append(InvertedResidual(cin, cout, stride if k == 0 else 1, expand))
                    cin = cout
            encoders.append(nn.Sequential(*blocks))
            setattr(self, f"enc{i}", encoders[-1])
        self.top_down = top_down
        channels = [make_divisible(stage[-1][1] * width) for stage in ENCODER_STAGES]
        if top_down:
            f = fpn_channels
            self.lateral4 = nn.Conv2d(channels[4], f, 1, bias=False)
            self.lateral3 = nn.Conv2d(channels[3], f, 1, bias=False)
            self.lateral2 = nn.Conv2d(channels[2], f, 1, bias=False)
            self.td1 = _decoder_conv(f, f, norm)
            self.td2 = _decoder_conv(f, f, norm)
            self.out_channels = f
        else:
            self.out_channels = channels[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (1.0 / 127.5) - 1.0
        # Slices and Concats, no Pad op (as the generator's pad_to_multiple).
        x = torch.cat([x[:, :, :1, :], x], dim=2)
        x = torch.cat([x[:, :, :, :1], x], dim=3)
        enc2 = self.enc2(self.enc1(self.enc0(x)))
        if self.top_down:
            enc3 = self.enc3(enc2)
            map4 = self.lateral4(self.enc4(enc3))
            map3 = self.td1(self.lateral3(enc3) + _upsample(map4, 2))
            out = self.td2(self.lateral2(enc2) + _upsample(map3, 2))
        else:
            out = enc2
        return out[:, :, 1:, 1:]


# ------------------------------------------------------------------------------------------------ correlation
def xcorr_depthwise(kernel: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Depthwise cross-correlation as one grouped convolution (training form).

    ``kernel`` (N, C, k, k) with one template per search map, or (1, C, k, k) for all of them; ``features``
    (N, C, S, S). Returns (N, C, S − k + 1, S − k + 1).
    """
    nk, nx = kernel.shape[0], features.shape[0]
    c = features.shape[1]
    if kernel.shape[1] != c:
        raise InvalidArgumentError(f"kernel has {kernel.shape[1]} channels, features {c}")
    if nk == 1:
        return F.conv2d(features, kernel.reshape(c, 1, *kernel.shape[2:]), groups=c)
    if nk != nx:
        raise InvalidArgumentError(
            f"correlation needs 1 template or one per search map; got {nk} templates for {nx} search maps")
    h, w = features.shape[2:]
    out = F.conv2d(features.reshape(1, nx * c, h, w), kernel.reshape(nk * c, 1, *kernel.shape[2:]), groups=nx * c)
    return out.reshape(nx, c, out.shape[2], out.shape[3])


def xcorr_depthwise_export(kernel: torch.Tensor, features: torch.Tensor, kernel_size: int,
                           out_size: int) -> torch.Tensor:
    """The same correlation with constant-weight operators only: Σ_ij Slice(features)_ij · kernel[:, :, i, j].

    ``kernel_size`` and ``out_size`` are the model's constants (not read from the tensors), so the exported
    Slices have constant bounds.
    """
    out = None
    for i in range(kernel_size):
        for j in range(kernel_size):
            term = features[:, :, i:i + out_size, j:j + out_size] * kernel[:, :, i:i + 1, j:j + 1]
            out = term if out is None else out + term
    return out


# ------------------------------------------------------------------------------------------------ head
def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class RPNHead(nn.Module):
    """Depthwise-correlation RPN head (module docstring): ``template``/``search`` adjust the backbone's features
    (2C channels: classification half, regression half), ``forward(kernel, features)`` correlates and predicts
    ``cls`` (N, 2A, R, R) and ``loc`` (N, 4A, R, R)."""

    def __init__(self, in_channels: int, corr_channels: int, num_anchors: int):
        super().__init__()
        c = corr_channels
        self.corr_channels = c
        self.template_conv = _conv_bn_relu(in_channels, 2 * c, 3)
        self.search_conv = _conv_bn_relu(in_channels, 2 * c, 3)
        self.cls_head = nn.Sequential(*_conv_bn_relu(c, c, 1), nn.Conv2d(c, 2 * num_anchors, 1))
        self.loc_head = nn.Sequential(*_conv_bn_relu(c, c, 1), nn.Conv2d(c, 4 * num_anchors, 1))

    def template(self, features: torch.Tensor) -> torch.Tensor:
        return self.template_conv(features)

    def search(self, features: torch.Tensor) -> torch.Tensor:
        return self.search_conv(features)

    def predict(self, corr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.corr_channels
        return self.cls_head(corr[:, :c]), self.loc_head(corr[:, c:])

    def forward(self, kernel: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predict(xcorr_depthwise(kernel, features))


# ------------------------------------------------------------------------------------------------ model
class SiamRPN(nn.Module):
    """SiamRPN: ``backbone``, ``head``; ``template`` / ``search`` / ``head`` for tracking, ``forward`` for
    training."""

    def __init__(self, config: SiamRPNConfig | None = None):
        super().__init__()
        config = SIAMRPN_PRESETS["siamrpn-eca"] if config is None else config
        if not isinstance(config, SiamRPNConfig):
            raise InvalidArgumentError(f"config must be a SiamRPNConfig, got {type(config).__name__}")
        self.config = config
        if config.backbone == "effnet-eca":
            self.backbone = EfficientNetECA(config.width, config.depth)
        elif config.backbone == "deblur-fpn":
            self.backbone = DeblurFPN(config.width, config.fpn_channels, config.fpn_norm, config.top_down)
        else:
            self.backbone = AlexNetRPN(config.alexnet_channels)
        self.head = RPNHead(self.backbone.out_channels, config.corr_channels, config.num_anchors)
        # Set by init_backbone: the deblurrer the trunk came from (saved in the checkpoint's metadata), and whether
        # the trunk is frozen (no gradients, BN statistics kept: train() leaves it in eval mode).
        self.backbone_init: dict | None = None
        self.frozen_backbone = False
        self.reset_parameters()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out) convolutions and BN at identity (EfficientNet's and siamfc-pytorch's); the last
        classification layer at N(0, 0.01²) and the last regression layer at N(0, 0.001²), biases 0, so training
        starts from even odds and offsets near zero (``exp(dw)`` near 1)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for layer, std in ((self.head.cls_head[-1], 0.01), (self.head.loc_head[-1], 0.001)):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)

    def set_prior(self, prob: float) -> None:
        """Start every anchor at target probability ``prob`` (:func:`~edgetrack.models.siamrpn_config.prior_bias`;
        the trainers do it for the ``rpn-hsm`` loss)."""
        with torch.no_grad():
            bias = self.head.cls_head[-1].bias
            bias.copy_(torch.from_numpy(prior_bias(self.config.num_anchors, prob)).to(bias))

    def template(self, z: torch.Tensor) -> torch.Tensor:
        """(N, 3, 127, 127) exemplar crops -> (N, 2C, k, k) correlation kernels."""
        f = self.backbone(z)
        c = self.config.template_crop
        if c:
            f = f[:, :, c:-c, c:-c]
        return self.head.template(f)

    def search(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 255, 255) search crops -> (N, 2C, S, S) features."""
        return self.head.search(self.backbone(x))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pairs: (N, 3, 127, 127), (N, 3, 255, 255) -> cls (N, 2A, R, R), loc (N, 4A, R, R)."""
        return self.head(self.template(z), self.search(x))


def build_siamrpn(name_or_config: str | SiamRPNConfig = "siamrpn-eca") -> SiamRPN:
    """A freshly initialised model from a preset name (``SIAMRPN_PRESETS``) or a :class:`SiamRPNConfig`."""
    if isinstance(name_or_config, SiamRPNConfig):
        return SiamRPN(name_or_config)
    if isinstance(name_or_config, str):
        if name_or_config not in SIAMRPN_PRESETS:
            raise UnknownChoiceError("SiamRPN model", name_or_config, SIAMRPN_PRESETS,
                                     fix="pick a preset or pass a SiamRPNConfig")
        return SiamRPN(SIAMRPN_PRESETS[name_or_config])
    raise InvalidArgumentError(
        f"build_siamrpn takes a preset name or a SiamRPNConfig, got {type(name_or_config).__name__}")


class _TemplateGraph(nn.Module):
    def __init__(self, model: SiamRPN):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.template(z)


class _SearchGraph(nn.Module):
    def __init__(self, model: SiamRPN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.search(x)


HEAD_FORMS = ("elementwise", "grouped")


class _HeadGraph(nn.Module):
    """The head with the correlation in one of :data:`HEAD_FORMS`: ``elementwise`` (constant-weight operators
    only, :func:`xcorr_depthwise_export`) or ``grouped`` (one grouped Conv whose weight is the template's kernel,
    :func:`xcorr_depthwise`)."""

    def __init__(self, model: SiamRPN, form: str = "elementwise"):
        super().__init__()
        self.model, self.form = model, form

    def forward(self, kernel: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.model.config
        if self.form == "grouped":
            corr = xcorr_depthwise(kernel, features)
        else:
            corr = xcorr_depthwise_export(kernel, features, cfg.kernel_size, cfg.score_size)
        return self.model.head.predict(corr)


def graph_modules(model: SiamRPN, head: str = "elementwise") -> dict[str, nn.Module]:
    """The three graphs a deployment exports, named as :data:`GRAPH_IO`: ``template`` (z -> kernel), ``search``
    (x -> features), ``head`` ((kernel, features) -> (cls, loc)).

    ``head``: the correlation's form (:data:`HEAD_FORMS`). ``elementwise``, the default, converts for every NPU
    (module docstring); ``grouped`` is one depthwise Conv with the kernel as its weight, for runtimes that take a
    Conv weight computed at run time (ONNX Runtime, PyTorch): the same sums in about a seventh of the head's time on a 2-core CPU
    for ``siamrpn-eca`` (1.7 vs 12.2 ms), where the elementwise form's 25 Slice/Mul/Add triples each read the search
    features again.
    """
    if not isinstance(model, SiamRPN):
        raise InvalidArgumentError(f"graph_modules needs a SiamRPN, got {type(model).__name__}")
    if head not in HEAD_FORMS:
        raise UnknownChoiceError("head form", head, HEAD_FORMS)
    return {"template": _TemplateGraph(model), "search": _SearchGraph(model), "head": _HeadGraph(model, head)}


# ------------------------------------------------------------------------------------------------ loss
RPN_CLS_LOSSES = ("ce", "hsm", "ohem")
# The label rpn_targets gives a negative anchor it did not draw at random (rpn_targets.CANDIDATE; that module
# imports OpenCV, which a loss has no need of).
_CANDIDATE = -2


def hardest_negatives(nll: torch.Tensor, candidate: torch.Tensor, k: int) -> torch.Tensor:
    """Per pair, the ``k`` candidates with the highest loss: a bool mask shaped as ``nll`` (N, ...).

    ``candidate``: bool, the anchors to choose among; a pair with fewer than ``k`` gets all of them. No gradient flows
    through the choice. Ties are broken by position (the first in C order wins), not by ``topk``'s unspecified order:
    only the k-th largest *value* is taken from ``topk`` (the same whichever tied element it returns), every
    candidate above it is chosen, and the places left go to the candidates equal to it, first ones first. So the
    mask is a function of the losses alone, the same in PyTorch and MindSpore
    (:func:`edgetrack.models.mindspore.siamrpn.hardest_negatives`), and the gradient, which reaches only the chosen
    anchors' logits, is too.
    """
    n = nll.shape[0]
    with torch.no_grad():
        pool = candidate.reshape(n, -1)
        # Losses are >= 0, so -1 marks the others; they fill topk only where a pair has fewer than k candidates.
        score = torch.where(pool, nll.detach().reshape(n, -1), torch.full_like(pool, -1.0, dtype=nll.dtype))
        k = min(int(k), score.shape[1])
        kth = score.topk(k, dim=1).values[:, -1:]
        above = score > kth
        tied = (score == kth) & pool
        room = k - above.sum(1, keepdim=True)
        chosen = (above | (tied & (tied.cumsum(1) <= room))) & pool
    return chosen.reshape(nll.shape)


def rpn_loss(cls: torch.Tensor, loc: torch.Tensor, cls_target: torch.Tensor, loc_target: torch.Tensor,
             loc_weight: torch.Tensor, reg_weight: float = 1.2, sigma: float = 3.0, cls_loss: str = "ce",
             alpha: float = 0.6, gamma: float = 2.0, neg_hard: int = 32) -> torch.Tensor:
    """SiamRPN's loss (the paper's eq. 2-4): ``L_cls + λ · L_reg``.

    ``cls`` (N, 2A, R, R) logits and ``loc`` (N, 4A, R, R) in the head's layout; targets from
    :mod:`edgetrack.models.rpn_targets`: ``cls_target`` (N, A, R, R) 1 / 0 / −1 (ignored) / −2 (a candidate for
    ``"ohem"``'s hard negatives, ignored by the others), ``loc_target`` (N, 4, A, R, R), ``loc_weight`` (N, A, R, R)
    1 on positives. ``L_reg``: smooth-L1 with ``σ`` (``0.5 σ² x²`` for ``|x| < 1/σ²``, else ``|x| − 0.5/σ²``;
    σ = 3 is Faster R-CNN's RPN value, the papers give none) summed over the four offsets, averaged over the
    positives. ``λ = reg_weight`` = 1.2, pysot's weight for SiamRPN (the paper gives none).

    ``L_cls`` by ``cls_loss``: ``"ce"``, the papers' two-class cross-entropy averaged over the labelled anchors (a
    sampled 64 per pair, :class:`~edgetrack.models.rpn_targets.AnchorTargetConfig`); ``"hsm"``, HSM-SiamFC's
    hard-sample-mining loss (:func:`edgetrack.models.torch.losses.hsm_loss`, ``α``, ``γ``) on the two-class logit
    ``v = cls₁ − cls₀`` (``sigmoid(v)`` is the softmax's target probability) of every labelled anchor, summed and
    divided by the number of positives (RetinaNet's normalisation for dense anchors: an average over thousands of
    easy negatives would leave the classification a negligible share of the loss). Meant for targets that label
    every negative anchor (``AnchorTargetConfig(total=None)``), so a look-alike in the search crop always counts.

    ``"ohem"``, online hard negative mining (Shrivastava et al. 2016) per pair: the same cross-entropy over the
    labelled anchors (the sampled positives and a few random negatives, ``AnchorTargetConfig(total=None,
    neg_random=16)``) and over each pair's ``neg_hard`` candidates (label −2) of highest cross-entropy under the
    current weights (:func:`hardest_negatives`; no gradient through the choice), averaged over all the anchors it
    uses (≤ 16 + 16 + 32 = 64 per pair, as many as the papers'). Why: with the papers' sampling SiamRPN places its
    box as well as HSM-SiamFC where both are on the target (IoU 0.83 vs 0.84), but is on the target in 84 % of
    frames against 93-95 %; it drifts to look-alikes and clutter inside the search crop, whose anchors are rarely
    among 48 negatives drawn from thousands (3 125 anchors per pair for ``siamrpn-eca``). The HSM loss on every
    anchor (``"hsm"``) reaches them but lost accuracy (AUC 0.553 against 0.692 on the same validation sequences:
    smaller boxes, less often on the target); OHEM keeps the papers' cross-entropy and its average over 64 anchors,
    and spends most of the negatives' share on the anchors that fire wrongly, a look-alike's first, while the
    random ones keep the easy background's scores calibrated.
    """
    n, a2, r, _ = cls.shape
    a = a2 // 2
    target = cls_target.long()
    sampled = target >= 0
    if cls_loss in ("ce", "ohem"):
        logp = F.log_softmax(cls.reshape(n, 2, a, r, r), dim=1)
        # A candidate (−2) is a negative: clamped to class 0.
        nll = -logp.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
        if cls_loss == "ohem":
            sampled = sampled | hardest_negatives(nll, target == _CANDIDATE, _check_neg_hard(neg_hard))
        l_cls = (nll * sampled).sum() / sampled.sum().clamp(min=1)
    elif cls_loss == "hsm":
        pair = cls.reshape(n, 2, a, r, r)
        yv = torch.where(target > 0, 1.0, -1.0) * (pair[:, 1] - pair[:, 0])
        alpha_t = torch.where(target > 0, alpha, 1.0 - alpha)
        focal = alpha_t * torch.sigmoid(-yv).pow(gamma) * F.softplus(-yv)
        l_cls = (focal * sampled).sum() / (target > 0).sum().clamp(min=1)
    else:
        raise UnknownChoiceError("cls_loss", cls_loss, RPN_CLS_LOSSES)
    diff = loc.reshape(n, 4, a, r, r) - loc_target
    l_reg = F.smooth_l1_loss(diff, torch.zeros_like(diff), reduction="none", beta=1.0 / sigma ** 2).sum(1)
    l_reg = (l_reg * loc_weight).sum() / loc_weight.sum().clamp(min=1)
    return l_cls + reg_weight * l_reg


def _check_neg_hard(neg_hard) -> int:
    if not isinstance(neg_hard, int) or isinstance(neg_hard, bool) or neg_hard < 1:
        raise InvalidArgumentError(f"the RPN loss's neg_hard must be an integer >= 1, got {neg_hard!r}",
                                   fix="pass the number of hardest negatives per pair (32 by default), or use "
                                   "cls_loss='ce' for none")
    return neg_hard


class RPNLoss(nn.Module):
    """:func:`rpn_loss` with its settings checked once (``neg_hard``: the hardest negatives per pair of ``"ohem"``)."""

    def __init__(self, reg_weight: float = 1.2, sigma: float = 3.0, cls_loss: str = "ce", alpha: float = 0.6,
                 gamma: float = 2.0, neg_hard: int = 32):
        super().__init__()
        if not (reg_weight >= 0 and sigma > 0):
            raise InvalidArgumentError(f"RPNLoss needs reg_weight >= 0 and sigma > 0, got {reg_weight}, {sigma}")
        if cls_loss not in RPN_CLS_LOSSES:
            raise UnknownChoiceError("cls_loss", cls_loss, RPN_CLS_LOSSES)
        if not (0 <= alpha <= 1 and gamma >= 0):
            raise InvalidArgumentError(f"RPNLoss needs 0 <= alpha <= 1 and gamma >= 0, got {alpha}, {gamma}")
        self.reg_weight, self.sigma = float(reg_weight), float(sigma)
        self.cls_loss, self.alpha, self.gamma = cls_loss, float(alpha), float(gamma)
        self.neg_hard = _check_neg_hard(neg_hard)

    def forward(self, cls, loc, cls_target, loc_target, loc_weight) -> torch.Tensor:
        return rpn_loss(cls, loc, cls_target, loc_target, loc_weight, self.reg_weight, self.sigma, self.cls_loss,
                        self.alpha, self.gamma, self.neg_hard)


# ------------------------------------------------------------------------------------------------ checkpoints
def init_backbone(model: SiamRPN, path, freeze: bool = False) -> dict:
    """Copy a trained DeblurGAN-v2 generator's encoder (and FPN top-down path) into a deblur-fpn ``model``'s backbone.

    Names are mapped explicitly (``backbone.X`` <- ``fpn.X``, :func:`~edgetrack.models.siamrpn_config.
    trunk_source_name`); the first backbone tensor the file lacks or holds with another shape raises
    :class:`~edgetrack.errors.CheckpointError` naming it, and nothing is copied then. ``freeze``: no gradients to the
    backbone and its BN statistics kept (pure reuse of the deblurrer's features); else it is fine-tuned. The record
    returned (path, sha256, deblurrer, frozen) is kept on the model and written into its checkpoints' metadata
    (``backbone_init``) by :func:`save_siamrpn`.
    """
    if not isinstance(model, SiamRPN) or model.config.backbone != "deblur-fpn":
        raise InvalidArgumentError(
            f"init_backbone needs a SiamRPN with the deblur-fpn backbone, got "
            f"{getattr(getattr(model, 'config', None), 'backbone', type(model).__name__)!r}",
            fix="train a siamrpn-reuse model (--model siamrpn-reuse) to start from a deblurrer's encoder")
    trunk = {f"backbone.{k}": v for k, v in checkpoint_state(model.backbone).items()}
    arrays, record = read_deblur_trunk(path, {k: tuple(v.shape) for k, v in trunk.items()}, model.config)
    with torch.no_grad():
        for name, tensor in trunk.items():
            tensor.copy_(torch.from_numpy(arrays[name]))
    record["frozen"] = bool(freeze)
    if freeze:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        model.frozen_backbone = True
        model.train(model.training)
    model.backbone_init = record
    return record


def save_siamrpn(model: SiamRPN, path, metadata: dict | None = None):
    """Save ``model`` with its configuration (``family``, ``config``) so :func:`load_siamrpn` can rebuild it; a
    model whose trunk came from a deblurrer (:func:`init_backbone`) records that as ``backbone_init``."""
    meta = {"family": FAMILY, "config": model.config.to_dict(), **(metadata or {})}
    if getattr(model, "backbone_init", None):
        meta.setdefault("backbone_init", model.backbone_init)
    return save_weights(model, path, meta)


def load_siamrpn(path) -> SiamRPN:
    """Rebuild the model a :func:`save_siamrpn` checkpoint describes and load its weights (eval mode, CPU)."""
    meta = read_metadata(path)
    if meta.get("family") != FAMILY or "config" not in meta:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a SiamRPN checkpoint (family {meta.get('family')!r}, "
            f"config {'present' if 'config' in meta else 'missing'})",
            fix="pass a file written by save_siamrpn, or build the model yourself and use load_weights",
        )
    try:
        config = SiamRPNConfig.from_dict(json.loads(meta["config"]))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unreadable SiamRPN config: {exc}") from exc
    model = SiamRPN(config)
    load_weights(model, path)
    return model.eval()
