"""fp32 ONNX graphs -> fp16 or int8 graphs, checked against the fp32 graphs and the framework.

One step of the converter chain (ONNX -> ONNX), run by :func:`edgetrack.converters.torch2onnx.tracker_bundle` after
the fp32 export. What each ``(target, precision)`` gets, and why:

=====================  ===============================================================================================
``cpu``, ``fp16``      **fp16 storage**: every weight tensor is stored as fp16 and cast back to fp32 by a ``Cast``
                       node that ONNX Runtime folds away when the session starts, so the file is about half the size
                       and the arithmetic is fp32 (manifest ``source.precision.compute = "fp32"``). ONNX Runtime's CPU
                       provider has no x86 fp16 convolution kernel: a graph computing in fp16 does load (its graph
                       optimiser wraps each op it cannot run in fp16 in Casts to fp32 and back), but it is no faster
                       and rounds every activation to fp16 for nothing.
``cuda``, ``fp16``     **fp16 compute** (onnxconverter-common's ``convert_float_to_float16``): template and search
                       compute in fp16 for onnxruntime-gpu's CUDA/TensorRT providers. Graph inputs and outputs stay
                       fp32 (``keep_io_types``): the runtime feeds the same float32 crops at every precision, the
                       manifest's TensorSpecs stay true, and the two boundary casts are negligible next to the
                       convolutions. The head stays fp32: it is well under 1% of the arithmetic, and its correlation
                       sums C·k² products (512·5·5 = 12 800 at the paper's width): raw scores in the thousands,
                       which can pass fp16's 65 504 before the 0.001 output scale brings them back.
``cpu|cuda``, ``int8`` **static post-training quantization** (``onnxruntime.quantization.quantize_static``, QDQ format,
                       per-channel weights, MinMax calibration on real crops cut by the model family's own
                       tracking code, see :func:`sample_crops`; SiamFC and SiamRPN alike). Template and search are
                       quantized (channel gates such as ECA's apart, see :func:`quantize_int8`), the head stays fp32
                       (same reason as above; TensorRT also wants int8 convolution weights to be constants, and the
                       head's kernel is a runtime input; ``apply_precision(int8_head=True)`` quantizes it too,
                       calibrated on what the fp32 template and search graphs make of the calibration crops).
                       ``cpu`` uses uint8 activations with int8 weights (ONNX Runtime's x86 choice); ``cuda`` uses
                       symmetric int8 activations and weights (what TensorRT's explicit quantization reads). QDQ with
                       per-channel axes needs opset 13, so int8 graphs are moved to opset 13 with onnx's version
                       converter. For Ascend the equivalent tool is AMCT (the CANN toolkit's model compression tool),
                       which calibrates the fp32 ONNX graph itself on the same kind of crops
                       (:func:`calibration_feeds`): :mod:`edgetrack.converters.onnx2amct`.
=====================  ===============================================================================================

Verification (:func:`apply_precision`): each low-precision graph against the fp32 ONNX graph and against the framework
(torch), on random inputs and on real crops (from ``verify_data``, else from ``calibration`` — other frames than the
calibration ones — else none), plus the whole chain (template -> search -> head) end to end. Errors are max abs and
max abs relative to the reference output's largest magnitude, per sample, worst sample reported. fp16 and int8 errors
have no right answer to hold them to: what matters is the AUC change (``benchmarks/precision_auc.py``). The
tolerances here are only sanity bounds that catch a broken conversion (overflow, a calibration set of blank frames):
:data:`SANITY_BOUNDS`.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from edgetrack.errors import ConversionError, DatasetError, InvalidArgumentError, require

__all__ = [
    "PRECISION_TARGETS",
    "SANITY_BOUNDS",
    "DEFAULT_CALIBRATION_FRAMES",
    "DEFAULT_VERIFY_FRAMES",
    "INT8_OPSET",
    "CropSet",
    "PrecisionResult",
    "sample_crops",
    "calibration_feeds",
    "fp16_storage",
    "fp16_compute",
    "ChannelGates",
    "channel_gates",
    "quantize_int8",
    "torch_reference",
    "ort_runner",
    "check_request",
    "apply_precision",
]

# Targets whose graphs are ONNX files run by ONNX Runtime: the only ones where precision is this module's job.
# Ascend's fp16 is ATC's --precision_mode and its int8 is AMCT (converters/onnx2amct.py): the device toolchain's
# business, calibrated on the crops calibration_feeds gives.
PRECISION_TARGETS = ("cpu", "cuda")
# Largest max_rel that still counts as "converted correctly" (see the module docstring: sanity, not accuracy).
# fp16 has a 10-bit mantissa (relative rounding 5e-4 per value): 1e-2 is 20x that. int8 per-channel QDQ on these
# graphs lands around 1e-2..5e-2 of the output scale (siamfc-tiny), 0.13..0.15 on siamrpn-eca's EfficientNet-B0
# (worst of 8 test-set crops per graph); 0.25 means the map is mostly quantization noise.
SANITY_BOUNDS = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.25}
DEFAULT_CALIBRATION_FRAMES = 200
DEFAULT_VERIFY_FRAMES = 8
INT8_OPSET = 13
# Weight tensors smaller than this stay fp32 in fp16 storage: they save nothing and some are scales/biases of
# a single value, where fp16 rounding is pure loss.
_MIN_FP16_ELEMENTS = 16
_FP16_MAX = 65504.0
_GRAPHS = ("template", "search", "head")
# Graphs each precision converts; the others are copied as fp32 (reasons in the module docstring).
_CONVERTED = {
    ("cpu", "fp16"): ("template", "search"),  # the head's only weight is its 1-element bias: nothing to halve
    ("cuda", "fp16"): ("template", "search"),
    ("cpu", "int8"): ("template", "search"),
    ("cuda", "int8"): ("template", "search"),
}


# ------------------------------------------------------------------------------------------------- real crops
@dataclass(frozen=True)
class CropSet:
    """Crops cut by the tracker's own code (the family's tracking class, :func:`edgetrack.tracker.tracking_class`), stored as uint8
    (the crops are whole pixel values, so this is lossless and 4x smaller than float32).

    ``z``: (N, 3, E, E) template crops of frame ``i - 1`` around its ground-truth box ((N, T, 3, E, E) when the
    tracker cuts T templates, SiamFC's ``scale_search="templates"``). ``x``: (N, S, 3, I, I) search
    crops of frame ``i`` around frame ``i - 1``'s box (the crops a tracker that followed perfectly would make; S is
    SiamFC's scale count, 1 for SiamRPN).
    ``z0``: (Q, 3, E, E) (or (Q, T, 3, E, E)) each sampled sequence's first-frame template; ``template_of[n]``
    indexes ``z0`` for sample ``n`` (the head pairs a sequence's initial kernel with later search features, as
    tracking does).
    ``provenance``: the data set spec, counts and the sampled (sequence, frame) pairs.
    """

    z: np.ndarray
    x: np.ndarray
    z0: np.ndarray
    template_of: np.ndarray
    provenance: dict

    def __len__(self) -> int:
        return len(self.z)

    def template(self, n: int) -> np.ndarray:
        return _template_batch(self.z[n])

    def search(self, n: int) -> np.ndarray:
        return self.x[n].astype(np.float32)

    def first_template(self, n: int) -> np.ndarray:
        return _template_batch(self.z0[self.template_of[n]])


def _template_batch(z: np.ndarray) -> np.ndarray:
    """One sample's template crop(s) as the template graph's float32 batch."""
    return (z[None] if z.ndim == 3 else z).astype(np.float32)


def _stored_templates(z: np.ndarray) -> np.ndarray:
    """``init``'s template batch as CropSet stores it: one crop as (3, E, E), several as (T, 3, E, E)."""
    return (z[0] if len(z) == 1 else z).astype(np.uint8)


def _usable(box) -> bool:
    return bool(np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0)


def _spread(total: int, bins: int) -> list[int]:
    """``total`` items over ``bins`` as evenly as possible; the remainder goes to evenly spaced bins."""
    counts = [total // bins] * bins
    extra = total - sum(counts)
    if extra:
        for i in np.linspace(0, bins - 1, extra).round().astype(int):
            counts[i] += 1
    return counts


def sample_crops(spec: str, frames: int, params, *, phase: float = 0.25) -> CropSet:
    """``frames`` (template, search) crop samples from the data set ``spec`` (``KIND:PATH[#SUBSET]``), spread
    evenly over its sequences (a synthetic set's sharp and blurred variants count as sequences of their own) and
    evenly over each sequence's frames. ``phase`` in [0, 1) shifts the frames picked inside each sequence, so two
    calls with different phases (calibration 0.25, verification 0.75) take different frames. ``params``: the
    family's tracking parameters; the crops are cut by that family's tracking class (:func:`edgetrack.tracker.tracking_class`).
    """
    from edgetrack.data import open_dataset
    from edgetrack.progress import progress
    from edgetrack.tracker import tracking_class

    logic_type = tracking_class(params)
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise InvalidArgumentError(f"the number of crop frames must be a positive integer, got {frames!r}")
    datasets = open_dataset(spec)
    sequences = [s for d in datasets for s in d.sequences if hasattr(s, "boxes")]
    if not sequences:
        raise DatasetError(
            f"data set {spec!r} holds no annotated tracking sequences (a deblurring set such as GoPro?)",
            fix="name a got10k:, otb:, vid: or synthetic: data set",
        )
    # Per sequence: its first usable box (the template frame) and the frames i whose frame i-1 has a usable box.
    plans = []
    for seq in sequences:
        usable = [i for i in range(len(seq)) if _usable(seq.boxes[i])]
        if not usable:
            continue
        first = usable[0]
        candidates = [i + 1 for i in usable if i + 1 < len(seq) and i >= first]
        if candidates:
            plans.append((seq, first, candidates))
    if not plans:
        raise DatasetError(
            f"data set {spec!r} has no sequence with two consecutive frames and a box on the first of them",
            fix="name a data set with annotated sequences of at least two frames",
        )
    if frames < len(plans):  # fewer samples than sequences: one frame from each of `frames` spread sequences
        keep = np.unique(np.linspace(0, len(plans) - 1, frames).round().astype(int))
        plans = [plans[i] for i in keep]
    counts = _spread(frames, len(plans))
    logic = logic_type(params)
    z, x, z0, template_of = [], [], [], []
    picked: dict[str, list[int]] = {}
    for (seq, first, candidates), k in progress(list(zip(plans, counts)), desc=f"crops from {spec}", unit="seq"):
        if k == 0:
            continue
        positions = ((np.arange(k) + phase) / k * len(candidates)).astype(int)
        indices = sorted({candidates[min(p, len(candidates) - 1)] for p in positions})
        z0.append(_stored_templates(logic.init(seq.frame(first), seq.boxes[first])))
        for i in indices:
            z.append(_stored_templates(logic.init(seq.frame(i - 1), seq.boxes[i - 1])))
            x.append(logic.search_crops(seq.frame(i)).astype(np.uint8))
            template_of.append(len(z0) - 1)
            picked.setdefault(f"{seq.dataset}/{seq.name}" if seq.dataset else seq.name, []).append(int(i))
    provenance = {
        "data": spec,
        "datasets": [d.name for d in datasets],
        "sequences": len(z0),
        "samples": len(z),
        "samples_asked": int(frames),
        "crops": f"{logic_type.__module__}.{logic_type.__qualname__}.init/search_crops at the ground-truth box of "
        "the previous frame; head inputs pair each sequence's first-frame kernel with the search features",
        "frames": picked,  # "data set/sequence" -> the frames i sampled from it
    }
    return CropSet(np.stack(z), np.stack(x), np.stack(z0), np.asarray(template_of), provenance)


_FEED_GRAPHS = ("template", "search", "head")


def calibration_feeds(crops: CropSet, graph: str, fp32_paths: Mapping[str, str | os.PathLike], *,
                      runners: Mapping[str, "Runner"] | None = None):
    """The calibration samples of ``graph`` (template, search or head), one feed dict (input name -> float32 array)
    per crop sample, lazily: template crops, search crops, or for the head what the fp32 template and search graphs
    (``fp32_paths``, or ``runners`` already made of them) give for each sample's sequence first-frame template and
    its search crops, as tracking pairs them. ONNX Runtime's int8 (:func:`apply_precision`) and AMCT's
    (:mod:`edgetrack.converters.onnx2amct`) calibrate on these."""
    if graph not in _FEED_GRAPHS:
        raise InvalidArgumentError(f"calibration samples exist for the graphs {_FEED_GRAPHS}, not {graph!r}")
    names = _input_names(Path(fp32_paths[graph]))
    if graph == "head":
        if runners is None:
            runners = {g: ort_runner(Path(fp32_paths[g])) for g in ("template", "search")}
        for k in range(len(crops)):
            kernel = np.asarray(runners["template"](crops.first_template(k)), np.float32)
            features = np.asarray(runners["search"](crops.search(k)), np.float32)
            yield dict(zip(names, (kernel, features)))
        return
    crop = crops.template if graph == "template" else crops.search
    for k in range(len(crops)):
        yield {names[0]: crop(k)}


# ------------------------------------------------------------------------------------------- graph conversions
def _onnx():
    return require("onnx", feature="converting ONNX graphs", extra="torch")


def _check(model, what: str):
    onnx = _onnx()
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ConversionError(f"the {what} graph fails onnx's checker: {exc}", fix="report this as a bug") from exc


def fp16_storage(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Store ``src``'s float32 weights as fp16, each followed by a ``Cast`` back to float32; compute stays fp32.

    ONNX Runtime's constant folding replaces each Cast of a constant by its fp32 result when a session starts, so
    the running graph is the fp32 graph with rounded weights, at the fp32 graph's speed. A tensor that fp16 cannot
    hold (a value beyond 65 504) stays fp32. Returns ``dst``.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    casts, kept = [], []
    for index, init in enumerate(list(graph.initializer)):
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            continue
        values = numpy_helper.to_array(init)
        if values.size < _MIN_FP16_ELEMENTS:
            continue
        if np.abs(values).max(initial=0.0) > _FP16_MAX:
            kept.append(init.name)
            continue
        name = init.name  # `init` is the stored message itself: read its name before replacing it
        stored = numpy_helper.from_array(values.astype(np.float16), f"{name}_fp16")
        graph.initializer[index].CopyFrom(stored)
        casts.append(helper.make_node("Cast", [stored.name], [name], name=f"{name}_to_fp32", to=TensorProto.FLOAT))
    # The casts read only initializers, so putting them first keeps the node list topologically sorted.
    for node in reversed(casts):
        graph.node.insert(0, node)
    _check(model, f"fp16-storage {Path(src).stem}")
    onnx.save(model, str(dst))
    return Path(dst)


def fp16_compute(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert ``src`` to compute in fp16 with onnxconverter-common, keeping float32 graph inputs and outputs."""
    onnx = _onnx()
    float16 = require("onnxconverter_common.float16", feature="fp16 ONNX graphs", package="onnxconverter-common",
                      extra="torch")
    with warnings.catch_warnings():
        # It warns once per weight below 1e-7 that it rounds up to 1e-7 (fp16's subnormal range): thousands of
        # lines for a trained network, each harmless, and the parity check measures the effect anyway.
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(
            onnx.load(str(src)),
            keep_io_types=True,
            # The library's default clamps constants to 1e4; fp16 holds up to 65 504, so clamp only there.
            max_finite_val=_FP16_MAX,
        )
    _check(model, f"fp16 {Path(src).stem}")
    onnx.save(model, str(dst))
    return Path(dst)


# Ops a channel gate's value passes through unchanged between its Sigmoid and the Mul that applies it.
_RESHAPES = ("Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Identity")
# How far back from a gate's Sigmoid its squeeze (the global pooling) may be: ECA's is pool, reshape, 1-D conv;
# squeeze-and-excitation's pool, conv, activation, conv.
_MAX_SQUEEZE_DEPTH = 8


@dataclass(frozen=True)
class ChannelGates:
    """Squeeze-and-excitation style channel gates of a graph (ECA in the paper's EfficientNet, SE in others):
    ``map * sigmoid(f(GlobalAveragePool(map)))``, one scale per channel.

    ``squeeze_nodes``: the nodes from the pooling to the gate (pool, 1-D conv or FCs, sigmoid, reshapes), kept in
    fp32 by :func:`quantize_int8`; ``gates``: the tensors holding the gate values as the ``Mul`` reads them.
    """

    squeeze_nodes: tuple[str, ...]
    gates: tuple[str, ...]


def channel_gates(model) -> ChannelGates:
    """The channel gates of the ONNX ``model`` (see :class:`ChannelGates`); none for a graph without them (SiamFC)."""
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    squeeze: list[str] = []
    gates: list[str] = []
    for node in graph.node:
        if node.op_type != "Mul":
            continue
        for tensor in node.input:
            path = []
            src = producer.get(tensor)
            while src is not None and src.op_type in _RESHAPES:
                path.append(src)
                src = producer.get(src.input[0])
            if src is None or src.op_type != "Sigmoid":
                continue
            path.append(src)
            for _ in range(_MAX_SQUEEZE_DEPTH):
                data = [i for i in src.input if i and i not in weights]
                src = producer.get(data[0]) if data else None
                if src is None:
                    break
                path.append(src)
                if src.op_type in ("GlobalAveragePool", "ReduceMean"):
                    squeeze.extend(n.name for n in path if n.name not in squeeze)
                    gates.append(tensor)
                    break
    return ChannelGates(tuple(squeeze), tuple(gates))


class _Feeds:
    """The ``CalibrationDataReader`` protocol (``get_next`` -> feed dict or None) over a generator of feeds."""

    def __init__(self, feeds):
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)


def quantize_int8(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    feeds,
    *,
    target: str = "cpu",
    work_dir: str | os.PathLike | None = None,
) -> Path:
    """Static post-training int8 quantization of ``src`` (QDQ, per-channel weights, MinMax calibration).

    ``feeds``: an iterable of input dicts (graph input name -> float32 array), the calibration samples.
    ``target``: ``"cpu"`` (uint8 activations, int8 weights) or ``"cuda"`` (symmetric int8 both, for TensorRT).
    The graph is moved to opset :data:`INT8_OPSET` and pre-processed (shape inference, Conv/BN folding) as ONNX
    Runtime's quantization guide asks. Returns ``dst``.

    Channel gates (:func:`channel_gates`: ECA in siamrpn-eca) are handled apart. Their squeeze path stays fp32 (a
    few hundred values per block, nothing to gain) and each gate is quantized over the sigmoid's whole range [0, 1]
    instead of the calibrated one. A gate scales a whole channel by a function of that channel's mean, and channel
    means move far more between scenes than single activations do: on siamrpn-eca, one test-set crop drove a
    pooled mean to 5.2 against a calibrated range of [-0.25, 1.77] (200 train-split crops), and the clipped gates
    that followed took the search features' error from about 0.15 to 0.34 of their scale.
    """
    import tempfile

    onnx = _onnx()
    from onnx import version_converter

    quant = require("onnxruntime.quantization", feature="int8 quantization", package="onnxruntime")
    if target not in PRECISION_TARGETS:
        raise InvalidArgumentError(f"int8 quantization here is for targets {PRECISION_TARGETS}, got {target!r}")
    with tempfile.TemporaryDirectory(prefix="edgetrack-int8-", dir=work_dir) as tmp:
        model = onnx.load(str(src))
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if opset < INT8_OPSET:
            model = version_converter.convert_version(model, INT8_OPSET)
        moved = Path(tmp) / "opset.onnx"
        prepared = Path(tmp) / "prepared.onnx"
        onnx.save(model, str(moved))
        quant.quant_pre_process(str(moved), str(prepared))
        symmetric = target == "cuda"
        gates = channel_gates(onnx.load(str(prepared), load_external_data=False))
        extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
        if gates.gates:
            # A sigmoid's range, whatever calibration saw (symmetric int8 for cuda makes it [-1, 1]: a step of
            # 1/127, still under 1 % of a channel scale).
            extra["TensorQuantOverrides"] = {g: [{"rmin": np.float32(0), "rmax": np.float32(1)}] for g in gates.gates}
        try:
            quant.quantize_static(
                str(prepared),
                str(dst),
                _Feeds(feeds),
                quant_format=quant.QuantFormat.QDQ,
                per_channel=True,
                activation_type=quant.QuantType.QInt8 if symmetric else quant.QuantType.QUInt8,
                weight_type=quant.QuantType.QInt8,
                calibrate_method=quant.CalibrationMethod.MinMax,
                nodes_to_exclude=list(gates.squeeze_nodes),
                # Not CalibMaxIntermediateOutputs: in onnxruntime up to at least 1.31 it drops the ranges collected
                # before each flush (onnxruntime#18893). MinMax keeps only per-tensor min/max per sample anyway.
                extra_options=extra,
            )
        except ValueError as exc:
            raise ConversionError(f"int8 calibration of {Path(src).name!r} failed: {exc}",
                                  fix="check that the calibration data set yields crops (--calibration)") from exc
    model = onnx.load(str(dst))
    # The pre-processing declares ONNX Runtime's own operator domains; keep only those a node uses, so other
    # runtimes (TensorRT) do not see imports they do not know.
    used = {n.domain for n in model.graph.node}
    kept = [o for o in model.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    _check(model, f"int8 {Path(src).stem}")
    onnx.save(model, str(dst))
    return Path(dst)


# --------------------------------------------------------------------------------------------------- checking
Runner = Callable[..., np.ndarray]


def torch_reference(model, join: bool = True) -> dict[str, Runner]:
    """Graph name -> function of float32 arrays returning the torch module's output as an array (``join`` False:
    the list of its outputs, in the graph's order)."""
    import torch

    from edgetrack.converters.torch2onnx import family_of

    modules = family_of(model).torch_module().graph_modules(model)

    def runner(module):
        def run(*arrays):
            with torch.no_grad():
                out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
            outputs = [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]
            return _joined(outputs) if join else outputs

        return run

    return {name: runner(m) for name, m in modules.items()}


def ort_runner(path: str | Path, join: bool = True) -> Runner:
    """The ONNX graph at ``path`` in ONNX Runtime (CPU) as a function of its input arrays, in the graph's order,
    returning its outputs joined into one array (``join`` False: the list of outputs)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*arrays):
        outputs = session.run(None, dict(zip(names, arrays)))
        return _joined(outputs) if join else outputs

    return run


def _joined(outputs: list) -> np.ndarray:
    """A graph's outputs as one array (SiamRPN's head has two, cls and loc): compared as one vector."""
    return outputs[0] if len(outputs) == 1 else np.concatenate([np.ravel(o) for o in outputs])


def _input_names(path: Path) -> list[str]:
    onnx = _onnx()
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in weights]


def _memo(runner: Runner) -> Runner:
    """``runner`` remembering its outputs by the identity of its inputs: the chain rows reuse the per-graph rows'
    search outputs instead of running the search graph (the expensive one) twice. The sample lists keep the inputs
    alive, so their ids stay unique for the memo's lifetime."""
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def run(*arrays):
        key = tuple(id(a) for a in arrays)
        if key not in cache:
            cache[key] = runner(*arrays)
        return cache[key]

    return run


def _chain(runners: Mapping[str, Runner]) -> Runner:
    def run(z, x):
        return runners["head"](runners["template"](z), runners["search"](x))

    return run


def _compare(reference: Runner, test: Runner, samples: list[tuple], bound: float) -> dict:
    max_abs = max_rel = scale = 0.0
    for inputs in samples:
        expected = np.asarray(reference(*inputs), dtype=np.float64)
        got = np.asarray(test(*inputs), dtype=np.float64)
        if got.shape != expected.shape:
            raise ConversionError(f"a converted graph gives shape {got.shape}, its reference {expected.shape}")
        s = float(np.max(np.abs(expected)))
        a = float(np.max(np.abs(got - expected))) if np.all(np.isfinite(got)) else math.inf
        max_abs, scale = max(max_abs, a), max(scale, s)
        max_rel = max(max_rel, a / s if s > 0 else a)
    return {
        "max_abs": max_abs,
        "max_rel": max_rel,
        "scale": scale,
        "samples": len(samples),
        "tolerance": bound,
        "passed": bool(max_rel <= bound),
    }


def _random_samples(reference: Mapping[str, Runner], params, seed: int = 2) -> dict[str, list[tuple]]:
    rng = np.random.default_rng(seed)
    e, i = params.exemplar_size, params.instance_size
    s, t = int(getattr(params, "search_batch", 1)), int(getattr(params, "template_batch", 1))
    z = (rng.random((t, 3, e, e)) * 255).astype(np.float32)
    x = (rng.random((s, 3, i, i)) * 255).astype(np.float32)
    kernel = np.asarray(reference["template"](z), np.float32)
    features = np.asarray(reference["search"](x), np.float32)
    return {"template": [(z,)], "search": [(x,)], "head": [(kernel, features)], "chain": [(z, x)]}


def _crop_samples(crops: CropSet, fp32: Mapping[str, Runner]) -> dict[str, list[tuple]]:
    n = range(len(crops))
    heads = [(fp32["template"](crops.first_template(k)), fp32["search"](crops.search(k))) for k in n]
    return {
        "template": [(crops.template(k),) for k in n],
        "search": [(crops.search(k),) for k in n],
        "head": heads,
        "chain": [(crops.first_template(k), crops.search(k)) for k in n],
    }


# ---------------------------------------------------------------------------------------------------- the step
@dataclass(frozen=True)
class PrecisionResult:
    """What :func:`apply_precision` adds to a bundle: graph files, parity stages and manifest entries."""

    paths: dict[str, Path]
    parity: dict[str, dict]
    source: dict
    tools: dict
    notes: str


def _library_versions(precision: str, target: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    names = {("cuda", "fp16"): ("onnxconverter-common",), ("cpu", "int8"): ("onnxruntime",),
             ("cuda", "int8"): ("onnxruntime",)}.get((target, precision), ())
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - the conversion would have failed first
            pass
    return out


def check_request(precision: str, target: str, calibration: str | None = None) -> None:
    """Refuse, before any work, a precision/target pair this module cannot build or int8 without calibration data."""
    if precision not in SANITY_BOUNDS:
        raise InvalidArgumentError(f"precision must be one of {sorted(SANITY_BOUNDS)}, got {precision!r}")
    if target not in PRECISION_TARGETS:
        raise InvalidArgumentError(
            f"target {target!r} is not an ONNX Runtime target; ONNX graphs in {precision} are built for "
            f"{', '.join(PRECISION_TARGETS)}",
            fix="for Ascend targets convert with --target ascend310 (or your chip): fp16 is ATC's --precision_mode, "
            "int8 is AMCT's calibration of the fp32 ONNX graph followed by ATC (edgetrack.converters.onnx2om)",
        )
    if precision == "int8" and not calibration:
        raise InvalidArgumentError(
            "precision int8 needs calibration crops from real sequences, and no --calibration data set was given",
            fix="pass --calibration KIND:PATH[#SUBSET] (e.g. synthetic:data/synth-train), a data set like the "
            "video the tracker will see",
        )


def apply_precision(
    fp32_paths: Mapping[str, str | os.PathLike],
    work_dir: str | os.PathLike,
    *,
    precision: str,
    target: str,
    params,
    reference: Mapping[str, Runner] | None = None,
    reference_name: str = "torch",
    calibration: str | None = None,
    calibration_frames: int = DEFAULT_CALIBRATION_FRAMES,
    verify_data: str | None = None,
    verify_frames: int = DEFAULT_VERIFY_FRAMES,
    int8_head: bool = False,
) -> PrecisionResult:
    """Convert the fp32 graphs ``fp32_paths`` (template, search, head) of a SiamFC or SiamRPN model to ``precision``
    for ``target`` and check them; see the module docstring for what each combination builds.

    ``reference``: the framework's graphs as functions of arrays (:func:`torch_reference`), for the
    "framework -> low precision" rows; ``params``: the family's tracking parameters (``SiamFCParams``,
    ``SiamRPNParams``): the crops are cut with them by that family's tracking class (:func:`edgetrack.tracker.tracking_class`).
    ``calibration``: data set spec for int8 (required there); ``verify_data``: data set spec for the
    real-crop checks (default: other frames of ``calibration``). For fp32 the graphs are returned unchanged, and
    checked on real crops against ``reference`` when a data set is given. ``int8_head``: quantize the head too,
    calibrated on the fp32 template/search graphs' outputs for the calibration crops (off by default: see the
    module docstring).

    Raises :class:`ConversionError` when a check fails its sanity bound (:data:`SANITY_BOUNDS`), and
    :class:`InvalidArgumentError` for int8 without ``calibration`` or a precision this target does not build here.
    """
    check_request(precision, target, calibration)
    if precision == "fp32" and not verify_data and not calibration:
        return PrecisionResult(paths={k: Path(p) for k, p in fp32_paths.items()}, parity={}, source={}, tools={},
                               notes="")
    from edgetrack.progress import progress

    fp32_paths = {name: Path(p) for name, p in fp32_paths.items()}
    missing = set(_GRAPHS) - set(fp32_paths)
    if missing:
        raise InvalidArgumentError(f"apply_precision needs the graphs {_GRAPHS}, missing {sorted(missing)}")
    bound = SANITY_BOUNDS[precision]
    out = Path(work_dir) / precision
    out.mkdir(parents=True, exist_ok=True)
    fp32 = {name: ort_runner(p) for name, p in fp32_paths.items()}

    # Only int8 calibrates; for fp32/fp16 a --calibration data set is a source of verification crops.
    calib = sample_crops(calibration, calibration_frames, params, phase=0.25) if precision == "int8" else None
    verify_spec = verify_data or calibration
    verify = sample_crops(verify_spec, verify_frames, params, phase=0.75) if verify_spec else None

    # ---- convert
    converted = _CONVERTED.get((target, precision), ())
    if precision == "int8" and int8_head:
        converted = (*converted, "head")
    paths = dict(fp32_paths)
    for name in progress(converted, desc=f"{precision} graphs", unit="graph"):
        dst = out / f"{name}.onnx"
        if precision == "fp16" and target == "cpu":
            paths[name] = fp16_storage(fp32_paths[name], dst)
        elif precision == "fp16":
            paths[name] = fp16_compute(fp32_paths[name], dst)
        elif precision == "int8":
            # The head sees what the fp32 branches make of the crops, as in tracking (calibration_feeds).
            feeds = calibration_feeds(calib, name, fp32_paths, runners=fp32)
            paths[name] = quantize_int8(fp32_paths[name], dst, feeds, target=target, work_dir=out)

    # ---- check
    parity: dict[str, dict] = {}
    runtime = _runtime_name()
    low = {name: ort_runner(p) if name in converted else fp32[name] for name, p in paths.items()}
    sample_sets = []
    if precision != "fp32":
        sample_sets.append(("random", _random_samples(fp32, params)))
    if verify is not None:
        sample_sets.append(("crops", _crop_samples(verify, fp32)))
    references = []
    if precision != "fp32":
        references.append(("onnx-fp32", fp32))
    if reference is not None:
        references.append((reference_name, reference))
    failures = []
    for inputs, samples in sample_sets:
        low_run = {name: _memo(r) for name, r in low.items()}
        low_chain = _chain(low_run)
        for ref_name, ref in references:
            ref = {name: _memo(r) for name, r in ref.items()}
            ref_chain = _chain(ref)
            stage = f"{ref_name}->{'onnx' if precision == 'fp32' else precision} {inputs}"
            rows = {}
            # int8 ranges come from real crops; uniform noise lies outside them by design (its activations are
            # clipped), so int8 errors on random inputs are reported without a bound: passed is None.
            bounded = not (precision == "int8" and inputs == "random")
            for graph in (*_GRAPHS, "chain"):
                test = low_chain if graph == "chain" else low_run[graph]
                row = _compare(ref_chain if graph == "chain" else ref[graph], test, samples[graph], bound)
                if not bounded:
                    row = {**{k: v for k, v in row.items() if k != "tolerance"}, "passed": None}
                rows[graph] = {"reference": ref_name, "runtime": runtime, "inputs": inputs, **row}
                if bounded and not row["passed"]:
                    failures.append(f"{graph} ({stage}): max rel error {row['max_rel']:.3g} > {bound:g}")
            parity[stage] = rows
    if failures:
        raise ConversionError(
            f"the {precision} graphs for {target} fail their sanity bound: {'; '.join(failures)}",
            fix="use --precision fp32 or fp16"
            + ("; or calibrate on data more like the tracked video (--calibration)" if precision == "int8" else ""),
        )

    # ---- describe
    source: dict = {}
    notes = ""
    if precision != "fp32":
        compute = "fp32" if (precision == "fp16" and target == "cpu") else precision
        graphs = {}
        for name in _GRAPHS:
            if name not in converted:
                graphs[name] = "fp32"
            elif precision == "fp16" and target == "cpu":
                graphs[name] = "fp16 storage, fp32 compute"
            else:
                graphs[name] = f"{precision} compute"
        source["precision"] = {
            "precision": precision,
            "compute": compute,
            "graphs": graphs,
            "method": _METHOD[(target, precision)],
            "io_dtype": "float32",
            "sanity_bound_max_rel": bound,
        }
        notes = _NOTES[(target, precision)]
    if calib is not None:
        source["calibration"] = {**calib.provenance, "method": "MinMax", "graphs": list(converted)}
        if precision == "int8":
            source["calibration"]["note"] = (
                "Ascend's equivalent is AMCT (CANN's model compression tool) calibrating the fp32 ONNX graph: "
                "edgetrack convert --target ascend310 --precision int8")
    if verify is not None:
        source["verification"] = {k: v for k, v in verify.provenance.items() if k != "frames"}
    tools = _library_versions(precision, target)
    if precision == "int8":
        tools["int8_onnx_opset"] = INT8_OPSET  # of the quantized graphs; the others keep the export's opset
        tools["quantizer"] = ("onnxruntime.quantization.quantize_static (QDQ, per-channel, MinMax); channel gates "
                              "(ECA/SE): squeeze path fp32, gates quantized over [0, 1]")
    elif precision == "fp16" and target == "cuda":
        tools["fp16_converter"] = "onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)"
    elif precision == "fp16":
        tools["fp16_converter"] = "edgetrack.converters.precision.fp16_storage"
    return PrecisionResult(paths=paths, parity=parity, source=source, tools=tools, notes=notes)


def _runtime_name() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__} CPUExecutionProvider"


_METHOD = {
    ("cpu", "fp16"): "weights stored as fp16, Cast to fp32 folded at load",
    ("cuda", "fp16"): "onnxconverter-common float16, fp32 graph inputs/outputs",
    ("cpu", "int8"): "static PTQ, QDQ, uint8 activations, int8 per-channel weights",
    ("cuda", "int8"): "static PTQ, QDQ, symmetric int8 activations, int8 per-channel weights",
}
_NOTES = {
    ("cpu", "fp16"): "fp16 storage: weights are stored as fp16 (about half the file size) and computed in fp32; "
    "ONNX Runtime's x86 CPU provider has no fp16 convolution, so fp16 compute would not be faster.",
    ("cuda", "fp16"): "fp16 compute for onnxruntime-gpu (CUDA/TensorRT providers): template and search run in fp16, "
    "the head (correlation) in fp32; graph inputs and outputs are float32. Checked here on ONNX Runtime's CPU "
    "provider.",
    ("cpu", "int8"): "int8 static post-training quantization (QDQ) of template and search, calibrated on real crops "
    "(source.calibration); the head (correlation) stays fp32.",
    ("cuda", "int8"): "int8 static post-training quantization (symmetric QDQ, as TensorRT reads it) of template and "
    "search, calibrated on real crops (source.calibration); the head stays fp32. Checked here on ONNX Runtime's CPU "
    "provider.",
}
