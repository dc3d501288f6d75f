#!/usr/bin/env python3
"""Train HSM-SiamFC and plain SiamFC on synthetic blurred video, evaluate both, and report — on the GPU machine.

What it does, each stage reusing what an earlier call left in ``--work`` (the GPU machine's /tmp survives between
calls while it stays warm):

1. ``data``: render a training set (split ``train``, seed ``--train-seed``) and a held-out test set (split ``test``,
   seed ``--test-seed``; the splits never share a photo) with :mod:`edgetrack.data.synth`, in parallel over the
   cores, and crop the training set (sharp and blurred variants both) into one crop cache.
2. ``train``: HSM-SiamFC (``siamfc-hsm``, HSM loss α 0.6, γ 2) and plain SiamFC (``siamfc``: no fusion, balanced
   logistic loss), each as its own process — one after the other, or both at once on the one GPU with
   ``--concurrent``. Each process first measures its step time over ``--calib-steps`` steps (data loading
   included), then trains for as many steps as fit in ``--minutes``, so the learning-rate schedule (1e-2 -> 1e-5,
   geometric) runs to its end within the budget. Concurrent jobs measure their step time while sharing the GPU.
3. ``eval``: both final checkpoints with :class:`TorchSiamFCTracker` through :func:`edgetrack.evaluation.evaluate`
   on the test set, sharp and blurred.
4. ``report``: ``results.json``, ``results.md`` (AUC, P@20, P@15, S@0.6, AO, FPS per model and variant, and the
   training runs), ``loss_curves.png`` and the success/precision plots into ``--out``, and the tables on stdout.

On the device (``PYTHONUNBUFFERED=1`` shows progress as it happens)::

    PYTHONUNBUFFERED=1 python3 benchmarks/device_train_siamfc.py --out $OUT --minutes 3
    # or split over calls made while the machine is warm:
    ... --stages data,train --minutes 4     then     ... --stages eval,report

Locally, to check it end to end before it costs GPU time (CPU, siamfc-tiny, seconds)::

    python benchmarks/device_train_siamfc.py --tiny --out /tmp/bench-out --work /tmp/bench-work

It runs from a plain checkout: if edgetrack is not installed, the repository is put on the path and its models/
folder mapped to ``edgetrack.models`` as setup.py does. Needs torch, safetensors, OpenCV, scikit-image (the photos
the generator uses; carry its wheel onto PYTHONPATH where it is missing) and matplotlib (plots, optional).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


from _checkout import log, use_checkout  # noqa: E402 - benchmarks/ is on sys.path

use_checkout()

from edgetrack.models.training import HSM_ALPHA, HSM_GAMMA  # noqa: E402 - framework-free

# The paper's HSM loss settings, the trainers' defaults (Tables 2-3 sweep them: --models siamfc-hsm:hsm:gamma=0,...).
HSM_DEFAULTS = {"gamma": HSM_GAMMA, "alpha": HSM_ALPHA}
# (label, preset, loss, gamma, alpha)
FULL_MODELS = (("siamfc-hsm", "siamfc-hsm", "hsm", HSM_GAMMA, HSM_ALPHA),
               ("siamfc", "siamfc", "logistic", HSM_GAMMA, HSM_ALPHA))
TINY_MODELS = (("tiny-hsm", "siamfc-tiny", "hsm", HSM_GAMMA, HSM_ALPHA),
               ("tiny-logistic", "siamfc-tiny", "logistic", HSM_GAMMA, HSM_ALPHA))
STAGES = ("data", "train", "eval", "report")
METRICS = (("AUC", "success_auc"), ("P@20", "precision_20"), ("P@15", "precision_15"), ("S@0.6", "success_60"),
           ("AO", "ao"))


def parse_args(argv=None) -> argparse.Namespace:
    cores = os.cpu_count() or 4
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="where results.json/.md and the plots go")
    p.add_argument("--work", type=Path, default=Path("/tmp/edgetrack-bench"),
                   help="data, crop cache, runs (default /tmp/edgetrack-bench)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--tiny", action="store_true",
                   help="quick check: siamfc-tiny (HSM vs logistic loss), 2+1 short sequences, 15 s each, CPU")
    p.add_argument("--minutes", type=float, default=None, help="training wall-clock budget per model (default 3)")
    p.add_argument("--concurrent", action="store_true", help="train the models at once on the one GPU")
    p.add_argument("--models", default=None, metavar="PRESET:LOSS[:gamma=G][:alpha=A],...",
                   help="models to train and compare (default siamfc-hsm:hsm,siamfc:logistic; e.g. add "
                   "siamfc-hsm:logistic to separate the fusion module's effect from the loss's, or "
                   "siamfc-hsm:hsm:gamma=0,siamfc-hsm:hsm:gamma=4 for the paper's gamma sweep)")
    p.add_argument("--train-sequences", type=int, default=None, help="training sequences (default 64)")
    p.add_argument("--test-sequences", type=int, default=None, help="test sequences (default 16)")
    p.add_argument("--frames", type=int, default=None, help="frames per sequence (default 120)")
    p.add_argument("--size", default=None, help="frame size WxH (default 480x360)")
    p.add_argument("--blur", default=None, help="blur of the blurred variant (edgetrack data synth --blur; "
                   "default: the generator's)")
    p.add_argument("--train-data", default=None, metavar="SPEC",
                   help="train on this data set (KIND:PATH[#SUBSET]) instead of rendering a synthetic one")
    p.add_argument("--test-data", default=None, metavar="SPEC",
                   help="evaluate on this data set instead of rendering a synthetic one")
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--test-seed", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="pairs per step (default 8, the paper's)")
    p.add_argument("--calib-steps", type=int, default=None, help="steps timed before each run (default 200)")
    p.add_argument("--steps", type=int, default=None,
                   help="train exactly this many steps per model instead of calibrating to --minutes")
    p.add_argument("--device", default=None, help="cuda (default) or cpu (--tiny's default)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"data-loader processes per training job (default: the cores, {cores}, less 2, shared "
                   "between concurrent jobs)")
    p.add_argument("--no-amp", action="store_true", help="train in fp32 (TF32) instead of bf16 autocast")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--eval-max-frames", type=int, default=None, help="evaluate on the first N frames only")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    # internal: one training job, run as a child process
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    p.add_argument("--label", default=None, help=argparse.SUPPRESS)
    p.add_argument("--preset", default=None, help=argparse.SUPPRESS)
    p.add_argument("--loss", default=None, help=argparse.SUPPRESS)
    p.add_argument("--gamma", type=float, default=HSM_DEFAULTS["gamma"], help=argparse.SUPPRESS)
    p.add_argument("--alpha", type=float, default=HSM_DEFAULTS["alpha"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    tiny = args.tiny
    defaults = {
        "minutes": 0.25 if tiny else 3.0,
        "train_sequences": 2 if tiny else 64,
        "test_sequences": 1 if tiny else 16,
        "frames": 30 if tiny else 120,
        "size": "240x180" if tiny else "480x360",
        "batch_size": 4 if tiny else 8,
        "calib_steps": 16 if tiny else 200,
        "device": "cpu" if tiny else "cuda",
        "eval_max_frames": None,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.workers is None:
        args.workers = 2 if tiny else max(1, cores - 2)
    args.size = tuple(int(v) for v in str(args.size).lower().split("x"))
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in args.stages if s not in STAGES]
    if bad:
        p.error(f"unknown stage(s) {bad}; stages: {', '.join(STAGES)}")
    if args.models:
        models = []
        for item in args.models.split(","):
            preset, _, rest = item.strip().partition(":")
            loss, *knobs = rest.split(":")
            if not preset or loss not in ("hsm", "logistic"):
                p.error(f"--models takes PRESET:LOSS[:gamma=G][:alpha=A] items with LOSS hsm or logistic, "
                        f"got {item!r}")
            hsm = {"gamma": HSM_DEFAULTS["gamma"], "alpha": HSM_DEFAULTS["alpha"]}
            for knob in knobs:
                key, eq, value = knob.partition("=")
                try:
                    if not eq or key not in hsm or loss != "hsm":
                        raise ValueError
                    hsm[key] = float(value)
                except ValueError:
                    p.error(f"--models item {item!r}: {knob!r} is not gamma=G or alpha=A (HSM loss only)")
            default = {"siamfc": "logistic"}.get(preset, "hsm")
            label = preset if loss == default else f"{preset}+{loss}"
            label += "".join(f"+{k[0]}{hsm[k]:g}" for k in ("gamma", "alpha") if hsm[k] != HSM_DEFAULTS[k])
            models.append((label, preset, loss, hsm["gamma"], hsm["alpha"]))
        args.models = tuple(models)
    else:
        args.models = TINY_MODELS if tiny else FULL_MODELS
    return args


# ------------------------------------------------------------------------------------------------------- stage 1
def train_spec(args) -> str:
    return args.train_data or f"synthetic:{args.work / 'train'}"


def test_spec(args) -> str:
    return args.test_data or f"synthetic:{args.work / 'test'}"


def make_data(args) -> None:
    from edgetrack.models.pairs import CropCache, PairConfig, open_sequences

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 4
    for split, n, seed in (("train", args.train_sequences, args.train_seed), ("test", args.test_sequences,
                                                                            args.test_seed)):
        folder = work / split
        if getattr(args, f"{split}_data"):
            log(f"{split} set: {getattr(args, f'{split}_data')}")
            continue
        if (folder / "synth.json").is_file():
            log(f"{split} set: reusing {folder}")
            continue
        t = time.time()
        # Through the command line, the generator's documented interface (`edgetrack data synth`).
        argv = [sys.executable, "-m", "edgetrack", "data", "synth", "--out", str(folder), "--sequences", str(n),
                "--seed", str(seed), "--frames", str(args.frames), "--size", f"{args.size[0]}x{args.size[1]}",
                "--split", split, "--workers", str(max(1, min(cores, n))), "--force"]
        argv += ["--blur", args.blur] if args.blur else []
        env = {**os.environ, "EDGETRACK_NO_PROGRESS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"edgetrack data synth failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                             f"{proc.stderr[-4000:]}")
        log(f"{split} set: {n} sequences x {args.frames} frames rendered in {time.time() - t:.0f} s")
    cache_path = work / "cache.npz"
    if cache_path.is_file():
        log(f"crop cache: reusing {cache_path}")
        return
    t = time.time()
    seqs = open_sequences([train_spec(args)])  # a synthetic set gives both variants: sharp and blurred
    cache = CropCache.build(seqs, PairConfig(), workers=min(cores, len(seqs)), progress=False)
    cache.save(cache_path)
    log(f"crop cache: {cache} in {time.time() - t:.0f} s")


# ------------------------------------------------------------------------------------------------------- stage 2
def _read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_job(args) -> int:
    """One model: time ``calib_steps`` steps, then train for what fits in ``minutes``; writes job.json."""
    import shutil

    from edgetrack.models.pairs import CropCache
    from edgetrack.models.torch.train import TrainConfig, train

    run = args.work / "runs" / args.label
    shutil.rmtree(run, ignore_errors=True)
    t_load = time.time()
    cache = CropCache.load(args.work / "cache.npz")
    log(f"{args.label}: cache of {len(cache)} crops loaded in {time.time() - t_load:.0f} s")
    common = dict(model=args.preset, loss=args.loss, gamma=args.gamma, alpha=args.alpha, batch_size=args.batch_size, device=args.device,
                  workers=args.workers, seed=args.seed, amp=not args.no_amp and args.device != "cpu",
                  channels_last=args.channels_last, progress=False, log_every=max(1, args.calib_steps // 8))

    t = time.time()
    budget = args.minutes * 60
    if args.steps:
        # A fixed step count: concurrent jobs calibrate while the others are still loading or calibrating, so a
        # measured step time can be far too optimistic for the run that follows (seen: 8 ms measured, ~14 ms real).
        steps, step_time, calib_wall = args.steps, float("nan"), 0.0
    else:
        calib = TrainConfig(epochs=1, steps_per_epoch=args.calib_steps, out=str(run / "calibration"), **common)
        train(calib, cache)
        entries = _read_log(run / "calibration" / "log.jsonl")
        # The second half only: the first holds cuDNN's autotuning, the loader's start, and batches the workers
        # had queued ahead meanwhile (which would make a loader-bound run look faster than it is).
        warm = [e for e in entries if e["step"] >= args.calib_steps // 2] or entries
        step_time = (warm[-1]["time"] - warm[0]["time"]) / max(1, warm[-1]["step"] - warm[0]["step"])
        calib_wall = time.time() - t
        steps = max(1, int(budget * 0.92 / step_time))  # checkpoints, log lines, the loader's start cost a little
    epochs = min(50, steps)
    spe = max(1, steps // epochs)
    log(f"{args.label}: {step_time * 1000:.1f} ms/step measured ({calib_wall:.0f} s calibration); "
        f"{epochs} epochs x {spe} steps for {args.minutes:g} min")

    cfg = TrainConfig(epochs=epochs, steps_per_epoch=spe, out=str(run / "train"),
                      checkpoint_every=max(1, epochs // 5), **{**common, "log_every": max(1, min(50, spe // 4))})
    t = time.time()
    final = train(cfg, cache)
    wall = time.time() - t
    entries = _read_log(run / "train" / "log.jsonl")
    info = {
        "label": args.label, "preset": args.preset, "loss": cfg.loss, "gamma": cfg.gamma, "alpha": cfg.alpha,
        "batch_size": cfg.batch_size,
        "amp": cfg.amp, "channels_last": cfg.channels_last, "device": args.device, "workers": args.workers,
        "calibration_step_ms": step_time * 1000, "calibration_wall_s": calib_wall,
        "epochs": epochs, "steps_per_epoch": spe, "steps": epochs * spe, "pairs": epochs * spe * cfg.batch_size,
        "budget_s": budget, "train_wall_s": wall, "step_ms": wall / (epochs * spe) * 1000,
        "first_loss": entries[0]["loss"], "final_loss": entries[-1]["loss"],
        "final": str(final), "log": str(run / "train" / "log.jsonl"), "concurrent": args.concurrent,
    }
    (run / "job.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"{args.label}: {info['steps']} steps in {wall:.0f} s, loss {info['first_loss']:.4f} -> "
        f"{info['final_loss']:.4f}")
    return 0


def train_all(args) -> None:
    jobs = []
    workers = args.workers if not args.concurrent else max(1, args.workers // len(args.models))
    for label, preset, loss, gamma, alpha in args.models:
        argv = [sys.executable, str(Path(__file__).resolve()), "--job", "train", "--label", label, "--preset", preset,
                "--loss", loss, "--gamma", str(gamma), "--alpha", str(alpha), "--out", str(args.out), "--work", str(args.work), "--minutes", str(args.minutes),
                "--batch-size", str(args.batch_size), "--calib-steps", str(args.calib_steps), "--device",
                args.device, "--workers", str(workers), "--seed", str(args.seed)]
        argv += ["--no-amp"] if args.no_amp else []
        argv += ["--channels-last"] if args.channels_last else []
        argv += ["--concurrent"] if args.concurrent else []
        argv += ["--tiny"] if args.tiny else []
        argv += ["--steps", str(args.steps)] if args.steps else []
        jobs.append((label, argv))
    env = {**os.environ, "EDGETRACK_NO_PROGRESS": "1"}
    if args.concurrent:
        procs = [(label, subprocess.Popen(argv, env=env)) for label, argv in jobs]
        failed = [label for label, p in procs if p.wait() != 0]
    else:
        failed = [label for label, argv in jobs if subprocess.run(argv, env=env).returncode != 0]
    if failed:
        raise SystemExit(f"training failed for {', '.join(failed)}")


# ------------------------------------------------------------------------------------------------------- stage 3
def evaluate_all(args) -> list[dict]:
    import torch

    from edgetrack.data import open_dataset
    from edgetrack.evaluation import evaluate, limit
    from edgetrack.models.torch.train import checkpoint_tracker

    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed shapes: 1 template, 3 search scales
    datasets = open_dataset(test_spec(args))
    if args.eval_max_frames:
        datasets = [limit(d, max_frames=args.eval_max_frames) for d in datasets]
    rows, results = [], []
    for label, preset, loss, gamma, alpha in args.models:
        final = args.work / "runs" / label / "train" / "final.safetensors"
        factory = checkpoint_tracker(f"checkpoint:{final}#{args.device}")
        _warm_up(factory, datasets[0].sequences[0])
        for ds in datasets:
            t = time.time()
            r = evaluate(factory, ds, result_dir=args.work / "eval" / ds.name, tracker_name=label)
            s = r.summary()
            rows.append({"model": label, "preset": preset, "loss": loss, "gamma": gamma if loss == "hsm" else None,
                         "alpha": alpha if loss == "hsm" else None, "variant": ds.name.replace("synthetic-", ""),
                         **{k: s.get(k) for _, k in METRICS}, "fps": s["fps"], "frames": s["frames"],
                         "sequences": s["sequences"], "failed_frames": s["failed_frames"]})
            results.append(r)
            log(f"eval {label} on {ds.name}: AUC {s['success_auc']:.3f}, P@20 {s['precision_20']:.3f}, "
                f"{s['fps']:.0f} FPS ({time.time() - t:.0f} s)")
    (args.work / "eval.json").write_text(json.dumps(rows, indent=2) + "\n")
    try:
        from edgetrack.plots import plot_results

        args.out.mkdir(parents=True, exist_ok=True)
        for path in plot_results(results, args.out):
            log(f"plot: {path}")
    except Exception as exc:  # noqa: BLE001 - plots are a convenience; the numbers are already saved
        log(f"no success/precision plots: {exc}")
    return rows


def _warm_up(factory, seq, updates: int = 10) -> None:
    """A few untimed updates first, so cuDNN's autotuning and lazy initialisation stay out of the FPS."""
    tracker = factory()
    tracker.init(seq.frame(0), seq.init_box)
    for i in range(1, min(len(seq), updates + 1)):
        tracker.update(seq.frame(i))


# ------------------------------------------------------------------------------------------------------- stage 4
def _fmt(v, spec="{:.3f}") -> str:
    return "-" if v is None else spec.format(v)


def report(args) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    eval_path = args.work / "eval.json"
    rows = json.loads(eval_path.read_text()) if eval_path.is_file() else []
    jobs = []
    for label, *_ in args.models:
        path = args.work / "runs" / label / "job.json"
        if path.is_file():
            jobs.append(json.loads(path.read_text()))
    env = _environment(args)
    data = {}
    for split in ("train", "test"):
        rec = args.work / split / "synth.json"
        if rec.is_file():
            r = json.loads(rec.read_text())
            data[split] = {"sequences": r.get("sequences"), "seed": r.get("seed"), "image_size": r.get("image_size"),
                           **r.get("config", {})}
    result = {"environment": env, "data": data, "models": [list(m) for m in args.models], "training": jobs,
              "evaluation": rows,
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k not in ("job", "label", "preset", "loss", "models")}}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")

    lines = [f"# HSM-SiamFC vs SiamFC, trained on {train_spec(args).split(':')[0]} data", ""]
    lines.append(f"{env.get('gpu') or env['device']}; torch {env['torch']}; "
                 f"{'concurrent' if args.concurrent else 'sequential'} training, {args.minutes:g} min per model; "
                 f"train: {train_spec(args)} ({data.get('train', {}).get('sequences', '?')} sequences, sharp + "
                 f"blurred); test: {test_spec(args)} ({data.get('test', {}).get('sequences', '?')} sequences).")
    lines += ["", "## Tracking (test set)", "",
              "| model | loss | variant | " + " | ".join(n for n, _ in METRICS) + " | FPS |",
              "|---|---|---|" + "---:|" * (len(METRICS) + 1)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['loss']} | {r['variant']} | "
                     + " | ".join(_fmt(r[k]) for _, k in METRICS) + f" | {_fmt(r['fps'], '{:.0f}')} |")
    lines += ["", "## Training", "",
              "| model | preset | loss | steps | batch | pairs | ms/step | min | first loss | final loss | amp |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for j in jobs:
        lines.append(f"| {j['label']} | {j['preset']} | {j['loss']} | {j['steps']} | {j['batch_size']} | "
                     f"{j['pairs']} | {j['step_ms']:.1f} | {j['train_wall_s'] / 60:.1f} | {j['first_loss']:.4f} | "
                     f"{j['final_loss']:.4f} | {'bf16' if j['amp'] else 'fp32'} |")
    lines += ["", "AUC: OTB success AUC; P@20 / P@15: share of frames with centre error within 20 / 15 px; S@0.6: "
              "share with IoU > 0.6 (Deblur-SiamRPN's protocol); AO: GOT-10k average overlap; FPS: tracker updates "
              "per second (crops on the CPU, network on the device)."]
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    print(text, flush=True)
    if jobs:
        _plot_losses(jobs, out / "loss_curves.png")


def _environment(args) -> dict:
    import numpy as np

    env = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
           "device": args.device}
    try:
        import cv2

        env["opencv"] = cv2.__version__
    except ImportError:
        pass
    try:
        import torch

        env["torch"] = torch.__version__
        if args.device.startswith("cuda") and torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        env["torch"] = None
    return env


def _plot_losses(jobs: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError as exc:
        log(f"no loss plot: {exc}")
        return
    cols = min(2, len(jobs))  # one panel per model, two to a row
    rows = (len(jobs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(jobs):]:
        ax.set_visible(False)
    for ax, j in zip(axes.flat, jobs):
        entries = _read_log(Path(j["log"]))
        steps = np.array([e["step"] for e in entries])
        loss = np.array([e["loss"] for e in entries])
        ax.plot(steps, loss, color="tab:blue", alpha=0.35, lw=0.8, label="loss (per log interval)")
        k = max(1, len(loss) // 25)
        if len(loss) > k:
            smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], smooth, color="tab:blue", lw=2, label=f"mean of {k}")
        ax.set_yscale("log")  # the first steps fall by orders of magnitude; the rest would look flat
        ax.set_xlabel("step")
        ax.set_ylabel(f"{j['loss']} loss")
        ax.set_title(f"{j['label']} ({j['preset']}, batch {j['batch_size']})")
        ax.grid(alpha=0.3)
        lr_ax = ax.twinx()
        lr_ax.semilogy(steps, [e["lr"] for e in entries], color="tab:orange", lw=1, label="learning rate")
        lr_ax.set_ylabel("learning rate")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"plot: {path}")


# ----------------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.job == "train":
        return train_job(args)
    t0 = time.time()
    log(f"stages {','.join(args.stages)}; work {args.work}; out {args.out}; models "
        f"{', '.join(m[0] for m in args.models)}; device {args.device}")
    if "data" in args.stages:
        make_data(args)
    if "train" in args.stages:
        train_all(args)
    if "eval" in args.stages:
        evaluate_all(args)
    if "report" in args.stages:
        report(args)
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
