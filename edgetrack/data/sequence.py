"""The two records every reader returns: a tracking :class:`Sequence` and a deblurring :class:`BlurPairSequence`.

Readers (GOT-10k, OTB-2015, ILSVRC2015-VID, GoPro, synthetic) only find files and parse annotations; frames are
read lazily, one at a time, so a data set of any size costs nothing until it is used.

Boxes are always float64 ``(x, y, w, h)`` rows in pixels, ``(x, y)`` the top-left corner, 0-based. A frame without
an annotation (GOT-10k test frames after the first, frames where the target is absent) has a row of NaN.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from edgetrack.errors import DatasetError


def read_frame(path: str | Path) -> np.ndarray:
    """Read one frame as BGR uint8 H×W×3, or raise :class:`DatasetError` naming the file."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(
            f"cannot read frame {str(path)!r} (missing, unreadable or not an image)",
            fix="check that the data set was extracted completely",
        )
    return img


@dataclass(frozen=True, eq=False)
class Sequence:
    """One annotated tracking sequence (one target).

    ``absent[i]`` is True where the target is not visible (GOT-10k ``absence.label``, VID frames without the
    track); ``cover[i]`` is GOT-10k's visible-ratio class 0..8 (8 = fully visible) or None where the data set has
    none. ``meta`` carries free-form facts such as ``object_class``. ``image_size`` is (width, height) when known
    without reading a frame (synthetic sets write it); otherwise it is read from the first frame on demand.
    """

    name: str
    frames: tuple[str, ...]
    boxes: np.ndarray
    dataset: str = ""
    absent: np.ndarray | None = None
    cover: np.ndarray | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    known_size: tuple[int, int] | None = None

    def __post_init__(self):
        boxes = np.asarray(self.boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise DatasetError(f"sequence {self.name!r}: boxes must be N×4 (x, y, w, h), got shape {boxes.shape}")
        if len(boxes) != len(self.frames):
            raise DatasetError(
                f"sequence {self.name!r}: {len(self.frames)} frames but {len(boxes)} annotation rows",
                fix="the annotation file and the frame folder must describe the same frames",
            )
        object.__setattr__(self, "boxes", boxes)
        for name in ("absent", "cover"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr)
                if arr.shape != (len(self.frames),):
                    raise DatasetError(
                        f"sequence {self.name!r}: {name} has {arr.shape[0] if arr.ndim else 0} entries "
                        f"for {len(self.frames)} frames"
                    )
                object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as BGR uint8 H×W×3."""
        return read_frame(self.frames[index])

    def __iter__(self):
        for i in range(len(self)):
            yield self.frame(i)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        if self.known_size is not None:
            return self.known_size
        h, w = self.frame(0).shape[:2]
        object.__setattr__(self, "known_size", (int(w), int(h)))
        return self.known_size

    @property
    def init_box(self) -> np.ndarray:
        """The first frame's box, the one a tracker is initialised with."""
        return self.boxes[0].copy()

    def __repr__(self) -> str:
        return f"Sequence(name={self.name!r}, dataset={self.dataset!r}, frames={len(self)})"


@dataclass(frozen=True, eq=False)
class BlurPairSequence:
    """Aligned blurred/sharp frames of one video (GoPro layout), for training and testing a deblurrer.

    ``blur_gamma`` holds the gamma-corrected blurred frames where the data set has them (GoPro's blur_gamma/).
    """

    name: str
    blur: tuple[str, ...]
    sharp: tuple[str, ...]
    blur_gamma: tuple[str, ...] | None = None
    dataset: str = ""

    def __post_init__(self):
        if len(self.blur) != len(self.sharp):
            raise DatasetError(
                f"sequence {self.name!r}: {len(self.blur)} blurred frames but {len(self.sharp)} sharp frames",
                fix="blur/ and sharp/ must hold the same frame names",
            )
        if self.blur_gamma is not None and len(self.blur_gamma) != len(self.blur):
            raise DatasetError(f"sequence {self.name!r}: blur_gamma/ and blur/ hold different frame counts")

    def __len__(self) -> int:
        return len(self.blur)

    def pair(self, index: int, gamma: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(blurred, sharp) frame ``index``, both BGR uint8."""
        blurred = self.blur_gamma if gamma and self.blur_gamma is not None else self.blur
        return read_frame(blurred[index]), read_frame(self.sharp[index])

    def __repr__(self) -> str:
        return f"BlurPairSequence(name={self.name!r}, dataset={self.dataset!r}, frames={len(self)})"
