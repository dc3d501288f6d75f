"""fp32 ONNX -> AMCT's int8 deploy ONNX (CANN's model compression tool), the first of the two int8 steps for Ascend.

Ascend int8 is two tool runs per graph, both recorded in the bundle and run when the tools are on PATH:

1. ``amct_onnx calibration`` (this module): static post-training quantization of the checked fp32 ONNX graph,
   calibrated on crops from real sequences of the data set the user names (``--calibration``), written into the
   bundle as the ``.bin`` files AMCT reads. It writes ``<save_path>_deploy_model.onnx``, the graph with AMCT's
   AscendQuant / AscendDequant layers around the int8 convolutions;
2. ``atc`` on that deploy model (:func:`edgetrack.converters.onnx2om.atc_argv` with precision ``int8``).

What AMCT's documentation says, and what is used of it (CANN "AMCT" guide, command-line options, e.g.
hiascend.com/document/detail/zh/canncommercial/850/devaids/amct/atlasamct_16_0344.html ... _0350.html; the
Ascend/samples repository's ``python/level1_single_api/9_amct/amct_onnx/cmd`` runs the same form):

- ``amct_onnx calibration param1=value1 ...`` (``--name=value``, no space before the value) is the command-line form
  of post-training quantization.
- ``--model``: the ``.onnx`` file. ``--save_path``: path *with a model-name prefix* (``./results/model_prefix``),
  created if missing; the outputs are ``<prefix>_deploy_model.onnx`` (for ATC) and ``<prefix>_fake_quant_model.onnx``
  (accuracy simulation in ONNX Runtime), as the AMCT samples' logs show (``resnet-101_deploy_model.onnx``).
- ``--input_shape``: ``"name1:n,c,h,w;name2:..."``, the shape of one ``.bin`` file of each input.
- ``--data_dir``: the ``.bin`` data set; with several inputs one directory per input, in the inputs' order, joined by
  ``;`` (``"data/input1/;data/input2/"``), the files of each directory in ascending name order. Paths may hold
  letters, digits, ``_``, ``-``, ``.``.
- ``--data_types``: ``"float32"``, or one type per input in input order joined by ``;``.
- ``--batch_num``: how many batches calibration runs (default 1); each ``.bin`` file is one batch of
  ``--input_shape``.
- Quantized layers (post-training, ONNX): Conv with a *constant/initializer* weight, Gemm, MatMul, ConvTranspose,
  AveragePool; MaxPool and Add get tensor quantization only. A Conv whose weight is computed at run time (the
  correlation in every Siamese head) is not quantized: it stays fp16 on the chip (the operator audit says so too).

Not used, because edgetrack has no need for them or could not confirm them: ``--calibration_config`` (a simplified
configuration file; its proto fields are documented, but AMCT's defaults are what edgetrack's int8 means here),
``--evaluator`` (a Python script instead of ``.bin`` data) and any option ``amct_onnx calibration --help`` prints
beyond the table above (the docs call those reserved).

The ``.bin`` files are raw float32 arrays in the graph input's own layout and shape (NCHW crops with whole pixel
values, as the tracker feeds the ONNX graph; AIPP sits in front of them only on the device). Graphs whose inputs are
not images still get real data: the head is calibrated on what the fp32 template and search graphs make of the
calibration crops (each sequence's first-frame kernel with later search features, as tracking pairs them).
Calibration data is part of the bundle, so the number of batches is small and bounded:
:data:`DEFAULT_CALIBRATION_BATCHES` by default, at most :data:`MAX_CALIBRATION_BATCHES` (siamrpn-eca: about 1.9 MB a
batch over its three graphs; SiamFC with 3 search scales several MB).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from edgetrack.converters.onnx2om import input_shape_arg, run_tool
from edgetrack.errors import ConversionError, InvalidArgumentError

__all__ = [
    "AMCT",
    "DEPLOY_SUFFIX",
    "AMCT_DIR",
    "CALIBRATION_DIR",
    "DEFAULT_CALIBRATION_BATCHES",
    "MAX_CALIBRATION_BATCHES",
    "check_batches",
    "amct_argv",
    "deploy_model",
    "find_deploy_model",
    "input_folder",
    "write_calibration_data",
    "onnx2amct",
]

AMCT = "amct_onnx"
DEPLOY_SUFFIX = "_deploy_model.onnx"
# Bundle folders (relative to the bundle root): AMCT's outputs and the calibration batches, one folder per graph
# input under CALIBRATION_DIR/<graph>/.
AMCT_DIR = "device/amct"
CALIBRATION_DIR = "device/calibration"
# Calibration batches travel inside the bundle (float32 .bin files), so they are few: 8 real samples per graph by
# default, at most 32. (ONNX Runtime's int8 path for cpu/cuda calibrates on 200 crops that never enter the bundle.)
DEFAULT_CALIBRATION_BATCHES = 8
MAX_CALIBRATION_BATCHES = 32
DATA_TYPES = ("float32", "float64")
# What AMCT's docs allow in --save_path / --data_dir paths (letters, digits, _ - .), plus the separator.
_PATH = re.compile(r"^[\w.\-/]+$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_batches(batches) -> int:
    """The number of calibration batches (None: the default), or a typed error naming the bound."""
    if batches is None:
        return DEFAULT_CALIBRATION_BATCHES
    if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 1:
        raise InvalidArgumentError(f"the number of calibration batches must be a positive integer, got {batches!r}")
    if batches > MAX_CALIBRATION_BATCHES:
        raise InvalidArgumentError(
            f"{batches} calibration batches asked for an Ascend int8 bundle; the bundle carries them as float32 .bin "
            f"files for AMCT, so at most {MAX_CALIBRATION_BATCHES} are written",
            fix=f"pass --calibration-frames {MAX_CALIBRATION_BATCHES} or fewer (default {DEFAULT_CALIBRATION_BATCHES})",
        )
    return int(batches)


def _check_path(what: str, path: str) -> str:
    if not _PATH.match(path) or ";" in path:
        raise InvalidArgumentError(
            f"AMCT {what} {path!r} has characters AMCT does not accept (letters, digits, '_', '-', '.' and '/')",
            fix="use a plain relative path, e.g. the bundle's own device/ folder",
        )
    return path


def amct_argv(onnx: str | os.PathLike, save_path: str | os.PathLike, input_shapes: Mapping[str, Sequence[int]],
              data_dirs: Mapping[str, str | os.PathLike], batch_num: int,
              data_types: Sequence[str] | None = None) -> list[str]:
    """The ``amct_onnx calibration`` command quantizing ``onnx`` into ``save_path`` + :data:`DEPLOY_SUFFIX`.

    ``input_shapes``: graph input -> the static shape of one ``.bin`` file (the graph's input shape);
    ``data_dirs``: graph input -> its folder of ``.bin`` files (the same inputs); ``batch_num``: how many files each
    folder holds; ``data_types``: one per input (default float32). Paths are written as given, so relative paths make
    a command that works from the bundle folder. See the module docstring for each option's source.
    """
    shapes = input_shape_arg(input_shapes)
    names = list(input_shapes)
    if set(data_dirs) != set(names):
        raise InvalidArgumentError(f"data_dirs must name the inputs {names}, got {sorted(data_dirs)}")
    types = list(data_types) if data_types is not None else ["float32"] * len(names)
    if len(types) != len(names) or any(t not in DATA_TYPES for t in types):
        raise InvalidArgumentError(f"data_types must be one of {DATA_TYPES} per input ({names}), got {types}")
    dirs = []
    for name in names:
        folder = os.fspath(data_dirs[name]).rstrip("/") + "/"  # the docs write each folder with a trailing '/'
        dirs.append(_check_path("--data_dir folder", folder))
    return [
        AMCT,
        "calibration",
        f"--model={os.fspath(onnx)}",
        f"--save_path={_check_path('--save_path', os.fspath(save_path))}",
        f"--input_shape={shapes}",
        f"--data_dir={';'.join(dirs)}",
        f"--data_types={';'.join(types)}",
        f"--batch_num={check_batches(batch_num)}",
    ]


def deploy_model(save_path: str | os.PathLike) -> str:
    """Where ``--save_path=save_path`` puts the deploy model ATC compiles (``<save_path>_deploy_model.onnx``)."""
    return os.fspath(save_path) + DEPLOY_SUFFIX


def find_deploy_model(save_path: str | os.PathLike) -> Path:
    """The deploy model AMCT wrote for ``--save_path=save_path``, or a :class:`ConversionError`."""
    path = Path(deploy_model(save_path))
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.onnx")) if path.parent.is_dir() else []
        raise ConversionError(
            f"amct_onnx reported success but {path.name!r} is not in {str(path.parent)!r}"
            + (f"; found {found}" if found else ""),
            fix="check amct_onnx's output (amct_log/amct_onnx.log) and the --save_path prefix",
        )
    return path


def input_folder(index: int, name: str) -> str:
    """The calibration folder name of graph input ``name``: the name itself when AMCT accepts it in a path."""
    return name if _PLAIN_NAME.match(name) else f"input{index}"


def write_calibration_data(root: str | os.PathLike, folder: str, inputs: Sequence, feeds: Iterable[Mapping],
                           batches: int) -> tuple[dict[str, str], list[str]]:
    """Write the first ``batches`` of ``feeds`` as AMCT's ``.bin`` data set under ``root/folder``.

    ``inputs``: the graph's inputs (objects with ``name`` and static ``shape``, e.g. the manifest's TensorSpecs), in
    graph order; ``feeds``: input name -> float32 array of that shape, one dict per batch. One folder per input,
    ``batch0000.bin``, ``batch0001.bin``, ... (ascending, as AMCT reads them), each the raw little-endian float32
    array in the input's own layout. Returns (input name -> folder relative to ``root``, every file written relative
    to ``root``). Fewer feeds than ``batches`` is a :class:`ConversionError` (the command's ``--batch_num`` would lie).
    """
    root = Path(root)
    batches = check_batches(batches)
    dirs = {t.name: f"{folder}/{input_folder(i, t.name)}" for i, t in enumerate(inputs)}
    for rel in dirs.values():
        _check_path("--data_dir folder", rel)
        (root / rel).mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    count = 0
    for feed in feeds:
        if count == batches:
            break
        for t in inputs:
            if t.name not in feed:
                raise ConversionError(f"calibration batch {count} has no input {t.name!r} (has {sorted(feed)})")
            array = np.asarray(feed[t.name])
            if tuple(array.shape) != tuple(t.shape):
                raise ConversionError(
                    f"calibration batch {count} of input {t.name!r} has shape {tuple(array.shape)}, the graph takes "
                    f"{tuple(t.shape)}; AMCT needs each .bin to hold exactly --input_shape",
                    fix="convert with the tracking parameters the graphs were exported with (e.g. --scales)",
                )
            rel = f"{dirs[t.name]}/batch{count:04d}.bin"
            np.ascontiguousarray(array, dtype="<f4").tofile(root / rel)
            written.append(rel)
        count += 1
    if count < batches:
        raise ConversionError(f"the calibration data set gave {count} samples, {batches} were asked",
                              fix="name a data set with more annotated frames, or pass fewer --calibration-frames")
    return dirs, written


def onnx2amct(onnx: str | os.PathLike, save_path: str | os.PathLike, input_shapes: Mapping[str, Sequence[int]],
              data_dirs: Mapping[str, str | os.PathLike], batch_num: int, *,
              cwd: str | os.PathLike | None = None) -> Path:
    """Run ``amct_onnx calibration`` on one graph; returns the deploy model (relative paths are taken from ``cwd``).

    A missing tool is a :class:`~edgetrack.errors.ToolchainNotFoundError` saying how to get it; a failing one an
    :class:`~edgetrack.errors.ExternalToolError` with its output.
    """
    run_tool(amct_argv(onnx, save_path, input_shapes, data_dirs, batch_num), cwd=cwd)
    return find_deploy_model(Path(cwd or ".") / save_path)
