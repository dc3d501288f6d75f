"""``edgetrack convert``: a trained checkpoint -> a verified device bundle (manifest.json + graphs).

This version builds the portable ONNX bundle for ``--target cpu`` at ``--precision fp32`` (PyTorch -> ONNX, each
graph checked in ONNX Runtime against PyTorch). The other targets and precisions are recognised by name, so a user
asking for them hears "not implemented yet" rather than "unknown", and a typo hears the valid list.
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
    MissingDependencyError,
    UnknownChoiceError,
)

# Every target and precision edgetrack is designed for (DESIGN.md), and the ones this version builds.
# cuda is the same ONNX graphs as cpu, but the converter records target "cpu" and has no way to set it yet.
TARGETS = ("cpu", "cuda", "ascend310", "ascend310b", "ascend310p", "ascend910")
IMPLEMENTED_TARGETS = ("cpu",)
PRECISIONS = ("fp32", "fp16", "int8")
IMPLEMENTED_PRECISIONS = ("fp32",)

# family -> "module:function" with siamfc_bundle's signature (checkpoint, out_dir, force, *, opset, scales).
BUNDLERS = {"siamfc": "edgetrack.converters.torch2onnx:siamfc_bundle"}

# Libraries the PyTorch -> ONNX path imports; all come with the [torch] extra.
_NEEDS = ("torch", "safetensors", "onnx")


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a trained checkpoint into a verified device bundle",
        description="Export a checkpoint to static-shape graphs (template, search, head), check every graph "
        "numerically against the framework, and write a bundle folder (manifest.json + graphs) that "
        "edgetrack.Tracker loads. This version builds --target cpu at --precision fp32 (ONNX).",
        epilog="example: edgetrack convert runs/hsm/final.safetensors --model siamfc-hsm --target cpu -o bundles/hsm",
    )
    p.add_argument("checkpoint", type=Path, metavar="CKPT", help="checkpoint (.safetensors) written by training")
    p.add_argument("--model", required=True, metavar="NAME",
                   help=f"model the checkpoint holds: {', '.join(MODELS)}")
    p.add_argument("--target", required=True, metavar="NAME",
                   help=f"device to convert for: {', '.join(TARGETS)} (implemented: {', '.join(IMPLEMENTED_TARGETS)})")
    p.add_argument("--precision", default="fp32", metavar="NAME",
                   help=f"{', '.join(PRECISIONS)} (default fp32; implemented: {', '.join(IMPLEMENTED_PRECISIONS)})")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="bundle folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.add_argument("--opset", type=int, default=11, metavar="N", help="ONNX opset (default 11, what ATC reads)")
    p.add_argument("--scales", type=int, default=3, metavar="N",
                   help="search scales the graphs are built for (odd; default 3)")
    p.set_defaults(func=run)


def check_choices(model: str, target: str, precision: str) -> str:
    """The model's family, or a typed error: unknown names list the valid ones, known-but-unbuilt ones say so."""
    if model not in MODELS:
        raise UnknownChoiceError("model", model, MODELS, fix="pick one with --model")
    for what, value, valid, done, opt in (
        ("target", target, TARGETS, IMPLEMENTED_TARGETS, "--target"),
        ("precision", precision, PRECISIONS, IMPLEMENTED_PRECISIONS, "--precision"),
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


def _require_torch_stack(model: str) -> None:
    for package in _NEEDS:
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(f"converting {model} from PyTorch", package, extra="torch")


def check_checkpoint(path: Path, model: str, family: str) -> None:
    """Refuse a checkpoint whose stored family/config is not ``model`` (metadata only; weights are not read)."""
    from edgetrack.models.torch.checkpoint import read_metadata

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
                "yes" if r.get("passed") else "NO",
            ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    family = check_choices(args.model, args.target, args.precision)
    out: Path = args.out
    if out.exists() and not args.force:
        raise BundleError(f"output folder {str(out)!r} already exists", fix="choose another -o folder or pass --force")
    if not args.checkpoint.is_file():
        raise CheckpointError(f"checkpoint {str(args.checkpoint)!r} does not exist", fix="check the path")
    _require_torch_stack(args.model)
    check_checkpoint(args.checkpoint, args.model, family)

    import importlib

    from edgetrack.bundle import load_bundle

    module_name, func = BUNDLERS[family].split(":")
    bundler = getattr(importlib.import_module(module_name), func)
    path = bundler(args.checkpoint, out, args.force, opset=args.opset, scales=args.scales)
    manifest = load_bundle(path).manifest
    print(format_parity(manifest.parity))
    print(f"bundle: {path} ({manifest.model}, target {manifest.target}, {manifest.precision}, "
          f"{len(manifest.graphs)} graphs)")
    return 0
