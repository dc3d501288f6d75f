"""DeblurGAN-v2 generator (either framework's twin) -> two static ONNX graphs, and a tracker bundle with a deblur stage.

The deblur stage of Deblur-SiamRPN (issue #4) runs on the tracker's crops, not on whole frames (the speed choice for
the edge): the 127×127 template crop once at ``init`` and the search crop batch every frame. Static shapes per graph
(DESIGN.md), so the generator, which is fully convolutional, is exported twice::

    deblur_template: crop (1, 3, E, E)        -> deblurred (1, 3, E, E)
    deblur_search:   crop (n, 3, I, I)        -> deblurred (n, 3, I, I)     n: the tracker's search batch

with E, I and n read from the tracker bundle's own template and search graphs (SiamFC: n = its scales; SiamRPN: 1).
Input and output are float32 NCHW BGR 0..255, the convention of every graph in a bundle, so a deblurred crop feeds the
tracker's graph unchanged (the generator puts the [-1, 1] scaling inside the graph).

Either twin exports, as for the trackers (``framework``, :data:`~edgetrack.converters.torch2onnx.FRAMEWORKS`): the
checkpoint file is the same, and the graphs get the same names, shapes and tensor names whichever framework wrote them.

- ``"torch"`` (:mod:`edgetrack.models.torch.deblurgan`): the TorchScript exporter at ``opset`` (11 by default), as
  :mod:`edgetrack.converters.torch2onnx` does it. BatchNorm is folded into the convolutions.
- ``"mindspore"`` (:mod:`edgetrack.models.mindspore.deblurgan`): ``mindspore.onnx.export``, as
  :mod:`edgetrack.converters.ms2onnx` exports the MindSpore trackers; no PyTorch needed. The twin is built from
  export-safe forms (nearest resize through the ``ResizeNearestNeighbor`` primitive, no transposed convolution,
  explicit symmetric Conv padding: its module docstring); MindSpore writes its own opset (11 in 2.10, recorded in the
  manifest) and keeps the ``BatchNormalization`` nodes, which ONNX Runtime and ATC both run. Its nearest Resizes take
  constant ``sizes``; they are rewritten to the same Resizes by integer ``scales``, PyTorch's form, which the Ascend
  preparation knows (:func:`_resize_sizes_to_scales`).

Each graph passes onnx's checker and is checked against the framework that exported it in ONNX Runtime on other random
crops than the export's (:func:`edgetrack.converters.torch2onnx.graph_parity`: max error ≤ 1e-4 of the output's
scale at fp32). Only :class:`_TorchTwin` and :class:`_MindSporeTwin` (with the MindSpore export's two helpers) know a
framework; everything else here is shared.

:func:`add_deblur` composes: a new bundle holding the tracker bundle's graphs and further files (a shared
``weights.bin`` and the like, copied through unchanged) and the two deblur graphs, whose weights are stored once in
``deblur_weights.bin`` (:func:`edgetrack.converters.onnx_weights.share_weights`: the two graphs hold the same
weights). The manifest's ``preprocessing["deblur"]`` describes the stage (read by
:class:`edgetrack.tracking.blur.DeblurSpec`): the graphs, the blur gate's measure and threshold, the generator's
checkpoint, sha256, configuration and the framework that exported it, and where the parity results are
(``parity["deblur <framework>->onnx"]``, ``->fp16``); ``tools`` records that framework's version, the exporter and
the opset. It is a key of a free-form section, so the bundle format does not change: older edgetrack releases load the
bundle and track without the stage.

For Ascend: add the deblur stage to the portable fp32 bundle (target cpu), then convert that for the chip
(``edgetrack convert --target ascend310`` on the bundle): the Ascend converter builds every graph of the bundle. For
MindSpore Lite from MindSpore (``--framework mindspore --toolchain converter_lite``) the MindSpore generator is also
exported as MindSpore's own MindIR (:func:`export_deblur_mindir`, ``add_deblur(..., mindir=True)``), checked against
the generator (``parity["deblur mindspore->mindir"]``): converter_lite reads those with ``--fmk=MINDIR``
(:mod:`edgetrack.converters.ms2mindir`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgetrack.bundle import Bundle, GraphSpec, TensorSpec, load_bundle, sha256_file, write_bundle
from edgetrack.converters.torch2onnx import DEFAULT_OPSET, FP32_TOLERANCE, FRAMEWORKS, graph_parity
from edgetrack.errors import (
    BundleError,
    CheckpointError,
    ConversionError,
    InvalidArgumentError,
    UnknownChoiceError,
    require,
)

__all__ = [
    "DEBLUR_GRAPHS",
    "DATA_FILE",
    "FRAMEWORKS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PRECISIONS",
    "check_deblur_checkpoint",
    "load_generator",
    "export_deblur_onnx",
    "verify_deblur_onnx",
    "deblur_to_onnx",
    "export_deblur_mindir",
    "verify_deblur_mindir",
    "add_deblur",
]

# crop role -> bundle graph name (and file stem).
DEBLUR_GRAPHS = {"template": "deblur_template", "search": "deblur_search"}
INPUT_NAME, OUTPUT_NAME = "crop", "deblurred"
# The deblur graphs' shared weights: a file of their own beside the tracker's (whose weights never coincide).
DATA_FILE = "deblur_weights.bin"
PRECISIONS = ("fp32", "fp16")
_TARGETS = ("cpu", "cuda")
_GENERATOR = "FPNMobileNetV2"


class _TorchTwin:
    """The PyTorch generator (:mod:`edgetrack.models.torch.deblurgan`): load, run, export to ONNX."""

    name, label, extra = "torch", "PyTorch", "torch"
    module = "edgetrack.models.torch.deblurgan"
    exporter = "torch.onnx.export(dynamo=False)"
    fix = "check the opset (11 is the tested one) and that the checkpoint is edgetrack's DeblurGAN-v2"

    def lib(self):
        return require("torch", feature="converting the DeblurGAN-v2 generator with PyTorch", extra=self.extra)

    def is_model(self, obj) -> bool:
        return isinstance(obj, self.lib().nn.Module)

    def load(self, path: Path):
        self.lib()
        from edgetrack.models.torch.deblurgan import load_deblurgan

        return load_deblurgan(path)

    def eval(self, model):
        return model.eval()

    def run(self, model, x: np.ndarray) -> np.ndarray:
        torch = self.lib()
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    def export(self, model, x: np.ndarray, path: Path, opset: int) -> None:
        torch = self.lib()
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter on purpose (see converters/torch2onnx.py): the device toolchains are old.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(model, (torch.from_numpy(x),), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset, do_constant_folding=True, dynamo=False)

    def tools(self, opset: int, path: Path) -> dict:
        return {"torch": self.lib().__version__, "deblur_exporter": self.exporter, "deblur_onnx_opset": opset}


class _MindSporeTwin:
    """The MindSpore generator (:mod:`edgetrack.models.mindspore.deblurgan`): load, run, export to ONNX through
    ``mindspore.onnx.export`` (as :mod:`edgetrack.converters.ms2onnx`), which writes its own opset."""

    name, label, extra = "mindspore", "MindSpore", "mindspore"
    module = "edgetrack.models.mindspore.deblurgan"
    exporter = "mindspore.onnx.export"
    fix = ("the MindSpore generator is export-safe as edgetrack builds it (models/mindspore/deblurgan.py); check that "
           "the checkpoint is edgetrack's DeblurGAN-v2")

    def lib(self):
        ms = require("mindspore", feature="converting the DeblurGAN-v2 generator with MindSpore", extra=self.extra)
        import edgetrack.models.mindspore  # noqa: F401  (caps oneDNN's CPU ISA before the first convolution)

        return ms

    def is_model(self, obj) -> bool:
        return isinstance(obj, self.lib().nn.Cell)

    def load(self, path: Path):
        self.lib()
        from edgetrack.models.mindspore.deblurgan import load_deblurgan

        return load_deblurgan(path)

    def eval(self, model):
        model.set_train(False)
        return model

    def run(self, model, x: np.ndarray) -> np.ndarray:
        return model(self.lib().Tensor(np.ascontiguousarray(x, dtype=np.float32))).asnumpy()

    def export(self, model, x: np.ndarray, path: Path, opset: int) -> None:
        ms = self.lib()
        # A fresh top-level cell for every export: MindSpore 2.10 caches a cell's compiled graph per input shape, and
        # a second mindspore.onnx.export of one cell at one shape fails on the graph the first export rewrote ("i: 5
        # out of range: 5" at the padding's StridedSlice), e.g. a generator exported by deblur_to_onnx and then by
        # add_deblur. The wrapper compiles anew and exports the same operators. file_name without the suffix: the
        # exporter appends ".onnx".
        from edgetrack.converters.ms2mindir import export_wrapper

        ms.onnx.export(export_wrapper(model, (INPUT_NAME,)), ms.Tensor(np.ascontiguousarray(x, dtype=np.float32)),
                       file_name=str(path.with_suffix("")), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
        _resize_sizes_to_scales(path)

    def export_mindir(self, model, x: np.ndarray, path: Path) -> Path:
        """The generator at ``x``'s static shape as MindSpore's own MindIR (the source converter_lite reads with
        ``--fmk=MINDIR``). The same trap as :meth:`export`, the same cure: a fresh top-level cell per export, here
        one whose input is named ``crop`` (:func:`edgetrack.converters.ms2mindir.export_cell_mindir`)."""
        from edgetrack.converters.ms2mindir import export_cell_mindir

        return export_cell_mindir(model, (x,), path, (INPUT_NAME,))

    def tools(self, opset: int, path: Path) -> dict:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        return {"mindspore": self.lib().__version__, "deblur_exporter": self.exporter, "deblur_onnx_opset": written}


def _resize_sizes_to_scales(path: Path) -> int:
    """Rewrite the nearest ``Resize`` nodes of the ONNX file at ``path`` that take constant ``sizes`` (MindSpore's
    ``ResizeNearestNeighbor`` exports so) into the same Resize with constant integer ``scales``, the form PyTorch
    writes. Returns how many changed.

    Why: the Ascend preparation (:func:`edgetrack.converters.onnx2om.rewrite_nearest_resize`) moves integer-factor
    nearest Resizes to the rounding the chip implements only when it can read the factor from ``scales``; with
    ``sizes`` the audit refuses the graph. The static shapes make the two forms the same operation (output pixel
    ``i`` reads input ``i // f`` either way), and the parity check runs on the rewritten file.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    graph = model.graph
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
              for v in (*inferred.value_info, *inferred.input, *inferred.output)}
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    makers = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            makers[node.output[0]] = node
    changed, replaced = 0, set()
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        if any(a.name == "mode" and a.s != b"nearest" for a in node.attribute):
            continue
        sizes, shape = constants.get(node.input[3]), shapes.get(node.input[0], ())
        scales = constants.get(node.input[2]) if node.input[2] else None
        if sizes is None or (scales is not None and scales.size) or len(shape) != sizes.size or 0 in shape:
            continue
        if np.any(sizes % np.array(shape)):
            continue  # not an integer factor: left as it is
        name = f"{node.output[0]}_scales"
        graph.initializer.append(numpy_helper.from_array((sizes // np.array(shape)).astype(np.float32), name))
        replaced |= {node.input[2], node.input[3]}
        node.input[2] = name
        del node.input[3]
        changed += 1
    if changed:  # drop the empty scales and the sizes no node reads any more
        unused = replaced - {i for n in graph.node for i in n.input}
        for node in [makers[name] for name in unused if name in makers]:
            graph.node.remove(node)
        for tensor in [t for t in graph.initializer if t.name in unused]:
            graph.initializer.remove(tensor)
        onnx.save(model, str(path))
    return changed


# One twin per framework the tracker export offers (torch2onnx.FRAMEWORKS).
_TWINS = {"torch": _TorchTwin(), "mindspore": _MindSporeTwin()}


def _twin(framework: str):
    if framework not in _TWINS:
        raise UnknownChoiceError("framework", framework, FRAMEWORKS,
                                 fix="use framework='torch' or 'mindspore' (--framework torch|mindspore)")
    return _TWINS[framework]


def check_deblur_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` if it is a DeblurGAN-v2 generator checkpoint (either framework's; metadata only, no framework
    needed), else :class:`InvalidArgumentError` (no such file) or :class:`CheckpointError` naming what it holds."""
    from edgetrack.models.checkpoint_format import read_metadata
    from edgetrack.models.deblur_config import FAMILY

    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"deblur checkpoint {str(path)!r} does not exist",
                                   fix="pass the .safetensors file of a deblurgan training run")
    meta = read_metadata(path)
    family = meta.get("family")
    if family != FAMILY:
        name = None
        try:
            name = json.loads(meta.get("config", "{}")).get("name")
        except (ValueError, AttributeError):
            pass
        what = f"a {family!r} model" + (f" ({name})" if name else "") if family else "no model family in its metadata"
        raise CheckpointError(
            f"deblur checkpoint {str(path)!r} holds {what}, not a DeblurGAN-v2 generator (family {FAMILY!r})",
            fix="pass the deblurrer's checkpoint (edgetrack train --model deblurgan-v2 ... writes final.safetensors); "
                "a tracker checkpoint is converted into the tracker bundle with edgetrack convert",
        )
    return path


def load_generator(checkpoint_or_model, framework: str = "torch"):
    """The ``framework`` twin's generator of a DeblurGAN-v2 checkpoint (inference mode), or the given generator.

    A checkpoint of another model (a tracker, say) is a :class:`CheckpointError` naming what it holds, whatever the
    framework; a generator of the other framework is an :class:`InvalidArgumentError` saying which to pass.
    """
    twin = _twin(framework)
    if isinstance(checkpoint_or_model, (str, os.PathLike)):
        return twin.load(check_deblur_checkpoint(checkpoint_or_model))
    kind = type(checkpoint_or_model)
    if kind.__name__ == _GENERATOR and kind.__module__ == twin.module:
        return twin.eval(checkpoint_or_model)
    for other in _TWINS.values():
        if other is not twin and kind.__name__ == _GENERATOR and kind.__module__ == other.module:
            raise InvalidArgumentError(
                f"a {other.label} DeblurGAN-v2 generator was given to the {twin.label} export (framework "
                f"{framework!r})", fix=f"pass framework={other.name!r}, or the generator's checkpoint")
    if twin.is_model(checkpoint_or_model):
        raise InvalidArgumentError(
            f"the deblur stage takes a DeblurGAN-v2 generator ({_GENERATOR}), got a {kind.__name__}",
            fix="pass the generator's checkpoint (.safetensors written by save_deblurgan)")
    raise InvalidArgumentError(f"expected a DeblurGAN-v2 checkpoint path, got {kind.__name__}",
                               fix=f"pass the generator's checkpoint or a {twin.label} {_GENERATOR}")


def _check_shapes(shapes: dict) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for role in DEBLUR_GRAPHS:
        if role not in shapes:
            raise InvalidArgumentError(f"deblur graph shapes need {sorted(DEBLUR_GRAPHS)}, got {sorted(shapes)}")
        try:
            shape = tuple(int(d) for d in shapes[role])
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{role} shape must be (n, 3, H, W), got {shapes[role]!r}") from None
        if len(shape) != 4 or shape[1] != 3 or min(shape) < 1 or min(shape[2:]) < 16:
            raise InvalidArgumentError(f"{role} shape must be (n, 3, H, W) with H, W >= 16, got {shape}")
        out[role] = shape
    return out


def _examples(shapes: dict, seed: int) -> dict[str, np.ndarray]:
    """Random float32 crops in 0..255, the same for either framework (so their exports meet the same inputs)."""
    rng = np.random.default_rng(seed)
    return {role: rng.random(shape, dtype=np.float32) * np.float32(255.0) for role, shape in shapes.items()}


def export_deblur_onnx(checkpoint_or_model, out_dir: str | os.PathLike, shapes: dict, *, opset: int = DEFAULT_OPSET,
                       framework: str = "torch") -> dict[str, Path]:
    """Export the ``framework`` twin's generator at ``shapes`` (role -> (n, 3, H, W)) to ``out_dir/<graph>.onnx``
    (graph names: :data:`DEBLUR_GRAPHS`; tensors ``crop`` -> ``deblurred``) and run onnx's checker on each. ``opset``:
    the PyTorch export's (MindSpore writes its own). Returns role -> path. No numerical check here."""
    twin = _twin(framework)
    onnx = require("onnx", feature="ONNX export", extra=twin.extra)
    model = load_generator(checkpoint_or_model, framework)
    shapes = _check_shapes(shapes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = _examples(shapes, seed=0)
    paths = {}
    for role, graph in DEBLUR_GRAPHS.items():
        path = out / f"{graph}.onnx"
        try:
            twin.export(model, examples[role], path, opset)
            proto = onnx.load(str(path))
            onnx.checker.check_model(proto, full_check=True)
            io = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
            if io != ([INPUT_NAME], [OUTPUT_NAME]):
                raise ValueError(f"the graph's inputs and outputs are {io}, not ({[INPUT_NAME]}, {[OUTPUT_NAME]})")
        except Exception as exc:
            raise ConversionError(
                f"exporting the deblur graph {graph!r} {shapes[role]} to ONNX with {twin.exporter} failed: {exc}",
                fix=twin.fix,
            ) from exc
        paths[role] = path
    return paths


def verify_deblur_onnx(checkpoint_or_model, paths: dict, shapes: dict, *, tolerance: float = FP32_TOLERANCE,
                       reference: dict | None = None, reference_name: str | None = None,
                       framework: str = "torch") -> dict[str, dict]:
    """Each deblur graph in ONNX Runtime (CPU) against the ``framework`` twin's generator (or against ``reference``:
    role -> path of another ONNX graph, e.g. the fp32 one for an fp16 graph, or the other framework's export) on
    random crops other than the export's.

    Returns ``{graph: row}``, the rows of :func:`edgetrack.converters.torch2onnx.graph_parity` (``max_abs``,
    ``max_rel`` = max |error| over max |reference|, ``scale``, ``tolerance``, ``passed``, ...) with ``inputs``;
    raises :class:`ConversionError` naming the graph when ``max_rel`` exceeds ``tolerance``. ``reference_name``
    (default: the framework's name) labels the reference in the rows and errors.
    """
    twin = _twin(framework)
    ort = require("onnxruntime", feature="checking ONNX graphs")
    shapes = _check_shapes(shapes)
    examples = _examples(shapes, seed=1)
    model = load_generator(checkpoint_or_model, framework) if reference is None else None
    reference_name = reference_name or twin.name
    runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider"
    fix = ("report this as a bug with the checkpoint" + ("; try another opset" if twin.name == "torch" else ""))
    out = {}
    for role, graph in DEBLUR_GRAPHS.items():
        x = examples[role]
        if reference is None:
            expected = twin.run(model, x)
        else:
            ref = ort.InferenceSession(str(reference[role]), providers=["CPUExecutionProvider"])
            (expected,) = ref.run(None, {INPUT_NAME: x})
        session = ort.InferenceSession(str(paths[role]), providers=["CPUExecutionProvider"])
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        out[graph] = {**graph_parity(graph, [OUTPUT_NAME], got, [expected], reference_name, runtime, tolerance, fix),
                      "inputs": "random"}
    return out


def export_deblur_mindir(checkpoint_or_model, out_dir: str | os.PathLike, shapes: dict) -> dict[str, Path]:
    """The MindSpore generator at ``shapes`` (role -> (n, 3, H, W)) as MindSpore's own MindIR,
    ``out_dir/<graph>.mindir`` (graph names: :data:`DEBLUR_GRAPHS`; input ``crop``, the ONNX graphs' name and shape;
    :mod:`edgetrack.converters.ms2mindir`). Returns role -> path. No numerical check (:func:`verify_deblur_mindir`)."""
    from edgetrack.converters.ms2mindir import EXPORTER, MINDIR_SUFFIX

    twin = _TWINS["mindspore"]
    model = load_generator(checkpoint_or_model, "mindspore")
    shapes = _check_shapes(shapes)
    examples = _examples(shapes, seed=0)
    paths = {}
    for role, graph in DEBLUR_GRAPHS.items():
        try:
            paths[role] = twin.export_mindir(model, examples[role], Path(out_dir) / f"{graph}{MINDIR_SUFFIX}")
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"exporting the deblur graph {graph!r} {shapes[role]} with {EXPORTER} failed: {exc}",
                                  fix=twin.fix) from exc
    return paths


def verify_deblur_mindir(checkpoint_or_model, paths: dict, shapes: dict, *,
                         tolerance: float = FP32_TOLERANCE) -> dict[str, dict]:
    """Each deblur MindIR loaded back in MindSpore and run against the generator on the same random crops (other
    than the export's): ``{graph: row}`` as :func:`verify_deblur_onnx` gives
    (:func:`edgetrack.converters.ms2mindir.verify_cell_mindir`)."""
    from edgetrack.converters.ms2mindir import verify_cell_mindir

    model = load_generator(checkpoint_or_model, "mindspore")
    examples = _examples(_check_shapes(shapes), seed=1)
    return {graph: {**verify_cell_mindir(model, paths[role], (examples[role],), (OUTPUT_NAME,), graph=graph,
                                         tolerance=tolerance), "inputs": "random"}
            for role, graph in DEBLUR_GRAPHS.items()}


def deblur_to_onnx(checkpoint_or_model, out_dir: str | os.PathLike, shapes: dict, *, opset: int = DEFAULT_OPSET,
                   framework: str = "torch") -> tuple[dict[str, Path], dict[str, dict]]:
    """:func:`export_deblur_onnx` then :func:`verify_deblur_onnx` with the ``framework`` twin: (role -> path,
    parity)."""
    model = load_generator(checkpoint_or_model, framework)
    paths = export_deblur_onnx(model, out_dir, shapes, opset=opset, framework=framework)
    return paths, verify_deblur_onnx(model, paths, shapes, framework=framework)


def _tracker_shapes(bundle: Bundle) -> dict[str, tuple[int, ...]]:
    graphs = bundle.manifest.graphs
    where = f"tracker bundle {str(bundle.path)!r}"
    shapes = {}
    for role in DEBLUR_GRAPHS:
        spec = graphs.get(role)
        if spec is None or len(spec.inputs) != 1:
            raise BundleError(f"{where} has no {role} graph with one crop input (graphs: {sorted(graphs)})",
                              fix="pass a bundle written by edgetrack convert for a tracker checkpoint")
        shapes[role] = tuple(spec.inputs[0].shape)
    return shapes


def _join_notes(*notes: str) -> str:
    parts = [n.strip() for n in notes if n and n.strip()]
    return " ".join(p if p.endswith(".") else p + "." for p in parts)


def _gate(gate):
    from edgetrack.tracking.blur import BlurGate

    if gate is None:
        return BlurGate()
    if isinstance(gate, BlurGate):
        return gate
    if isinstance(gate, (int, float)) and not isinstance(gate, bool):
        return BlurGate(threshold=float(gate))
    raise InvalidArgumentError(f"gate must be a BlurGate, a threshold in [0, 1] or None, got {gate!r}",
                               fix="e.g. gate=BlurGate(threshold=0.5, hysteresis=0.05)")


def add_deblur(
    tracker_bundle,
    deblur_checkpoint,
    out: str | os.PathLike,
    *,
    force: bool = False,
    precision: str = "fp32",
    gate=None,
    model: str | None = None,
    opset: int = DEFAULT_OPSET,
    framework: str = "torch",
    simplify: bool = True,
    mindir: bool | None = None,
) -> Path:
    """A new bundle at ``out``: ``tracker_bundle``'s graphs and files plus the DeblurGAN-v2 generator of
    ``deblur_checkpoint`` as the two deblur graphs (module docstring), each checked against the framework.

    ``framework``: the twin that loads the checkpoint and exports the graphs, "torch" (``torch.onnx.export`` at
    ``opset``) or "mindspore" (``mindspore.onnx.export``; no PyTorch needed); whichever exported the tracker's graphs.
    ``deblur_checkpoint``: the generator's checkpoint (either framework's file), or a generator of ``framework``.
    ``precision``: the deblur graphs' precision, "fp32" or "fp16" (cpu: fp16 storage with fp32 compute; cuda: fp16
    compute, as :mod:`edgetrack.converters.precision` builds the tracker's graphs), checked against the fp32 graphs
    and the framework within :data:`~edgetrack.converters.precision.SANITY_BOUNDS`. ``gate``: a
    :class:`~edgetrack.tracking.blur.BlurGate`, a threshold, or None for the calibrated default. ``model``: the
    composed model's name (default ``deblur-<family>``, e.g. ``deblur-siamrpn``). ``simplify``: simplify the exported
    graphs (:mod:`edgetrack.converters.onnx_simplify`; MindSpore's BatchNorm and Pad fold into the convolutions)
    before they are checked. ``mindir`` (``framework="mindspore"`` only): also export the two deblur graphs as
    MindSpore's own MindIR (fp32, whatever ``precision``; :func:`export_deblur_mindir`), checked against the generator
    (``parity["deblur mindspore->mindir"]``) and listed with the tracker's in ``source["mindir"]``, the sources
    converter_lite reads with ``--fmk=MINDIR``; None (the default): when the tracker bundle holds MindIR sources
    (``tracker_bundle(..., mindir=True)``), so that every graph of the new bundle has one. Returns the bundle folder.
    """
    from edgetrack.converters import precision as lower
    from edgetrack.converters.onnx_simplify import simplify_graphs
    from edgetrack.converters.onnx_weights import share_weights
    from edgetrack.tracking.blur import DEBLUR_SECTION, DEFAULT_THRESHOLD

    twin = _twin(framework)
    import onnx
    import onnxruntime

    import edgetrack

    if precision not in PRECISIONS:
        raise UnknownChoiceError("deblur precision", precision, PRECISIONS,
                                 fix="int8 is not offered for the generator: its output is an image, not a score")
    from edgetrack.converters.ms2mindir import EXPORTER as EXPORTER_MINDIR
    from edgetrack.converters.ms2mindir import MINDIR_SUFFIX, SOURCE_SECTION
    from edgetrack.converters.ms2mindir import STAGE as MINDIR_STAGE

    if mindir and framework != "mindspore":
        raise InvalidArgumentError(
            f"mindir=True exports MindSpore's own MindIR, which the {framework!r} generator cannot write",
            fix="use framework='mindspore' (--framework mindspore), or leave mindir off: converter_lite then reads "
                "the ONNX graphs (--mindir-source onnx)")
    gate = _gate(gate)
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidArgumentError(f"model must be a non-empty name such as 'deblur-siamrpn', got {model!r}")
    out = Path(out)
    if out.exists() and not force:
        raise BundleError(f"{str(out)!r} already exists", fix="choose another folder or pass force=True / --force")
    src = tracker_bundle if isinstance(tracker_bundle, Bundle) else load_bundle(tracker_bundle)
    m = src.manifest
    where = f"tracker bundle {str(src.path)!r}"
    if m.device or m.target not in _TARGETS:
        raise BundleError(
            f"{where} is built for {m.target!r}; the deblur stage is added to a portable ONNX bundle (cpu or cuda)",
            fix="add the deblur stage to the fp32 cpu bundle, then convert that bundle for the chip")
    if DEBLUR_SECTION in m.preprocessing:
        raise BundleError(
            f"{where} already has a deblur stage ({m.preprocessing[DEBLUR_SECTION].get('model', '?')}, model "
            f"{m.model!r})", fix="start from the tracker's bundle without a deblur stage")
    tracker_mindir = m.source.get(SOURCE_SECTION)
    if mindir is None:
        mindir = bool(tracker_mindir) and framework == "mindspore"
    clash = set(DEBLUR_GRAPHS.values()) & set(m.graphs)
    files_taken = {g.file for g in m.graphs.values()} | set(m.files)
    ours = [f"{g}{suffix}" for g in DEBLUR_GRAPHS.values() for suffix in (".onnx", MINDIR_SUFFIX)]
    clash |= {f for f in (*ours, DATA_FILE) if f in files_taken}
    if clash:
        raise BundleError(f"{where} already holds {sorted(clash)}, the deblur stage's names")
    shapes = _tracker_shapes(src)
    generator = load_generator(deblur_checkpoint, framework)
    name = model.strip() if model else f"deblur-{m.family}"

    with tempfile.TemporaryDirectory(prefix="edgetrack-deblur-") as tmp:
        tmp = Path(tmp)
        fp32 = export_deblur_onnx(generator, tmp / "fp32", shapes, opset=opset, framework=framework)
        simplified = simplify_graphs({DEBLUR_GRAPHS[r]: p for r, p in fp32.items()}, simplify)
        final_dir = tmp / "final"
        final_dir.mkdir()
        final = {}
        converted = ""
        for role, path in fp32.items():
            dst = final_dir / path.name
            if precision == "fp16" and m.target == "cpu":
                lower.fp16_storage(path, dst)
                converted = "fp16 storage, fp32 compute (edgetrack.converters.precision.fp16_storage)"
            elif precision == "fp16":
                lower.fp16_compute(path, dst)
                converted = "fp16 compute, float32 input/output (onnxconverter-common)"
            else:
                shutil.copyfile(path, dst)
            final[role] = dst
        weights = share_weights({DEBLUR_GRAPHS[r]: p for r, p in final.items()}, data_file=DATA_FILE)
        # Checked after every rewrite: the parity recorded is that of the files that ship.
        bound = lower.SANITY_BOUNDS[precision]
        parity = {f"deblur {framework}->{'onnx' if precision == 'fp32' else precision}":
                  verify_deblur_onnx(generator, final, shapes, tolerance=bound, framework=framework)}
        if precision != "fp32":
            parity[f"deblur onnx-fp32->{precision}"] = verify_deblur_onnx(
                generator, final, shapes, tolerance=bound, reference=fp32, reference_name="onnx-fp32",
                framework=framework)

        graphs = dict(m.graphs)
        files = {gname: src.graph_path(gname) for gname in m.graphs}
        for role, graph in DEBLUR_GRAPHS.items():
            spec = TensorSpec(INPUT_NAME, shapes[role], "float32")
            graphs[graph] = GraphSpec(graph, f"{graph}.onnx", "", (spec,),
                                      (dataclasses.replace(spec, name=OUTPUT_NAME),))
            files[graph] = final[role]
        extra = {rel: src.file_path(rel) for rel in m.files}
        extra[DATA_FILE] = final_dir / DATA_FILE

        source = dict(m.source)
        if mindir:
            made = export_deblur_mindir(generator, tmp / "mindir", shapes)
            parity[f"deblur {MINDIR_STAGE}"] = verify_deblur_mindir(generator, made, shapes)
            extra.update({f"{DEBLUR_GRAPHS[role]}{MINDIR_SUFFIX}": path for role, path in made.items()})
            section_in = dict(tracker_mindir or {})
            source[SOURCE_SECTION] = {
                **section_in,
                "graphs": {**section_in.get("graphs", {}),
                           **{g: f"{g}{MINDIR_SUFFIX}" for g in DEBLUR_GRAPHS.values()}},
                "exporter": section_in.get("exporter", EXPORTER_MINDIR),
                "mindspore": twin.lib().__version__,
                "precision": "fp32",
                "parity": [*section_in.get("parity", []), f"deblur {MINDIR_STAGE}"],
            }

        checkpoint = Path(deblur_checkpoint) if isinstance(deblur_checkpoint, (str, os.PathLike)) else None
        section = {
            "model": generator.config.name,
            "graphs": dict(DEBLUR_GRAPHS),
            "gate": gate.to_dict(),
            "gate_input": "the search batch's middle crop each frame (the template crop at init), measured at the "
                          "frame's resolution; the whole batch is deblurred or none of it",
            "gate_calibration": (
                "edgetrack.tracking.blur.DEFAULT_THRESHOLD: the 90th percentile of the measure on the synthetic "
                "generator's sharp search crops (benchmarks/deblur_gate.py calibrate)"
                if gate.threshold == DEFAULT_THRESHOLD else "given to add_deblur"),
            "io": "float32 NCHW BGR 0..255 in and out, the shape of the crop it deblurs",
            "checkpoint": checkpoint.name if checkpoint else "(in-memory model)",
            "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
            "framework": framework,
            "config": generator.config.to_dict(),
            "precision": precision if precision == "fp32" else f"{precision}: {converted}",
            "weights": weights,
            "parity": sorted(parity),
        }
        preprocessing = {**m.preprocessing, DEBLUR_SECTION: section}
        # As the tracker export records its own: the framework's version, the exporter and the opset it wrote.
        tools = {**m.tools, **twin.tools(opset, fp32["search"]), "deblur_simplifier": simplified["simplifier"],
                 "deblur_simplified": simplified.get("simplified"), "onnx": onnx.__version__,
                 "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
                 "edgetrack": edgetrack.__version__}
        note = (f"Deblur stage: DeblurGAN-v2 ({generator.config.name}, exported from {twin.label}) on the template "
                f"and search crops, gated by blur ({gate.measure} >= {gate.threshold:g}); "
                f"preprocessing.{DEBLUR_SECTION} describes it.")
        manifest = dataclasses.replace(
            m, model=name, graphs=graphs, preprocessing=preprocessing, tools=tools, source=source,
            parity={**m.parity, **parity}, notes=_join_notes(m.notes, note), files={}, format_version=None)
        return write_bundle(out, manifest, files, force=force, extra_files=extra)
