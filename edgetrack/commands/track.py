"""``edgetrack track``: follow one target through a video file, a folder of frames or a camera with a bundle.

Frames are read one at a time, so a long video or a live camera never sits in memory. Results are written in the
got10k toolkit's layout (one ``x,y,w,h`` row per frame, the first row the init box) next to per-frame scores and,
unless ``--no-video``, an annotated MP4.
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path
from typing import Iterator

from edgetrack.errors import DatasetError, InvalidArgumentError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_GREEN, _RED = (0, 200, 0), (0, 0, 230)


def register(sub) -> None:
    p = sub.add_parser(
        "track",
        help="track one target through a video, a folder of frames or a camera with a bundle",
        description="Initialise on the first frame of SOURCE with --box, track through the rest, and write "
        "results.txt (got10k layout: x,y,w,h per frame, the first row the init box), scores.txt (score,lost per "
        "frame) and an annotated MP4 into --out.",
        epilog="example: edgetrack track clip.mp4 --box 120,80,40,30   (or --model runs/bundle for your own)",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="a video file, a folder of frames (.jpg/.png/.bmp, sorted by name) or a camera index (0, 1, ...)")
    p.add_argument("--model", default=None, metavar="NAME|BUNDLE",
                   help="a shipped model name (edgetrack.list_models(); default: the default model, siamrpn-eca) or a "
                   "bundle folder written by `edgetrack convert`")
    p.add_argument("--box", required=True, metavar="X,Y,W,H", help="target box in the first frame, 0-based pixels")
    p.add_argument("--backend", default="auto", help="inference backend (default auto)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default runs/track-<timestamp>)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames (the init frame counts)")
    p.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    p.set_defaults(func=run)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` -> four floats; w and h must be positive and every value finite."""
    parts = [s.strip() for s in str(text).replace(" ", ",").split(",") if s.strip()]
    fix = "give the box as four numbers X,Y,W,H in pixels, e.g. --box 120,80,40,30"
    if len(parts) != 4:
        raise InvalidArgumentError(f"--box must be 4 numbers x,y,w,h, got {text!r} ({len(parts)} value(s))", fix=fix)
    try:
        box = tuple(float(s) for s in parts)
    except ValueError:
        raise InvalidArgumentError(f"--box must be 4 numbers x,y,w,h, got {text!r}", fix=fix) from None
    if not all(math.isfinite(v) for v in box):
        raise InvalidArgumentError(f"--box values must be finite, got {text!r}", fix=fix)
    if box[2] <= 0 or box[3] <= 0:
        raise InvalidArgumentError(f"--box width and height must be positive, got {text!r}", fix=fix)
    return box  # type: ignore[return-value]


class FrameSource:
    """Lazy BGR frames from a video file, a folder of images or a camera; ``total`` is None when unknown."""

    def __init__(self, spec: str):
        import cv2

        self.spec, self.total, self.fps = spec, None, 25.0
        self._files: list[Path] | None = None
        self._cap = None
        if spec.strip().isdigit() and not Path(spec).exists():
            cap = cv2.VideoCapture(int(spec))
            if not cap.isOpened():
                cap.release()
                raise InvalidArgumentError(f"camera {spec} cannot be opened",
                                           fix="check the camera index and that no other program holds the camera")
            self._cap = cap
        else:
            path = Path(spec)
            if not path.exists():
                raise InvalidArgumentError(f"SOURCE {spec!r} does not exist",
                                           fix="give a video file, a folder of frames or a camera index")
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                if not files:
                    raise DatasetError(f"folder {spec!r} holds no frames ({'/'.join(IMAGE_SUFFIXES)})",
                                       fix="point SOURCE at a folder of image files or at a video file")
                self._files, self.total = files, len(files)
            else:
                cap = cv2.VideoCapture(str(path))
                if not cap.isOpened():
                    cap.release()
                    raise DatasetError(f"video {spec!r} cannot be opened by OpenCV",
                                       fix="check the file is a video OpenCV can decode (e.g. MP4/H.264, AVI/MJPG)")
                self._cap = cap
                n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
                self.total = n if n > 0 else None
        if self._cap is not None:
            fps = self._cap.get(cv2.CAP_PROP_FPS)
            if fps and math.isfinite(fps) and 0 < fps < 1000:
                self.fps = float(fps)

    def __iter__(self) -> Iterator:
        import cv2

        if self._files is not None:
            for f in self._files:
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    raise DatasetError(f"frame {str(f)!r} cannot be read", fix="replace or remove the broken image")
                yield img
            return
        try:
            while True:
                ok, img = self._cap.read()
                if not ok or img is None:
                    return
                yield img
        finally:
            self._cap.release()


def _check_inside(box, shape) -> None:
    # The Tracker accepts a box off the frame (a target may start just outside); on the command line that is a typo.
    x, y, w, h = box
    if x >= shape[1] or y >= shape[0] or x + w <= 0 or y + h <= 0:
        raise InvalidArgumentError(
            f"--box {x:g},{y:g},{w:g},{h:g} lies outside the first frame ({shape[1]}x{shape[0]} pixels)",
            fix="give the target's box in the first frame's pixels, 0-based, as X,Y,W,H")


def _annotate(frame, box, score: float | None, lost: bool):
    import cv2

    color = _RED if lost else _GREEN
    x, y, w, h = box
    cv2.rectangle(frame, (round(x), round(y)), (round(x + w), round(y + h)), color, 2)
    label = "init" if score is None else f"{score:.2f}{' lost' if lost else ''}"
    cv2.putText(frame, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return frame


def _device_estimate(tracker) -> str:
    """The simulator's latency estimate for the chip it simulated: the graphs every frame runs (search, head), and
    what a deblurred frame adds. Labelled an estimate: the FPS above is this CPU's, not the chip's."""
    from edgetrack.backends.simulator import estimate_bundle

    est = estimate_bundle(tracker.bundle, tracker.device)
    graphs = est["graphs"]
    frame_ms = sum(graphs[g]["estimated_ms"] for g in ("search", "head") if g in graphs)
    deblur = (f", +{graphs['deblur_search']['estimated_ms']:.2f} ms on a deblurred frame"
              if "deblur_search" in graphs and tracker.deblur != "never" else "")
    return (f"device:  {frame_ms:.2f} ms/frame on {est['chip']}{deblur} (an estimate from the graphs' operation "
            f"count at {est['assumed_utilisation']:.0%} of the chip's peak, not a measurement)")


def _open_writer(path: Path, fps: float, size: tuple[int, int]):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise InvalidArgumentError(f"cannot write the video {str(path)!r} (OpenCV's mp4v writer did not open)",
                                   fix="check the folder is writable, or pass --no-video")
    return writer


def _updates(tracker, frames, times: list):
    """(frame, box, score, lost) for each frame; each update call's duration is appended to ``times``."""
    for frame in frames:
        t0 = time.perf_counter()
        r = tracker.update(frame)
        times.append(time.perf_counter() - t0)
        yield frame, r.box, r.score, r.lost


def run(args: argparse.Namespace) -> int:
    from edgetrack.progress import progress
    from edgetrack.tracker import Tracker

    box = parse_box(args.box)
    if args.max_frames is not None and args.max_frames < 1:
        raise InvalidArgumentError(f"--max-frames must be at least 1, got {args.max_frames}")
    source = FrameSource(args.source)
    tracker = Tracker(args.model, backend=args.backend, device=args.device)
    out = args.out if args.out is not None else Path("runs") / time.strftime("track-%Y%m%d-%H%M%S")
    results_path, scores_path, video_path = out / "results.txt", out / "scores.txt", out / "track.mp4"

    total = source.total if args.max_frames is None else min(args.max_frames, source.total or args.max_frames)
    frames = iter(source)
    writer, n, lost_count, times = None, 0, 0, []
    try:
        # The first frame is checked and the track started before anything is written, so a bad box or an empty
        # source leaves no output folder behind.
        first = next(frames, None)
        if first is None:
            raise DatasetError(f"SOURCE {args.source!r} yielded no frames",
                               fix="check the video is not empty and OpenCV can decode it")
        _check_inside(box, first.shape)
        tracker.init(first, box)
        out.mkdir(parents=True, exist_ok=True)
        rest = frames if args.max_frames is None else itertools.islice(frames, args.max_frames - 1)
        with open(results_path, "w") as rf, open(scores_path, "w") as sf:
            results = itertools.chain([(first, box, 1.0, False)], _updates(tracker, rest, times))
            for frame, result_box, score, lost in progress(results, desc="track", total=total, unit="frame"):
                rf.write(",".join(f"{v:.4f}" for v in result_box) + "\n")
                sf.write(f"{score:.4f},{int(lost)}\n")
                if not args.no_video:
                    if writer is None:
                        writer = _open_writer(video_path, source.fps, (frame.shape[1], frame.shape[0]))
                    writer.write(_annotate(frame.copy(), result_box, None if n == 0 else score, lost))
                lost_count += int(lost)
                n += 1
    finally:
        close = getattr(frames, "close", None)
        if close:
            close()  # releases the capture even when tracking stopped early
        if writer is not None:
            writer.release()
    update_s = sum(times)

    fps = (n - 1) / update_s if n > 1 and update_s > 0 else float("nan")
    print(f"frames:  {n} ({n - 1} tracked, {lost_count} lost)")
    print(f"fps:     {fps:.1f} (update calls, {tracker.backend} on {args.device})")
    if tracker.backend == "simulator":
        print(_device_estimate(tracker))
    print(f"results: {results_path}\nscores:  {scores_path}")
    if writer is not None:
        print(f"video:   {video_path}")
    if n == 1:
        print("warning: SOURCE has one frame only; nothing was tracked", file=sys.stderr)
    return 0
