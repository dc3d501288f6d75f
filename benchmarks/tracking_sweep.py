"""Tune a bundle's tracking hyper-parameters on a validation set: every combination of the values given, tracked
through ``edgetrack.Tracker(tracking=...)``, ranked by AUC (mean of the sharp and blurred variants).

The validation set must not be the test set the report uses (the report's test split is seed 12; validate on
another seed of the test photo pool, e.g. 14). On the GPU machine the torch backend makes a sweep cheap::

    python benchmarks/tracking_sweep.py --bundle B --data synthetic:V --backend torch --device cuda \
        --grid window_influence=0.2,0.3,0.42 --grid penalty_k=0.02,0.055,0.1 --grid lr=0.3,0.45 --out OUT

Writes ``OUT/sweep.json`` (every combination's AUC and P@20 per variant, the best first) and prints a table;
``--best-only`` prints the best combination as ``key=value&...`` (a tracker spec's options) and nothing else.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path


def parse_grid(items: list[str]) -> dict[str, list[float]]:
    grid: dict[str, list[float]] = {}
    for item in items:
        key, eq, values = item.partition("=")
        if not eq or not key or not values:
            sys.exit(f"--grid {item!r}: write NAME=V1,V2,...")
        try:
            grid[key.strip()] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            sys.exit(f"--grid {item!r}: values must be numbers")
    return grid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, help="bundle folder or shipped model name")
    ap.add_argument("--data", required=True, help="validation data set, e.g. synthetic:DIR (both variants)")
    ap.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="values of one parameter")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--device", default=None)
    ap.add_argument("--deblur", default="auto")
    ap.add_argument("--out", type=Path, default=None, help="folder for sweep.json")
    ap.add_argument("--best-only", action="store_true", help="print only the best combination's spec options")
    args = ap.parse_args(argv)

    from edgetrack import Tracker
    from edgetrack.data import open_dataset
    from edgetrack.evaluation import evaluate

    grid = parse_grid(args.grid)
    datasets = open_dataset(args.data)
    names = list(grid)
    rows = []
    t0 = time.perf_counter()
    for values in itertools.product(*(grid[n] for n in names)):
        tracking = dict(zip(names, values))
        kwargs = dict(backend=args.backend, device=args.device, deblur=args.deblur, tracking=tracking)
        Tracker(args.bundle, **kwargs)  # a bad name or value fails here, before any sequence

        def factory(kwargs=kwargs):
            return Tracker(args.bundle, **kwargs)

        row = {"tracking": tracking}
        for ds in datasets:
            r = evaluate(factory, ds, tracker_name="sweep").summary()
            row[ds.name] = {"auc": r["success_auc"], "precision": r["precision_20"], "fps": r["fps"]}
        row["auc"] = sum(row[ds.name]["auc"] for ds in datasets) / len(datasets)
        rows.append(row)
        if not args.best_only:
            print(f"{json.dumps(tracking)}: AUC {row['auc']:.3f} "
                  + " ".join(f"{ds.name} {row[ds.name]['auc']:.3f}" for ds in datasets), flush=True)
    rows.sort(key=lambda r: -r["auc"])
    best = "&".join(f"{k}={v:g}" for k, v in rows[0]["tracking"].items())
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sweep.json").write_text(json.dumps(
            {"bundle": str(args.bundle), "data": args.data, "backend": args.backend, "device": args.device,
             "seconds": round(time.perf_counter() - t0, 1), "best": best, "rows": rows}, indent=1) + "\n")
    print(best if args.best_only else f"best: {best} (mean AUC {rows[0]['auc']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
