"""ILSVRC2015-VID reader: one tracking sequence per (video, track id).

Layout of the ImageNet VID download (the root is the ``ILSVRC2015`` folder)::

    ILSVRC2015/Annotations/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/000000.xml ...
    ILSVRC2015/Annotations/VID/val/ILSVRC2015_val_00000000/000000.xml ...
    ILSVRC2015/Data/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/000000.JPEG ...
    ILSVRC2015/Data/VID/val/ILSVRC2015_val_00000000/000000.JPEG ...

One PASCAL-VOC-style XML per frame, with ``<size><width>/<height>`` and one ``<object>`` per visible target::

    <object><trackid>0</trackid><name>n02691156</name>
      <bndbox><xmax>..</xmax><xmin>..</xmin><ymax>..</ymax><ymin>..</ymin></bndbox>
      <occluded>0</occluded><generated>0</generated></object>

A track becomes a :class:`Sequence` named ``VIDEO.TRACKID`` spanning its first to its last annotated frame; frames
inside that span without the track get ``absent=True`` and a NaN box (so do the rare boxes with xmax < xmin,
counted in ``meta["inverted_boxes"]``). Tracks seen in fewer than 2 frames are left
out (nothing to track after the first frame). ``known_size`` comes from the XML's ``<size>``.

Box convention: the XML corners are read as continuous coordinates, ``x = xmin``, ``w = xmax - xmin`` (likewise
y, h), as pysot and mmtracking read VID. (The GOT-10k toolkit adds 1 to w and h, treating the corners as inclusive
pixel indices; the two differ by one pixel in size.)

``meta``: ``object_class`` (the WordNet id, e.g. ``n02691156``), ``class_name`` (``airplane``, for the 30 VID
classes), ``video``, ``track_id``, ``split``, and ``occluded_frames`` / ``generated_frames`` (how many of the
track's frames the annotators marked occluded / interpolated).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgetrack.data._files import choices_text, split_subset
from edgetrack.data.sequence import Sequence
from edgetrack.errors import DatasetError

if TYPE_CHECKING:
    from edgetrack.data import Dataset

SPLITS = ("train", "val")

# The 30 ILSVRC2015-VID classes: WordNet id -> the name the challenge uses.
VID_CLASSES: dict[str, str] = {
    "n02691156": "airplane", "n02419796": "antelope", "n02131653": "bear", "n02834778": "bicycle",
    "n01503061": "bird", "n02924116": "bus", "n02958343": "car", "n02402425": "cattle",
    "n02084071": "dog", "n02121808": "domestic_cat", "n02503517": "elephant", "n02118333": "fox",
    "n02510455": "giant_panda", "n02342885": "hamster", "n02374451": "horse", "n02129165": "lion",
    "n01674464": "lizard", "n02484322": "monkey", "n03790512": "motorcycle", "n02324045": "rabbit",
    "n02509815": "red_panda", "n02411705": "sheep", "n01726692": "snake", "n02355227": "squirrel",
    "n02129604": "tiger", "n04468005": "train", "n01662784": "turtle", "n04530566": "watercraft",
    "n02062744": "whale", "n02391049": "zebra",
}


def open_vid(root: Path, subset: str | None = None) -> "list[Dataset]":
    """Open ILSVRC2015-VID; ``subset`` is ``val`` (default), ``train`` or ``train,val`` (one Dataset each)."""
    from edgetrack.data import Dataset

    root = _find_root(Path(root))
    asked = [s.lower() for s in split_subset(subset)] or ["val"]
    out = []
    for split in dict.fromkeys(asked):
        if split not in SPLITS:
            raise DatasetError(
                f"unknown ILSVRC2015-VID split {split!r}; valid choices: {', '.join(SPLITS)}",
                fix="write vid:PATH#val or vid:PATH#train",
            )
        name = f"vid-{split}"
        out.append(Dataset(name, "vid", read_split(root, split, dataset=name)))
    return out


def _find_root(root: Path) -> Path:
    if not root.is_dir():
        raise DatasetError(f"ILSVRC2015-VID folder {str(root)!r} does not exist or is not a folder", fix="check the path")
    for cand in (root, root / "ILSVRC2015", root / "ILSVRC"):
        if (cand / "Annotations" / "VID").is_dir():
            return cand
    raise DatasetError(
        f"{str(root)!r} is not an ILSVRC2015-VID folder: it has no Annotations/VID/",
        fix="point at the ILSVRC2015 folder (the one holding Annotations/ and Data/)",
    )


def video_dirs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(annotation folder, frame folder) of every video of ``split``, sorted by name.

    train is split into ILSVRC2015_VID_train_0000 ... _0003 subfolders; val is flat. Either layout is accepted for
    either split: a folder holding .xml files is a video, anything else is searched one level deeper.
    """
    anno_root = root / "Annotations" / "VID" / split
    data_root = root / "Data" / "VID" / split
    if not anno_root.is_dir():
        found = sorted(p.name for p in (root / "Annotations" / "VID").iterdir() if p.is_dir())
        raise DatasetError(
            f"ILSVRC2015-VID split {split!r} not found: {str(anno_root)!r} does not exist "
            f"(splits found: {choices_text(found)})",
            fix="extract that split, or pick another with #SPLIT",
        )
    if not data_root.is_dir():
        raise DatasetError(
            f"ILSVRC2015-VID frames of split {split!r} not found: {str(data_root)!r} does not exist",
            fix="extract Data/VID/ next to Annotations/VID/",
        )
    out: list[tuple[Path, Path]] = []

    def visit(anno_dir: Path, rel: tuple[str, ...], depth: int) -> None:
        with os.scandir(anno_dir) as it:
            entries = sorted((e for e in it if e.is_dir()), key=lambda e: e.name)
        for e in entries:
            sub = Path(e.path)
            if _has_xml(sub):
                out.append((sub, data_root.joinpath(*rel, e.name)))
            elif depth < 1:
                visit(sub, rel + (e.name,), depth + 1)

    visit(anno_root, (), 0)
    return out


def _has_xml(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.name.endswith(".xml") for e in it)


def read_split(root: Path, split: str, dataset: str = "") -> list[Sequence]:
    seqs: list[Sequence] = []
    for anno_dir, data_dir in video_dirs(root, split):
        seqs.extend(read_video(anno_dir, data_dir, dataset=dataset, split=split))
    return seqs


def read_video(anno_dir: Path, data_dir: Path, dataset: str = "", split: str = "") -> list[Sequence]:
    """Every track of one video as its own :class:`Sequence`."""
    anno_dir, data_dir = Path(anno_dir), Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(
            f"frames of ILSVRC2015-VID video {anno_dir.name!r} not found: {str(data_dir)!r} does not exist",
            fix="extract Data/VID/ completely (its folders mirror Annotations/VID/)",
        )
    xmls = sorted(p for p in anno_dir.iterdir() if p.suffix == ".xml")
    if not xmls:
        return []
    ext = next((e for e in (".JPEG", ".jpeg", ".jpg", ".JPG", ".png") if (data_dir / (xmls[0].stem + e)).is_file()), None)
    if ext is None:
        raise DatasetError(
            f"ILSVRC2015-VID video {anno_dir.name!r}: frame {str(data_dir / (xmls[0].stem + '.JPEG'))!r} does not exist "
            f"(every Annotations/.../NNNNNN.xml needs its Data/.../NNNNNN.JPEG)",
            fix="extract Data/VID/ completely",
        )
    frames = tuple(str(data_dir / (p.stem + ext)) for p in xmls)
    size: tuple[int, int] | None = None
    # track id -> {frame index: (box, name, occluded, generated)}
    tracks: dict[str, dict[int, tuple[tuple[float, float, float, float], str, bool, bool]]] = {}
    for index, xml_path in enumerate(xmls):
        frame_size, objects = _parse_xml(xml_path)
        size = size or frame_size
        for track_id, box, name, occluded, generated in objects:
            track = tracks.setdefault(track_id, {})
            if index in track:
                raise DatasetError(
                    f"{str(xml_path)!r}: track id {track_id} appears twice in the same frame",
                    fix="each <object> of a frame needs its own <trackid>",
                )
            track[index] = (box, name, occluded, generated)

    seqs = []
    for track_id in sorted(tracks, key=lambda t: (len(t), t)):
        track = tracks[track_id]
        if len(track) < 2:
            continue
        first, last = min(track), max(track)
        span = last - first + 1
        boxes = np.full((span, 4), np.nan)
        absent = np.ones(span, dtype=bool)
        names: dict[str, int] = {}
        occluded = generated = 0
        inverted = 0
        for index, (box, name, occ, gen) in track.items():
            if box[2] < 0 or box[3] < 0:  # xmax < xmin: no usable box; counted in meta, frame left without one
                inverted += 1
            else:
                boxes[index - first] = box
                absent[index - first] = False
            names[name] = names.get(name, 0) + 1
            occluded += occ
            generated += gen
        wnid = max(names, key=names.get)  # a track keeps its class; take the majority should a frame disagree
        meta = {
            "object_class": wnid,
            "class_name": VID_CLASSES.get(wnid, wnid),
            "video": anno_dir.name,
            "track_id": track_id,
            "split": split,
            "occluded_frames": str(occluded),
            "generated_frames": str(generated),
        }
        if inverted:
            meta["inverted_boxes"] = str(inverted)
        seqs.append(
            Sequence(
                name=f"{anno_dir.name}.{track_id}", frames=frames[first : last + 1], boxes=boxes, dataset=dataset,
                absent=absent, meta=meta, known_size=size,
            )
        )
    return seqs


def _text(elem: ET.Element, path: str, xml_path: Path, what: str) -> str:
    child = elem.find(path)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{str(xml_path)!r}: <object> has no <{path}> ({what})", fix="repair or restore that file")
    return child.text.strip()


def _number(elem: ET.Element, path: str, xml_path: Path) -> float:
    text = _text(elem, path, xml_path, "a pixel coordinate")
    try:
        return float(text)
    except ValueError:
        raise DatasetError(f"{str(xml_path)!r}: <{path}> should be a number, got {text!r}") from None


def _parse_xml(xml_path: Path):
    """(image size or None, [(track id, (x, y, w, h), wnid, occluded, generated), ...]) of one frame."""
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else "?"
        raise DatasetError(
            f"{str(xml_path)!r} line {line}: not well-formed XML ({exc})", fix="restore that file from the download"
        ) from None
    except OSError as exc:
        raise DatasetError(f"cannot read {str(xml_path)!r}: {exc.strerror or exc}") from None
    root = tree.getroot()
    size = None
    w_el, h_el = root.find("size/width"), root.find("size/height")
    if w_el is not None and h_el is not None:
        try:
            w, h = int(float(w_el.text or "")), int(float(h_el.text or ""))
            size = (w, h) if w > 0 and h > 0 else None
        except ValueError:
            size = None
    objects = []
    for obj in root.iter("object"):
        track_id = _text(obj, "trackid", xml_path, "the track id")
        name = _text(obj, "name", xml_path, "the WordNet class id")
        x1, y1 = _number(obj, "bndbox/xmin", xml_path), _number(obj, "bndbox/ymin", xml_path)
        x2, y2 = _number(obj, "bndbox/xmax", xml_path), _number(obj, "bndbox/ymax", xml_path)
        occ = obj.find("occluded")
        gen = obj.find("generated")
        objects.append(
            (
                track_id,
                (x1, y1, x2 - x1, y2 - y1),
                name,
                occ is not None and (occ.text or "").strip() == "1",
                gen is not None and (gen.text or "").strip() == "1",
            )
        )
    return size, objects
