"""Calibrate a bundle's lost-target threshold on a validation set: tracking accuracy against how often ``lost`` is
right, one row per threshold.

For each ``--thresholds`` value, ``edgetrack.Tracker(bundle, lost_threshold=T)`` tracks every sequence of ``--data``
(both variants of a synthetic set) through :func:`edgetrack.evaluation.evaluate`, and the row reports the AUC per
variant, the share of frames with the target hidden (``absent``) that the tracker flagged ``lost``, and the share of
well-tracked frames (IoU > 0.5) it flagged ``lost`` all the same. ``--no-search`` adds the plain tracker's row
(``LostParams(enabled=False)``: no search while lost). Validate on a seed the report's test split does not use::

    edgetrack data synth --out V14 --sequences 8 --frames 120 --seed 14 --split test
    python benchmarks/lost_threshold.py --bundle siamrpn-eca --data synthetic:V14 --thresholds 0.5,0.7,0.9 \
        --no-search --out benchmarks/results/lost-threshold

Writes ``OUT/lost_threshold.json`` and ``.md`` and prints the table. The figures behind SiamRPN's default
(:data:`edgetrack.tracking.siamrpn.DEFAULT_SCORE_THRESHOLD`) come from this script.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _checkout import log, use_checkout  # noqa: E402 - benchmarks/ is on sys.path

use_checkout()


def measure(bundle: str, datasets, **tracker_kwargs) -> dict:
    from edgetrack.evaluation import evaluate
    from edgetrack.metrics import iou
    from edgetrack.tracker import Tracker

    row: dict = {}
    hidden, good = [], []
    for ds in datasets:
        result = evaluate(lambda: Tracker(bundle, **tracker_kwargs), ds)
        row[f"auc_{ds.name.split('-')[-1]}"] = result.summary()["success_auc"]
        for seq, res in zip(ds.sequences, result.sequences):
            lost = np.asarray(res.lost, bool)[1:]  # frame 0 is the initialisation
            absent = (np.zeros(len(seq), bool) if seq.absent is None else np.asarray(seq.absent, bool))[1:]
            overlap = iou(np.asarray(res.boxes, float)[1:], np.asarray(seq.boxes, float)[1:])
            hidden.append(lost[absent])
            good.append(lost[~absent & (overlap > 0.5)])
    hidden_all, good_all = np.concatenate(hidden), np.concatenate(good)
    row.update(hidden_frames=int(hidden_all.size), good_frames=int(good_all.size),
               hidden_flagged=float(hidden_all.mean()) if hidden_all.size else None,
               good_flagged=float(good_all.mean()) if good_all.size else None)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, help="bundle folder or shipped model name")
    ap.add_argument("--data", required=True, help="validation data set, e.g. synthetic:DIR (both variants)")
    ap.add_argument("--thresholds", default="0.5,0.7,0.9", help="comma-separated lost thresholds in [0, 1]")
    ap.add_argument("--no-search", action="store_true", help="also the plain tracker (no search while lost)")
    ap.add_argument("--out", type=Path, default=None, help="folder for lost_threshold.json / .md")
    args = ap.parse_args(argv)
    try:
        thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    except ValueError:
        sys.exit(f"--thresholds {args.thresholds!r}: write numbers, e.g. 0.5,0.7,0.9")

    from edgetrack.data import open_dataset
    from edgetrack.tracker import tracking_settings
    from edgetrack.tracking import LostParams

    datasets = open_dataset(args.data)
    runs = [(f"{t:g}", {"lost_threshold": t}) for t in thresholds]
    if args.no_search:
        runs.append(("no search", {"lost_params": LostParams(enabled=False)}))
    rows = []
    for label, kwargs in runs:
        t0 = time.time()
        row = {"threshold": label, **measure(args.bundle, datasets, **kwargs)}
        rows.append(row)
        log(f"threshold {label}: AUC {row.get('auc_sharp', float('nan')):.3f} / "
            f"{row.get('auc_blurred', float('nan')):.3f} ({time.time() - t0:.0f} s)")

    def pct(v):
        return "–" if v is None else f"{100 * v:.1f} %"

    lines = ["| threshold | AUC sharp | AUC blurred | hidden frames flagged lost | well-tracked frames flagged lost |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['threshold']} | {r.get('auc_sharp', float('nan')):.3f} | "
                     f"{r.get('auc_blurred', float('nan')):.3f} | {pct(r['hidden_flagged'])} of {r['hidden_frames']} "
                     f"| {pct(r['good_flagged'])} of {r['good_frames']} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"bundle": args.bundle, "data": args.data, "date": time.strftime("%Y-%m-%d %H:%M"),
                "command": "python benchmarks/lost_threshold.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "tracking": tracking_settings(args.bundle).to_dict()}
        (args.out / "lost_threshold.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        (args.out / "lost_threshold.md").write_text(
            f"# Lost threshold of `{args.bundle}` on `{args.data}`\n\n{table}\n\nGenerated {meta['date']} by "
            f"`{meta['command']}`.\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
