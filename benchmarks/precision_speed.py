#!/usr/bin/env python3
"""CPU time of bundles of one model at several precisions, measured side by side: per graph and per tracked frame.

Every bundle is loaded once, through :class:`edgetrack.Tracker` (so its ONNX Runtime sessions have the runtime's own
options: ``intra_op_num_threads = min(4, cores)``, one inter-op thread). The bundles are interleaved call by call,
the order rotating at every call, so a change of load on a shared machine falls on all of them alike. Each of
``--repeats`` rounds times:

* **per graph**: ``--graph-runs`` calls of the template, search and head sessions on one fixed real input (the
  tracker's own crops of the first frame, and the kernel and features those give), each call of each bundle in
  turn; the round's figure is the median ms per call;
* **per frame**: every bundle's tracker started on the first frame of a test sequence, then ``Tracker.update`` of
  each on the next ``--frames`` frames in lockstep (preloaded, so no disk or JPEG decoding is timed); the round's
  figure is the median ms per ``update``.

The figure reported per bundle is the median over the rounds; ratios are against the first bundle named (``--bundle
fp32=...`` first: "int8 / fp32" < 1 means int8 is faster), the median of the per-round ratios. The min..max of the
rounds says how far to trust a figure on a machine shared with other work.

Example (the figures in ``benchmarks/results/precision-siamrpn-eca/precision_speed.md``)::

    python benchmarks/precision_speed.py --bundle fp32=/tmp/b-fp32 --bundle int8=/tmp/b-int8 \\
        --data synthetic:runs/bench-data/synth-test-seed12-30x120#blurred \\
        --out benchmarks/results/precision-siamrpn-eca

Runs from a plain checkout: if edgetrack is not installed, the repository is put on the path.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from _checkout import log, use_checkout  # noqa: E402 - benchmarks/ is on sys.path

use_checkout()

GRAPHS = ("template", "search", "head")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", action="append", required=True, metavar="NAME=PATH",
                   help="a bundle folder and its label (repeatable; the first is the ratios' reference)")
    p.add_argument("--data", required=True, metavar="SPEC", help="data set whose first sequence is tracked")
    p.add_argument("--sequence", type=int, default=0, help="index of the sequence tracked (default 0)")
    p.add_argument("--frames", type=int, default=60, help="updates per repeat (default 60)")
    p.add_argument("--graph-runs", type=int, default=30, help="calls per graph per repeat (default 30)")
    p.add_argument("--repeats", type=int, default=7, help="rounds over all bundles (default 7)")
    p.add_argument("--note", action="append", default=[], metavar="TEXT",
                   help="a paragraph for the markdown, e.g. what a bundle is (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="folder for precision_speed.md / .json (default: print)")
    args = p.parse_args(argv)
    bundles = {}
    for item in args.bundle:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"--bundle takes NAME=PATH, got {item!r}")
        bundles[name] = Path(path)
    args.bundles = bundles
    return args


def _tracker(path: Path):
    from edgetrack import Tracker

    return Tracker(path, backend="onnxruntime", device="cpu")


def _graph_feeds(tracker, frame, box) -> dict[str, dict]:
    """One real input per graph: the tracker's own crops of ``frame`` and what its sessions make of them."""
    tracker.init(frame, box)
    n = tracker._names
    logic = tracker.logic
    x = logic.search_crops(frame)
    features = tracker._sessions["search"].run({n["x"]: x})[n["features_out"]]
    z = logic.init(frame, box)
    return {
        "template": {n["z"]: z},
        "search": {n["x"]: x},
        "head": {n["kernel_in"]: tracker._kernel, n["features_in"]: features},
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import onnxruntime as ort

    from edgetrack.bundle import load_bundle
    from edgetrack.data import open_dataset

    sequence = [s for d in open_dataset(args.data) for s in d.sequences][args.sequence]
    count = min(args.frames + 1, len(sequence))
    frames = [sequence.frame(i) for i in range(count)]
    box = sequence.boxes[0]
    names = list(args.bundles)
    trackers = {name: _tracker(path) for name, path in args.bundles.items()}
    feeds = {name: _graph_feeds(t, frames[0], box) for name, t in trackers.items()}
    threads = next(iter(trackers.values()))._backend.threads
    log(f"{len(names)} bundles, {args.repeats} repeats, {args.graph_runs} calls per graph, {count - 1} updates per "
        f"repeat, {threads} ONNX Runtime threads, sequence {sequence.name} of {args.data}")

    def rotations():
        k = 0
        while True:
            yield names[k % len(names):] + names[:k % len(names)]
            k += 1

    per_graph = {name: {g: [] for g in GRAPHS} for name in names}
    per_frame = {name: [] for name in names}
    order = rotations()
    for rep in range(args.repeats):
        for g in GRAPHS:
            calls = {name: [] for name in names}
            for name in names:  # warm-up, not timed
                trackers[name]._sessions[g].run(feeds[name][g])
            for _ in range(args.graph_runs):
                for name in next(order):
                    session, feed = trackers[name]._sessions[g], feeds[name][g]
                    start = time.perf_counter()
                    session.run(feed)
                    calls[name].append(time.perf_counter() - start)
            for name in names:
                per_graph[name][g].append(1e3 * statistics.median(calls[name]))
        updates = {name: [] for name in names}
        for name in names:
            trackers[name].init(frames[0], box)
        for frame in frames[1:]:
            for name in next(order):
                start = time.perf_counter()
                trackers[name].update(frame)
                updates[name].append(time.perf_counter() - start)
        for name in names:
            per_frame[name].append(1e3 * statistics.median(updates[name]))
        log(f"round {rep + 1}/{args.repeats}: " + ", ".join(
            f"{n} {per_frame[n][-1]:.2f} ms/frame" for n in names))

    def summary(values: list[float]) -> dict:
        return {"median_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values),
                "repeats_ms": values}

    ref = names[0]
    rows = []
    for name in names:
        manifest = load_bundle(args.bundles[name]).manifest
        row = {"name": name, "bundle": str(args.bundles[name]), "precision": manifest.precision,
               "graphs_ms": {g: summary(per_graph[name][g]) for g in GRAPHS},
               "frame_ms": summary(per_frame[name])}
        row["ratio_vs_" + ref] = {
            **{g: statistics.median(a / b for a, b in zip(per_graph[name][g], per_graph[ref][g])) for g in GRAPHS},
            "frame": statistics.median(a / b for a, b in zip(per_frame[name], per_frame[ref])),
        }
        rows.append(row)

    header = ("bundle", *(f"{g} ms" for g in GRAPHS), "frame ms (update)", f"ratio vs {ref} (template / search / "
              "head / frame)")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        cells = [f"{r['name']} ({r['precision']})"]
        for g in GRAPHS:
            s = r["graphs_ms"][g]
            cells.append(f"{s['median_ms']:.2f} ({s['min_ms']:.2f}..{s['max_ms']:.2f})")
        s = r["frame_ms"]
        cells.append(f"{s['median_ms']:.2f} ({s['min_ms']:.2f}..{s['max_ms']:.2f})")
        ratio = r["ratio_vs_" + ref]
        cells.append(" / ".join(f"×{ratio[k]:.2f}" for k in (*GRAPHS, "frame")))
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out is None:
        return 0
    meta = {
        "data": args.data,
        "sequence": sequence.name,
        "updates_per_repeat": count - 1,
        "graph_runs": args.graph_runs,
        "repeats": args.repeats,
        "onnxruntime": ort.__version__,
        "ort_intra_op_threads": threads,
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/precision_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    md = [
        "# CPU time per precision, side by side",
        "",
        f"Bundles loaded by `edgetrack.Tracker` (ONNX Runtime {ort.__version__}, {threads} intra-op threads, "
        f"{os.cpu_count()} cores), interleaved call by call (order rotating), {args.repeats} rounds. Per graph: "
        f"median of {args.graph_runs} calls on one real input; per frame: median `Tracker.update` over "
        f"{count - 1} frames of `{args.data}` sequence {sequence.name} (preloaded), trackers in lockstep. Cells: "
        "median of the rounds (min..max); ratios: median of the per-round ratios.",
        "",
        table,
        "",
        *(line for note in args.note for line in (note, "")),
        f"Command: `{meta['command']}` ({meta['date']}). Generated by `benchmarks/precision_speed.py`.",
        "",
    ]
    (args.out / "precision_speed.md").write_text("\n".join(md), encoding="utf-8")
    # Keys "meta"/"bundles", not "rows": the report reads any results file with "rows" of "precision" as AUC figures.
    (args.out / "precision_speed.json").write_text(json.dumps({"meta": meta, "bundles": rows}, indent=2) + "\n",
                                                   encoding="utf-8")
    log(f"wrote {args.out / 'precision_speed.md'} and precision_speed.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
