"""``edgetrack demo``: the README's first command — make a blurred test video and track in it.

No trained edgetrack model ships yet, so the demo says so plainly and evaluates the baseline trackers (OpenCV's
CSRT and KCF, and NanoTrack when its files are found) on a small synthetic test set it renders, sharp and blurred.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="render a small blurred test set and track in it (no arguments needed)",
                       description="Render a small synthetic test set (sharp and motion-blurred), run trackers on it, "
                       "print success AUC / precision / FPS and write plots.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR", help="output folder (default runs/demo)")
    p.add_argument("--sequences", type=int, default=6, metavar="N", help="sequences to render (default 6)")
    p.add_argument("--frames", type=int, default=100, metavar="F", help="frames per sequence (default 100)")
    p.add_argument("--seed", type=int, default=2026, metavar="S", help="random seed (default 2026)")
    p.add_argument("--tracker", action="append", default=None, metavar="NAME",
                   help="tracker(s) to run (default: csrt, kcf and nanotrack when available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgetrack.baselines import list_baselines
    from edgetrack.commands import eval as eval_cmd
    from edgetrack.data.synth import SynthConfig, contact_sheet, generate

    print("edgetrack demo: no trained edgetrack model ships yet (the trained-models work is still open), so this demo "
          "evaluates the baseline trackers on blurred synthetic video.")
    data = args.out / "data"
    cfg = SynthConfig(sequences=args.sequences, frames=args.frames, seed=args.seed, split="test")
    generate(cfg, data, force=True)
    print(f"test video: {data} (contact sheet {contact_sheet(data)})")
    trackers = args.tracker
    if not trackers:
        available = list_baselines()
        trackers = [t for t in ("csrt", "kcf", "nanotrack") if available.get(t) is None]
        for t in ("csrt", "kcf", "nanotrack"):
            if available.get(t) is not None:
                print(f"note: skipping {t}: {available[t]}")
    ns = argparse.Namespace(dataset=[f"synthetic:{data}"], tracker=trackers, out=args.out / "eval",
                            max_sequences=None, max_frames=None, visualize=False)
    return eval_cmd.run(ns)
