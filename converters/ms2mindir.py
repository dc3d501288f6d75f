"""MindSpore twin -> MindSpore's own MindIR (``mindspore.export(..., file_format="MINDIR")``), each graph checked
against the cell it came from: the source ``converter_lite --fmk=MINDIR`` reads for an Ascend bundle.

Why a second export beside ONNX: a team that trains on an Ascend 910 with MindSpore converts for MindSpore Lite
without going through ONNX (``edgetrack convert CKPT --framework mindspore --target ascend310 --toolchain
converter_lite``; ``--mindir-source onnx`` feeds converter_lite the ONNX graphs instead). The ONNX graphs are still
exported and stay in the bundle: the operator audit, the simulator and ONNX Runtime read them.

One step each, as the other converters:

- :func:`export_cell_mindir`: one cell at static example inputs -> ``<path>`` (``.mindir``). The cell is wrapped in a
  fresh top-level cell for every export, as :mod:`edgetrack.converters.deblur2onnx` does for ONNX: MindSpore 2.10
  caches a cell's compiled graph per input shape, and exporting the same cell twice at one shape (the ONNX export ran
  first) can fail on the graph the first export rewrote. The wrapper's ``construct`` names its parameters as the
  bundle names the graph's inputs (``z``, ``x``, ``kernel``/``features``, ``crop``): ``mindspore.export`` names a
  MindIR's inputs after them (the proto's input is ``<graph>:z``), and those names are what converter_lite's
  ``--inputShape=z:1,3,127,127`` and the AIPP config refer to (MindSpore Lite's converter docs: the input name "must
  be the input name in the network model before conversion"; MindOCR's FAQ shows converter_lite failing with "Failed
  to find input x in input_shape args0" when the two differ).
- :func:`mindir_inputs`: a MindIR's input names and static shapes, read from its protobuf
  (``mindspore.train.mind_ir_pb2``, MindSpore's own schema), so the export is checked to have the bundle's tensor
  names, order and shapes.
- :func:`verify_cell_mindir`: the MindIR loaded back (``mindspore.load`` + ``mindspore.nn.GraphCell``) and run on the
  same random inputs as the cell, compared by :func:`edgetrack.converters.torch2onnx.graph_parity` (fp32: max error
  <= 1e-4 of each output's scale). Outputs come back in the cell's return order: the ONNX graphs' order.
- :func:`export_tracker_mindir` / :func:`verify_tracker_mindir`: the three tracker graphs (template, search, head; the
  head in the form asked for, elementwise for NPU converters), as :mod:`edgetrack.converters.ms2onnx` exports them to
  ONNX. The DeblurGAN-v2 graphs: :func:`edgetrack.converters.deblur2onnx.export_deblur_mindir`.

In a bundle the MindIR files sit beside the ONNX graphs as ``<graph>.mindir`` (further files, ``manifest.files``,
written and verified by :mod:`edgetrack.bundle`); ``manifest.source["mindir"]`` maps graph -> file, and
``parity["mindspore->mindir"]`` (``"deblur mindspore->mindir"`` for the deblur graphs) holds the checks. They are
fp32, whatever the bundle's precision: converter_lite lowers them (``precision_mode``), as ATC lowers the ONNX graphs.

What the MindIR keeps that the ONNX path rewrites: MindSpore's ``ResizeNearestNeighbor`` (align_corners False,
output pixel ``i`` reads input ``i // f``). The ONNX graphs get their nearest Resize rewritten to the rounding CANN
implements (:func:`edgetrack.converters.onnx2om.rewrite_nearest_resize`); MindSpore Lite's docs do not say how
converter_lite lowers MindSpore's primitive, so that is checked only by running the built MindIR on the device.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from edgetrack.errors import ConversionError, InvalidArgumentError, require

__all__ = [
    "MINDIR_SUFFIX",
    "EXPORTER",
    "STAGE",
    "SOURCE_SECTION",
    "export_wrapper",
    "export_cell_mindir",
    "mindir_inputs",
    "verify_cell_mindir",
    "export_tracker_mindir",
    "verify_tracker_mindir",
]

MINDIR_SUFFIX = ".mindir"
EXPORTER = 'mindspore.export(file_format="MINDIR")'
# The parity stage of the tracker graphs' MindIR (the deblur stage's: "deblur " + STAGE, as its ONNX stages).
STAGE = "mindspore->mindir"
# manifest.source key: {"graphs": {graph: file}, "exporter", "mindspore"}.
SOURCE_SECTION = "mindir"
FP32_TOLERANCE = 1e-4


def _ms():
    return require("mindspore", feature="exporting MindIR with MindSpore", extra="mindspore")


@functools.cache
def _wrappers() -> dict[tuple[str, ...], type]:
    """Input names -> a wrapper cell class whose ``construct`` takes inputs of those names (MindSpore's compiler reads
    the parameter names from the source, so each set is written out; defined on first use: MindSpore is imported
    lazily)."""
    import edgetrack.models.mindspore  # noqa: F401  (caps oneDNN's CPU ISA before the first convolution)
    from mindspore import nn

    class _Wrapper(nn.Cell):
        def __init__(self, net):
            super().__init__()
            self.net = net

    class TemplateInput(_Wrapper):
        def construct(self, z):
            return self.net(z)

    class SearchInput(_Wrapper):
        def construct(self, x):
            return self.net(x)

    class HeadInputs(_Wrapper):
        def construct(self, kernel, features):
            return self.net(kernel, features)

    class CropInput(_Wrapper):
        def construct(self, crop):
            return self.net(crop)

    return {("z",): TemplateInput, ("x",): SearchInput, ("kernel", "features"): HeadInputs, ("crop",): CropInput}


def export_wrapper(cell, input_names: Sequence[str]):
    """A fresh top-level cell around ``cell`` whose ``construct`` takes ``input_names`` (one of the bundle graphs'
    input sets): what every MindSpore export of a bundle graph goes through (module docstring)."""
    wrappers = _wrappers()
    names = tuple(input_names)
    if names not in wrappers:
        raise InvalidArgumentError(
            f"no MindIR export wrapper for inputs {list(names)}; bundle graphs take {[list(k) for k in wrappers]}",
            fix="export a tracker or deblur graph of edgetrack's (their tensor names are the bundle's contract)")
    return wrappers[names](cell)


def _tensors(inputs) -> tuple:
    ms = _ms()
    return tuple(t if isinstance(t, ms.Tensor) else ms.Tensor(np.ascontiguousarray(t, dtype=np.float32))
                 for t in inputs)


def mindir_inputs(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape), ...]`` of a MindIR's graph inputs, in order. The proto names an input ``<graph>:<name>``;
    the part after the last ``:`` is the construct parameter's name, the one converter_lite's ``--inputShape``
    takes."""
    _ms()
    from mindspore.train import mind_ir_pb2  # MindSpore's MindIR schema (the pinned 2.10 ships it)

    proto = mind_ir_pb2.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # protobuf's DecodeError, or a file that is not there
        raise ConversionError(f"{str(path)!r} is not a MindIR file: {exc}",
                              fix="export it again with mindspore.export(..., file_format='MINDIR')") from exc
    out = []
    for value in proto.graph.input:
        dims = tuple(int(d) for d in value.tensor[0].dims) if value.tensor else ()
        out.append((value.name.rsplit(":", 1)[-1], dims))
    return out


def export_cell_mindir(cell, inputs, path: str | os.PathLike, input_names: Sequence[str]) -> Path:
    """Export ``cell`` at the static ``inputs`` (Tensors or arrays, in ``input_names`` order) to ``path`` (which must
    end in ``.mindir``) through a fresh wrapper whose inputs carry ``input_names`` (module docstring); checks the
    written inputs' names and shapes. No numerical check (:func:`verify_cell_mindir`)."""
    ms = _ms()
    path = Path(path)
    names = tuple(input_names)
    wrapped = export_wrapper(cell, names)
    if path.suffix != MINDIR_SUFFIX:
        raise InvalidArgumentError(f"a MindIR file name ends in {MINDIR_SUFFIX}, got {str(path)!r}")
    tensors = _tensors(inputs)
    if len(tensors) != len(names):
        raise InvalidArgumentError(f"{len(tensors)} example input(s) for the inputs {list(names)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # file_name without the suffix: the exporter appends ".mindir".
    ms.export(wrapped, *tensors, file_name=str(path.with_suffix("")), file_format="MINDIR")
    if not path.is_file():
        raise ConversionError(f"mindspore.export reported success but {str(path)!r} does not exist",
                              fix="check the folder is writable and MindSpore's log")
    expected = [(n, tuple(int(d) for d in t.shape)) for n, t in zip(names, tensors)]
    written = mindir_inputs(path)
    if written != expected:
        raise ConversionError(f"the MindIR {path.name} takes {written}, the bundle's graph takes {expected}",
                              fix="report this as a bug: converter_lite's --inputShape names would not match")
    return path


def verify_cell_mindir(cell, path: str | os.PathLike, inputs, output_names: Sequence[str], *, graph: str,
                       reference: str = "mindspore", tolerance: float = FP32_TOLERANCE) -> dict:
    """The MindIR at ``path`` loaded back (``mindspore.load`` + ``nn.GraphCell``) and run on ``inputs``, against
    ``cell`` on the same inputs: :func:`~edgetrack.converters.torch2onnx.graph_parity`'s row (``max_abs``,
    ``max_rel`` to each output's scale, ``passed``, ...). Raises :class:`ConversionError` naming ``graph`` when the
    outputs differ in number or shape, or ``max_rel`` exceeds ``tolerance``."""
    ms = _ms()
    from edgetrack.converters.torch2onnx import graph_parity

    tensors = _tensors(inputs)
    try:
        loaded = ms.nn.GraphCell(ms.load(str(path)))
        got = _outputs(loaded(*tensors))
    except Exception as exc:
        raise ConversionError(f"MindSpore could not load and run the MindIR of graph {graph!r} ({path}): {exc}",
                              fix="export it again; check the MindSpore version that wrote it") from exc
    expected = _outputs(cell(*tensors))
    names = list(output_names)
    if not len(got) == len(expected) == len(names):
        raise ConversionError(f"the MindIR of graph {graph!r} gives {len(got)} output(s), MindSpore's cell "
                              f"{len(expected)}, the bundle names {names}", fix="report this as a bug")
    return graph_parity(graph, names, [t.asnumpy() for t in got], [t.asnumpy() for t in expected], reference,
                        f"mindspore {ms.__version__} GraphCell (CPU)", tolerance,
                        fix="report this as a bug with the checkpoint", what="MindIR of graph")


def _outputs(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def export_tracker_mindir(model, family: str, out_dir: str | os.PathLike, graph_io: dict, *, exemplar: int = 127,
                          instance: int = 255, scales: int = 1, runtime_weights: bool = False,
                          templates: int = 1) -> dict[str, Path]:
    """The MindSpore twin's three graphs to ``out_dir/{template,search,head}.mindir`` at static shapes, inputs named
    and ordered as ``graph_io`` (the ONNX graphs' tensor names). ``runtime_weights``: SiamRPN's head as one grouped
    Conv instead of the elementwise form NPU converters take, as :func:`edgetrack.converters.ms2onnx._graphs`; Ascend
    bundles use the elementwise form."""
    from edgetrack.converters.ms2onnx import _examples, _graphs

    out = Path(out_dir)
    examples = _examples(model, family, exemplar, instance, scales, seed=0, templates=templates)
    paths: dict[str, Path] = {}
    for name, cell in _graphs(model, family, runtime_weights).items():
        inputs, _ = graph_io[name]
        try:
            paths[name] = export_cell_mindir(cell, examples[name], out / f"{name}{MINDIR_SUFFIX}", inputs)
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(
                f"exporting {family} graph {name!r} with {EXPORTER} failed: {exc}",
                fix="the MindSpore twins are export-safe as edgetrack builds them; check the checkpoint's family",
            ) from exc
    return paths


def verify_tracker_mindir(model, family: str, paths: dict, graph_io: dict, *, exemplar: int = 127,
                          instance: int = 255, scales: int = 1, runtime_weights: bool = False,
                          tolerance: float = FP32_TOLERANCE, templates: int = 1) -> dict[str, dict]:
    """Each tracker MindIR against the MindSpore cell of the same form, on other random inputs than the export's
    (:func:`verify_cell_mindir`; the inputs of :func:`edgetrack.converters.ms2onnx.verify_mindspore_onnx`)."""
    from edgetrack.converters.ms2onnx import _examples, _graphs

    examples = _examples(model, family, exemplar, instance, scales, seed=1, templates=templates)
    cells = _graphs(model, family, runtime_weights)
    return {name: verify_cell_mindir(cells[name], path, examples[name], graph_io[name][1], graph=name,
                                     tolerance=tolerance)
            for name, path in paths.items()}
