"""PyTorch SiamFC checkpoint -> three static-shape ONNX graphs (template, search, head), checked in ONNX Runtime.

Why the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``): it emits exactly the opset asked for,
and the device toolchains are old. ATC's ONNX operator list for Atlas inference products is stated against
ONNX 1.12 and supports opsets up to about 11-13 per operator; the dynamo exporter starts at opset 18 and
down-converts through onnxscript's version converter, which is where Resize/Slice attributes change meaning.
Opset 11 is the default: it is the oldest opset with the Resize and Slice forms these graphs need, and every
operator here (Conv, MaxPool, Relu, Add, Mul, Slice, nearest Resize) is on ATC's list at that opset.

Static shapes everywhere (no ``dynamic_axes``): NPU compilers want them, and the tracker always runs the same
sizes — one exemplar, ``scales`` search crops (or, for SiamFC's ``scale_search="templates"``, ``templates``
exemplars and one search crop).

Graph names and tensor names are the bundle's contract with the runtime::

    template: z (1, 3, E, E)                         -> kernel   (1, C, k, k)
    search:   x (scales, 3, I, I)                    -> features (scales, C, S, S)
    head:     kernel (1, C, k, k), features (...)    -> response (scales, 1, R, R)

    (templates: z (T, 3, E, E) -> kernel (T, C, k, k); x (1, 3, I, I); response (T, 1, R, R))

Inputs are float32 NCHW, BGR, 0..255 un-normalised (:mod:`edgetrack.tracking.siamfc`'s convention).
"""
from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgetrack.bundle import GraphSpec, Manifest, TensorSpec, sha256_file, write_bundle
from edgetrack.errors import BundleError, ConversionError, InvalidArgumentError, require

__all__ = [
    "DEFAULT_OPSET",
    "FP32_TOLERANCE",
    "GRAPH_IO",
    "export_siamfc_onnx",
    "verify_siamfc_onnx",
    "siamfc_to_onnx",
    "siamfc_bundle",
    "siamrpn_bundle",
    "tracker_bundle",
    "FAMILIES",
]

DEFAULT_OPSET = 11
# Largest |onnxruntime - torch| allowed, relative to the largest |torch| of that output. Both run fp32 on CPU;
# the differences come only from summation order in convolutions, which stays around 1e-6 of the output scale.
FP32_TOLERANCE = 1e-4

GRAPH_IO = {
    "template": (("z",), ("kernel",)),
    "search": (("x",), ("features",)),
    "head": (("kernel", "features"), ("response",)),
}


def _torch():
    return require("torch", feature="converting PyTorch models", extra="torch")


@dataclasses.dataclass(frozen=True)
class _Family:
    """How one tracker family exports: its torch module, loader, graph tensor names and tracking parameters."""

    name: str
    module: str  # the torch model module (class, loader, graph_modules)
    model_class: str
    loader: str

    def torch_module(self):
        import importlib

        return importlib.import_module(self.module)

    @property
    def graph_io(self) -> dict:
        if self.name == "siamfc":
            return GRAPH_IO
        from edgetrack.models.siamrpn_config import GRAPH_IO as RPN_IO

        return RPN_IO

    def graph_modules(self, model, runtime_weights: bool = False) -> dict:
        """The model's export graphs. ``runtime_weights``: the head may be a Conv whose weight is computed at run
        time (ONNX Runtime and PyTorch take it): SiamRPN then correlates with one grouped Conv instead of the
        elementwise form NPU converters need (``models/torch/siamrpn.py``); SiamFC's head is such a Conv anyway."""
        module = self.torch_module()
        if self.name == "siamrpn":
            return module.graph_modules(model, head="grouped" if runtime_weights else "elementwise")
        return module.graph_modules(model)

    def params(self, model, scales: int, scale_search: str = "crops"):
        """The runtime's tracking parameters for ``model`` (SiamFC searches ``scales`` scales per frame, by
        ``scale_search``: see :class:`~edgetrack.tracking.siamfc.SiamFCParams`)."""
        if self.name == "siamfc":
            from edgetrack.tracking.siamfc import SiamFCParams

            return SiamFCParams(scale_num=scales, scale_search=scale_search)
        if scale_search != "crops":
            raise InvalidArgumentError(
                f"scale_search={scale_search!r} is SiamFC's; a {self.name} model searches one crop (its anchors "
                "cover scale)", fix="leave scale_search at 'crops' (drop --scale-search)")
        return model.config.tracking_params()


# Which twin loads a checkpoint and exports its graphs (tracker_bundle's ``framework``).
FRAMEWORKS = ("torch", "mindspore")

FAMILIES = {
    "siamfc": _Family("siamfc", "edgetrack.models.torch.siamfc", "SiamFC", "load_siamfc"),
    "siamrpn": _Family("siamrpn", "edgetrack.models.torch.siamrpn", "SiamRPN", "load_siamrpn"),
}


def search_batch(params) -> int:
    """Search crops per frame: SiamFC's scales (one with ``scale_search="templates"``), one for SiamRPN (its
    anchors cover scale)."""
    return int(getattr(params, "search_batch", 1))


def template_batch(params) -> int:
    """Template crops at ``init``: SiamFC's scales with ``scale_search="templates"``, else one."""
    return int(getattr(params, "template_batch", 1))


def family_of(model) -> _Family:
    for family in FAMILIES.values():
        if type(model).__name__ == family.model_class and type(model).__module__ == family.module:
            return family
    raise InvalidArgumentError(
        f"converters take a tracker model ({', '.join(f.model_class for f in FAMILIES.values())}) or its "
        f"checkpoint, got {type(model).__name__}"
    )


def _load_model(checkpoint_or_model, family: str = "siamfc"):
    torch = _torch()
    if isinstance(checkpoint_or_model, torch.nn.Module):
        family_of(checkpoint_or_model)  # a typed error for a module of no known family
        return checkpoint_or_model.eval()
    if isinstance(checkpoint_or_model, (str, os.PathLike)):
        if not Path(checkpoint_or_model).is_file():
            raise InvalidArgumentError(
                f"checkpoint {str(checkpoint_or_model)!r} does not exist", fix="pass the .safetensors file"
            )
        fam = FAMILIES[family]
        return getattr(fam.torch_module(), fam.loader)(checkpoint_or_model)
    raise InvalidArgumentError(
        f"expected a checkpoint path or a tracker model, got {type(checkpoint_or_model).__name__}"
    )


def _outputs(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _check_sizes(model, exemplar: int, instance: int, scales: int, templates: int = 1) -> None:
    for name, value in (("exemplar", exemplar), ("instance", instance), ("scales", scales), ("templates", templates)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    cfg = model.config
    if templates > 1 and scales > 1:
        raise InvalidArgumentError(
            f"{templates} templates against {scales} search crops: one of the two must be 1",
            fix="search the scales by crops (templates=1) or by templates (scales=1)")
    if (instance - exemplar) % cfg.total_stride:
        raise InvalidArgumentError(
            f"instance - exemplar must be a multiple of the stride {cfg.total_stride}, got {instance} - {exemplar}"
        )


def _example_inputs(model, exemplar: int, instance: int, scales: int, seed: int = 0, templates: int = 1):
    """Random crops in the input convention, and the kernel/features the model makes of them (head inputs)."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(templates, 3, exemplar, exemplar, generator=g) * 255.0
    x = torch.rand(scales, 3, instance, instance, generator=g) * 255.0
    with torch.no_grad():
        kernel = model.template(z)
        features = model.search(x)
    return {"template": (z,), "search": (x,), "head": (kernel, features)}


def export_siamfc_onnx(
    checkpoint_or_model,
    out_dir: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    exemplar: int = 127,
    instance: int = 255,
    scales: int = 3,
    runtime_weights: bool = False,
    templates: int = 1,
) -> dict[str, Path]:
    """Export the three graphs to ``out_dir/{template,search,head}.onnx`` and run onnx's checker on each.

    ``runtime_weights``: the head may hold a Conv whose weight is a graph input (:meth:`_Family.graph_modules`;
    for ONNX Runtime targets, not for NPU converters). No numerical check: :func:`verify_siamfc_onnx` does that
    (:func:`siamfc_to_onnx` runs both).
    """
    torch = _torch()
    onnx = require("onnx", feature="ONNX export", extra="torch")

    model = _load_model(checkpoint_or_model)
    family = family_of(model)
    io = family.graph_io
    _check_sizes(model, exemplar, instance, scales, templates)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = _example_inputs(model, exemplar, instance, scales, templates=templates)
    paths: dict[str, Path] = {}
    for name, module in family.graph_modules(model, runtime_weights).items():
        inputs, outputs = io[name]
        path = out / f"{name}.onnx"
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # The TorchScript exporter is deprecated in favour of dynamo; we choose it on purpose (see above).
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                # The head's branch on the template count is a constant here: shapes are static by design.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.onnx.export(
                    module.eval(),
                    examples[name],
                    str(path),
                    input_names=list(inputs),
                    output_names=list(outputs),
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        except Exception as exc:
            raise ConversionError(
                f"exporting {family.name} graph {name!r} to ONNX (opset {opset}) failed: {exc}",
                fix="check the opset (11 is the tested one) and that the model is an edgetrack tracker",
            ) from exc
        paths[name] = path
    return paths


def verify_siamfc_onnx(
    checkpoint_or_model,
    paths: dict[str, str | os.PathLike],
    *,
    exemplar: int = 127,
    instance: int = 255,
    scales: int = 3,
    tolerance: float = FP32_TOLERANCE,
    templates: int = 1,
) -> dict[str, dict]:
    """Run each graph in ONNX Runtime (CPU) against the torch module on random inputs.

    Returns ``{graph: {"max_abs": .., "max_rel": .., "scale": .., "tolerance": .., "runtime": ..}}``, where
    ``max_rel`` is max |ort - torch| / max |torch|. Raises :class:`ConversionError` naming the graph when
    ``max_rel`` exceeds ``tolerance``.
    """
    torch = _torch()
    ort = require("onnxruntime", feature="checking ONNX graphs")

    model = _load_model(checkpoint_or_model)
    family = family_of(model)
    # Other inputs than the export's, so the check does not only replay the traced example.
    examples = _example_inputs(model, exemplar, instance, scales, seed=1, templates=templates)
    modules = family.torch_module().graph_modules(model)
    parity: dict[str, dict] = {}
    for name, path in paths.items():
        inputs, outputs = family.graph_io[name]
        with torch.no_grad():
            expected_all = [t.numpy() for t in _outputs(modules[name](*examples[name]))]
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {n: t.numpy() for n, t in zip(inputs, examples[name])}
        parity[name] = graph_parity(name, outputs, session.run(list(outputs), feeds), expected_all, "torch",
                                    f"onnxruntime {ort.__version__} CPUExecutionProvider", tolerance,
                                    fix="report this as a bug with the checkpoint; try another opset")
    return parity


def graph_parity(graph: str, names, got_all, expected_all, reference: str, runtime: str, tolerance: float,
                 fix: str, *, what: str = "ONNX graph") -> dict:
    """One graph's parity row: ONNX Runtime's outputs ``got_all`` against the framework's ``expected_all``, each
    output against its own scale (``max_rel`` = max |got − expected| / max |expected|). Raises
    :class:`ConversionError` naming the graph on a shape mismatch or when ``max_rel`` exceeds ``tolerance``.
    ``what`` names the checked file in those errors (``"MindIR of graph"``: :mod:`edgetrack.converters.ms2mindir`)."""
    max_abs = max_rel = scale = 0.0
    for out_name, got, expected in zip(names, got_all, expected_all, strict=True):
        expected = np.asarray(expected, dtype=np.float64)
        if got.shape != expected.shape:
            raise ConversionError(
                f"{what} {graph!r} gives {out_name} of shape {got.shape}, {reference} gives {expected.shape}")
        a = float(np.max(np.abs(got.astype(np.float64) - expected)))
        s_ = float(np.max(np.abs(expected)))
        max_abs, scale = max(max_abs, a), max(scale, s_)
        max_rel = max(max_rel, a / s_ if s_ > 0 else a)
    if not max_rel <= tolerance:
        raise ConversionError(
            f"{what} {graph!r} disagrees with {reference}: max abs error {max_abs:.3g}, "
            f"{max_rel:.3g} of the output scale {scale:.3g} (tolerance {tolerance:g})", fix=fix)
    return {"reference": reference, "runtime": runtime, "max_abs": max_abs, "max_rel": max_rel, "scale": scale,
            "tolerance": tolerance, "passed": True}


def siamfc_to_onnx(
    checkpoint_or_model,
    out_dir: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    exemplar: int = 127,
    instance: int = 255,
    scales: int = 3,
) -> dict[str, Path]:
    """Export the three SiamFC graphs to ``out_dir`` and check them (onnx checker + ONNX Runtime vs torch).

    Returns graph name -> path. Raises :class:`ConversionError` if a graph fails to export or disagrees.
    """
    model = _load_model(checkpoint_or_model)
    sizes = dict(exemplar=exemplar, instance=instance, scales=scales)
    paths = export_siamfc_onnx(model, out_dir, opset=opset, **sizes)
    verify_siamfc_onnx(model, paths, **sizes)
    return paths


def _graph_specs(paths: dict, io: dict) -> dict[str, GraphSpec]:
    """The graphs' tensor specs read from the exported fp32 ONNX files (static shapes, float32), whichever
    framework wrote them."""
    import onnx

    specs = {}
    for name in ("template", "search", "head"):
        graph = onnx.load(str(paths[name]), load_external_data=False).graph
        shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
                  for v in (*graph.input, *graph.output)}
        inputs, outputs = io[name]
        specs[name] = GraphSpec(name, f"{name}.onnx", "",
                                tuple(TensorSpec(n, shapes[n], "float32") for n in inputs),
                                tuple(TensorSpec(n, shapes[n], "float32") for n in outputs))
    return specs


def _opset(path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def siamfc_bundle(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False, **kwargs) -> Path:
    """:func:`tracker_bundle` for a SiamFC (HSM-SiamFC) checkpoint."""
    return tracker_bundle(checkpoint, out_dir, force, family="siamfc", **kwargs)


def siamrpn_bundle(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False, **kwargs) -> Path:
    """:func:`tracker_bundle` for a SiamRPN checkpoint (one search crop per frame: ``scales`` is ignored)."""
    return tracker_bundle(checkpoint, out_dir, force, family="siamrpn", **kwargs)


def tracker_bundle(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    force: bool = False,
    *,
    family: str = "siamfc",
    opset: int = DEFAULT_OPSET,
    scales: int = 3,
    scale_search: str = "crops",
    target: str = "cpu",
    precision: str = "fp32",
    calibration: str | None = None,
    calibration_frames: int | None = None,
    verify_data: str | None = None,
    share: bool = True,
    runtime_weights: bool = True,
    framework: str = "torch",
    simplify: bool = True,
    mindir: bool = False,
) -> Path:
    """Checkpoint -> verified ONNX graphs -> a bundle folder (see :mod:`edgetrack.bundle`) for ONNX Runtime.

    ``framework``: which twin loads the checkpoint and exports the graphs, ``"torch"`` (``torch.onnx.export``) or
    ``"mindspore"`` (``mindspore.export``, :mod:`edgetrack.converters.ms2onnx`; no PyTorch needed). Each graph is
    checked against that framework, and the rest of the chain is the same for both.

    ``family``: "siamfc" or "siamrpn" (:data:`FAMILIES`). ``scales`` and ``scale_search``: SiamFC's scale count and
    how they are searched (:class:`~edgetrack.tracking.siamfc.SiamFCParams`; the graphs' batch sizes follow).
    ``share``: store the template and search graphs'
    weights (the same backbone) once, in ``weights.bin`` (:mod:`edgetrack.converters.onnx_weights`).
    ``runtime_weights``: SiamRPN's head correlates with one grouped Conv whose weight is the template's kernel
    (ONNX Runtime and PyTorch run it; about 7× faster on a CPU); False keeps the elementwise form the NPU converters
    need, which ``edgetrack convert --target ascend...`` asks for (:meth:`_Family.graph_modules`).
    ``simplify``: simplify each exported graph (:mod:`edgetrack.converters.onnx_simplify`) before its parity check.
    ``mindir`` (``framework="mindspore"`` only): also export each graph as MindSpore's own MindIR, in the same form
    (``runtime_weights``) and with the same input names, order and static shapes, checked against the MindSpore cell
    (:mod:`edgetrack.converters.ms2mindir`): ``<graph>.mindir`` beside the ONNX graphs, ``source["mindir"]``,
    ``parity["mindspore->mindir"]``. They are the fp32 sources converter_lite reads with ``--fmk=MINDIR``
    (:func:`edgetrack.converters.onnx2om.ascend_bundle`); ONNX Runtime and the simulator keep reading the ONNX graphs.

    ``target`` "cpu" or "cuda" (the same ONNX graphs; the manifest says which device they were built for),
    ``precision`` "fp32", "fp16" or "int8"; ``calibration`` (a data set spec, required for int8),
    ``calibration_frames`` and ``verify_data``: see :func:`edgetrack.converters.precision.apply_precision`.
    """
    from edgetrack.converters import precision as lower

    if framework not in FRAMEWORKS:
        raise InvalidArgumentError(f"unknown framework {framework!r}; frameworks: {', '.join(FRAMEWORKS)}",
                                   fix="use torch or mindspore")
    if mindir and framework != "mindspore":
        raise InvalidArgumentError(
            f"mindir=True exports MindSpore's own MindIR, which the {framework!r} twin cannot write",
            fix="use framework='mindspore' (--framework mindspore), or leave mindir off: converter_lite then reads "
                "the ONNX graphs (--mindir-source onnx)")
    torch = _torch() if framework == "torch" else None
    import onnx
    import onnxruntime

    import edgetrack
    from edgetrack.converters.onnx_simplify import simplify_graphs
    from edgetrack.converters.onnx_weights import DATA_FILE, share_weights
    from edgetrack.tracking.siamfc import INPUT_CHANNEL_ORDER, INPUT_VALUE_RANGE

    if family not in FAMILIES:
        raise InvalidArgumentError(f"unknown tracker family {family!r}; families: {sorted(FAMILIES)}")
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise InvalidArgumentError(f"tracker_bundle takes a checkpoint path, got {type(checkpoint).__name__}")
    out = Path(out_dir)
    if out.exists() and not force:
        # Checked before the export too, so the user does not wait for a conversion that cannot be written.
        raise BundleError(f"{str(out)!r} already exists", fix="choose another folder or pass force=True / --force")
    lower.check_request(precision, target, calibration)
    fam = FAMILIES[family]
    if framework == "torch":
        model = _load_model(checkpoint, family)
    else:
        from edgetrack.converters import ms2onnx

        model = ms2onnx.load_mindspore_model(checkpoint, family)
    params = fam.params(model, scales, scale_search)
    sizes = dict(exemplar=params.exemplar_size, instance=params.instance_size, scales=search_batch(params),
                 templates=template_batch(params))
    with tempfile.TemporaryDirectory(prefix="edgetrack-onnx-") as tmp:
        if framework == "torch":
            paths = export_siamfc_onnx(model, tmp, opset=opset, runtime_weights=runtime_weights, **sizes)
            simplified = simplify_graphs(paths, simplify)
            parity = verify_siamfc_onnx(model, paths, **sizes)
            reference = lower.torch_reference(model)
            exporter = {"torch": torch.__version__, "onnx_opset": opset, "exporter": "torch.onnx.export(dynamo=False)"}
        else:
            import mindspore

            paths = ms2onnx.export_mindspore_onnx(model, family, tmp, fam.graph_io, runtime_weights=runtime_weights,
                                                  **sizes)
            simplified = simplify_graphs(paths, simplify)
            parity = ms2onnx.verify_mindspore_onnx(model, family, paths, **sizes)
            reference = ms2onnx.mindspore_reference(model, family)
            exporter = {"mindspore": mindspore.__version__, "onnx_opset": _opset(paths["search"]),
                        "exporter": "mindspore.export"}
        mindir_files, mindir_parity, mindir_source = {}, {}, {}
        if mindir:
            from edgetrack.converters import ms2mindir

            made = ms2mindir.export_tracker_mindir(model, family, Path(tmp) / "mindir", fam.graph_io,
                                                   runtime_weights=runtime_weights, **sizes)
            mindir_parity = {ms2mindir.STAGE: ms2mindir.verify_tracker_mindir(
                model, family, made, fam.graph_io, runtime_weights=runtime_weights, **sizes)}
            mindir_files = {f"{name}{ms2mindir.MINDIR_SUFFIX}": path for name, path in made.items()}
            mindir_source = {ms2mindir.SOURCE_SECTION: {
                "graphs": {name: f"{name}{ms2mindir.MINDIR_SUFFIX}" for name in made},
                "exporter": ms2mindir.EXPORTER, "mindspore": exporter["mindspore"], "precision": "fp32",
                "parity": [ms2mindir.STAGE]}}
        specs = _graph_specs(paths, fam.graph_io)
        lowered = lower.apply_precision(
            paths, tmp, precision=precision, target=target, params=params,
            reference=reference, reference_name=framework, calibration=calibration,
            calibration_frames=calibration_frames or lower.DEFAULT_CALIBRATION_FRAMES, verify_data=verify_data,
        )
        paths = dict(lowered.paths)
        extra = dict(mindir_files)
        shared = None
        if share and paths["template"].parent == paths["search"].parent:
            shared = share_weights({g: paths[g] for g in ("template", "search")})
            extra[DATA_FILE] = paths["template"].parent / DATA_FILE
        manifest = Manifest(
            family=fam.name,
            model=model.config.name,
            target=target,
            precision=precision,
            graphs=specs,
            preprocessing={
                "template_size": [params.exemplar_size, params.exemplar_size],
                "search_size": [params.instance_size, params.instance_size],
                "channel_order": INPUT_CHANNEL_ORDER,
                "value_range": list(INPUT_VALUE_RANGE),
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
                "layout": "NCHW",
                "dtype": "float32",
            },
            tracking=dataclasses.asdict(params),
            source={
                "checkpoint": Path(checkpoint).name,
                "checkpoint_sha256": sha256_file(checkpoint),
                "framework": framework,
                "config": model.config.to_dict(),
                **lowered.source,
                **mindir_source,
            },
            tools={
                "edgetrack": edgetrack.__version__,
                "python": platform.python_version(),
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
                **exporter,
                **simplified,
                **lowered.tools,
            },
            parity={f"{framework}->onnx": parity, **mindir_parity, **lowered.parity},
            device_files_built=True,  # for targets "cpu" and "cuda" the ONNX graphs are the device files
            notes=" ".join(filter(None, [lowered.notes, fam.name == "siamrpn" and (
                "The head correlates with one grouped Conv whose weight is the template's kernel (for ONNX Runtime "
                "and PyTorch; an Ascend --target exports the elementwise form)." if runtime_weights else
                "The head correlates with Slice/Mul/Add only (the form NPU converters take)."), shared and (
                f"Template and search share one copy of their weights in {DATA_FILE} (ONNX external data, "
                f"{shared['bytes'] / 1e6:.1f} MB; {shared['saved_bytes'] / 1e6:.1f} MB not stored twice).")])),
        )
        return write_bundle(out, manifest, paths, force=force, extra_files=extra)
