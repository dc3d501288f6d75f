"""The report's measurements: which trackers, on which data, and the three expensive runs.

- :func:`accuracy_run`: one tracker on one data set variant through :func:`edgetrack.evaluation.evaluate` (OTB AUC,
  P@20, the Deblur-SiamRPN protocol's P@15 and S@0.6, FPS of the update calls), plus what the deblur stage did.
- :func:`speed_run`: every tracker on the same decoded frames, round robin (sequence by sequence, the order rotated
  each time), so a change in the machine's load falls on all of them alike: FPS, per-frame times and, for
  :class:`edgetrack.Tracker`, the stages it reports (:attr:`edgetrack.Tracker.stats`: blur gate and deblurrer).
- :func:`simulator_run`: a bundle's latency on an Ascend chip, as :mod:`edgetrack.backends.simulator` estimates it
  from the graphs' shapes (an estimate, not a measurement), and whether the simulator loads the bundle at all.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgetrack.bench.cache import file_sha256
from edgetrack.errors import BaselineUnavailableError, EdgetrackError, InvalidArgumentError
from edgetrack.progress import progress


# ------------------------------------------------------------------------------------------------------ trackers
@dataclass(frozen=True, eq=False)
class Entry:
    """One tracker of the report. ``spec`` and ``identity`` make its part of a cache key: the spec never holds a
    path (a bundle measured on another machine, from another folder, is the same measurement) and the identity pins
    what was run (a bundle's manifest hash, which holds every graph's hash; OpenCV's version; NanoTrack's files)."""

    name: str
    spec: str
    identity: dict
    make: Callable[[], object]
    kind: str  # "edgetrack" or "baseline"
    model: str | None = None  # the bundle's manifest model name
    family: str | None = None
    precision: str | None = None
    deblur: str | None = None  # the Tracker's deblur mode, for bundles with a deblur stage
    bundle: object | None = None  # edgetrack.bundle.Bundle
    default: bool = False  # the model Tracker() runs when none is named

    @property
    def has_deblur_stage(self) -> bool:
        return self.deblur is not None


def _has_deblur_stage(bundle) -> bool:
    from edgetrack.tracking.blur import DeblurSpec

    return DeblurSpec.from_manifest(bundle.manifest) is not None


def bundle_entries(name: str, path: str | Path, *, shipped: bool, default: bool,
                   deblur_modes: tuple[str, ...]) -> list[Entry]:
    """The report's entries for one bundle: one, or one per deblur mode when it has a deblur stage."""
    from edgetrack.bundle import MANIFEST_NAME, load_bundle
    from edgetrack.tracker import Tracker, tracking_settings

    bundle = load_bundle(path)  # verifies every graph's hash: what the identity says is what runs
    m = bundle.manifest
    identity = {"model": m.model, "family": m.family, "precision": m.precision, "target": m.target,
                "manifest_sha256": file_sha256(Path(bundle.path) / MANIFEST_NAME)}
    # The tracking logic's effective settings belong to the measurement too: a new default in edgetrack's code (the
    # lost threshold, say) changes the boxes of the same bundle, so it must not reuse the cached figures.
    identity["tracking"] = tracking_settings(bundle).to_dict()
    base_spec = f"model:{name}" if shipped else f"bundle:{name}"
    modes = deblur_modes if _has_deblur_stage(bundle) else (None,)
    out = []
    for mode in modes:
        def make(mode=mode):
            return Tracker(bundle, device="cpu", deblur=mode or "auto")

        label = name if mode in (None, "auto") else f"{name} (deblur {mode})"
        spec = base_spec if mode is None else f"{base_spec}#deblur={mode}"
        out.append(Entry(label, spec, identity, make, "edgetrack", m.model, m.family, m.precision, mode, bundle,
                         default and mode in (None, "auto")))
    return out


def baseline_entry(name: str) -> Entry:
    """An OpenCV baseline (raises :class:`BaselineUnavailableError` when it cannot run here)."""
    import cv2

    from edgetrack.baselines import find_nanotrack, make_baseline

    factory = make_baseline(name)
    identity: dict = {"opencv": cv2.__version__}
    if name.split(":")[0] == "nanotrack":
        files = find_nanotrack(name.partition(":")[2] or None)
        identity.update(backbone=file_sha256(files.backbone), head=file_sha256(files.head))
    base = factory.tracker_name  # type: ignore[attr-defined]
    return Entry(base, base, identity, factory, "baseline")


def select_entries(models: tuple[str, ...] | None, bundles: tuple[tuple[str, str], ...],
                   baselines: tuple[str, ...], deblur_modes: tuple[str, ...]) -> tuple[list[Entry], dict[str, str]]:
    """Entries for the shipped ``models`` (None: all), the extra ``bundles`` (name, path) and the ``baselines``;
    and what could not be used here, name -> why."""
    from edgetrack.tracker import DEFAULT_MODEL, _shipped

    shipped = _shipped()
    entries: list[Entry] = []
    missing: dict[str, str] = {}
    for name in (sorted(shipped) if models is None else models):
        if name not in shipped:
            missing[name] = f"not a shipped model here (shipped: {', '.join(sorted(shipped)) or 'none'})"
            continue
        entries += bundle_entries(name, shipped[name], shipped=True, default=name == DEFAULT_MODEL,
                                  deblur_modes=deblur_modes)
    for name, path in bundles:
        try:
            entries += bundle_entries(name, path, shipped=False, default=False, deblur_modes=deblur_modes)
        except EdgetrackError as exc:
            missing[name] = str(exc)
    for name in baselines:
        try:
            entries.append(baseline_entry(name))
        except BaselineUnavailableError as exc:
            missing[name] = str(exc)
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidArgumentError(f"two trackers of the report are both named {dupes[0]!r}",
                                   fix="give --bundle NAME=PATH a name no shipped model or baseline has")
    return entries, missing


# ---------------------------------------------------------------------------------------------------- accuracy
def accuracy_run(entry: Entry, dataset) -> dict:
    """``entry`` on every sequence of ``dataset``: EvalResult.to_dict() (summary, OTB curves, per-sequence numbers)
    and, for a bundle with a deblur stage, what the stage did over the whole set."""
    from edgetrack.evaluation import evaluate

    deblur = {"frames": 0, "deblurred": 0, "gate_seconds": 0.0, "deblur_seconds": 0.0}
    current: list = []

    def collect():
        # Each sequence gets a fresh tracker; its stats cover that sequence (template deblurring included).
        if current and entry.has_deblur_stage:
            s = current[0].stats
            deblur["frames"] += s.frames
            deblur["deblurred"] += s.deblurred
            deblur["gate_seconds"] += s.gate_seconds
            deblur["deblur_seconds"] += s.deblur_seconds
        current.clear()

    def factory():
        collect()
        tracker = entry.make()
        current.append(tracker)
        return tracker

    result = evaluate(factory, dataset, tracker_name=entry.name)
    collect()
    out = result.to_dict()
    out.pop("result_dir", None)
    if entry.has_deblur_stage:
        out["deblur"] = {**deblur, "mode": entry.deblur,
                         "deblurred_share": deblur["deblurred"] / deblur["frames"] if deblur["frames"] else None}
    return out


# ------------------------------------------------------------------------------------------------------- speed
def _decode(dataset, sequences: int, frames: int) -> list[tuple[str, list[np.ndarray], np.ndarray]]:
    """The first frames of the first sequences, decoded once, so every tracker is timed on the same pixels and no
    tracker's time includes JPEG decoding."""
    out = []
    for seq in list(dataset.sequences)[:sequences]:
        n = min(len(seq), frames)
        if n < 2 or np.isnan(seq.boxes[0]).any():
            continue
        out.append((seq.name, [seq.frame(i) for i in range(n)], np.asarray(seq.boxes[0], float)))
    return out


@dataclass
class _Timing:
    update_s: list[float] = field(default_factory=list)
    init_s: list[float] = field(default_factory=list)
    gate_s: float = 0.0
    deblur_s: float = 0.0
    deblurred: int = 0
    stage_frames: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self, has_stats: bool) -> dict:
        t = self.update_s
        total = float(sum(t))
        n = len(t)
        out = {
            "frames": n,
            "seconds": total,
            "fps": n / total if total > 0 else None,
            "ms_mean": 1e3 * total / n if n else None,
            "ms_median": 1e3 * statistics.median(t) if n else None,
            "ms_p90": 1e3 * float(np.percentile(t, 90)) if n else None,
            "init_ms_mean": 1e3 * float(np.mean(self.init_s)) if self.init_s else None,
            "failures": self.failures,
            "errors": self.errors[:5],
        }
        if has_stats and n:
            out.update(gate_ms=1e3 * self.gate_s / n, deblur_ms=1e3 * self.deblur_s / n,
                       deblurred=self.deblurred, deblurred_share=self.deblurred / max(self.stage_frames, 1))
            out["rest_ms"] = out["ms_mean"] - out["gate_ms"] - out["deblur_ms"]
        return out


def _timed_sequence(tracker, frames: list[np.ndarray], box: np.ndarray, timing: _Timing, has_stats: bool) -> None:
    try:
        start = time.perf_counter()
        tracker.init(frames[0], box)
        timing.init_s.append(time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a tracker that fails is reported in the table, not fatal
        timing.failures += 1
        timing.errors.append(f"init: {type(exc).__name__}: {exc}")
        return
    before = tracker.stats if has_stats else None
    for frame in frames[1:]:
        try:
            start = time.perf_counter()
            tracker.update(frame)
            timing.update_s.append(time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001
            timing.failures += 1
            timing.errors.append(f"update: {type(exc).__name__}: {exc}")
    if has_stats:
        # Stats count from init, template included: the difference is the update calls' share alone.
        after = tracker.stats
        timing.gate_s += after.gate_seconds - before.gate_seconds
        timing.deblur_s += after.deblur_seconds - before.deblur_seconds
        timing.deblurred += after.deblurred - before.deblurred
        timing.stage_frames += after.frames - before.frames


def speed_run(entries: list[Entry], datasets: dict[str, object], *, sequences: int, frames: int,
              warmup: int = 3) -> dict:
    """Every entry on the same decoded frames of each variant in ``datasets`` (variant -> Dataset), round robin.

    Returns ``{"variants": {variant: {entry name: timing summary}}, "sequences": {variant: [names]},
    "load_before", "load_after"}``; ``ratios`` are added by the caller, which knows the reference trackers.
    """
    from edgetrack.bench.cache import load_average

    out: dict = {"variants": {}, "sequences": {}, "load_before": load_average()}
    for variant, dataset in datasets.items():
        clips = _decode(dataset, sequences, frames)
        if not clips:
            continue
        out["sequences"][variant] = [name for name, _, _ in clips]
        trackers = {}
        for e in entries:
            tracker = e.make()
            # Warm-up, untimed: ONNX Runtime plans its first runs, OpenCV allocates; neither is tracking speed.
            name, clip, box = clips[0]
            try:
                tracker.init(clip[0], box)
                for f in clip[1:1 + warmup]:
                    tracker.update(f)
            except Exception:  # noqa: BLE001 - the timed run records the failure
                pass
            trackers[e.name] = tracker
        timings = {e.name: _Timing() for e in entries}
        has_stats = {e.name: e.has_deblur_stage for e in entries}
        # Sequence by sequence, every tracker in turn; rotating the order per sequence spreads "who runs right
        # after whom" (caches, clock boost) over all of them.
        jobs = [(i, e) for i in range(len(clips))
                for e in entries[i % len(entries):] + entries[:i % len(entries)]]
        for i, e in progress(jobs, desc=f"speed on {variant}", unit="run"):
            _, clip, box = clips[i]
            _timed_sequence(trackers[e.name], clip, box, timings[e.name], has_stats[e.name])
        out["variants"][variant] = {e.name: timings[e.name].summary(has_stats[e.name]) for e in entries}
        for t in trackers.values():
            close = getattr(t, "close", None)
            if close:
                close()
    out["load_after"] = load_average()
    return out


def add_ratios(speed: dict, references: tuple[str, ...] = ("nanotrack", "csrt")) -> None:
    """FPS of every tracker divided by each reference's FPS on the same variant, same run."""
    for rows in speed.get("variants", {}).values():
        for name, row in rows.items():
            row["ratio"] = {}
            for ref in references:
                ref_fps = (rows.get(ref) or {}).get("fps")
                if row.get("fps") and ref_fps:
                    row["ratio"][ref] = row["fps"] / ref_fps


# --------------------------------------------------------------------------------------------------- simulator
def simulator_run(entry: Entry, chip: str, precision: str = "fp16") -> dict:
    """Estimated latency of ``entry``'s bundle on ``chip`` (see :mod:`edgetrack.backends.simulator`): per graph,
    at init (template, and its deblurring when the gate opens there), per frame with the blur gate closed and open,
    and whether ``Tracker(bundle, backend="simulator", device=chip)`` loads (operator audit, device memory)."""
    from edgetrack.backends.simulator import estimate_bundle
    from edgetrack.tracker import Tracker
    from edgetrack.tracking.blur import DeblurSpec

    bundle = entry.bundle
    est = estimate_bundle(bundle, chip, precision=precision)
    graphs = est["graphs"]
    spec = DeblurSpec.from_manifest(bundle.manifest)
    deblur_graphs = dict(spec.graphs) if spec else {}
    tracking = [g for g in graphs if g != "template" and g not in deblur_graphs.values()]
    per_frame = sum(graphs[g]["estimated_ms"] for g in tracking)
    deblur_ms = graphs[deblur_graphs["search"]]["estimated_ms"] if "search" in deblur_graphs else None
    init_ms = graphs["template"]["estimated_ms"]
    try:
        tracker = Tracker(bundle, backend="simulator", device=chip)
        tracker.close()
        loads = None
    except Exception as exc:  # noqa: BLE001 - a bundle the chip refuses is a finding of the report, not its end
        loads = f"{type(exc).__name__}: {exc}"
    first = next(iter(graphs.values()))
    return {
        "label": est["label"],
        "chip": est["chip"],
        "precision": precision,
        "assumed_utilisation": est["assumed_utilisation"],
        "assumptions": first.get("assumptions"),
        "graphs": {g: {"estimated_ms": v["estimated_ms"], "macs": v["macs"]} for g, v in graphs.items()},
        "tracking_graphs": tracking,
        "init_ms": init_ms,
        "init_deblur_ms": graphs[deblur_graphs["template"]]["estimated_ms"] if "template" in deblur_graphs else None,
        "per_frame_ms": per_frame,
        "per_frame_deblur_ms": per_frame + deblur_ms if deblur_ms is not None else None,
        "fps": 1e3 / per_frame if per_frame > 0 else None,
        "fps_deblur": 1e3 / (per_frame + deblur_ms) if deblur_ms else None,
        "macs_per_frame": sum(graphs[g]["macs"] for g in tracking),
        "load_error": loads,
    }


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["Entry", "select_entries", "bundle_entries", "baseline_entry", "accuracy_run", "speed_run",
           "add_ratios", "simulator_run", "finite"]
