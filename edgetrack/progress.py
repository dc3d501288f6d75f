"""Progress bars for long work (tqdm, imported lazily so `import edgetrack` stays numpy/OpenCV/onnxruntime only).

Bars go to stderr and switch themselves off when stderr is not a terminal or ``EDGETRACK_NO_PROGRESS=1``, so logs
and CI output stay readable.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None, unit: str = "it", leave: bool = True):
    disable = os.environ.get("EDGETRACK_NO_PROGRESS") == "1" or not sys.stderr.isatty()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a declared dependency; keep working without a bar if it was removed
        return iterable
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, disable=disable, dynamic_ncols=True)
