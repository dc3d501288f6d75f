#!/usr/bin/env python3
"""Speed of ``edgetrack.Tracker`` on a GPU: per-stream FPS at batch 1, aggregate FPS of many streams, per-stage
times, time to the first frame, and the share of the GPU's peak arithmetic that the frame rate uses.

Everything is measured end to end through :class:`edgetrack.Tracker` (crop, deblur gate and deblurrer when the
bundle has them, graphs, decode), on a synthetic motion-blurred sequence rendered in memory by
:func:`edgetrack.data.synth.render_sequence` (``--synthetic simple``: a textured box on grey, no photos needed).
Only ``update`` calls are timed; the sequence is looped (``init`` again at its start, not timed) until
``--measure`` updates per stream are done, after ``--warmup`` untimed ones.

For every bundle (``--bundle PATH`` or a shipped model name, repeatable) and every variant:

- ``torch``: backend ``torch`` on ``--device`` (each graph a CUDA graph after its first run on a GPU);
  ``--eager`` adds ``torch-eager`` (CUDA graphs off), ``--channels-last`` adds ``torch-nhwc``;
- ``onnxruntime`` (``--backends torch,onnxruntime``): ONNX Runtime on the CPU, for reference (``--cpu-streams``,
  default 1 stream, ``--cpu-measure`` updates, default 30);

it reports

- **per stream**: one tracker in one thread: FPS, median and p90 milliseconds per update, and milliseconds per
  update by stage (the search and head graphs as ``Session.run`` sees them, i.e. with their host<->device copies;
  the blur gate and the deblurrer from ``Tracker.stats``; ``crop``, the tracking logic's ``search_crops``, and
  ``decode``, its family's update from the maps, timed by wrapping them; ``other`` = the rest, Python glue), and
  the share of the update outside the networks (crop, gate, decode, other: issue #6's "Python overhead", goal
  under 10 %);
- **aggregate**: for each N of ``--streams`` (1 is the per-stream row), N trackers in N threads sharing the device:
  total updates per second over the wall time, and the mean per-stream FPS;
- **time to first frame**: ``Tracker(...)`` (graph conversion, weights to the device), ``init``, the first update
  (eager) and the second (the CUDA-graph capture of the search and head graphs); the CUDA context's start is paid
  before, once, and reported apart (``meta.cuda_init_s``);
- **share of peak**: MACs per frame counted from the ONNX graphs (Conv/ConvTranspose/MatMul/Gemm, from shapes:
  :func:`edgetrack.backends.simulator.graph_cost`; search + head, plus the deblur graph on the share of frames the
  gate deblurred) × FPS × 2 FLOP/MAC ÷ the GPU's dense tensor-core peak at each graph's compute precision (fp16;
  fp32 graphs as TF32 when ``torch.backends.cudnn.allow_tf32`` is on, PyTorch's default, else plain FP32), from
  :data:`PEAKS` by ``torch.cuda.get_device_name``; ``unknown`` for other devices;
- **parity** (unless ``--no-check``): every graph through the variant's backend (eager, captured, replayed) against
  ONNX Runtime on the CPU, on random inputs: the largest error relative to the output's largest magnitude.

Writes ``gpu_speed.json`` (``meta`` + flat ``rows``: what ``edgetrack bench --gpu-results`` reads) and
``gpu_speed.md`` into ``--out``, and prints the tables.

On the GPU machine (bundles from ``edgetrack convert ... --target cuda --precision fp16``)::

    python benchmarks/gpu_speed.py --bundle edgetrack/assets/models/siamrpn-eca --bundle B \\
        --streams 1,4,16 --backends torch,onnxruntime --eager --out benchmarks/results/gpu-speed

Per-stage CPU times of the shipped models through ONNX Runtime (what ``benchmarks/results/cpu-stages/`` holds)::

    python benchmarks/gpu_speed.py --bundle siamrpn-eca --bundle deblur-siamrpn --device cpu \
        --backends onnxruntime --deblur auto,always --cpu-measure 100 --cpu-streams 1 --out benchmarks/results/cpu-stages

A smoke test on the CPU (what the tests run)::

    python benchmarks/gpu_speed.py --bundle tiny-bundle --device cpu --synthetic simple --frames 6 \\
        --warmup 2 --measure 6 --streams 1,2 --out /tmp/gpu-speed

Runs from a plain checkout: if edgetrack is not installed, the repository is put on the path.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

from _checkout import use_checkout  # benchmarks/ is on sys.path

# Dense (no 2:4 sparsity) peaks in TFLOPS, from NVIDIA's datasheets (their tensor-core figures are quoted with
# sparsity: halved here). Keyed by a substring of torch.cuda.get_device_name; the first match wins.
PEAKS: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("H200 NVL", "H200 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5}),
    ("H200", "H200 SXM", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4}),
    ("H100 NVL", "H100 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5}),
    ("H100 PCIe", "H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "fp16": 756.5}),
    ("H100 80GB HBM3", "H100 SXM", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4}),
    ("H100 SXM", "H100 SXM", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4}),
)
DEFAULT_STREAMS = (1, 4, 16)


# -- inputs ----------------------------------------------------------------------------------------------------------
def _simple_frames(n: int, size: tuple[int, int], seed: int):
    """A textured box gliding over a grey, lightly textured background (no photos needed)."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    background = cv2.GaussianBlur(rng.integers(60, 160, (h, w, 3), np.uint8), (0, 0), 3)
    bw, bh = max(16, w // 10), max(12, h // 10)
    texture = rng.integers(0, 255, (bh, bw, 3), np.uint8)
    frames, box = [], None
    for i in range(n):
        f = background.copy()
        t = i / max(n - 1, 1)
        x = int((0.2 + 0.5 * t) * (w - bw))
        y = int((0.3 + 0.3 * np.sin(2 * np.pi * t)) * (h - bh))
        f[y:y + bh, x:x + bw] = texture
        frames.append(f)
        if box is None:
            box = (float(x), float(y), float(bw), float(bh))
    return frames, box


def load_frames(kind: str, n: int, size: tuple[int, int], seed: int):
    """(frames, first box, description) of a sequence of ``n`` frames of ``size`` (width, height)."""
    if kind == "photos":
        try:
            from edgetrack.data.synth import SynthConfig, render_sequence

            cfg = SynthConfig(sequences=1, frames=n, size=size, seed=seed, split="test", blur="mixed", pairs=False)
            _, blurred, boxes, _, _, _ = render_sequence(cfg, 0)
            return blurred, tuple(float(v) for v in boxes[0]), f"synthetic (photos, blur mixed, seed {seed})"
        except Exception as exc:  # noqa: BLE001 - no scikit-image photos: say so and use the simple scene
            print(f"note: synthetic photo sequence unavailable ({type(exc).__name__}: {exc}); using --synthetic simple",
                  file=sys.stderr)
    frames, box = _simple_frames(n, size, seed)
    return frames, box, f"simple (textured box on grey, seed {seed})"


def resolve_bundle(spec: str):
    """A bundle folder, or the name of a shipped model."""
    from edgetrack import list_models
    from edgetrack.bundle import load_bundle
    from edgetrack.errors import UnknownChoiceError

    path = Path(spec)
    if not path.exists() and spec in list_models():
        path = Path(__import__("edgetrack").__file__).parent / "assets" / "models" / spec
    if not path.exists():
        raise UnknownChoiceError("bundle", spec, list_models(), fix="pass a bundle folder or a shipped model name")
    return load_bundle(path)


# -- what a frame costs ----------------------------------------------------------------------------------------------
def graph_compute(manifest, name: str) -> str:
    """"fp16" when graph ``name`` computes in fp16 (``--target cuda --precision fp16``), else "fp32"."""
    source = manifest.source.get("precision") if isinstance(manifest.source, dict) else None
    text = ""
    if isinstance(source, dict):
        text = str((source.get("graphs") or {}).get(name, ""))
    if name.startswith("deblur"):
        section = (manifest.preprocessing or {}).get("deblur") or {}
        text = str(section.get("precision", text))
    return "fp16" if "fp16" in text and "storage" not in text else "fp32"


def graph_macs(bundle) -> dict[str, int]:
    import onnx

    from edgetrack.backends.simulator import graph_cost

    return {name: int(graph_cost(onnx.load(str(bundle.graph_path(name)))).macs) for name in bundle.manifest.graphs}


def gpu_peak(device_name: str | None):
    """(label, {precision: dense TFLOPS}) of the GPU called ``device_name``, or ("unknown", {})."""
    for key, label, peaks in PEAKS:
        if device_name and key in device_name:
            return label, peaks
    return "unknown", {}


def share_of_peak(fps: float, macs: dict[str, float], compute: dict[str, str], peaks: dict[str, float],
                  tf32: bool) -> tuple[float | None, str]:
    """Share of the peak the frame rate uses: Σ over graphs of (2·MACs / that precision's peak) × FPS."""
    if not peaks:
        return None, "unknown"
    seconds, used = 0.0, set()
    for name, m in macs.items():
        key = compute.get(name, "fp32")
        if key == "fp32" and tf32:
            key = "tf32"
        used.add(key)
        seconds += 2.0 * m / (peaks[key] * 1e12)
    return fps * seconds, "+".join(sorted(used))


# -- timing ----------------------------------------------------------------------------------------------------------
SYNC_STAGES = False  # --sync-stages: each timed stage waits for the GPU (see _sync_stage)


def _sync_stage() -> None:
    """With --sync-stages, wait for the GPU at the end of a timed stage: with crops and decode on the device
    (``Tracker.device_tracking``) the graphs' runs return before the GPU is done, and their time would otherwise be
    charged to the next stage that waits (the decode)."""
    if SYNC_STAGES and "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


class _Timed:
    """A session that adds up the seconds its ``run`` takes (one per tracker, used by one thread)."""

    def __init__(self, session):
        self._session = session
        self.seconds = 0.0
        self.calls = 0

    def run(self, feeds, **kwargs):
        t = time.perf_counter()
        out = self._session.run(feeds, **kwargs)
        _sync_stage()
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out

    def __getattr__(self, name):
        return getattr(self._session, name)


class _TimedCall:
    """A function that adds up the seconds its calls take (the tracking logic's crop and decode)."""

    def __init__(self, fn):
        self._fn = fn
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        out = self._fn(*args, **kwargs)
        _sync_stage()
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out

    def __getattr__(self, name):  # the wrapped object's other attributes (the frame program's close, mode, ...)
        return getattr(self._fn, name)


# Stages that are the networks (run by the backend), the rest being crop, gate, decode and Python glue. "frame" is
# the device path's frame program (Tracker.device_tracking): crops, search, head and decode in one CUDA graph.
GRAPH_STAGES = ("search", "head", "deblur", "frame")


def _time_logic(tracker) -> dict[str, _TimedCall]:
    """Wrap this tracker's crop and decode in timers: on the host path ``logic.search_crops`` and its family's
    update; on the device path the host halves (``logic.search_request``, ``logic.update_from_device``) and the
    frame program between them (``frame``)."""
    import dataclasses

    logic, family = getattr(tracker, "logic", None), getattr(tracker, "_family", None)
    if logic is None or family is None:
        return {}
    program = getattr(tracker, "_program", None)
    if program is not None:
        crop, decode, frame = (_TimedCall(f) for f in (logic.search_request, logic.update_from_device, program))
        logic.search_request, logic.update_from_device = crop, decode  # instance attributes: this tracker only
        tracker._program = frame
        return {"crop": crop, "decode": decode, "frame": frame}
    crop, decode = _TimedCall(logic.search_crops), _TimedCall(family.update)
    logic.search_crops = crop
    tracker._family = dataclasses.replace(family, update=decode)
    return {"crop": crop, "decode": decode}


def _graph_replay_ms(tracker, n: int = 200) -> float | None:
    """Milliseconds of GPU time per frame of the device path's frame graph: ``n`` replays back to back, no host
    work between them (what the frame would cost if the host's part were free). None without a captured graph."""
    program = getattr(tracker, "_program", None)  # a _TimedCall passes attributes through
    graph = getattr(program, "_graph", None)
    if graph is None:
        return None
    import torch

    with torch.cuda.device(program._device):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            graph.replay()
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - t) / n


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def variants(args) -> list[dict]:
    from edgetrack.backends.torchcuda import ENV_CHANNELS_LAST, ENV_CUDA_GRAPHS

    out = []
    for backend in args.backends:
        if backend == "torch":
            base = {ENV_CUDA_GRAPHS: "1", ENV_CHANNELS_LAST: "0"}
            out.append({"name": "torch", "backend": "torch", "device": args.device, "env": base})
            if args.eager:
                out.append({"name": "torch-eager", "backend": "torch", "device": args.device,
                            "env": {**base, ENV_CUDA_GRAPHS: "0"}})
            if args.channels_last:
                out.append({"name": "torch-nhwc", "backend": "torch", "device": args.device,
                            "env": {**base, ENV_CHANNELS_LAST: "1"}})
        else:
            out.append({"name": backend, "backend": backend, "device": "cpu", "env": {}})
    return out


def _make(bundle, variant, deblur: str):
    from edgetrack import Tracker

    with _environment(variant["env"]):
        return Tracker(bundle, backend=variant["backend"], device=variant["device"], deblur=deblur)


def _close(trackers) -> None:
    for t in trackers:
        t.close()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()


class _Stream:
    """One tracker on the looped sequence: ``step()`` does one timed update (and an untimed init at each start)."""

    def __init__(self, tracker, frames, box, offset: int = 0):
        self.tracker, self.frames, self.box = tracker, frames, box
        self.i = offset % max(len(frames) - 1, 1)
        self.deblurred = self.stat_frames = 0
        self.gate_s = self.deblur_s = 0.0
        self._init()

    def _stats(self) -> tuple[int, int, float, float]:
        stats = getattr(self.tracker, "stats", None)
        if stats is None:
            return 0, 0, 0.0, 0.0
        return stats.deblurred, stats.frames, stats.gate_seconds, stats.deblur_seconds

    def _init(self) -> None:
        self.tracker.init(self.frames[0], self.box)
        # Tracker.stats counts from init and includes the template crop's gate and deblurring: not an update's.
        self._base = self._stats()

    def _collect(self) -> None:
        now = self._stats()
        self.deblurred += now[0] - self._base[0]
        self.stat_frames += now[1] - self._base[1]
        self.gate_s += now[2] - self._base[2]
        self.deblur_s += now[3] - self._base[3]

    def step(self) -> float:
        if self.i >= len(self.frames) - 1:
            self._collect()
            self._init()
            self.i = 0
        self.i += 1
        t = time.perf_counter()
        self.tracker.update(self.frames[self.i])
        return time.perf_counter() - t

    def finish(self) -> None:
        self._collect()
        self._base = self._stats()  # so that a second finish() adds nothing


def _modes(tracker) -> str:
    """How the tracker's graphs ran: the sessions' modes on the host path; on the device path the frame program's
    (``frame-cuda-graph``: crops, graphs and decode as one CUDA graph), plus ``device-tracking``."""
    program = getattr(tracker, "_program", None)  # a _TimedCall passes attributes through
    if program is not None:
        return f"frame-{program.mode}+device-tracking"
    sessions = getattr(tracker, "_sessions", {})
    modes = sorted({getattr(s, "mode", "n/a") for s in sessions.values()})
    return "+".join(modes) if modes else "n/a"


def per_stream(bundle, variant, frames, box, args, deblur: str) -> dict:
    times = {}
    t = time.perf_counter()
    tracker = _make(bundle, variant, deblur)
    times["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tracker.init(frames[0], box)
    times["init_s"] = time.perf_counter() - t
    for key, frame in (("first_update_s", frames[1]), ("second_update_s", frames[2 % len(frames)])):
        t = time.perf_counter()
        tracker.update(frame)
        times[key] = time.perf_counter() - t
    times["time_to_first_frame_s"] = times["load_s"] + times["init_s"] + times["first_update_s"]
    times["time_to_steady_s"] = times["time_to_first_frame_s"] + times["second_update_s"]

    stream = _Stream(tracker, frames, box)
    for _ in range(args.warmup):
        stream.step()
    stream = _Stream(tracker, frames, box)  # stats from here on
    sessions = getattr(tracker, "_sessions", None)
    timed = {}
    if isinstance(sessions, dict):
        for name in ("search", "head"):
            if name in sessions:
                timed[name] = sessions[name] = _Timed(sessions[name])
    logic = _time_logic(tracker)
    update_s = np.array([stream.step() for _ in range(args.measure)])
    stream.finish()
    n = len(update_s)
    stages = {name: 1e3 * s.seconds / max(s.calls, 1) for name, s in timed.items()}
    stages["gate"] = 1e3 * stream.gate_s / n
    stages["deblur"] = 1e3 * stream.deblur_s / n
    # crop includes check_frame and the NCHW float conversion; decode the numpy box decoding and the lost logic.
    stages.update({name: 1e3 * c.seconds / n for name, c in logic.items()})
    stages["other"] = 1e3 * update_s.mean() - sum(stages.values())
    graphs = sum(stages.get(k, 0.0) for k in GRAPH_STAGES)
    replay_ms = _graph_replay_ms(tracker)
    result = {
        "fps": float(n / update_s.sum()),
        "ms_p50": float(np.median(update_s) * 1e3),
        "ms_p90": float(np.percentile(update_s, 90) * 1e3),
        "stages_ms": stages,
        # The share of the update outside the networks: crop, gate, decode and Python glue (issue #6: under 10 %).
        "outside_graphs_share": max(0.0, 1.0 - graphs / (1e3 * update_s.mean())),
        "deblurred_share": stream.deblurred / stream.stat_frames if stream.stat_frames else 0.0,
        "mode": _modes(tracker),
        # The device path's frame graph alone, replayed back to back: the GPU's share of the frame is this over ms.
        "frame_graph_gpu_ms": replay_ms,
        "gpu_busy_share": None if replay_ms is None else replay_ms / (1e3 * update_s.mean()),
        **times,
    }
    _close([tracker])
    return result


def aggregate(bundle, variant, n_streams: int, frames, box, args, deblur: str) -> dict:
    trackers = [_make(bundle, variant, deblur) for _ in range(n_streams)]
    streams = []
    for i, tracker in enumerate(trackers):
        s = _Stream(tracker, frames, box, offset=i * 7)
        for _ in range(args.warmup):
            s.step()
        streams.append(_Stream(tracker, frames, box, offset=i * 7))
    barrier = threading.Barrier(n_streams + 1)
    spans = [None] * n_streams
    errors = []

    def work(i):
        try:
            barrier.wait()
            start = time.perf_counter()
            busy = sum(streams[i].step() for _ in range(args.measure))
            spans[i] = (start, time.perf_counter(), busy)
        except Exception as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n_streams)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    if errors:
        _close(trackers)
        raise errors[0]
    for s in streams:
        s.finish()
    wall = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
    deblurred = sum(s.deblurred for s in streams)
    counted = sum(s.stat_frames for s in streams)
    result = {
        "aggregate_fps": n_streams * args.measure / wall,
        "per_stream_fps": float(np.mean([args.measure / (e - s) for s, e, _ in spans])),
        "wall_s": wall,
        "deblurred_share": deblurred / counted if counted else 0.0,
        "mode": _modes(trackers[0]),
    }
    _close(trackers)
    return result


def parity(bundle, variant) -> dict[str, float]:
    """Each graph through the variant's backend (3 runs: eager, capture, replay) against ONNX Runtime on the CPU."""
    import onnxruntime as ort

    from edgetrack.backends import get_backend

    out = {}
    with _environment(variant["env"]):
        backend = get_backend(variant["backend"])
    for name in bundle.manifest.graphs:
        path = bundle.graph_path(name)
        reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {i.name: (rng.random(i.shape) * (255.0 if i.name in ("z", "x", "crop") else 1.0)).astype(np.float32)
                 for i in reference.get_inputs()}
        expected = reference.run(None, feeds)
        session = backend.load(path, variant["device"])
        worst = 0.0
        for _ in range(3):
            got = session.run(feeds)
            for o, e in zip(reference.get_outputs(), expected):
                worst = max(worst, float(np.abs(got[o.name] - e).max() / max(np.abs(e).max(), 1e-12)))
        out[name] = worst
        close = getattr(session, "close", None)
        if close:
            close()
    return out


# -- the run ---------------------------------------------------------------------------------------------------------
def _environment_meta(device: str) -> dict:
    import edgetrack

    meta = {"gpu": "none", "peak_table": "unknown", "device": device, "python": platform.python_version(),
            "edgetrack": edgetrack.__version__, "machine": platform.node(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    try:
        import torch

        meta["torch"] = torch.__version__
        meta["cuda"] = torch.version.cuda
        meta["tf32_convolutions"] = bool(torch.backends.cudnn.allow_tf32)
        if device.startswith("cuda") and torch.cuda.is_available():
            index = torch.device(device).index or 0
            t = time.perf_counter()
            torch.zeros(1, device=device).add_(1).cpu()  # the CUDA context starts here, not in the first tracker
            meta["cuda_init_s"] = time.perf_counter() - t
            meta["gpu"] = torch.cuda.get_device_name(index)
            meta["cudnn"] = torch.backends.cudnn.version()
            label, peaks = gpu_peak(meta["gpu"])
            meta["peak_table"] = label
            meta["peak_tflops_dense"] = peaks
    except ImportError:
        pass
    try:
        import onnxruntime

        meta["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        meta["onnx2torch"] = version("onnx2torch")
    except Exception:  # noqa: BLE001 - not installed
        pass
    return meta


def _fmt(v, spec=".1f", dash="–"):
    return dash if v is None else format(v, spec)


def markdown(meta: dict, rows: list[dict]) -> str:
    on_gpu = meta.get("gpu") not in (None, "none")
    lines = [
        "# GPU speed through edgetrack.Tracker" if on_gpu else "# Speed through edgetrack.Tracker, on the CPU",
        "",
        f"{meta['gpu'] if on_gpu else 'no GPU'} (peak table: {meta['peak_table']}), torch {meta.get('torch', '–')}, "
        f"CUDA {meta.get('cuda', '–')}, onnx2torch {meta.get('onnx2torch', '–')}, "
        f"TF32 convolutions {meta.get('tf32_convolutions', '–')}; {meta['frames']} frames "
        f"{meta['size'][0]}×{meta['size'][1]}, {meta['sequence']}; {meta['measure']} timed updates per stream "
        f"(ONNX Runtime: {meta['cpu_measure']}) after {meta['warmup']} untimed; deblur={meta['deblur']}; "
        f"{meta['date']}.",
        "",
        "| model | precision | variant | deblur | device | mode | streams | FPS per stream | aggregate FPS "
        "| ms p50 / p90 | GMAC/frame | share of peak | first frame s (load + init + 1st update) "
        "| 2nd update s (CUDA-graph capture) | parity max rel |",
        "|---|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        share = "–" if r.get("share_of_peak") is None else f"{100 * r['share_of_peak']:.2f} % ({r['peak_used']})"
        latency = f"{_fmt(r.get('ms_p50'), '.2f')} / {_fmt(r.get('ms_p90'), '.2f')}" if "ms_p50" in r else "–"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['variant']} | {r['deblur']} | {r['device']} | {r['mode']} "
            f"| {r['streams']} "
            f"| {_fmt(r['per_stream_fps'])} | {_fmt(r['aggregate_fps'])} | {latency} "
            f"| {_fmt(r['gmacs_per_frame'], '.2f')} | {share} | {_fmt(r.get('time_to_first_frame_s'), '.2f')} "
            f"| {_fmt(r.get('second_update_s'), '.2f')} | {_fmt(r.get('parity_max_rel'), '.1e')} |")
    staged = [r for r in rows if r.get("stages_ms")]
    if staged:
        names = []
        for r in staged:
            names += [k for k in r["stages_ms"] if k not in names]
        lines += ["", "Milliseconds per update by stage (one stream; graphs include their host<->device copies; "
                  "crop: the search crop with its checks and NCHW conversion (device path: the host's choice of "
                  "crops and the region cut for them); decode: the maps to a box, with the lost-target logic "
                  "(device path: the host's reading of the decoded vector); frame: the device path's frame "
                  "program, crops + graphs + decode as one CUDA graph with its copies and its one wait; other: "
                  "the rest, Python glue and feeds; outside graphs: the share of the update that is not search, "
                  "head, deblur or frame; GPU busy: the frame graph's own GPU time, replayed back to back, over "
                  "the update):", "",
                  "| model | precision | variant | deblur | " + " | ".join(names)
                  + " | total | outside graphs | GPU busy |",
                  "|---|---|---|---|" + "--:|" * (len(names) + 3)]
        for r in staged:
            s = r["stages_ms"]
            total = _fmt(1e3 / r["per_stream_fps"], ".3f")
            share = "–" if r.get("outside_graphs_share") is None else f"{100 * r['outside_graphs_share']:.1f} %"
            busy = "–" if r.get("gpu_busy_share") is None else \
                f"{100 * r['gpu_busy_share']:.0f} % ({r['frame_graph_gpu_ms']:.3f} ms)"
            lines.append(f"| {r['model']} | {r['precision']} | {r['variant']} | {r['deblur']} | "
                         + " | ".join(_fmt(s.get(k), ".3f") for k in names) + f" | {total} | {share} | {busy} |")
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"stream counts must be positive, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    values = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    unknown = set(values) - {"torch", "onnxruntime"}
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"backends are torch and/or onnxruntime, got {text!r}")
    return values


def _modes_arg(text: str) -> tuple[str, ...]:
    values = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    if not values or set(values) - {"auto", "always", "never"}:
        raise argparse.ArgumentTypeError(f"deblur modes are auto, always and never, got {text!r}")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", action="append", required=True, metavar="PATH",
                   help="bundle folder or shipped model name (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_speed.json and gpu_speed.md")
    p.add_argument("--device", default="cuda", help="device of the torch variants (default cuda)")
    p.add_argument("--backends", type=_names, default=("torch",),
                   help="torch and/or onnxruntime (the CPU reference), comma-separated (default torch)")
    p.add_argument("--eager", action="store_true", help="also run torch with CUDA graphs off")
    p.add_argument("--channels-last", action="store_true", help="also run torch with NHWC activations")
    p.add_argument("--streams", type=_ints, default=DEFAULT_STREAMS,
                   help="stream counts for the aggregate (default 1,4,16)")
    p.add_argument("--cpu-streams", type=_ints, default=(1,),
                   help="stream counts for the onnxruntime CPU reference (default 1)")
    p.add_argument("--cpu-measure", type=int, default=30,
                   help="timed updates per stream for the onnxruntime CPU reference (default 30: SiamFC-HSM takes "
                        "a second or so per frame there)")
    p.add_argument("--frames", type=int, default=60, help="frames in the synthetic sequence (default 60)")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WIDTHxHEIGHT (default 640x480)")
    p.add_argument("--synthetic", choices=("photos", "simple"), default="photos",
                   help="photos: edgetrack's synthetic generator (needs scikit-image); simple: a textured box")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--warmup", type=int, default=20, help="untimed updates per stream first (default 20)")
    p.add_argument("--measure", type=int, default=300, help="timed updates per stream (default 300)")
    p.add_argument("--deblur", type=_modes_arg, default=("auto",),
                   help="Tracker(deblur=) modes for bundles with a deblur stage, comma-separated: auto, always, "
                        "never (default auto; e.g. auto,always)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check against ONNX Runtime")
    p.add_argument("--sync-stages", action="store_true",
                   help="wait for the GPU after each timed stage, so each stage is charged its own device work "
                        "(for the per-stage table with EDGETRACK_TORCH_DEVICE_TRACKING=1; slows the frame a little)")
    args = p.parse_args(argv)
    if args.frames < 3 or args.measure < 1 or args.cpu_measure < 1 or args.warmup < 0:
        p.error("need --frames >= 3, --measure >= 1, --cpu-measure >= 1, --warmup >= 0")
    return args


def _write(out: Path, meta: dict, rows: list[dict]) -> str:
    """Both files, rewritten after every row: a run cut short by a time limit still leaves what it measured."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n")
    text = markdown(meta, rows)
    (out / "gpu_speed.md").write_text(text)
    return text


def main(argv=None) -> int:
    use_checkout()
    args = parse_args(argv)
    global SYNC_STAGES
    SYNC_STAGES = args.sync_stages
    command = "python benchmarks/gpu_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if os.environ.get("EDGETRACK_TORCH_DEVICE_TRACKING"):  # part of what was measured: say so in the command
        command = f"EDGETRACK_TORCH_DEVICE_TRACKING={os.environ['EDGETRACK_TORCH_DEVICE_TRACKING']} {command}"
    meta = _environment_meta(args.device)
    frames, box, described = load_frames(args.synthetic, args.frames, args.size, args.seed)
    meta.update(frames=args.frames, size=list(args.size), sequence=described, warmup=args.warmup,
                measure=args.measure, cpu_measure=min(args.measure, args.cpu_measure), deblur=",".join(args.deblur),
                command=command, bundles={})
    _, peaks = gpu_peak(meta["gpu"])
    tf32 = bool(meta.get("tf32_convolutions"))
    rows: list[dict] = []
    for spec in args.bundle:
        bundle = resolve_bundle(spec)
        m = bundle.manifest
        macs = graph_macs(bundle)
        compute = {name: graph_compute(m, name) for name in m.graphs}
        precision = "fp16" if "fp16" in compute.values() else "fp32"
        has_stage = "deblur" in (m.preprocessing or {})
        # SiamFC's scale search by templates is another trade of speed for accuracy than the paper's: said in the name.
        model = m.model + (" (scale search by templates)" if (m.tracking or {}).get("scale_search") == "templates"
                           else "")
        meta["bundles"][spec] = {"model": model, "path": str(bundle.path), "target": m.target,
                                 "precision": m.precision, "compute": compute, "macs": macs}
        print(f"{model} ({bundle.path}): {m.target} {m.precision}, compute {compute}, "
              f"MACs per graph {macs}", flush=True)
        for variant in variants(args):
            check = None
            if not args.no_check:
                check = parity(bundle, variant)
                print(f"  {variant['name']}: parity against ONNX Runtime (max rel) {check}", flush=True)
            cpu = variant["backend"] == "onnxruntime"
            run_args = argparse.Namespace(**{**vars(args), "measure": min(args.measure, args.cpu_measure)}) \
                if cpu else args
            on_gpu = variant["device"].startswith("cuda")
            for deblur in (args.deblur if has_stage else ("auto",)):
                base = {"model": model, "precision": precision, "variant": variant["name"],
                        "deblur": deblur if has_stage else "–"}
                one = per_stream(bundle, variant, frames, box, run_args, deblur)
                frame_macs = {n: macs[n] for n in ("search", "head") if n in macs}
                if "deblur_search" in macs:
                    frame_macs["deblur_search"] = macs["deblur_search"] * one["deblurred_share"]
                share, used = share_of_peak(one["fps"], frame_macs, compute, peaks if on_gpu else {}, tf32)
                rows.append({
                    **base, "streams": 1, "per_stream_fps": one["fps"], "aggregate_fps": one["fps"],
                    "ms_p50": one["ms_p50"], "gmacs_per_frame": sum(frame_macs.values()) / 1e9,
                    "share_of_peak": share, "time_to_first_frame_s": one["time_to_first_frame_s"],
                    "mode": one["mode"], "device": variant["device"], "ms_p90": one["ms_p90"], "peak_used": used,
                    "second_update_s": one["second_update_s"], "load_s": one["load_s"], "init_s": one["init_s"],
                    "first_update_s": one["first_update_s"], "deblurred_share": one["deblurred_share"],
                    "updates": run_args.measure, "parity_max_rel": max(check.values()) if check else None,
                    "bundle": str(bundle.path), "stages_ms": one["stages_ms"],
                    "outside_graphs_share": one["outside_graphs_share"], "parity": check,
                    "frame_graph_gpu_ms": one["frame_graph_gpu_ms"], "gpu_busy_share": one["gpu_busy_share"]})
                _write(args.out, meta, rows)
                print(f"  {variant['name']} deblur={base['deblur']} 1 stream: {one['fps']:.1f} FPS, "
                      f"{one['ms_p50']:.2f} ms p50, stages "
                      + ", ".join(f"{k} {v:.3f}" for k, v in one["stages_ms"].items())
                      + f" ms; first frame after {one['time_to_first_frame_s']:.2f} s "
                        f"(+{one['second_update_s']:.2f} s capture); mode {one['mode']}; "
                        f"share of peak {_fmt(share, '.4f')}", flush=True)
                for n in (args.cpu_streams if cpu else args.streams):
                    if n == 1:
                        continue
                    agg = aggregate(bundle, variant, n, frames, box, run_args, deblur)
                    a_macs = dict(frame_macs)
                    if "deblur_search" in macs:
                        a_macs["deblur_search"] = macs["deblur_search"] * agg["deblurred_share"]
                    a_share, _ = share_of_peak(agg["aggregate_fps"], a_macs, compute, peaks if on_gpu else {}, tf32)
                    rows.append({
                        **base, "streams": n, "per_stream_fps": agg["per_stream_fps"],
                        "aggregate_fps": agg["aggregate_fps"], "gmacs_per_frame": sum(a_macs.values()) / 1e9,
                        "share_of_peak": a_share, "mode": agg["mode"], "device": variant["device"],
                        "peak_used": used, "wall_s": agg["wall_s"], "updates": n * run_args.measure,
                        "deblurred_share": agg["deblurred_share"], "bundle": str(bundle.path)})
                    _write(args.out, meta, rows)
                    print(f"  {variant['name']} deblur={base['deblur']} {n} streams: {agg['aggregate_fps']:.1f} FPS "
                          f"in all, {agg['per_stream_fps']:.1f} per stream; share of peak {_fmt(a_share, '.4f')}",
                          flush=True)
    text = _write(args.out, meta, rows)
    print()
    print(text)
    print(f"wrote {args.out / 'gpu_speed.json'} and {args.out / 'gpu_speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
