"""DeblurGAN-v2 in MindSpore: the twin of :mod:`edgetrack.models.torch.deblurgan` (read its docstring for the design:
the FPN-MobileNetV2 generator, BGR 0..255 in and out with the scaling inside, padding to a multiple of 32 by repeating
the last row/column, BatchNorm instead of InstanceNorm, the zero ``final`` conv that makes an untrained generator the
identity, the double-scale discriminator, RaLSGAN and the weight-free content loss).

Same class names, same submodule names and the same checkpoint keys (``fpn.enc1.0.conv.0.1.running_mean``,
``head4.block1.weight``, ``final.bias``, ``patch.model.2.weight``, ...), so a ``save_deblurgan`` file of either
framework loads into the other (strict key check); ``tests/test_deblurgan_parity.py`` proves the two agree. The
configuration and presets are shared, framework-free, from :mod:`edgetrack.models.deblur_config`; nothing here
imports torch.

The generator is exported for a bundle's deblur stage by :mod:`edgetrack.converters.deblur2onnx` with
``framework="mindspore"`` (``mindspore.onnx.export``; ``edgetrack convert --framework mindspore --deblur CKPT``).

MindSpore-specific choices (each checked on MindSpore 2.10 -> ONNX -> ONNX Runtime, tests/test_deblurgan_mindspore.py):

- Every ``construct`` names its first argument ``self``: the graph compiler parses the source.
- Convolutions pad explicitly and symmetrically (``pad_mode="pad"``, the twin's padding; ``"valid"`` for 1×1):
  MindSpore's default "same" pads stride-2 convolutions asymmetrically, and its ONNX exporter writes asymmetric
  Conv padding in the wrong order anyway.
- BatchNorm ``momentum=0.9`` is PyTorch's ``momentum=0.1``, ``eps`` 1e-5; the checkpoint module renames
  gamma/beta/moving_mean/moving_variance to PyTorch's names.
- Upsampling is the primitive ``ops.ResizeNearestNeighbor`` (ONNX ``Resize``, mode nearest): bilinear resizing does
  not export, ``ops.interpolate(mode="nearest")`` lowers to ResizeNearestNeighborV2, which the exporter rejects.
  Integer factors: output pixel ``i`` reads input ``i // f`` in both frameworks, so the two agree exactly.
- The exported generator keeps its ``BatchNormalization`` nodes (MindSpore's exporter does not fold them; PyTorch's
  does). ONNX Runtime and ATC run both; the numbers are the same.
- The discriminators' InstanceNorm is written out (mean and biased variance over H, W; no parameters, as PyTorch's
  default ``InstanceNorm2d``): MindSpore's ``nn.InstanceNorm2d`` runs on GPU only and carries gamma/beta/moving
  statistics even with ``affine=False``, which would put keys into the checkpoint that the twin does not have.
- ``tanh`` is written ``2·sigmoid(2x) − 1``: MindSpore's CPU Tanh is an approximation with an error of up to 1e-4
  (see :func:`_tanh`), as large as the tolerance the twins are held to.
- The generator's multiplications by constants (the 0..255 <-> [-1, 1] scaling, ``_tanh``'s factors 2) multiply by
  float32 tensors, not Python floats: ``mindspore.onnx.export`` writes ``tensor * float`` as a Mul whose constant
  passes through a float -> float ``Cast``, and onnxconverter-common's fp16 conversion (the cuda fp16 deblur stage,
  :func:`edgetrack.converters.precision.fp16_compute`) mis-types that Cast, so the fp16 graph failed onnx's checker.
  A float32 tensor exports as a plain Mul with an initializer; the product is the same float32 number either way
  (the exporter's Cast was to float32 too), so the twins agree exactly as before.
- Typed errors are raised outside compiled code (:func:`ssim` checks eagerly, then calls the pure ``_ssim`` that the
  compiled training step uses); weights are written with ``ops.assign`` so that graphs compiled earlier see them.
"""
from __future__ import annotations

import json
import math

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from mindspore.common.initializer import HeNormal, Normal, One, Zero, initializer

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError
from edgetrack.models.deblur_config import (  # framework-free; re-exported here
    DEBLURGAN_PRESETS,
    ENCODER_STAGES,
    FAMILY,
    SIZE_MULTIPLE,
    DeblurGANConfig,
    make_divisible,
)
from edgetrack.models.mindspore.checkpoint import load_weights, read_metadata, save_weights
from edgetrack.models.mindspore.siamfc import BN_EPS, BN_MOMENTUM

__all__ = [
    "DeblurGANConfig",
    "DEBLURGAN_PRESETS",
    "FAMILY",
    "InvertedResidual",
    "FPN",
    "FPNHead",
    "FPNMobileNetV2",
    "InstanceNorm",
    "NLayerDiscriminator",
    "DoubleScaleDiscriminator",
    "build_deblurgan",
    "build_discriminator",
    "save_deblurgan",
    "load_deblurgan",
    "pad_to_multiple",
    "to_unit",
    "ssim",
    "psnr",
    "ralsgan_d_loss",
    "ralsgan_g_loss",
    "double_scale_loss",
    "ContentLoss",
    "TrackerPerceptual",
]


def _fill(param, init) -> None:
    ops.assign(param, initializer(init, param.shape, param.dtype).init_data())


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int | None = None, group: int = 1,
          bias: bool = False) -> nn.Conv2d:
    padding = (kernel - 1) // 2 if padding is None else padding
    if padding == 0:
        return nn.Conv2d(cin, cout, kernel, stride, pad_mode="valid", group=group, has_bias=bias)
    return nn.Conv2d(cin, cout, kernel, stride, pad_mode="pad", padding=padding, group=group, has_bias=bias)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


# ------------------------------------------------------------------------------------------------ generator
def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, group: int = 1) -> nn.SequentialCell:
    return nn.SequentialCell([_conv(cin, cout, kernel, stride, group=group), _bn(cout), nn.ReLU6()])


class InvertedResidual(nn.Cell):
    """MobileNetV2's block (the twin's): [1×1 expansion], 3×3 depthwise, 1×1 linear projection, + input when the
    shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Cell] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, group=hidden), _conv(hidden, cout, 1), _bn(cout)]
        self.conv = nn.SequentialCell(layers)

    def construct(self, x):
        if self.use_res:
            return x + self.conv(x)
        return self.conv(x)


def _decoder_conv(cin: int, cout: int, norm: str) -> nn.SequentialCell:
    if norm == "batch":
        return nn.SequentialCell([_conv(cin, cout, 3), _bn(cout), nn.ReLU()])
    return nn.SequentialCell([_conv(cin, cout, 3, bias=True), nn.ReLU()])


def _upsample(x, factor: int):
    # The primitive, not ops.interpolate: the one nearest resize MindSpore's ONNX exporter writes (module docstring).
    if factor == 1:
        return x
    return ops.ResizeNearestNeighbor((x.shape[2] * factor, x.shape[3] * factor))(x)


class FPN(nn.Cell):
    """MobileNetV2 encoder (``enc0``..``enc4``) and the feature pyramid; returns (lateral0, map1, map2, map3, map4)
    at strides 2, 4, 8, 16, 32."""

    def __init__(self, config: DeblurGANConfig):
        super().__init__()
        f = config.fpn_channels
        cin = config.stem_channels
        encoders: list[nn.SequentialCell] = []
        for i, stage in enumerate(ENCODER_STAGES):
            blocks: list[nn.Cell] = [_conv_bn_relu6(3, cin, 3, 2)] if i == 0 else []
            for expand, c, n, stride in stage:
                cout = make_divisible(c * config.width)
                for k in range(n):
                    blocks.append(InvertedResidual(cin, cout, stride if k == 0 else 1, expand))
                    cin = cout
            encoders.append(nn.SequentialCell(blocks))
        self.enc0, self.enc1, self.enc2, self.enc3, self.enc4 = encoders
        c0, c1, c2, c3, c4 = config.encoder_channels
        self.lateral4 = _conv(c4, f, 1)
        self.lateral3 = _conv(c3, f, 1)
        self.lateral2 = _conv(c2, f, 1)
        self.lateral1 = _conv(c1, f, 1)
        self.lateral0 = _conv(c0, config.head_channels, 1)
        self.td1 = _decoder_conv(f, f, config.norm)
        self.td2 = _decoder_conv(f, f, config.norm)
        self.td3 = _decoder_conv(f, f, config.norm)

    def construct(self, x):
        enc0 = self.enc0(x)
        enc1 = self.enc1(enc0)
        enc2 = self.enc2(enc1)
        enc3 = self.enc3(enc2)
        enc4 = self.enc4(enc3)
        map4 = self.lateral4(enc4)
        map3 = self.td1(self.lateral3(enc3) + _upsample(map4, 2))
        map2 = self.td2(self.lateral2(enc2) + _upsample(map3, 2))
        map1 = self.td3(self.lateral1(enc1) + _upsample(map2, 2))
        return self.lateral0(enc0), map1, map2, map3, map4


class FPNHead(nn.Cell):
    """Two 3×3 convolutions with ReLU, no normalisation (DeblurGAN-v2's ``FPNHead``)."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.block0 = _conv(cin, mid, 3)
        self.block1 = _conv(mid, cout, 3)
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.relu(self.block1(self.relu(self.block0(x))))


# The generator's constant factors as float32 tensors: exported as plain Muls, without the float -> float Cast a
# Python float gets (module docstring).
_TWO = ms.Tensor(2.0, ms.float32)
_TO_UNIT = ms.Tensor(1.0 / 127.5, ms.float32)
_TO_PIXELS = ms.Tensor(127.5, ms.float32)


def _tanh(x):
    # MindSpore 2.10's CPU Tanh kernel is an approximation, off by up to 1.0e-4 near |x| = 5 (measured against
    # float64; PyTorch's is off by 3e-8): as large as the twins' whole tolerance. 2·sigmoid(2x) − 1 is tanh exactly
    # and MindSpore's Sigmoid is within 2e-6; it exports as Mul, Sigmoid, Sub, which every converter knows.
    return _TWO * ops.sigmoid(_TWO * x) - 1.0


def pad_to_multiple(x, multiple: int = SIZE_MULTIPLE):
    """Pad NCHW ``x`` at the bottom and right to multiples of ``multiple`` by repeating its last row/column (Slices
    and one Concat per axis, as the twin: no Pad op). The pad widths are constants of a graph's static shape."""
    h, w = x.shape[2], x.shape[3]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph:
        x = ops.concat([x] + [x[:, :, h - 1:h, :]] * ph, axis=2)
    if pw:
        x = ops.concat([x] + [x[:, :, :, w - 1:w]] * pw, axis=3)
    return x


class FPNMobileNetV2(nn.Cell):
    """DeblurGAN-v2's FPN-MobileNet generator (the twin's). ``construct``: BGR 0..255 in and out (the exported
    graph); ``restore``: [-1, 1] in and out (training)."""

    def __init__(self, config: DeblurGANConfig | None = None):
        super().__init__()
        config = DEBLURGAN_PRESETS["deblurgan-v2"] if config is None else config
        if not isinstance(config, DeblurGANConfig):
            raise InvalidArgumentError(f"config must be a DeblurGANConfig, got {type(config).__name__}")
        self.config = config
        f, h = config.fpn_channels, config.head_channels
        self.fpn = FPN(config)
        self.head1 = FPNHead(f, h, h)
        self.head2 = FPNHead(f, h, h)
        self.head3 = FPNHead(f, h, h)
        self.head4 = FPNHead(f, h, h)
        self.smooth = _decoder_conv(4 * h, h, config.norm)
        self.smooth2 = _decoder_conv(h, h // 2, config.norm)
        self.final = _conv(h // 2, 3, 3, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The twin's initialisation (Kaiming-normal fan-out convolutions, BN at identity, ``final`` at zero: the
        untrained generator is the identity). Written with ``ops.assign`` so compiled graphs see it."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d):
                _fill(cell.weight, HeNormal(mode="fan_out", nonlinearity="relu"))
                if cell.bias is not None:
                    _fill(cell.bias, Zero())
            elif isinstance(cell, nn.BatchNorm2d):
                _fill(cell.gamma, One())
                _fill(cell.beta, Zero())
        _fill(self.final.weight, Zero())
        _fill(self.final.bias, Zero())

    def residual(self, x):
        """The learned correction ``tanh(final(...))`` of a padded input (H, W multiples of 32), in [-1, 1] units."""
        map0, map1, map2, map3, map4 = self.fpn(x)
        map4 = _upsample(self.head4(map4), 8)
        map3 = _upsample(self.head3(map3), 4)
        map2 = _upsample(self.head2(map2), 2)
        map1 = self.head1(map1)
        smoothed = self.smooth(ops.concat((map4, map3, map2, map1), axis=1))
        smoothed = self.smooth2(_upsample(smoothed, 2) + map0)
        return _tanh(self.final(_upsample(smoothed, 2)))

    def restore(self, x):
        """(N, 3, H, W) images in [-1, 1] -> deblurred images in [-1, 1], the same size."""
        h, w = x.shape[2], x.shape[3]
        padded = pad_to_multiple(x)
        out = ops.clamp(padded + self.residual(padded), -1.0, 1.0)
        return out[:, :, :h, :w]

    def construct(self, x):
        """(N, 3, H, W) float BGR crops in 0..255 -> deblurred crops, float BGR 0..255, the same size."""
        return (self.restore(x * _TO_UNIT - 1.0) + 1.0) * _TO_PIXELS


def _config(name_or_config) -> DeblurGANConfig:
    if isinstance(name_or_config, DeblurGANConfig):
        return name_or_config
    if isinstance(name_or_config, str):
        if name_or_config not in DEBLURGAN_PRESETS:
            raise UnknownChoiceError("DeblurGAN model", name_or_config, DEBLURGAN_PRESETS,
                                     fix="pick a preset or pass a DeblurGANConfig")
        return DEBLURGAN_PRESETS[name_or_config]
    raise InvalidArgumentError(
        f"expected a DeblurGAN preset name or a DeblurGANConfig, got {type(name_or_config).__name__}")


def build_deblurgan(name_or_config: str | DeblurGANConfig = "deblurgan-v2") -> FPNMobileNetV2:
    """A freshly initialised generator from a preset name (``DEBLURGAN_PRESETS``) or a :class:`DeblurGANConfig`."""
    return FPNMobileNetV2(_config(name_or_config))


# ------------------------------------------------------------------------------------------------ discriminators
class InstanceNorm(nn.Cell):
    """PyTorch's default ``InstanceNorm2d``: per image and channel, biased variance, no affine parameters."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)

    def construct(self, x):
        centred = x - x.mean(axis=(2, 3), keep_dims=True)
        var = (centred * centred).mean(axis=(2, 3), keep_dims=True)
        return centred / ops.sqrt(var + self.eps)


class NLayerDiscriminator(nn.Cell):
    """pix2pix's PatchGAN (the twin's): ``n_layers`` 4×4 stride-2 convs (the last one stride 1), a 4×4 conv to one
    logit per patch; LeakyReLU 0.2, InstanceNorm after every conv but the first and the last."""

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Cell] = [_conv(3, ndf, 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [_conv(ndf * prev, ndf * mult, 4, stride, 1), InstanceNorm(), nn.LeakyReLU(0.2)]
        layers.append(_conv(ndf * mult, 1, 4, 1, 1, bias=True))
        self.model = nn.SequentialCell(layers)
        self.n_layers = n_layers

    @staticmethod
    def output_side(side: int, n_layers: int) -> int:
        """Side of the logit map for a ``side``-pixel input (0 or less: too small)."""
        for _ in range(n_layers):
            side = side // 2
        return side - 2

    def construct(self, x):
        return self.model(x)


class DoubleScaleDiscriminator(nn.Cell):
    """DeblurGAN-v2's double-scale discriminator: ``patch`` (local map) and ``full`` (one logit per crop)."""

    def __init__(self, config: DeblurGANConfig):
        super().__init__()
        self.config = config
        self.patch = NLayerDiscriminator(config.disc_channels, config.patch_layers)
        self.full = NLayerDiscriminator(config.disc_channels, config.global_layers)

    def min_size(self) -> int:
        """Smallest crop side both discriminators accept."""
        side = 8
        while min(NLayerDiscriminator.output_side(side, self.config.patch_layers),
                  NLayerDiscriminator.output_side(side, self.config.global_layers)) < 1:
            side += 1
        return side

    def construct(self, x):
        return self.patch(x), self.full(x).mean(axis=(2, 3), keep_dims=True)


def build_discriminator(name_or_config: str | DeblurGANConfig = "deblurgan-v2") -> DoubleScaleDiscriminator:
    """A freshly initialised double-scale discriminator (pix2pix's N(0, 0.02) initialisation)."""
    d = DoubleScaleDiscriminator(_config(name_or_config))
    for _, cell in d.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            _fill(cell.weight, Normal(sigma=0.02))
            if cell.bias is not None:
                _fill(cell.bias, Zero())
    return d


# ------------------------------------------------------------------------------------------------ checkpoints
def save_deblurgan(model: FPNMobileNetV2, path, metadata: dict | None = None):
    """Save the generator with its configuration (``family``, ``config``); either framework's ``load_deblurgan``
    rebuilds it."""
    meta = {"family": FAMILY, "config": model.config.to_dict(), **(metadata or {})}
    return save_weights(model, path, meta)


def load_deblurgan(path) -> FPNMobileNetV2:
    """Rebuild the generator a ``save_deblurgan`` checkpoint (either framework's) describes; eval mode."""
    meta = read_metadata(path)
    if meta.get("family") != FAMILY or "config" not in meta:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a DeblurGAN-v2 checkpoint (family {meta.get('family')!r}, "
            f"config {'present' if 'config' in meta else 'missing'})",
            fix="pass a file written by save_deblurgan (a deblurgan training run's final.safetensors)",
        )
    try:
        config = DeblurGANConfig.from_dict(json.loads(meta["config"]))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unreadable DeblurGAN config: {exc}") from exc
    model = FPNMobileNetV2(config)
    load_weights(model, path)
    model.set_train(False)
    return model


# ------------------------------------------------------------------------------------------------ metrics
def to_unit(x):
    """[-1, 1] images -> [0, 1]."""
    return (x + 1.0) * 0.5


def _gaussian_window(channels: int, size: int, sigma: float) -> ms.Tensor:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-0.5 * (r / sigma) ** 2)
    g /= g.sum()
    return ms.Tensor(np.ascontiguousarray(np.broadcast_to(np.outer(g, g), (channels, 1, size, size)), np.float32))


def _ssim(a, b, window, c1: float, c2: float):
    c = a.shape[1]

    def blur(t):
        return ops.conv2d(t, window, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return (num / den).mean(axis=(1, 2, 3))


def ssim(a, b, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5):
    """Per-image SSIM of NCHW ``a`` against ``b``: (N,) — the twin's definition (Gaussian 11×11, σ 1.5, K1 0.01,
    K2 0.03, population covariances, valid windows), i.e. skimage's with ``gaussian_weights=True``."""
    if tuple(a.shape) != tuple(b.shape) or a.ndim != 4:
        raise InvalidArgumentError(f"ssim needs two NCHW tensors of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    if min(a.shape[-2:]) < win_size:
        raise InvalidArgumentError(f"ssim needs images of at least {win_size}×{win_size}, got {tuple(a.shape[-2:])}")
    window = _gaussian_window(a.shape[1], win_size, sigma)
    return _ssim(a, b, window, (0.01 * data_range) ** 2, (0.03 * data_range) ** 2)


def psnr(a, b, data_range: float = 1.0):
    """Per-image PSNR in dB of NCHW ``a`` against ``b``: (N,) (the twin's; identical images give
    10·log10(range² / 1e-12) instead of infinity)."""
    d = a.astype(ms.float32) - b.astype(ms.float32)
    mse = ops.maximum((d * d).mean(axis=(1, 2, 3)), 1e-12 * data_range ** 2)
    return 10.0 * ops.log(data_range ** 2 / mse) / math.log(10.0)


# ------------------------------------------------------------------------------------------------ losses
def ralsgan_d_loss(real, fake):
    """RaLSGAN's discriminator loss on its logits: real above the average fake by 1, fake below the average real."""
    return 0.5 * (((real - fake.mean() - 1.0) ** 2).mean() + ((fake - real.mean() + 1.0) ** 2).mean())


def ralsgan_g_loss(real, fake):
    """RaLSGAN's generator loss: the discriminator's targets swapped."""
    return 0.5 * (((real - fake.mean() + 1.0) ** 2).mean() + ((fake - real.mean() - 1.0) ** 2).mean())


def double_scale_loss(loss, real_out: tuple, fake_out: tuple):
    """``loss`` (:func:`ralsgan_d_loss` or ``_g_loss``) averaged over the discriminator's scales."""
    total = loss(real_out[0], fake_out[0])
    for i in range(1, len(real_out)):
        total = total + loss(real_out[i], fake_out[i])
    return total / len(real_out)


class TrackerPerceptual(nn.Cell):
    """The twin's perceptual term: the frozen AlexNet of a SiamFC checkpoint (either framework's), conv2 and conv3,
    each L1 distance normalised by the sharp features' scale. Needs crops of at least 55 px."""

    def __init__(self, checkpoint: str):
        super().__init__()
        from edgetrack.models.mindspore.siamfc import load_siamfc

        self.backbone = load_siamfc(checkpoint).backbone
        for p in self.backbone.get_parameters():
            p.requires_grad = False
        # Running statistics whatever mode the trainer sets: MindSpore's set_train flags every cell below the one it
        # is called on (no per-cell override runs, unlike PyTorch's train()), so the BN cells are pinned instead.
        for _, cell in self.backbone.cells_and_names():
            if isinstance(cell, nn.BatchNorm2d):
                cell.use_batch_statistics = False

    def features(self, images):
        b = self.backbone
        f2 = b.conv2(b.pool1(b.conv1(to_unit(images) * 255.0)))
        return f2, b.conv3(b.pool2(f2))

    def construct(self, fake, sharp):
        f_fake = self.features(fake)
        f_sharp = self.features(ops.stop_gradient(sharp))
        total = 0.0
        for i in range(2):
            a, b = f_fake[i], ops.stop_gradient(f_sharp[i])
            total = total + ops.abs(a - b).mean() / (ops.abs(b).mean() + 1e-6)
        return total


class ContentLoss(nn.Cell):
    """``l1·L1 + ssim·(1 − SSIM) + edge·L1(∇out, ∇sharp) [+ perceptual·TrackerPerceptual]`` on [-1, 1] images (the
    twin's). ``construct`` returns (total, l1, ssim term, edge term): tensors only, so it compiles into a step."""

    def __init__(self, l1: float = 1.0, ssim_weight: float = 1.0, edge: float = 1.0,
                 perceptual: TrackerPerceptual | None = None, perceptual_weight: float = 0.0):
        super().__init__()
        for name, value in (("l1", l1), ("ssim", ssim_weight), ("edge", edge), ("perceptual", perceptual_weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"content loss weight {name} must be a finite number >= 0, got {value!r}")
        self.l1, self.ssim_weight, self.edge = float(l1), float(ssim_weight), float(edge)
        self.perceptual = perceptual
        self.perceptual_weight = float(perceptual_weight) if perceptual is not None else 0.0
        self.use_perceptual = perceptual is not None and self.perceptual_weight > 0
        self.window = _gaussian_window(3, 11, 1.5)

    def construct(self, fake, sharp):
        a, b = to_unit(fake), to_unit(sharp)
        zero = ops.zeros((), ms.float32)
        l1 = ops.abs(a - b).mean()
        ssim_term = zero
        if self.ssim_weight:
            ssim_term = 1.0 - _ssim(a, b, self.window, 1e-4, 9e-4).mean()
        edge = zero
        if self.edge:
            dx = (a[:, :, :, 1:] - a[:, :, :, :-1]) - (b[:, :, :, 1:] - b[:, :, :, :-1])
            dy = (a[:, :, 1:, :] - a[:, :, :-1, :]) - (b[:, :, 1:, :] - b[:, :, :-1, :])
            edge = 0.5 * (ops.abs(dx).mean() + ops.abs(dy).mean())
        total = self.l1 * l1 + self.ssim_weight * ssim_term + self.edge * edge
        if self.use_perceptual:
            total = total + self.perceptual_weight * self.perceptual(fake, sharp)
        return total, l1, ssim_term, edge
