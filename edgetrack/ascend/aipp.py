"""Static AIPP: the preprocessing the Ascend chip does in hardware, so the device takes uint8 BGR frames as they are.

AIPP (AI Pre-Processing) is an operator ATC inserts in front of a model input (``atc --insert_op_conf=aipp.cfg``;
MindSpore Lite: ``insert_op_config_file_path`` in ``[ascend_context]``). What this module relies on, from the
CANN ATC docs ("AIPP使能": configuration file template, normalization, examples):

- The file is prototxt: ``aipp_op { key: value ... }``. In static mode only ``input_format`` is required; every
  field left out takes the template's default. ``aipp_mode: static`` bakes the parameters into the OM.
- Order of operations in hardware: channel swap (``rbuv_swap_switch``) > crop > colour-space conversion > mean
  subtraction / normalization > padding. Normalization applies to the channels *after* the swap.
- ``input_format: RGB888_U8`` is packed 3-channel uint8 (the docs: "RGB888_U8代表的是RGB package格式"). With
  ``rbuv_swap_switch: false`` the output keeps the input's channel order; ``true`` swaps channels 0 and 2 ("若
  原始模型需要的是BGR格式,则需要将rbuv_swap_switch参数设置为true" for RGB images). edgetrack frames are BGR, so a
  BGR model needs no swap and no colour-space conversion (``csc_switch: false``).
- Normalization: ``pixel_out_chx(i) = [pixel_in_chx(i) - mean_chn_i - min_chn_i] * var_reci_chn_i``;
  ``mean_chn_i`` is an integer (``int32_t meanChn0`` in ``aclAippInfo``), ``min_chn_i``/``var_reci_chn_i`` floats.
- AIPP writes fp16 (NC1HWC0 with C0 = 16 for fp16 output); with AIPP on, the model input at inference time is
  uint8 NHWC, whatever ``--input_format`` says ("模型转换时开启AIPP:在进行推理业务时,输入图片数据要求为NHWC排布").
- Image size: ``src_image_size_w``/``_h`` in [1, 4096] (``aclAippInfo.srcImageSizeW``); batches share one set of
  static AIPP parameters, so the search graph's scales all go through the same AIPP.

:meth:`AippConfig.apply` does the same arithmetic in numpy so the CPU simulator feeds the graph what the chip
would: computed in float32 and rounded to float16 once, as AIPP's fp16 output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from edgetrack.errors import InvalidArgumentError, UnknownChoiceError

__all__ = ["AippConfig", "MAX_IMAGE_SIDE"]

MAX_IMAGE_SIDE = 4096
_INPUT_FORMATS = ("RGB888_U8",)  # the only one edgetrack's BGR uint8 frames need (no colour-space conversion)


def _three(name: str, values, kind):
    try:
        out = tuple(kind(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"AIPP {name} must be three numbers, got {values!r}") from exc
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise InvalidArgumentError(f"AIPP {name} must be three finite numbers, got {values!r}")
    return out


@dataclass(frozen=True)
class AippConfig:
    """One static ``aipp_op`` block for a model input of ``src_image_size_h`` x ``src_image_size_w`` pixels."""

    src_image_size_w: int
    src_image_size_h: int
    input_format: str = "RGB888_U8"
    rbuv_swap_switch: bool = False
    mean_chn: tuple[int, int, int] = (0, 0, 0)
    min_chn: tuple[float, float, float] = (0.0, 0.0, 0.0)
    var_reci_chn: tuple[float, float, float] = (1.0, 1.0, 1.0)
    related_input_rank: int = 0

    def __post_init__(self):
        for name in ("src_image_size_w", "src_image_size_h"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_IMAGE_SIDE:
                raise InvalidArgumentError(f"AIPP {name} must be an integer in [1, {MAX_IMAGE_SIDE}], got {v!r}")
        if self.input_format not in _INPUT_FORMATS:
            raise UnknownChoiceError("AIPP input_format", self.input_format, _INPUT_FORMATS,
                                     fix="edgetrack feeds packed uint8 frames (RGB888_U8)")
        r = self.related_input_rank
        if not isinstance(r, int) or isinstance(r, bool) or r < 0:
            raise InvalidArgumentError(f"AIPP related_input_rank must be a non-negative integer, got {r!r}")
        object.__setattr__(self, "rbuv_swap_switch", bool(self.rbuv_swap_switch))
        object.__setattr__(self, "mean_chn", _three("mean_chn", self.mean_chn, int))
        object.__setattr__(self, "min_chn", _three("min_chn", self.min_chn, float))
        object.__setattr__(self, "var_reci_chn", _three("var_reci_chn", self.var_reci_chn, float))

    # -- building -----------------------------------------------------------------------------------------------
    @classmethod
    def from_preprocessing(cls, preprocessing: Mapping, height: int, width: int, *,
                           frame_order: str = "BGR", related_input_rank: int = 0) -> "AippConfig":
        """The AIPP that turns ``frame_order`` uint8 HWC frames into the float NCHW input a bundle's
        ``preprocessing`` describes: ``channel_order``, ``value_range`` [lo, hi] for pixel 0..255, then
        ``(value - mean) / std`` per channel, ``layout`` NCHW, ``dtype`` float32.
        """
        p = dict(preprocessing)
        order = str(p.get("channel_order", "BGR")).upper()
        for what, value in (("channel_order", order), ("frame order", frame_order.upper())):
            if value not in ("BGR", "RGB"):
                raise UnknownChoiceError(what, value, ("BGR", "RGB"))
        if str(p.get("layout", "NCHW")).upper() != "NCHW":
            raise InvalidArgumentError(
                f"AIPP feeds NCHW ONNX inputs, but the preprocessing says layout {p.get('layout')!r}",
                fix="export the graphs with NCHW image inputs",
            )
        if str(p.get("dtype", "float32")) not in ("float32", "float16"):
            raise InvalidArgumentError(f"AIPP writes floating point; preprocessing dtype {p.get('dtype')!r} is not")
        lo, hi = (float(v) for v in p.get("value_range", (0.0, 255.0)))
        mean = _three("mean", p.get("mean", (0.0, 0.0, 0.0)), float)
        std = _three("std", p.get("std", (1.0, 1.0, 1.0)), float)
        if not hi > lo or any(s == 0 for s in std):
            raise InvalidArgumentError(f"preprocessing value_range {[lo, hi]} / std {list(std)} cannot be inverted")
        step = (hi - lo) / 255.0  # model units per pixel level
        # (lo + px*step - mean)/std == (px - (mean - lo)/step) * (step/std): all of the offset goes into the float
        # min_chn, because mean_chn only holds integers.
        return cls(
            src_image_size_w=int(width),
            src_image_size_h=int(height),
            rbuv_swap_switch=order != frame_order.upper(),
            mean_chn=(0, 0, 0),
            min_chn=tuple((m - lo) / step for m in mean),
            var_reci_chn=tuple(step / s for s in std),
            related_input_rank=related_input_rank,
        )

    def to_dict(self) -> dict:
        return {
            "aipp_mode": "static",
            "input_format": self.input_format,
            "src_image_size_w": self.src_image_size_w,
            "src_image_size_h": self.src_image_size_h,
            "rbuv_swap_switch": self.rbuv_swap_switch,
            "mean_chn": list(self.mean_chn),
            "min_chn": list(self.min_chn),
            "var_reci_chn": list(self.var_reci_chn),
            "related_input_rank": self.related_input_rank,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "AippConfig":
        d = dict(data)
        if d.pop("aipp_mode", "static") != "static":
            raise InvalidArgumentError("only static AIPP is supported", fix="rebuild the bundle with edgetrack")
        try:
            return cls(**d)
        except TypeError as exc:
            raise InvalidArgumentError(f"not an AIPP configuration: {exc}") from exc

    # -- the file ATC reads -------------------------------------------------------------------------------------
    def render(self) -> str:
        """The ``aipp_op`` block as ATC's ``--insert_op_conf`` file (and converter_lite's) reads it."""
        b = lambda v: "true" if v else "false"  # noqa: E731 - prototxt booleans
        lines = [
            "# edgetrack: uint8 packed HWC frames in, the model's float NCHW input out (static AIPP)",
            "aipp_op {",
            "    aipp_mode: static",
            f"    related_input_rank: {self.related_input_rank}",
            f"    input_format: {self.input_format}",
            f"    src_image_size_w: {self.src_image_size_w}",
            f"    src_image_size_h: {self.src_image_size_h}",
            "    crop: false",
            "    csc_switch: false",
            f"    rbuv_swap_switch: {b(self.rbuv_swap_switch)}",
        ]
        lines += [f"    mean_chn_{i}: {v}" for i, v in enumerate(self.mean_chn)]
        lines += [f"    min_chn_{i}: {v!r}" for i, v in enumerate(self.min_chn)]
        lines += [f"    var_reci_chn_{i}: {v!r}" for i, v in enumerate(self.var_reci_chn)]
        lines.append("}")
        return "\n".join(lines) + "\n"

    # -- what the chip does with it -----------------------------------------------------------------------------
    def apply(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) or (N, H, W, 3) -> float16 (N, 3, H, W), as this AIPP on the chip.

        Swap (if set), then ``(x - mean_chn - min_chn) * var_reci_chn`` per channel in float32, rounded once to
        float16 (AIPP's output type).
        """
        x = np.asarray(frames)
        if x.dtype != np.uint8:
            raise InvalidArgumentError(f"AIPP input must be uint8 (RGB888_U8), got {x.dtype}",
                                       fix="pass the frames as they come from OpenCV (uint8 BGR)")
        if x.ndim == 3:
            x = x[None]
        expected = (self.src_image_size_h, self.src_image_size_w, 3)
        if x.ndim != 4 or x.shape[1:] != expected:
            raise InvalidArgumentError(
                f"AIPP input must be (H, W, 3) or (N, H, W, 3) with (H, W) = "
                f"({self.src_image_size_h}, {self.src_image_size_w}), got {np.shape(frames)}",
                fix="crop and resize to the graph's input size first (AIPP crop/resize are off)",
            )
        y = x.astype(np.float32)
        if self.rbuv_swap_switch:
            y = y[..., ::-1]
        offset = np.asarray(self.mean_chn, np.float32) + np.asarray(self.min_chn, np.float32)
        y = (y - offset) * np.asarray(self.var_reci_chn, np.float32)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2).astype(np.float16))

    def device_input_shape(self, batch: int) -> tuple[int, int, int, int]:
        """The uint8 NHWC shape the device input takes with this AIPP (batch of ``batch`` images)."""
        return (int(batch), self.src_image_size_h, self.src_image_size_w, 3)

    def describe(self) -> str:
        swap = "R/B swapped" if self.rbuv_swap_switch else "channel order kept"
        return (f"{self.input_format} {self.src_image_size_w}x{self.src_image_size_h}, {swap}, mean "
                f"{list(self.mean_chn)}, min {list(self.min_chn)}, var_reci {list(self.var_reci_chn)}")

