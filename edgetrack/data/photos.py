"""Real photos shipped inside scikit-image (a PyPI package), the synthetic generator's textures (:mod:`.synth`).

Nothing is downloaded: the files are read with OpenCV straight from scikit-image's installed folder
(``skimage/data/``, the ``eval`` extra), found with :func:`importlib.util.find_spec` (so scikit-image's own modules
are never imported): astronaut, chelsea (cat), coffee, coins, rocket, motorcycle, Hubble deep field, retina,
brick/grass/gravel textures, IHC, cameraman, moon and ``lfw_subset.npy`` (100 tiny grey faces, good for look-alike
distractors).

**The pool is fixed.** Every scene draws its photos by index from the split's pool, so a pool that grew or shrank
with what happens to be installed would give the same seed other scenes on another machine. So the pool is exactly
the catalogue's photos of the split: a missing one is an error, never skipped, and no optional package adds any.
(scikit-learn's china.jpg and flower.jpg were used when scikit-learn happened to be installed, which changed most
scenes of a seed; every set made without scikit-learn stays as it was.)

**Train/test separation.** Every photo belongs to exactly one split (the ``split`` column of :data:`CATALOGUE`;
faces 0–49 of ``lfw_subset`` are train, 50–99 test). A ``train`` set never shows a pixel of a ``test`` photo and
vice versa: targets, distractors, occluders and backgrounds of a split are all cut from that split's photos.
Within a split, photos with hand-picked ``objects`` serve as target sources (and their distractors); photos
marked ``background`` serve as panned backgrounds and occluder textures.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgetrack.errors import DatasetError, MissingDependencyError, UnknownChoiceError

SPLITS = ("train", "test")
SHAPES = ("ellipse", "rounded", "rect")

# Distribution name -> (import name, sub-folder holding the photos). One package only: see "The pool is fixed".
PACKAGES = {
    "scikit-image": ("skimage", "data"),
}


@dataclass(frozen=True)
class ObjectCrop:
    """A plausible object in a photo: ``rect`` (x, y, w, h in the photo's pixels) and the mask ``shape``.

    Crops that share a ``group`` look alike (a cat's two eyes, a motorcycle's two wheels, coins, faces) and serve
    as each other's distractors.
    """

    name: str
    rect: tuple[int, int, int, int]
    shape: str = "rounded"
    group: str | None = None


@dataclass(frozen=True)
class PhotoSpec:
    key: str
    package: str
    file: str
    split: str
    background: bool = False
    objects: tuple[ObjectCrop, ...] = ()
    auto: str | None = None  # "coins": objects found by thresholding; "faces": lfw_subset.npy


CATALOGUE: tuple[PhotoSpec, ...] = (
    # ---- train -------------------------------------------------------------------------------------------
    PhotoSpec(
        "astronaut", "scikit-image", "astronaut.png", "train",
        objects=(
            ObjectCrop("face", (150, 12, 152, 142), "ellipse"),
            ObjectCrop("mission_patch", (116, 336, 100, 100), "ellipse"),
            ObjectCrop("shuttle_model", (348, 0, 130, 285), "rounded"),
            ObjectCrop("helmet", (272, 338, 240, 174), "rounded"),
        ),
    ),
    PhotoSpec(
        "coffee", "scikit-image", "coffee.png", "train",
        objects=(
            ObjectCrop("coffee_cup", (150, 8, 275, 300), "rounded"),
            ObjectCrop("cup_and_saucer", (66, 10, 425, 385), "ellipse"),
        ),
    ),
    PhotoSpec("coins", "scikit-image", "coins.png", "train", auto="coins"),
    PhotoSpec("faces_train", "scikit-image", "lfw_subset.npy", "train", auto="faces"),
    PhotoSpec("hubble", "scikit-image", "hubble_deep_field.jpg", "train", background=True),
    PhotoSpec("brick", "scikit-image", "brick.png", "train", background=True),
    PhotoSpec("grass", "scikit-image", "grass.png", "train", background=True),
    PhotoSpec("ihc", "scikit-image", "ihc.png", "train", background=True),
    PhotoSpec("camera", "scikit-image", "camera.png", "train", background=True),
    # ---- test --------------------------------------------------------------------------------------------
    PhotoSpec(
        "chelsea", "scikit-image", "chelsea.png", "test",
        objects=(
            ObjectCrop("cat_head", (40, 0, 400, 300), "rounded"),
            ObjectCrop("cat_eye", (126, 78, 84, 78), "ellipse", group="cat_eye"),
            ObjectCrop("cat_eye", (290, 102, 62, 68), "ellipse", group="cat_eye"),
            ObjectCrop("cat_nose", (222, 216, 80, 60), "ellipse"),
        ),
    ),
    PhotoSpec(
        "motorcycle", "scikit-image", "motorcycle_left.png", "test",
        objects=(
            ObjectCrop("motorcycle", (88, 72, 605, 385), "rounded"),
            ObjectCrop("wheel", (116, 234, 164, 168), "ellipse", group="wheel"),
            ObjectCrop("wheel", (508, 286, 180, 172), "ellipse", group="wheel"),
            ObjectCrop("headlight", (504, 114, 68, 78), "ellipse"),
        ),
    ),
    PhotoSpec("faces_test", "scikit-image", "lfw_subset.npy", "test", auto="faces"),
    PhotoSpec("motorcycle_right", "scikit-image", "motorcycle_right.png", "test", background=True),
    PhotoSpec("rocket", "scikit-image", "rocket.jpg", "test", background=True),
    PhotoSpec("retina", "scikit-image", "retina.jpg", "test", background=True),
    PhotoSpec("gravel", "scikit-image", "gravel.png", "test", background=True),
    PhotoSpec("moon", "scikit-image", "moon.png", "test", background=True),
)

FACE_RANGES = {"train": (0, 50), "test": (50, 100)}  # lfw_subset.npy: images 0..99 are faces, 100..199 are not


def package_dirs() -> dict[str, Path]:
    """Installed photo folders by distribution name (only those present)."""
    found: dict[str, Path] = {}
    for dist, (module, sub) in PACKAGES.items():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        if folder.is_dir():
            found[dist] = folder
    return found


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in package_dirs():
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - a folder without metadata
            out[dist] = "unknown"
    return out


def _require_dirs() -> dict[str, Path]:
    dirs = package_dirs()
    if "scikit-image" not in dirs:
        raise MissingDependencyError(
            "the synthetic data generator (its textures are the photos bundled with scikit-image)",
            "scikit-image",
            extra="eval",
        )
    return dirs


def photo_path(spec: PhotoSpec) -> Path | None:
    folder = package_dirs().get(spec.package)
    if folder is None:
        return None
    path = folder / spec.file
    return path if path.is_file() else None


def available(split: str) -> list[PhotoSpec]:
    """The catalogue's photos of ``split``, every one of them installed (else :class:`DatasetError`: a smaller pool
    would silently give every seed other scenes)."""
    if split not in SPLITS:
        raise UnknownChoiceError("split", split, SPLITS, fix="use --split train or --split test")
    _require_dirs()
    pool = [p for p in CATALOGUE if p.split == split]
    missing = [p.file for p in pool if photo_path(p) is None]
    if missing:
        raise DatasetError(
            f"the installed scikit-image ({package_versions().get('scikit-image', '?')}) lacks the photo(s) "
            f"{', '.join(sorted(set(missing)))} of the {split!r} pool; without them the same seed would make other "
            "scenes",
            fix="reinstall scikit-image (pip install --force-reinstall 'scikit-image>=0.22'); 0.26 ships them all",
        )
    return pool


@lru_cache(maxsize=64)
def load_image(key: str) -> np.ndarray:
    """Photo ``key`` as BGR uint8 (grey photos replicated to 3 channels). Faces: an N×25×25×3 uint8 stack."""
    import cv2

    spec = next((p for p in CATALOGUE if p.key == key), None)
    if spec is None:
        raise UnknownChoiceError("photo", key, [p.key for p in CATALOGUE])
    path = photo_path(spec)
    if path is None:
        raise DatasetError(f"photo {spec.file!r} is not installed with {spec.package}",
                           fix=f"pip install {spec.package}")
    if spec.auto == "faces":
        lo, hi = FACE_RANGES[spec.split]
        faces = np.load(path)[lo:hi]
        faces = np.clip(faces * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(faces[..., None], 3, axis=-1)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read the bundled photo {str(path)!r}", fix=f"reinstall {spec.package}")
    return img


@lru_cache(maxsize=16)
def objects_of(key: str) -> tuple[ObjectCrop, ...]:
    """The object crops of photo ``key``, including the automatically found ones (coins, faces)."""
    spec = next(p for p in CATALOGUE if p.key == key)
    if spec.auto == "faces":
        n = load_image(key).shape[0]
        return tuple(ObjectCrop("face", (i, 0, 25, 25), "ellipse", group="face") for i in range(n))
    if spec.auto == "coins":
        return tuple(ObjectCrop("coin", r, "ellipse", group="coin") for r in _find_coins(load_image(key)))
    return spec.objects


def _find_coins(img: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of the bright, roundish blobs of coins.png (Otsu threshold + connected components)."""
    import cv2

    grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    h, w = grey.shape
    rects = []
    for x, y, bw, bh, area in stats[1:]:
        if 600 <= area <= 8000 and 0.75 <= bw / bh <= 1.33 and area >= 0.55 * bw * bh:
            pad = -1  # the ellipse mask sits just inside the coin's rim (no dark ring around it)
            x0, y0 = max(0, x - pad), max(0, y - pad)
            x1, y1 = min(w, x + bw + pad), min(h, y + bh + pad)
            rects.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    return rects


def file_digest(key: str) -> str:
    spec = next(p for p in CATALOGUE if p.key == key)
    path = photo_path(spec)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else ""


def describe_pool(split: str) -> dict:
    """What synth.json records about the photos a split used (files, packages, versions, digests)."""
    photos = available(split)
    versions = package_versions()
    return {
        "split": split,
        "targets": [p.key for p in photos if p.objects or p.auto],
        "backgrounds": [p.key for p in photos if p.background],
        "files": {
            p.key: {"package": p.package, "version": versions.get(p.package, "?"), "file": p.file,
                    "sha256_16": file_digest(p.key)}
            for p in photos
        },
        "faces": {"file": "lfw_subset.npy", "indices": list(FACE_RANGES[split])},
    }


__all__ = ["CATALOGUE", "SPLITS", "ObjectCrop", "PhotoSpec", "available", "load_image", "objects_of",
           "package_dirs", "describe_pool"]
