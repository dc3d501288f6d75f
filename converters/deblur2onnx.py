"""DeblurGAN-v2 generator (PyTorch checkpoint) -> two static ONNX graphs, and a tracker bundle with a deblur stage.

The deblur stage of Deblur-SiamRPN (issue #4) runs on the tracker's crops, not on whole frames (the speed choice for
the edge): the 127×127 template crop once at ``init`` and the search crop batch every frame. Static shapes per graph
(DESIGN.md), so the generator, which is fully convolutional, is exported twice::

    deblur_template: crop (1, 3, E, E)        -> deblurred (1, 3, E, E)
    deblur_search:   crop (n, 3, I, I)        -> deblurred (n, 3, I, I)     n: the tracker's search batch

with E, I and n read from the tracker bundle's own template and search graphs (SiamFC: n = its scales; SiamRPN: 1).
Input and output are float32 NCHW BGR 0..255, the convention of every graph in a bundle, so a deblurred crop feeds the
tracker's graph unchanged (:mod:`edgetrack.models.torch.deblurgan` puts the [-1, 1] scaling inside the graph).
Export as :mod:`edgetrack.converters.torch2onnx` does it: the TorchScript exporter at opset 11, checked by onnx's
checker and against torch in ONNX Runtime (max error ≤ 1e-4 of the output's scale).

:func:`add_deblur` composes: a new bundle holding the tracker bundle's graphs and further files (a shared
``weights.bin`` and the like, copied through unchanged) and the two deblur graphs, whose weights are stored once in
``deblur_weights.bin`` (:func:`edgetrack.converters.onnx_weights.share_weights`: the two graphs hold the same
weights). The manifest's ``preprocessing["deblur"]`` describes the stage (read by
:class:`edgetrack.tracking.blur.DeblurSpec`): the graphs, the blur gate's measure and threshold, the generator's
checkpoint, sha256 and configuration, and where the parity results are. It is a key of a free-form section, so the
bundle format does not change: older edgetrack releases load the bundle and track without the stage.

For Ascend: add the deblur stage to the portable fp32 bundle (target cpu), then convert that for the chip
(``edgetrack convert --target ascend310`` on the bundle): the Ascend converter builds every graph of the bundle.
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
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PRECISIONS",
    "load_generator",
    "export_deblur_onnx",
    "verify_deblur_onnx",
    "deblur_to_onnx",
    "add_deblur",
]

# crop role -> bundle graph name (and file stem).
DEBLUR_GRAPHS = {"template": "deblur_template", "search": "deblur_search"}
INPUT_NAME, OUTPUT_NAME = "crop", "deblurred"
# The deblur graphs' shared weights: a file of their own beside the tracker's (whose weights never coincide).
DATA_FILE = "deblur_weights.bin"
PRECISIONS = ("fp32", "fp16")
_TARGETS = ("cpu", "cuda")


def _torch():
    return require("torch", feature="converting the DeblurGAN-v2 generator", extra="torch")


def load_generator(checkpoint_or_model):
    """The generator of a DeblurGAN-v2 checkpoint (eval mode), or the given generator.

    A checkpoint of another model (a tracker, say) is a :class:`CheckpointError` naming what it holds.
    """
    torch = _torch()
    from edgetrack.models.deblur_config import FAMILY
    from edgetrack.models.torch.checkpoint import read_metadata
    from edgetrack.models.torch.deblurgan import FPNMobileNetV2, load_deblurgan

    if isinstance(checkpoint_or_model, FPNMobileNetV2):
        return checkpoint_or_model.eval()
    if isinstance(checkpoint_or_model, torch.nn.Module):
        raise InvalidArgumentError(
            "the deblur stage takes a DeblurGAN-v2 generator (FPNMobileNetV2), got a "
            f"{type(checkpoint_or_model).__name__}",
            fix="pass the generator's checkpoint (.safetensors written by save_deblurgan)")
    if not isinstance(checkpoint_or_model, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"expected a DeblurGAN-v2 checkpoint path, got {type(checkpoint_or_model).__name__}")
    path = Path(checkpoint_or_model)
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
    return load_deblurgan(path)


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


def _examples(shapes: dict, seed: int):
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    return {role: torch.rand(*shape, generator=g) * 255.0 for role, shape in shapes.items()}


def export_deblur_onnx(checkpoint_or_model, out_dir: str | os.PathLike, shapes: dict, *,
                       opset: int = 11) -> dict[str, Path]:
    """Export the generator at ``shapes`` (role -> (n, 3, H, W)) to ``out_dir/<graph>.onnx`` (graph names:
    :data:`DEBLUR_GRAPHS`) and run onnx's checker on each. Returns role -> path. No numerical check here."""
    torch = _torch()
    onnx = require("onnx", feature="ONNX export", extra="torch")
    model = load_generator(checkpoint_or_model)
    shapes = _check_shapes(shapes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = _examples(shapes, seed=0)
    paths = {}
    for role, graph in DEBLUR_GRAPHS.items():
        path = out / f"{graph}.onnx"
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # The TorchScript exporter on purpose (see converters/torch2onnx.py): the device toolchains are old.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.onnx.export(model, (examples[role],), str(path), input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME], opset_version=opset, do_constant_folding=True,
                                  dynamo=False)
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        except Exception as exc:
            raise ConversionError(
                f"exporting the deblur graph {graph!r} {shapes[role]} to ONNX (opset {opset}) failed: {exc}",
                fix="check the opset (11 is the tested one) and that the checkpoint is edgetrack's DeblurGAN-v2",
            ) from exc
        paths[role] = path
    return paths


def verify_deblur_onnx(checkpoint_or_model, paths: dict, shapes: dict, *, tolerance: float = 1e-4,
                       reference: dict | None = None, reference_name: str = "torch") -> dict[str, dict]:
    """Each deblur graph in ONNX Runtime (CPU) against torch (or against ``reference``: role -> path of another
    ONNX graph, e.g. the fp32 one for an fp16 graph) on random crops other than the export's.

    Returns ``{graph: {"max_abs", "max_rel", "scale", "tolerance", "passed", ...}}`` (``max_rel``: max |error| over
    max |reference|); raises :class:`ConversionError` naming the graph when ``max_rel`` exceeds ``tolerance``.
    """
    torch = _torch()
    ort = require("onnxruntime", feature="checking ONNX graphs")
    shapes = _check_shapes(shapes)
    examples = _examples(shapes, seed=1)
    model = load_generator(checkpoint_or_model) if reference is None else None
    out = {}
    for role, graph in DEBLUR_GRAPHS.items():
        x = examples[role].numpy()
        if reference is None:
            with torch.no_grad():
                expected = model(examples[role]).numpy()
        else:
            ref = ort.InferenceSession(str(reference[role]), providers=["CPUExecutionProvider"])
            (expected,) = ref.run(None, {INPUT_NAME: x})
        session = ort.InferenceSession(str(paths[role]), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {INPUT_NAME: x})
        if got.shape != expected.shape:
            raise ConversionError(f"ONNX graph {graph!r} gives shape {got.shape}, {reference_name} gives "
                                  f"{expected.shape}")
        max_abs = float(np.max(np.abs(got.astype(np.float64) - expected)))
        scale = float(np.max(np.abs(expected)))
        max_rel = max_abs / scale if scale > 0 else max_abs
        out[graph] = {"reference": reference_name, "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
                      "inputs": "random", "max_abs": max_abs, "max_rel": max_rel, "scale": scale,
                      "tolerance": tolerance, "passed": max_rel <= tolerance}
        if not max_rel <= tolerance:
            raise ConversionError(
                f"ONNX graph {graph!r} disagrees with {reference_name}: max abs error {max_abs:.3g}, {max_rel:.3g} of "
                f"the output scale {scale:.3g} (tolerance {tolerance:g})",
                fix="report this as a bug with the checkpoint; try another opset",
            )
    return out


def deblur_to_onnx(checkpoint_or_model, out_dir: str | os.PathLike, shapes: dict, *,
                   opset: int = 11) -> tuple[dict[str, Path], dict[str, dict]]:
    """:func:`export_deblur_onnx` then :func:`verify_deblur_onnx`: (role -> path, parity)."""
    model = load_generator(checkpoint_or_model)
    paths = export_deblur_onnx(model, out_dir, shapes, opset=opset)
    return paths, verify_deblur_onnx(model, paths, shapes)


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
    opset: int = 11,
) -> Path:
    """A new bundle at ``out``: ``tracker_bundle``'s graphs and files plus the DeblurGAN-v2 generator of
    ``deblur_checkpoint`` as the two deblur graphs (module docstring), each checked against torch.

    ``precision``: the deblur graphs' precision, "fp32" or "fp16" (cpu: fp16 storage with fp32 compute; cuda: fp16
    compute, as :mod:`edgetrack.converters.precision` builds the tracker's graphs), checked against the fp32 graphs
    and torch within :data:`~edgetrack.converters.precision.SANITY_BOUNDS`. ``gate``: a
    :class:`~edgetrack.tracking.blur.BlurGate`, a threshold, or None for the calibrated default. ``model``: the
    composed model's name (default ``deblur-<family>``, e.g. ``deblur-siamrpn``). Returns the bundle folder.
    """
    from edgetrack.converters import precision as lower
    from edgetrack.converters.onnx_weights import share_weights
    from edgetrack.tracking.blur import DEBLUR_SECTION, DEFAULT_THRESHOLD

    torch = _torch()
    import onnx
    import onnxruntime

    import edgetrack

    if precision not in PRECISIONS:
        raise UnknownChoiceError("deblur precision", precision, PRECISIONS,
                                 fix="int8 is not offered for the generator: its output is an image, not a score")
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
    clash = set(DEBLUR_GRAPHS.values()) & set(m.graphs)
    files_taken = {g.file for g in m.graphs.values()} | set(m.files)
    clash |= {f for f in (*(f"{g}.onnx" for g in DEBLUR_GRAPHS.values()), DATA_FILE) if f in files_taken}
    if clash:
        raise BundleError(f"{where} already holds {sorted(clash)}, the deblur stage's names")
    shapes = _tracker_shapes(src)
    generator = load_generator(deblur_checkpoint)
    name = model.strip() if model else f"deblur-{m.family}"

    with tempfile.TemporaryDirectory(prefix="edgetrack-deblur-") as tmp:
        tmp = Path(tmp)
        fp32 = export_deblur_onnx(generator, tmp / "fp32", shapes, opset=opset)
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
        parity = {f"deblur torch->{'onnx' if precision == 'fp32' else precision}":
                  verify_deblur_onnx(generator, final, shapes, tolerance=bound)}
        if precision != "fp32":
            parity[f"deblur onnx-fp32->{precision}"] = verify_deblur_onnx(
                generator, final, shapes, tolerance=bound, reference=fp32, reference_name="onnx-fp32")

        graphs = dict(m.graphs)
        files = {gname: src.graph_path(gname) for gname in m.graphs}
        for role, graph in DEBLUR_GRAPHS.items():
            spec = TensorSpec(INPUT_NAME, shapes[role], "float32")
            graphs[graph] = GraphSpec(graph, f"{graph}.onnx", "", (spec,),
                                      (dataclasses.replace(spec, name=OUTPUT_NAME),))
            files[graph] = final[role]
        extra = {rel: src.file_path(rel) for rel in m.files}
        extra[DATA_FILE] = final_dir / DATA_FILE

        checkpoint = generator if isinstance(deblur_checkpoint, torch.nn.Module) else Path(deblur_checkpoint)
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
            "checkpoint": checkpoint.name if isinstance(checkpoint, Path) else "(in-memory model)",
            "checkpoint_sha256": sha256_file(checkpoint) if isinstance(checkpoint, Path) else None,
            "framework": "torch",
            "config": generator.config.to_dict(),
            "precision": precision if precision == "fp32" else f"{precision}: {converted}",
            "weights": weights,
            "parity": sorted(parity),
        }
        preprocessing = {**m.preprocessing, DEBLUR_SECTION: section}
        tools = {**m.tools, "torch": torch.__version__, "onnx": onnx.__version__,
                 "onnxruntime": onnxruntime.__version__, "deblur_onnx_opset": opset,
                 "deblur_exporter": "torch.onnx.export(dynamo=False)", "python": platform.python_version(),
                 "edgetrack": edgetrack.__version__}
        note = (f"Deblur stage: DeblurGAN-v2 ({generator.config.name}) on the template and search crops, gated by "
                f"blur ({gate.measure} >= {gate.threshold:g}); preprocessing.{DEBLUR_SECTION} describes it.")
        manifest = dataclasses.replace(
            m, model=name, graphs=graphs, preprocessing=preprocessing, tools=tools,
            parity={**m.parity, **parity}, notes=_join_notes(m.notes, note), files={}, format_version=None)
        return write_bundle(out, manifest, files, force=force, extra_files=extra)
