"""Tracking data: readers for the formats users have, and the synthetic blurred-video generator.

A data set is named by a spec string ``KIND:PATH[#SUBSET]`` (the command line's ``--dataset``):

==============  =====================================================================================
``got10k``      GOT-10k: PATH is the root (holding train/ val/ test/; pick one with ``#val``) or one split
``otb``         OTB-2015: PATH holds one folder per sequence (``#Basketball,Bolt`` picks some)
``vid``         ILSVRC2015-VID: PATH is the ILSVRC2015 root; ``#val`` (default) or ``#train``
``gopro``       GoPro (GOPRO_Large): PATH holds train/ and test/; ``#test`` (default) or ``#train``
``synthetic``   what ``edgetrack data synth`` writes: both variants, or ``#sharp`` / ``#blurred``
==============  =====================================================================================

:func:`open_dataset` returns a list of :class:`Dataset` (a synthetic set gives two: sharp and blurred, with the
same ground truth). GoPro data sets hold :class:`BlurPairSequence` (no boxes), the others :class:`Sequence`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from edgetrack.data.sequence import BlurPairSequence, Sequence, read_frame
from edgetrack.errors import DatasetError, UnknownChoiceError

# kind -> (module, function). Each function takes (path: Path, subset: str | None) and returns list[Dataset].
READERS: dict[str, tuple[str, str]] = {
    "got10k": ("edgetrack.data.got10k", "open_got10k"),
    "otb": ("edgetrack.data.otb", "open_otb"),
    "vid": ("edgetrack.data.vid", "open_vid"),
    "gopro": ("edgetrack.data.gopro", "open_gopro"),
    "synthetic": ("edgetrack.data.synth", "open_synthetic"),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A named list of sequences, e.g. ``Dataset("synthetic-blurred", "synthetic", [...])``."""

    name: str
    kind: str
    sequences: list

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self):
        return iter(self.sequences)

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, kind={self.kind!r}, sequences={len(self)})"


def parse_spec(spec: str) -> tuple[str, Path, str | None]:
    """Split ``KIND:PATH[#SUBSET]`` into its parts, with errors that show the expected form."""
    if not isinstance(spec, str) or ":" not in spec:
        raise DatasetError(
            f"data set spec {spec!r} has no kind",
            fix=f"write KIND:PATH[#SUBSET] with KIND one of {', '.join(sorted(READERS))}, e.g. got10k:/data/GOT-10k#val",
        )
    kind, rest = spec.split(":", 1)
    kind = kind.strip().lower()
    if kind not in READERS:
        raise UnknownChoiceError("data set kind", kind, READERS, fix="write KIND:PATH[#SUBSET]")
    path, _, subset = rest.partition("#")
    if not path:
        raise DatasetError(f"data set spec {spec!r} has no path", fix=f"write {kind}:PATH")
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"{kind} data set folder {str(root)!r} does not exist", fix="check the path")
    return kind, root, (subset or None)


def open_dataset(spec: str) -> list[Dataset]:
    """Open the data set named by ``spec`` (see the module docstring) and return its :class:`Dataset` list."""
    kind, root, subset = parse_spec(spec)
    module, func = READERS[kind]
    datasets = getattr(importlib.import_module(module), func)(root, subset)
    if not datasets or all(len(d) == 0 for d in datasets):
        raise DatasetError(f"no sequences found in {spec!r}", fix=f"check that {str(root)!r} holds a {kind} data set")
    return datasets


__all__ = ["Dataset", "Sequence", "BlurPairSequence", "READERS", "open_dataset", "parse_spec", "read_frame"]
