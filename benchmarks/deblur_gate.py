#!/usr/bin/env python3
"""The deblur stage and its blur gate: what the gate separates, what it saves, and what it costs in accuracy.

Two commands.

``calibrate``: the blur measure (:func:`edgetrack.tracking.blur.blur_measure`) on what a tracker's gate measures,
cut from the synthetic generator's sharp and blurred variants of the same frames (identical annotations): each
frame's search crop centred on the previous frame's box (what a tracker that followed the target perfectly would cut),
measured on its central exemplar-sized window as the gate does (``--whole-crop``: all of it), and each sequence's
template crop. Reports the ROC AUC between blurred and sharp crops — over all frames, and over the frames whose blur
visibly changes the measured pixels (PSNR of the blurred window against the sharp one under 30 dB; with ``--blur
mixed`` many "blurred" frames barely move) — the threshold at the ``--quantile`` of the sharp crops' measure
(the share of a sharp video's frames the gate deblurs is 1 − quantile) and its rates, a table of other thresholds,
and the measure's cost per crop. This is how :data:`edgetrack.tracking.blur.DEFAULT_THRESHOLD` was chosen.

``run``: a tracker (bundle folder, or checkpoint converted with ``edgetrack convert``) and a DeblurGAN-v2 checkpoint
are composed (:func:`edgetrack.converters.deblur2onnx.add_deblur`) and tracked through :class:`edgetrack.Tracker`
on the synthetic test set's sharp and blurred variants with ``deblur="never"``, ``"always"`` and ``"auto"``: success
AUC, precision@20, FPS (``update`` calls only), the share of frames the gate deblurred, and the milliseconds per frame
spent in the deblurrer and in the gate.

Both print a markdown table and write ``deblur_gate_<command>.md`` / ``.json`` into ``--out``. Unless ``--data`` /
``--test-data`` names a set, one is rendered with ``edgetrack data synth`` into ``--work`` (``calibrate``: the train
photo split, so the threshold is never fitted on test photos; ``run``: the test split).

Examples::

    python benchmarks/deblur_gate.py calibrate --out bench/gate --sequences 24 --frames 60
    python benchmarks/deblur_gate.py calibrate --out bench/gate-test --split test --seed 11   # check on test photos
    python benchmarks/deblur_gate.py run --tracker bundles/siamrpn-eca --deblur runs/deblur/final.safetensors \\
        --out bench/deblur --sequences 16 --frames 120

A quick check on CPU with tiny models (what the tests' fixtures make)::

    python benchmarks/deblur_gate.py run --tracker tiny-bundle --deblur deblurgan-tiny.safetensors --out /tmp/dg \\
        --sequences 2 --frames 12 --size 240x180

Runs from a plain checkout: if edgetrack is not installed, the repository is put on the path.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODES = ("never", "always", "auto")
VISIBLE_PSNR = 30.0


from _checkout import log, use_checkout  # noqa: E402 - benchmarks/ is on sys.path

use_checkout()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(q, split, seed):
        q.add_argument("--out", type=Path, required=True, help="folder for the .md / .json report")
        q.add_argument("--work", type=Path, default=None, help="rendered data and bundles (default: OUT/work)")
        q.add_argument("--sequences", type=int, default=16, help="rendered sequences (default 16)")
        q.add_argument("--frames", type=int, default=60, help="frames per rendered sequence (default 60)")
        q.add_argument("--size", default="480x360", help="rendered frame size (default 480x360)")
        q.add_argument("--blur", default="mixed", help="rendered blur level (default mixed)")
        q.add_argument("--seed", type=int, default=seed, help=f"render seed (default {seed})")
        q.add_argument("--split", default=split, choices=("train", "test"), help=f"photo split (default {split})")
        q.add_argument("--workers", type=int, default=1, help="processes rendering the data (default 1)")

    c = sub.add_parser("calibrate", help="the blur measure on sharp vs blurred crops; choose the gate's threshold")
    common(c, "train", 2024)
    c.add_argument("--data", action="append", default=None, metavar="SPEC",
                   help="synthetic:DIR set(s) to measure instead of rendering one (repeatable)")
    c.add_argument("--quantile", type=float, default=0.9,
                   help="threshold = this quantile of the sharp crops' measure (default 0.9)")
    c.add_argument("--stride", type=int, default=1, help="use every n-th frame (default 1)")
    c.add_argument("--kernel", type=int, default=None, help="the measure's box taps (default: the gate's)")
    c.add_argument("--whole-crop", action="store_true",
                   help="measure the whole search crop instead of its central exemplar window (the tracker's gate)")

    r = sub.add_parser("run", help="track with deblur never / always / auto: AUC, FPS, share deblurred")
    common(r, "test", 11)
    r.add_argument("--tracker", type=Path, required=True, help="tracker bundle folder or checkpoint (.safetensors)")
    r.add_argument("--tracker-model", default=None,
                   help="model a tracker checkpoint holds (default: read from its metadata)")
    r.add_argument("--deblur", type=Path, required=True, help="DeblurGAN-v2 checkpoint (.safetensors)")
    r.add_argument("--test-data", default=None, metavar="SPEC", help="synthetic:DIR test set instead of rendering")
    r.add_argument("--modes", default=",".join(MODES), help="comma-separated deblur modes (default all three)")
    r.add_argument("--precision", default="fp32", choices=("fp32", "fp16"), help="deblur graphs' precision")
    r.add_argument("--threshold", type=float, default=None, help="gate threshold (default: the calibrated one)")
    r.add_argument("--hysteresis", type=float, default=0.0, help="gate hysteresis (default 0)")
    r.add_argument("--device", default="cpu", help="device the bundle runs on (default cpu)")
    r.add_argument("--max-frames", type=int, default=None, help="evaluate on the first N frames of each sequence")
    r.add_argument("--scales", type=int, default=3, help="SiamFC search scales when converting a checkpoint")
    return p.parse_args(argv)


def _cli(argv: list[str]) -> None:
    from edgetrack.cli import main

    log("edgetrack " + " ".join(argv))
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"edgetrack {argv[0]} failed with status {rc}")


def _render(folder: Path, args) -> str:
    if not (folder / "synth.json").is_file():
        _cli(["data", "synth", "--out", str(folder), "--sequences", str(args.sequences), "--frames", str(args.frames),
              "--size", args.size, "--blur", str(args.blur), "--seed", str(args.seed), "--split", args.split,
              "--workers", str(args.workers), "--no-pairs", "--no-contact-sheet", "--force"])
    return f"synthetic:{folder}"


def _variants(spec: str) -> dict:
    from edgetrack.data import open_dataset

    out = {d.name.split("-")[-1]: d for d in open_dataset(spec)}
    if not {"sharp", "blurred"} <= set(out):
        raise SystemExit(f"{spec} is not a synthetic set with sharp and blurred variants (has {sorted(out)})")
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _write(out: Path, command: str, md: str, data: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"deblur_gate_{command}.md").write_text(md + "\n", encoding="utf-8")
    (out / f"deblur_gate_{command}.json").write_text(json.dumps(data, indent=2, default=float) + "\n",
                                                     encoding="utf-8")
    print(md)
    log(f"wrote {out / f'deblur_gate_{command}.md'} and .json")


# ------------------------------------------------------------------------------------------------- calibrate
def _crop_pairs(sharp_seq, blurred_seq, stride: int):
    """(kind, sharp crop, blurred crop, frame pixels per crop pixel) for each usable frame: search crops at the
    previous frame's box, and the sequence's template crop."""
    from edgetrack.tracking.crop import box_center, context_size, crop_and_resize, mean_color
    from edgetrack.tracking.siamfc import SiamFCParams

    p = SiamFCParams()
    boxes = np.asarray(sharp_seq.boxes, np.float64)

    def usable(b):
        return np.isfinite(b).all() and min(b[2], b[3]) >= 2

    first = boxes[0]
    if usable(first):
        side = context_size(first[2], first[3], p.context)
        s0, b0 = sharp_seq.frame(0), blurred_seq.frame(0)
        yield ("template", crop_and_resize(s0, box_center(first), side, p.exemplar_size, mean_color(s0)),
               crop_and_resize(b0, box_center(first), side, p.exemplar_size, mean_color(b0)), side / p.exemplar_size)
    for i in range(1, len(sharp_seq), stride):
        prev = boxes[i - 1]
        if not usable(prev):
            continue
        side = context_size(prev[2], prev[3], p.context) * p.instance_size / p.exemplar_size
        s, b = sharp_seq.frame(i), blurred_seq.frame(i)
        c = box_center(prev)
        yield ("search", crop_and_resize(s, c, side, p.instance_size, mean_color(s)),
               crop_and_resize(b, c, side, p.instance_size, mean_color(b)), side / p.instance_size)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def calibrate(args) -> dict:
    from edgetrack.tracking.blur import (
        DEFAULT_KERNEL,
        DEFAULT_THRESHOLD,
        blur_measure,
        centre_window,
        gate_rates,
        roc_auc,
    )
    from edgetrack.tracking.siamfc import SiamFCParams

    p = SiamFCParams()

    work = args.work or args.out / "work"
    specs = args.data or [_render(work / f"calib-{args.split}-{args.seed}", args)]
    kernel = args.kernel or DEFAULT_KERNEL
    rows = {"search": [], "template": []}
    seconds, measured = 0.0, 0
    for spec in specs:
        variants = _variants(spec)
        blurred = {s.name: s for s in variants["blurred"].sequences}
        for seq in variants["sharp"].sequences:
            for kind, s, b, scale in _crop_pairs(seq, blurred[seq.name], args.stride):
                if kind == "search" and not args.whole_crop:  # what the tracker's gate measures
                    s = centre_window(s, p.exemplar_size, layout="HWC")
                    b = centre_window(b, p.exemplar_size, layout="HWC")
                start = time.perf_counter()
                ms, mb = blur_measure(s, scale, kernel=kernel), blur_measure(b, scale, kernel=kernel)
                seconds += time.perf_counter() - start
                measured += 2
                rows[kind].append((ms, mb, _psnr(s, b), scale))
    search = np.array(rows["search"])
    template = np.array(rows["template"]) if rows["template"] else np.zeros((0, 4))
    if len(search) < 10:
        raise SystemExit(f"only {len(search)} search crops: render more sequences or frames")
    sharp, blur, visible = search[:, 0], search[:, 1], search[:, 2] < VISIBLE_PSNR
    threshold = float(np.quantile(sharp, args.quantile))
    # Youden's J on the visibly blurred frames: the threshold that best separates them from sharp crops.
    grid = np.unique(np.concatenate([sharp, blur[visible]]))
    j = [(blur[visible] >= t).mean() - (sharp >= t).mean() for t in grid] if visible.any() else [0.0]
    youden = float(grid[int(np.argmax(j))]) if visible.any() else float("nan")

    def rates(t):
        r = gate_rates(sharp, blur, t)
        r["visible_deblurred"] = float((blur[visible] >= t).mean()) if visible.any() else None
        return r

    result = {
        "data": specs,
        "crops": {"search_pairs": int(len(search)), "template_pairs": int(len(template)),
                  "visibly_blurred_share": float(visible.mean())},
        "measure": {"name": "reblur-gradient-energy", "kernel": kernel,
                    "ms_per_crop": 1e3 * seconds / max(measured, 1)},
        "auc": {
            "search_all": roc_auc(blur, sharp),
            "search_visible": roc_auc(blur[visible], sharp) if visible.any() else None,
            "template_all": roc_auc(template[:, 1], template[:, 0]) if len(template) > 1 else None,
        },
        "sharp_quantiles": {f"q{int(q * 100)}": float(np.quantile(sharp, q)) for q in (0.5, 0.75, 0.9, 0.95, 0.99)},
        "blurred_quantiles": {f"q{int(q * 100)}": float(np.quantile(blur, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
        "chosen": {"quantile": args.quantile, **rates(threshold)},
        "youden_visible": rates(youden) if visible.any() else None,
        "current_default": rates(DEFAULT_THRESHOLD),
        "thresholds": [rates(t) for t in (0.2, 0.22, 0.24, 0.26, 0.28, 0.3, 0.35, 0.4, 0.5)],
        "scale_quantiles": {f"q{q}": float(np.percentile(search[:, 3], q)) for q in (10, 50, 90)},
    }
    a = result["auc"]

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.0f} %"

    md = [
        f"## Blur gate calibration ({len(search)} search / {len(template)} template crop pairs; "
        f"{pct(visible.mean())} visibly blurred, PSNR < {VISIBLE_PSNR:g} dB)",
        "",
        f"Data: {', '.join(specs)}. Measure: {result['measure']['name']}, {kernel}-tap box, "
        f"{result['measure']['ms_per_crop']:.2f} ms per crop on this CPU.",
        "",
        f"ROC AUC blurred vs sharp: search crops {a['search_all']:.3f} (all frames), "
        + (f"{a['search_visible']:.3f} (visibly blurred frames)" if a["search_visible"] is not None else "")
        + (f"; template crops {a['template_all']:.3f}" if a["template_all"] is not None else "") + ".",
        "",
        _table(["threshold", "sharp frames deblurred", "blurred frames deblurred", "visibly blurred deblurred", "note"],
               [[f"{r['threshold']:.3f}", pct(r["sharp_deblurred"]), pct(r["blurred_deblurred"]),
                 pct(r["visible_deblurred"]), note]
                for r, note in ([(result["chosen"], f"q{args.quantile:g} of sharp (chosen)"),
                                 (result["current_default"], "DEFAULT_THRESHOLD")]
                                + ([(result["youden_visible"], "Youden J (visible)")] if visible.any() else [])
                                + [(r, "") for r in result["thresholds"]])]),
    ]
    result["tools"] = {"python": platform.python_version(), "numpy": np.__version__}
    _write(args.out, "calibrate", "\n".join(md), result)
    return result


# ------------------------------------------------------------------------------------------------- run
def _tracker_bundle(args, work: Path) -> Path:
    if args.tracker.is_dir():
        return args.tracker
    model = args.tracker_model
    if model is None:
        from edgetrack.models.checkpoint_format import read_metadata

        model = json.loads(read_metadata(args.tracker).get("config", "{}")).get("name")
        if not model:
            raise SystemExit(f"{args.tracker} names no model in its metadata: pass --tracker-model")
    out = work / "bundles" / "tracker"
    _cli(["convert", str(args.tracker), "--model", model, "--target", "cpu", "-o", str(out), "--force",
          "--scales", str(args.scales)])
    return out


def run(args) -> dict:
    from edgetrack import Tracker
    from edgetrack.converters.deblur2onnx import add_deblur
    from edgetrack.evaluation import evaluate, limit
    from edgetrack.tracking.blur import BlurGate

    work = args.work or args.out / "work"
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    test = args.test_data or _render(work / f"test-{args.split}-{args.seed}", args)
    tracker = _tracker_bundle(args, work)
    gate = BlurGate(**({"threshold": args.threshold} if args.threshold is not None else {}),
                    hysteresis=args.hysteresis)
    composed = work / "bundles" / "deblur"
    log(f"add_deblur {tracker} + {args.deblur} -> {composed}")
    add_deblur(tracker, args.deblur, composed, force=True, precision=args.precision, gate=gate)
    variants = _variants(test)
    rows = []
    for variant in ("sharp", "blurred"):
        dataset = variants[variant]
        if args.max_frames:
            dataset = limit(dataset, max_frames=args.max_frames)
        for mode in modes:
            made = []

            def factory(mode=mode, made=made):
                t = Tracker(composed, device=args.device, deblur=mode)
                made.append(t)
                return t

            factory()  # load once before timing: the first session start is not a frame
            made.clear()
            log(f"deblur={mode} on {dataset.name} ({len(dataset)} sequences)")
            result = evaluate(factory, dataset, tracker_name=f"deblur-{mode}")
            s = result.summary()
            stats = [t.stats for t in made]
            frames = sum(st.frames for st in stats)
            rows.append({
                "variant": variant, "mode": mode, "success_auc": s["success_auc"], "precision_20": s["precision_20"],
                "fps": s["fps"], "frames": frames,
                "deblurred_share": sum(st.deblurred for st in stats) / frames if frames else None,
                "templates_deblurred": sum(st.template_deblurred for st in stats),
                "deblur_ms_per_frame": 1e3 * sum(st.deblur_seconds for st in stats) / max(frames, 1),
                "gate_ms_per_frame": 1e3 * sum(st.gate_seconds for st in stats) / max(frames, 1),
                "failed_frames": s["failed_frames"],
            })
    never = {r["variant"]: r for r in rows if r["mode"] == "never"}
    for r in rows:
        base = never.get(r["variant"])
        r["auc_change_vs_never"] = (r["success_auc"] - base["success_auc"]
                                    if base and None not in (r["success_auc"], base["success_auc"]) else None)

    def f(v, spec=".3f"):
        return "n/a" if v is None else format(v, spec)

    md = [
        f"## Deblur stage: never / always / auto ({composed.name}: tracker {tracker}, deblurrer {args.deblur.name}, "
        f"gate threshold {gate.threshold:g}, hysteresis {gate.hysteresis:g}, {args.precision})",
        "",
        f"Test data: {test}; device {args.device}; FPS counts `update` calls only.",
        "",
        _table(["variant", "deblur", "AUC", "ΔAUC vs never", "P@20", "FPS", "frames deblurred",
                "deblur ms/frame", "gate ms/frame"],
               [[r["variant"], r["mode"], f(r["success_auc"]), f(r["auc_change_vs_never"], "+.3f"),
                 f(r["precision_20"]), f(r["fps"], ".1f"),
                 "n/a" if r["deblurred_share"] is None else f"{100 * r['deblurred_share']:.0f} %",
                 f(r["deblur_ms_per_frame"], ".2f"), f(r["gate_ms_per_frame"], ".2f")] for r in rows]),
    ]
    data = {"rows": rows, "test_data": test, "tracker": str(tracker), "deblur": str(args.deblur),
            "bundle": str(composed), "gate": gate.to_dict(), "precision": args.precision, "device": args.device,
            "tools": {"python": platform.python_version(), "machine": platform.machine()}}
    _write(args.out, "run", "\n".join(md), data)
    return data


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "calibrate":
        if not 0 < args.quantile < 1:
            raise SystemExit(f"--quantile must be in (0, 1), got {args.quantile}")
        calibrate(args)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
