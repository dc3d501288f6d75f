"""``edgetrack data``: make and inspect data sets.

``edgetrack data synth`` renders synthetic blurred tracking video (see :mod:`edgetrack.data.synth`);
``edgetrack data info SPEC`` summarises any data set spec.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edgetrack.errors import InvalidArgumentError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 480x360, got {text!r}") from None
    return w, h


def _range(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX such as 1-3 (or one number), got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser("data", help="make synthetic data, inspect data sets",
                       description="Make synthetic blurred tracking data and inspect data sets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda args: p.print_help() or 2)

    s = dsub.add_parser(
        "synth",
        help="render synthetic blurred tracking video (sharp + blurred, GOT-10k layout, deblur pairs)",
        description="Render sequences of textured targets moving fast over real photos, with distractors, "
        "occlusion and camera motion; each sequence sharp and motion-blurred (GoPro-style sub-frame averaging) "
        "with identical ground truth, in GOT-10k layout, plus aligned blur/sharp pairs in GoPro layout.",
        epilog="example: edgetrack data synth --out data/synth-train --sequences 200 --seed 1 --workers 8",
    )
    s.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (must be new or empty)")
    s.add_argument("--sequences", type=int, default=20, metavar="N", help="number of sequences (default 20)")
    s.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    s.add_argument("--frames", type=int, default=120, metavar="F", help="frames per sequence (default 120)")
    s.add_argument("--size", type=_size, default=(480, 360), metavar="WxH", help="frame size (default 480x360)")
    s.add_argument("--blur", default="mixed", metavar="LEVEL",
                   help="blur of the blurred variant: none, mild, strong, mixed (mild or strong per sequence; "
                   "the default) or an exposure fraction in [0, 1] such as 0.7")
    s.add_argument("--speed", type=float, default=1.0, help="motion speed multiplier (default 1.0)")
    s.add_argument("--occlusion", type=float, default=0.6, help="probability of occluders per sequence (default 0.6)")
    s.add_argument("--distractors", type=_range, default=(1, 3), metavar="MIN-MAX",
                   help="look-alikes per sequence (default 1-3)")
    s.add_argument("--split", default="train", choices=("train", "test"),
                   help="photo pool: train and test sets never share a photo (default train)")
    s.add_argument("--patches", type=float, default=0.25, metavar="P",
                   help="probability that a target is a textured patch rather than a hand-picked object (default "
                        "0.25; training sets: higher shows the tracker more distinct targets)")
    s.add_argument("--patch-photos", default="objects", choices=("objects", "all"),
                   help="where patches come from: the photos with hand-picked objects (default) or every photo of "
                        "the split")
    s.add_argument("--workers", type=int, default=1, metavar="K", help="parallel processes (default 1)")
    s.add_argument("--no-pairs", action="store_true", help="do not write the GoPro-layout deblur pairs")
    s.add_argument("--contact-sheet", action=argparse.BooleanOptionalAction, default=True,
                   help="write OUT/contact_sheet.png: frames of several sequences, sharp | blurred, boxes drawn "
                   "(default on)")
    s.add_argument("--force", action="store_true", help="replace an existing output folder")
    s.set_defaults(func=run_synth)

    i = dsub.add_parser("info", help="summarise a data set spec (sequences, frames, sizes)",
                        description="Summarise the data set named by KIND:PATH[#SUBSET].")
    i.add_argument("spec", metavar="SPEC", help="e.g. synthetic:data/synth or got10k:/data/GOT-10k#val")
    i.set_defaults(func=run_info)


def run_synth(args: argparse.Namespace) -> int:
    from edgetrack.data.synth import SynthConfig, contact_sheet, generate

    if args.workers < 0:
        raise InvalidArgumentError(f"--workers must be 0 or more, got {args.workers}")
    cfg = SynthConfig(sequences=args.sequences, frames=args.frames, size=args.size, seed=args.seed, split=args.split,
                      blur=args.blur, speed=args.speed, occlusion=args.occlusion, distractors=args.distractors,
                      pairs=not args.no_pairs, patches=args.patches, patch_photos=args.patch_photos)
    out = generate(cfg, args.out, workers=args.workers, force=args.force)
    print(f"wrote {cfg.sequences} sequences x {cfg.frames} frames ({cfg.size[0]}x{cfg.size[1]}), "
          f"sharp and blurred: {out}")
    print(f"  read it as: synthetic:{out}  (or synthetic:{out}#blurred, got10k:{out}/blurred)")
    if cfg.pairs:
        print(f"  deblur pairs: gopro:{out}/gopro#{cfg.split}")
    if args.contact_sheet:
        print(f"  contact sheet: {contact_sheet(out)}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from collections import Counter

    import numpy as np

    from edgetrack.data import open_dataset

    for ds in open_dataset(args.spec):
        n = len(ds.sequences)
        frames = [len(s) for s in ds.sequences]
        print(f"{ds.name}: {n} sequences, {sum(frames)} frames (per sequence min {min(frames)}, "
              f"median {int(np.median(frames))}, max {max(frames)})")
        sample = ds.sequences[:: max(1, n // 20)][:20]  # frame sizes: read at most 20 first frames
        sizes = Counter()
        for s in sample:
            if hasattr(s, "image_size"):
                sizes[s.image_size] += 1
            else:  # a deblurring pair sequence
                h, w = s.pair(0)[0].shape[:2]
                sizes[(w, h)] += 1
        shown = ", ".join(f"{w}x{h}" + (f" ({c})" if len(sizes) > 1 else "") for (w, h), c in sizes.most_common(5))
        print(f"  frame size{'s' if len(sizes) > 1 else ''}: {shown}"
              + (f" (from {len(sample)} of {n} sequences)" if len(sample) < n else ""))
        first = ds.sequences[0]
        if hasattr(first, "boxes"):
            boxes = np.concatenate([s.boxes for s in ds.sequences])
            ok = np.isfinite(boxes).all(1)
            sizes_px = np.sqrt(boxes[ok, 2] * boxes[ok, 3])
            absent = sum(int(np.sum(s.absent)) for s in ds.sequences if s.absent is not None)
            median = f"{np.median(sizes_px):.1f} px" if ok.any() else "n/a"
            print(f"  annotated frames {int(ok.sum())}, absent {absent}; target size sqrt(wh) median {median}")
            classes = sorted({s.meta.get("object_class", "") for s in ds.sequences} - {""})
            if classes:
                more = f" (+{len(classes) - 8} more)" if len(classes) > 8 else ""
                print(f"  classes: {', '.join(classes[:8])}{more}")
    return 0
