"""``edgetrack demo``: the README's first command — make a blurred test video and track in it.

With no arguments it renders a small synthetic test set (sharp and motion-blurred, photos the models never saw in
training), tracks the first blurred sequence with the default shipped model through :class:`edgetrack.Tracker` into
an annotated video, and scores that model next to OpenCV's CSRT and KCF and NanoTrack (when its files are found)
on the whole set: success AUC, precision, FPS, and plots.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="render a small blurred test set and track in it (no arguments needed)",
                       description="Render a small synthetic test set (sharp and motion-blurred), track its first "
                       "blurred sequence with the default shipped model into an annotated video, and compare the "
                       "model with baseline trackers: success AUC / precision / FPS and plots.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR", help="output folder (default runs/demo)")
    p.add_argument("--sequences", type=int, default=6, metavar="N", help="sequences to render (default 6)")
    p.add_argument("--frames", type=int, default=100, metavar="F", help="frames per sequence (default 100)")
    p.add_argument("--seed", type=int, default=2026, metavar="S", help="random seed (default 2026)")
    p.add_argument("--model", default=None, metavar="NAME|BUNDLE",
                   help="model to demonstrate (default: the default shipped model)")
    p.add_argument("--tracker", action="append", default=None, metavar="NAME",
                   help="tracker(s) to compare (default: the model, csrt, kcf and nanotrack when available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgetrack.baselines import list_baselines
    from edgetrack.commands import eval as eval_cmd
    from edgetrack.commands import track as track_cmd
    from edgetrack.data.synth import SynthConfig, contact_sheet, generate
    from edgetrack.tracker import DEFAULT_MODEL, list_models

    model = args.model or DEFAULT_MODEL
    print(f"edgetrack demo: model {model!r} (shipped models: {', '.join(list_models()) or 'none'})")
    data = args.out / "data"
    cfg = SynthConfig(sequences=args.sequences, frames=args.frames, seed=args.seed, split="test")
    generate(cfg, data, force=True)
    print(f"test video: {data} (contact sheet {contact_sheet(data)})")

    # One blurred sequence through the same code path as `edgetrack track`: a folder of frames in, video out.
    first = sorted(p for p in (data / "blurred").iterdir() if p.is_dir())[0]
    gt = (first / "groundtruth.txt").read_text().splitlines()[0]
    track_args = argparse.Namespace(source=str(first), model=model, box=gt, backend="auto", device="cpu",
                                    out=args.out / "track", max_frames=None, no_video=False)
    print(f"\ntracking {first.name} (blurred) with {model}:")
    track_cmd.run(track_args)

    trackers = args.tracker
    if not trackers:
        is_path = Path(model).exists() or "/" in model
        trackers = [f"bundle:{model}" if is_path else f"model:{model}"]
        available = list_baselines()
        trackers += [t for t in ("csrt", "kcf", "nanotrack") if available.get(t) is None]
        for t in ("csrt", "kcf", "nanotrack"):
            if available.get(t) is not None:
                print(f"note: skipping {t}: {available[t]}")
    print()
    ns = argparse.Namespace(dataset=[f"synthetic:{data}"], tracker=trackers, out=args.out / "eval",
                            max_sequences=None, max_frames=None, visualize=False)
    code = eval_cmd.run(ns)
    print(f"\nannotated video: {args.out / 'track' / 'track.mp4'}")
    return code
