"""``edgetrack convert``: a trained checkpoint -> a verified device bundle (manifest.json + graphs).

This version builds ONNX bundles for ``--target cpu|cuda`` at ``--precision fp32|fp16|int8`` (PyTorch -> ONNX, or
MindSpore -> ONNX with ``--framework mindspore``, each graph checked in ONNX Runtime against the framework;
fp16/int8 by :mod:`edgetrack.converters.precision`, int8 calibrated
on ``--calibration`` crops), and Ascend bundles for ``--target ascend310|ascend310b|ascend310p|ascend910`` at fp16
or int8 (the same checked ONNX graphs, audited against the chip's operator list, with AIPP configs and the exact ATC
or converter_lite commands, run when the tool is on PATH: :mod:`edgetrack.converters.onnx2om`; int8 adds AMCT's
calibration of each tracker graph on ``--calibration`` crops written into the bundle, before ATC:
:mod:`edgetrack.converters.onnx2amct`). With ``--framework mindspore --toolchain converter_lite`` each graph is also
exported as MindSpore's own MindIR (``mindspore.export(file_format="MINDIR")``, checked against MindSpore:
:mod:`edgetrack.converters.ms2mindir`) and converter_lite reads that (``--fmk=MINDIR``); ``--mindir-source onnx``
gives it the ONNX graphs instead. The other targets
and precisions are recognised by name, so a user
asking for them hears "not implemented yet" rather than "unknown", and a typo hears the valid list.
``--deblur`` adds a DeblurGAN-v2 checkpoint as the bundle's deblur stage
(:func:`edgetrack.converters.deblur2onnx.add_deblur`), exported by the same ``--framework`` as the tracker's graphs
and checked against that framework.
Checks that cost nothing (names, output folder, checkpoint metadata) run before the export, which takes a while.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from edgetrack.commands.train import MODELS
from edgetrack.errors import (
    BundleError,
    CheckpointError,
    EdgetrackError,
    InvalidArgumentError,
    MissingDependencyError,
    UnknownChoiceError,
)

# Every target and precision edgetrack is designed for (DESIGN.md), and the ones this version builds.
# cuda is the same ONNX graphs as cpu (fp16 there computes in fp16; on cpu it is fp16 storage, see precision.py).
TARGETS = ("cpu", "cuda", "ascend310", "ascend310b", "ascend310p", "ascend910")
# Ascend targets: the checked ONNX graphs go through ATC (or converter_lite) for the chip
# (edgetrack.converters.onnx2om.ascend_bundle). The AI Core computes convolutions in fp16, so fp16 is their
# precision and their default; int8 is AMCT's calibration (toolchain atc) before ATC.
ASCEND_TARGETS = ("ascend310", "ascend310b", "ascend310p", "ascend910")
ASCEND_PRECISIONS = ("fp16", "int8")
TOOLCHAINS = ("atc", "converter_lite")
# What converter_lite reads (--mindir-source): MindSpore's own MindIR (--framework mindspore only) or the ONNX graphs.
MINDIR_SOURCES = ("mindspore", "onnx")
IMPLEMENTED_TARGETS = ("cpu", "cuda", *ASCEND_TARGETS)
PRECISIONS = ("fp32", "fp16", "int8")
IMPLEMENTED_PRECISIONS = ("fp32", "fp16", "int8")

# family -> "module:function" with siamfc_bundle's signature (checkpoint, out_dir, force, *, opset, scales,
# target, precision, calibration, calibration_frames, verify_data, runtime_weights, framework, simplify, mindir).
BUNDLERS = {
    "siamfc": "edgetrack.converters.torch2onnx:siamfc_bundle",
    "siamrpn": "edgetrack.converters.torch2onnx:siamrpn_bundle",
}

# Libraries the PyTorch -> ONNX path imports; all come with the [torch] extra.
_NEEDS = ("safetensors", "onnx")  # besides the framework that exports (FRAMEWORKS)


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a trained checkpoint into a verified device bundle",
        description="Export a checkpoint to static-shape graphs (template, search, head), check every graph "
        "numerically against the framework, and write a bundle folder (manifest.json + graphs) that "
        "edgetrack.Tracker loads. --target cpu or cuda: ONNX graphs at --precision fp32, fp16 (cpu: fp16 weights, "
        "fp32 arithmetic; cuda: fp16 arithmetic) or int8 (static quantization calibrated on --calibration crops). "
        "--target ascend310|ascend310b|ascend310p|ascend910: the checked ONNX graphs audited against the chip's "
        "operator list, AIPP configs, and the ATC (int8: AMCT, then ATC) or converter_lite commands, run when the "
        "tool is on PATH and recorded in the manifest either way. A DeblurGAN-v2 checkpoint is not converted alone: "
        "pass it as --deblur of a tracker.",
        epilog="examples: edgetrack convert runs/hsm/final.safetensors --model siamfc-hsm --target cpu -o bundles/hsm; "
        "edgetrack convert runs/rpn/final.safetensors --model siamrpn-eca --deblur runs/deblur/final.safetensors "
        "--target ascend310 -o bundles/rpn-310",
    )
    p.add_argument("checkpoint", type=Path, metavar="CKPT", help="checkpoint (.safetensors) written by training")
    p.add_argument("--model", required=True, metavar="NAME",
                   help="tracker the checkpoint holds: "
                   f"{', '.join(m for m, f in MODELS.items() if f in BUNDLERS)} (a DeblurGAN-v2 checkpoint goes to "
                   "--deblur)")
    p.add_argument("--target", required=True, metavar="NAME",
                   help=f"device to convert for: {', '.join(TARGETS)}")
    p.add_argument("--precision", default=None, metavar="NAME",
                   help=f"{', '.join(PRECISIONS)} (default fp32; Ascend targets: {', '.join(ASCEND_PRECISIONS)}, "
                   "default fp16)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="bundle folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.add_argument("--framework", default="torch", metavar="NAME",
                   help="twin that loads the checkpoint(s) and exports the graphs, the --deblur stage's too: torch "
                   "(torch.onnx.export, the default) or mindspore (mindspore.onnx.export; no PyTorch needed). The "
                   "checkpoint file is the same")
    p.add_argument("--opset", type=int, default=11, metavar="N",
                   help="ONNX opset of the PyTorch export (default 11, what ATC reads; MindSpore exports its own)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false",
                   help="keep the exported graphs as the exporter wrote them (by default onnxscript folds constants, "
                   "BatchNorm and Pad into the convolutions before the parity check)")
    p.add_argument("--scales", type=int, default=3, metavar="N",
                   help="search scales the graphs are built for (odd; default 3)")
    p.add_argument("--scale-search", default="crops", choices=("crops", "templates"),
                   help="SiamFC: how the scales are searched: crops (the paper's: --scales search crops a frame "
                   "against one template) or templates (one search crop against --scales templates cut at init: "
                   "about a third of the search network's work a frame)")
    p.add_argument("--calibration", metavar="SPEC",
                   help="data set KIND:PATH[#SUBSET] whose sequences give the int8 calibration crops (required for "
                   "--precision int8; e.g. synthetic:data/synth-train)")
    p.add_argument("--calibration-frames", type=int, default=None, metavar="N",
                   help="calibration samples, spread evenly over the sequences (default 200; Ascend int8: default 8, "
                   "at most 32, written into the bundle as AMCT's .bin calibration data)")
    p.add_argument("--toolchain", default="atc", metavar="NAME",
                   help=f"Ascend targets: {' or '.join(TOOLCHAINS)} (default atc: OM files; converter_lite: "
                   "MindSpore Lite MindIR). Run when on PATH; otherwise the bundle holds the exact commands")
    p.add_argument("--mindir-source", default=None, metavar="NAME",
                   help="--toolchain converter_lite: what converter_lite reads, mindspore (MindSpore's own MindIR, "
                   "exported and checked beside the ONNX graphs: --fmk=MINDIR; the default with --framework "
                   "mindspore) or onnx (the ONNX graphs: --fmk=ONNX; the default, and the only source, with "
                   "--framework torch)")
    p.add_argument("--soc-version", default=None, metavar="NAME",
                   help="Ascend targets: ATC --soc_version (default per chip, e.g. Ascend310, Ascend310B1, "
                   "Ascend310P3, Ascend910A; on the device: Ascend + the Name `npu-smi info` prints)")
    p.add_argument("--verify-data", metavar="SPEC",
                   help="data set whose crops check the graphs besides random inputs (default: other frames of "
                   "--calibration)")
    p.add_argument("--deblur", type=Path, default=None, metavar="CKPT",
                   help="add a DeblurGAN-v2 checkpoint as the bundle's deblur stage (run on the crops behind a blur "
                   "gate by edgetrack.Tracker; e.g. siamrpn-eca + deblurgan-v2 = deblur-siamrpn), exported by "
                   "--framework like the tracker; with --precision int8 the deblur stage stays fp16")
    p.add_argument("--name", default=None, metavar="NAME",
                   help="model name recorded in the bundle (default: the model's; deblur-<family> with --deblur)")
    p.set_defaults(func=run)


def check_choices(model: str, target: str, precision: str) -> str:
    """The model's family, or a typed error: unknown names list the valid ones, known-but-unbuilt ones say so."""
    if model not in MODELS:
        raise UnknownChoiceError("model", model, MODELS, fix="pick one with --model")
    if target in ASCEND_TARGETS and precision == "fp32":
        raise InvalidArgumentError(
            f"--target {target} computes convolutions in fp16 on the AI Core (ATC's must_keep_origin_dtype is not "
            "supported for float Conv inputs), so --precision fp32 cannot be built for it",
            fix="use --precision fp16 (the default for Ascend targets; the bundle's ONNX graphs stay fp32)",
        )
    precisions_done = ASCEND_PRECISIONS if target in ASCEND_TARGETS else IMPLEMENTED_PRECISIONS
    for what, value, valid, done, opt in (
        ("target", target, TARGETS, IMPLEMENTED_TARGETS, "--target"),
        ("precision", precision, PRECISIONS, precisions_done, "--precision"),
    ):
        if value not in valid:
            raise UnknownChoiceError(what, value, valid, fix=f"pick one with {opt}")
        if value not in done:
            raise EdgetrackError(
                f"{what} {value!r} is not implemented yet in this version of edgetrack "
                f"(implemented: {', '.join(done)})",
                fix=f"use {opt} {done[0]}, or upgrade edgetrack when {value} is supported",
            )
    family = MODELS[model]
    if family not in BUNDLERS:
        raise EdgetrackError(f"converting {model} ({family}) is not implemented yet in this version of edgetrack",
                             fix=f"convert one of: {', '.join(m for m, f in MODELS.items() if f in BUNDLERS)}")
    return family


def _require_export_stack(model: str, framework: str) -> None:
    label, extra = {"torch": ("PyTorch", "torch"), "mindspore": ("MindSpore", "mindspore")}[framework]
    for package in (framework, *_NEEDS):
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(f"converting {model} from {label}", package, extra=extra)


def check_checkpoint(path: Path, model: str, family: str) -> None:
    """Refuse a checkpoint whose stored family/config is not ``model`` (metadata only; weights are not read)."""
    from edgetrack.models.checkpoint_format import read_metadata

    meta = read_metadata(path)
    stored_family = meta.get("family")
    try:
        stored = json.loads(meta["config"]).get("name") if "config" in meta else None
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unreadable config in its metadata: {exc}") from exc
    if stored_family != family or stored is None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not hold a {family} model (family {stored_family!r}, "
            f"config name {stored!r}), but --model {model} was given",
            fix="pass a checkpoint written by edgetrack train for this model",
        )
    if stored != model:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds model {stored!r}, but --model {model!r} was given",
            fix=f"use --model {stored}, or pass a {model} checkpoint",
        )


def format_parity(parity: dict) -> str:
    """The parity section as a table: one row per (stage, graph)."""
    rows = [("stage", "graph", "max abs err", "max rel err", "tolerance", "ok")]
    for stage, graphs in parity.items():
        for graph, r in graphs.items():
            rows.append((
                stage,
                graph,
                f"{r.get('max_abs', float('nan')):.3g}",
                f"{r.get('max_rel', float('nan')):.3g}",
                f"{r['tolerance']:g}" if "tolerance" in r else "-",
                "-" if r.get("passed", False) is None else "yes" if r.get("passed") else "NO",
            ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _check_precision_options(args: argparse.Namespace) -> None:
    """int8 without calibration data, or a data set spec that cannot be opened, fails before the export."""
    from edgetrack.data import parse_spec

    if args.precision == "int8" and not args.calibration:
        raise InvalidArgumentError(
            "--precision int8 needs --calibration: static quantization calibrates on crops from real sequences",
            fix="add --calibration KIND:PATH[#SUBSET], e.g. --calibration synthetic:data/synth-train "
            "(a data set like the video the tracker will see)",
        )
    if args.calibration_frames is not None and args.calibration_frames < 1:
        raise InvalidArgumentError(f"--calibration-frames must be at least 1, got {args.calibration_frames}")
    for spec in (args.calibration, args.verify_data):
        if spec:
            parse_spec(spec)


def default_precision(target: str) -> str:
    """fp16 for Ascend targets (what their AI Core computes in), fp32 otherwise."""
    return "fp16" if target in ASCEND_TARGETS else "fp32"


def _check_ascend_options(args: argparse.Namespace) -> None:
    """Toolchain and soc_version checked before the export (cheap; a typo should not wait for a conversion)."""
    if getattr(args, "toolchain", "atc") not in TOOLCHAINS:
        raise UnknownChoiceError("toolchain", args.toolchain, TOOLCHAINS, fix="use --toolchain atc or converter_lite")
    if args.target in ASCEND_TARGETS:
        from edgetrack.ascend.socs import get_soc

        get_soc(args.target).check_soc_version(getattr(args, "soc_version", None))
        if args.precision == "int8":  # AMCT's batches travel in the bundle: bounded; converter_lite: no int8
            from edgetrack.converters.onnx2amct import check_batches
            from edgetrack.converters.onnx2mindir import converter_lite_precision_mode

            check_batches(args.calibration_frames)
            if getattr(args, "toolchain", "atc") == "converter_lite":
                converter_lite_precision_mode(args.target, args.precision)
    elif getattr(args, "soc_version", None) is not None:
        raise InvalidArgumentError(f"--soc-version applies to Ascend targets, not --target {args.target}",
                                   fix="drop --soc-version or pick an Ascend --target")


def mindir_source(args: argparse.Namespace, framework: str) -> str | None:
    """What converter_lite reads (``--mindir-source``), checked before the export: None for ATC and the ONNX
    targets; "mindspore" (MindSpore's own MindIR) by default with ``--framework mindspore``, else "onnx". Typed errors
    for a bad name, for the option without ``--toolchain converter_lite`` on an Ascend target, and for "mindspore"
    with another framework."""
    asked = getattr(args, "mindir_source", None)
    if asked is not None and asked not in MINDIR_SOURCES:
        raise UnknownChoiceError("--mindir-source", asked, MINDIR_SOURCES,
                                 fix="use --mindir-source mindspore (MindSpore's MindIR) or onnx (the ONNX graphs)")
    toolchain = getattr(args, "toolchain", "atc")
    if args.target not in ASCEND_TARGETS or toolchain != "converter_lite":
        if asked is not None:
            where = f"--toolchain {toolchain}" if args.target in ASCEND_TARGETS else f"--target {args.target}"
            raise InvalidArgumentError(
                f"--mindir-source {asked} chooses what converter_lite reads; {where} does not run converter_lite",
                fix="drop --mindir-source, or use an Ascend --target with --toolchain converter_lite")
        return None
    if asked == "mindspore" and framework != "mindspore":
        raise InvalidArgumentError(
            f"--mindir-source mindspore is MindSpore's own MindIR, which --framework {framework} cannot export",
            fix="add --framework mindspore (the same checkpoint file), or drop --mindir-source: converter_lite then "
                "reads the ONNX graphs")
    return asked or ("mindspore" if framework == "mindspore" else "onnx")


def _run_ascend(args: argparse.Namespace, bundler, framework: str, source: str | None = None) -> int:
    """Checkpoint -> checked ONNX bundle (temporary; with MindSpore's MindIR beside it when converter_lite is to read
    that, ``source`` "mindspore") -> Ascend bundle (audit, AIPP, ATC/converter_lite)."""
    import tempfile

    from edgetrack.bundle import load_bundle
    from edgetrack.commands.inspect import format_device
    from edgetrack.converters.onnx2om import ascend_bundle

    mindir = source == "mindspore"
    with tempfile.TemporaryDirectory(prefix="edgetrack-convert-") as tmp:
        print(f"exporting and checking the ONNX {'and MindIR ' if mindir else ''}graphs ({args.model}) ...")
        onnx_bundle = bundler(args.checkpoint, Path(tmp) / "onnx", False, opset=args.opset, scales=args.scales,
                              scale_search=args.scale_search, runtime_weights=False, framework=framework,
                              simplify=getattr(args, "simplify", True), mindir=mindir)
        if args.deblur is not None:
            from edgetrack.converters.deblur2onnx import add_deblur

            print(f"adding the deblur stage ({args.deblur.name}) ...")
            onnx_bundle = add_deblur(onnx_bundle, args.deblur, Path(tmp) / "deblur", model=args.name,
                                     framework=framework, simplify=getattr(args, "simplify", True), mindir=mindir)
        print(f"auditing the graphs for {args.target} and writing the {args.toolchain} commands"
              f"{' (reading MindSpore MindIR)' if mindir else ''} ...")
        path = ascend_bundle(onnx_bundle, args.out, args.target, toolchain=args.toolchain,
                             precision=args.precision, soc_version=args.soc_version, force=args.force,
                             calibration=args.calibration, calibration_frames=args.calibration_frames,
                             mindir_source=source)
    manifest = load_bundle(path).manifest
    print(format_parity(manifest.parity))
    print(format_device(manifest))
    built = "device files built" if manifest.device_files_built else "device files not built (commands in manifest)"
    print(f"bundle: {path} ({manifest.model}, target {manifest.target}, {manifest.precision}, "
          f"{len(manifest.graphs)} graphs, {built})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.precision is None:
        args.precision = default_precision(args.target)
    family = check_choices(args.model, args.target, args.precision)
    _check_ascend_options(args)
    out: Path = args.out
    if out.exists() and not args.force:
        raise BundleError(f"output folder {str(out)!r} already exists", fix="choose another -o folder or pass --force")
    if not args.checkpoint.is_file():
        raise CheckpointError(f"checkpoint {str(args.checkpoint)!r} does not exist", fix="check the path")
    _check_precision_options(args)
    from edgetrack.converters.torch2onnx import FRAMEWORKS

    framework = getattr(args, "framework", "torch")
    if framework not in FRAMEWORKS:
        raise UnknownChoiceError("framework", framework, FRAMEWORKS, fix="use --framework torch or mindspore")
    source = mindir_source(args, framework)
    _require_export_stack(args.model, framework)
    check_checkpoint(args.checkpoint, args.model, family)
    if args.deblur is not None:
        from edgetrack.converters.deblur2onnx import check_deblur_checkpoint

        # Metadata only, before the tracker's export: a tracker checkpoint passed as --deblur fails at once.
        check_deblur_checkpoint(args.deblur)

    import importlib

    from edgetrack.bundle import load_bundle

    module_name, func = BUNDLERS[family].split(":")
    bundler = getattr(importlib.import_module(module_name), func)
    if args.target in ASCEND_TARGETS:
        return _run_ascend(args, bundler, framework, source)
    kwargs = dict(opset=args.opset, scales=args.scales, scale_search=args.scale_search, target=args.target,
                  precision=args.precision,
                  calibration=args.calibration, calibration_frames=args.calibration_frames,
                  verify_data=args.verify_data, framework=framework, simplify=getattr(args, "simplify", True))
    if args.deblur is None:
        path = bundler(args.checkpoint, out, args.force, **kwargs)
    else:
        import tempfile

        from edgetrack.converters.deblur2onnx import add_deblur

        # The generator's output is an image, not a score: an int8 bundle keeps its deblur stage at fp16.
        deblur_precision = "fp16" if args.precision == "int8" else args.precision
        with tempfile.TemporaryDirectory(prefix="edgetrack-convert-") as tmp:
            tracker = bundler(args.checkpoint, Path(tmp) / "tracker", False, **kwargs)
            print(f"adding the deblur stage ({args.deblur.name}, {deblur_precision}, {framework}) ...")
            path = add_deblur(tracker, args.deblur, out, force=args.force, precision=deblur_precision,
                              model=args.name, framework=framework, simplify=getattr(args, "simplify", True))
    manifest = load_bundle(path).manifest
    print(format_parity(manifest.parity))
    print(f"bundle: {path} ({manifest.model}, target {manifest.target}, {manifest.precision}, "
          f"{len(manifest.graphs)} graphs)")
    return 0
