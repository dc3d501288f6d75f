"""ONNX (or MindSpore's own MindIR) -> MindSpore Lite MindIR for Ascend with ``converter_lite``.

From MindSpore Lite's cloud-side docs ("Offline Conversion of Inference Models" and "Ascend Conversion Tool
Description", r2.8/r2.10):

- ``converter_lite --fmk=ONNX --modelFile=M.onnx --outputFile=STEM`` writes ``STEM.mindir`` (the suffix is added);
  ``--saveType=MINDIR``; ``--optimize=ascend_oriented`` optimises for the Ascend backend (the result then runs
  only there; it replaces the deprecated ``--device``); ``--inputShape="name:1,3,127,127;..."`` fixes static
  shapes ("For static BatchSize, use converter_lite command to specify inputShape"); ``--configFile`` names a
  ``key=value`` file.
- That file's ``[ascend_context]`` section: ``input_format`` (NCHW/NHWC/ND), ``precision_mode``
  (enforce_fp32 / preferred_fp32 / enforce_fp16 / enforce_origin / preferred_optimal; default enforce_fp16) and
  ``insert_op_config_file_path`` (the AIPP file, same syntax as ATC's).
- The converter needs CANN 7.5 or newer and compiles for the Ascend device of the machine it runs on.

MindSpore's own MindIR as the source (``--fmk=MINDIR``, :func:`mindir2mindir`; what ``edgetrack convert --framework
mindspore --toolchain converter_lite`` does, :mod:`edgetrack.converters.ms2mindir` writes the files). What the same
docs (cloud-side "Offline Conversion of Inference Models", r2.8 / master, and the r2.10 Python converter page) say:

- ``--fmk`` takes ``MINDIR, CAFFE, TFLITE, TF, ONNX``; their example is ``converter_lite --fmk=MINDIR
  --saveType=MINDIR --optimize=general --modelFile=model.mindir --outputFile=model``, and for a MindSpore model they
  suggest "setting ``--optimize`` to ascend_oriented in Ascend hardware", so that the optimisation is done offline
  rather than when the model is first loaded.
- ``--inputShape`` is documented for every ``--fmk`` ("keep the order of the input dimensions the same as the
  original model"), and the ``[ascend_context]`` table says an input name "must be the input name in the network
  model before conversion" and that static shapes go through ``--inputShape``. A MindSpore-exported MindIR names its
  inputs after the exporting cell's ``construct`` parameters, which ms2mindir sets to the bundle's tensor names and
  checks in the written file.
- ``--configFile``'s ``[ascend_context]`` (``input_format``, ``precision_mode``, ``insert_op_config_file_path``) is
  documented without any restriction on the input framework, so the config and the AIPP file are the ones the ONNX
  path writes.

Not confirmed by those docs (they neither say it nor give a MINDIR example with it): that ``--inputShape`` and an AIPP
``insert_op_config_file_path`` are honoured, rather than ignored, for a ``--fmk=MINDIR`` model whose shapes are already
static. Public conversion scripts pass ``--inputShape`` with ``--fmk=MINDIR --optimize=ascend_oriented``, and
MindOCR's FAQ converts a MindSpore-exported MindIR with ``input_shape`` in ``[ascend_context]`` (its error "Failed to
find input x in input_shape args0" shows converter_lite matching the names), but none of that is MindSpore Lite's own
documentation, and none of it uses AIPP. The shapes are static in the file anyway, and the built device file's inputs
(uint8 NHWC where AIPP is inserted) are checked against the manifest when the ``mslite`` backend loads it.

int8. MindSpore Lite's quantization guide (r2.10, "Quantization" > "Full Quantization" > "Ascend") documents full
quantization for this path: ``--optimize=ascend_oriented`` and a config with ``[common_quant_param]
quant_type=FULL_QUANT``, ``[data_preprocess_param]`` (``calibrate_path=input:dir,...``, ``calibrate_size``,
``input_type=BIN``) and ``[full_quant_param] target_device=ASCEND``. Its ``.bin`` calibration files must hold "the
input data buffer ... consistent with the format of the input data during inference. For 4D data, the default is
NHWC" unless ``--inputDataFormat`` is set, which the cloud-side converter's parameter tables mark "not supported at
the moment" for some releases. These graphs take NCHW crops behind static AIPP (uint8 NHWC frames on the device),
and the guide does not say which of those its calibration reads, so edgetrack does not write that config: int8 with
converter_lite is a typed error pointing to ``--toolchain atc`` (AMCT, :mod:`edgetrack.converters.onnx2amct`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from edgetrack.ascend.socs import Soc, get_soc
from edgetrack.converters.onnx2om import atc_precision_mode, input_shape_arg, run_tool
from edgetrack.errors import ConversionError, InvalidArgumentError, UnknownChoiceError

__all__ = [
    "CONVERTER_LITE",
    "converter_lite_precision_mode",
    "converter_lite_config",
    "write_converter_lite_config",
    "converter_lite_argv",
    "CONVERTER_LITE_FMKS",
    "find_mindir",
    "onnx2mindir",
    "mindir2mindir",
]

CONVERTER_LITE = "converter_lite"
# The source formats edgetrack gives converter_lite (its --fmk), by the model file's suffix.
CONVERTER_LITE_FMKS = {"ONNX": ".onnx", "MINDIR": ".mindir"}


def converter_lite_precision_mode(soc, precision: str) -> str:
    """``[ascend_context] precision_mode`` for edgetrack's precision name: fp16 only (int8: module docstring)."""
    soc = get_soc(soc)
    if precision == "int8":
        raise InvalidArgumentError(
            f"int8 for {soc.chip} through converter_lite is not built: MindSpore Lite's full quantization "
            "(quant_type=FULL_QUANT, target_device=ASCEND) is documented, but not which layout its .bin calibration "
            "data must have for these NCHW graphs with AIPP in front (its guide says NHWC by default), and a "
            "calibration on data of the wrong layout would quantize silently wrong",
            fix="use --toolchain atc for int8 (AMCT calibration, then ATC: OM files), or --precision fp16 with "
                "--toolchain converter_lite",
        )
    atc_precision_mode(soc, precision)  # the same typed errors for fp32 / unknown names
    return soc.converter_lite_precision_mode


def converter_lite_config(soc: Soc | str, precision: str = "fp16", aipp_cfg: str | os.PathLike | None = None,
                          *, input_format: str = "NCHW") -> str:
    """The ``--configFile`` text: one ``[ascend_context]`` section."""
    lines = [
        "# edgetrack: converter_lite --optimize=ascend_oriented configuration",
        "[ascend_context]",
        f"input_format={input_format}",
        f"precision_mode={converter_lite_precision_mode(soc, precision)}",
    ]
    if aipp_cfg is not None:
        lines.append(f"insert_op_config_file_path={os.fspath(aipp_cfg)}")
    return "\n".join(lines) + "\n"


def write_converter_lite_config(path: str | os.PathLike, soc, precision: str = "fp16",
                                aipp_cfg: str | os.PathLike | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(converter_lite_config(soc, precision, aipp_cfg), encoding="utf-8")
    return path


def converter_lite_argv(model: str | os.PathLike, out_stem: str | os.PathLike,
                        input_shapes: Mapping[str, Sequence[int]], config_file: str | os.PathLike, *,
                        fmk: str = "ONNX") -> list[str]:
    """The ``converter_lite`` command reading ``model`` (``fmk`` "ONNX": a .onnx graph; "MINDIR": MindSpore's own
    .mindir) and writing ``out_stem`` + ``.mindir`` (paths as given). The other options are the same for both sources
    (module docstring)."""
    if fmk not in CONVERTER_LITE_FMKS:
        raise UnknownChoiceError("converter_lite --fmk", fmk, CONVERTER_LITE_FMKS,
                                 fix="edgetrack gives converter_lite ONNX graphs or MindSpore's MindIR")
    name, suffix = os.fspath(model), CONVERTER_LITE_FMKS[fmk]
    if not name.endswith(suffix):
        other = next((k for k, v in CONVERTER_LITE_FMKS.items() if name.endswith(v)), None)
        raise InvalidArgumentError(f"converter_lite --fmk={fmk} reads a {suffix} file, got {name!r}",
                                   fix=f"pass fmk={other!r} for it" if other else f"pass a {suffix} file")
    if Path(name).with_suffix("") == Path(os.fspath(out_stem)):
        raise InvalidArgumentError(f"converter_lite would write {os.fspath(out_stem)}.mindir over its input {name!r}",
                                   fix="give the output another path (edgetrack writes device files into device/)")
    return [
        CONVERTER_LITE,
        f"--fmk={fmk}",
        f"--modelFile={os.fspath(model)}",
        f"--outputFile={os.fspath(out_stem)}",
        "--saveType=MINDIR",
        "--optimize=ascend_oriented",
        f"--inputShape={input_shape_arg(input_shapes)}",
        f"--configFile={os.fspath(config_file)}",
    ]


def find_mindir(out_stem: str | os.PathLike) -> Path:
    """The MindIR file converter_lite wrote for ``--outputFile=out_stem``."""
    stem = Path(out_stem)
    path = stem.with_name(stem.name + ".mindir")
    if not path.is_file():
        raise ConversionError(f"converter_lite reported success but {str(path)!r} does not exist",
                              fix="check converter_lite's output and the --outputFile path")
    return path


def _convert(model, out_stem, soc, input_shapes, precision, aipp_cfg, cwd, fmk: str) -> Path:
    base = Path(cwd or ".")
    config = Path(f"{os.fspath(out_stem)}_converter_lite.cfg")
    argv = converter_lite_argv(model, out_stem, input_shapes, config, fmk=fmk)  # argument errors before any write
    write_converter_lite_config(base / config, soc, precision, aipp_cfg)
    run_tool(argv, cwd=cwd)
    return find_mindir(base / out_stem)


def onnx2mindir(onnx: str | os.PathLike, out_stem: str | os.PathLike, soc, input_shapes: Mapping[str, Sequence[int]],
                precision: str = "fp16", aipp_cfg: str | os.PathLike | None = None, *,
                cwd: str | os.PathLike | None = None) -> Path:
    """Write the config next to ``out_stem``, run converter_lite on the ONNX graph; returns the .mindir path."""
    return _convert(onnx, out_stem, soc, input_shapes, precision, aipp_cfg, cwd, "ONNX")


def mindir2mindir(mindir: str | os.PathLike, out_stem: str | os.PathLike, soc,
                  input_shapes: Mapping[str, Sequence[int]], precision: str = "fp16",
                  aipp_cfg: str | os.PathLike | None = None, *, cwd: str | os.PathLike | None = None) -> Path:
    """Write the config next to ``out_stem``, run converter_lite on MindSpore's own MindIR (``--fmk=MINDIR``, e.g.
    :func:`edgetrack.converters.ms2mindir.export_cell_mindir`'s file); returns the device .mindir path, which must
    differ from the source's."""
    return _convert(mindir, out_stem, soc, input_shapes, precision, aipp_cfg, cwd, "MINDIR")
