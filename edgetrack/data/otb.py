"""OTB-2015 (and any data set in its layout) reader.

Layout, as the benchmark's per-sequence zips extract::

    ROOT/SEQ/img/0001.jpg ...            frames, numbered from 1 (4 digits; Board has 5)
    ROOT/SEQ/groundtruth_rect.txt        x,y,w,h per annotated frame; commas, tabs or spaces, mixed in some files
    ROOT/SEQ/groundtruth_rect.1.txt      sequences with two targets (Jogging, Skating2): one file per target
    ROOT/SEQ/groundtruth_rect.2.txt      -> sequences "Jogging.1" and "Jogging.2" sharing img/

Boxes are 1-based pixel coordinates in the files (the MATLAB toolkit's); they are kept as written, like every other
Python reader of OTB does, so results stay comparable with published ones.

Frames and annotation lines are lined up like this:

1. ``SEQ/SEQ_frames.txt`` (``FIRST,LAST``, the convention of OTB-format sets such as TColor-128), when present;
2. else the built-in :data:`FRAME_RANGES` of the OTB-2015 sequences whose annotation does not cover img/ from the
   first image to the last (David starts at frame 300, Football1 stops at 74, ...);
3. else one line per image, in frame-number order;
4. else, with fewer lines than images, the annotation is taken to start at the first image and stop early (the case
   of every such OTB sequence that starts at frame 1), with a warning naming the sequence;
5. more lines than images cannot be lined up: :class:`DatasetError` says how to fix it.

When a range starts after frame 1 but the file has a line for every frame from 1 (Tiger1: 354 lines, range
6..354), the lines before the range are skipped.

Subset ``#Basketball,Bolt`` picks sequences by name, case-insensitively; a folder name picks all of its targets
(``#Jogging`` gives Jogging.1 and Jogging.2), and ``Jogging_1`` / ``Jogging-1`` (other toolkits' spelling) also work.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgetrack.data._files import numbered_images, read_boxes, read_lines, split_subset, unknown_choice
from edgetrack.data.sequence import Sequence
from edgetrack.errors import DatasetError

if TYPE_CHECKING:
    from edgetrack.data import Dataset

DATASET_NAME = "otb"

# (first, last) 1-based image numbers that groundtruth_rect.txt describes, for the OTB-2015 sequences whose
# annotation does not span img/ from its first image to its last. From the benchmark's own sequence configuration
# (startFrame / endFrame); keys are folder names, matched case-insensitively.
FRAME_RANGES: dict[str, tuple[int, int]] = {
    "BlurCar1": (247, 988),
    "BlurCar3": (3, 359),
    "BlurCar4": (18, 397),
    "David": (300, 770),
    "Diving": (1, 215),
    "Football1": (1, 74),
    "Freeman3": (1, 460),
    "Freeman4": (1, 283),
    "Tiger1": (6, 354),
}
_ANNO = re.compile(r"^groundtruth_rect(?:\.(\d+))?\.txt$", re.IGNORECASE)


@dataclass(frozen=True)
class _Target:
    name: str  # "Basketball", "Jogging.1"
    folder: Path
    anno: Path
    target: str  # "" or "1", "2"


def open_otb(root: Path, subset: str | None = None) -> "list[Dataset]":
    """Open an OTB-format root (one folder per sequence) or one sequence folder; ``subset`` picks sequences."""
    from edgetrack.data import Dataset

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"OTB folder {str(root)!r} does not exist or is not a folder", fix="check the path")
    targets = find_targets(root)
    if not targets:
        raise DatasetError(
            f"{str(root)!r} is not an OTB folder: no SEQ/groundtruth_rect*.txt found in it",
            fix="point at the folder holding one folder per sequence (Basketball/, Bolt/, ...)",
        )
    targets = _select(targets, subset, root)
    return [Dataset(DATASET_NAME, "otb", [read_target(t) for t in targets])]


def find_targets(root: Path) -> list[_Target]:
    """Every (sequence folder, annotation file) pair under ``root`` (or ``root`` itself if it is one sequence)."""
    root = Path(root)
    folders = [root] if _annotation_files(root) else sorted(
        (p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name.lower()
    )
    out: list[_Target] = []
    for folder in folders:
        files = _annotation_files(folder)
        if not files:
            continue
        # An empty file is a target the benchmark does not use (Human4's groundtruth_rect.1.txt).
        files = [(num, path) for num, path in files if path.stat().st_size > 0 and any(s.strip() for s in read_lines(path))]
        if not files:
            raise DatasetError(
                f"every annotation file of OTB sequence {str(folder)!r} is empty",
                fix="restore groundtruth_rect.txt, or remove the folder",
            )
        single = len(files) == 1
        for num, path in files:
            name = folder.name if (single or num is None) else f"{folder.name}.{num}"
            out.append(_Target(name=name, folder=folder, anno=path, target=num or ""))
    return out


def _annotation_files(folder: Path) -> list[tuple[str | None, Path]]:
    try:
        entries = [p for p in folder.iterdir() if p.is_file()]
    except OSError:
        return []
    found = []
    for p in entries:
        m = _ANNO.match(p.name)
        if m:
            found.append((m.group(1), p))
    found.sort(key=lambda t: -1 if t[0] is None else int(t[0]))
    return found


def _key(name: str) -> str:
    return name.lower().replace("_", ".").replace("-", ".")


def _select(targets: list[_Target], subset: str | None, root: Path) -> list[_Target]:
    asked = split_subset(subset)
    if not asked:
        return targets
    by_name: dict[str, list[_Target]] = {}
    for t in targets:
        by_name.setdefault(_key(t.name), []).append(t)
        if t.name != t.folder.name:
            by_name.setdefault(_key(t.folder.name), []).append(t)
    picked: list[_Target] = []
    for a in asked:
        hits = by_name.get(_key(a))
        if not hits:
            raise unknown_choice(
                f"OTB sequence in {str(root)!r}", a, [t.name for t in targets],
                fix="write the sequence names after '#', separated by commas, e.g. otb:PATH#Basketball,Bolt",
            )
        picked.extend(t for t in hits if t not in picked)
    return picked


def read_target(t: _Target) -> Sequence:
    img_dir = t.folder / "img"
    if not img_dir.is_dir():
        raise DatasetError(f"OTB sequence {str(t.folder)!r} has no img/ folder", fix="extract the sequence's frames into img/")
    images = numbered_images(img_dir)
    if not images:
        raise DatasetError(f"{str(img_dir)!r} holds no numbered images (expected 0001.jpg, 0002.jpg, ...)")
    gt = read_boxes(t.anno)
    if len(gt) == 0:
        raise DatasetError(f"{str(t.anno)!r} is empty", fix="restore the file")
    frames, boxes, first = _align(t, images, gt)
    meta = {"sequence": t.folder.name, "frames": f"{first}-{first + len(frames) - 1}"}
    if t.target:
        meta["target"] = t.target
    return Sequence(name=t.name, frames=frames, boxes=boxes, dataset=DATASET_NAME, meta=meta)


def _frame_range(folder: Path) -> tuple[tuple[int, int], str] | None:
    """The (first, last) range from SEQ/SEQ_frames.txt or the built-in table, and where it came from."""
    path = folder / f"{folder.name}_frames.txt"
    if path.is_file():
        lines = [s for s in read_lines(path) if s.strip()]
        fields = re.split(r"[,\s]+", lines[0].strip()) if lines else []
        if len(fields) != 2 or not all(f.isdigit() for f in fields) or not 1 <= int(fields[0]) <= int(fields[1]):
            raise DatasetError(
                f"{str(path)!r} line 1: expected 'FIRST,LAST' (1-based frame numbers, FIRST <= LAST), "
                f"got {lines[0] if lines else ''!r}",
                fix="write the numbers of the first and last annotated images, e.g. 300,770",
            )
        return (int(fields[0]), int(fields[1])), str(path)
    rng = next((v for k, v in FRAME_RANGES.items() if k.lower() == folder.name.lower()), None)
    return (rng, "edgetrack's table of OTB-2015 frame ranges") if rng else None


def _align(t: _Target, images: dict[int, str], gt: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, int]:
    """Line up the annotation rows with image numbers; returns (frames, boxes, first frame number)."""
    numbers = sorted(images)
    n = len(gt)
    fix = (
        f"write the numbers of the first and last annotated images as 'FIRST,LAST' into "
        f"{str(t.folder / (t.folder.name + '_frames.txt'))!r}"
    )
    ranged = _frame_range(t.folder)
    if ranged is not None:
        (first, last), source = ranged
        span = last - first + 1
        if n == span:
            rows = gt
        elif n >= last:  # the file has a line for every frame from 1 (Tiger1): skip those before the range
            rows = gt[first - 1 : last]
        else:
            raise DatasetError(
                f"{str(t.anno)!r} has {n} lines, but {source} says the annotation covers frames {first}..{last} "
                f"({span} frames) of {t.folder.name}",
                fix=f"check that the file is complete, or {fix}",
            )
        wanted = range(first, last + 1)
        missing = [k for k in wanted if k not in images]
        if not missing:
            return tuple(images[k] for k in wanted), rows, first
        if len(numbers) == span and _contiguous(numbers):  # img/ already trimmed to the annotated frames
            return tuple(images[k] for k in numbers), rows, numbers[0]
        raise DatasetError(
            f"OTB sequence {t.name!r}: image {missing[0]:04d} of the annotated frames {first}..{last} is missing "
            f"from {str(t.folder / 'img')!r} ({len(missing)} missing in all)",
            fix="check that the sequence was extracted completely",
        )
    if not _contiguous(numbers):
        gap = next(k for k in range(numbers[0], numbers[-1] + 1) if k not in images)
        raise DatasetError(
            f"OTB sequence {t.name!r}: image {gap:04d} is missing from {str(t.folder / 'img')!r} "
            f"(images {numbers[0]}..{numbers[-1]} expected without gaps)",
            fix="check that the sequence was extracted completely",
        )
    if n == len(numbers):
        return tuple(images[k] for k in numbers), gt, numbers[0]
    if n < len(numbers):
        first, last = numbers[0], numbers[0] + n - 1
        warnings.warn(
            f"OTB sequence {t.name!r}: {str(t.anno)!r} has {n} lines for {len(numbers)} images; taking them as "
            f"frames {first}..{last} (annotation stopping early). If it starts later, {fix}",
            UserWarning,
            stacklevel=4,
        )
        return tuple(images[k] for k in numbers[:n]), gt, first
    raise DatasetError(
        f"{str(t.anno)!r} has {n} lines but {str(t.folder / 'img')!r} holds only {len(numbers)} images "
        f"({numbers[0]}..{numbers[-1]}), so the annotation cannot be lined up with the frames",
        fix=f"restore the missing images, or, if the file describes a part of a longer video, {fix}",
    )


def _contiguous(numbers: list[int]) -> bool:
    return numbers[-1] - numbers[0] + 1 == len(numbers)
