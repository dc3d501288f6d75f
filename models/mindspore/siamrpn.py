"""SiamRPN in MindSpore: the twin of :mod:`edgetrack.models.torch.siamrpn` (read its docstring for the design and the
geometry).

Same class names, same submodule names and the same checkpoint keys (``backbone.blocks.3.eca.conv.weight``,
``head.cls_head.3.bias``, ...), so one safetensors file (:mod:`edgetrack.models.mindspore.checkpoint`) loads into both
frameworks; ``tests/test_siamrpn_parity.py`` proves the two agree. The configuration, presets and geometry are
shared, framework-free, from :mod:`edgetrack.models.siamrpn_config`; nothing here imports torch.

MindSpore-specific choices (each checked on MindSpore 2.10 -> ONNX -> ONNX Runtime, tests/test_siamrpn_mindspore.py):

- Every ``construct`` names its first argument ``self``: the graph compiler parses the source.
- Convolutions pad explicitly (``pad_mode="pad"`` with the twin's symmetric padding, ``"valid"`` where it has none);
  MindSpore's default is "same", which pads asymmetrically for stride 2 and would move every cell centre.
- BatchNorm ``momentum=0.9`` is PyTorch's ``momentum=0.1`` (MindSpore weighs the old statistic), ``eps`` 1e-5; the
  checkpoint module renames gamma/beta/moving_mean/moving_variance to PyTorch's names.
- SiLU is written ``x · sigmoid(x)``, so the exported graph holds Sigmoid and Mul, which every converter knows.
- ECA's pooling is a mean over H and W (ONNX ``ReduceMean``) and its 1-D convolution a ``Conv2d(1, 1, (1, k))`` on
  the pooled vector laid out as (N, 1, 1, C), a plain 4-D Conv with a constant weight (as the twin), after a
  separate ``Pad`` of the channel axis: MindSpore's ONNX exporter writes a Conv's own asymmetric padding in the
  wrong order (see :class:`ECA`); every other convolution here pads symmetrically, which it gets right.
- The head's correlation has the twin's two forms: a grouped convolution with a runtime kernel for training
  (:func:`xcorr_depthwise`), and Slice × Mul + Add (:func:`xcorr_depthwise_export`) in the exported head graph,
  where every ``Conv`` then has a constant weight.
- Inside ``construct`` only built-in exceptions compile, so typed errors are raised outside it (``RPNHead.__call__``
  checks eagerly; ``construct`` raises a ``ValueError`` with the same message); weights are written with
  ``ops.assign`` so that graphs compiled earlier see them.
"""
from __future__ import annotations

import json

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Normal, One, Zero, initializer

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError
from edgetrack.models.deblur_config import ENCODER_STAGES, make_divisible
from edgetrack.models.mindspore.checkpoint import checkpoint_state, load_weights, read_metadata, save_weights
from edgetrack.models.mindspore.deblurgan import _TO_UNIT, InvertedResidual, _conv_bn_relu6, _decoder_conv, _upsample
from edgetrack.models.mindspore.siamfc import BN_EPS, BN_MOMENTUM, AlexNet
from edgetrack.models.siamrpn_config import read_deblur_trunk
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

__all__ = [
    "RPN_CLS_LOSSES",
    "HEAD_FORMS",
    "SiamRPNConfig",
    "SIAMRPN_PRESETS",
    "GRAPH_IO",
    "TOTAL_STRIDE",
    "SiLU",
    "ECA",
    "MBConv",
    "DeblurFPN",
    "init_backbone",
    "EfficientNetECA",
    "AlexNetRPN",
    "RPNHead",
    "SiamRPN",
    "build_siamrpn",
    "graph_modules",
    "xcorr_depthwise",
    "xcorr_depthwise_export",
    "rpn_loss",
    "RPNLoss",
    "hardest_negatives",
    "save_siamrpn",
    "load_siamrpn",
]


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv(cin: int, cout: int, kernel, stride: int = 1, padding=0, group: int = 1, bias: bool = False) -> nn.Conv2d:
    if padding == 0:
        return nn.Conv2d(cin, cout, kernel, stride, pad_mode="valid", group=group, has_bias=bias)
    return nn.Conv2d(cin, cout, kernel, stride, pad_mode="pad", padding=padding, group=group, has_bias=bias)


# ------------------------------------------------------------------------------------------------ backbones
class SiLU(nn.Cell):
    """``x · sigmoid(x)``, spelled out so the ONNX graph holds Sigmoid and Mul (no parameters, as ``nn.SiLU``)."""

    def construct(self, x):
        return x * ops.sigmoid(x)


class ECA(nn.Cell):
    """Efficient channel attention: ``x · sigmoid(conv1d_k(avgpool(x)))`` across channels, no bias (the twin's).

    The 1-D convolution is a ``Conv2d(1, 1, (1, k))`` on the pooled values laid out as (N, 1, 1, C); the reshapes use
    the constant ``channels``.
    """

    def __init__(self, channels: int, gamma: float = 2.0, b: float = 1.0):
        super().__init__()
        self.channels = int(channels)
        k = eca_kernel_size(self.channels, gamma, b)
        p = (k - 1) // 2
        # Padding along W only, as its own Pad: MindSpore 2.10's ONNX exporter copies a Conv's (top, bottom, left,
        # right) padding into ONNX's (top, left, bottom, right) ``pads`` unchanged, so padding=(0, 0, p, p) exports
        # as a Conv padded below and right, whose (N, 1, 2, C) output ONNX Runtime then refuses to reshape.
        self.pad = ops.Pad(((0, 0), (0, 0), (0, 0), (p, p))) if p else None
        self.conv = _conv(1, 1, (1, k))

    @property
    def kernel_size(self) -> int:
        return self.conv.kernel_size[1]

    def construct(self, x):
        y = x.mean(axis=(2, 3), keep_dims=True).reshape(-1, 1, 1, self.channels)
        if self.pad is not None:
            y = self.pad(y)
        y = ops.sigmoid(self.conv(y)).reshape(-1, self.channels, 1, 1)
        return x * y


def _pad(kernel: int, stride: int) -> int:
    """'same' for stride 1; one less for stride 2, so odd maps keep their centre on a cell (the twin's docstring)."""
    return (kernel - 1) // 2 if stride == 1 else (kernel - 3) // 2


class MBConv(nn.Cell):
    """EfficientNet's inverted residual block with ECA instead of SE (the twin's): [expand 1×1, BN, SiLU],
    depthwise k×k, BN, SiLU, ECA, project 1×1, BN, + input when the shape is kept. No drop-path."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = _conv(cin, mid, 1)
            self.expand_bn = _bn(mid)
        self.dw_conv = _conv(mid, mid, kernel, stride, _pad(kernel, stride), group=mid)
        self.dw_bn = _bn(mid)
        self.eca = ECA(mid)
        self.project_conv = _conv(mid, cout, 1)
        self.project_bn = _bn(cout)
        self.act = SiLU()
        self.residual = stride == 1 and cin == cout

    def construct(self, x):
        y = x
        if self.has_expand:
            y = self.act(self.expand_bn(self.expand_conv(x)))
        y = self.eca(self.act(self.dw_bn(self.dw_conv(y))))
        y = self.project_bn(self.project_conv(y))
        if self.residual:
            return x + y
        return y


class EfficientNetECA(nn.Cell):
    """EfficientNet-B0's stem and stages 1-5 (stride 8 throughout stages 3-5), ECA attention; returns stage 5."""

    def __init__(self, width: float = 1.0, depth: float = 1.0):
        super().__init__()
        stem, stages = effnet_stages(width, depth)
        self.stem_conv = _conv(3, stem, 3, 2, _pad(3, 2))
        self.stem_bn = _bn(stem)
        self.act = SiLU()
        blocks = []
        for expand, kernel, stride, cin, cout, repeats in stages:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, expand, kernel, stride if r == 0 else 1))
        self.blocks = nn.CellList(blocks)
        self.out_channels = stages[-1][4]

    def construct(self, x):
        x = self.act(self.stem_bn(self.stem_conv(x)))
        for block in self.blocks:
            x = block(x)
        return x


class AlexNetRPN(AlexNet):
    """The original SiamRPN's AlexNet: the SiamFC twin's :class:`~edgetrack.models.mindspore.siamfc.AlexNet` (same
    parameter names), whose conv5 (BN, no ReLU) is the output."""

    def __init__(self, channels: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)):
        super().__init__(channels)
        self.out_channels = channels[4]

    def construct(self, x):
        # Written out rather than super().construct(x)[2]: the graph compiler resolves no super() calls.
        f2 = self.conv2(self.pool1(self.conv1(x)))
        return self.conv5(self.conv4(self.conv3(self.pool2(f2))))


class DeblurFPN(nn.Cell):
    """The twin's :class:`~edgetrack.models.torch.siamrpn.DeblurFPN`: the DeblurGAN-v2 generator's encoder and FPN
    top-down path to stride 8 (the generator's ``fpn`` submodule names), one replicated row and column on top and
    left before it and the first cell of each axis dropped after (cell ``i`` centred on pixel ``8·i + 7``)."""

    def __init__(self, width: float = 0.5, fpn_channels: int = 64, norm: str = "batch", top_down: bool = True):
        super().__init__()
        cin = make_divisible(32 * width)
        stages = ENCODER_STAGES if top_down else ENCODER_STAGES[:3]
        for i, stage in enumerate(stages):
            blocks: list[nn.Cell] = [_conv_bn_relu6(3, cin, 3, 2)] if i == 0 else []
            for expand, c, n, stride in stage:
                cout = make_divisible(c * width)
                for k in range(n):
                    blocks.append(InvertedResidual(cin, cout, stride if k == 0 else 1, expand))
                    cin = cout
            setattr(self, f"enc{i}", nn.SequentialCell(blocks))
        self.top_down = top_down
        channels = [make_divisible(stage[-1][1] * width) for stage in ENCODER_STAGES]
        if top_down:
            f = fpn_channels
            self.lateral4 = _conv(channels[4], f, 1)
            self.lateral3 = _conv(channels[3], f, 1)
            self.lateral2 = _conv(channels[2], f, 1)
            self.td1 = _decoder_conv(f, f, norm)
            self.td2 = _decoder_conv(f, f, norm)
            self.out_channels = f
        else:
            self.out_channels = channels[2]

    def construct(self, x):
        x = x * _TO_UNIT - 1.0
        # Slices and Concats, no Pad op (as the generator's pad_to_multiple).
        x = ops.concat((x[:, :, 0:1, :], x), axis=2)
        x = ops.concat((x[:, :, :, 0:1], x), axis=3)
        enc2 = self.enc2(self.enc1(self.enc0(x)))
        if self.top_down:
            enc3 = self.enc3(enc2)
            map4 = self.lateral4(self.enc4(enc3))
            map3 = self.td1(self.lateral3(enc3) + _upsample(map4, 2))
            out = self.td2(self.lateral2(enc2) + _upsample(map3, 2))
        else:
            out = enc2
        h, w = out.shape[2], out.shape[3]
        return out[:, :, 1:h, 1:w]


# ------------------------------------------------------------------------------------------------ correlation
def _pairing_message(nk: int, nx: int) -> str:
    return f"correlation needs 1 template or one per search map; got {nk} templates for {nx} search maps"


def _check_pairing(kernel, features) -> None:
    nk, nx = kernel.shape[0], features.shape[0]
    if kernel.shape[1] != features.shape[1]:
        raise InvalidArgumentError(f"kernel has {kernel.shape[1]} channels, features {features.shape[1]}")
    if nk != 1 and nk != nx:
        raise InvalidArgumentError(_pairing_message(nk, nx))


def _xcorr_grouped(kernel, features):
    nk, nx = kernel.shape[0], features.shape[0]
    c, h, w = features.shape[1], features.shape[2], features.shape[3]
    kh, kw = kernel.shape[2], kernel.shape[3]
    if nk == 1:
        return ops.conv2d(features, kernel.reshape(c, 1, kh, kw), groups=c)
    if nk != nx:
        raise ValueError(_pairing_message(nk, nx))
    # One template per search map: the batch folded into channels, one group per (pair, channel).
    out = ops.conv2d(features.reshape(1, nx * c, h, w), kernel.reshape(nk * c, 1, kh, kw), groups=nx * c)
    return out.reshape(nx, c, out.shape[2], out.shape[3])


def xcorr_depthwise(kernel, features):
    """Depthwise cross-correlation as one grouped convolution (training form; the twin's).

    ``kernel`` (N, C, k, k) with one template per search map, or (1, C, k, k) for all of them; ``features``
    (N, C, S, S). Returns (N, C, S − k + 1, S − k + 1).
    """
    _check_pairing(kernel, features)
    return _xcorr_grouped(kernel, features)


def xcorr_depthwise_export(kernel, features, kernel_size: int, out_size: int):
    """The same correlation with constant-weight operators only: Σ_ij Slice(features)_ij · kernel[:, :, i, j].

    ``kernel_size`` and ``out_size`` are the model's constants, so the exported Slices have constant bounds.
    """
    out = None
    for i in range(kernel_size):
        for j in range(kernel_size):
            term = features[:, :, i:i + out_size, j:j + out_size] * kernel[:, :, i:i + 1, j:j + 1]
            out = term if out is None else out + term
    return out


# ------------------------------------------------------------------------------------------------ head
def _conv_bn_relu(cin: int, cout: int, kernel: int) -> list:
    return [_conv(cin, cout, kernel), _bn(cout), nn.ReLU()]


class RPNHead(nn.Cell):
    """Depthwise-correlation RPN head (the twin's): ``template``/``search`` adjust the backbone's features (2C
    channels: classification half, regression half), ``construct(kernel, features)`` correlates and predicts
    ``cls`` (N, 2A, R, R) and ``loc`` (N, 4A, R, R)."""

    def __init__(self, in_channels: int, corr_channels: int, num_anchors: int):
        super().__init__()
        c = corr_channels
        self.corr_channels = c
        self.template_conv = nn.SequentialCell(_conv_bn_relu(in_channels, 2 * c, 3))
        self.search_conv = nn.SequentialCell(_conv_bn_relu(in_channels, 2 * c, 3))
        self.cls_head = nn.SequentialCell(_conv_bn_relu(c, c, 1) + [_conv(c, 2 * num_anchors, 1, bias=True)])
        self.loc_head = nn.SequentialCell(_conv_bn_relu(c, c, 1) + [_conv(c, 4 * num_anchors, 1, bias=True)])

    def __call__(self, *args, **kwargs):
        if len(args) == 2 and not kwargs:
            _check_pairing(*args)
        return super().__call__(*args, **kwargs)

    def template(self, features):
        return self.template_conv(features)

    def search(self, features):
        return self.search_conv(features)

    def predict(self, corr):
        c = self.corr_channels
        two_c = corr.shape[1]
        return self.cls_head(corr[:, 0:c]), self.loc_head(corr[:, c:two_c])

    def construct(self, kernel, features):
        return self.predict(_xcorr_grouped(kernel, features))


# ------------------------------------------------------------------------------------------------ model
class SiamRPN(nn.Cell):
    """SiamRPN: ``backbone``, ``head``; ``template`` / ``search`` / ``head`` for tracking, ``construct(z, x)`` for
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
        # Set by init_backbone (the twin's): the deblurrer the trunk came from, and whether it is frozen.
        self.backbone_init = None
        self.frozen_backbone = False
        # Plain ints for construct: the template's centre crop and the export correlation's constant bounds.
        self.crop = config.template_crop
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The twin's initialisation: Kaiming-normal (fan-out, ReLU) convolutions, zero biases, BN at identity; the
        last classification layer N(0, 0.01²), the last regression layer N(0, 0.001²). Written with ``ops.assign``
        so a graph compiled before the reset sees it."""

        def fill(param, init):
            ops.assign(param, initializer(init, param.shape, param.dtype).init_data())

        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d):
                fill(cell.weight, HeNormal(mode="fan_out", nonlinearity="relu"))
                if cell.bias is not None:
                    fill(cell.bias, Zero())
            elif isinstance(cell, nn.BatchNorm2d):
                fill(cell.gamma, One())
                fill(cell.beta, Zero())
        for layer, std in ((self.head.cls_head[3], 0.01), (self.head.loc_head[3], 0.001)):
            fill(layer.weight, Normal(sigma=std))
            fill(layer.bias, Zero())

    def set_train(self, mode: bool = True):
        """A frozen trunk (:func:`init_backbone`) stays in inference mode: its BN statistics are the deblurrer's."""
        super().set_train(mode)
        if self.frozen_backbone:
            self.backbone.set_train(False)
        return self

    def set_prior(self, prob: float) -> None:
        """Start every anchor at target probability ``prob`` (:func:`~edgetrack.models.siamrpn_config.prior_bias`;
        the trainers do it for the ``rpn-hsm`` loss)."""
        bias = self.head.cls_head[3].bias
        ops.assign(bias, ms.Tensor(prior_bias(self.config.num_anchors, prob), bias.dtype))

    def template(self, z):
        """(N, 3, 127, 127) exemplar crops -> (N, 2C, k, k) correlation kernels."""
        f = self.backbone(z)
        c = self.crop
        if c:
            h, w = f.shape[2], f.shape[3]
            f = f[:, :, c:h - c, c:w - c]
        return self.head.template(f)

    def search(self, x):
        """(N, 3, 255, 255) search crops -> (N, 2C, S, S) features."""
        return self.head.search(self.backbone(x))

    def construct(self, z, x):
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


# The wrappers do not prefix names (auto_prefix=False): MindSpore would otherwise rename the shared model's
# parameters to "model.…" when it is assigned to them.
class _TemplateGraph(nn.Cell):
    def __init__(self, model: SiamRPN):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, z):
        return self.model.template(z)


class _SearchGraph(nn.Cell):
    def __init__(self, model: SiamRPN):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, x):
        return self.model.search(x)


HEAD_FORMS = ("elementwise", "grouped")


class _HeadGraph(nn.Cell):
    """The head with the correlation in one of :data:`HEAD_FORMS` (the twin's ``_HeadGraph``)."""

    def __init__(self, model: SiamRPN, form: str = "elementwise"):
        super().__init__(auto_prefix=False)
        self.model = model
        self.grouped = form == "grouped"
        self.kernel_size = model.config.kernel_size
        self.score_size = model.config.score_size

    def construct(self, kernel, features):
        if self.grouped:
            corr = _xcorr_grouped(kernel, features)
        else:
            corr = xcorr_depthwise_export(kernel, features, self.kernel_size, self.score_size)
        return self.model.head.predict(corr)


def graph_modules(model: SiamRPN, head: str = "elementwise") -> dict[str, nn.Cell]:
    """The three graphs a deployment exports, named as :data:`GRAPH_IO`: ``template`` (z -> kernel), ``search``
    (x -> features), ``head`` ((kernel, features) -> (cls, loc)); ``head`` the correlation's form, as the twin's
    :func:`~edgetrack.models.torch.siamrpn.graph_modules` (``elementwise`` for NPU converters, ``grouped`` for
    runtimes that take a Conv weight computed at run time)."""
    if not isinstance(model, SiamRPN):
        raise InvalidArgumentError(f"graph_modules needs a SiamRPN, got {type(model).__name__}")
    if head not in HEAD_FORMS:
        raise UnknownChoiceError("head form", head, HEAD_FORMS)
    return {"template": _TemplateGraph(model), "search": _SearchGraph(model), "head": _HeadGraph(model, head)}


# ------------------------------------------------------------------------------------------------ loss
RPN_CLS_LOSSES = ("ce", "hsm", "ohem")


def hardest_negatives(nll, candidate, k: int):
    """Per pair, the ``k`` candidates with the highest loss, as the twin's
    :func:`~edgetrack.models.torch.siamrpn.hardest_negatives`: a 0/1 mask of ``nll``'s shape and dtype, no gradient
    through it. ``candidate``: 0/1 (or bool), the anchors to choose among; a pair with fewer gets all of them.

    The same rule as the twin, so both frameworks choose the same anchors: only the k-th largest value is taken from
    ``topk`` (whichever tied element it returns), every candidate above it is chosen, and the places left go to the
    candidates equal to it in C order (a cumulative sum), first ones first.
    """
    n = nll.shape[0]
    pool = candidate.astype(nll.dtype).reshape(n, -1)
    # Losses are >= 0, so -1 marks the others; they fill topk only where a pair has fewer than k candidates.
    score = ops.where(pool > 0.5, ops.stop_gradient(nll).reshape(n, -1), ops.full_like(pool, -1.0))
    k = min(k, score.shape[1])
    kth = ops.topk(score, k, dim=1)[0][:, k - 1:k]
    above = (score > kth).astype(nll.dtype)
    tied = (score == kth).astype(nll.dtype) * pool
    room = k - above.sum(axis=1, keepdims=True)
    chosen = ops.maximum(above, tied * (ops.cumsum(tied, 1) <= room).astype(nll.dtype)) * pool
    return ops.stop_gradient(chosen.reshape(nll.shape))


def _rpn_loss(cls, loc, cls_target, loc_target, loc_weight, reg_weight: float, sigma: float, cls_loss: str = "ce",
              alpha: float = 0.6, gamma: float = 2.0, neg_hard: int = 32):
    n, a2, r, r2 = cls.shape
    a = a2 // 2
    pair = cls.reshape(n, 2, a, r, r2)
    target = cls_target.astype(cls.dtype)
    sampled = (target >= 0).astype(cls.dtype)
    positive = (target > 0).astype(cls.dtype)
    if cls_loss == "hsm":
        y = positive * 2.0 - 1.0
        yv = y * (pair[:, 1] - pair[:, 0])
        alpha_t = positive * alpha + (1.0 - positive) * (1.0 - alpha)
        focal = alpha_t * ops.pow(ops.sigmoid(-yv), gamma) * ops.softplus(-yv)
        l_cls = (focal * sampled).sum() / ops.maximum(positive.sum(), 1.0)
    else:
        logp = ops.log_softmax(pair, axis=1)
        # Two classes: gathering class t's log-probability is a blend of the two (a candidate, −2, is a negative).
        nll = -(logp[:, 1] * positive + logp[:, 0] * (1.0 - positive))
        if cls_loss == "ohem":
            # Candidates are labelled −2 (rpn_targets.CANDIDATE), exact in float32.
            sampled = sampled + hardest_negatives(nll, target < -1.5, neg_hard)
        l_cls = (nll * sampled).sum() / ops.maximum(sampled.sum(), 1.0)
    diff = ops.abs(loc.reshape(n, 4, a, r, r2) - loc_target.astype(loc.dtype))
    beta = 1.0 / (sigma * sigma)
    smooth = ops.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta).sum(axis=1)
    weight = loc_weight.astype(loc.dtype)
    l_reg = (smooth * weight).sum() / ops.maximum(weight.sum(), 1.0)
    return l_cls + reg_weight * l_reg


def _check_loss_args(reg_weight: float, sigma: float, cls_loss: str = "ce", alpha: float = 0.6,
                     gamma: float = 2.0, neg_hard: int = 32) -> None:
    if not (reg_weight >= 0 and sigma > 0):
        raise InvalidArgumentError(f"the RPN loss needs reg_weight >= 0 and sigma > 0, got {reg_weight}, {sigma}")
    if cls_loss not in RPN_CLS_LOSSES:
        raise UnknownChoiceError("cls_loss", cls_loss, RPN_CLS_LOSSES)
    if not (0 <= alpha <= 1 and gamma >= 0):
        raise InvalidArgumentError(f"the RPN loss needs 0 <= alpha <= 1 and gamma >= 0, got {alpha}, {gamma}")
    if not isinstance(neg_hard, int) or isinstance(neg_hard, bool) or neg_hard < 1:
        raise InvalidArgumentError(f"the RPN loss's neg_hard must be an integer >= 1, got {neg_hard!r}",
                                   fix="pass the number of hardest negatives per pair (32 by default), or use "
                                   "cls_loss='ce' for none")


def _as_tensor(value, dtype):
    if isinstance(value, ms.Tensor):
        return value
    return ms.Tensor(np.asarray(value), dtype)


def rpn_loss(cls, loc, cls_target, loc_target, loc_weight, reg_weight: float = 1.2, sigma: float = 3.0,
             cls_loss: str = "ce", alpha: float = 0.6, gamma: float = 2.0, neg_hard: int = 32):
    """SiamRPN's loss (the paper's eq. 2-4), as the twin's :func:`~edgetrack.models.torch.siamrpn.rpn_loss`:
    ``cls_loss`` ``"ce"`` (two-class cross-entropy over the sampled anchors), ``"hsm"`` (the HSM loss on
    ``cls₁ − cls₀`` of every labelled anchor over the number of positives) or ``"ohem"`` (the cross-entropy over the
    sampled anchors and each pair's ``neg_hard`` hardest candidates, :func:`hardest_negatives`, averaged over all
    it uses: the twin's docstring says why) + ``reg_weight`` · smooth-L1 (σ) over the positives' offsets.

    Targets (NumPy arrays or tensors) from :mod:`edgetrack.models.rpn_targets`: ``cls_target`` (N, A, R, R)
    1 / 0 / −1 / −2 (candidate), ``loc_target`` (N, 4, A, R, R), ``loc_weight`` (N, A, R, R).
    """
    _check_loss_args(reg_weight, sigma, cls_loss, alpha, gamma, neg_hard)
    return _rpn_loss(cls, loc, _as_tensor(cls_target, ms.float32), _as_tensor(loc_target, ms.float32),
                     _as_tensor(loc_weight, ms.float32), float(reg_weight), float(sigma), cls_loss, float(alpha),
                     float(gamma), neg_hard)


class RPNLoss(nn.Cell):
    """:func:`rpn_loss` as a Cell, its settings checked once (``neg_hard``: the hardest negatives per pair of
    ``"ohem"``)."""

    def __init__(self, reg_weight: float = 1.2, sigma: float = 3.0, cls_loss: str = "ce", alpha: float = 0.6,
                 gamma: float = 2.0, neg_hard: int = 32):
        super().__init__()
        _check_loss_args(reg_weight, sigma, cls_loss, alpha, gamma, neg_hard)
        self.reg_weight, self.sigma = float(reg_weight), float(sigma)
        self.cls_loss, self.alpha, self.gamma, self.neg_hard = cls_loss, float(alpha), float(gamma), neg_hard

    def construct(self, cls, loc, cls_target, loc_target, loc_weight):
        return _rpn_loss(cls, loc, cls_target, loc_target, loc_weight, self.reg_weight, self.sigma, self.cls_loss,
                         self.alpha, self.gamma, self.neg_hard)


# ------------------------------------------------------------------------------------------------ checkpoints
def init_backbone(model: SiamRPN, path, freeze: bool = False) -> dict:
    """The twin's :func:`~edgetrack.models.torch.siamrpn.init_backbone`: a trained DeblurGAN-v2 generator's encoder
    (``fpn.X``) into a deblur-fpn backbone (``backbone.X``), the first mismatch a typed error; ``freeze``: the
    backbone's parameters stop requiring gradients (the trainer's optimiser takes ``trainable_params()``) and it
    stays in inference mode."""
    if not isinstance(model, SiamRPN) or model.config.backbone != "deblur-fpn":
        raise InvalidArgumentError(
            f"init_backbone needs a SiamRPN with the deblur-fpn backbone, got "
            f"{getattr(getattr(model, 'config', None), 'backbone', type(model).__name__)!r}",
            fix="train a siamrpn-reuse model (--model siamrpn-reuse) to start from a deblurrer's encoder")
    trunk = {f"backbone.{k}": v for k, v in checkpoint_state(model.backbone).items()}
    arrays, record = read_deblur_trunk(path, {k: tuple(v.shape) for k, v in trunk.items()}, model.config)
    for name, param in trunk.items():
        ops.assign(param, ms.Tensor(np.asarray(arrays[name], dtype=np.float32), dtype=param.dtype))
    record["frozen"] = bool(freeze)
    if freeze:
        for param in model.backbone.get_parameters():
            param.requires_grad = False
        model.frozen_backbone = True
        model.set_train(model.training)
    model.backbone_init = record
    return record


def save_siamrpn(model: SiamRPN, path, metadata: dict | None = None):
    """Save ``model`` with its configuration (``family``, ``config``) so either framework's ``load_siamrpn`` can
    rebuild it (``backbone_init`` as the twin's)."""
    meta = {"family": FAMILY, "config": model.config.to_dict(), **(metadata or {})}
    if getattr(model, "backbone_init", None):
        meta.setdefault("backbone_init", model.backbone_init)
    return save_weights(model, path, meta)


def load_siamrpn(path) -> SiamRPN:
    """Rebuild the model a ``save_siamrpn`` checkpoint (either framework's) describes; eval mode."""
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
    model.set_train(False)
    return model
