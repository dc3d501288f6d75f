"""HSM-SiamFC in MindSpore: the twin of :mod:`edgetrack.models.torch.siamfc` (read its docstring for the design).

Same class names, same submodule names and the same checkpoint keys, so one safetensors file (see
:mod:`edgetrack.models.mindspore.checkpoint`) loads into both frameworks, and ``tests/test_siamfc_parity.py`` proves
the two agree on the full-size models. The configuration and presets are shared, framework-free, from
:mod:`edgetrack.models.siamfc_config`; nothing here imports torch.

MindSpore-specific choices (each checked on MindSpore 2.10 -> ONNX -> ONNX Runtime, tests/test_siamfc_mindspore.py):

- Every ``construct`` names its first argument ``self``: the graph compiler parses the source.
- Convolutions are ``pad_mode="valid"`` with a bias (MindSpore's defaults are "same" and no bias).
- BatchNorm ``momentum=0.9`` is PyTorch's ``momentum=0.1`` (MindSpore weighs the old statistic, PyTorch the new one);
  ``eps`` is 1e-5 in both. Parameters are ``gamma``/``beta``/``moving_mean``/``moving_variance``; the checkpoint
  module renames them to PyTorch's ``weight``/``bias``/``running_mean``/``running_var``, and only there.
- The ×2 aligned bilinear upsampling is the primitive ``ops.ResizeNearestNeighbor((2h, 2w))`` (exported as ONNX
  ``Resize``) followed by a constant depthwise 2×2 average; ``ops.interpolate(mode="nearest")`` lowers to
  ResizeNearestNeighborV2, which the ONNX exporter rejects, and bilinear resizing does not export at all.
- The fixed up/down kernels are constant tensors, not ``Parameter``\\ s: not trained, not in the checkpoint (they
  are non-persistent buffers in the PyTorch twin).
- The head's correlation is ``ops.conv2d(features, kernel)`` with a runtime kernel; pairs (one template per search
  crop) use a grouped convolution over the batch, as in PyTorch.
- The ONNX graphs keep ``BatchNormalization`` nodes (MindSpore's exporter does not fold BN into the convolutions,
  PyTorch's does); ONNX Runtime and ATC run both.
- Inside ``construct`` only built-in exceptions compile, so typed errors are raised outside it (see
  :class:`CorrelationHead`); and weights are written with ``ops.assign`` (see the checkpoint module) so that graphs
  compiled earlier see them.
"""
from __future__ import annotations

import json

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Zero, initializer

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError
from edgetrack.models.mindspore.checkpoint import load_weights, read_metadata, save_weights
from edgetrack.models.siamfc_config import CONV2_CROP, CONV3_CROP, FAMILY, SIAMFC_PRESETS, SiamFCConfig

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

# PyTorch's BatchNorm2d(momentum=0.1) in MindSpore's convention (weight of the running statistic).
BN_MOMENTUM = 0.9
BN_EPS = 1e-5


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, pad_mode="valid", has_bias=True)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.SequentialCell:
    layers: list[nn.Cell] = [_conv(cin, cout, kernel, stride), _bn(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.SequentialCell(layers)


class AlexNet(nn.Cell):
    """Table 1's wide AlexNet; returns (conv2 after ReLU, conv3, conv5), all unpadded."""

    def __init__(self, channels: tuple[int, int, int, int, int]):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.conv1 = _conv_bn(3, c1, 11, 2)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")
        self.conv2 = _conv_bn(c1, c2, 5)
        self.pool2 = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")
        self.conv3 = _conv_bn(c2, c3, 3)
        self.conv4 = _conv_bn(c3, c4, 3)
        self.conv5 = _conv_bn(c4, c5, 3, relu=False)

    def construct(self, x):
        f2 = self.conv2(self.pool1(self.conv1(x)))
        f3 = self.conv3(self.pool2(f2))
        f5 = self.conv5(self.conv4(f3))
        return f2, f3, f5


def _fixed_depthwise(kernel_1d: list[float], channels: int) -> ms.Tensor:
    k = np.asarray(kernel_1d, dtype=np.float32)
    k2 = np.outer(k, k)
    return ms.Tensor(np.ascontiguousarray(np.broadcast_to(k2, (channels, 1) + k2.shape)), ms.float32)


def upsample2x_aligned(x, kernel):
    """Bilinear ×2 upsampling with aligned corners, n -> 2n − 1, in export-safe operators (see the PyTorch twin).

    Nearest ×2, then a depthwise 2×2 average (``kernel``: (C, 1, 2, 2) of 0.25).
    """
    h, w = x.shape[2], x.shape[3]
    nearest = ops.ResizeNearestNeighbor((2 * h, 2 * w))(x)
    return ops.conv2d(nearest, kernel, groups=x.shape[1])


class FeatureFusion(nn.Cell):
    """The HSM feature-fusion module over conv2/conv3/conv5 (geometry: the PyTorch twin's docstring)."""

    def __init__(self, c2: int, c3: int, c5: int):
        super().__init__()
        self.lateral5 = nn.SequentialCell([_conv(c5, c3, 1), _bn(c3)])
        self.lateral3 = nn.SequentialCell([_conv(c3, c2, 1), _bn(c2)])
        self.up_kernel = _fixed_depthwise([0.5, 0.5], c2)
        self.down_kernel = _fixed_depthwise([0.25, 0.5, 0.25], c2)
        self.out_bn = _bn(c2)  # zero-centres the fused map (why: the PyTorch twin's comment)
        self.relu = nn.ReLU()

    def construct(self, f2, f3, f5):
        # (1) conv5 into conv3: same stride, conv3 cropped onto conv5's grid.
        h3, w3 = f3.shape[2], f3.shape[3]
        f3 = f3[:, :, CONV3_CROP : h3 - CONV3_CROP, CONV3_CROP : w3 - CONV3_CROP]
        f35 = self.relu(f3 + self.lateral5(f5))
        # (2) that into conv2: ×2 aligned bilinear upsampling onto conv2's grid, conv2 cropped to match.
        up = upsample2x_aligned(self.lateral3(f35), self.up_kernel)
        h2, w2 = f2.shape[2], f2.shape[3]
        f2 = f2[:, :, CONV2_CROP : h2 - CONV2_CROP, CONV2_CROP : w2 - CONV2_CROP]
        f235 = self.relu(f2 + up)
        # (3) back to stride 8 through a fixed tent filter.
        return self.out_bn(ops.conv2d(f235, self.down_kernel, stride=2, groups=f235.shape[1]))


class CorrelationHead(nn.Cell):
    """``out_scale · (kernel ⋆ features) + bias`` (eq. 10); shapes as in the PyTorch twin.

    ``kernel``: (1, C, k, k) against every search crop of ``features`` (N, C, S, S), or (N, C, k, k), one template
    per search crop, or (N, C, k, k) against one search crop (1, C, S, S). Returns (N, 1, S − k + 1, S − k + 1).

    Counts that fit none of these raise :class:`InvalidArgumentError` when the head is called eagerly
    (``__call__``); inside a compiled graph MindSpore can only raise built-in exceptions, so ``construct`` raises a
    ``ValueError`` with the same message (InvalidArgumentError is a ValueError too).
    """

    def __init__(self, out_scale: float = 0.001):
        super().__init__()
        self.out_scale = float(out_scale)
        self.bias = ms.Parameter(ms.Tensor(np.zeros(1, np.float32)), name="bias")

    def __call__(self, *args, **kwargs):
        if len(args) == 2 and not kwargs:
            nk, nx = args[0].shape[0], args[1].shape[0]
            if nk != 1 and nx != 1 and nk != nx:
                raise InvalidArgumentError(_pairing_message(nk, nx))
        return super().__call__(*args, **kwargs)

    def construct(self, kernel, features):
        nk, nx = kernel.shape[0], features.shape[0]
        # Scaled before correlating, as in the PyTorch twin: the raw sum would saturate fp16 on the NPU.
        kernel = kernel * self.out_scale
        if nk == 1:
            out = ops.conv2d(features, kernel)
        elif nx == 1:
            # Every template against the one search crop: the templates are the output channels.
            out = ops.conv2d(features, kernel)
            out = out.reshape(nk, 1, out.shape[2], out.shape[3])
        else:
            if nk != nx:
                raise ValueError(_pairing_message(nk, nx))
            # One template per search crop: the batch folded into channels, one group per pair.
            c, h, w = features.shape[1], features.shape[2], features.shape[3]
            out = ops.conv2d(features.reshape(1, nx * c, h, w), kernel, groups=nk)
            out = out.reshape(nx, 1, out.shape[2], out.shape[3])
        return out + self.bias


def _pairing_message(nk: int, nx: int) -> str:
    return (f"correlation needs 1 template, one per search crop or 1 search crop; got {nk} templates for {nx} "
            "search crops")


class SiamFC(nn.Cell):
    """HSM-SiamFC (``config.fusion``) or plain SiamFC: ``template``, ``search``, ``head``; ``construct(z, x)``."""

    def __init__(self, config: SiamFCConfig | None = None):
        super().__init__()
        config = SIAMFC_PRESETS["siamfc-hsm"] if config is None else config
        if not isinstance(config, SiamFCConfig):
            raise InvalidArgumentError(f"config must be a SiamFCConfig, got {type(config).__name__}")
        self.config = config
        _, c2, c3, _, c5 = config.channels
        self.backbone = AlexNet(config.channels)
        self.use_fusion = config.fusion
        self.fusion = FeatureFusion(c2, c3, c5) if config.fusion else None
        self.head = CorrelationHead(config.out_scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """siamfc-pytorch's initialisation (as the PyTorch twin): Kaiming-normal (fan-out, ReLU) convolutions with
        zero bias, BN at identity (MindSpore's own default), ``head.bias`` 0. Written with ``ops.assign`` so a
        graph compiled before the reset sees it (see :mod:`edgetrack.models.mindspore.checkpoint`)."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d):
                he = HeNormal(mode="fan_out", nonlinearity="relu")
                ops.assign(cell.weight, initializer(he, cell.weight.shape, cell.weight.dtype).init_data())
                ops.assign(cell.bias, initializer(Zero(), cell.bias.shape, cell.bias.dtype).init_data())

    def embed(self, images):
        """Features that get correlated: the fused map, or conv5 without fusion."""
        f2, f3, f5 = self.backbone(images)
        if self.use_fusion:
            return self.fusion(f2, f3, f5)
        return f5

    def template(self, z):
        """(N, 3, 127, 127) exemplar crops -> (N, C, k, k) correlation kernels."""
        return self.embed(z)

    def search(self, x):
        """(N, 3, 255, 255) search crops -> (N, C, S, S) features."""
        return self.embed(x)

    def construct(self, z, x):
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


class _Branch(nn.Cell):
    def __init__(self, model: SiamFC):
        super().__init__(auto_prefix=False)
        self.model = model

    def construct(self, images):
        return self.model.embed(images)


def graph_modules(model: SiamFC) -> dict[str, nn.Cell]:
    """The three graphs a deployment exports: ``template`` (z -> kernel), ``search`` (x -> features), ``head``."""
    return {"template": _Branch(model), "search": _Branch(model), "head": model.head}


def save_siamfc(model: SiamFC, path, metadata: dict | None = None):
    """Save ``model`` with its configuration (``family``, ``config``) so either framework's ``load_siamfc`` can
    rebuild it."""
    meta = {"family": FAMILY, "config": model.config.to_dict(), **(metadata or {})}
    return save_weights(model, path, meta)


def load_siamfc(path) -> SiamFC:
    """Rebuild the model a ``save_siamfc`` checkpoint (either framework's) describes; eval mode."""
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
    model.set_train(False)
    return model
