"""The NPU simulator: an Ascend bundle's graphs on the CPU, under the chip's constraints. What CI runs.

``backend="simulator"``, ``device="ascend310" | "ascend310b" | "ascend310p" | "ascend910"`` (or ``"npu"`` for an
Ascend bundle's own chip). A loaded graph behaves as the device graph would:

- **Static shapes.** The session takes exactly the inputs the device graph was built with (ATC's
  ``--input_shape``): names, shapes and dtypes; anything else is an :class:`~edgetrack.errors.InvalidArgumentError`
  naming the expected and the given shapes.
- **AIPP.** Inputs with AIPP take what the chip takes, uint8 NHWC BGR frames, and go through
  :meth:`edgetrack.ascend.aipp.AippConfig.apply` (the chip's arithmetic, fp16 out).
- **Supported operators.** :func:`edgetrack.ascend.ops.audit_graph` runs at load;
  an operator the chip's toolchain does not support raises :class:`~edgetrack.errors.UnsupportedOperatorError`
  naming the operator, the node and the chip.
- **fp16 arithmetic.** ATC's default ``--precision_mode=force_fp16`` runs every operator in fp16 (the AI Core's
  cube unit has no fp32 convolution: see :mod:`edgetrack.ascend.socs`). The simulator rewrites the graph so that
  every weight is rounded to fp16 and every operator's float output is rounded to fp16, each operator computing
  from fp16 operands and accumulating in fp32 inside, as the cube does (fp16 products are exact in fp32; results
  leave the cube's fp32 accumulator as fp16). Overflow *saturates* at ±65504, because that is the only overflow
  mode Huawei documents for these chips ("For the Atlas 200I/500 A2 inference products, Atlas inference products,
  and Atlas training products, only the saturation mode is supported": aclrtFloatOverflowMode, CANN runtime
  API). A saturating operator is reported (:class:`DeviceOverflowWarning`, :attr:`SimulatorSession.overflows`):
  on the device its result is wrong without any error.

  Why not onnxconverter-common's ``convert_float_to_float16`` (what :mod:`edgetrack.converters.precision` uses for
  CUDA)? ONNX Runtime's CPU provider has no fp16 kernels for most operators, so it wraps them in Cast nodes and
  then removes the fp16->fp32->fp16 Cast pairs between neighbours: the converted graph computes in fp32 from end
  to end (checked with onnxruntime 1.31: ``x * 1000`` stays 1e5 instead of overflowing). Explicit
  ``Cast(fp16) -> Cast(fp32) -> Clip`` after each operator is kept by every optimisation level.
- **Device memory.** Weights (fp16) + the peak of live activations (fp16, from a liveness walk over the
  shape-inferred graph) + the input/output buffers, against the chip's memory (:class:`~edgetrack.ascend.socs.Soc`);
  over budget is a :class:`~edgetrack.errors.BackendError` at load.
- **Latency: an estimate, not a measurement.** :meth:`SimulatorSession.estimate` counts the graph's work from
  its shapes (multiply-accumulates of Conv/ConvTranspose/MatMul/Gemm on the cube, with channels padded to the
  cube's C0 block of 16 (fp16) as the NC1HWC0 layout does; depthwise convolutions and every other operator's
  elements on the vector unit) and divides by the chip's published peak at the graph's precision times an assumed
  utilisation (:data:`DEFAULT_UTILISATION`). The vector unit is taken as 1/64 of the fp16 peak
  (:data:`VECTOR_SHARE`: Da Vinci cores do 16x16x16 fp16 MACs per cycle in the cube, 128 fp16 lanes in the
  vector unit). Not modelled: per-operator launch cost, memory bandwidth, AIPP, host<->device copies.

- **int8 bundles are simulated at fp16.** An int8 Ascend bundle's device graphs are AMCT's quantization of its ONNX
  graphs (:mod:`edgetrack.converters.onnx2amct`), made by a tool that is not here; its int8 rounding is not emulated.
  The simulator runs the ONNX graph at fp16 as above (what ATC computes the unquantized layers in), says so in
  :attr:`SimulatorSession.notes` and in every :meth:`SimulatorSession.estimate` (``simulated_precision``,
  ``note``); ``estimate(precision="int8")`` counts the cube at the chip's int8 peak.

A cpu/cuda bundle has no device build; the simulator builds one on the fly for the chip asked for (see
:mod:`edgetrack.backends._ascend`), so every shipped model can be tried on the device path on a laptop. What was
derived is in :attr:`SimulatorSession.notes` and logged at INFO on ``edgetrack.backends.simulator``.

.om and .mindir files are compiled for the chip and cannot run here: the simulator runs the ONNX graph a device
file is built from, which every Ascend bundle holds; a device file without it is a
:class:`~edgetrack.errors.BackendError`.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from edgetrack.ascend.aipp import AippConfig
from edgetrack.ascend.socs import Soc, get_soc
from edgetrack.backends import module_available
from edgetrack.backends._ascend import DeviceGraph, DeviceTensor, check_feeds, parse_ascend_device, resolve_graph
from edgetrack.errors import BackendError, BundleError, InvalidArgumentError, require

__all__ = [
    "SimulatorBackend",
    "SimulatorSession",
    "DeviceOverflowWarning",
    "GraphCost",
    "graph_cost",
    "estimate_latency",
    "estimate_bundle",
    "emulate_fp16",
    "session_for_model",
    "ESTIMATE_LABEL",
    "INT8_NOTE",
    "DEFAULT_UTILISATION",
    "VECTOR_SHARE",
    "FP16_MAX",
]

log = logging.getLogger(__name__)

INT8_NOTE = (
    "int8 bundle simulated at fp16: the device graph is AMCT's int8 quantization of this ONNX graph, which is not "
    "emulated here, so outputs are an fp16 device graph's, without int8's quantization error; latency estimates "
    "count fp16 unless estimate(precision='int8') is asked"
)

ESTIMATE_LABEL = "estimate, not a measurement"
# Share of the published peak a batch-1 tracker graph is assumed to reach. Small convolutions (3 input channels,
# 6x6 kernels on 22x22 maps) leave much of the 16x16x16 cube idle even after C0 padding is counted; a third of
# peak is the assumption, stated wherever an estimate is shown. Change it per call to see the range.
DEFAULT_UTILISATION = 0.35
VECTOR_SHARE = 1.0 / 64.0
FP16_MAX = 65504.0
# Smallest magnitude IEEE fp16 (round to nearest even) turns into inf: the threshold of a saturation event.
_FP16_OVERFLOW = 65520.0
# The cube's reduction block (C0, input channels) per precision: 16 fp16 or 32 int8 values (the NC1HWC0 format);
# its other two sides stay 16 (a 16x16x16 fp16 / 16x32x16 int8 cube), so output channels pad to 16.
_C0 = {"fp16": 16, "int8": 32}
_CUBE_N = 16
_PRECISIONS = tuple(_C0)
_DEFAULT_THREADS = 4

# Operators whose float output needs no rounding when their inputs are fp16 values: they move or select values.
_EXACT_OPS = frozenset({
    "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Concat", "Split", "Gather",
    "Expand", "Tile", "MaxPool", "GlobalMaxPool", "Relu", "Max", "Min", "ReduceMax", "ReduceMin", "DepthToSpace",
    "SpaceToDepth", "Constant", "Shape", "Size", "ConstantOfShape",
})
# Operators without arithmetic: no time in the latency estimate.
_NO_COMPUTE = frozenset({
    "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Concat", "Split", "Gather",
    "Expand", "Constant", "Shape", "Size", "ConstantOfShape", "Cast", "Dropout",
})
_POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
_GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum",
                           "ReduceMax", "ReduceMin"})


class DeviceOverflowWarning(RuntimeWarning):
    """An operator's result passed fp16's range: the chip saturates it at ±65504 and gives a wrong answer."""


def _onnx():
    return require("onnx", feature="the NPU simulator", extra="torch")


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _pad(n: int, block: int) -> int:
    return int(math.ceil(max(int(n), 1) / block) * block)


def _round_fp16(a: np.ndarray) -> np.ndarray:
    """Round to fp16 values the way the chip stores them: saturating at ±65504, kept as float32."""
    return np.clip(a, -FP16_MAX, FP16_MAX).astype(np.float16).astype(np.float32)


# -- what a graph costs -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphCost:
    """Work and memory of one graph, counted from its shapes.

    ``macs``: multiply-accumulates of Conv/ConvTranspose/MatMul/Gemm as the ONNX graph states them.
    ``cube_macs``: the same with input channels padded to the cube's C0 block and output channels to 16 (K and
    M/N for matrix products), depthwise
    convolutions excluded (they run on the vector unit). ``vector_ops``: element operations of everything else
    (depthwise MACs, activations, pooling windows, additions). Bytes at the device precision.
    """

    macs: int
    cube_macs: int
    vector_ops: int
    weight_bytes: int
    peak_activation_bytes: int
    nodes: int
    unknown_shapes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _infer(onnx, model):
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; the graph is then unusable for the chip too
        raise BundleError(f"ONNX shape inference failed on the graph: {exc}",
                          fix="export the graph with static shapes") from exc


def _shapes_and_types(onnx, inferred) -> tuple[dict, dict]:
    g = inferred.graph
    shapes, types = {}, {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        types[vi.name] = t.elem_type
        if t.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim)
            shapes[vi.name] = None if any(d <= 0 for d in dims) and dims else dims
    for t in g.initializer:
        shapes[t.name], types[t.name] = tuple(t.dims), t.data_type
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]], types[node.output[0]] = tuple(a.t.dims), a.t.data_type
    return shapes, types


def _attr(onnx, node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def graph_cost(model, precision: str = "fp16") -> GraphCost:
    """Count ``model``'s work (see :class:`GraphCost`) after ONNX shape inference."""
    if precision not in _C0:
        raise InvalidArgumentError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    onnx = _onnx()
    inferred = _infer(onnx, model)
    shapes, types = _shapes_and_types(onnx, inferred)
    g = inferred.graph
    c0 = _C0[precision]
    float_bytes = 1 if precision == "int8" else 2
    unknown = 0

    def nbytes(name: str) -> int:
        shape = shapes.get(name)
        if shape is None:
            return 0
        elem = types.get(name, 1)
        size = float_bytes if elem in (1, 10, 11, 16) else np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)).itemsize
        return _prod(shape) * size

    macs = cube = vector = 0
    for node in g.node:
        op = node.op_type
        out = shapes.get(node.output[0]) if node.output else None
        if op in _NO_COMPUTE:
            continue
        if out is None:
            unknown += 1
            continue
        if op in ("Conv", "ConvTranspose"):
            w = shapes.get(node.input[1])
            group = int(_attr(onnx, node, "group", 1))
            if not w:
                unknown += 1
                continue
            k = _prod(w[2:])
            if op == "Conv":
                cout, cin_g = int(w[0]), int(w[1])
                n = _prod(out)
                macs += n * cin_g * k
                cout_g = cout // max(group, 1)
                if group > 1 and cin_g == 1 and cout_g == 1:
                    vector += n * k  # depthwise: one channel per group leaves the cube's 16x16 block empty
                else:
                    pixels = n // max(cout, 1)
                    cube += pixels * group * _pad(cin_g, c0) * _pad(cout_g, _CUBE_N) * k
            else:
                x = shapes.get(node.input[0])
                if not x:
                    unknown += 1
                    continue
                cin, cout_g = int(w[0]), int(w[1])
                pixels = _prod(x) // max(cin, 1)
                macs += pixels * cin * cout_g * k
                cube += pixels * group * _pad(cin // max(group, 1), c0) * _pad(cout_g, _CUBE_N) * k
        elif op in ("MatMul", "Gemm"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if not a or not b:
                unknown += 1
                continue
            if op == "Gemm":
                m_, k_ = (a[1], a[0]) if _attr(onnx, node, "transA", 0) else (a[0], a[1])
                n_ = b[0] if _attr(onnx, node, "transB", 0) else b[1]
                batch = 1
            else:
                k_, m_, n_ = a[-1], (a[-2] if len(a) > 1 else 1), b[-1]
                batch = _prod(out[:-2]) if len(out) > 2 else 1
            macs += batch * m_ * n_ * k_
            cube += batch * _pad(m_, _CUBE_N) * _pad(n_, _CUBE_N) * _pad(k_, c0)
            if op == "Gemm" and len(node.input) > 2:
                vector += _prod(out)
        elif op in _POOLS:
            vector += _prod(out) * _prod(_attr(onnx, node, "kernel_shape", [1]))
        elif op in _GLOBAL_POOLS:
            x = shapes.get(node.input[0])
            vector += _prod(x) if x else _prod(out)
        else:
            vector += sum(_prod(shapes[o]) for o in node.output if shapes.get(o))

    # Peak of live activations: walk the nodes in order, a tensor lives from its producer to its last consumer.
    weights = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    weight_bytes = sum(nbytes(n) for n in weights)
    uses: dict[str, int] = {}
    for node in g.node:
        for i in node.input:
            if i and i not in weights:
                uses[i] = uses.get(i, 0) + 1
    keep = {o.name for o in g.output}
    live = {i.name: nbytes(i.name) for i in g.input if i.name not in weights}
    current = peak = sum(live.values())
    for node in g.node:
        if node.op_type == "Constant":
            continue
        for o in node.output:
            if o and o not in live:
                live[o] = nbytes(o)
                current += live[o]
        peak = max(peak, current)
        for i in node.input:
            if i in uses:
                uses[i] -= 1
                if uses[i] == 0 and i not in keep and i in live:
                    current -= live.pop(i)
    return GraphCost(macs=int(macs), cube_macs=int(cube), vector_ops=int(vector), weight_bytes=int(weight_bytes),
                     peak_activation_bytes=int(peak), nodes=len(g.node), unknown_shapes=unknown)


def estimate_latency(cost: GraphCost, soc, precision: str = "fp16",
                     utilisation: float = DEFAULT_UTILISATION) -> dict:
    """Device time of one run of a graph with ``cost`` on ``soc``: an estimate, never a measurement.

    A MAC counts as two operations, the convention of the published TOPS/TFLOPS figures (the Ascend 910's
    256 TFLOPS fp16 is 32 cores x 4096 cube MACs x 2 x 1 GHz).
    """
    soc = get_soc(soc)
    if not (isinstance(utilisation, (int, float)) and 0 < utilisation <= 1):
        raise InvalidArgumentError(f"utilisation must be in (0, 1], got {utilisation!r}")
    peak = soc.peak_ops_per_second(precision)
    vector_rate = soc.peak_ops_per_second("fp16") * VECTOR_SHARE
    cube_s = 2.0 * cost.cube_macs / (peak * utilisation)
    vector_s = cost.vector_ops / (vector_rate * utilisation)
    return {
        "label": ESTIMATE_LABEL,
        "chip": soc.name,
        "precision": precision,
        "estimated_ms": (cube_s + vector_s) * 1e3,
        "cube_ms": cube_s * 1e3,
        "vector_ms": vector_s * 1e3,
        "macs": cost.macs,
        "cube_macs": cost.cube_macs,
        "vector_ops": cost.vector_ops,
        "peak_tops": peak / 1e12,
        "assumed_utilisation": float(utilisation),
        "assumed_vector_share_of_peak": VECTOR_SHARE,
        "assumptions": (
            f"{soc.chip} published peak {peak / 1e12:g} TOPS at {precision} ({soc.reference_product}); "
            f"{utilisation:.0%} of peak reached; cube input channels padded to C0={_C0[precision]}, output "
            "channels to 16; vector unit at 1/64 of the fp16 peak; per-operator launch cost, memory bandwidth, "
            "AIPP and host<->device copies not modelled"
        ),
    }


# -- fp16 as the chip computes it -----------------------------------------------------------------------------------
def emulate_fp16(model) -> tuple[object, list[tuple[str, str]]]:
    """A copy of ``model`` that computes as the chip does in fp16 (see the module docstring).

    Returns the new model and its probes: ``(output name, where)`` pairs, each output the largest magnitude an
    operator produced before rounding (a saturation when at least 65520, which IEEE fp16 would turn into inf).
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    _, types = _shapes_and_types(onnx, _infer(onnx, m))
    FLOAT = TensorProto.FLOAT

    for i, t in enumerate(g.initializer):
        if t.data_type == FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(_round_fp16(numpy_helper.to_array(t)), t.name))
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(_round_fp16(numpy_helper.to_array(a.t)), a.t.name))

    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)
    lo, hi = "__edgetrack_fp16_lo", "__edgetrack_fp16_hi"
    if opset >= 11:
        g.initializer.extend([numpy_helper.from_array(np.float32(-FP16_MAX), lo),
                              numpy_helper.from_array(np.float32(FP16_MAX), hi)])
    probes: list[tuple[str, str]] = []
    counter = [0]

    def rounding(src: str, dst: str, where: str) -> list:
        counter[0] += 1
        k = counter[0]
        h, r, a, p = (f"{dst}__fp16_{k}", f"{dst}__fp16r_{k}", f"{dst}__abs_{k}", f"__edgetrack_absmax_{k}")
        clip = (helper.make_node("Clip", [r, lo, hi], [dst], name=f"__fp16_clip_{k}") if opset >= 11 else
                helper.make_node("Clip", [r], [dst], name=f"__fp16_clip_{k}", min=-FP16_MAX, max=FP16_MAX))
        probes.append((p, where))
        return [
            helper.make_node("Cast", [src], [h], name=f"__fp16_cast_{k}", to=TensorProto.FLOAT16),
            helper.make_node("Cast", [h], [r], name=f"__fp16_back_{k}", to=FLOAT),
            clip,
            helper.make_node("Abs", [src], [a], name=f"__fp16_abs_{k}"),
            helper.make_node("ReduceMax", [a], [p], name=f"__fp16_max_{k}", keepdims=0),
        ]

    inits = {t.name for t in g.initializer}
    renamed: dict[str, str] = {}
    nodes = []
    for vi in g.input:
        if vi.name not in inits and types.get(vi.name) == FLOAT:
            # The device takes an fp32 input and converts it to fp16 before the first operator.
            renamed[vi.name] = f"{vi.name}__device_fp16"
            nodes += rounding(vi.name, renamed[vi.name], f"input {vi.name!r}")
    for i, node in enumerate(g.node):
        for j, name in enumerate(node.input):
            if name in renamed:
                node.input[j] = renamed[name]
        exact = node.op_type in _EXACT_OPS or (
            node.op_type == "Resize" and (_attr(onnx, node, "mode", b"nearest") in (b"nearest", "nearest")))
        if exact or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            nodes.append(node)
            continue
        after = []
        for j, out in enumerate(node.output):
            if out and types.get(out) == FLOAT:
                node.output[j] = f"{out}__fp32_{i}"
                after += rounding(node.output[j], out, f"{node.op_type} node {node.name or '#' + str(i)!r}")
        nodes.append(node)
        nodes += after
    del g.node[:]
    g.node.extend(nodes)
    g.output.extend(helper.make_tensor_value_info(p, FLOAT, []) for p, _ in probes)
    return m, probes


# -- sessions -------------------------------------------------------------------------------------------------------
def _check_static(graph: DeviceGraph, onnx, model) -> None:
    """The ONNX graph's inputs must be the static shapes the device graph was built for."""
    inits = {t.name for t in model.graph.initializer}
    declared = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)
        declared[vi.name] = dims
    for t in graph.model_inputs:
        dims = declared.get(t.name)
        if dims is None or dims != tuple(t.shape):
            raise BundleError(
                f"{graph.where()}: the ONNX graph's input {t.name!r} is {dims}, the manifest says {tuple(t.shape)}; "
                "a device graph has one static shape per input",
                fix="rebuild the bundle with edgetrack convert",
            )
    for name, aipp in graph.aipp.items():
        dev = next((t for t in graph.inputs if t.name == name), None)
        model_shape = declared.get(name)
        if dev is None or model_shape is None or len(model_shape) != 4 or \
                tuple(dev.shape) != aipp.device_input_shape(model_shape[0]) or \
                (model_shape[2], model_shape[3]) != (aipp.src_image_size_h, aipp.src_image_size_w):
            raise BundleError(
                f"{graph.where()}: AIPP for input {name!r} ({aipp.describe()}) does not fit the graph input "
                f"{model_shape} / device input {dev.describe() if dev else None}",
                fix="rebuild the bundle with edgetrack convert",
            )


class SimulatorSession:
    """One graph as the chip would run it. ``run(feeds)`` takes :attr:`device_inputs` exactly.

    :meth:`estimate` gives the estimated device latency (an estimate, not a measurement), :meth:`memory` the
    device memory estimate, :attr:`audit` the operator audit's findings, :attr:`notes` what was derived on the fly,
    :attr:`overflows` the operators that saturated in the last run.
    """

    def __init__(self, graph: DeviceGraph, model, *, utilisation: float = DEFAULT_UTILISATION,
                 memory_budget_bytes: int | None = None, threads: int | None = None):
        onnx = _onnx()
        from edgetrack.ascend.ops import audit_graph

        self.graph = graph
        self.soc: Soc = graph.soc
        self.name = graph.name
        self.precision = "fp16"
        self.utilisation = float(utilisation)
        notes = list(graph.notes)
        if graph.precision == "int8":
            notes.append(INT8_NOTE)
        if graph.on_the_fly and graph.bundle_path is not None:
            from edgetrack.converters.onnx2om import rewrite_nearest_resize

            notes += rewrite_nearest_resize(model)  # the converter's in-place rewrite, proven exact there
        self._what = f"{graph.where()} on {self.soc.name} (simulated)"
        # The chip's toolchain refuses the graph before anything else would happen on the device.
        self.audit = tuple(audit_graph(model, self.soc, graph=graph.name))
        _check_static(graph, onnx, model)
        self.cost = graph_cost(model, self.precision)
        self._memory = self._check_memory(memory_budget_bytes)
        device_model, self._probes = emulate_fp16(model)
        self.notes = tuple(notes)
        for note in self.notes:
            log.info("%s: %s", self._what, note)

        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(_DEFAULT_THREADS, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the emulation's unused Clip bounds are reported as warnings otherwise
        try:
            self._ort = ort.InferenceSession(device_model.SerializeToString(), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind types
            raise BackendError(f"the simulator could not load {self._what}: {exc}") from exc
        self.device_inputs: dict[str, DeviceTensor] = {t.name: t for t in graph.inputs}
        self.input_names = tuple(t.name for t in graph.inputs)
        self.output_names = tuple(t.name for t in graph.outputs) or tuple(
            o.name for o in model.graph.output)
        self._ort_outputs = list(self.output_names) + [p for p, _ in self._probes]
        self._aipp: Mapping[str, AippConfig] = dict(graph.aipp)
        self._lock = threading.Lock()
        self._warned = False
        self.overflows: dict[str, float] = {}

    # -- running ----------------------------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = check_feeds(feeds, self.graph.inputs, self._what)
        ort_feeds = {}
        for t in self.graph.inputs:
            x = feeds[t.name]
            aipp = self._aipp.get(t.name)
            ort_feeds[t.name] = aipp.apply(x).astype(np.float32) if aipp is not None else x
        try:
            values = self._ort.run(self._ort_outputs, ort_feeds)
        except Exception as exc:
            raise BackendError(f"the simulator failed to run {self._what}: {exc}") from exc
        n = len(self.output_names)
        self._record_overflow(values[n:])
        return dict(zip(self.output_names, values[:n]))

    def _record_overflow(self, maxima) -> None:
        over = {where: float(v) for (_, where), v in zip(self._probes, maxima) if not float(v) < _FP16_OVERFLOW}
        with self._lock:
            self.overflows = over
            if not over or self._warned:
                return
            self._warned = True
        worst = max(over.items(), key=lambda kv: kv[1])
        warnings.warn(DeviceOverflowWarning(
            f"{self._what}: {len(over)} operator(s) passed fp16's range (largest: {worst[0]} reached "
            f"{worst[1]:.4g} > 65504); {self.soc.chip} saturates them at ±65504 (its only overflow mode), so the "
            "device's results differ from fp32. Scale the values down inside the graph (e.g. fold an output scale "
            "into the weights before the operator) to run this model on the chip"), stacklevel=3)

    # -- what the chip would need ------------------------------------------------------------------------------
    def _check_memory(self, budget: int | None) -> dict:
        io = sum(_prod(t.shape) * np.dtype(t.dtype).itemsize for t in self.graph.inputs) + sum(
            _prod(t.shape) * 4 for t in self.graph.outputs)
        total = self.cost.weight_bytes + self.cost.peak_activation_bytes + io
        limit = int(budget) if budget is not None else self.soc.device_memory_bytes
        mib = 1 << 20
        memory = {
            "label": ESTIMATE_LABEL,
            "weight_bytes": self.cost.weight_bytes,
            "peak_activation_bytes": self.cost.peak_activation_bytes,
            "io_buffer_bytes": io,
            "total_bytes": total,
            "budget_bytes": limit,
            "chip": self.soc.name,
        }
        if total > limit:
            raise BackendError(
                f"{self._what} needs about {total / mib:.1f} MiB of device memory (weights "
                f"{self.cost.weight_bytes / mib:.1f} MiB fp16 + peak activations "
                f"{self.cost.peak_activation_bytes / mib:.1f} MiB + I/O buffers {io / mib:.1f} MiB), more than the "
                f"{limit / mib:.0f} MiB budget of {self.soc.chip} ({self.soc.reference_product})",
                fix="use a smaller model variant or fewer search scales, or a chip with more memory",
            )
        return memory

    def memory(self) -> dict:
        """The device memory estimate (bytes) checked at load."""
        return dict(self._memory)

    def estimate(self, precision: str | None = None, utilisation: float | None = None) -> dict:
        """Estimated device latency of one :meth:`run`: a dict with ``estimated_ms``, ``macs``,
        ``assumed_utilisation`` and ``label`` ("estimate, not a measurement"); for a graph of an int8 bundle also
        ``simulated_precision`` and ``note`` (:data:`INT8_NOTE`)."""
        cost = self.cost if precision in (None, self.precision) else graph_cost(self._source_model(), precision)
        out = estimate_latency(cost, self.soc, precision or self.precision, utilisation or self.utilisation)
        out["graph"] = self.name
        if self.graph.precision == "int8":
            out["simulated_precision"] = self.precision
            out["note"] = INT8_NOTE
        return out

    def _source_model(self):
        onnx = _onnx()
        if self.graph.onnx_path is None:
            raise BackendError(f"{self._what}: no ONNX graph to recount at another precision")
        return onnx.load(str(self.graph.onnx_path))

    def __repr__(self) -> str:
        return f"SimulatorSession({self.name!r} on {self.soc.name}, inputs {[t.describe() for t in self.graph.inputs]})"


def session_for_model(model, soc, *, name: str = "graph", aipp_by_rank: Mapping[int, AippConfig] | None = None,
                      **options) -> SimulatorSession:
    """A :class:`SimulatorSession` for an in-memory ONNX ``model`` (what an OM file embeds: the graph, the chip and
    its static AIPP, as ``aipp_by_rank``: input index -> :class:`AippConfig`)."""
    onnx = _onnx()
    soc = get_soc(soc)
    aipp_by_rank = dict(aipp_by_rank or {})
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    model_inputs, inputs, aipp = [], [], {}
    for rank, vi in enumerate(graph_inputs):
        t = vi.type.tensor_type
        dims = tuple(d.dim_value for d in t.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        model_inputs.append(DeviceTensor(vi.name, dims, dtype, "NCHW" if len(dims) == 4 else "ND"))
        if rank in aipp_by_rank:
            aipp[vi.name] = aipp_by_rank[rank]
            inputs.append(DeviceTensor(vi.name, aipp[vi.name].device_input_shape(dims[0]), "uint8", "NHWC"))
        else:
            inputs.append(model_inputs[-1])
    outputs = tuple(
        DeviceTensor(vi.name, tuple(d.dim_value for d in vi.type.tensor_type.shape.dim),
                     onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name)
        for vi in model.graph.output)
    graph = DeviceGraph(name=name, soc=soc, soc_version=soc.default_soc_version, inputs=tuple(inputs),
                        outputs=outputs, model_inputs=tuple(model_inputs), aipp=aipp)
    return SimulatorSession(graph, model, **options)


class SimulatorBackend:
    """Runs bundle graphs as an Ascend chip would, on the CPU (see the module docstring).

    ``utilisation``: the share of peak assumed by latency estimates. ``memory_budget_bytes``: overrides the
    chip's device memory (to see how a model fits a smaller board). ``threads``: ONNX Runtime threads per graph.
    """

    name = "simulator"
    default_device = "npu"  # the bundle's own chip

    def __init__(self, *, utilisation: float = DEFAULT_UTILISATION, memory_budget_bytes: int | None = None,
                 threads: int | None = None):
        if not (isinstance(utilisation, (int, float)) and not isinstance(utilisation, bool) and 0 < utilisation <= 1):
            raise InvalidArgumentError(f"utilisation must be a number in (0, 1], got {utilisation!r}")
        if memory_budget_bytes is not None and (not isinstance(memory_budget_bytes, int) or memory_budget_bytes <= 0):
            raise InvalidArgumentError(f"memory_budget_bytes must be a positive integer or None, got "
                                       f"{memory_budget_bytes!r}")
        self.utilisation = float(utilisation)
        self.memory_budget_bytes = memory_budget_bytes
        self.threads = threads

    @property
    def package(self) -> str:
        missing = [m for m in ("onnx", "onnxruntime") if not module_available(m)]
        return " ".join(missing or ["onnx", "onnxruntime"])

    def is_available(self) -> bool:
        return module_available("onnx") and module_available("onnxruntime")

    def load(self, graph_path: str | os.PathLike, device: str = "npu") -> SimulatorSession:
        soc, _ = parse_ascend_device(device, self.name)
        graph = resolve_graph(graph_path, soc, backend=self.name)
        if graph.onnx_path is None:
            raise BackendError(
                f"the simulator cannot run {str(graph.device_file or graph_path)!r}: an .om/.mindir file is "
                "compiled for the chip and runs only there, and no ONNX graph it was built from is at hand",
                fix="run it on the device with backend='acl' (OM) or 'mslite' (MindIR), or simulate the bundle's "
                    "ONNX graph (every bundle edgetrack convert writes holds them)",
            )
        onnx = _onnx()
        model = onnx.load(str(graph.onnx_path))
        return SimulatorSession(graph, model, utilisation=self.utilisation,
                                memory_budget_bytes=self.memory_budget_bytes, threads=self.threads)


def estimate_bundle(bundle, chip=None, *, precision: str = "fp16",
                    utilisation: float = DEFAULT_UTILISATION) -> dict:
    """Estimated device latency of every graph of ``bundle`` (a :class:`~edgetrack.bundle.Bundle` or folder) on
    ``chip`` (None: an Ascend bundle's own chip). ``per_frame_ms`` sums the graphs run per tracked frame (all but
    ``template``, which runs once at init). Labelled: an estimate, not a measurement."""
    from edgetrack.bundle import Bundle, load_bundle

    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    soc = None if chip is None else get_soc(chip)
    graphs = {}
    onnx = _onnx()
    for name in b.manifest.graphs:
        graph = resolve_graph(b.graph_path(name), soc, backend="simulator")
        cost = graph_cost(onnx.load(str(graph.onnx_path)), precision)
        graphs[name] = estimate_latency(cost, graph.soc, precision, utilisation)
    per_frame = [g for g in graphs if g != "template"]
    first = next(iter(graphs.values()))
    extra = {"note": INT8_NOTE} if b.manifest.precision == "int8" and precision != "int8" else {}
    return {
        "label": ESTIMATE_LABEL,
        "bundle": str(b.path),
        "model": b.manifest.model,
        "chip": first["chip"],
        "precision": precision,
        "assumed_utilisation": float(utilisation),
        "graphs": graphs,
        "per_frame_graphs": per_frame,
        "per_frame_ms": sum(graphs[g]["estimated_ms"] for g in per_frame),
        "init_ms": graphs["template"]["estimated_ms"] if "template" in graphs else 0.0,
        **extra,
    }
