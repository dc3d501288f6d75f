#!/usr/bin/env python3
"""What fp16 and int8 cost in tracking: one checkpoint converted at fp32, fp16 and int8, each bundle tracked.

1. ``data``: unless given (``--test-data``, ``--calibration``), render a held-out test set (split ``test``) and a
   calibration set (split ``train``: the two never share a photo) with ``edgetrack data synth`` into ``--work``.
2. ``convert``: ``edgetrack convert CKPT --target T --precision P --calibration ... --verify-data TEST`` for each
   precision; the converter's parity table goes to stdout, the bundles to ``--work/bundles/P``.
3. ``eval``: every bundle through :class:`edgetrack.Tracker` and :func:`edgetrack.evaluation.evaluate` on the test
   set's sharp and blurred variants (OTB success AUC; FPS counts ``update`` calls only). ``--plain`` turns the
   tracker's lost-target logic off, so every frame follows the network's peak: use it for a model too weak to pass
   the lost threshold, whose box would otherwise freeze at every precision alike and hide any difference.
4. ``report``: ``precision_auc.md`` and ``precision_auc.json`` in ``--out`` and the table on stdout —
   precision | compute | file MB | max rel err | AUC sharp | AUC blurred | ΔAUC vs fp32 | FPS — with issue 7's
   targets (fp16 costs at most 0.005 AUC, int8 at most 0.02). A precision not run this time keeps its row from the
   ``precision_auc.json`` already in ``--out`` when that file measured the same checkpoint, model, target, device,
   test set, frame limit and tracker settings (``--no-merge``: replace the file); its ΔAUC stays the one measured
   against that earlier run's fp32 row, and the row says when it was measured.

"max rel err" is the whole chain's (template -> search -> head response) largest error relative to the fp32 ONNX
response's scale, on real crops of the test set (worst sample). "file MB" is the bundle's files together (graphs and
their external weights, ``weights.bin``), the manifest left out.

Example (the shipped model)::

    python benchmarks/precision_auc.py --checkpoint runs/hsm/final.safetensors --model siamfc-hsm --out bench/prec

The shipped deblur-siamrpn (the tracker at each precision, its deblur stage at fp16 in the int8 bundle)::

    python benchmarks/precision_auc.py --checkpoint /work/ckpt/rpn3/siamrpn-eca/final.safetensors \
        --model siamrpn-eca --deblur /work/ckpt/s4/deblurgan-lite/checkpoints/epoch-0005.safetensors \
        --test-data synthetic:runs/bench-data/synth-test-seed12-30x120 \
        --calibration synthetic:runs/bench-data/synth-train-seed11-8x60 --out benchmarks/results/precision-deblur-siamrpn

int8 of the shipped SiamRPN (rows merged into the fp16 figures already there)::

    python benchmarks/precision_auc.py --checkpoint /work/ckpt/rpn3/siamrpn-eca/final.safetensors \
        --model siamrpn-eca --precisions fp32,int8 --test-data synthetic:runs/bench-data/synth-test-seed12-30x120 \
        --calibration synthetic:/tmp/int8cal --out benchmarks/results/precision-siamrpn-eca --work /tmp/prec-rpn

A quick check on CPU with a tiny model (seconds to minutes)::

    python benchmarks/precision_auc.py --checkpoint tiny.safetensors --model siamfc-tiny --out /tmp/prec \\
        --test-sequences 4 --frames 40 --calibration-frames 32 --plain

Runs from a plain checkout: if edgetrack is not installed, the repository is put on the path.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Issue 7: the AUC a lower precision may cost, at most.
AUC_BUDGET = {"fp16": 0.005, "int8": 0.02}


from _checkout import log, use_checkout  # noqa: E402 - benchmarks/ is on sys.path

use_checkout()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint (.safetensors) written by training")
    p.add_argument("--model", required=True, help="model the checkpoint holds (e.g. siamfc-hsm)")
    p.add_argument("--out", type=Path, required=True, help="folder for precision_auc.md / .json")
    p.add_argument("--work", type=Path, default=None, help="data and bundles (default: OUT/work)")
    p.add_argument("--precisions", default="fp32,fp16,int8", help="comma-separated (default fp32,fp16,int8)")
    p.add_argument("--target", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--device", default="cpu", help="device the bundles run on (default cpu)")
    p.add_argument("--scales", type=int, default=3, help="search scales (default 3)")
    p.add_argument("--test-data", default=None, metavar="SPEC",
                   help="evaluate on this synthetic:PATH set instead of rendering one")
    p.add_argument("--calibration", default=None, metavar="SPEC",
                   help="int8 calibration data set (default: render a synthetic set from the train photos)")
    p.add_argument("--calibration-frames", type=int, default=200, help="int8 calibration samples (default 200)")
    p.add_argument("--test-sequences", type=int, default=16, help="rendered test sequences (default 16)")
    p.add_argument("--calibration-sequences", type=int, default=16, help="rendered calibration sequences (16)")
    p.add_argument("--frames", type=int, default=120, help="frames per rendered sequence (default 120)")
    p.add_argument("--size", default="480x360", help="rendered frame size (default 480x360)")
    p.add_argument("--test-seed", type=int, default=2)
    p.add_argument("--calibration-seed", type=int, default=7)
    p.add_argument("--max-frames", type=int, default=None, help="evaluate on the first N frames of each sequence")
    p.add_argument("--workers", type=int, default=1, help="processes rendering the data (default 1)")
    p.add_argument("--no-merge", action="store_true",
                   help="replace OUT/precision_auc.json instead of keeping its rows of the precisions not run now")
    p.add_argument("--deblur", type=Path, default=None, metavar="CKPT",
                   help="add this DeblurGAN-v2 checkpoint as every bundle's deblur stage (edgetrack convert --deblur; "
                   "an int8 bundle keeps the stage at fp16) and track with the Tracker's default blur gate")
    p.add_argument("--plain", action="store_true",
                   help="track as plain SiamFC (follow the peak every frame, no lost-target logic): a weak model "
                   "whose scores stay under the lost threshold otherwise freezes its box at every precision alike")
    return p.parse_args(argv)


def _cli(argv: list[str]) -> None:
    from edgetrack.cli import main

    log("edgetrack " + " ".join(argv))
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"edgetrack {argv[0]} failed with status {rc}")


def _render(folder: Path, args, *, split: str, seed: int, sequences: int) -> str:
    if not (folder / "synth.json").is_file():
        _cli(["data", "synth", "--out", str(folder), "--sequences", str(sequences), "--frames", str(args.frames),
              "--size", args.size, "--seed", str(seed), "--split", split, "--workers", str(args.workers),
              "--no-pairs", "--no-contact-sheet", "--force"])
    return f"synthetic:{folder}"


def _bundle_mb(bundle) -> float:
    """Graph files and their external weights (``weights.bin``), not the manifest."""
    return sum(p.stat().st_size for p in bundle.path.iterdir() if p.is_file() and p.name != "manifest.json") / 1e6


def _chain_error(manifest, precision: str) -> tuple[float | None, str]:
    stage = "torch->onnx" if precision == "fp32" else f"onnx-fp32->{precision}"
    for inputs in ("crops", "random"):
        row = manifest.parity.get(f"{stage} {inputs}", {}).get("chain")
        if row:
            return row["max_rel"], inputs
    return None, ""


def _factory(path: Path, device: str, plain: bool):
    from edgetrack.tracker import Tracker, bundle_tracker

    if not plain:
        return bundle_tracker(f"bundle:{path}#{device}")
    from edgetrack.tracking import LostParams

    lost = LostParams(enabled=False)
    Tracker(path, device=device, lost_params=lost)  # fail here, not once per sequence

    def factory():
        return Tracker(path, device=device, lost_params=lost)

    return factory


# What must agree for a row of an earlier precision_auc.json to stand next to this run's rows.
_SAME_RUN = ("checkpoint", "deblur", "model", "target", "device", "scales", "test_data", "max_frames", "tracker",
             "tracking")


def _precision_order(row: dict) -> tuple:
    order = ("fp32", "fp16", "int8")
    p = row.get("precision")
    return (order.index(p) if p in order else len(order), str(p))


def _earlier_rows(path: Path, meta: dict, measured: set[str]) -> list[dict]:
    """Rows of ``path`` (an earlier run's precision_auc.json) for precisions not in ``measured``, if that run
    measured the same thing (:data:`_SAME_RUN`); otherwise none, said in the log."""
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        log(f"not merging {path}: it is not JSON ({exc})")
        return []
    old = data.get("meta") or {}
    differ = [k for k in _SAME_RUN if old.get(k) != meta.get(k)]
    if differ:
        log(f"not merging {path}: it measured another " + ", ".join(f"{k} ({old.get(k)!r})" for k in differ))
        return []
    kept = []
    for row in data.get("rows") or []:
        if isinstance(row, dict) and row.get("precision") not in measured:
            kept.append({**row, "date": row.get("date") or old.get("date")})
    if kept:
        log(f"keeping the rows {[r['precision'] for r in kept]} of {path}")
    return kept


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv=None) -> int:
    args = parse_args(argv)
    from edgetrack.bundle import load_bundle
    from edgetrack.data import open_dataset
    from edgetrack.evaluation import evaluate, limit
    from edgetrack.tracker import tracking_settings
    from edgetrack.tracking import LostParams

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    work = args.work or args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    # ---- data
    test = args.test_data or _render(work / "test", args, split="test", seed=args.test_seed,
                                     sequences=args.test_sequences)
    calibration = args.calibration
    if "int8" in precisions and calibration is None:
        calibration = _render(work / "calibration", args, split="train", seed=args.calibration_seed,
                              sequences=args.calibration_sequences)
    variants = {d.name.split("-")[-1]: d for d in open_dataset(test)}

    # ---- convert every bundle first: a conversion that fails its checks stops the run before hours of tracking
    rows = []
    converted = {}
    for precision in precisions:
        out = work / "bundles" / precision
        argv = ["convert", str(args.checkpoint), "--model", args.model, "--target", args.target,
                "--precision", precision, "-o", str(out), "--force"]
        if args.model.startswith("siamfc"):  # SiamRPN searches one crop: its anchors cover scale
            argv += ["--scales", str(args.scales)]
        argv += ["--verify-data", test]
        if args.deblur is not None:
            argv += ["--deblur", str(args.deblur)]
        if precision == "int8":
            argv += ["--calibration", calibration, "--calibration-frames", str(args.calibration_frames)]
        start = time.perf_counter()
        _cli(argv)
        converted[precision] = (out, time.perf_counter() - start)

    # ---- evaluate
    tracking = None
    for precision, (out, convert_s) in converted.items():
        bundle = load_bundle(out)
        manifest = bundle.manifest
        factory = _factory(out, args.device, args.plain)
        tracking = tracking or tracking_settings(
            out, lost_params=LostParams(enabled=False) if args.plain else None).to_dict()
        row = {
            "precision": precision,
            "compute": manifest.source.get("precision", {}).get("compute", "fp32"),
            "file_mb": _bundle_mb(bundle),
            "convert_s": convert_s,
            "notes": manifest.notes,
        }
        row["max_rel_err"], row["max_rel_err_inputs"] = _chain_error(manifest, precision)
        updates = seconds = 0.0
        for name in ("sharp", "blurred"):
            dataset = variants.get(name)
            if dataset is None:
                continue
            if args.max_frames:
                dataset = limit(dataset, max_frames=args.max_frames)
            log(f"evaluating {precision} on {dataset.name} ({len(dataset)} sequences)")
            result = evaluate(factory, dataset, tracker_name=f"{args.model}-{precision}")
            row[f"auc_{name}"] = result.summary()["success_auc"]
            updates += sum(s.updates for s in result.sequences)
            seconds += sum(s.update_time for s in result.sequences)
        row["fps"] = updates / seconds if seconds > 0 else None
        row["date"] = time.strftime("%Y-%m-%d %H:%M")
        if precision == "int8":
            row["calibration"] = calibration
            row["calibration_frames"] = args.calibration_frames
        rows.append(row)

    # ---- report
    meta = {
        "checkpoint": str(args.checkpoint),
        "deblur": None if args.deblur is None else str(args.deblur),
        "model": args.model,
        "target": args.target,
        "device": args.device,
        "scales": args.scales,
        "test_data": test,
        "calibration": calibration,
        "calibration_frames": args.calibration_frames,
        "max_frames": args.max_frames,
        "tracker": "plain SiamFC, no lost-target logic" if args.plain else "edgetrack.Tracker defaults",
        "tracking": tracking,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    kept = [] if args.no_merge else _earlier_rows(args.out / "precision_auc.json", meta, {r["precision"] for r in rows})
    # ΔAUC against this run's fp32 row, or (a run without fp32) against the earlier run's: same checkpoint, test
    # set and tracker (_SAME_RUN), and fp32 tracking is deterministic.
    base = next((r for r in rows if r["precision"] == "fp32"), None) or next(
        (r for r in kept if r["precision"] == "fp32"), None)
    for r in rows:
        if base is not None:
            r["fp32_auc"] = {n: base.get(f"auc_{n}") for n in ("sharp", "blurred")}
        for name in ("sharp", "blurred"):
            have = base is not None and r.get(f"auc_{name}") is not None and base.get(f"auc_{name}") is not None
            r[f"delta_auc_{name}"] = r[f"auc_{name}"] - base[f"auc_{name}"] if have else None
        budget = AUC_BUDGET.get(r["precision"])
        deltas = [r[f"delta_auc_{n}"] for n in ("sharp", "blurred") if r.get(f"delta_auc_{n}") is not None]
        r["auc_budget"] = budget
        r["within_budget"] = None if budget is None or not deltas else bool(min(deltas) >= -budget)
    if kept:
        meta["merged"] = {r["precision"]: r.get("date") for r in kept}
        rows = sorted(rows + kept, key=_precision_order)
    header = ("precision", "compute", "file MB", "max rel err", "AUC sharp", "AUC blurred",
              "ΔAUC vs fp32 (sharp / blurred)", "FPS", "issue 7 budget")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        status = {True: "met", False: "NOT met", None: "n/a"}[r["within_budget"]]
        budget = "-" if r["auc_budget"] is None else f"ΔAUC ≥ -{r['auc_budget']:g}: {status}"
        lines.append("| " + " | ".join((
            r["precision"], r["compute"], f"{r['file_mb']:.3f}",
            f"{_fmt(r['max_rel_err'], '.2e')} ({r['max_rel_err_inputs'] or '-'})",
            _fmt(r.get("auc_sharp")), _fmt(r.get("auc_blurred")),
            f"{_fmt(r['delta_auc_sharp'], '+.4f')} / {_fmt(r['delta_auc_blurred'], '+.4f')}",
            _fmt(r["fps"], ".1f"), budget,
        )) + " |")
    table = "\n".join(lines)
    int8 = next((r for r in rows if r["precision"] == "int8"), None)
    calibrated = "" if int8 is None else (f"; int8 calibrated on `{int8.get('calibration', calibration)}` "
                                          f"({int8.get('calibration_frames', args.calibration_frames)} samples)")
    md = [
        f"# Precision vs tracking: {args.model}{'' if args.deblur is None else ' with a deblur stage'}",
        "",
        f"Checkpoint `{args.checkpoint}`"
        f"{'' if args.deblur is None else f' with the deblur stage `{args.deblur}` (int8: the stage stays fp16)'}, target {args.target}, run on {args.device} "
        f"({meta['tracker']}); test set `{test}` "
        f"(sharp and blurred variants){'' if not args.max_frames else f', first {args.max_frames} frames'}"
        f"{calibrated}.",
        "",
        table,
        "",
        "max rel err: the whole chain's response vs the fp32 ONNX chain (fp32 row: vs torch), worst sample, relative "
        "to the reference's largest magnitude; (crops) = real crops of the test set. FPS counts `update` calls "
        "only, on this machine as loaded at the time of each row (its `date` in the JSON): rows measured at other "
        "times do not compare; `benchmarks/precision_speed.py` times precisions side by side. Generated by "
        "`benchmarks/precision_auc.py`.",
        "",
    ]
    if kept:
        md[-1:-1] = ["Rows kept from an earlier run of the same checkpoint and test set (ΔAUC against that run's fp32 "
                     "row): " + ", ".join(f"{r['precision']} ({r.get('date') or 'date not recorded'})" for r in kept)
                     + ".", ""]
    (args.out / "precision_auc.md").write_text("\n".join(md), encoding="utf-8")
    (args.out / "precision_auc.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n",
                                                encoding="utf-8")
    print(table)
    log(f"wrote {args.out / 'precision_auc.md'} and precision_auc.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
