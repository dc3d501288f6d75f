"""GOT-10k layout: writer (used by the synthetic generator and by anyone exporting sequences).

Layout of one split folder::

    SPLIT/list.txt                      one sequence name per line
    SPLIT/SEQ/00000001.jpg ...          frames, 8-digit 1-based names
    SPLIT/SEQ/groundtruth.txt           x,y,w,h per line (test split: first line only)
    SPLIT/SEQ/absence.label             0/1 per frame (train/val)
    SPLIT/SEQ/cover.label               0..8 per frame (train/val), visible ratio class
    SPLIT/SEQ/meta_info.ini             [METAINFO] with object_class, motion_class, ...
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from edgetrack.errors import DatasetError


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
