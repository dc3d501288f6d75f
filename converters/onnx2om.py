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

ATC and the CANN toolkit come only with Huawei's toolkit (``source /usr/local/Ascend/ascend-toolkit/set_env.sh``);
none of this runs them unless they are there.
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
    EdgetrackError,
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
    "ascend_bundle",
]

ATC = "atc"
TOOLCHAINS = ("atc", "converter_lite")
# Where a bundle keeps its device files, configs and (when built) OM / MindIR files.
DEVICE_DIR = "device"
TOOL_HINTS = {
    "atc": "source /usr/local/Ascend/ascend-toolkit/set_env.sh (CANN toolkit) so that atc is on PATH",
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
    """ATC's ``--precision_mode`` for edgetrack's precision name, or a typed error saying what the chip can do."""
    soc = get_soc(soc)
    if precision == "fp16":
        return soc.atc_precision_mode
    if precision == "fp32":
        raise InvalidArgumentError(
            f"{soc.chip} computes convolutions in fp16 on its AI Core (ATC's must_keep_origin_dtype is not "
            "supported for float Conv inputs), so an fp32 device graph cannot be built",
            fix="use --precision fp16 (the ONNX graphs in the bundle stay fp32; ATC casts them)",
        )
    if precision == "int8":
        raise EdgetrackError(
            f"int8 for {soc.chip} needs AMCT calibration, which is not implemented yet in this version of edgetrack",
            fix="use --precision fp16",
        )
    raise UnknownChoiceError("precision", precision, ("fp16",), fix="use --precision fp16 for Ascend targets")


def atc_argv(onnx: str | os.PathLike, out_stem: str | os.PathLike, soc, input_shapes: Mapping[str, Sequence[int]],
             precision: str = "fp16", aipp_cfg: str | os.PathLike | None = None, *, soc_version: str | None = None,
             log: str = "error") -> list[str]:
    """The ``atc`` command converting ``onnx`` into ``out_stem`` + ``.om`` for ``soc`` (see the module docstring).

    Paths are written as given, so relative paths make a command that works from the bundle folder.
    """
    soc = get_soc(soc)
    if log not in ("debug", "info", "warning", "error", "null"):
        raise UnknownChoiceError("ATC log level", log, ("debug", "info", "warning", "error", "null"))
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
    (0..255); any difference is a :class:`ConversionError`.
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
    max_abs = 0.0
    for a, b in zip(before.run(None, feeds), after.run(None, feeds)):
        max_abs = max(max_abs, float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0)
    if max_abs != 0.0:
        raise ConversionError(
            f"rewriting {src.name!r} for Ascend changed its output (max abs difference {max_abs:.3g}): {changes}",
            fix="report this as a bug; convert for --target cpu meanwhile",
        )
    return {
        "reference": "onnx (as exported)",
        "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
        "changes": changes,
        "max_abs": max_abs,
        "max_rel": 0.0,
        "tolerance": 0.0,
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
) -> Path:
    """A verified ONNX bundle (``target`` cpu) -> an Ascend bundle for ``soc`` at ``out_dir``.

    Audits every graph (an unsupported operator raises naming op, node and chip, before anything is written),
    writes AIPP configs for the image inputs and the exact commands per graph, runs the toolchain when it is on
    PATH (``run_tools``), and writes the bundle atomically. A failing tool raises with its output; a missing
    one leaves ``device.graphs[*].status`` "not built: ..." and ``device_files_built`` False.
    """
    from edgetrack.ascend.ops import audit_graph
    from edgetrack.bundle import load_bundle, write_bundle

    soc = get_soc(soc)
    soc_version = soc.check_soc_version(soc_version)
    _check_toolchain(toolchain)
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

    with tempfile.TemporaryDirectory(prefix="edgetrack-ascend-") as tmp:
        work = Path(tmp)
        rewrites, graph_files = {}, {}
        for name, spec in manifest.graphs.items():
            graph_files[name] = work / spec.file
            record = prepare_onnx_for_ascend(src.graph_path(name), graph_files[name])
            if record:
                rewrites[name] = record
        audits = {name: audit_graph(graph_files[name], soc, graph=name) for name in manifest.graphs}

        tool = "atc" if toolchain == "atc" else "converter_lite"
        executable = shutil.which(tool)
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
            config_rel = None
            if toolchain == "atc":
                argv = atc_argv(spec.file, stem, soc, shapes, precision, aipp_rel, soc_version=soc_version)
            else:
                from edgetrack.converters.onnx2mindir import converter_lite_argv, write_converter_lite_config

                config_rel = f"{stem}_converter_lite.cfg"
                extra[config_rel] = write_converter_lite_config(work / config_rel, soc, precision, aipp_rel)
                argv = converter_lite_argv(spec.file, stem, shapes, config_rel)
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
                "command": argv,
                "config": config_rel,
                "aipp": None if not aipps else {"file": aipp_rel,
                                                "inputs": {k: v.to_dict() for k, v in aipps.items()}},
                "inputs": device_inputs,
            }

        if executable and run_tools:
            for name, entry in device_graphs.items():
                run_tool(entry["command"], cwd=work)
                built = (find_om(work / DEVICE_DIR / name) if toolchain == "atc"
                         else _find_mindir(work / DEVICE_DIR / name))
                rel = built.relative_to(work).as_posix()
                extra[rel] = built
                entry.update(status="built", file=rel)
        else:
            why = f"{tool} not found on PATH" if not executable else f"{tool} was not run (run_tools=False)"
            for entry in device_graphs.values():
                entry["status"] = f"not built: {why}"

        built_all = all(e["status"] == "built" for e in device_graphs.values())
        device = {
            "kind": "ascend",
            "chip": soc.name,
            "soc_version": soc_version,
            "toolchain": toolchain,
            "precision_mode": precision_mode,
            "graphs": device_graphs,
            "audit": {name: [f.to_dict() for f in findings] for name, findings in audits.items()},
            "notes": (
                ("" if built_all else f"To build the device files: {TOOL_HINTS[tool]}; then run each graph's "
                 "command from the bundle folder (or rerun edgetrack convert). ")
                + "Commands use paths relative to the bundle folder. Image inputs go through static AIPP: on the "
                "device they take uint8 NHWC frames. " + (
                    "converter_lite compiles for the Ascend device of the machine it runs on (--optimize="
                    "ascend_oriented); soc_version records the intended chip." if toolchain == "converter_lite"
                    else "")
            ).strip(),
        }
        tools = dict(manifest.tools)
        tools.update({"toolchain": toolchain, tool: executable or "not found on PATH",
                      "converted_on": platform.machine()})
        parity = dict(manifest.parity)
        if rewrites:
            parity["onnx->ascend-onnx"] = rewrites
        new = dataclasses.replace(
            manifest,
            target=soc.name,
            precision=precision,
            graphs={n: dataclasses.replace(s, sha256="") for n, s in manifest.graphs.items()},
            tools=tools,
            parity=parity,
            device=device,
            files={},
            device_files_built=built_all,
            format_version=None,
        )
        return write_bundle(out, new, graph_files, force=force, extra_files=extra)


def _find_mindir(out_stem: Path) -> Path:
    from edgetrack.converters.onnx2mindir import find_mindir

    return find_mindir(out_stem)
