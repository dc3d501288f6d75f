"""``edgetrack eval``: run trackers over data sets, print a table, write results, summary.json and plots.

Trackers are named by spec (``csrt``, ``kcf``, ``mil``, ``nanotrack[:DIR]``, and whatever else registers itself in
:data:`edgetrack.evaluation.TRACKERS`); this module knows none of them by name.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from edgetrack.errors import InvalidArgumentError, MissingDependencyError


def register(sub) -> None:
    from edgetrack.evaluation import TRACKERS

    p = sub.add_parser(
        "eval",
        help="evaluate trackers on data sets (success AUC, precision, AO, FPS, plots)",
        description="Run every --tracker on every --dataset, print a table (OTB AUC, P@20, SR50, Deblur-SiamRPN's "
        "P@15 and S@0.6, GOT-10k AO, FPS of the update calls) and write per-sequence results in the got10k "
        "toolkit's layouts, summary.json and success/precision plots into --out.",
        epilog="trackers: " + ", ".join(sorted(TRACKERS)) + " (nanotrack:DIR names the folder of its ONNX files). "
        "example: edgetrack eval --dataset synthetic:data/synth --tracker csrt --tracker nanotrack",
    )
    p.add_argument("--dataset", action="append", required=True, metavar="SPEC",
                   help="KIND:PATH[#SUBSET], e.g. got10k:/data/GOT-10k#val or synthetic:data/synth (repeatable)")
    p.add_argument("--tracker", action="append", required=True, metavar="NAME",
                   help="tracker to evaluate, e.g. csrt, kcf, mil, nanotrack (repeatable)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: runs/eval-<timestamp>)")
    p.add_argument("--max-sequences", type=int, default=None, metavar="N", help="use the first N sequences only")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="use the first N frames of each sequence")
    p.add_argument("--visualize", action="store_true", help="also write every frame with both boxes drawn")
    p.set_defaults(func=run)


def _trackers(specs: list[str]) -> list[tuple[str, object]]:
    """(display name, factory) per distinct spec; every spec is built before anything runs, so errors come first."""
    from edgetrack.evaluation import build_tracker

    specs = list(dict.fromkeys(s.strip() for s in specs))
    built = [(spec, build_tracker(spec)) for spec in specs]
    short = [getattr(f, "tracker_name", None) or spec for spec, f in built]
    # Two specs of one kind (nanotrack:A and nanotrack:B) keep their full spec as name, so results do not collide.
    return [(name if short.count(name) == 1 else spec, f) for name, (spec, f) in zip(short, built)]


def _datasets(specs: list[str], max_sequences: int | None, max_frames: int | None) -> list:
    from edgetrack.data import open_dataset
    from edgetrack.evaluation import limit

    out, seen = [], set()
    for spec in dict.fromkeys(specs):
        for ds in open_dataset(spec):
            ds = limit(ds, max_sequences=max_sequences, max_frames=max_frames)
            name, k = ds.name, 2
            while name in seen:  # two specs giving one variant name: keep their results apart
                name, k = f"{ds.name}-{k}", k + 1
            seen.add(name)
            out.append(ds if name == ds.name else dataclasses.replace(ds, name=name))
    return out


def run(args: argparse.Namespace) -> int:
    from edgetrack import __version__
    from edgetrack.evaluation import evaluate, format_table, safe_name

    for opt, value, low in (("--max-sequences", args.max_sequences, 1), ("--max-frames", args.max_frames, 2)):
        if value is not None and value < low:
            why = " (frame 1 only initialises the tracker)" if opt == "--max-frames" else ""
            raise InvalidArgumentError(f"{opt} must be at least {low}, got {value}{why}")
    trackers = _trackers(args.tracker)
    datasets = _datasets(args.dataset, args.max_sequences, args.max_frames)
    out = args.out if args.out is not None else Path("runs") / time.strftime("eval-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    results = []
    for ds in datasets:
        for name, factory in trackers:
            results.append(evaluate(factory, ds, result_dir=out / "results" / safe_name(ds.name), tracker_name=name,
                                    visualize=args.visualize))

    print(format_table(results))
    for r in results:
        for note in r.notes:
            print(f"note: {r.tracker} on {r.dataset}: {note}", file=sys.stderr)
        failures = r.failures
        if failures:
            seqs = len({f.sequence for f in failures})
            print(f"warning: {r.tracker} on {r.dataset}: the tracker raised on {len(failures)} frame(s) in {seqs} "
                  f"sequence(s), scored as IoU 0; first: {failures[0]}", file=sys.stderr)

    summary = {
        "edgetrack_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "datasets": list(args.dataset),
        "trackers": [name for name, _ in trackers],
        "max_sequences": args.max_sequences,
        "max_frames": args.max_frames,
        "results": [r.to_dict() for r in results],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    try:
        from edgetrack.plots import plot_results

        plots = plot_results(results, out)
    except MissingDependencyError as exc:  # the numbers are already written; plots are a convenience
        plots = []
        print(f"warning: no plots: {exc}", file=sys.stderr)
    print(f"\nresults: {out / 'results'}\nsummary: {out / 'summary.json'}")
    for p in plots:
        print(f"plot:    {p}")
    return 0
