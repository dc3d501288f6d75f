"""Where a tracker loses accuracy: how often it is on the target at all, and how well it boxes the target when it is.

AUC mixes two failures that call for different fixes: a tracker that follows the target but boxes it badly
(regression, size damping), and one that leaves the target for a look-alike or the background (discrimination,
robustness). For every bundle named, this script tracks every sequence of ``--data`` through
:func:`edgetrack.evaluation.evaluate` and splits the visible frames (after the first) into

* **on target**: centre error under half the target's size (``sqrt(w·h)`` of the ground truth);
* and, on those frames, the **mean IoU**, the centre offset over the target's size (mean dx, dy) and the size error
  as mean ± std of ``ln(w / w_gt)`` and ``ln(h / h_gt)`` (a systematic bias shows as a mean away from 0).

Per sequence it prints AUC-relevant figures (mean IoU, median centre error in pixels, on-target share), so the
sequences that decide a comparison can be looked at. Example (the figures in
``benchmarks/results/rpn-loss-lite/README.md``)::

    edgetrack data synth --out V14 --sequences 8 --frames 120 --seed 14 --split test
    python benchmarks/failure_modes.py --bundle siamrpn-eca --bundle B --data synthetic:V14 --out OUT

Writes ``OUT/failure_modes.json`` and ``.md`` (with ``--out``) and prints the tables.
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


def sequence_rows(boxes: np.ndarray, truth: np.ndarray, absent: np.ndarray | None) -> np.ndarray:
    """Per visible frame after the first: IoU, centre error (px), dx / size, dy / size, ln(w / w_gt), ln(h / h_gt),
    size (``sqrt(w_gt · h_gt)``), as an (N, 7) array."""
    from edgetrack.metrics import iou

    b, g = np.asarray(boxes, float)[1:], np.asarray(truth, float)[1:]
    visible = np.ones(len(g), bool) if absent is None else ~np.asarray(absent, bool)[1:]
    visible &= (g[:, 2] > 0) & (g[:, 3] > 0)
    b, g = b[visible], g[visible]
    overlap = iou(b, g)
    offset = (b[:, :2] + b[:, 2:] / 2) - (g[:, :2] + g[:, 2:] / 2)
    size = np.sqrt(g[:, 2] * g[:, 3])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_w, log_h = np.log(b[:, 2] / g[:, 2]), np.log(b[:, 3] / g[:, 3])
    return np.c_[overlap, np.hypot(*offset.T), offset / size[:, None], log_w, log_h, size]


def summarise(rows: np.ndarray) -> dict:
    """The on-target split of :func:`sequence_rows`' frames (module docstring)."""
    if not len(rows):
        return {"frames": 0}
    on = rows[:, 1] < 0.5 * rows[:, 6]
    sel = rows[on]
    out = {"frames": int(len(rows)), "mean_iou": float(rows[:, 0].mean()), "on_target": float(on.mean())}
    if len(sel):
        out.update(on_target_iou=float(sel[:, 0].mean()), dx=float(sel[:, 2].mean()), dy=float(sel[:, 3].mean()),
                   log_w=float(sel[:, 4].mean()), log_w_std=float(sel[:, 4].std()),
                   log_h=float(sel[:, 5].mean()), log_h_std=float(sel[:, 5].std()))
    return out


def measure(bundle: str, datasets, **tracker_kwargs) -> dict:
    from edgetrack.evaluation import evaluate
    from edgetrack.tracker import Tracker

    report: dict = {}
    for ds in datasets:
        result = evaluate(lambda: Tracker(bundle, **tracker_kwargs), ds)
        per_seq, all_rows = {}, []
        for seq, res in zip(ds.sequences, result.sequences):
            rows = sequence_rows(res.boxes, seq.boxes, seq.absent)
            all_rows.append(rows)
            per_seq[seq.name] = {**summarise(rows),
                                 "median_centre_error_px": float(np.median(rows[:, 1])) if len(rows) else None}
        report[ds.name] = {"auc": result.summary()["success_auc"],
                           **summarise(np.concatenate(all_rows) if all_rows else np.zeros((0, 7))),
                           "sequences": per_seq}
    return report


def _table(name: str, report: dict) -> str:
    lines = [f"### {name}", "",
             "| data | AUC | on target | mean IoU on target | dx / dy (÷ size) | ln w/w_gt (mean ± std) | ln h/h_gt |",
             "|---|---:|---:|---:|---|---|---|"]
    for ds, r in report.items():
        if "on_target_iou" not in r:
            lines.append(f"| {ds} | {r['auc']:.3f} | {100 * r.get('on_target', 0):.0f} % | – | – | – | – |")
            continue
        lines.append(f"| {ds} | {r['auc']:.3f} | {100 * r['on_target']:.1f} % | {r['on_target_iou']:.3f} | "
                     f"{r['dx']:+.3f} / {r['dy']:+.3f} | {r['log_w']:+.3f} ± {r['log_w_std']:.3f} | "
                     f"{r['log_h']:+.3f} ± {r['log_h_std']:.3f} |")
    lines += ["", "| data | sequence | mean IoU | median centre error (px) | on target |", "|---|---|---:|---:|---:|"]
    for ds, r in report.items():
        for seq, s in r["sequences"].items():
            if s.get("frames"):
                lines.append(f"| {ds} | {seq} | {s['mean_iou']:.3f} | {s['median_centre_error_px']:.1f} | "
                             f"{100 * s['on_target']:.0f} % |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", action="append", required=True, help="bundle folder or shipped model name (repeatable)")
    ap.add_argument("--data", required=True, help="data set, e.g. synthetic:DIR (both variants)")
    ap.add_argument("--no-search", action="store_true", help="track without the lost-target search")
    ap.add_argument("--out", type=Path, default=None, help="folder for failure_modes.json / .md")
    args = ap.parse_args(argv)

    from edgetrack.data import open_dataset
    from edgetrack.tracking import LostParams

    datasets = open_dataset(args.data)
    kwargs = {"lost_params": LostParams(enabled=False)} if args.no_search else {}
    results, tables = {}, []
    for bundle in args.bundle:
        t0 = time.time()
        results[bundle] = measure(bundle, datasets, **kwargs)
        log(f"{bundle}: " + ", ".join(f"{ds} AUC {r['auc']:.3f}, on target {100 * r.get('on_target', 0):.0f} %"
                                      for ds, r in results[bundle].items()) + f" ({time.time() - t0:.0f} s)")
        tables.append(_table(bundle, results[bundle]))
    text = "\n\n".join(tables)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/failure_modes.py " + " ".join(argv if argv is not None else sys.argv[1:])
        meta = {"data": args.data, "no_search": args.no_search, "date": time.strftime("%Y-%m-%d %H:%M"),
                "command": command}
        (args.out / "failure_modes.json").write_text(json.dumps({"meta": meta, "bundles": results}, indent=1) + "\n")
        (args.out / "failure_modes.md").write_text(
            f"# Failure modes on `{args.data}`\n\n{text}\n\nGenerated {meta['date']} by `{command}`.\n",
            encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
