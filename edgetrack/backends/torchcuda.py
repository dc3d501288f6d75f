"""PyTorch backend: a bundle's ``.onnx`` graphs run by PyTorch, on an NVIDIA GPU (or the CPU), each captured into a
CUDA graph.

``backend="torch"``, ``device="cuda"`` (the default), ``"cuda:N"`` or ``"cpu"``. It exists for machines that have
PyTorch with CUDA but neither onnxruntime-gpu (built for one CUDA/cuDNN pair) nor TensorRT; that is the common case
on a training box, and ONNX Runtime's CPU package cannot use the GPU.

**Loading.** ``onnx.load`` reads the graph with its external weights (the bundle's shared ``weights.bin`` /
``deblur_weights.bin``, found next to the graph), and ``onnx2torch`` turns it into a ``torch.fx`` module. Around the
conversion, a few passes make every graph of ours convertible, cheap to run and legal to capture:

- *constants as initializers* (ONNX): ``Constant`` nodes, and ``Identity``/``Cast`` of a constant, become
  initializers. onnx2torch's Conv takes its weight and bias from initializers only; the exporter reaches shared
  biases through ``Identity``, and fp16-storage bundles (``--target cpu --precision fp16``, the shipped
  ``siamrpn-eca``) keep every weight as fp16 behind a ``Cast``, which would otherwise run at every frame;
- *Conv with run-time weights* (ONNX): SiamFC's head correlates the search features with the template's kernel, a
  Conv whose weight is a graph input. Such a Conv is moved into a private domain whose converter (registered here)
  calls ``torch.nn.functional.conv2d`` with the weight as an input;
- *constant folding* (fx): whatever else is computed from constants only is computed once, at load;
- *shape inputs on the host* (fx): onnx2torch's Slice, Reshape, Resize, Pad, Squeeze and Unsqueeze read their
  starts/ends/shape/scales/pads/axes tensors into Python (``.tolist()``) on every call. With those constants on the
  GPU that is one device-to-host copy and stall per operator (the SiamRPN head has 62 Slices), and a stream being
  captured into a CUDA graph forbids them. A constant Slice becomes one static indexing tuple; the others get
  their constant shape inputs bound as CPU tensors, out of ``.to(device)``'s reach. :attr:`TorchSession.notes`
  counts what each pass did.

**Running.** Everything runs under ``torch.inference_mode`` on one CUDA stream per session; weights stay on the
device. At batch 1 these networks are launch-bound (DESIGN.md: EfficientNet-B0 at 255 px, 3.3 ms eager, 0.6 ms as a
CUDA graph on the GPU machine), so a session's second run captures it into a ``torch.cuda.CUDAGraph`` (bundle
shapes are static): warm-up runs on a side stream, capture into static input/output buffers, and from then on each
run is a copy into the static inputs from pinned host memory, one graph replay, and a copy out. The first run stays
eager, so the template graph (run once per ``init``) never pays for a capture it would not reuse.
A capture that raises is the only reason to stay eager; the reason is kept in
:attr:`TorchSession.cuda_graph_error` and logged. ``TorchBackend(cuda_graphs=False)`` or
``EDGETRACK_TORCH_CUDA_GRAPHS=0`` turns capture off (to compare, or to debug). fp32 graphs run their convolutions
in TF32 on Ampere and newer GPUs when PyTorch's ``torch.backends.cudnn.allow_tf32`` is on (its default).

**Threads.** A session may serve several trackers in several threads, as ONNX Runtime's sessions do: the static
buffers of a captured session are guarded by a lock, and captures are serialised process-wide (a capture
synchronises the device and changes cuDNN's global benchmark flag for its warm-up). Captures use
``capture_error_mode="thread_local"``, so other threads keep running their own sessions while one captures.

**Dependencies.** ``torch``, ``onnx`` and ``onnx2torch`` (pure Python). onnx2torch imports ``torchvision`` at import
time only for its NMS and RoiAlign converters, which no tracker graph uses; torchvision is a compiled package that
must match the installed torch build exactly, so when it is absent (or broken) a stand-in is given to that import
only, and an NMS/RoiAlign graph then fails with an error naming torchvision.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import types
from pathlib import Path
from typing import Mapping

import numpy as np

from edgetrack.backends import module_available
from edgetrack.backends._ascend import missing_dependency
from edgetrack.backends.onnxruntime import parse_device
from edgetrack.errors import BackendError, InvalidArgumentError

__all__ = ["TorchBackend", "TorchSession", "TorchDeviceOps", "TorchFrameProgram", "ENV_CUDA_GRAPHS", "ENV_DEVICE_TRACKING", "ENV_CHANNELS_LAST", "ONNX2TORCH_VERSION",
           "convert_graph"]

_log = logging.getLogger(__name__)

ENV_CUDA_GRAPHS = "EDGETRACK_TORCH_CUDA_GRAPHS"  # "0" / "false" / "no" / "off": stay eager
ENV_CHANNELS_LAST = "EDGETRACK_TORCH_CHANNELS_LAST"  # "1": NHWC activations (may suit fp16 tensor cores)
# "1": crops and SiamFC's decode on the device (default on CUDA devices), "0": on the host with numpy and OpenCV
ENV_DEVICE_TRACKING = "EDGETRACK_TORCH_DEVICE_TRACKING"
ONNX2TORCH_VERSION = "1.5.15"  # the release this backend is tested with (pyproject's [torch] extra pins it)

# Plain `pip install onnx2torch` also resolves torchvision, whose newest release pins the newest torch: pip then
# replaces a working CUDA build of PyTorch with another one (several GB). onnx2torch's other needs (numpy, onnx,
# torch) are this backend's own.
_ONNX2TORCH_FIX = (f"pip install --no-deps onnx2torch=={ONNX2TORCH_VERSION} (without --no-deps pip also pulls "
                   "torchvision, which can replace your CUDA build of torch)")
_TORCH_FIX = ("install PyTorch with CUDA for your driver (https://pytorch.org/get-started/locally/), then "
              + _ONNX2TORCH_FIX)
_DEPENDENCIES = (("torch", "torch", _TORCH_FIX), ("onnx", "onnx", "pip install onnx"),
                 ("onnx2torch", "onnx2torch", _ONNX2TORCH_FIX))

_WARMUP_RUNS = 3  # before a capture: cuDNN picks its algorithms and the allocator settles (PyTorch's recipe)
_CAPTURE_AT_RUN = 2  # a session's 2nd run is captured; its 1st stays eager (see the module docstring)
_CAPTURE_LOCK = threading.Lock()
_IMPORT_LOCK = threading.RLock()  # the torchvision stand-in is put into sys.modules for one import only
# Conv nodes with run-time weights are moved into this ONNX domain, whose converter this module registers.
_CUSTOM_DOMAIN = "edgetrack_torch"  # onnx2torch names modules after it: no dots

# onnx2torch modules whose inputs after the first are shape information read into Python on every call.
_HOST_ARG_MODULES = frozenset({
    "OnnxSlice", "OnnxReshape", "OnnxResize", "OnnxResizeV10", "OnnxPadDynamic", "OnnxSqueezeDynamicAxes",
    "OnnxUnsqueezeDynamicAxes",
})
_FALSE = {"0", "false", "no", "off"}


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in _FALSE


def _import_torch():
    try:
        import torch  # noqa: PLC0415 - imported on first use only, so `import edgetrack` needs no torch
    except ImportError as exc:
        raise missing_dependency("the 'torch' backend", "torch", _TORCH_FIX, detail=str(exc)) from exc
    return torch


def _import_onnx():
    try:
        import onnx  # noqa: PLC0415
    except ImportError as exc:
        raise missing_dependency("the 'torch' backend", "onnx", "pip install onnx", detail=str(exc)) from exc
    return onnx


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    def missing(*_args, **_kwargs):
        raise missing_dependency("an ONNX graph with NMS or RoiAlign on the 'torch' backend", "torchvision",
                                 "install the torchvision release built for your torch")

    vision, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.box_convert = ops.roi_align = missing
    vision.ops = ops
    return {"torchvision": vision, "torchvision.ops": ops}


def _import_onnx2torch():
    """``onnx2torch.convert``, with a stand-in for torchvision during the import if torchvision cannot be imported."""
    loaded = sys.modules.get("onnx2torch")
    if loaded is not None and hasattr(loaded, "convert"):
        return loaded.convert
    if not module_available("onnx2torch"):
        raise missing_dependency("the 'torch' backend", "onnx2torch", _ONNX2TORCH_FIX)
    try:
        import torchvision  # noqa: F401, PLC0415
        stand_in = None
    except Exception as exc:  # noqa: BLE001 - absent, or built for another torch (RuntimeError, OSError)
        _log.info("torchvision unavailable (%s): onnx2torch's NMS/RoiAlign converters get a stand-in", exc)
        stand_in = _torchvision_stand_in()
    saved = {name: sys.modules.get(name) for name in (stand_in or {})}
    try:
        if stand_in:
            sys.modules.update(stand_in)
        import onnx2torch  # noqa: PLC0415
    except ImportError as exc:
        raise missing_dependency("the 'torch' backend", "onnx2torch", _ONNX2TORCH_FIX, detail=str(exc)) from exc
    finally:
        # Nobody else may see a fake torchvision: onnx2torch's two modules keep their own reference to it.
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return onnx2torch.convert


# -- ONNX graph -> torch module --------------------------------------------------------------------------------------
def _constant_initializers(onnx, model) -> int:
    """Make ``Constant`` nodes, and ``Identity``/``Cast`` nodes of a constant, initializers; drop unused initializers.

    onnx2torch's Conv converter takes weights and biases from initializers only, and our graphs reach some through
    a node: the exporter shares equal initializers through ``Identity`` (the zero biases of folded BatchNorms), and
    fp16-storage graphs keep each weight as fp16 behind a ``Cast`` to fp32. Returns how many nodes were removed.
    """
    from onnx import numpy_helper  # noqa: PLC0415

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    kept, added, removed = [], [], 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        out = node.output[0] if len(node.output) == 1 else None
        if out is None or out in graph_outputs:
            kept.append(node)
            continue
        attrs = {a.name: a for a in node.attribute}
        tensor = None
        if node.op_type == "Constant" and "value" in attrs:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attrs["value"].t)
        elif node.op_type == "Identity" and node.input[0] in constants:
            alias[out] = node.input[0]
            removed += 1
            continue
        elif node.op_type == "Cast" and node.input[0] in constants and "to" in attrs:
            to = onnx.helper.tensor_dtype_to_np_dtype(attrs["to"].i)
            tensor = numpy_helper.from_array(numpy_helper.to_array(constants[node.input[0]]).astype(to))
        if tensor is None:
            kept.append(node)
            continue
        tensor.name = out
        constants[out] = tensor
        added.append(tensor)
        removed += 1
    if not removed:
        return 0
    nodes = []
    for node in kept:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        nodes.append(copy)
    used = {name for node in nodes for name in node.input} | graph_outputs
    initializers = [t for t in list(graph.initializer) + added if t.name in used]
    copies = []
    for t in initializers:
        copy = onnx.TensorProto()
        copy.CopyFrom(t)
        copies.append(copy)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(copies)
    return removed


def _fold_constants(torch, fx, gm) -> int:
    """Replace every node computed from constants only by its value, stored as a buffer. Returns how many."""
    consts: dict = {}
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op == "get_attr":
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            if isinstance(value, torch.Tensor):
                consts[node] = value
            continue
        if node.op not in ("call_module", "call_function") or not all(n in consts for n in node.all_input_nodes):
            continue
        target = gm.get_submodule(node.target) if node.op == "call_module" else node.target
        args = fx.node.map_arg(node.args, lambda n: consts[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: consts[n])
        with torch.no_grad():
            value = target(*args, **kwargs)
        if not isinstance(value, torch.Tensor):
            continue  # a tuple (Split) or a non-tensor attribute: leave it to run time
        name = f"folded_{folded}"
        gm.register_buffer(name, value.detach().clone())
        with gm.graph.inserting_before(node):
            replacement = gm.graph.get_attr(name)
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
        consts[replacement] = value
        folded += 1
    return folded


@functools.lru_cache(maxsize=None)
def _parts(torch):
    """The torch modules this backend puts into converted graphs (made on first use: torch is imported lazily),
    and onnx2torch's converter for :data:`_CUSTOM_DOMAIN` ``Conv``, registered once."""
    import torch.nn.functional as F  # noqa: N812, PLC0415
    from onnx2torch.node_converters.registry import add_converter, get_converter  # noqa: PLC0415
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node  # noqa: PLC0415
    from onnx2torch.utils.padding import onnx_auto_pad_to_torch_padding  # noqa: PLC0415

    class HostArgs(torch.nn.Module):
        """Calls ``inner(x, *args, **kwargs)`` with the constant ``args``/``kwargs`` kept as CPU tensors.

        They are plain attributes, not buffers, so ``.to(device)`` leaves them on the host, where ``inner`` reads
        them into Python without a device-to-host copy.
        """

        def __init__(self, inner, args, kwargs):
            super().__init__()
            self.inner = inner
            self.host_args = tuple(args)
            self.host_kwargs = dict(kwargs)

        def forward(self, x):
            return self.inner(x, *self.host_args, **self.host_kwargs)

    class StaticSlice(torch.nn.Module):
        """ONNX Slice with constant starts/ends/axes/steps: one indexing tuple (negative steps as a flip, which
        PyTorch's basic indexing lacks), built at load instead of from tensors on every call."""

        def __init__(self, starts, ends, axes, steps):
            super().__init__()
            starts, ends = [int(v) for v in starts], [int(v) for v in ends]
            axes = list(range(len(starts))) if axes is None else [int(v) for v in axes]
            steps = [1] * len(starts) if steps is None else [int(v) for v in steps]
            self.flips, self.slices = [], []
            for start, end, axis, step in zip(starts, ends, axes, steps):
                if step < 0:
                    self.flips.append(axis)
                    start, end, step = -start - 1, -end - 1, -step
                self.slices.append((axis, slice(start, end, step)))

        def forward(self, x):
            if self.flips:
                x = torch.flip(x, dims=self.flips)
            index = [slice(None)] * x.dim()
            for axis, item in self.slices:
                index[axis] = item
            return x[tuple(index)]

    class RuntimeWeightConv(torch.nn.Module):
        """ONNX Conv whose weight (and bias) are inputs computed at run time: SiamFC's head correlates the search
        features with the template's kernel as a convolution. onnx2torch converts Conv with initializer weights
        only."""

        def __init__(self, padding, pad_input, stride, dilation, groups):
            super().__init__()
            self.padding, self.pad_input = padding, pad_input
            self.stride, self.dilation, self.groups = stride, dilation, groups

        def forward(self, x, weight, bias=None):
            if self.pad_input is not None:
                x = self.pad_input(x)
            conv = (F.conv1d, F.conv2d, F.conv3d)[weight.dim() - 3]
            return conv(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def runtime_weight_conv(node, graph):  # noqa: ARG001 - onnx2torch's converter signature
        attrs = node.attributes
        rank = len(attrs["kernel_shape"]) if "kernel_shape" in attrs else len(attrs.get("strides", [1, 1]))
        padding, pad_input = onnx_auto_pad_to_torch_padding(
            onnx_padding=attrs.get("pads", [0] * rank * 2), auto_pad=attrs.get("auto_pad", "NOTSET"))
        module = RuntimeWeightConv(padding, pad_input, tuple(attrs.get("strides", [1] * rank)),
                                   tuple(attrs.get("dilations", [1] * rank)), int(attrs.get("group", 1)))
        return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))

    try:
        get_converter(operation_type="Conv", version=1, domain=_CUSTOM_DOMAIN)
    except NotImplementedError:
        add_converter(operation_type="Conv", version=1, domain=_CUSTOM_DOMAIN)(runtime_weight_conv)
    return types.SimpleNamespace(HostArgs=HostArgs, StaticSlice=StaticSlice, RuntimeWeightConv=RuntimeWeightConv)


def _runtime_weight_convs(onnx, model) -> int:
    """Move each Conv whose weight or bias is not an initializer into :data:`_CUSTOM_DOMAIN`, whose converter
    (:func:`_parts`) takes them as inputs. Returns how many."""
    initializers = {t.name for t in model.graph.initializer}
    moved = 0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.domain in ("", "ai.onnx") \
                and any(name and name not in initializers for name in node.input[1:]):
            node.domain = _CUSTOM_DOMAIN
            moved += 1
    if moved and not any(o.domain == _CUSTOM_DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(_CUSTOM_DOMAIN, 1))
    return moved


def _host_shape_args(torch, gm) -> int:
    """Give Slice a static index and bind the other :data:`_HOST_ARG_MODULES`' constant shape inputs to them as CPU
    tensors. Returns how many modules changed; one with a computed (non-constant) shape input is left as it is."""
    parts = _parts(torch)
    consts = {}
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            if isinstance(value, torch.Tensor):
                consts[node] = value
    changed = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not node.args:
            continue
        module = gm.get_submodule(node.target)
        kind = type(module).__name__
        if kind not in _HOST_ARG_MODULES:
            continue
        rest = list(node.args[1:]) + list(node.kwargs.values())
        if not all(a is None or a in consts for a in rest):
            continue

        def cpu(a):
            return None if a is None else consts[a].detach().cpu().clone()

        args, kwargs = [cpu(a) for a in node.args[1:]], {k: cpu(v) for k, v in node.kwargs.items()}
        if kind == "OnnxSlice":
            named = dict(zip(("starts", "ends", "axes", "steps"), args), **kwargs)
            replacement = parts.StaticSlice(named["starts"].tolist(), named["ends"].tolist(),
                                            None if named.get("axes") is None else named["axes"].tolist(),
                                            None if named.get("steps") is None else named["steps"].tolist())
        else:
            replacement = parts.HostArgs(module, args, kwargs)
        parent, _, leaf = node.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, leaf, replacement)
        node.args, node.kwargs = node.args[:1], {}
        changed += 1
    return changed


def _drop_unused(gm) -> None:
    """Remove nodes, submodules and buffers nothing uses any more (the folded fp16 weights, the bound shapes)."""
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    used = {node.target for node in gm.graph.nodes if node.op == "get_attr"}
    for name, _ in list(gm.named_buffers()):
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, leaf)
    gm.recompile()


def convert_graph(model):
    """An ONNX ``ModelProto`` (weights loaded; changed in place) -> ``(torch.fx.GraphModule, notes)``, on the CPU,
    in eval mode. ``notes`` counts what the load-time passes did.

    Raises :class:`BackendError` naming the operator when onnx2torch cannot convert one.
    """
    torch = _import_torch()
    onnx = _import_onnx()
    with _IMPORT_LOCK:
        convert = _import_onnx2torch()
        _parts(torch)  # registers the converter of the runtime-weight Conv
    from torch import fx  # noqa: PLC0415

    as_initializers = _constant_initializers(onnx, model)
    runtime_convs = _runtime_weight_convs(onnx, model)
    try:
        gm = convert(model)
    except NotImplementedError as exc:
        ops = sorted({n.op_type for n in model.graph.node})
        raise BackendError(
            f"onnx2torch {ONNX2TORCH_VERSION} cannot convert an operator of this graph: {exc} (the graph uses {ops})",
            fix="run the bundle with backend='onnxruntime', or report the operator to edgetrack",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - onnx2torch raises what its converters raise
        raise BackendError(f"onnx2torch could not convert the graph: {type(exc).__name__}: {exc}",
                           fix="run the bundle with backend='onnxruntime'") from exc
    folded = _fold_constants(torch, fx, gm)
    bound = _host_shape_args(torch, gm)
    _drop_unused(gm)
    gm.eval()
    notes = {"constant_nodes_to_initializers": as_initializers, "runtime_weight_convs": runtime_convs,
             "folded_constants": folded,
             "host_shape_inputs": bound}
    return gm, notes


# -- sessions --------------------------------------------------------------------------------------------------------
class TorchSession:
    """One graph as a torch module on one device. ``run`` feeds inputs by name and returns every output by name.

    :attr:`mode` is ``"cuda-graph"`` once captured, else ``"eager"``; :attr:`cuda_graph_error` says why a session
    that was to be captured is not (None otherwise); :attr:`runs` counts calls of :meth:`run`.
    """

    def __init__(self, module, path: Path, device: str, inputs, outputs, *, cuda_graphs: bool,
                 channels_last: bool, cudnn_benchmark: bool, notes: dict):
        self._torch = _import_torch()
        torch = self._torch
        self.path = path
        self.device = device
        self._device = torch.device(device)
        self._module = module
        self.input_names = tuple(name for name, _, _ in inputs)
        self.input_dtypes = {name: dtype for name, dtype, _ in inputs}
        self.input_shapes = {name: shape for name, _, shape in inputs}
        self.output_names = tuple(outputs)
        self.notes = dict(notes)
        self._cuda = self._device.type == "cuda"
        self._channels_last = channels_last
        self._cudnn_benchmark = cudnn_benchmark
        self.cuda_graphs = bool(cuda_graphs and self._cuda)
        self.cuda_graph_error: str | None = None
        if self.cuda_graphs and not all(s is not None and all(d > 0 for d in s) for s in self.input_shapes.values()):
            self.cuda_graphs = False
            self.cuda_graph_error = "the graph has inputs of dynamic shape; a CUDA graph needs static shapes"
        self.runs = 0
        self._lock = threading.Lock()
        self._stream = torch.cuda.Stream(device=self._device) if self._cuda else None
        self._graph = None
        self._static_in: list = []
        self._static_out: list = []
        self._host_in: list = []
        self._host_out: list = []

    @property
    def mode(self) -> str:
        return "cuda-graph" if self._graph is not None else "eager"

    # -- inputs --
    def _arrays(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InvalidArgumentError(
                f"graph {self.path.name!r} needs input(s) {missing}; got {sorted(feeds)}",
                fix=f"feed exactly {list(self.input_names)}",
            )
        arrays = []
        torch = self._torch
        for name in self.input_names:
            a = feeds[name]
            if isinstance(a, torch.Tensor):  # already on a device (TorchDeviceOps' crops, another run's outputs)
                shape = self.input_shapes[name]
                if shape is not None and (a.ndim != len(shape) or any(d > 0 and d != s for d, s in zip(shape, a.shape))):
                    raise InvalidArgumentError(
                        f"graph {self.path.name!r} input {name!r} has the static shape {shape}; got {tuple(a.shape)}",
                        fix="feed crops of the bundle's sizes (the manifest's graphs section lists them)")
                arrays.append(a.to(device=self._device, dtype=_torch_dtype(torch, self.input_dtypes[name])))
                continue
            a = np.asarray(a)
            shape = self.input_shapes[name]
            if shape is not None and (a.ndim != len(shape) or any(d > 0 and d != s for d, s in zip(shape, a.shape))):
                raise InvalidArgumentError(
                    f"graph {self.path.name!r} input {name!r} has the static shape {shape}; got {a.shape}",
                    fix="feed crops of the bundle's sizes (the manifest's graphs section lists them)",
                )
            # The graph's declared dtype: float32 for every bundle so far (fp16 graphs keep fp32 inputs).
            arrays.append(np.ascontiguousarray(a, dtype=self.input_dtypes[name]))
        return arrays

    def _to_device(self, a):
        t = a if isinstance(a, self._torch.Tensor) else self._torch.from_numpy(a).to(self._device, non_blocking=False)
        if self._channels_last and t.ndim == 4:
            t = t.contiguous(memory_format=self._torch.channels_last)
        return t

    def _outputs(self, value) -> list:
        return list(value) if isinstance(value, (tuple, list)) else [value]

    # -- running --
    def run(self, feeds: Mapping[str, object], *, device_outputs: bool = False) -> dict[str, object]:
        """The graph's outputs for ``feeds`` (numpy arrays, or torch tensors already on a device).

        ``device_outputs``: return torch tensors on the graph's device (valid after the call on the caller's
        current stream) instead of numpy arrays: what :class:`TorchDeviceOps` decodes, or the next graph's feed,
        without a round trip through the host.
        """
        arrays = self._arrays(feeds)
        if not self._cuda:
            return self._run_eager(arrays, device_outputs)
        torch = self._torch
        # inference_mode: the static buffers are inference tensors, which only accept in-place copies inside it.
        with self._lock, torch.cuda.device(self._device), torch.inference_mode():
            self.runs += 1
            caller = torch.cuda.current_stream(self._device)
            if any(isinstance(a, torch.Tensor) for a in arrays):
                self._stream.wait_stream(caller)  # the feeds were made on the caller's stream
                for a in arrays:
                    if isinstance(a, torch.Tensor) and a.is_cuda:
                        a.record_stream(self._stream)
            if self._graph is None and self.cuda_graphs and self.runs >= _CAPTURE_AT_RUN:
                self._try_capture(arrays)
            result = self._run_eager(arrays, device_outputs) if self._graph is None else \
                self._replay(arrays, device_outputs)
            if device_outputs:
                caller.wait_stream(self._stream)
                for t in result.values():
                    t.record_stream(caller)
            return result

    def forward(self, feeds: Mapping[str, object]) -> dict[str, object]:
        """The graph's outputs for ``feeds`` (device tensors, or numpy arrays) as device tensors, computed eagerly on
        the caller's current stream, with no copies, waits or CUDA graph of this session's own: a step of a
        :class:`TorchFrameProgram`, which captures several graphs and the work around them in one CUDA graph."""
        arrays = self._arrays(feeds)
        return dict(zip(self.output_names, self._outputs(self._module(*[self._to_device(a) for a in arrays]))))

    def _run_eager(self, arrays, device_outputs: bool = False) -> dict[str, object]:
        torch = self._torch
        if not self._cuda:
            self.runs += 1  # not exact under concurrent CPU calls; the CPU path has no lock to keep it cheap
        try:
            with torch.inference_mode():
                if self._cuda:
                    with torch.cuda.stream(self._stream):
                        outputs = self._outputs(self._module(*[self._to_device(a) for a in arrays]))
                        if device_outputs:
                            return dict(zip(self.output_names, outputs))
                        result = [o.cpu() for o in outputs]  # .cpu() waits for this stream
                else:
                    result = self._outputs(self._module(*[a if isinstance(a, torch.Tensor) else torch.from_numpy(a)
                                                          for a in arrays]))
                    if device_outputs:
                        return dict(zip(self.output_names, result))
                return {name: np.ascontiguousarray(t.numpy()) for name, t in zip(self.output_names, result)}
        except (InvalidArgumentError, BackendError):
            raise
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and friends
            raise BackendError(f"PyTorch failed to run graph {self.path.name!r} on {self.device!r}: "
                               f"{type(exc).__name__}: {exc}") from exc

    def _try_capture(self, arrays) -> None:
        torch = self._torch
        current = torch.cuda.current_stream(self._device)
        try:
            self._capture(arrays)
        except Exception as exc:  # noqa: BLE001 - whatever capture raises, eager still gives the right answer
            # torch.cuda.graph's __exit__ skips restoring the thread's stream when ending the capture raises.
            torch.cuda.set_stream(current)
            self._graph, self._static_in, self._static_out, self._host_in, self._host_out = None, [], [], [], []
            self.cuda_graphs = False
            cause = exc.__cause__ or exc.__context__  # ending a broken capture raises; the op that broke it is here
            self.cuda_graph_error = f"{type(exc).__name__}: {exc}" + (
                f" (after {type(cause).__name__}: {cause})" if cause is not None else "")
            _log.warning("graph %s on %s stays eager: CUDA graph capture failed: %s", self.path.name, self.device,
                         self.cuda_graph_error)
            try:
                self._torch.cuda.synchronize(self._device)
            except Exception:  # noqa: BLE001 - the eager run that follows reports a broken device itself
                pass

    def _capture(self, arrays) -> None:
        torch = self._torch
        with _CAPTURE_LOCK, torch.inference_mode():
            with torch.cuda.stream(self._stream):
                static_in = [self._to_device(a) for a in arrays]
            side = torch.cuda.Stream(device=self._device)
            side.wait_stream(self._stream)
            benchmark = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = self._cudnn_benchmark or benchmark
            try:
                with torch.cuda.stream(side):
                    for _ in range(_WARMUP_RUNS):
                        self._module(*static_in)
                self._stream.wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
                    static_out = self._outputs(self._module(*static_in))
            finally:
                torch.backends.cudnn.benchmark = benchmark
            host_in = [torch.empty(tuple(a.shape), dtype=a.dtype if isinstance(a, torch.Tensor) else
                                   torch.from_numpy(a).dtype, pin_memory=True) for a in arrays]
            host_out = [torch.empty(o.shape, dtype=o.dtype, pin_memory=True) for o in static_out]
        self._static_in, self._static_out = static_in, static_out
        self._host_in = [(t, t.numpy()) for t in host_in]
        self._host_out = [(t, t.numpy()) for t in host_out]
        self._graph = graph
        _log.info("graph %s captured into a CUDA graph on %s", self.path.name, self.device)

    def _replay(self, arrays, device_outputs: bool = False) -> dict[str, object]:
        torch = self._torch
        try:
            for (_, host), a in zip(self._host_in, arrays):
                if not isinstance(a, torch.Tensor):
                    np.copyto(host, a)
            with torch.cuda.stream(self._stream):
                for static, (host, _), a in zip(self._static_in, self._host_in, arrays):
                    static.copy_(a if isinstance(a, torch.Tensor) else host, non_blocking=True)
                self._graph.replay()
                if device_outputs:
                    # Copies on the device: the static buffers are overwritten by the next replay.
                    return {name: t.clone() for name, t in zip(self.output_names, self._static_out)}
                for (host, _), static in zip(self._host_out, self._static_out):
                    host.copy_(static, non_blocking=True)
            self._stream.synchronize()
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"PyTorch failed to replay the CUDA graph of {self.path.name!r} on {self.device!r}: "
                               f"{type(exc).__name__}: {exc}") from exc
        # Copies: the pinned buffers are overwritten by the next run, and callers keep results (the kernel).
        return {name: host.copy() for name, (_, host) in zip(self.output_names, self._host_out)}

    def close(self) -> None:
        """Drop the CUDA graph and its buffers (the module's weights go with the session object)."""
        with self._lock:
            self._graph, self._static_in, self._static_out, self._host_in, self._host_out = None, [], [], [], []


def _torch_dtype(torch, dtype) -> object:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


# -- crop and decode on the device ------------------------------------------------------------------------------------
class TorchDeviceOps:
    """:class:`~edgetrack.tracking.device.DeviceOps` on one torch device: the tracking classes' search crops, their
    decode's arithmetic, and :class:`TorchFrameProgram`, which runs a frame's crops, graphs and decode as one CUDA
    graph (design and figures: :mod:`edgetrack.tracking.device`).

    Crops (:meth:`sample`): bilinear taps gathered from the uint8 region of the frame that
    :func:`~edgetrack.tracking.crop.crop_request` cut out, at the positions it gives (OpenCV's, from the same
    :func:`~edgetrack.tracking.crop.crop_affine` map as the host's crop), the padding colour for taps outside the
    frame, rounded to whole grey levels as a uint8 crop is. The arithmetic is exact in float32 at OpenCV 4's 1/32-px
    positions (weights k/32, values below 256), so the crops are ``cv2.warpAffine``'s to the last grey level.
    Upsampling: ``interpolate(mode="bicubic", align_corners=False)``, OpenCV's ``INTER_CUBIC`` kernel (a = −0.75,
    half-pixel centres, replicated border).
    """

    def __init__(self, device: str, *, cuda_graphs: bool = True, cudnn_benchmark: bool = True):
        torch = _import_torch()
        self._torch = torch
        self._F = torch.nn.functional
        self.xp = torch  # the device arrays' namespace, for the decode math written once (siamrpn.select_anchor)
        self.device = device
        self._device = torch.device(device)
        self._cuda = self._device.type == "cuda"
        self.cuda_graphs = bool(cuda_graphs and self._cuda)
        self.cudnn_benchmark = cudnn_benchmark
        self._channels = torch.arange(3, device=self._device).view(1, 3, 1, 1)
        from edgetrack.tracking.crop import CROP_REQUEST_HEADER, opencv_rounds_positions  # noqa: PLC0415

        self._opencv_rounds = opencv_rounds_positions()  # which positions sample() computes: the host crop's
        self._header = CROP_REQUEST_HEADER  # the request's values before the crops' maps

    def sample(self, pixels, params, n: int, size: int):
        """(n, 3, size, size) float32 crops: ``pixels`` the region of :func:`~edgetrack.tracking.crop.crop_request`
        as a flat uint8 device tensor (rows of ``width`` pixels, BGR), ``params`` its vector as a float64 device
        tensor. The sample positions are computed here from the crops' maps, by
        :func:`~edgetrack.tracking.crop.sample_positions`' arithmetic (the installed OpenCV's: 1/32-px fixed point,
        or float32). No host synchronisation: what :class:`TorchFrameProgram` captures."""
        torch = self._torch
        width, height = params[0].long(), params[1].long()
        pad = params[2:5].float().view(1, 3, 1, 1)
        x0, y0 = params[5], params[6]
        kx, cx, ky, cy = params[self._header:self._header + 4 * n].view(4, n, 1)
        u = self._pixel_index(size)
        if self._opencv_rounds:  # OpenCV 4: (round(c·1024) + 16 + round(k·u·1024)) >> 5, in 1/32 px
            xs = ((torch.round(cx * 1024).long() + 16 + torch.round(kx * u * 1024).long()) >> 5).double() / 32
            ys = ((torch.round((ky * u + cy) * 1024).long() + 16) >> 5).double() / 32
        else:  # OpenCV 5: k·u + c in float32
            u32 = u.float()
            xs = (u32 * kx.float() + cx.float()).double()
            ys = (u32 * ky.float() + cy.float()).double()
        # Relative to the region, in float64 (exact), then float32 as the interpolation takes them.
        xs = (xs - x0).float().view(n, 1, 1, size)
        ys = (ys - y0).float().view(n, 1, size, 1)
        fx, fy = xs.floor(), ys.floor()
        wx, wy = xs - fx, ys - fy
        ix, iy = fx.long(), fy.long()

        def inside(i, limit):
            ok = (i >= 0) & (i < limit)
            return ok, torch.where(ok, i, 0)

        cols = [inside(ix, width), inside(ix + 1, width)]
        rows = [inside(iy, height), inside(iy + 1, height)]

        def tap(row, col):
            (row_ok, r), (col_ok, c) = row, col
            values = torch.take(pixels, (r * width + c) * 3 + self._channels).float()
            return torch.where(row_ok & col_ok, values, pad)

        # Every product and sum is exact at 1/32-px positions: the order of the terms does not matter.
        top = (1 - wx) * tap(rows[0], cols[0]) + wx * tap(rows[0], cols[1])
        bottom = (1 - wx) * tap(rows[1], cols[0]) + wx * tap(rows[1], cols[1])
        return ((1 - wy) * top + wy * bottom + 0.5).floor_()  # half up, as OpenCV rounds its fixed-point sums

    def _pixel_index(self, size: int):
        """0 .. size − 1 as a float64 device tensor, made once per size."""
        cache = self.__dict__.setdefault("_index_cache", {})
        if size not in cache:
            cache[size] = self._torch.arange(size, dtype=self._torch.float64, device=self._device)
        return cache[size]

    def crops(self, frame: np.ndarray, affines: np.ndarray, size: int, pad) -> object:
        """(N, 3, size, size) float32 crops of ``frame`` (uint8 H×W×3) on the device, in one call: crop ``n`` by
        the map ``affines[n]`` of :func:`~edgetrack.tracking.crop.crop_affine`, at OpenCV's sample positions,
        ``pad`` outside the frame."""
        from edgetrack.tracking.crop import crop_request  # noqa: PLC0415 - the tracking layer imports this module lazily

        region, params = crop_request(frame, affines, size, pad)
        torch = self._torch
        try:
            with torch.inference_mode():
                pixels = torch.from_numpy(np.ascontiguousarray(region).reshape(-1)).to(self._device)
                return self.sample(pixels, torch.from_numpy(params).to(self._device), len(affines), int(size))
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and friends
            raise BackendError(f"PyTorch failed to crop on {self.device!r}: {type(exc).__name__}: {exc}") from exc

    def upsample_bicubic(self, maps, size: int) -> object:
        """(N, size, size) float32: each of the (N, R, R) or (N, 1, R, R) ``maps`` resized as
        ``cv2.resize(m, (size, size), interpolation=cv2.INTER_CUBIC)`` resizes it."""
        torch = self._torch
        with torch.inference_mode():
            m = maps.to(device=self._device, dtype=torch.float32)
            m = m.reshape(m.shape[0], 1, m.shape[-2], m.shape[-1])
            return self._F.interpolate(m, size=(int(size), int(size)), mode="bicubic", align_corners=False)[:, 0]

    def max_rows(self, a) -> object:
        return a.amax(dim=1)

    def asarray(self, a: np.ndarray) -> object:
        return self._torch.from_numpy(np.ascontiguousarray(a)).to(self._device)

    def to_host(self, a) -> np.ndarray:
        if isinstance(a, np.ndarray):
            return a
        return np.ascontiguousarray(a.detach().cpu().numpy())

    def program(self, step) -> "TorchFrameProgram":
        """``step(pixels, params, state)`` as a :class:`TorchFrameProgram` on this device."""
        return TorchFrameProgram(self, step)


class TorchFrameProgram:
    """One frame's device work as one function, captured into one CUDA graph from its second call.

    ``step(pixels, params, state) -> out`` takes three device tensors — the uint8 region of the frame the crops
    read (flat), a float64 vector (the crops' positions and padding, then the decode's settings: whatever the
    tracking class packed) and the track's state (the template kernel) — and returns a 1-D device tensor; it must
    not synchronise with the host (no ``.item()``, no branching on a tensor's value). Each call copies the region
    and the vector into static device buffers (one host-to-device copy each, from pinned memory; the region's
    bytes only, up to the frame's size, so its shape may change from frame to frame while the graph's does not),
    copies the state in when it is a new tensor (a new ``init``), replays the graph, and copies the output back:
    one wait for the device per frame. The first call runs eagerly; a capture that raises leaves the program eager
    (:attr:`cuda_graph_error` says why), as :class:`TorchSession` does. On the CPU every call is eager.
    """

    def __init__(self, ops: TorchDeviceOps, step):
        self._torch = ops._torch
        self._ops = ops
        self._step = step
        self._device = ops._device
        self._cuda = ops._cuda
        self.cuda_graphs = ops.cuda_graphs
        self.cuda_graph_error: str | None = None
        self.runs = 0
        self._capture_at = _CAPTURE_AT_RUN  # the run that captures: the 2nd, or the one after new buffers
        self._lock = threading.Lock()
        self._stream = self._torch.cuda.Stream(device=self._device) if self._cuda else None
        self._graph = None
        self._pixels = self._params = self._state = self._out = None
        self._host_pixels = self._host_params = self._host_out = None
        self._state_source = None

    @property
    def mode(self) -> str:
        return "cuda-graph" if self._graph is not None else "eager"

    def __call__(self, region: np.ndarray, params: np.ndarray, state, capacity: int = 0) -> np.ndarray:
        """``step``'s output for this frame's ``region`` (uint8, any shape) and ``params`` (float64, 1-D), as a
        float64 numpy vector. ``capacity``: the most bytes a region can have (the frame's size), so that the
        static buffer is made once rather than grown, and the graph captured again, as the regions grow."""
        torch = self._torch
        params = np.asarray(params, dtype=np.float64)
        try:
            with self._lock, torch.inference_mode():
                self.runs += 1
                if not self._cuda:
                    pixels = torch.from_numpy(np.ascontiguousarray(region).reshape(-1))
                    out = self._step(pixels, torch.from_numpy(params), state)
                    return out.to(torch.float64).numpy().copy()
                with torch.cuda.device(self._device):
                    return self._run_cuda(region, params, state, capacity)
        except (InvalidArgumentError, BackendError):
            raise
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and friends
            raise BackendError(f"PyTorch failed to run the frame's crops, graphs and decode on {self._ops.device!r}: "
                               f"{type(exc).__name__}: {exc}") from exc

    def _buffers(self, nbytes: int, capacity: int, nparams: int, state) -> None:
        """Static device buffers (and their pinned host twins) big enough for this frame; a bigger frame or another
        vector length drops the graph, which the next call captures again."""
        torch = self._torch
        grow = self._pixels is None or self._pixels.numel() < nbytes
        if grow or self._params.numel() != nparams or self._state.shape != state.shape \
                or self._state.dtype != state.dtype:
            if self._graph is not None:
                _log.info("frame program on %s: new buffer sizes, captured again", self._ops.device)
            self._graph, self._out, self._host_out = None, None, None
            self._capture_at = self.runs + 1  # this call is eager again; the next one captures
            capacity = max(nbytes, capacity, 1 << 16, 0 if self._pixels is None else self._pixels.numel())
            self._pixels = torch.zeros(capacity, dtype=torch.uint8, device=self._device)
            self._host_pixels = torch.empty(capacity, dtype=torch.uint8, pin_memory=True)
            self._params = torch.zeros(nparams, dtype=torch.float64, device=self._device)
            self._host_params = torch.empty(nparams, dtype=torch.float64, pin_memory=True)
            self._state = torch.empty_like(state)
            self._state_source = None

    def _run_cuda(self, region: np.ndarray, params: np.ndarray, state, capacity: int) -> np.ndarray:
        torch = self._torch
        nbytes = region.size
        self._buffers(nbytes, capacity, params.size, state)
        host = self._host_pixels.numpy()
        host[:nbytes].reshape(region.shape)[...] = region
        self._host_params.numpy()[...] = params
        caller = torch.cuda.current_stream(self._device)
        stream = self._stream
        stream.wait_stream(caller)  # the state was made on the caller's stream
        with torch.cuda.stream(stream):
            self._pixels[:nbytes].copy_(self._host_pixels[:nbytes], non_blocking=True)
            self._params.copy_(self._host_params, non_blocking=True)
            if state is not self._state_source:
                self._state.copy_(state)
                self._state_source = state
            if self._graph is None and self.cuda_graphs and self.runs >= self._capture_at:
                self._try_capture()
            if self._graph is not None:
                self._graph.replay()
                out = self._out
            else:
                out = self._step(self._pixels, self._params, self._state)
            if self._host_out is None or self._host_out.shape != out.shape:
                self._host_out = torch.empty(out.shape, dtype=torch.float64, pin_memory=True)
            self._host_out.copy_(out, non_blocking=True)
        stream.synchronize()
        return self._host_out.numpy().copy()  # the pinned buffer is overwritten by the next frame

    def _try_capture(self) -> None:
        torch = self._torch
        current = torch.cuda.current_stream(self._device)
        try:
            with _CAPTURE_LOCK:
                side = torch.cuda.Stream(device=self._device)
                side.wait_stream(self._stream)
                benchmark = torch.backends.cudnn.benchmark
                torch.backends.cudnn.benchmark = self._ops.cudnn_benchmark or benchmark
                try:
                    with torch.cuda.stream(side):
                        for _ in range(_WARMUP_RUNS):
                            self._step(self._pixels, self._params, self._state)
                    self._stream.wait_stream(side)
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
                        out = self._step(self._pixels, self._params, self._state)
                finally:
                    torch.backends.cudnn.benchmark = benchmark
            self._graph, self._out = graph, out
            _log.info("frame program captured into one CUDA graph on %s", self._ops.device)
        except Exception as exc:  # noqa: BLE001 - whatever capture raises, eager still gives the right answer
            torch.cuda.set_stream(current)
            self._graph, self._out = None, None
            self.cuda_graphs = False
            cause = exc.__cause__ or exc.__context__
            self.cuda_graph_error = f"{type(exc).__name__}: {exc}" + (
                f" (after {type(cause).__name__}: {cause})" if cause is not None else "")
            _log.warning("frame program on %s stays eager: CUDA graph capture failed: %s", self._ops.device,
                         self.cuda_graph_error)
            try:
                torch.cuda.synchronize(self._device)
            except Exception:  # noqa: BLE001 - the eager run that follows reports a broken device itself
                pass

    def close(self) -> None:
        with self._lock:
            self._graph = self._out = self._pixels = self._params = self._state = None
            self._host_pixels = self._host_params = self._host_out = None
            self._state_source = None


# -- backend ---------------------------------------------------------------------------------------------------------
class TorchBackend:
    """Loads ``.onnx`` graphs into PyTorch through onnx2torch. ``device``: ``"cuda"`` (default), ``"cuda:N"`` or
    ``"cpu"``; CUDA that PyTorch cannot use is a :class:`~edgetrack.errors.BackendError`, never a CPU fall-back.

    ``cuda_graphs``: capture each session into a CUDA graph on its second run (default: on, unless
    :data:`ENV_CUDA_GRAPHS` says ``0``). ``channels_last``: run 4-D activations NHWC (default off, or
    :data:`ENV_CHANNELS_LAST`). ``cudnn_benchmark``: let cuDNN time its algorithms during the warm-up before a
    capture (default on; the flag is restored afterwards). ``device_tracking``: let the Tracker crop and decode
    on the device, each frame one :class:`TorchFrameProgram` (:meth:`tracking_ops`; default: on for CUDA devices
    where the tracking family gains from it, both families since the frame is one CUDA graph; off on the CPU,
    where OpenCV is the faster way; :data:`ENV_DEVICE_TRACKING` overrides the default, for every family).
    """

    name = "torch"
    package = "torch"
    default_device = "cuda"  # what this backend is for; the CPU works but ONNX Runtime is the CPU's backend

    def __init__(self, cuda_graphs: bool | None = None, channels_last: bool | None = None,
                 cudnn_benchmark: bool = True, device_tracking: bool | None = None):
        for what, value in (("cuda_graphs", cuda_graphs), ("channels_last", channels_last),
                            ("cudnn_benchmark", cudnn_benchmark), ("device_tracking", device_tracking)):
            if value is not None and not isinstance(value, bool):
                raise InvalidArgumentError(f"{what} must be True, False or None, got {value!r}")
        self.cuda_graphs = _env_flag(ENV_CUDA_GRAPHS, True) if cuda_graphs is None else cuda_graphs
        self.channels_last = _env_flag(ENV_CHANNELS_LAST, False) if channels_last is None else channels_last
        self.cudnn_benchmark = cudnn_benchmark
        self.device_tracking = device_tracking

    def tracking_ops(self, device: str, pays: bool = True) -> TorchDeviceOps | None:
        """Crops and decoding on ``device`` for the Tracker (:mod:`edgetrack.tracking.device`), or None to keep
        them on the host: see ``device_tracking``. ``pays``: whether the tracking family runs faster that way on a
        GPU (its ``device_tracking_pays``); the default then follows it."""
        torch = _import_torch()
        dev = self._device(torch, device)
        on = self.device_tracking
        if on is None:
            on = _env_flag(ENV_DEVICE_TRACKING, dev != "cpu" and pays)
        return TorchDeviceOps(dev, cuda_graphs=self.cuda_graphs, cudnn_benchmark=self.cudnn_benchmark) if on else None

    def is_available(self) -> bool:
        return all(module_available(module) for module, _, _ in _DEPENDENCIES)

    def missing_dependency_error(self):
        for module, package, fix in _DEPENDENCIES:
            if not module_available(module):
                return missing_dependency("the 'torch' backend", package, fix)
        return missing_dependency("the 'torch' backend", "torch", _TORCH_FIX)  # pragma: no cover

    def _device(self, torch, device: str) -> str:
        kind, index = parse_device(device)
        if kind == "cpu":
            return "cpu"
        if not torch.cuda.is_available():
            build = (f"a CPU-only build ({torch.__version__})" if torch.version.cuda is None
                     else f"{torch.__version__}, built for CUDA {torch.version.cuda}, finds no usable GPU")
            raise BackendError(
                f"device {device!r} needs CUDA, but this PyTorch is {build}",
                fix="install a CUDA build of PyTorch that matches your NVIDIA driver (check nvidia-smi and "
                    "CUDA_VISIBLE_DEVICES), or pass device='cpu'",
            )
        count = torch.cuda.device_count()
        if index >= count:
            raise BackendError(f"device {device!r} does not exist: PyTorch sees {count} GPU(s), "
                               f"cuda:0..cuda:{count - 1}",
                               fix="pick an index below the GPU count, or check CUDA_VISIBLE_DEVICES")
        return f"cuda:{index}"

    def load(self, graph_path: str | os.PathLike, device: str = "cuda") -> TorchSession:
        torch = _import_torch()
        onnx = _import_onnx()
        dev = self._device(torch, device)
        path = Path(graph_path)
        if not path.is_file():
            raise BackendError(f"graph file {str(path)!r} does not exist", fix="load graphs from a bundle folder")
        if path.suffix.lower() != ".onnx":
            raise BackendError(f"the 'torch' backend runs ONNX graphs; {path.name!r} is not one",
                               fix="run device files (.om, .mindir) with backend='acl' or 'mslite'")
        try:
            # External weights (weights.bin, deblur_weights.bin) are read from the graph's own folder.
            model = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001 - DecodeError, OSError, ValueError ...
            raise BackendError(f"cannot read ONNX graph {str(path)!r}: {type(exc).__name__}: {exc}",
                               fix="rebuild the bundle with `edgetrack convert`") from exc
        if not model.graph.node:
            raise BackendError(f"{str(path)!r} holds no ONNX graph (no nodes)",
                               fix="rebuild the bundle with `edgetrack convert`")
        initializers = {t.name for t in model.graph.initializer}
        inputs = []
        for value in model.graph.input:
            if value.name in initializers:
                continue
            tensor = value.type.tensor_type
            try:
                dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
            except Exception as exc:  # noqa: BLE001
                raise BackendError(f"graph {path.name!r} input {value.name!r} has an element type this backend "
                                   f"cannot feed ({tensor.elem_type})") from exc
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim) \
                if tensor.HasField("shape") else None
            inputs.append((value.name, dtype, shape))
        outputs = [o.name for o in model.graph.output]
        module, notes = convert_graph(model)
        del model
        try:
            module = module.to(dev)
            if self.channels_last and dev != "cpu":
                module = module.to(memory_format=torch.channels_last)
        except Exception as exc:  # noqa: BLE001 - out of memory, a broken driver
            raise BackendError(f"cannot move graph {path.name!r} to {dev!r}: {type(exc).__name__}: {exc}") from exc
        return TorchSession(module, path, dev, inputs, outputs, cuda_graphs=self.cuda_graphs,
                            channels_last=self.channels_last and dev != "cpu",
                            cudnn_benchmark=self.cudnn_benchmark, notes=notes)
