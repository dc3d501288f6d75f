"""MindSpore twin of a checkpoint -> the three tracker graphs as ONNX (``mindspore.onnx.export``), checked in ONNX
Runtime.

The MindSpore half of the chain's first step; :mod:`edgetrack.converters.torch2onnx` is the PyTorch half. One
safetensors checkpoint loads into either twin (same parameter names), and both halves write graphs with the same
names, static shapes and tensor names (``GRAPH_IO``). Everything after this step is shared: precision, shared
weights, the bundle, ATC / converter_lite. So a team that trains on an Ascend 910 with MindSpore converts without
PyTorch: ``edgetrack convert CKPT --model M --framework mindspore --target ...``
(:func:`edgetrack.converters.torch2onnx.tracker_bundle` with ``framework="mindspore"``). The DeblurGAN-v2
generator's MindSpore export (``--deblur``) is in :mod:`edgetrack.converters.deblur2onnx` (``framework="mindspore"``).
The same graphs as MindSpore's own MindIR (the source converter_lite reads with ``--fmk=MINDIR`` for ``--toolchain
converter_lite``) are :mod:`edgetrack.converters.ms2mindir`'s, exported from the same cells and example inputs.

The MindSpore twins are built from export-safe operators (DESIGN.md: no bilinear resize, no transposed
convolution). SiamRPN's head takes the form the target's runtime needs, as in the PyTorch half: one grouped Conv
for ONNX Runtime, the elementwise correlation for NPU converters.
``mindspore.onnx.export`` (MindSpore 2.10, the pinned version; it replaces ``mindspore.export(file_format="ONNX")``)
names the tensors as the bundle needs, and ``onnx.checker`` runs after it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgetrack.errors import ConversionError, InvalidArgumentError, require

__all__ = ["MS_MODULES", "load_mindspore_model", "mindspore_reference", "export_mindspore_onnx",
           "verify_mindspore_onnx"]

# family -> the MindSpore twin's module (load_<family>, graph_modules)
MS_MODULES = {"siamfc": "edgetrack.models.mindspore.siamfc", "siamrpn": "edgetrack.models.mindspore.siamrpn"}


def _ms():
    return require("mindspore", feature="converting with MindSpore", extra="mindspore")


def _module(family: str):
    import importlib

    if family not in MS_MODULES:
        raise InvalidArgumentError(f"unknown tracker family {family!r}; families: {sorted(MS_MODULES)}")
    return importlib.import_module(MS_MODULES[family])


def load_mindspore_model(checkpoint: str | os.PathLike, family: str):
    """The MindSpore twin of ``checkpoint`` (either framework's safetensors file), in inference mode."""
    _ms()
    if not Path(checkpoint).is_file():
        raise InvalidArgumentError(f"checkpoint {str(checkpoint)!r} does not exist", fix="pass the .safetensors file")
    return getattr(_module(family), f"load_{family}")(checkpoint)


def _outputs(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _graphs(model, family: str, runtime_weights: bool = False) -> dict:
    """The twin's export graphs; ``runtime_weights``: SiamRPN's head as one grouped Conv (ONNX Runtime, PyTorch)
    instead of the elementwise form NPU converters take (SiamFC's head is such a Conv anyway)."""
    if family == "siamrpn":
        return _module(family).graph_modules(model, head="grouped" if runtime_weights else "elementwise")
    return _module(family).graph_modules(model)


def _examples(model, family: str, exemplar: int, instance: int, scales: int, seed: int,
              templates: int = 1) -> dict[str, tuple]:
    """Random crops in the input convention, and the kernel/features the model makes of them (head inputs)."""
    ms = _ms()
    rng = np.random.default_rng(seed)
    z = ms.Tensor((rng.random((templates, 3, exemplar, exemplar)) * 255).astype(np.float32))
    x = ms.Tensor((rng.random((scales, 3, instance, instance)) * 255).astype(np.float32))
    graphs = _graphs(model, family)
    return {"template": (z,), "search": (x,), "head": (graphs["template"](z), graphs["search"](x))}


def mindspore_reference(model, family: str, *, join: bool = True, runtime_weights: bool = False) -> dict:
    """Graph name -> function of float32 arrays returning the MindSpore graph's outputs joined into one array (the
    form :func:`edgetrack.converters.precision.apply_precision` compares against; ``join`` False: the list of
    outputs). ``runtime_weights``: SiamRPN's head as one grouped Conv (:func:`_graphs`), the same function."""
    ms = _ms()
    from edgetrack.converters.precision import _joined

    def runner(cell):
        def run(*arrays):
            out = cell(*(ms.Tensor(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays))
            outputs = [t.asnumpy() for t in _outputs(out)]
            return _joined(outputs) if join else outputs

        return run

    return {name: runner(cell) for name, cell in _graphs(model, family, runtime_weights).items()}


def export_mindspore_onnx(model, family: str, out_dir: str | os.PathLike, graph_io: dict, *, exemplar: int = 127,
                          instance: int = 255, scales: int = 1, runtime_weights: bool = False,
                          templates: int = 1) -> dict[str, Path]:
    """Export the three graphs with ``mindspore.onnx.export`` to ``out_dir/{template,search,head}.onnx`` under
    ``graph_io``'s tensor names, each checked by ``onnx.checker``. ``runtime_weights``: see :func:`_graphs`. No
    numerical check (:func:`verify_mindspore_onnx`)."""
    ms = _ms()
    onnx = require("onnx", feature="ONNX export", extra="mindspore")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = _examples(model, family, exemplar, instance, scales, seed=0, templates=templates)
    paths: dict[str, Path] = {}
    for name, cell in _graphs(model, family, runtime_weights).items():
        inputs, outputs = graph_io[name]
        path = out / f"{name}.onnx"
        try:
            ms.onnx.export(cell, *examples[name], file_name=str(out / name), input_names=list(inputs),
                           output_names=list(outputs))
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:
            raise ConversionError(
                f"exporting {family} graph {name!r} with mindspore.onnx.export failed: {exc}",
                fix="the MindSpore twins are export-safe as edgetrack builds them; check the checkpoint's family",
            ) from exc
        paths[name] = path
    return paths


def verify_mindspore_onnx(model, family: str, paths: dict, *, exemplar: int = 127, instance: int = 255,
                          scales: int = 1, tolerance: float = 1e-4, templates: int = 1) -> dict[str, dict]:
    """Each graph in ONNX Runtime (CPU) against MindSpore on other random inputs than the export's: the same rows
    as :func:`edgetrack.converters.torch2onnx.verify_siamfc_onnx` (max_abs, max_rel to the output's scale).
    Raises :class:`ConversionError` naming the graph when ``max_rel`` exceeds ``tolerance``."""
    ort = require("onnxruntime", feature="checking ONNX graphs")
    examples = _examples(model, family, exemplar, instance, scales, seed=1, templates=templates)
    cells = _graphs(model, family)
    from edgetrack.converters.torch2onnx import graph_parity

    parity: dict[str, dict] = {}
    for name, path in paths.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got_all = session.run(None, {i.name: t.asnumpy() for i, t in zip(session.get_inputs(), examples[name])})
        expected_all = [t.asnumpy() for t in _outputs(cells[name](*examples[name]))]
        parity[name] = graph_parity(name, [o.name for o in session.get_outputs()], got_all, expected_all,
                                    "mindspore", f"onnxruntime {ort.__version__} CPUExecutionProvider", tolerance,
                                    fix="report this as a bug with the checkpoint")
    return parity
