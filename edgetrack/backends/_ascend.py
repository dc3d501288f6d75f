"""What the Ascend-side backends (simulator, acl, mslite) share: the device view of one bundle graph.

A backend's ``load`` gets a graph file and a device string, as every backend does. From the file this module
finds the bundle it belongs to and answers what the device graph is: which chip it was built for, the exact
inputs the device takes (static shapes; uint8 NHWC frames where the bundle has AIPP), the AIPP configuration, the
portable ONNX graph the device file is built from, and the device file (.om / .mindir) when it was built.

Two kinds of bundle have a device view:

- an **Ascend bundle** (``edgetrack convert --target ascend310``): everything comes from ``manifest.device``;
- a **cpu/cuda bundle**, for the simulator only: the view is built *on the fly* for the chip asked for, the way
  :func:`edgetrack.converters.onnx2om.ascend_bundle` would build it (AIPP from the manifest's preprocessing,
  the graph rewritten in memory for the chip's nearest-neighbour rounding, the operator audit at load). This is
  what lets ``Tracker(model, backend="simulator", device="ascend310")`` run any model as the chip would.

Also here: the device strings the Ascend backends take, the check that a bundle's target suits the chosen
backend, the backend ``auto`` picks for an Ascend bundle, and :func:`adapt_feed`, which turns the tracker's
float NCHW crops into the uint8 NHWC frames an AIPP input takes. Only numpy and the standard library are
imported at module level.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from edgetrack.ascend.aipp import AippConfig
from edgetrack.ascend.socs import SOCS, Soc, get_soc
from edgetrack.bundle import MANIFEST_NAME, Bundle, load_bundle
from edgetrack.errors import (
    BackendError,
    BundleError,
    InvalidArgumentError,
    MissingDependencyError,
    UnknownChoiceError,
)

__all__ = [
    "ASCEND_KIND",
    "DeviceTensor",
    "DeviceGraph",
    "parse_ascend_device",
    "resolve_graph",
    "adapt_feed",
    "check_bundle_backend",
    "auto_backends",
    "missing_dependency",
    "check_feeds",
]

ASCEND_KIND = "ascend"
# Backends that run a bundle's device files, by the toolchain that built them.
_TOOLCHAIN_BACKEND = {"atc": "acl", "converter_lite": "mslite"}
_DEVICE_SUFFIX = {"acl": ".om", "mslite": ".mindir"}
_DEVICE = re.compile(r"^\s*([A-Za-z0-9 _-]+?)\s*(?::\s*(\d+))?\s*$")
_ANY_CHIP = ("npu", "ascend")
# How far above a graph file its bundle folder may be: graphs sit at the top, device files in device/.
_MAX_DEPTH = 3


@dataclass(frozen=True)
class DeviceTensor:
    """One device input or output: name, static shape, dtype (numpy spelling) and layout."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str = "ND"

    def describe(self) -> str:
        return f"{self.name} {tuple(self.shape)} {self.dtype} {self.layout}"


@dataclass(frozen=True)
class DeviceGraph:
    """The device view of one graph (see the module docstring).

    ``inputs``/``outputs``: what the device graph takes and gives. ``model_inputs``: the portable graph's own
    inputs (float NCHW where AIPP sits in front). ``aipp``: input name -> :class:`AippConfig`. ``onnx_path``: the
    portable graph (None when only a device file is at hand). ``device_file``: the built .om / .mindir, or None.
    ``status``: the manifest's build status. ``on_the_fly``: the view was derived here, not read from a manifest.
    ``precision``: the device graph's precision ("fp16", or "int8" where AMCT quantized it before ATC).
    """

    name: str
    soc: Soc | None
    soc_version: str
    inputs: tuple[DeviceTensor, ...]
    outputs: tuple[DeviceTensor, ...]
    model_inputs: tuple[DeviceTensor, ...]
    aipp: Mapping[str, AippConfig] = field(default_factory=dict)
    onnx_path: Path | None = None
    device_file: Path | None = None
    toolchain: str | None = None
    status: str = ""
    bundle_path: Path | None = None
    target: str = ""
    on_the_fly: bool = False
    notes: tuple[str, ...] = ()
    precision: str = "fp16"

    def where(self) -> str:
        return f"graph {self.name!r}" + (f" of bundle {str(self.bundle_path)!r}" if self.bundle_path else "")


def missing_dependency(feature: str, package: str, fix: str, detail: str | None = None) -> MissingDependencyError:
    """A :class:`MissingDependencyError` whose fix is ``fix`` (vendor runtimes are not installed with pip)."""
    err = MissingDependencyError(feature, package, detail=detail)
    err.fix = fix
    # ImportError (a base of MissingDependencyError) prints its .msg, other exceptions their args.
    err.msg = f"{err.message}\n  fix: {fix}"
    err.args = (err.msg,)
    return err


# -- device strings ------------------------------------------------------------------------------------------------
def parse_ascend_device(device, backend: str) -> tuple[Soc | None, int]:
    """``"ascend310"``, ``"Ascend 310P"``, ``"ascend310b:1"``, ``"npu"``, ``"npu:1"`` -> (chip or None, device id).

    ``npu``/``ascend`` name no chip: the bundle's own chip is meant.
    """
    valid = [*SOCS, *_ANY_CHIP, "<chip>:N", "npu:N"]
    m = _DEVICE.match(device) if isinstance(device, str) else None
    if m is None:
        raise UnknownChoiceError(
            f"device for the {backend!r} backend", device, valid,
            fix="pass the Ascend chip, e.g. device='ascend310' (or 'npu' for the bundle's own chip)",
        )
    name, index = m.group(1), int(m.group(2) or 0)
    if name.strip().lower() in _ANY_CHIP:
        return None, index
    if name.strip().lower() in ("cpu", "cuda", "gpu"):
        raise UnknownChoiceError(
            f"device for the {backend!r} backend", device, valid,
            fix=f"the {backend!r} backend runs (or simulates) an Ascend NPU: pass device='ascend310' (or the "
                "bundle's chip); for the CPU or CUDA use backend='onnxruntime'",
        )
    try:
        return get_soc(name), index
    except UnknownChoiceError as exc:
        raise UnknownChoiceError(
            f"device for the {backend!r} backend", device, valid,
            fix="pass one of the Ascend chips listed, optionally with :N for the device id",
        ) from exc


# -- the bundle a graph file belongs to ----------------------------------------------------------------------------
_BUNDLES: dict[Path, tuple[tuple, Bundle]] = {}


def _stamp(root: Path, bundle: Bundle | None) -> tuple:
    paths = [root / MANIFEST_NAME]
    if bundle is not None:
        paths += list(bundle.graph_paths.values()) + list(bundle.file_paths.values())
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            return ()
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def _load_bundle(root: Path) -> Bundle:
    """:func:`load_bundle`, remembered while no file of the bundle changes (a tracker loads three graphs of one
    bundle in a row; hashing a full-size model's graphs three times would cost a second on a small board)."""
    root = root.resolve()
    cached = _BUNDLES.get(root)
    if cached is not None and cached[0] and cached[0] == _stamp(root, cached[1]):
        return cached[1]
    bundle = load_bundle(root)
    if len(_BUNDLES) > 16:
        _BUNDLES.clear()
    _BUNDLES[root] = (_stamp(root, bundle), bundle)
    return bundle


def _find_bundle(path: Path) -> tuple[Bundle, str] | None:
    """The bundle holding ``path`` and the file's path relative to it, or None for a file outside any bundle."""
    folder = path.parent
    for _ in range(_MAX_DEPTH):
        if (folder / MANIFEST_NAME).is_file():
            bundle = _load_bundle(folder)
            return bundle, path.resolve().relative_to(bundle.path).as_posix()
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _graph_of(bundle: Bundle, rel: str) -> str:
    m = bundle.manifest
    for name, spec in m.graphs.items():
        if spec.file == rel:
            return name
    for name, entry in (m.device.get("graphs") or {}).items():
        if entry.get("file") == rel:
            return name
    raise BundleError(
        f"{rel!r} is in bundle {str(bundle.path)!r} but is none of its graphs ({sorted(m.graphs)}) or device files",
        fix="load a graph of the bundle (Bundle.graph_path(name))",
    )


def _tensor(t) -> DeviceTensor:
    return DeviceTensor(t.name, tuple(t.shape), t.dtype, "NCHW" if len(t.shape) == 4 else "ND")


def _image_inputs(preprocessing: Mapping, inputs) -> dict[str, tuple[int, int, int]]:
    # The converter's own rule for which inputs get AIPP, so the on-the-fly view is the one it would write.
    from edgetrack.converters.onnx2om import image_inputs

    return image_inputs(preprocessing, inputs)


def _chip_mismatch(bundle: Bundle, built: Soc, asked: Soc, backend: str) -> BundleError:
    return BundleError(
        f"bundle {str(bundle.path)!r} was built for {built.name} ({built.chip}, soc_version "
        f"{bundle.manifest.device.get('soc_version')}); its device graphs do not run on {asked.name} ({asked.chip})",
        fix=f"pass device={built.name!r} to the {backend!r} backend, or convert the checkpoint again with "
            f"--target {asked.name}",
    )


def resolve_graph(graph_path, soc: Soc | None, *, backend: str) -> DeviceGraph:
    """The :class:`DeviceGraph` of ``graph_path`` on ``soc`` (None: the bundle's own chip)."""
    path = Path(graph_path)
    if not path.is_file():
        raise BackendError(f"graph file {str(path)!r} does not exist", fix="load graphs from a bundle folder")
    found = _find_bundle(path)
    if found is None:
        return _bare_graph(path, soc, backend)
    bundle, rel = found
    name = _graph_of(bundle, rel)
    if backend in _DEVICE_SUFFIX:
        check_bundle_backend(bundle, backend, None)  # device runtimes need built device files of their toolchain
    m = bundle.manifest
    spec = m.graphs[name]
    outputs = tuple(_tensor(t) for t in spec.outputs)
    model_inputs = tuple(_tensor(t) for t in spec.inputs)
    onnx_path = bundle.graph_path(name) if spec.file.lower().endswith(".onnx") else None
    if m.device.get("kind") == ASCEND_KIND:
        built = get_soc(m.device["chip"])
        if soc is not None and soc.name != built.name:
            raise _chip_mismatch(bundle, built, soc, backend)
        entry = (m.device.get("graphs") or {}).get(name)
        if entry is None:
            raise BundleError(f"bundle {str(bundle.path)!r}: manifest.device has no entry for graph {name!r}",
                              fix="rebuild the bundle with edgetrack convert")
        aipp = {k: AippConfig.from_dict(v) for k, v in ((entry.get("aipp") or {}).get("inputs") or {}).items()}
        inputs = tuple(DeviceTensor(i["name"], tuple(int(d) for d in i["shape"]), i["dtype"], i.get("layout", "ND"))
                       for i in entry["inputs"])
        status = str(entry.get("status", ""))
        device_file = bundle.file_path(entry["file"]) if status == "built" and entry.get("file") else None
        return DeviceGraph(
            name=name, soc=built, soc_version=m.device.get("soc_version") or built.default_soc_version,
            inputs=inputs, outputs=outputs, model_inputs=model_inputs, aipp=aipp, onnx_path=onnx_path,
            device_file=device_file, toolchain=m.device.get("toolchain"), status=status, bundle_path=bundle.path,
            target=m.target, precision=str(entry.get("precision") or m.precision),
        )
    if soc is None:
        raise UnknownChoiceError(
            f"device for the {backend!r} backend", "npu", SOCS,
            fix=f"bundle {str(bundle.path)!r} targets {m.target!r}, not one chip: name the chip, e.g. "
                "device='ascend310'",
        )
    if onnx_path is None:
        raise BundleError(f"bundle {str(bundle.path)!r}: graph {name!r} is not an ONNX file ({spec.file!r})")
    images = _image_inputs(m.preprocessing, spec.inputs)
    aipp = {inp: AippConfig.from_preprocessing(m.preprocessing, h, w, related_input_rank=i)
            for inp, (i, h, w) in images.items()}
    inputs = tuple(
        DeviceTensor(t.name, aipp[t.name].device_input_shape(t.shape[0]), "uint8", "NHWC") if t.name in aipp
        else _tensor(t)
        for t in spec.inputs
    )
    notes = (
        f"on-the-fly Ascend view of a {m.target!r} bundle for {soc.name}: the device graph is what "
        f"`edgetrack convert --target {soc.name}` would build (operator audit at load, nearest Resize rewritten in "
        "memory to the chip's rounding, fp16 compute)",
        ("AIPP derived from the manifest preprocessing for " + ", ".join(
            f"{k} ({v.describe()})" for k, v in aipp.items())) if aipp else "no image inputs: no AIPP",
    )
    return DeviceGraph(
        name=name, soc=soc, soc_version=soc.default_soc_version, inputs=inputs, outputs=outputs,
        model_inputs=model_inputs, aipp=aipp, onnx_path=onnx_path, bundle_path=bundle.path, target=m.target,
        on_the_fly=True, notes=notes,
    )


def _bare_graph(path: Path, soc: Soc | None, backend: str) -> DeviceGraph:
    """A graph file outside any bundle: an .om/.mindir as it is, or an ONNX graph with its own static inputs."""
    suffix = path.suffix.lower()
    if soc is None and suffix == ".onnx":
        raise UnknownChoiceError(f"device for the {backend!r} backend", "npu", SOCS,
                                 fix=f"{path.name} is outside any bundle: name the chip, e.g. device='ascend310'")
    if suffix != ".onnx":
        # The device file itself: its desc (acl) or tensors (mslite) say what it takes.
        return DeviceGraph(name=path.stem, soc=soc, soc_version="", inputs=(), outputs=(),
                           model_inputs=(), device_file=path, status="built", on_the_fly=True,
                           notes=(f"{path.name} outside a bundle: chip unchecked",) if soc is None else ())
    from edgetrack.errors import require

    onnx = require("onnx", feature="simulating an ONNX graph", extra="torch")
    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        if not dims or any(d <= 0 for d in dims):
            raise BundleError(f"{path.name}: input {vi.name!r} has no static shape ({list(dims)}); the device "
                              "graph needs fixed shapes", fix="export the graph with static input shapes")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        inputs.append(DeviceTensor(vi.name, dims, dtype, "NCHW" if len(dims) == 4 else "ND"))
    outputs = []
    for vi in model.graph.output:
        t = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
        outputs.append(DeviceTensor(vi.name, dims, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name))
    return DeviceGraph(name=path.stem, soc=soc, soc_version=soc.default_soc_version, inputs=tuple(inputs),
                       outputs=tuple(outputs), model_inputs=tuple(inputs), onnx_path=path, on_the_fly=True,
                       notes=(f"{path.name} outside a bundle: no AIPP, inputs as the graph declares them",))


# -- feeds -----------------------------------------------------------------------------------------------------------
def check_feeds(feeds, inputs: tuple[DeviceTensor, ...], what: str) -> dict[str, np.ndarray]:
    """``feeds`` as the device takes them (exact names, dtypes and static shapes), or a typed error naming them."""
    if not isinstance(feeds, Mapping):
        raise InvalidArgumentError(f"{what}: feeds must be a dict of input name -> array, got {type(feeds).__name__}")
    names = [t.name for t in inputs]
    if set(feeds) != set(names):
        raise InvalidArgumentError(
            f"{what} takes input(s) {names}; got {sorted(feeds)}", fix=f"feed exactly {names}",
        )
    out = {}
    expected = "; ".join(t.describe() for t in inputs)
    for t in inputs:
        x = feeds[t.name]
        if not isinstance(x, np.ndarray):
            raise InvalidArgumentError(f"{what}: input {t.name!r} must be a numpy array, got {type(x).__name__}")
        if tuple(x.shape) != tuple(t.shape) or x.dtype != np.dtype(t.dtype):
            raise InvalidArgumentError(
                f"{what} was built for static input shapes [{expected}]; got {t.name} {tuple(x.shape)} {x.dtype}",
                fix="feed exactly these shapes and dtypes (the device graph's shapes are fixed when it is built: "
                    "ATC --input_shape); rebuild the bundle for other sizes",
            )
        out[t.name] = np.ascontiguousarray(x)
    return out


def adapt_feed(session, name: str, array: np.ndarray) -> np.ndarray:
    """The tracker's float32 NCHW crop batch in the form ``session``'s input ``name`` takes.

    Sessions of the Ascend backends list their inputs in ``device_inputs``; an AIPP input takes uint8 NHWC BGR
    frames (the chip does the float conversion). The tracker's crops hold whole pixel values (they are cut from
    uint8 frames), so the conversion back to uint8 is exact. Any other session gets the array unchanged.
    """
    spec = getattr(session, "device_inputs", {}).get(name)
    if spec is None or (spec.dtype, spec.layout) != ("uint8", "NHWC") or array.dtype == np.uint8:
        return array
    if array.ndim != 4:
        raise InvalidArgumentError(f"input {name!r}: expected an (N, 3, H, W) crop batch, got shape {array.shape}")
    return np.ascontiguousarray(np.clip(np.rint(array.transpose(0, 2, 3, 1)), 0, 255).astype(np.uint8))


# -- which backend runs which bundle ---------------------------------------------------------------------------------
def _is_ascend(manifest) -> bool:
    return manifest.device.get("kind") == ASCEND_KIND


def check_bundle_backend(bundle: Bundle, backend: str, device) -> None:
    """A :class:`BundleError` when ``backend`` cannot run ``bundle``'s target, naming the target and the fix."""
    m = bundle.manifest
    where = f"bundle {str(bundle.path)!r}"
    if backend == "onnxruntime" and _is_ascend(m):
        raise BundleError(
            f"{where} targets {m.target} ({m.device.get('soc_version')}, {m.precision} on the NPU); the "
            f"'onnxruntime' backend runs cpu and cuda bundles, not Ascend device builds"
            + (f" (asked: device={device!r})" if device is not None else ""),
            fix=f"on the device use backend='acl' (OM files) or 'mslite' (MindIR); to try the device path on this "
                f"machine use backend='simulator', device={m.device.get('chip')!r}; to run on the CPU/GPU convert the "
                "checkpoint with --target cpu or cuda",
        )
    if backend in _DEVICE_SUFFIX and not _is_ascend(m):
        raise BundleError(
            f"{where} targets {m.target!r}: it holds ONNX graphs only, no {_DEVICE_SUFFIX[backend]} files for the "
            f"{backend!r} backend",
            fix="convert the checkpoint with --target ascend310 (or your chip) on a machine with the "
                + ("CANN toolkit (atc)" if backend == "acl"
                   else "MindSpore Lite converter (--toolchain converter_lite)")
                + "; to try the device path here use backend='simulator', device='ascend310'",
        )
    if backend in _DEVICE_SUFFIX and _is_ascend(m):
        toolchain = m.device.get("toolchain")
        wanted = _TOOLCHAIN_BACKEND.get(toolchain)
        if wanted != backend:
            raise BundleError(
                f"{where} was built with {toolchain!r} ({_DEVICE_SUFFIX.get(wanted or '', '?')} files), which the "
                f"{backend!r} backend does not run",
                fix=f"use backend={wanted!r}, or convert again with --toolchain "
                    f"{'atc' if backend == 'acl' else 'converter_lite'}",
            )
        if not m.device_files_built:
            statuses = sorted({str(g.get('status')) for g in (m.device.get('graphs') or {}).values()})
            raise BundleError(
                f"{where}: its device files were not built ({'; '.join(statuses)})",
                fix=f"run each graph's commands in manifest.json (device.graphs.*.commands, in order) from the "
                    f"bundle folder where {toolchain} is installed, or convert again there; meanwhile "
                    f"backend='simulator', device={m.device.get('chip')!r} runs the bundle as the chip would",
            )


def auto_backends(bundle: Bundle) -> tuple[str, ...] | None:
    """What ``backend="auto"`` tries for an Ascend bundle (None for other bundles: the usual order applies).

    Never the simulator: a bundle built for the NPU that quietly ran on the CPU would be the silent fall-back
    DESIGN.md rules out.
    """
    m = bundle.manifest
    if not _is_ascend(m):
        return None
    wanted = _TOOLCHAIN_BACKEND.get(m.device.get("toolchain"))
    return (wanted,) if wanted else ()
