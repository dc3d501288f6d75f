"""ONNX -> Ascend offline model (OM) with Huawei's ATC, and an ONNX bundle -> Ascend bundle.

One step each, as ``src2dst`` functions:

- :func:`atc_argv`: the exact ``atc`` command for one graph. From the CANN ATC docs: ``--framework=5`` (ONNX),
  ``--model`` (the .onnx file), ``--output`` (path and name *without* suffix; ATC appends ``.om``, or
  ``_<os>_<arch>.om`` in newer CANN), ``--soc_version`` (``Ascend`` + ``npu-smi info`` Name), ``--input_shape``
  (``name:n,c,h,w;name2:...``), ``--input_format`` (NCHW for ONNX), ``--precision_mode`` (``force_fp16`` is the
  default and what the AI Core computes convolutions in), ``--insert_op_conf`` (the AIPP file), ``--log``.
- :func:`run_tool`: checks the tool is on PATH first (``shutil.which``) and says how to get it, runs an argv list
  (never a shell string), and puts the tool's output into the error when it fails.
- :func:`prepare_onnx_for_ascend`: rewrites what ATC would compute differently (nearest Resize rounding) into an
  equivalent form, proven equal in ONNX Runtime.
- :func:`ascend_bundle`: a verified ONNX bundle -> an Ascend bundle: audit every graph against the chip's operator
  list, write AIPP configs for the image inputs, write the exact ATC (or converter_lite) commands, run them when
  the tool is on PATH, and record everything in the manifest. Without the toolchain the bundle still holds the
  checked ONNX graphs, the configs and the commands, and says the device files are not built.

converter_lite's source (``mindir_source``). A bundle exported by MindSpore with MindIR sources
(``tracker_bundle(..., framework="mindspore", mindir=True)``, :mod:`edgetrack.converters.ms2mindir`) holds each
graph also as MindSpore's own ``<graph>.mindir``, checked against MindSpore (``parity["mindspore->mindir"]``). With
``mindir_source="mindspore"`` (the default for such a bundle) converter_lite reads those: ``--fmk=MINDIR
--modelFile=<graph>.mindir``, with the same ``--inputShape``, config and AIPP file as for ONNX
(:mod:`edgetrack.converters.onnx2mindir` says what MindSpore Lite's docs confirm of that and what they do not). The
Ascend bundle then carries the ``<graph>.mindir`` sources beside the ONNX graphs, which stay: the operator audit, the
simulator and the nearest-Resize rewrite read the ONNX graphs, so the audit describes the ONNX form of each graph,
not the MindIR converter_lite compiles. ``device.graphs[graph].source`` names the file and format each command reads.

Precision. fp16 is ATC's ``--precision_mode`` (``force_fp16``, what the AI Core computes convolutions in). int8 is
two steps per tracker graph (template, search, head), each recorded in ``device.graphs[graph].commands`` in order:
AMCT's ``amct_onnx calibration`` quantizes the fp32 ONNX graph on crops from real sequences of the ``calibration``
data set, written into the bundle as AMCT's ``.bin`` data set (:mod:`edgetrack.converters.onnx2amct`), then ATC
compiles AMCT's deploy model. ATC has no int8 ``--precision_mode``: the int8 layers are AMCT's AscendQuant /
AscendDequant around the quantized convolutions (AscendDequant gives fp16), and the layers around them compute as
``--precision_mode`` says, ``force_fp16`` as for fp16 bundles (CANN graph development guide, "量化"; ATC
``--precision_mode``). ``command`` stays the ATC step, so readers of format-2 manifests keep working.
converter_lite has its own full quantization (``[common_quant_param] quant_type=FULL_QUANT``, ``[full_quant_param]
target_device=ASCEND``), but its docs leave open which layout its ``.bin`` calibration data must have for an
``ascend_oriented`` ONNX model with AIPP in front (NHWC by default, "consistent with the inference input"), so
int8 is refused for that toolchain rather than calibrated on guessed data
(:func:`edgetrack.converters.onnx2mindir.converter_lite_precision_mode`).

ATC, AMCT and the CANN toolkit come only with Huawei's toolkit (``source
/usr/local/Ascend/ascend-toolkit/set_env.sh``); none of this runs them unless they are there.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edgetrack.ascend.aipp import AippConfig
from edgetrack.ascend.socs import Soc, get_soc
from edgetrack.errors import (
    BundleError,
    ConversionError,
    ExternalToolError,
    InvalidArgumentError,
    ToolchainNotFoundError,
    UnknownChoiceError,
    require,
)

__all__ = [
    "ATC",
    "TOOLCHAINS",
    "TOOL_HINTS",
    "DEVICE_DIR",
    "ToolRun",
    "input_shape_arg",
    "atc_precision_mode",
    "atc_argv",
    "write_aipp_config",
    "run_tool",
    "find_om",
    "onnx2om",
    "rewrite_nearest_resize",
    "prepare_onnx_for_ascend",
    "image_inputs",
    "INT8_GRAPHS",
    "MINDIR_SOURCES",
    "ascend_bundle",
]

ATC = "atc"
TOOLCHAINS = ("atc", "converter_lite")
# What converter_lite reads (ascend_bundle's mindir_source): MindSpore's own MindIR, exported and checked beside the
# ONNX graphs (edgetrack.converters.ms2mindir; --fmk=MINDIR), or the ONNX graphs (--fmk=ONNX).
MINDIR_SOURCES = ("mindspore", "onnx")
# Where a bundle keeps its device files, configs and (when built) OM / MindIR files.
DEVICE_DIR = "device"
TOOL_HINTS = {
    "atc": "source /usr/local/Ascend/ascend-toolkit/set_env.sh (CANN toolkit) so that atc is on PATH",
    "amct_onnx": "install AMCT for ONNX from the CANN toolkit's package (pip3 install "
                 "amct_onnx-<version>-py3-none-linux_<arch>.whl, CANN AMCT guide, 'Installing the Tool'; it runs "
                 "after set_env.sh) so that amct_onnx is on PATH",
    "converter_lite": "install MindSpore Lite's converter (mindspore-lite-<version>-linux-<arch>/tools/converter; "
                      "put converter/converter_lite on PATH and converter/lib on LD_LIBRARY_PATH)",
}
# Enough of a failing tool's output to see its error code, without flooding the terminal.
_OUTPUT_TAIL = 6000


@dataclass(frozen=True)
class ToolRun:
    """A finished external tool run: the argv as given, the executable found, exit status and output."""

    argv: tuple[str, ...]
    executable: str
    returncode: int
    stdout: str
    stderr: str


def _check_argv(argv) -> list[str]:
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence) or not argv:
        raise InvalidArgumentError(f"a tool command must be a non-empty list of strings, got {argv!r}")
    if not all(isinstance(a, str) for a in argv):
        raise InvalidArgumentError(f"every argument of a tool command must be a string, got {argv!r}")
    return list(argv)


def run_tool(argv: Sequence[str], *, cwd: str | os.PathLike | None = None, timeout: float | None = 3600) -> ToolRun:
    """Run an external converter given as an argv list.

    Raises :class:`ToolchainNotFoundError` (with how to install it) when ``argv[0]`` is not on PATH, and
    :class:`ExternalToolError` with the tail of its stdout/stderr when it exits non-zero or times out.
    """
    argv = _check_argv(argv)
    tool = argv[0]
    exe = shutil.which(tool)
    if exe is None:
        hint = TOOL_HINTS.get(Path(tool).name, f"install {tool} and put it on PATH")
        raise ToolchainNotFoundError(tool, hint)
    try:
        proc = subprocess.run([exe, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              errors="replace")
    except subprocess.TimeoutExpired as exc:
        out = "\n".join(_text(s) for s in (exc.stdout, exc.stderr) if s)
        raise ExternalToolError(tool, -1, f"(timed out after {timeout} s)\n{out[-_OUTPUT_TAIL:]}", argv=argv,
                                fix="rerun the command by hand to see where it stops") from exc
    except OSError as exc:
        raise ExternalToolError(tool, -1, str(exc), argv=argv, fix=f"check that {exe} is executable") from exc
    if proc.returncode != 0:
        out = "\n".join(s.rstrip() for s in (proc.stdout, proc.stderr) if s.strip())
        raise ExternalToolError(
            tool, proc.returncode, out[-_OUTPUT_TAIL:] or "(no output)", argv=argv,
            fix=f"read {tool}'s message above; the command was: {' '.join(argv)}",
        )
    return ToolRun(tuple(argv), exe, proc.returncode, proc.stdout, proc.stderr)


def _text(s) -> str:
    return s.decode(errors="replace") if isinstance(s, bytes) else str(s)


def input_shape_arg(input_shapes: Mapping[str, Sequence[int]]) -> str:
    """``{"z": (1, 3, 127, 127)}`` -> ``"z:1,3,127,127"``, inputs joined by ``;`` in the order given."""
    if not input_shapes:
        raise InvalidArgumentError("input_shapes must name at least one input")
    parts = []
    for name, shape in input_shapes.items():
        dims = [int(d) for d in shape]
        if not name or any(c in name for c in ":;,") or any(d <= 0 for d in dims):
            raise InvalidArgumentError(f"input {name!r} needs a plain name and positive static dims, got {list(shape)}")
        parts.append(f"{name}:{','.join(str(d) for d in dims)}")
    return ";".join(parts)


def atc_precision_mode(soc: Soc, precision: str) -> str:
    """ATC's ``--precision_mode`` for edgetrack's precision name, or a typed error saying what the chip can do.

    int8 gets the same mode as fp16: ATC has no int8 precision mode; the int8 layers come from AMCT's deploy model
    (see the module docstring) and everything else computes in fp16.
    """
    soc = get_soc(soc)
    if precision in ("fp16", "int8"):
        return soc.atc_precision_mode
    if precision == "fp32":
        raise InvalidArgumentError(
            f"{soc.chip} computes convolutions in fp16 on its AI Core (ATC's must_keep_origin_dtype is not "
            "supported for float Conv inputs), so an fp32 device graph cannot be built",
            fix="use --precision fp16 (the ONNX graphs in the bundle stay fp32; ATC casts them)",
        )
    raise UnknownChoiceError("precision", precision, ("fp16", "int8"),
                             fix="use --precision fp16 (or int8 with --calibration) for Ascend targets")


def atc_argv(onnx: str | os.PathLike, out_stem: str | os.PathLike, soc, input_shapes: Mapping[str, Sequence[int]],
             precision: str = "fp16", aipp_cfg: str | os.PathLike | None = None, *, soc_version: str | None = None,
             log: str = "error") -> list[str]:
    """The ``atc`` command converting ``onnx`` into ``out_stem`` + ``.om`` for ``soc`` (see the module docstring).

    Paths are written as given, so relative paths make a command that works from the bundle folder. For ``precision``
    int8, ``onnx`` must be AMCT's deploy model (``..._deploy_model.onnx``): ATC alone would only cast the fp32 graph
    to fp16, and the OM would be int8 in name only.
    """
    soc = get_soc(soc)
    if log not in ("debug", "info", "warning", "error", "null"):
        raise UnknownChoiceError("ATC log level", log, ("debug", "info", "warning", "error", "null"))
    if precision == "int8":
        from edgetrack.converters.onnx2amct import DEPLOY_SUFFIX

        if not os.fspath(onnx).endswith(DEPLOY_SUFFIX):
            raise InvalidArgumentError(
                f"an int8 OM is compiled from AMCT's deploy model (*{DEPLOY_SUFFIX}), not from {os.fspath(onnx)!r}: "
                f"ATC alone computes the fp32 graph in fp16 on {soc.chip}",
                fix="calibrate the graph with AMCT first (edgetrack.converters.onnx2amct.amct_argv / onnx2amct) and "
                    "give ATC its deploy model, or use precision fp16",
            )
    argv = [
        ATC,
        "--framework=5",
        f"--model={os.fspath(onnx)}",
        f"--output={os.fspath(out_stem)}",
        f"--soc_version={soc.check_soc_version(soc_version)}",
        f"--input_shape={input_shape_arg(input_shapes)}",
        "--input_format=NCHW",
        f"--precision_mode={atc_precision_mode(soc, precision)}",
    ]
    if aipp_cfg is not None:
        argv.append(f"--insert_op_conf={os.fspath(aipp_cfg)}")
    argv.append(f"--log={log}")
    return argv


def write_aipp_config(path: str | os.PathLike, aipp: AippConfig | Sequence[AippConfig]) -> Path:
    """Write one AIPP file; several configs (one per image input) become several ``aipp_op`` blocks."""
    configs = [aipp] if isinstance(aipp, AippConfig) else list(aipp)
    if not configs or not all(isinstance(c, AippConfig) for c in configs):
        raise InvalidArgumentError("write_aipp_config needs one or more AippConfig")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(c.render() for c in configs), encoding="utf-8")
    return path


def find_om(out_stem: str | os.PathLike) -> Path:
    """The OM file ATC wrote for ``--output=out_stem``: ``stem.om`` or, in newer CANN, ``stem_<os>_<arch>.om``."""
    stem = Path(out_stem)
    exact = stem.with_name(stem.name + ".om")
    if exact.is_file():
        return exact
    found = sorted(stem.parent.glob(stem.name + "_*.om")) if stem.parent.is_dir() else []
    if len(found) == 1:
        return found[0]
    raise ConversionError(
        f"ATC reported success but no {exact.name} (or {stem.name}_<os>_<arch>.om) is in {str(stem.parent)!r}"
        + (f"; found {[p.name for p in found]}" if found else ""),
        fix="check ATC's output and the --output path",
    )


def onnx2om(onnx: str | os.PathLike, out_stem: str | os.PathLike, soc, input_shapes: Mapping[str, Sequence[int]],
            precision: str = "fp16", aipp_cfg: str | os.PathLike | None = None, *, soc_version: str | None = None,
            cwd: str | os.PathLike | None = None) -> Path:
    """Run ATC on one graph; returns the .om path (relative paths are taken from ``cwd``)."""
    argv = atc_argv(onnx, out_stem, soc, input_shapes, precision, aipp_cfg, soc_version=soc_version)
    run_tool(argv, cwd=cwd)
    return find_om(Path(cwd or ".") / out_stem)


# -- ONNX forms ATC computes differently ---------------------------------------------------------------------------
def _opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def rewrite_nearest_resize(model) -> list[str]:
    """Make integer-factor nearest Resize nodes use the rounding the chip implements; returns what changed.

    The CANN Resize spec: in nearest mode only ``round_prefer_ceil`` is implemented. PyTorch exports nearest
    upsampling as ``asymmetric`` + ``floor``, i.e. output ``i`` reads input ``i // s``. With ``half_pixel`` the
    source coordinate is ``(i + 0.5) / s - 0.5``, which for ``i = s*q + k`` (0 <= k < s) lies strictly inside
    ``(q - 0.5, q + 0.5)``, so every rounding picks ``q``: the same pixel. Only integer scales on a constant
    ``scales`` input are rewritten; anything else is left for the audit to report.
    """
    onnx = require("onnx", feature="preparing ONNX graphs for Ascend", extra="torch")
    if _opset(model) < 11:
        return []
    graph = model.graph
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = onnx.numpy_helper.to_array(a.t)
    changes = []
    for i, node in enumerate(graph.node):
        if node.op_type != "Resize":
            continue
        attrs = {a.name: a for a in node.attribute}
        get = lambda k, d: onnx.helper.get_attribute_value(attrs[k]).decode() if k in attrs else d  # noqa: E731
        mode, nearest, ctm = get("mode", "nearest"), get("nearest_mode", "round_prefer_floor"), \
            get("coordinate_transformation_mode", "half_pixel")
        if mode != "nearest" or nearest == "round_prefer_ceil":
            continue
        scales = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scales is None or scales.size == 0 or np.any(scales < 1) or np.any(scales != np.round(scales)):
            continue
        same = (ctm == "asymmetric" and nearest == "floor") or (
            ctm in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_floor"
        )
        if not same:
            continue
        for key in ("coordinate_transformation_mode", "nearest_mode"):
            if key in attrs:
                node.attribute.remove(attrs[key])
        node.attribute.extend([
            onnx.helper.make_attribute("coordinate_transformation_mode", "half_pixel"),
            onnx.helper.make_attribute("nearest_mode", "round_prefer_ceil"),
        ])
        changes.append(f"Resize {node.name or '#' + str(i)!r}: nearest {ctm}/{nearest} -> half_pixel/round_prefer_ceil "
                       f"(scales {scales.tolist()}, same pixels)")
    return changes


def prepare_onnx_for_ascend(src: str | os.PathLike, dst: str | os.PathLike, *, seed: int = 0) -> dict | None:
    """Copy ``src`` to ``dst`` in the form ATC computes as ONNX does; returns the check record if it changed.

    ``dst`` holds its weights itself, also where ``src`` keeps them in an external file beside it (the shared
    ``weights.bin`` of an ONNX Runtime bundle).

    A rewritten graph is checked with onnx's checker and against the original in ONNX Runtime on random inputs
    (0..255). The rewrite computes the same function, but ONNX Runtime may fuse and order the rewritten graph's
    float arithmetic differently (a trained DeblurGAN-v2 generator: 5e-4 on its 0..255 output, 2e-6 of its scale),
    so the bound is the converter's fp32 one (:data:`~edgetrack.converters.torch2onnx.FP32_TOLERANCE` of the
    output's largest magnitude); a larger difference is a :class:`ConversionError`.
    """
    onnx = require("onnx", feature="preparing ONNX graphs for Ascend", extra="torch")
    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src), load_external_data=False)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    if external:  # a bundle's shared weights.bin, read from src's folder into the model
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(src.parent))
    changes = rewrite_nearest_resize(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not changes:
        if external:  # dst stands alone: ATC and the audit read it without src's weights file
            onnx.save(model, str(dst))
        else:
            shutil.copyfile(src, dst)
        return None
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))
    ort = require("onnxruntime", feature="checking ONNX graphs")
    before = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in before.get_inputs():
        if any(not isinstance(d, int) for d in inp.shape):
            raise ConversionError(f"graph {src.name!r} input {inp.name!r} has a dynamic shape {inp.shape}")
        feeds[inp.name] = (rng.random(inp.shape, dtype=np.float32) * 255.0).astype(np.float32)
    from edgetrack.converters.torch2onnx import FP32_TOLERANCE

    max_abs = max_rel = 0.0
    for a, b in zip(before.run(None, feeds), after.run(None, feeds)):
        if not a.size:
            continue
        diff = float(np.max(np.abs(a.astype(np.float64) - b)))
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / max(float(np.max(np.abs(a))), 1e-12))
    if max_rel > FP32_TOLERANCE:
        raise ConversionError(
            f"rewriting {src.name!r} for Ascend changed its output (max abs difference {max_abs:.3g}, "
            f"{max_rel:.3g} of its scale, bound {FP32_TOLERANCE:g}): {changes}",
            fix="report this as a bug; convert for --target cpu meanwhile",
        )
    return {
        "reference": "onnx (as exported)",
        "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
        "changes": changes,
        "max_abs": max_abs,
        "max_rel": max_rel,
        "tolerance": FP32_TOLERANCE,
        "passed": True,
    }


# -- a whole bundle --------------------------------------------------------------------------------------------
def image_inputs(preprocessing: Mapping, inputs) -> dict[str, tuple[int, int, int]]:
    """Graph inputs that take crops: ``name -> (index, height, width)``.

    An input is an image input when it is (N, 3, H, W) and (H, W) is one of the crop sizes the bundle's
    preprocessing lists (keys ending in ``_size``, e.g. ``template_size``/``search_size``): those get AIPP.
    """
    sizes = set()
    for key, value in preprocessing.items():
        if key.endswith("_size") and isinstance(value, (list, tuple)) and len(value) == 2:
            sizes.add((int(value[0]), int(value[1])))
    out = {}
    for index, t in enumerate(inputs):
        shape = tuple(t.shape)
        if len(shape) == 4 and shape[1] == 3 and (shape[2], shape[3]) in sizes:
            out[t.name] = (index, shape[2], shape[3])
    return out


def _check_toolchain(toolchain: str) -> str:
    if toolchain not in TOOLCHAINS:
        raise UnknownChoiceError("toolchain", toolchain, TOOLCHAINS, fix="use --toolchain atc or converter_lite")
    return toolchain


# The graphs int8 calibrates with AMCT: the tracker's. A deblur generator's output is an image, not a score, so
# an int8 bundle keeps its deblur graphs at fp16 (as the cpu/cuda int8 path does).
INT8_GRAPHS = ("template", "search", "head")


def _int8_request(manifest, src_path, calibration, calibration_frames) -> int:
    """The number of calibration batches of an Ascend int8 request, or a typed error before any work."""
    from edgetrack.converters.onnx2amct import check_batches

    batches = check_batches(calibration_frames)
    if not calibration:
        raise InvalidArgumentError(
            "precision int8 needs calibration crops from real sequences, and no --calibration data set was given",
            fix="pass --calibration KIND:PATH[#SUBSET] (e.g. synthetic:data/synth-train), a data set like the "
            "video the tracker will see",
        )
    missing = [g for g in INT8_GRAPHS if g not in manifest.graphs]
    if missing:
        raise InvalidArgumentError(
            f"int8 for Ascend calibrates a tracker bundle's graphs {INT8_GRAPHS}; {str(src_path)!r} has "
            f"{sorted(manifest.graphs)}",
            fix="convert a tracker checkpoint (edgetrack convert), or use precision fp16",
        )
    return batches


def _check_mindir_source(toolchain: str, mindir_source: str | None) -> None:
    if mindir_source is None:
        return
    if mindir_source not in MINDIR_SOURCES:
        raise UnknownChoiceError("MindIR source", mindir_source, MINDIR_SOURCES,
                                 fix="use mindspore (MindSpore's own MindIR, --fmk=MINDIR) or onnx (--fmk=ONNX)")
    if toolchain != "converter_lite":
        raise InvalidArgumentError(
            f"a MindIR source ({mindir_source!r}) chooses what converter_lite reads; toolchain {toolchain!r} "
            "compiles the ONNX graphs",
            fix="drop --mindir-source (mindir_source), or use --toolchain converter_lite")


def _mindir_sources(src, toolchain: str, mindir_source: str | None) -> dict[str, str]:
    """Graph -> the MindSpore MindIR file (relative) converter_lite reads, or {} when it reads the ONNX graphs.

    ``mindir_source`` None: MindSpore's MindIR when ``src`` holds MindIR sources. "mindspore" needs a checked source
    for every graph (a BundleError names those without)."""
    from edgetrack.converters.ms2mindir import SOURCE_SECTION, STAGE

    section = src.manifest.source.get(SOURCE_SECTION) or {}
    listed = section.get("graphs") or {}
    if toolchain != "converter_lite" or mindir_source == "onnx" or (mindir_source is None and not listed):
        return {}
    where = f"bundle {str(src.path)!r}"
    missing = [g for g in src.manifest.graphs if g not in listed or listed[g] not in src.file_paths]
    if missing:
        raise BundleError(
            f"converter_lite is to read MindSpore's own MindIR, but {where} has none for graph(s) {missing} "
            f"(MindIR sources: {sorted(listed) or 'none'})",
            fix="export the checkpoint with MindSpore and its MindIR (tracker_bundle(..., framework='mindspore', "
                "mindir=True), add_deblur(..., mindir=True); edgetrack convert --framework mindspore --toolchain "
                "converter_lite does both), or let converter_lite read the ONNX graphs (--mindir-source onnx)")
    rows: dict[str, dict] = {}
    for stage in section.get("parity") or [STAGE]:
        rows.update(src.manifest.parity.get(stage) or {})
    unchecked = [g for g in src.manifest.graphs if not (rows.get(g) or {}).get("passed")]
    if unchecked:
        raise BundleError(f"{where}: the MindIR of graph(s) {unchecked} has no passed check against MindSpore "
                          f"(parity stages {section.get('parity') or [STAGE]})",
                          fix="export the bundle again with edgetrack convert --framework mindspore")
    return {g: listed[g] for g in src.manifest.graphs}


def _without_mindir(manifest) -> tuple[dict, dict, dict]:
    """``source``, ``parity`` and ``preprocessing`` of ``manifest`` without its MindIR sources' records: for an
    Ascend bundle that does not carry those files (converter_lite reads ONNX, or ATC)."""
    from edgetrack.converters.ms2mindir import SOURCE_SECTION
    from edgetrack.tracking.blur import DEBLUR_SECTION

    source, parity, pre = dict(manifest.source), dict(manifest.parity), dict(manifest.preprocessing)
    stages = set((source.pop(SOURCE_SECTION, None) or {}).get("parity") or [])
    for stage in stages:
        parity.pop(stage, None)
    if stages and isinstance(pre.get(DEBLUR_SECTION), dict):
        pre[DEBLUR_SECTION] = {**pre[DEBLUR_SECTION],
                               "parity": [p for p in pre[DEBLUR_SECTION].get("parity", []) if p not in stages]}
    return source, parity, pre


def ascend_bundle(
    src_bundle: str | os.PathLike,
    out_dir: str | os.PathLike,
    soc,
    *,
    toolchain: str = "atc",
    precision: str = "fp16",
    soc_version: str | None = None,
    force: bool = False,
    run_tools: bool = True,
    calibration: str | None = None,
    calibration_frames: int | None = None,
    mindir_source: str | None = None,
) -> Path:
    """A verified ONNX bundle (``target`` cpu) -> an Ascend bundle for ``soc`` at ``out_dir``.

    Audits every graph (an unsupported operator raises naming op, node and chip, before anything is written),
    writes AIPP configs for the image inputs and the exact commands per graph, runs the toolchain when it is on
    PATH (``run_tools``), and writes the bundle atomically. A failing tool raises with its output; a missing
    one leaves ``device.graphs[*].status`` "not built: ..." and ``device_files_built`` False.

    ``precision`` int8 (toolchain atc): ``calibration`` (a data set spec, required) gives ``calibration_frames``
    real crop samples (default and bound: :mod:`edgetrack.converters.onnx2amct`), cut by the bundle's own tracking
    parameters; they are written into the bundle as AMCT's ``.bin`` data set, and each tracker graph gets two
    commands, ``amct_onnx calibration`` then ``atc`` on AMCT's deploy model (``device.graphs[graph].commands``, in
    order; ``command`` is the ATC step, ``calibration`` describes the AMCT step). ``calibration`` is not used at
    fp16.

    ``mindir_source`` (toolchain converter_lite only; :data:`MINDIR_SOURCES`): what converter_lite reads, "mindspore"
    (each graph's checked ``<graph>.mindir`` from the bundle's MindSpore export, ``--fmk=MINDIR``; the files are
    carried into the Ascend bundle) or "onnx" (``--fmk=ONNX``). None: "mindspore" when ``src_bundle`` holds MindIR
    sources, else "onnx"; the choice is recorded as ``device["mindir_source"]`` (module docstring).
    """
    from edgetrack.ascend.ops import audit_graph
    from edgetrack.bundle import load_bundle, write_bundle

    soc = get_soc(soc)
    soc_version = soc.check_soc_version(soc_version)
    _check_toolchain(toolchain)
    _check_mindir_source(toolchain, mindir_source)
    if toolchain == "atc":
        precision_mode = atc_precision_mode(soc, precision)
    else:
        from edgetrack.converters.onnx2mindir import converter_lite_precision_mode

        precision_mode = converter_lite_precision_mode(soc, precision)
    out = Path(out_dir)
    if out.exists() and not force:
        raise BundleError(f"{str(out)!r} already exists", fix="choose another folder or pass force=True / --force")
    src = load_bundle(src_bundle)
    manifest = src.manifest
    if manifest.device or manifest.target not in ("cpu", "cuda") or manifest.precision != "fp32":
        # ATC and converter_lite take the fp32 graphs and lower them to the chip's precision themselves.
        raise InvalidArgumentError(
            f"ascend_bundle converts a portable fp32 ONNX bundle, but {str(src.path)!r} is target "
            f"{manifest.target!r} at {manifest.precision}",
            fix="convert the checkpoint with --target cpu --precision fp32 first (edgetrack convert does this)",
        )
    int8 = precision == "int8"
    batches = _int8_request(manifest, src.path, calibration, calibration_frames) if int8 else 0
    sources = _mindir_sources(src, toolchain, mindir_source)

    with tempfile.TemporaryDirectory(prefix="edgetrack-ascend-") as tmp:
        work = Path(tmp)
        rewrites, graph_files = {}, {}
        for name, spec in manifest.graphs.items():
            graph_files[name] = work / spec.file
            record = prepare_onnx_for_ascend(src.graph_path(name), graph_files[name])
            if record:
                rewrites[name] = record
        audits = {name: audit_graph(graph_files[name], soc, graph=name) for name in manifest.graphs}

        crops = None
        if int8:
            # After the audit (an unsupported operator fails before the data set is read), with the crops the
            # bundle's own tracker cuts.
            from edgetrack.converters.onnx2amct import (
                AMCT_DIR,
                CALIBRATION_DIR,
                amct_argv,
                deploy_model,
                find_deploy_model,
                write_calibration_data,
            )
            from edgetrack.converters.precision import calibration_feeds, sample_crops
            from edgetrack.tracker import tracking_settings

            crops = sample_crops(calibration, batches, tracking_settings(src).params, phase=0.25)
        extra: dict[str, Path] = {}
        device_graphs: dict[str, dict] = {}
        for name, spec in manifest.graphs.items():
            stem = f"{DEVICE_DIR}/{name}"
            images = image_inputs(manifest.preprocessing, spec.inputs)
            aipp_rel, aipps = None, {}
            if images:
                aipps = {inp: AippConfig.from_preprocessing(manifest.preprocessing, h, w, related_input_rank=i)
                         for inp, (i, h, w) in images.items()}
                aipp_rel = f"{stem}_aipp.cfg"
                extra[aipp_rel] = write_aipp_config(work / aipp_rel, list(aipps.values()))
            shapes = {t.name: t.shape for t in spec.inputs}
            graph_precision = precision if not int8 else "int8" if name in INT8_GRAPHS else "fp16"
            config_rel, calib, commands = None, None, []
            if toolchain == "atc":
                model_rel = spec.file
                if graph_precision == "int8":
                    dirs, files = write_calibration_data(
                        work, f"{CALIBRATION_DIR}/{name}", spec.inputs,
                        calibration_feeds(crops, name, {g: graph_files[g] for g in INT8_GRAPHS}), batches)
                    extra.update({rel: work / rel for rel in files})
                    save = f"{AMCT_DIR}/{name}"
                    model_rel = deploy_model(save)
                    amct = amct_argv(spec.file, save, shapes, dirs, batches)
                    commands.append(amct)
                    calib = {"tool": "amct_onnx", "command": amct, "batches": batches, "dtype": "float32",
                             "data": {inp: f"{d}/" for inp, d in dirs.items()}, "deploy_model": model_rel}
                argv = atc_argv(model_rel, stem, soc, shapes, graph_precision, aipp_rel, soc_version=soc_version)
                graph_source = {"file": model_rel, "format": "ONNX"}
            else:
                from edgetrack.converters.onnx2mindir import converter_lite_argv, write_converter_lite_config

                config_rel = f"{stem}_converter_lite.cfg"
                extra[config_rel] = write_converter_lite_config(work / config_rel, soc, precision, aipp_rel)
                if name in sources:  # MindSpore's own MindIR, beside the ONNX graph (module docstring)
                    model_rel, fmk = sources[name], "MINDIR"
                    (work / model_rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src.file_path(model_rel), work / model_rel)
                    extra[model_rel] = work / model_rel
                else:
                    model_rel, fmk = spec.file, "ONNX"
                argv = converter_lite_argv(model_rel, stem, shapes, config_rel, fmk=fmk)
                graph_source = {"file": model_rel, "format": fmk}
            commands.append(argv)
            device_inputs = []
            for t in spec.inputs:
                if t.name in aipps:
                    device_inputs.append({"name": t.name, "shape": list(aipps[t.name].device_input_shape(t.shape[0])),
                                          "dtype": "uint8", "layout": "NHWC"})
                else:
                    device_inputs.append({"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                                          "layout": "NCHW" if len(t.shape) == 4 else "ND"})
            device_graphs[name] = {
                "status": "",
                "file": None,
                "precision": graph_precision,
                "command": argv,
                "commands": commands,
                "source": graph_source,
                "calibration": calib,
                "config": config_rel,
                "aipp": None if not aipps else {"file": aipp_rel,
                                                "inputs": {k: v.to_dict() for k, v in aipps.items()}},
                "inputs": device_inputs,
            }

        # Every tool the commands name, in the order they first run; all of them or none are run.
        tools_needed: list[str] = []
        for entry in device_graphs.values():
            for step in entry["commands"]:
                if step[0] not in tools_needed:
                    tools_needed.append(step[0])
        found = {t: shutil.which(t) for t in tools_needed}
        missing = [t for t in tools_needed if found[t] is None]
        if not missing and run_tools:
            for name, entry in device_graphs.items():
                if entry["calibration"]:  # AMCT first: ATC compiles its deploy model
                    run_tool(entry["calibration"]["command"], cwd=work)
                    find_deploy_model(work / AMCT_DIR / name)
                run_tool(entry["command"], cwd=work)
                built = (find_om(work / DEVICE_DIR / name) if toolchain == "atc"
                         else _find_mindir(work / DEVICE_DIR / name))
                rel = built.relative_to(work).as_posix()
                extra[rel] = built
                entry.update(status="built", file=rel)
        else:
            listed = " and ".join(missing or tools_needed)
            why = (f"{listed} not found on PATH" if missing
                   else f"{listed} {'was' if len(tools_needed) == 1 else 'were'} not run (run_tools=False)")
            for entry in device_graphs.values():
                entry["status"] = f"not built: {why}"

        built_all = all(e["status"] == "built" for e in device_graphs.values())
        int8_note = ""
        if int8:
            int8_note = (
                f"int8: {', '.join(INT8_GRAPHS)} are first calibrated by AMCT (amct_onnx calibration on the "
                f"{batches} real crop samples in {CALIBRATION_DIR}/, float32 .bin in each input's layout) into "
                f"{AMCT_DIR}/<graph>_deploy_model.onnx, which ATC then compiles with --precision_mode "
                f"{precision_mode}: the layers AMCT quantized run in int8, the others in fp16 (among them any Conv "
                "whose weight is computed at run time, as a runtime-kernel correlation: AMCT quantizes constant "
                "weights only)."
                + (" Other graphs (deblur) stay fp16." if len(manifest.graphs) > len(INT8_GRAPHS) else "") + " ")
        mindir_note = ""
        if toolchain == "converter_lite" and sources:
            mindir_note = (
                "converter_lite reads MindSpore's own MindIR (<graph>.mindir, --fmk=MINDIR; checked against MindSpore: "
                "parity mindspore->mindir); the ONNX graphs beside them are what the operator audit and the simulator "
                "read. ")
        device = {
            "kind": "ascend",
            "chip": soc.name,
            "soc_version": soc_version,
            "toolchain": toolchain,
            "precision_mode": precision_mode,
            **({"mindir_source": "mindspore" if sources else "onnx"} if toolchain == "converter_lite" else {}),
            "graphs": device_graphs,
            "audit": {name: [f.to_dict() for f in findings] for name, findings in audits.items()},
            "notes": (
                ("" if built_all else "To build the device files: "
                 + "; ".join(TOOL_HINTS[t] for t in (missing or tools_needed))
                 + "; then run each graph's commands (device.graphs.<graph>.commands), in order, from the bundle "
                 "folder (or rerun edgetrack convert). ")
                + int8_note
                + mindir_note
                + "Commands use paths relative to the bundle folder. Image inputs go through static AIPP: on the "
                "device they take uint8 NHWC frames. " + (
                    "converter_lite compiles for the Ascend device of the machine it runs on (--optimize="
                    "ascend_oriented); soc_version records the intended chip." if toolchain == "converter_lite"
                    else "")
            ).strip(),
        }
        tools = dict(manifest.tools)
        tools["toolchain"] = toolchain
        tools.update({t: found[t] or "not found on PATH" for t in tools_needed})
        tools["converted_on"] = platform.machine()
        # MindIR sources not carried (ATC, or converter_lite reading ONNX): their records go with them.
        source, parity, preprocessing = ((dict(manifest.source), dict(manifest.parity), dict(manifest.preprocessing))
                                         if sources else _without_mindir(manifest))
        if rewrites:
            parity["onnx->ascend-onnx"] = rewrites
        if int8:
            source["precision"] = {
                "precision": "int8",
                "compute": "int8 in the layers AMCT quantizes (Conv with constant weights, Gemm, MatMul, ...), fp16 "
                           "elsewhere",
                "graphs": {n: e["precision"] for n, e in device_graphs.items()},
                "method": "AMCT post-training quantization (amct_onnx calibration with AMCT's default configuration), "
                          "then ATC",
            }
            source["calibration"] = {
                **crops.provenance,
                "method": "AMCT (amct_onnx calibration)",
                "graphs": list(INT8_GRAPHS),
                "batches": batches,
                "files": f"{CALIBRATION_DIR}/<graph>/<input>/batchNNNN.bin: raw little-endian float32, one sample "
                         "each, in the graph input's shape and layout",
            }
        new = dataclasses.replace(
            manifest,
            target=soc.name,
            precision=precision,
            preprocessing=preprocessing,
            graphs={n: dataclasses.replace(s, sha256="") for n, s in manifest.graphs.items()},
            tools=tools,
            parity=parity,
            source=source,
            device=device,
            files={},
            device_files_built=built_all,
            format_version=None,
        )
        return write_bundle(out, new, graph_files, force=force, extra_files=extra)


def _find_mindir(out_stem: Path) -> Path:
    from edgetrack.converters.onnx2mindir import find_mindir

    return find_mindir(out_stem)
