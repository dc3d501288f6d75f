"""DeblurGAN-v2 in PyTorch: the FPN-MobileNetV2 generator, the double-scale discriminator and their losses.

DeblurGAN-v2 (Kupyn et al., ICCV 2019) is the deblurrer of Deblur-SiamRPN (shared/papers/deblur_siamrpn.txt);
this is its edge variant, ``FPNMobileNet`` of the authors' code (VITA-Group/DeblurGANv2, ``models/fpn_mobilenet.py``),
with the changes below that deployment needs. ``models/mindspore/deblurgan.py`` is this file's twin: the
same class, submodule and parameter names (plain ``Conv2d``/``BatchNorm2d``/``ReLU6`` in ``Sequential``\\ s), so
one safetensors file (:mod:`edgetrack.models.torch.checkpoint`) loads into both.

Generator (:class:`FPNMobileNetV2`)
-----------------------------------
* **Encoder**: MobileNetV2's inverted residuals (1×1 expand, 3×3 depthwise, 1×1 linear projection; BN; ReLU6),
  cut as DeblurGAN-v2's FPN cuts them: ``fpn.enc0`` … ``fpn.enc4`` at strides 2, 4, 8, 16, 32 with 16, 24, 32,
  64, 160 channels at width 1 (:data:`~edgetrack.models.deblur_config.ENCODER_STAGES`). Trained from scratch:
  no ImageNet weights can be downloaded here (the original starts from them and freezes nothing but BN stats).
* **FPN**: 1×1 laterals to ``fpn_channels`` (``lateral0`` to ``head_channels``), top-down ×2 upsampling + add +
  3×3 conv (``td1``..``td3``). **Heads**: two 3×3 convs + ReLU per level (``head1``..``head4``), brought to 1/4
  (×8, ×4, ×2, ×1), concatenated; ``smooth`` (3×3), ×2, + ``lateral0`` (the 1/2-scale map), ``smooth2`` (3×3,
  half the channels), ×2, ``final`` (3×3 to 3 channels).
* **Global residual**: ``out = clamp(x + tanh(final), -1, 1)`` in [-1, 1] space. ``final`` starts at zero (weight
  and bias), so an untrained generator is exactly the identity — it starts at the do-nothing baseline and learns a
  correction, the role the global skip has in DeblurGAN-v2.

I/O convention (the exported graph takes the tracker's crops as they are)
-------------------------------------------------------------------------
:meth:`FPNMobileNetV2.forward` takes and returns **float32 NCHW, BGR, 0..255** — the convention of every graph in a
bundle (:mod:`edgetrack.tracking.siamfc`, ``converters/torch2onnx.py``): the runtime's ``crop_and_resize`` output
goes in unchanged, and what comes out feeds the tracker's template or search graph unchanged. The scaling to
[-1, 1] (``x / 127.5 − 1``) and back (``(y + 1) · 127.5``) is inside the graph (two multiply-adds, free next to the
convolutions), so no preprocessing can disagree between training and deployment. The channels stay BGR: the
network is trained from scratch on BGR crops, so there is nothing to swap. Training works in [-1, 1] directly
(:meth:`FPNMobileNetV2.restore`).

Sizes: fully convolutional, any H×W. The encoder needs multiples of 32, and the tracker's crops are 255 and 127 (odd),
so the input is padded **inside the graph** by replicating its last row/column (a Slice and a Concat — no Pad op,
whose reflect/edge modes are where exporters and NPU converters disagree) up to the next multiple of 32, and the
output is sliced back: output size == input size exactly, for 255 and 127 alike (tested, including ONNX Runtime).
The padded row/column sits at the bottom/right edge, the one place where crops hold mean-colour padding anyway.

Export-safe forms (DESIGN.md, "Traps already found"): every upsampling is *nearest* (``F.interpolate(mode=
"nearest")``, ONNX ``Resize`` mode nearest; DeblurGAN-v2 uses nearest as well; MindSpore's exporter rejects
bilinear), there is no transposed convolution (ONNX Runtime refuses MindSpore's export of it), and the exported
graph is Conv, Clip (ReLU6), Relu, Add, Mul, Resize (nearest), Concat, Slice, Tanh — no normalisation op at all,
because BatchNorm in eval mode is folded into the preceding convolution by the exporter. The MindSpore twin must use
the primitive ``ops.ResizeNearestNeighbor`` (see ``models/torch/siamfc.py``'s docstring for why).

Normalisation: BatchNorm, not DeblurGAN-v2's InstanceNorm
---------------------------------------------------------
DeblurGAN-v2 normalises its decoder with InstanceNorm and runs the generator in *train* mode at test time. Both are
traps for a deployed deblurrer: instance statistics make a pixel's output depend on the whole crop's content — the
127 template and the 255 search crop of one scene would be normalised differently, so the tracker would compare two
differently "deblurred" images — and they cannot be folded away, so every normalisation stays in the exported
graph as extra operators (InstanceNormalization is also among the operators NPU converters support least). Here the
encoder uses BatchNorm (as MobileNetV2 always does) and so does the decoder by default (``norm="batch"``):

* in eval mode a crop's output depends on that crop alone, never on the other crops of its batch, and is
  deterministic (tested: a crop alone == the same crop within a batch, run after run);
* it folds into the convolution before it at export: zero cost on the device, every converter handles Conv;
* its train/eval gap (batch statistics vs running averages) is what every BN classifier lives with; the trainer's
  batches of 255 crops (8 crops: half a million pixels per channel statistic) keep the two close, and the held-out
  PSNR/SSIM is measured in eval mode, i.e. on exactly what is deployed.

``norm="none"`` drops the decoder's BN (convolutions with bias) for whoever wants no train/eval difference after the
encoder. The discriminators (training only, never exported) keep pix2pix's InstanceNorm: their real and fake
batches are separate forward passes, where BatchNorm would normalise each by its own statistics.

Discriminators and losses
-------------------------
:class:`DoubleScaleDiscriminator`: DeblurGAN-v2's "double GAN" — ``patch``, pix2pix's PatchGAN (``patch_layers``
stride-2 4×4 convs; 3 gives the 70×70 receptive field), and ``full``, the same design ``global_layers`` deep (5: a
286-pixel receptive field, the whole crop), its map averaged to one score per crop. Both are trained with the
relativistic average least-squares GAN loss (RaLSGAN, :func:`ralsgan_d_loss`, :func:`ralsgan_g_loss`), averaged over
the two scales, as DeblurGAN-v2's ``ragan-ls``. DeblurGAN-v2 centres the relativistic terms on a 50-entry pool of
past predictions; here on the current batch's mean (no state: a resumed run is exactly an uninterrupted one).

Content loss (:class:`ContentLoss`): DeblurGAN-v2 uses 0.5·MSE + 0.006·VGG-19 conv3_3 features; no pretrained VGG
can be downloaded here, and a randomly initialised VGG measures nothing useful. Instead, three terms that need no
weights: **L1** (pixel fidelity; unlike MSE it does not tolerate small errors everywhere, which is what blurs),
**1 − SSIM** (local structure and contrast, the part of "perceptual" that matters to a tracker's correlation; Zhao et
al., "Loss Functions for Image Restoration with Neural Networks", show L1 + SSIM beats L2 and matches perceptual
losses on restoration) and an **image-gradient L1** (|∇out − ∇sharp|: blur is precisely the loss of gradient
energy, so this term rewards restoring edges directly). Optionally a perceptual term on the frozen backbone of a
trained tracker checkpoint (:class:`TrackerPerceptual`): the features the tracker will correlate. The adversarial
weight stays small (0.001, DeblurGAN-v2's ``adv_lambda``): a GAN adds texture, and hallucinated texture is what a
correlation tracker can least afford.
"""
from __future__ import annotations

import json
import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError
from edgetrack.models.deblur_config import (  # framework-free; re-exported here
    DEBLURGAN_PRESETS,
    ENCODER_STAGES,
    FAMILY,
    SIZE_MULTIPLE,
    DeblurGANConfig,
    make_divisible,
)
from edgetrack.models.torch.checkpoint import load_weights, read_metadata, save_weights

__all__ = [
    "DeblurGANConfig",
    "DEBLURGAN_PRESETS",
    "FAMILY",
    "InvertedResidual",
    "FPN",
    "FPNHead",
    "FPNMobileNetV2",
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


# ------------------------------------------------------------------------------------------------ generator
def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1×1 expansion (skipped for ``expand == 1``), 3×3 depthwise, 1×1 linear projection;
    the input is added back when the shape is unchanged."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


def _decoder_conv(cin: int, cout: int, norm: str) -> nn.Sequential:
    """3×3 conv + (BN) + ReLU: the FPN's top-down and smoothing convolutions."""
    if norm == "batch":
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU())


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    # Nearest only: the one resize every exporter and NPU converter here accepts (module docstring).
    return F.interpolate(x, scale_factor=float(factor), mode="nearest") if factor != 1 else x


class FPN(nn.Module):
    """MobileNetV2 encoder (``enc0``..``enc4``) and the feature pyramid; returns (lateral0, map1, map2, map3, map4)
    at strides 2, 4, 8, 16, 32."""

    def __init__(self, config: DeblurGANConfig):
        super().__init__()
        channels = config.encoder_channels
        f = config.fpn_channels
        cin = config.stem_channels
        encoders: list[nn.Sequential] = []
        for i, stage in enumerate(ENCODER_STAGES):
            blocks: list[nn.Module] = [_conv_bn_relu6(3, cin, 3, 2)] if i == 0 else []
            for expand, c, n, stride in stage:
                cout = make_divisible(c * config.width)
                for k in range(n):
                    blocks.append(InvertedResidual(cin, cout, stride if k == 0 else 1, expand))
                    cin = cout
            encoders.append(nn.Sequential(*blocks))
        self.enc0, self.enc1, self.enc2, self.enc3, self.enc4 = encoders

        c0, c1, c2, c3, c4 = channels
        self.lateral4 = nn.Conv2d(c4, f, 1, bias=False)
        self.lateral3 = nn.Conv2d(c3, f, 1, bias=False)
        self.lateral2 = nn.Conv2d(c2, f, 1, bias=False)
        self.lateral1 = nn.Conv2d(c1, f, 1, bias=False)
        self.lateral0 = nn.Conv2d(c0, config.head_channels, 1, bias=False)
        self.td1 = _decoder_conv(f, f, config.norm)
        self.td2 = _decoder_conv(f, f, config.norm)
        self.td3 = _decoder_conv(f, f, config.norm)

    def forward(self, x: torch.Tensor):
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


class FPNHead(nn.Module):
    """Two 3×3 convolutions with ReLU, no normalisation (DeblurGAN-v2's ``FPNHead``)."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.block0 = nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.block1 = nn.Conv2d(mid, cout, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block1(F.relu(self.block0(x))))


def _static_hw(x: torch.Tensor) -> tuple[int, int]:
    # Exported graphs have static shapes, so the tracer may bake the input's size in as constants: say so once here
    # instead of a TracerWarning on every export.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return int(x.shape[-2]), int(x.shape[-1])


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Pad NCHW ``x`` at the bottom and right to multiples of ``multiple`` by repeating its last row/column.

    Slices and one Concat per axis: exports to every opset and converter (no Pad op). Shapes are static per exported
    graph, so the pad widths are constants of the graph.
    """
    h, w = _static_hw(x)
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph:
        x = torch.cat([x] + [x[:, :, h - 1:h, :]] * ph, dim=2)
    if pw:
        x = torch.cat([x] + [x[:, :, :, w - 1:w]] * pw, dim=3)
    return x


class FPNMobileNetV2(nn.Module):
    """DeblurGAN-v2's FPN-MobileNet generator (module docstring). ``forward``: BGR 0..255 in and out (the exported
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
        self.final = nn.Conv2d(h // 2, 3, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision MobileNetV2's initialisation (Kaiming-normal fan-out convs, BN at identity); ``final`` at
        zero, so the untrained generator is the identity (its output equals its input)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The learned correction ``tanh(final(...))`` of a padded input (H, W multiples of 32), in [-1, 1] units."""
        map0, map1, map2, map3, map4 = self.fpn(x)
        map4 = _upsample(self.head4(map4), 8)
        map3 = _upsample(self.head3(map3), 4)
        map2 = _upsample(self.head2(map2), 2)
        map1 = self.head1(map1)
        smoothed = self.smooth(torch.cat([map4, map3, map2, map1], dim=1))
        smoothed = self.smooth2(_upsample(smoothed, 2) + map0)
        return torch.tanh(self.final(_upsample(smoothed, 2)))

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [-1, 1] -> deblurred images in [-1, 1], the same size."""
        h, w = _static_hw(x)
        padded = pad_to_multiple(x)
        out = torch.clamp(padded + self.residual(padded), -1.0, 1.0)
        return out[:, :, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float BGR crops in 0..255 -> deblurred crops, float BGR 0..255, the same size."""
        return (self.restore(x * (1.0 / 127.5) - 1.0) + 1.0) * 127.5


def build_deblurgan(name_or_config: str | DeblurGANConfig = "deblurgan-v2") -> FPNMobileNetV2:
    """A freshly initialised generator from a preset name (``DEBLURGAN_PRESETS``) or a :class:`DeblurGANConfig`."""
    return FPNMobileNetV2(_config(name_or_config))


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


# ------------------------------------------------------------------------------------------------ discriminators
class NLayerDiscriminator(nn.Module):
    """pix2pix's PatchGAN: ``n_layers`` 4×4 stride-2 convs (channels ×2 up to 8·ndf), one 4×4 stride-1 conv, and a
    4×4 conv to one logit per patch; LeakyReLU 0.2, InstanceNorm after every conv but the first and the last."""

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            # no bias before an affine-free InstanceNorm: it would be subtracted right away
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False), nn.InstanceNorm2d(ndf * mult),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        self.n_layers = n_layers

    @staticmethod
    def output_side(side: int, n_layers: int) -> int:
        """Side of the logit map for a ``side``-pixel input (0 or less: too small)."""
        for _ in range(n_layers):
            side = side // 2  # 4×4, stride 2, padding 1
        return side - 2  # two 4×4 stride-1 convs with padding 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DoubleScaleDiscriminator(nn.Module):
    """DeblurGAN-v2's double-scale discriminator: ``patch`` (local PatchGAN map) and ``full`` (whole-crop receptive
    field, averaged to one logit per crop). ``forward`` returns both, for :func:`ralsgan_d_loss` / ``_g_loss``."""

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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.patch(x), self.full(x).mean(dim=(2, 3), keepdim=True)


def build_discriminator(name_or_config: str | DeblurGANConfig = "deblurgan-v2") -> DoubleScaleDiscriminator:
    """A freshly initialised double-scale discriminator (pix2pix's N(0, 0.02) initialisation)."""
    d = DoubleScaleDiscriminator(_config(name_or_config))
    for m in d.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return d


# ------------------------------------------------------------------------------------------------ checkpoints
def save_deblurgan(model: FPNMobileNetV2, path, metadata: dict | None = None):
    """Save the generator with its configuration (``family``, ``config``) so :func:`load_deblurgan` rebuilds it."""
    meta = {"family": FAMILY, "config": model.config.to_dict(), **(metadata or {})}
    return save_weights(model, path, meta)


def load_deblurgan(path) -> FPNMobileNetV2:
    """Rebuild the generator a :func:`save_deblurgan` checkpoint describes and load its weights (eval mode, CPU)."""
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
    return model.eval()


# ------------------------------------------------------------------------------------------------ metrics
def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1]."""
    return (x + 1.0) * 0.5


def _gaussian_window(channels: int, size: int, sigma: float, ref: torch.Tensor) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    g = g / g.sum()
    return torch.outer(g, g).to(ref).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, win_size: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM of NCHW ``a`` against ``b``: (N,), the mean over channels and valid window positions.

    Wang et al.'s SSIM with an 11-tap Gaussian window (σ 1.5), K1 0.01, K2 0.03, population covariances, windows
    wholly inside the image — the same numbers as ``skimage.metrics.structural_similarity(a, b,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=..., channel_axis=-1)`` (tested to
    1e-4), in torch so it runs on the training device and is differentiable (the content loss uses it).
    """
    if a.shape != b.shape or a.ndim != 4:
        raise InvalidArgumentError(f"ssim needs two NCHW tensors of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    if min(a.shape[-2:]) < win_size:
        raise InvalidArgumentError(f"ssim needs images of at least {win_size}×{win_size}, got {tuple(a.shape[-2:])}")
    c = a.shape[1]
    win = _gaussian_window(c, win_size, sigma, a)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t):
        return F.conv2d(t, win, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return (num / den).mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB of NCHW ``a`` against ``b``: (N,) (``skimage.metrics.peak_signal_noise_ratio``'s
    definition; identical images give 10·log10(range² / 1e-12) instead of infinity)."""
    mse = ((a.float() - b.float()) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-12 * data_range ** 2)
    return 10.0 * torch.log10(data_range ** 2 / mse)


# ------------------------------------------------------------------------------------------------ losses
def ralsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """RaLSGAN's discriminator loss on its logits: real above the average fake by 1, fake below the average real."""
    return 0.5 * (((real - fake.mean() - 1.0) ** 2).mean() + ((fake - real.mean() + 1.0) ** 2).mean())


def ralsgan_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """RaLSGAN's generator loss: the discriminator's targets swapped."""
    return 0.5 * (((real - fake.mean() + 1.0) ** 2).mean() + ((fake - real.mean() - 1.0) ** 2).mean())


def double_scale_loss(loss, real_out: tuple, fake_out: tuple) -> torch.Tensor:
    """``loss`` (:func:`ralsgan_d_loss` or ``_g_loss``) averaged over the discriminator's scales."""
    return sum(loss(r.float(), f.float()) for r, f in zip(real_out, fake_out)) / len(real_out)


def _image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[:, :, :, 1:] - x[:, :, :, :-1], x[:, :, 1:, :] - x[:, :, :-1, :]


class TrackerPerceptual(nn.Module):
    """A perceptual distance in a trained tracker's own features: the frozen AlexNet of a SiamFC checkpoint.

    ``L = Σ_l mean|φ_l(out) − φ_l(sharp)| / mean|φ_l(sharp)|`` over conv2 and conv3 (before fusion), each term
    normalised by the sharp features' scale so the weight does not depend on the checkpoint. Images are fed in the
    tracker's own convention (BGR 0..255). Needs crops of at least 55 px (the backbone's valid convolutions).
    """

    def __init__(self, checkpoint: str):
        super().__init__()
        from edgetrack.models.torch.siamfc import load_siamfc

        self.backbone = load_siamfc(checkpoint).backbone.eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # the backbone's BN keeps its running statistics whatever the trainer does
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """conv2 (after ReLU) and conv3 of [-1, 1] images; conv4/conv5 are not needed, so neither is their size."""
        b = self.backbone
        f2 = b.conv2(b.pool1(b.conv1(to_unit(images) * 255.0)))
        return f2, b.conv3(b.pool2(f2))

    def forward(self, fake: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        f_fake = self.features(fake)
        with torch.no_grad():
            f_sharp = self.features(sharp)
        total = fake.new_zeros(())
        for a, b in zip(f_fake, f_sharp):
            total = total + (a - b).abs().mean() / (b.abs().mean() + 1e-6)
        return total


class ContentLoss(nn.Module):
    """``l1·L1 + ssim·(1 − SSIM) + edge·L1(∇out, ∇sharp) [+ perceptual·TrackerPerceptual]`` on [-1, 1] images
    (computed in [0, 1] units); see the module docstring for why these terms. ``forward`` returns (total, parts)."""

    def __init__(self, l1: float = 1.0, ssim_weight: float = 1.0, edge: float = 1.0,
                 perceptual: TrackerPerceptual | None = None, perceptual_weight: float = 0.0):
        super().__init__()
        for name, value in (("l1", l1), ("ssim", ssim_weight), ("edge", edge), ("perceptual", perceptual_weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"content loss weight {name} must be a finite number >= 0, got {value!r}")
        self.weights = {"l1": float(l1), "ssim": float(ssim_weight), "edge": float(edge)}
        self.perceptual = perceptual
        self.perceptual_weight = float(perceptual_weight) if perceptual is not None else 0.0

    def forward(self, fake: torch.Tensor, sharp: torch.Tensor) -> tuple[torch.Tensor, dict]:
        fake, sharp = fake.float(), sharp.float()
        a, b = to_unit(fake), to_unit(sharp)
        parts = {"l1": (a - b).abs().mean()}
        parts["ssim"] = 1.0 - ssim(a, b).mean() if self.weights["ssim"] else a.new_zeros(())
        if self.weights["edge"]:
            (ax, ay), (bx, by) = _image_gradients(a), _image_gradients(b)
            parts["edge"] = 0.5 * ((ax - bx).abs().mean() + (ay - by).abs().mean())
        else:
            parts["edge"] = a.new_zeros(())
        total = sum(self.weights[k] * parts[k] for k in ("l1", "ssim", "edge"))
        if self.perceptual is not None and self.perceptual_weight:
            parts["perceptual"] = self.perceptual(fake, sharp)
            total = total + self.perceptual_weight * parts["perceptual"]
        return total, parts
