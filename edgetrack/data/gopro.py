"""GoPro (GOPRO_Large) reader: aligned blurred / sharp frames for training and testing the deblurrer.

Layout of the download::

    GOPRO_Large/train/GOPR0372_07_00/blur/000047.png ...
    GOPRO_Large/train/GOPR0372_07_00/blur_gamma/000047.png ...   (optional: gamma-corrected blur)
    GOPRO_Large/train/GOPR0372_07_00/sharp/000047.png ...
    GOPRO_Large/test/GOPR0384_11_00/...

Frames are paired by file name across blur/, sharp/ (and blur_gamma/ where present); a name in one folder but not
the other is a :class:`DatasetError` naming it. ``#test`` (default) or ``#train`` picks the split; ``#train,test``
gives both (one Dataset each, named ``gopro-train`` / ``gopro-test``). The path may also be one split folder or one
video folder.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgetrack.data._files import IMAGE_EXTS, choices_text, split_subset
from edgetrack.data.sequence import BlurPairSequence
from edgetrack.errors import DatasetError

if TYPE_CHECKING:
    from edgetrack.data import Dataset

SPLITS = ("train", "test")


def open_gopro(root: Path, subset: str | None = None) -> "list[Dataset]":
    from edgetrack.data import Dataset

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"GoPro folder {str(root)!r} does not exist or is not a folder", fix="check the path")
    if _is_video(root):
        name = f"gopro-{root.name}"
        return [Dataset(name, "gopro", [read_video(root, dataset=name)])]
    if _is_split(root):
        asked = split_subset(subset)
        if asked and [a.lower() for a in asked] != [root.name.lower()]:
            raise DatasetError(
                f"{str(root)!r} is one GoPro split folder (it holds SEQ/blur/ and SEQ/sharp/), "
                f"so '#{subset}' cannot pick a split in it",
                fix=f"drop '#{subset}', or point at the GOPRO_Large folder that holds train/ and test/",
            )
        name = f"gopro-{root.name.lower()}"
        return [Dataset(name, "gopro", read_split(root, dataset=name))]
    found = {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir() and _is_split(p)}
    if not found:
        raise DatasetError(
            f"{str(root)!r} is not a GoPro folder: no train/ or test/ holding SEQ/blur/ and SEQ/sharp/",
            fix="point at GOPRO_Large (the folder holding train/ and test/)",
        )
    out = []
    for split in dict.fromkeys(a.lower() for a in (split_subset(subset) or ["test"])):
        if split not in found:
            raise DatasetError(
                f"GoPro split {split!r} not found in {str(root)!r}; splits found: {choices_text(sorted(found))}",
                fix="write gopro:PATH#test or gopro:PATH#train",
            )
        name = f"gopro-{split}"
        out.append(Dataset(name, "gopro", read_split(found[split], dataset=name)))
    return out


def _is_video(folder: Path) -> bool:
    return (folder / "blur").is_dir() and (folder / "sharp").is_dir()


def _is_split(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(e.is_dir() and _is_video(Path(e.path)) for e in it)
    except OSError:
        return False


def read_split(split_dir: Path, dataset: str = "") -> list[BlurPairSequence]:
    """Every video folder of one split (those holding blur/ and sharp/), sorted by name."""
    split_dir = Path(split_dir)
    videos = sorted(p for p in split_dir.iterdir() if p.is_dir() and _is_video(p))
    return [read_video(v, dataset=dataset) for v in videos]


def _images(folder: Path) -> dict[str, str]:
    with os.scandir(folder) as it:
        return {e.name: e.path for e in it if os.path.splitext(e.name)[1].lower() in IMAGE_EXTS}


def read_video(video_dir: Path, dataset: str = "") -> BlurPairSequence:
    """One video folder as a :class:`BlurPairSequence`, frames in file-name order."""
    video_dir = Path(video_dir)
    blur = _images(video_dir / "blur")
    sharp = _images(video_dir / "sharp")
    if not blur:
        raise DatasetError(f"GoPro video {str(video_dir)!r}: blur/ holds no images", fix="extract the video completely")
    _same_names(video_dir, "blur", blur, "sharp", sharp)
    names = sorted(blur)
    gamma = None
    if (video_dir / "blur_gamma").is_dir():
        gamma_files = _images(video_dir / "blur_gamma")
        _same_names(video_dir, "blur", blur, "blur_gamma", gamma_files)
        gamma = tuple(gamma_files[n] for n in names)
    return BlurPairSequence(
        name=video_dir.name,
        blur=tuple(blur[n] for n in names),
        sharp=tuple(sharp[n] for n in names),
        blur_gamma=gamma,
        dataset=dataset,
    )


def _same_names(video_dir: Path, a: str, fa: dict[str, str], b: str, fb: dict[str, str]) -> None:
    only_a = sorted(set(fa) - set(fb))
    only_b = sorted(set(fb) - set(fa))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} only in {a}/ (e.g. {only_a[0]!r})")
        if only_b:
            parts.append(f"{len(only_b)} only in {b}/ (e.g. {only_b[0]!r})")
        raise DatasetError(
            f"GoPro video {str(video_dir)!r}: {a}/ and {b}/ must hold the same file names, but "
            + " and ".join(parts),
            fix="frames are paired by file name: restore the missing frames or remove the extra ones",
        )
