"""The device bundle: the one artefact that crosses from the training side to the device side.

A bundle is a folder holding ``manifest.json`` and the graph files it names. This module is the only code that
reads or writes one (DESIGN.md), and it needs only the standard library: the robot's side loads bundles without
torch or onnx.

Writing is atomic: everything goes into a hidden sibling folder first, which is renamed into place only when
complete, so a crash or a failed copy never leaves a half-written bundle where a tracker would find it.
Loading verifies the format version, the manifest's fields and every graph file's sha256, so an altered or
truncated graph is an error at load time, not a wrong box at run time.

Format versions. 1: graphs and the free-form sections. 2 adds ``device`` (the target device's build: chip,
toolchain, per-graph device files, commands, AIPP, operator audit) and ``files`` (further files of the bundle
with their sha256: AIPP and converter configs, OM/MindIR device files, and MindSpore's own ``<graph>.mindir`` beside
the ONNX graphs where converter_lite reads those). A bundle is written at the lowest version that
holds it, so CPU/CUDA bundles stay readable by edgetrack releases that read only version 1, and a version-1
reader refuses a device bundle by its version ("upgrade edgetrack") instead of misreading it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgetrack.errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "TensorSpec",
    "GraphSpec",
    "Manifest",
    "Bundle",
    "write_bundle",
    "load_bundle",
    "sha256_file",
]

# Bump when a reader of the previous version would misread a new bundle; readers refuse newer versions.
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
# Manifest fields that only format 2 has (see the module docstring).
_V2_FIELDS = frozenset({"device", "files"})

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    # Chunked by hand: hashlib.file_digest needs Python 3.11 and edgetrack supports 3.10.
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_keys(what: str, data: Any, required: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise BundleError(f"{what} must be a JSON object, got {type(data).__name__}")
    missing, unknown = required - set(data), set(data) - required
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing field(s) {sorted(missing)}")
        if unknown:
            parts.append(f"unknown field(s) {sorted(unknown)}")
        raise BundleError(
            f"{what}: {' and '.join(parts)}; expected exactly {sorted(required)}",
            fix="rebuild the bundle with the edgetrack version that reads it",
        )


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, static shape and dtype name (numpy spelling, e.g. ``float32``)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Mapping, what: str = "tensor") -> "TensorSpec":
        _check_keys(what, data, _field_names(cls))
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data["dtype"])


@dataclass(frozen=True)
class GraphSpec:
    """One graph file of a bundle. ``file`` is relative to the bundle folder; ``sha256`` is filled by writing."""

    name: str
    file: str
    sha256: str = ""
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(_as_tensor(t) for t in self.inputs))
        object.__setattr__(self, "outputs", tuple(_as_tensor(t) for t in self.outputs))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "file": self.file,
            "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping, what: str = "graph") -> "GraphSpec":
        _check_keys(what, data, _field_names(cls))
        return cls(
            name=data["name"],
            file=data["file"],
            sha256=data["sha256"],
            inputs=tuple(TensorSpec.from_dict(t, f"{what} input") for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t, f"{what} output") for t in data["outputs"]),
        )


def _as_tensor(t) -> TensorSpec:
    if isinstance(t, TensorSpec):
        return t
    if isinstance(t, Mapping):
        return TensorSpec(name=t["name"], shape=tuple(t["shape"]), dtype=t.get("dtype", "float32"))
    raise BundleError(f"a graph input/output must be a TensorSpec or a dict, got {type(t).__name__}")


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` holds. The free-form sections are plain JSON dicts:

    ``preprocessing``: crop sizes, ``channel_order`` ("BGR"), ``value_range`` ([0, 255]), ``mean``/``std``,
    ``layout`` ("NCHW"), ``dtype``. ``tracking``: the family's tracking hyper-parameters (e.g. SiamFCParams).
    ``source``: provenance (checkpoint file and sha256, model config; ``source["mindir"]["graphs"]``: graph ->
    MindSpore's own ``<graph>.mindir`` in ``files``, where the bundle holds them). ``tools``: library versions used.
    ``parity``: per-stage numerical checks. ``device_files_built``: whether the target's device files (OM,
    MindIR) are in the bundle, or only the portable ONNX graphs they are built from.

    Format 2 (written only when used): ``device``: the device build, for Ascend targets
    ``{"kind": "ascend", "chip", "soc_version", "toolchain", "precision_mode", "mindir_source" (converter_lite only:
    "mindspore" | "onnx", what it reads), "graphs": {graph: {"status":
    "built" | "not built: <why>", "file": relative path | None, "precision": "fp16" | "int8", "command": argv
    list (the compiler's, run from the bundle folder), "commands": every argv list in the order they run (int8: AMCT's
    calibration, then the compiler), "source": {"file": relative path, "format": "ONNX" | "MINDIR"} (what the
    compiler reads; absent in bundles written before it), "calibration": {"tool", "command", "batches", "dtype",
    "data": {input: folder},
    "deploy_model"} | None (int8's AMCT step), "config": relative path | None, "aipp": {"file", "inputs": {input:
    AippConfig dict}} | None,
    "inputs": [{"name", "shape", "dtype", "layout"}] (what the device input takes)}}, "audit": {graph: [finding
    dicts]}, "notes"}``. ``files``: relative path -> sha256 of every further file, filled by :func:`write_bundle`
    and verified by :func:`load_bundle`. ``format_version`` None means "the lowest version that holds this".
    """

    family: str
    model: str
    target: str
    precision: str
    graphs: dict[str, GraphSpec]
    preprocessing: dict = field(default_factory=dict)
    tracking: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    device_files_built: bool = False
    notes: str = ""
    format_version: int | None = None
    device: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def __post_init__(self):
        # Normalise the free-form sections to what JSON gives back (tuples -> lists, keys -> str), so a manifest
        # equals itself after a write/load round trip, and anything JSON cannot hold fails here, not mid-write.
        for name in ("preprocessing", "tracking", "source", "tools", "parity", "device", "files"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise BundleError(f"Manifest.{name} must be a dict, got {type(value).__name__}")
            try:
                object.__setattr__(self, name, json.loads(json.dumps(value, allow_nan=False)))
            except (TypeError, ValueError) as exc:
                raise BundleError(f"Manifest.{name} cannot be written as JSON: {exc}") from exc
        graphs = dict(self.graphs)
        for key, spec in graphs.items():
            if not isinstance(spec, GraphSpec):
                raise BundleError(f"Manifest.graphs[{key!r}] must be a GraphSpec, got {type(spec).__name__}")
        object.__setattr__(self, "graphs", graphs)
        for rel, digest in self.files.items():
            if not isinstance(digest, str):
                raise BundleError(f"Manifest.files[{rel!r}] must be a sha256 string, got {digest!r}")
        needed = self.needed_format_version()
        v = self.format_version
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= FORMAT_VERSION):
            raise BundleError(f"Manifest.format_version must be an integer in [1, {FORMAT_VERSION}] or None, got {v!r}")
        if self.format_version is None:
            object.__setattr__(self, "format_version", needed)
        elif self.format_version < needed:
            raise BundleError(
                f"bundle format {self.format_version} cannot hold {sorted(k for k in _V2_FIELDS if getattr(self, k))}"
                f"; they need format {needed}",
                fix="leave format_version unset (None) to get the lowest version that holds the manifest",
            )

    def needed_format_version(self) -> int:
        """The lowest format version that holds this manifest (2 once ``device`` or ``files`` is used)."""
        return 2 if any(getattr(self, k) for k in _V2_FIELDS) else 1

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["graphs"] = {name: g.to_dict() for name, g in self.graphs.items()}
        if self.format_version == 1:
            for key in _V2_FIELDS:
                out.pop(key)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping) -> "Manifest":
        if not isinstance(data, Mapping):
            raise BundleError(f"{MANIFEST_NAME} must hold a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        _check_version(version)
        fields = _field_names(cls) if version >= 2 else _field_names(cls) - _V2_FIELDS
        _check_keys(MANIFEST_NAME, data, fields)
        graphs = data["graphs"]
        if not isinstance(graphs, Mapping) or not graphs:
            raise BundleError(f"{MANIFEST_NAME}: 'graphs' must be a non-empty object, got {graphs!r}")
        specs = {name: GraphSpec.from_dict(g, f"graph {name!r}") for name, g in graphs.items()}
        for name, spec in specs.items():
            if spec.name != name:
                raise BundleError(f"{MANIFEST_NAME}: graph key {name!r} holds a graph named {spec.name!r}")
        kwargs = {k: data[k] for k in fields}
        kwargs["graphs"] = specs
        for key in ("device", "files"):
            if not isinstance(kwargs.get(key, {}), Mapping):
                raise BundleError(f"{MANIFEST_NAME}: {key!r} must be a JSON object")
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{MANIFEST_NAME} is not valid JSON: {exc}", fix="rebuild the bundle") from exc
        return cls.from_dict(data)


def _check_version(version) -> None:
    if version is None:
        raise BundleError(f"{MANIFEST_NAME} has no format_version", fix="rebuild the bundle with edgetrack convert")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{MANIFEST_NAME}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"bundle format version {version} is newer than this edgetrack reads (up to {FORMAT_VERSION})",
            fix="upgrade edgetrack (pip install -U edgetrack) on this device",
        )


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: its folder, manifest, the absolute path of each graph file and of each further
    file (``manifest.files``: AIPP/converter configs, device files)."""

    path: Path
    manifest: Manifest
    graph_paths: dict[str, Path]
    file_paths: dict[str, Path] = field(default_factory=dict)

    def graph_path(self, name: str) -> Path:
        if name not in self.graph_paths:
            raise BundleError(
                f"bundle {str(self.path)!r} has no graph {name!r}; graphs: {sorted(self.graph_paths)}"
            )
        return self.graph_paths[name]

    def file_path(self, rel: str) -> Path:
        """The absolute path of a further file listed in ``manifest.files`` (verified at load)."""
        if rel not in self.file_paths:
            raise BundleError(
                f"bundle {str(self.path)!r} has no file {rel!r}; files: {sorted(self.file_paths) or '(none)'}"
            )
        return self.file_paths[rel]


def _safe_relative(file: str, what: str) -> None:
    # A manifest is data from outside: its file names must not reach out of the bundle folder.
    p = Path(file)
    if not file or p.is_absolute() or ".." in p.parts or p.name == MANIFEST_NAME:
        raise BundleError(f"{what}: file name {file!r} must be a plain relative path inside the bundle")


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and verify a bundle folder (format version, manifest fields, every graph's sha256)."""
    root = Path(path)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BundleError(f"bundle folder {str(root)!r} does not exist", fix="pass the folder edgetrack convert wrote")
    if not manifest_path.is_file():
        raise BundleError(f"{str(root)!r} is not a bundle: it has no {MANIFEST_NAME}", fix="rebuild the bundle")
    manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
    paths: dict[str, Path] = {}
    for name, spec in manifest.graphs.items():
        paths[name] = _verified(root, spec.file, spec.sha256, f"graph {name!r}")
    files = {rel: _verified(root, rel, digest, "file") for rel, digest in manifest.files.items()}
    return Bundle(path=root.resolve(), manifest=manifest, graph_paths=paths, file_paths=files)


def _verified(root: Path, rel: str, digest: str, what: str) -> Path:
    """``root/rel`` after checking it is inside the bundle, present and unaltered."""
    _safe_relative(rel, what)
    file = root / rel
    if not file.is_file():
        raise BundleError(
            f"bundle {str(root)!r}: {what} file {rel!r} is missing (expected sha256 {digest})",
            fix="copy the whole bundle folder again, or rebuild it",
        )
    actual = sha256_file(file)
    if actual != digest:
        raise BundleError(
            f"bundle {str(root)!r}: {what} file {rel!r} was altered: sha256 {actual}, manifest says {digest}",
            fix="copy the whole bundle folder again, or rebuild it",
        )
    return file.resolve()


def _copy_and_hash(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` and return the sha256 of the bytes written (hashed while copying: one read)."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            h.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()


def write_bundle(
    out_dir: str | os.PathLike,
    manifest: Manifest,
    files: Mapping[str, str | os.PathLike],
    force: bool = False,
    *,
    extra_files: Mapping[str, str | os.PathLike] | None = None,
) -> Path:
    """Write a bundle folder: copy ``files`` (graph name -> source path) under each GraphSpec's ``file``, fill
    in their sha256 and write ``manifest.json``. Atomic: built in a hidden sibling folder, then renamed.

    ``extra_files`` (relative path in the bundle -> source path): further files (configs, device files); their
    sha256 go into ``manifest.files`` (which must be empty or list exactly these paths), and the manifest is
    written at the format version that holds them.

    An existing ``out_dir`` is refused unless ``force``; with ``force`` it is replaced only once the new bundle
    is complete. Returns the bundle folder.
    """
    out = Path(out_dir)
    extra = dict(extra_files or {})
    if not isinstance(manifest, Manifest):
        raise BundleError(f"write_bundle needs a Manifest, got {type(manifest).__name__}")
    if not 1 <= manifest.format_version <= FORMAT_VERSION:
        raise BundleError(f"this edgetrack writes bundle formats 1 to {FORMAT_VERSION}, not {manifest.format_version}")
    if manifest.files and set(manifest.files) != set(extra):
        raise BundleError(
            f"manifest.files lists {sorted(manifest.files)} but extra_files gives {sorted(extra)}",
            fix="pass one source file per manifest.files entry (or leave manifest.files empty)",
        )
    for rel, src in extra.items():
        _safe_relative(rel, "extra file")
        if not Path(src).is_file():
            raise BundleError(f"extra file {rel!r}: source {str(src)!r} does not exist")
    if set(files) != set(manifest.graphs):
        raise BundleError(
            f"files given for graphs {sorted(files)} but the manifest lists {sorted(manifest.graphs)}",
            fix="pass exactly one source file per manifest graph",
        )
    targets = [manifest.graphs[name].file for name in files] + list(extra)
    for name in files:
        _safe_relative(manifest.graphs[name].file, f"graph {name!r}")
        if not Path(files[name]).is_file():
            raise BundleError(f"graph {name!r}: source file {str(files[name])!r} does not exist")
    if len(set(targets)) != len(targets):
        raise BundleError(f"two graphs or files share one file name: {sorted(targets)}")
    if out.exists() and not force:
        raise BundleError(f"{str(out)!r} already exists", fix="choose another folder or pass force=True / --force")
    if out.exists() and not out.is_dir():
        raise BundleError(f"{str(out)!r} exists and is not a folder; not replacing it")
    out.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        graphs = {}
        for name, src in files.items():
            spec = manifest.graphs[name]
            dst = tmp / spec.file
            dst.parent.mkdir(parents=True, exist_ok=True)
            graphs[name] = dataclasses.replace(spec, sha256=_copy_and_hash(Path(src), dst))
        hashes = {}
        for rel, src in extra.items():
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            hashes[rel] = _copy_and_hash(Path(src), dst)
        final = dataclasses.replace(manifest, graphs=graphs, files=hashes, format_version=None)
        if final.format_version < manifest.format_version:  # keep an explicitly higher version
            final = dataclasses.replace(final, format_version=manifest.format_version)
        (tmp / MANIFEST_NAME).write_text(final.to_json(), encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        if out.exists():
            # Move the old bundle aside first, so that a failed swap can put it back.
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rmdir(old)
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except BaseException:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
