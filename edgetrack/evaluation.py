"""Run a tracker over a data set, time it, score it and write its results the got10k toolkit's way.

:func:`evaluate` judges anything with ``init(frame, box)`` and ``update(frame)``, where ``update`` returns

- a box ``(x, y, w, h)`` (tuple, list or array),
- an OpenCV-style pair ``(ok, box)``: ``ok=False`` means the tracker reports the target lost, or
- an object with ``.box`` (and optionally ``.lost``), such as edgetrack's ``TrackResult``.

A lost target is a result, not an error: its box is kept when it is a real box, else the frame gets a NaN row
(IoU 0). A tracker that *raises* on a frame is recorded as a failure on that frame (NaN row, IoU 0) and tracking
goes on with the next frame; an ``init`` that raises fails the whole sequence. Failures are listed in the
:class:`EvalResult` and reported by ``edgetrack eval``; they never end an evaluation.

Conventions (those of the got10k toolkit): the prediction for frame 0 is the init box; only ``update`` calls are
timed (``time.perf_counter``), so FPS is tracking speed without frame decoding or initialisation; the time file's
first line is the init time, as the toolkit writes it. Result files, per tracker, under ``result_dir``::

    <tracker>/<seq>/<seq>_001.txt      GOT-10k layout: x,y,w,h per frame, comma separated, %.3f
    <tracker>/<seq>/<seq>_time.txt     seconds per frame, %.8f (NaN where update raised)
    <tracker>/<seq>.txt                OTB layout: the same boxes
    <tracker>/times/<seq>_time.txt     OTB layout: the same times

Trackers are named on the command line by a spec ``NAME[:ARG]`` resolved through :data:`TRACKERS` (prefix ->
builder). A later tracker kind (``checkpoint:PATH``, ``bundle:PATH``) registers itself there with
:func:`register_tracker`; ``edgetrack eval`` needs no change.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgetrack import metrics
from edgetrack.errors import DatasetError, InvalidArgumentError, UnknownChoiceError
from edgetrack.progress import progress

TrackerFactory = Callable[[], Any]
# A builder takes the whole spec ("nanotrack:/models/nt") and returns a TrackerFactory; it raises an
# EdgetrackError (typically BaselineUnavailableError / CheckpointError) when the tracker cannot be built here.
TrackerBuilder = Callable[[str], TrackerFactory]

# prefix -> builder, or "module:function" imported on first use (so listing trackers imports nothing heavy).
TRACKERS: dict[str, TrackerBuilder | str] = {
    "csrt": "edgetrack.baselines:make_baseline",
    "kcf": "edgetrack.baselines:make_baseline",
    "mil": "edgetrack.baselines:make_baseline",
    "nanotrack": "edgetrack.baselines:make_baseline",
    # checkpoint:PATH[#DEVICE]: a SiamFC checkpoint run by PyTorch (MissingDependencyError without torch).
    "checkpoint": "edgetrack.models.torch.train:checkpoint_tracker",
    # bundle:PATH[#DEVICE]: a device bundle run by edgetrack.Tracker (numpy + OpenCV + one runtime).
    "bundle": "edgetrack.tracker:bundle_tracker",
    # model:NAME[#DEVICE]: a model that ships with edgetrack (edgetrack.list_models()), run by edgetrack.Tracker.
    "model": "edgetrack.tracker:bundle_tracker",
}


def register_tracker(prefix: str, builder: TrackerBuilder | str) -> None:
    """Make ``--tracker PREFIX[:ARG]`` build trackers with ``builder(spec)``."""
    TRACKERS[prefix.lower()] = builder


def build_tracker(spec: str) -> TrackerFactory:
    """The factory for the tracker spec ``NAME[:ARG]``; raises :class:`UnknownChoiceError` listing valid names."""
    prefix = spec.split(":", 1)[0].strip().lower() if isinstance(spec, str) else None
    if prefix not in TRACKERS:
        raise UnknownChoiceError(
            "tracker", spec, TRACKERS, fix="name one of them with --tracker (repeat --tracker for several)"
        )
    builder = TRACKERS[prefix]
    if isinstance(builder, str):
        module, func = builder.split(":")
        builder = getattr(importlib.import_module(module), func)
    return builder(spec.strip())


# --------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Failure:
    """A tracker call that raised: ``frame`` 0 is ``init`` (the whole sequence failed), others are ``update``."""

    sequence: str
    frame: int
    error: str

    def __str__(self) -> str:
        what = "init" if self.frame == 0 else f"update on frame {self.frame}"
        return f"{self.sequence}: {what} raised {self.error}"


@dataclass
class SequenceResult:
    """One sequence's predictions, times and failures. ``times[0]`` is the init time; NaN marks a raised call."""

    name: str
    boxes: np.ndarray
    times: np.ndarray
    lost: np.ndarray
    failures: list[Failure]
    image_size: tuple[int, int]
    otb: dict | None = None

    @property
    def update_time(self) -> float:
        t = self.times[1:]
        return float(np.sum(t[np.isfinite(t)]))

    @property
    def updates(self) -> int:
        return int(np.isfinite(self.times[1:]).sum())

    @property
    def fps(self) -> float:
        return self.updates / self.update_time if self.update_time > 0 else float("nan")


@dataclass
class EvalResult:
    """A tracker's results on one data set (one variant: ``synthetic-sharp`` and ``synthetic-blurred`` are two)."""

    tracker: str
    dataset: str
    sequences: list[SequenceResult]
    otb: dict | None
    got10k: dict | None
    result_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Updates per second over the whole data set (total updates / total update time)."""
        total = sum(s.update_time for s in self.sequences)
        return sum(s.updates for s in self.sequences) / total if total > 0 else float("nan")

    @property
    def failures(self) -> list[Failure]:
        return [f for s in self.sequences for f in s.failures]

    @property
    def frames(self) -> int:
        return sum(len(s.boxes) for s in self.sequences)

    def summary(self) -> dict:
        """The headline numbers (JSON-ready; None where a metric could not be computed)."""
        otb, got = self.otb or {}, self.got10k or {}
        return _jsonable(
            {
                "tracker": self.tracker,
                "dataset": self.dataset,
                "sequences": len(self.sequences),
                "frames": self.frames,
                "success_auc": otb.get("success_auc"),
                "precision_20": otb.get("precision_20"),
                "success_rate_50": otb.get("success_rate_50"),
                "precision_15": otb.get("precision_15"),
                "success_60": otb.get("success_60"),
                "ao": got.get("ao"),
                "sr50": got.get("sr50"),
                "sr75": got.get("sr75"),
                "mao": got.get("mao"),
                "fps": self.fps,
                "lost_frames": int(sum(s.lost.sum() for s in self.sequences)),
                "failed_frames": len(self.failures),
                "failed_sequences": len({f.sequence for f in self.failures}),
            }
        )

    def to_dict(self) -> dict:
        """Everything but the boxes: summary, curves, per-sequence numbers, failures, notes (JSON-ready)."""
        out = self.summary()
        if self.otb:
            out["otb_curves"] = {k: self.otb[k] for k in (
                "success_thresholds", "success_curve", "precision_thresholds", "precision_curve")}
        if self.got10k:
            out["got10k_curve"] = {"thresholds": self.got10k["succ_thresholds"], "success": self.got10k["succ_curve"]}
            if "class_ao" in self.got10k:
                out["class_ao"] = self.got10k["class_ao"]
        seq_ao = (self.got10k or {}).get("seq_ao") or [None] * len(self.sequences)
        out["per_sequence"] = [
            {
                "name": s.name,
                "frames": len(s.boxes),
                "fps": s.fps,
                "success_auc": (s.otb or {}).get("success_auc"),
                "precision_20": (s.otb or {}).get("precision_20"),
                "ao": ao,
                "lost_frames": int(s.lost.sum()),
                "failed_frames": len(s.failures),
            }
            for s, ao in zip(self.sequences, seq_ao)
        ]
        out["failures"] = [str(f) for f in self.failures[:100]]
        out["notes"] = list(self.notes)
        out["result_dir"] = str(self.result_dir) if self.result_dir else None
        return _jsonable(out)


def _jsonable(value):
    """NumPy arrays/scalars to lists/floats and NaN/inf to None, so json.dump writes standard JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------------------------ tracker output
_NAN_BOX = np.full(4, np.nan)


def _read_output(out: Any) -> tuple[np.ndarray, bool]:
    """(box, lost) from whatever ``update`` returned (see the module docstring); raises on anything else."""
    lost = False
    if hasattr(out, "box"):
        box, lost = out.box, bool(getattr(out, "lost", False))
    elif isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], (bool, np.bool_)):
        ok, box = out
        lost = not ok
    else:
        box = out
    try:
        arr = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (4,):
        raise InvalidArgumentError(
            f"update() returned {out!r}; expected a box (x, y, w, h), a pair (ok, box) or an object with .box"
        )
    if lost and not (np.isfinite(arr).all() and arr[2] > 0 and arr[3] > 0):
        arr = _NAN_BOX  # "lost" with no usable box (OpenCV gives (0, 0, 0, 0)): no prediction on this frame
    return arr, lost


def _error(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")


# ---------------------------------------------------------------------------------------------------- the runner
def safe_name(name: str) -> str:
    """``name`` usable as one file or folder name (tracker specs may hold paths and colons)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "tracker"


def _tracking_sequences(dataset) -> list:
    """The sequences of one data set, checked to be annotated tracking sequences."""
    if isinstance(dataset, (list, tuple)):
        raise InvalidArgumentError(
            f"expected one Dataset, got a {type(dataset).__name__} of {len(dataset)}",
            fix="open_dataset() returns a list (a synthetic set gives two variants): evaluate each item",
        )
    sequences = list(dataset.sequences)
    if not sequences:
        raise DatasetError(f"data set {dataset.name!r} has no sequences to evaluate on")
    if not all(hasattr(s, "boxes") for s in sequences):
        raise DatasetError(
            f"data set {dataset.name!r} holds no tracking annotations (a deblurring set such as GoPro?)",
            fix="evaluate trackers on got10k:, otb:, vid: or synthetic: data sets",
        )
    return sequences


def limit(dataset, *, max_sequences: int | None = None, max_frames: int | None = None):
    """A copy of ``dataset`` with at most ``max_sequences`` sequences of at most ``max_frames`` frames each."""
    for name, value, low in (("max_sequences", max_sequences, 1), ("max_frames", max_frames, 2)):
        if value is not None and (not isinstance(value, int) or value < low):
            raise InvalidArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    seqs = _tracking_sequences(dataset)[:max_sequences]
    if max_frames is not None:
        seqs = [
            dataclasses.replace(
                s,
                frames=s.frames[:max_frames],
                boxes=s.boxes[:max_frames],
                absent=None if s.absent is None else s.absent[:max_frames],
                cover=None if s.cover is None else s.cover[:max_frames],
            )
            if len(s) > max_frames
            else s
            for s in seqs
        ]
    return dataclasses.replace(dataset, sequences=seqs)


def evaluate(
    tracker_factory: TrackerFactory,
    dataset,
    *,
    result_dir: str | Path | None = None,
    tracker_name: str | None = None,
    visualize: bool = False,
) -> EvalResult:
    """Run a fresh tracker from ``tracker_factory()`` on every sequence of ``dataset`` and score it.

    ``result_dir``: write the result files there (layout in the module docstring); ``visualize``: also write each
    frame with the ground truth (green) and the prediction (red) to ``<tracker>/<seq>/vis/`` (needs result_dir).
    """
    name = tracker_name or getattr(tracker_factory, "tracker_name", None) or getattr(
        tracker_factory, "__name__", "tracker")
    sequences = _tracking_sequences(dataset)
    if visualize and result_dir is None:
        raise InvalidArgumentError("visualize=True needs a result_dir to write the frames to")
    tracker_dir = Path(result_dir) / safe_name(name) if result_dir is not None else None

    results = []
    for seq in progress(sequences, desc=f"{name} on {dataset.name}", unit="seq"):
        res = _run_sequence(tracker_factory, seq)
        if tracker_dir is not None:
            write_results(tracker_dir, res)
            if visualize:
                _visualize(tracker_dir / safe_name(seq.name) / "vis", seq, res.boxes)
        results.append(res)
    result = EvalResult(name, dataset.name, results, None, None, tracker_dir)
    _score(result, sequences)
    return result


def _run_sequence(factory: TrackerFactory, seq) -> SequenceResult:
    n = len(seq)
    boxes = np.full((n, 4), np.nan)
    times = np.full(n, np.nan)
    lost = np.zeros(n, dtype=bool)
    failures: list[Failure] = []
    frame = seq.frame(0)
    image_size = (int(frame.shape[1]), int(frame.shape[0]))
    boxes[0] = seq.init_box  # the got10k convention: frame 0's prediction is the init box
    try:
        tracker = factory()
        start = time.perf_counter()
        tracker.init(frame, seq.init_box)
        times[0] = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a broken tracker is reported, not allowed to end the evaluation
        failures.append(Failure(seq.name, 0, _error(exc)))
        return SequenceResult(seq.name, boxes, times, lost, failures, image_size)
    for i in progress(range(1, n), desc=seq.name, unit="frame", leave=False):
        frame = seq.frame(i)  # read outside the timed region: FPS is tracking speed, not JPEG decoding
        try:
            start = time.perf_counter()
            out = tracker.update(frame)
            elapsed = time.perf_counter() - start
            boxes[i], lost[i] = _read_output(out)
            times[i] = elapsed
        except Exception as exc:  # noqa: BLE001 - see above
            failures.append(Failure(seq.name, i, _error(exc)))
    return SequenceResult(seq.name, boxes, times, lost, failures, image_size)


def _score(result: EvalResult, sequences: list) -> None:
    """Fill in per-sequence and overall OTB metrics, GOT-10k metrics (with mAO when every sequence has a class)."""
    annotated = [s for s in sequences if not np.isnan(s.boxes[0]).any()]
    if len(annotated) < len(sequences):
        result.notes.append(
            f"{len(sequences) - len(annotated)} sequence(s) have no first-frame box and were not scored")
    scored = [(r, s) for r, s in zip(result.sequences, sequences) if not np.isnan(s.boxes[0]).any()]
    if not any((~np.isnan(s.boxes[1:]).any(axis=1)).any() for _, s in scored):
        result.notes.append(
            "no ground truth beyond the first frames (GOT-10k test split?): no metrics; the result files "
            "are in the got10k layout, ready to submit to the evaluation server")
        return
    for r, s in scored:
        r.otb = metrics.otb_metrics(r.boxes, s.boxes)
    result.otb = metrics.otb_summary([r.otb for r, _ in scored])
    classes = [s.meta.get("object_class") for _, s in scored]
    result.got10k = metrics.got10k_metrics(
        [r.boxes for r, _ in scored],
        [s.boxes for _, s in scored],
        covers=[s.cover for _, s in scored],
        image_sizes=[r.image_size for r, _ in scored],
        classes=classes if all(classes) else None,
    )


# ------------------------------------------------------------------------------------------------------ writing
def write_results(tracker_dir: str | Path, res: SequenceResult) -> None:
    """Write one sequence's boxes and times in the GOT-10k and OTB layouts (see the module docstring)."""
    tracker_dir = Path(tracker_dir)
    seq = safe_name(res.name)
    got_dir = tracker_dir / seq
    got_dir.mkdir(parents=True, exist_ok=True)
    (tracker_dir / "times").mkdir(exist_ok=True)
    np.savetxt(got_dir / f"{seq}_001.txt", res.boxes, fmt="%.3f", delimiter=",")
    np.savetxt(got_dir / f"{seq}_time.txt", res.times, fmt="%.8f")
    np.savetxt(tracker_dir / f"{seq}.txt", res.boxes, fmt="%.3f", delimiter=",")
    np.savetxt(tracker_dir / "times" / f"{seq}_time.txt", res.times, fmt="%.8f")


def _visualize(out_dir: Path, seq, boxes: np.ndarray) -> None:
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(len(seq)):
        img = seq.frame(i)
        for box, colour in ((seq.boxes[i], (0, 200, 0)), (boxes[i], (0, 0, 255))):
            if np.isfinite(box).all():
                x, y, w, h = (int(round(v)) for v in box)
                cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2)
        cv2.imwrite(str(out_dir / f"{i + 1:08d}.jpg"), img)


def format_table(results: Iterable[EvalResult]) -> str:
    """The results as a plain, aligned text table (one row per tracker × data set variant)."""
    head = ("tracker", "dataset", "seqs", "AUC", "P@20", "SR50", "P@15(paper)", "S@0.6(paper)", "AO", "FPS", "failed")
    def num(v, f="{:.3f}"):
        return "-" if v is None else f.format(v)

    rows = []
    for r in results:
        s = r.summary()
        rows.append((
            s["tracker"], s["dataset"], str(s["sequences"]), num(s["success_auc"]), num(s["precision_20"]),
            num(s["success_rate_50"]), num(s["precision_15"]), num(s["success_60"]), num(s["ao"]),
            num(s["fps"], "{:.1f}"), str(s["failed_frames"]),
        ))
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    left = {0, 1}
    lines = []
    for row in (head, *rows):
        lines.append("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


__all__ = [
    "TRACKERS",
    "EvalResult",
    "Failure",
    "SequenceResult",
    "build_tracker",
    "evaluate",
    "format_table",
    "limit",
    "register_tracker",
    "safe_name",
    "write_results",
]
