"""GOT-10k layout: writer (used by the synthetic generator and by anyone exporting sequences).

Layout of one split folder::

    SPLIT/list.txt                      one sequence name per line
    SPLIT/SEQ/00000001.jpg ...          frames, 8-digit 1-based names
    SPLIT/SEQ/groundtruth.txt           x,y,w,h per line (test split: first line only)
    SPLIT/SEQ/absence.label             0/1 per frame (train/val)
    SPLIT/SEQ/cover.label               0..8 per frame (train/val), visible ratio class
    SPLIT/SEQ/meta_info.ini             [METAINFO] with object_class, motion_class, ...

The data set root holds train/ val/ test/ (each one split folder). :func:`open_got10k` accepts the root (pick a
split with ``#val``) or one split folder. What the reader tolerates, because real copies have it:

- no list.txt: the split's sequences are its folders that hold a groundtruth.txt, sorted by name;
- groundtruth.txt with only the first line (the test split): the other frames' boxes are NaN;
- no absence.label / cover.label / meta_info.ini (the test split): ``absent`` / ``cover`` are None, ``meta`` empty;
- boxes separated by commas, tabs or spaces; CRLF line endings.

Frames where absence.label says 1 get a NaN box (the :class:`~edgetrack.data.sequence.Sequence` convention: no
box where the target is not visible).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from edgetrack.data._files import numbered_images, read_boxes, read_int_labels, read_lines, split_subset, unknown_choice
from edgetrack.data.sequence import Sequence
from edgetrack.errors import DatasetError

if TYPE_CHECKING:  # edgetrack.data imports this module lazily; import Dataset at call time to avoid a cycle
    from edgetrack.data import Dataset


def frame_name(index: int) -> str:
    """GOT-10k's frame file name for 0-based ``index``."""
    return f"{index + 1:08d}.jpg"


def write_sequence(
    seq_dir: str | Path,
    frames: Iterable[np.ndarray],
    boxes: np.ndarray,
    *,
    absent: np.ndarray | None = None,
    cover: np.ndarray | None = None,
    meta: Mapping[str, str] | None = None,
    jpeg_quality: int = 95,
) -> Path:
    """Write one sequence in GOT-10k layout; returns the folder. ``frames`` are BGR uint8 H×W×3."""
    import cv2

    seq_dir = Path(seq_dir)
    seq_dir.mkdir(parents=True, exist_ok=True)
    boxes = np.asarray(boxes, dtype=np.float64)
    n = 0
    for i, frame in enumerate(frames):
        if not cv2.imwrite(str(seq_dir / frame_name(i)), frame, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]):
            raise DatasetError(f"cannot write frame {str(seq_dir / frame_name(i))!r}", fix="check disk space and permissions")
        n += 1
    if n != len(boxes):
        raise DatasetError(f"{seq_dir.name}: wrote {n} frames but got {len(boxes)} boxes")
    np.savetxt(seq_dir / "groundtruth.txt", boxes, fmt="%.4f", delimiter=",")
    if absent is not None:
        np.savetxt(seq_dir / "absence.label", np.asarray(absent, dtype=np.int64), fmt="%d")
    if cover is not None:
        np.savetxt(seq_dir / "cover.label", np.asarray(cover, dtype=np.int64), fmt="%d")
    if meta:
        lines = ["[METAINFO]"] + [f"{k}: {v}" for k, v in meta.items()]
        (seq_dir / "meta_info.ini").write_text("\n".join(lines) + "\n")
    return seq_dir


def write_list(split_dir: str | Path, names: Iterable[str]) -> Path:
    """Write ``list.txt`` of a split folder."""
    path = Path(split_dir) / "list.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n}\n" for n in names))
    return path


# ---------------------------------------------------------------------------------------------------------- reader

SPLITS = ("train", "val", "test")


def open_got10k(root: Path, subset: str | None = None) -> "list[Dataset]":
    """Open a GOT-10k root (train/ val/ test/, pick one with ``subset``) or one split folder.

    Returns one :class:`~edgetrack.data.Dataset` per split asked for (``subset`` may list several: ``"train,val"``),
    named ``got10k-<split>``.
    """
    from edgetrack.data import Dataset

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"GOT-10k folder {str(root)!r} does not exist or is not a folder", fix="check the path")
    if (root / "groundtruth.txt").is_file():  # the path is one sequence: a data set of one
        name = f"got10k-{root.name}"
        return [Dataset(name, "got10k", [read_sequence(root, dataset=name)])]
    if _is_split(root):
        asked = split_subset(subset)
        if asked and [a.lower() for a in asked] != [root.name.lower()]:
            raise DatasetError(
                f"{str(root)!r} is one GOT-10k split folder (it holds list.txt or sequence folders), "
                f"so '#{subset}' cannot pick a split in it",
                fix=f"drop '#{subset}', or point at the folder that holds train/ val/ test/",
            )
        splits = {root.name: root}
    else:
        found = find_splits(root)
        if not found:
            raise DatasetError(
                f"{str(root)!r} is not a GOT-10k folder: it has no list.txt, no sequence folders with a "
                f"groundtruth.txt, and no split folders (train/ val/ test/) holding them",
                fix="point at the GOT-10k root (holding train/ val/ test/) or at one split folder",
            )
        asked = split_subset(subset)
        if not asked:
            if len(found) > 1:
                listed = ", ".join(found)
                raise DatasetError(
                    f"{str(root)!r} holds several GOT-10k splits ({listed}); say which one to open",
                    fix=f"append '#SPLIT' to the spec, e.g. got10k:{root}#{'val' if 'val' in found else next(iter(found))}",
                )
            asked = list(found)
        lower = {k.lower(): k for k in found}
        splits = {}
        for a in asked:
            if a.lower() not in lower:
                raise unknown_choice(
                    f"GOT-10k split in {str(root)!r}", a, list(found), fix="pick one of the split folders found"
                )
            splits[lower[a.lower()]] = found[lower[a.lower()]]
    out = []
    for split_name, split_dir in splits.items():
        name = f"got10k-{split_name.lower()}"
        out.append(Dataset(name, "got10k", read_split(split_dir, dataset=name)))
    return out


def find_splits(root: Path) -> dict[str, Path]:
    """The split folders directly under ``root``: train, val, test first (in that order), then any other."""
    children = sorted((p for p in Path(root).iterdir() if p.is_dir() and _is_split(p)), key=lambda p: p.name)
    order = {s: i for i, s in enumerate(SPLITS)}
    children.sort(key=lambda p: (order.get(p.name.lower(), len(SPLITS)), p.name))
    return {p.name: p for p in children}


def _is_split(folder: Path) -> bool:
    if (folder / "list.txt").is_file():
        return True
    try:
        with os.scandir(folder) as it:
            return any(e.is_dir() and os.path.isfile(os.path.join(e.path, "groundtruth.txt")) for e in it)
    except OSError:
        return False


def sequence_names(split_dir: Path) -> list[str]:
    """The sequence names of one split: list.txt's lines, or (without list.txt) its folders with a groundtruth.txt."""
    split_dir = Path(split_dir)
    list_file = split_dir / "list.txt"
    if list_file.is_file():
        names: list[str] = []
        seen: dict[str, int] = {}
        for lineno, line in enumerate(read_lines(list_file), 1):
            name = line.strip()
            if not name:
                continue
            if name in seen:
                raise DatasetError(
                    f"{str(list_file)!r} line {lineno}: sequence {name!r} is listed twice (first on line {seen[name]})",
                    fix="remove the repeated line",
                )
            if not (split_dir / name).is_dir():
                raise DatasetError(
                    f"{str(list_file)!r} line {lineno}: sequence folder {name!r} does not exist in {str(split_dir)!r}",
                    fix="extract that sequence, or remove its line from list.txt",
                )
            seen[name] = lineno
            names.append(name)
        return names
    with os.scandir(split_dir) as it:
        names = sorted(e.name for e in it if e.is_dir() and os.path.isfile(os.path.join(e.path, "groundtruth.txt")))
    if not names:
        raise DatasetError(
            f"GOT-10k split {str(split_dir)!r} has no list.txt and no sequence folder with a groundtruth.txt",
            fix="point at a split folder (train/, val/ or test/ of GOT-10k)",
        )
    return names


def read_split(split_dir: str | Path, dataset: str = "") -> list[Sequence]:
    """Every sequence of one split folder, in list.txt order (or sorted by name without list.txt)."""
    split_dir = Path(split_dir)
    return [read_sequence(split_dir / name, dataset=dataset) for name in sequence_names(split_dir)]


def read_sequence(seq_dir: str | Path, dataset: str = "") -> Sequence:
    """One GOT-10k sequence folder as a :class:`Sequence` (frames listed, not read)."""
    seq_dir = Path(seq_dir)
    images = numbered_images(seq_dir)
    if not images:
        raise DatasetError(
            f"GOT-10k sequence {str(seq_dir)!r} has no frames (expected 00000001.jpg, 00000002.jpg, ...)",
            fix="check that the sequence was extracted completely",
        )
    numbers = sorted(images)
    if numbers[-1] - numbers[0] + 1 != len(numbers):
        missing = next(n for n in range(numbers[0], numbers[-1] + 1) if n not in images)
        raise DatasetError(
            f"GOT-10k sequence {str(seq_dir)!r}: frame {missing:08d}.jpg is missing "
            f"(frames {numbers[0]}..{numbers[-1]} expected without gaps)",
            fix="check that the sequence was extracted completely",
        )
    frames = tuple(images[k] for k in numbers)
    n = len(frames)

    gt_path = seq_dir / "groundtruth.txt"
    if not gt_path.is_file():
        raise DatasetError(f"GOT-10k sequence {str(seq_dir)!r} has no groundtruth.txt", fix="restore the file")
    gt = read_boxes(gt_path)
    if len(gt) == n:
        boxes = gt.copy()
    elif len(gt) == 1:  # test split: only the first frame is annotated
        boxes = np.full((n, 4), np.nan)
        boxes[0] = gt[0]
    else:
        raise DatasetError(
            f"{str(gt_path)!r} has {len(gt)} lines but {str(seq_dir)!r} holds {n} frames",
            fix="groundtruth.txt needs one x,y,w,h line per frame (or only the first frame's, as in the test split)",
        )

    absent = cover = None
    if (seq_dir / "absence.label").is_file():
        absent = read_int_labels(seq_dir / "absence.label", n, (0, 1), "0 (visible) or 1 (absent)").astype(bool)
        boxes[absent] = np.nan
    if (seq_dir / "cover.label").is_file():
        cover = read_int_labels(seq_dir / "cover.label", n, range(9), "visible-ratio class")
    meta = read_meta(seq_dir / "meta_info.ini") if (seq_dir / "meta_info.ini").is_file() else {}
    # meta's "resolution: (W, H)" is the source video's; it is kept as text, not trusted as known_size, because
    # a re-encoded copy may hold smaller frames. image_size reads the first frame instead.
    return Sequence(name=seq_dir.name, frames=frames, boxes=boxes, dataset=dataset, absent=absent, cover=cover, meta=meta)


def read_meta(path: str | Path) -> dict[str, str]:
    """``meta_info.ini``: an optional ``[METAINFO]`` header, then ``key: value`` lines (value may hold ':')."""
    path = Path(path)
    meta: dict[str, str] = {}
    for lineno, line in enumerate(read_lines(path), 1):
        s = line.strip().lstrip("\ufeff")
        if not s or s[0] in "#;" or (s.startswith("[") and s.endswith("]")):
            continue
        key, sep, value = s.partition(":")
        if not sep or not key.strip():
            raise DatasetError(
                f"{str(path)!r} line {lineno}: expected 'key: value' (e.g. 'object_class: car'), got {s!r}",
                fix="fix or remove that line",
            )
        meta[key.strip()] = value.strip()
    return meta

