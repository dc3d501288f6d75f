"""Small parsing helpers shared by the data set readers (GOT-10k, OTB, VID, GoPro).

Every error names the file (and line, where there is one), what was found and what was expected.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence as Seq

import numpy as np

from edgetrack.errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
_SEP = re.compile(r"[,\s]+")


def read_lines(path: Path) -> list[str]:
    """The file's lines without line endings (CRLF tolerated), trailing blank lines dropped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc.strerror or exc}", fix="check the file's permissions") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_boxes(path: Path, what: str = "x,y,w,h") -> np.ndarray:
    """Read N×4 float64 rows separated by commas, tabs or spaces (mixed within one file is fine).

    Blank lines inside the file are an error: skipping them would shift every later annotation by one frame.
    """
    rows: list[list[float]] = []
    for lineno, line in enumerate(read_lines(path), 1):
        fields = [f for f in _SEP.split(line.strip().lstrip("\ufeff")) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            values = []
        if len(values) != 4:
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise DatasetError(
                f"{str(path)!r} line {lineno}: expected 4 numbers ({what}) separated by commas, tabs or spaces, "
                f"got {shown!r}",
                fix="fix or remove that line; every line must describe one frame",
            )
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def read_int_labels(path: Path, n: int, valid: Iterable[int], what: str) -> np.ndarray:
    """Read one integer per line (``n`` lines), each in ``valid``; e.g. GOT-10k absence.label / cover.label."""
    valid = set(valid)
    lines = read_lines(path)
    if len(lines) != n:
        raise DatasetError(
            f"{str(path)!r} has {len(lines)} lines but the sequence has {n} frames",
            fix=f"{path.name} must hold one {what} per frame",
        )
    out = np.empty(n, dtype=np.int64)
    for lineno, line in enumerate(lines, 1):
        try:
            value = int(float(line.strip()))
        except ValueError:
            value = None
        if value is None or value not in valid:
            raise DatasetError(
                f"{str(path)!r} line {lineno}: expected {what} ({min(valid)}..{max(valid)}), got {line.strip()!r}"
            )
        out[lineno - 1] = value
    return out


def numbered_images(folder: Path) -> dict[int, str]:
    """Map frame number -> path for the image files whose name (without extension) is a number.

    Other files (Thumbs.db, .DS_Store, notes) are ignored. Two images with the same number are an error.
    """
    found: dict[int, str] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise DatasetError(f"cannot list frame folder {str(folder)!r}: {exc.strerror or exc}") from exc
    for entry in entries:
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() not in IMAGE_EXTS or not stem.isdigit():
            continue
        number = int(stem)
        if number in found:
            raise DatasetError(
                f"frame folder {str(folder)!r} holds two images numbered {number}: "
                f"{os.path.basename(found[number])!r} and {entry.name!r}",
                fix="keep one of them",
            )
        found[number] = entry.path
    return found


def split_subset(subset: str | None) -> list[str]:
    """``"Basketball, Bolt"`` -> ``["Basketball", "Bolt"]`` (empty items dropped)."""
    if not subset:
        return []
    return [s.strip() for s in subset.split(",") if s.strip()]


def choices_text(names: Seq[str], limit: int = 40) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "") if names else "(none)"


def unknown_choice(what: str, value: str, choices: Seq[str], fix: str) -> DatasetError:
    return DatasetError(f"unknown {what} {value!r}; valid choices: {choices_text(choices)}", fix=fix)
