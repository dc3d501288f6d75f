"""Baseline trackers to measure edgetrack's models against: OpenCV's CSRT, KCF and MIL, and NanoTrack.

``make_baseline(name)`` returns a *factory*: a function of no arguments that makes a fresh tracker with
``init(frame, box)`` and ``update(frame) -> (ok, (x, y, w, h))`` (OpenCV's own convention, boxes as floats), which
is what :func:`edgetrack.evaluation.evaluate` runs. Availability is checked when the factory is made, so a missing
module fails before any sequence is run.

Where the trackers come from:

- MIL is in every OpenCV build (``cv2.TrackerMIL_create``).
- CSRT and KCF are in OpenCV's *contrib* build only. ``opencv-python-headless`` and
  ``opencv-contrib-python-headless`` ship the same ``cv2`` module and overwrite each other when both are installed,
  so the contrib build must *replace* the plain one at the same version (``tools/use_opencv_contrib.sh``, which
  ``make setup`` runs).
- NanoTrack (v2, Apache-2.0) is ``cv2.TrackerNano`` (OpenCV >= 4.7, dnn module) running two ONNX files, a backbone
  and a neck/head. The folder holding them is, in this order: the one given as ``nanotrack:DIR``, the environment
  variable ``EDGETRACK_NANOTRACK_DIR``, or ``shared/peers/nanotrack`` beside the source checkout.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgetrack.errors import BaselineUnavailableError, InvalidArgumentError, TrackerStateError, UnknownChoiceError

NANOTRACK_ENV = "EDGETRACK_NANOTRACK_DIR"
NANOTRACK_FILES = ("nanotrack_backbone_sim.onnx", "nanotrack_head_sim.onnx")
# The source checkout's sibling folder: <repo>/../shared/peers/nanotrack (edgetrack/ is <repo>/edgetrack).
_CHECKOUT_NANOTRACK_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "nanotrack"

BASELINES = ("csrt", "kcf", "mil", "nanotrack")

TrackerFactory = Callable[[], object]


# ------------------------------------------------------------------------------------------------------ boxes
def to_cv_box(box, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A float ``(x, y, w, h)`` as the int rectangle OpenCV's trackers take, kept inside the image.

    Corners are rounded (not the size: rounding x and w apart can grow the box by a pixel on each side), the box
    is cut to the image (MIL asserts when its samples fall outside) and kept at least 1×1 pixel.
    """
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise InvalidArgumentError(f"box {tuple(box)} is not a valid (x, y, w, h) with w, h > 0")
    width, height = image_size
    x0 = min(max(int(round(x)), 0), width - 1)
    y0 = min(max(int(round(y)), 0), height - 1)
    x1 = min(max(int(round(x + w)), x0 + 1), width)
    y1 = min(max(int(round(y + h)), y0 + 1), height)
    return x0, y0, x1 - x0, y1 - y0


class OpenCVTracker:
    """One OpenCV ``cv2.Tracker`` behind edgetrack's evaluation protocol (float boxes in and out)."""

    def __init__(self, create: Callable[[], object], name: str):
        self._create = create
        self.name = name
        self._tracker = None

    def init(self, frame: np.ndarray, box) -> None:
        self._size = (frame.shape[1], frame.shape[0])
        self._tracker = self._create()
        # cv2.Tracker.init returns None in OpenCV >= 4.5; the legacy API returns a bool.
        if self._tracker.init(frame, to_cv_box(box, self._size)) is False:
            raise RuntimeError(f"{self.name}: OpenCV refused to initialise on box {tuple(box)}")

    def update(self, frame: np.ndarray) -> tuple[bool, tuple[float, float, float, float]]:
        if self._tracker is None:
            raise TrackerStateError(f"{self.name}: update() called before init()", fix="call init(frame, box) first")
        ok, box = self._tracker.update(frame)
        return bool(ok), tuple(float(v) for v in box)


# ------------------------------------------------------------------------------------------------- OpenCV lookup
def _cv2():
    import cv2

    return cv2


def _contrib_create(kind: str) -> Callable[[], object] | None:
    """``cv2.Tracker<KIND>_create`` (OpenCV >= 4.5.1 contrib) or ``cv2.legacy.Tracker<KIND>_create``, else None."""
    cv2 = _cv2()
    fn = getattr(cv2, f"Tracker{kind}_create", None)
    if fn is None and hasattr(cv2, "legacy"):
        fn = getattr(cv2.legacy, f"Tracker{kind}_create", None)
    return fn


def _opencv_versions() -> str:
    from importlib import metadata

    found = []
    for dist in ("opencv-python-headless", "opencv-contrib-python-headless", "opencv-python", "opencv-contrib-python"):
        try:
            found.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found) or "no OpenCV distribution found by pip"


def _contrib_missing(name: str) -> BaselineUnavailableError:
    cv2 = _cv2()
    return BaselineUnavailableError(
        f"baseline {name!r} needs OpenCV's contrib build (cv2.Tracker{name.upper()}_create), but this cv2 "
        f"({cv2.__version__}; installed: {_opencv_versions()}) has no contrib trackers. "
        "opencv-python-headless and opencv-contrib-python-headless ship the same cv2 module and overwrite each "
        "other, so the contrib build must replace the plain one at the same version",
        fix="bash tools/use_opencv_contrib.sh  (or: pip uninstall -y opencv-python-headless && "
        f"pip install opencv-contrib-python-headless=={_pip_version_hint()})",
    )


def _pip_version_hint() -> str:
    from importlib import metadata

    try:
        return metadata.version("opencv-python-headless")
    except metadata.PackageNotFoundError:
        return _cv2().__version__ + ".*"


# ------------------------------------------------------------------------------------------------------ NanoTrack
@dataclass(frozen=True)
class NanoTrackFiles:
    backbone: Path
    head: Path


def nanotrack_search_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for NanoTrack's ONNX files, in order."""
    dirs = []
    if explicit:
        dirs.append(Path(explicit).expanduser())
    if os.environ.get(NANOTRACK_ENV):
        dirs.append(Path(os.environ[NANOTRACK_ENV]).expanduser())
    dirs.append(_CHECKOUT_NANOTRACK_DIR)
    return dirs


def find_nanotrack(explicit: str | os.PathLike | None = None) -> NanoTrackFiles:
    """Locate NanoTrack's backbone and head ONNX files, or raise :class:`BaselineUnavailableError` saying where."""
    searched = nanotrack_search_dirs(explicit)
    if explicit:  # an explicit folder must hold them: never quietly use another one
        searched = searched[:1]
    for folder in searched:
        backbone, head = (folder / f for f in NANOTRACK_FILES)
        if backbone.is_file() and head.is_file():
            return NanoTrackFiles(backbone, head)
    listed = "; ".join(str(p) for p in searched)
    raise BaselineUnavailableError(
        f"baseline 'nanotrack' needs {NANOTRACK_FILES[0]} and {NANOTRACK_FILES[1]}, not found in: {listed}",
        fix=f"put both files in one folder and set {NANOTRACK_ENV}=FOLDER, or name it as --tracker nanotrack:FOLDER",
    )


def _nanotrack_create(files: NanoTrackFiles) -> Callable[[], object]:
    cv2 = _cv2()
    if not hasattr(cv2, "TrackerNano_create"):
        raise BaselineUnavailableError(
            f"baseline 'nanotrack' needs cv2.TrackerNano (OpenCV >= 4.7 with the dnn module); this cv2 is "
            f"{cv2.__version__}",
            fix="pip install 'opencv-python-headless>=4.7'",
        )

    def create():
        params = cv2.TrackerNano_Params()
        params.backbone, params.neckhead = str(files.backbone), str(files.head)
        return cv2.TrackerNano_create(params)

    return create


# ---------------------------------------------------------------------------------------------------- the factory
def _parse(name: str) -> tuple[str, str | None]:
    if not isinstance(name, str) or not name.strip():
        raise UnknownChoiceError("baseline", name, BASELINES)
    base, _, arg = name.strip().partition(":")
    base = base.lower()
    if base not in BASELINES:
        raise UnknownChoiceError("baseline", name, BASELINES)
    if arg and base != "nanotrack":
        raise InvalidArgumentError(f"baseline {base!r} takes no argument, got {name!r}", fix=f"write {base}")
    return base, (arg or None)


def make_baseline(name: str) -> TrackerFactory:
    """A factory of fresh baseline trackers: ``csrt``, ``kcf``, ``mil``, ``nanotrack`` or ``nanotrack:DIR``.

    Raises :class:`BaselineUnavailableError` (saying how to fix it) when the tracker cannot run here.
    """
    base, arg = _parse(name)
    if base == "mil":
        create = _cv2().TrackerMIL_create
    elif base in ("csrt", "kcf"):
        create = _contrib_create(base.upper())
        if create is None:
            raise _contrib_missing(base)
    else:
        create = _nanotrack_create(find_nanotrack(arg))

    def factory() -> OpenCVTracker:
        return OpenCVTracker(create, base)

    factory.tracker_name = base  # type: ignore[attr-defined]
    return factory


def list_baselines() -> dict[str, str | None]:
    """Each baseline's name -> None when it can run here, else the reason it cannot."""
    out: dict[str, str | None] = {}
    for name in BASELINES:
        try:
            make_baseline(name)
            out[name] = None
        except BaselineUnavailableError as exc:
            out[name] = str(exc)
    return out


__all__ = [
    "BASELINES",
    "NANOTRACK_ENV",
    "NANOTRACK_FILES",
    "OpenCVTracker",
    "find_nanotrack",
    "list_baselines",
    "make_baseline",
    "nanotrack_search_dirs",
    "to_cv_box",
]
