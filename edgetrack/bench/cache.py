"""The report's measurement cache: one JSON file per expensive measurement, found by the hash of its key.

A record is ``{"schema", "kind", "key", "meta", "result"}``. ``key`` says *what* was measured (kind, tracker spec and
identity, data set fingerprint, edgetrack version, and for speed the machine); ``meta`` says *where and when*
(date, machine, command). A record is looked up by the hash of its key, recomputed from the file's content, never
from its file name: a record measured on another machine (the GPU machine) is merged by copying its JSON anywhere
under the cache folder, under any name.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Iterable

SCHEMA = "edgetrack-bench/1"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def key_hash(key: dict) -> str:
    """A short, stable hash of a key (sorted JSON): the identity of one measurement."""
    return hashlib.sha256(_canonical(key).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._+-" else "_" for c in text)
    return keep.strip("_")[:80] or "record"


class Cache:
    """Records under ``root`` (any depth, any file name), indexed by their key's hash on first use."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._index: dict[str, dict] | None = None
        self.skipped: list[str] = []  # files under root that are not records (named in the report's log)

    def _load(self) -> dict[str, dict]:
        if self._index is None:
            index: dict[str, dict] = {}
            for path in sorted(self.root.rglob("*.json")) if self.root.is_dir() else []:
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    self.skipped.append(f"{path}: {exc}")
                    continue
                if not isinstance(record, dict) or record.get("schema") != SCHEMA or not isinstance(
                        record.get("key"), dict):
                    self.skipped.append(f"{path}: not a {SCHEMA} record")
                    continue
                record["_path"] = str(path)
                h = key_hash(record["key"])
                old = index.get(h)
                # Two copies of one measurement (a merged file beside the local one): the newer one counts.
                date = str((record.get("meta") or {}).get("date", ""))
                if old is None or date >= str((old.get("meta") or {}).get("date", "")):
                    index[h] = record
            self._index = index
        return self._index

    def get(self, key: dict) -> dict | None:
        return self._load().get(key_hash(key))

    def put(self, key: dict, result: Any, meta: dict, name: str) -> dict:
        """Write a record (atomically: a reader never sees half a file) and return it."""
        kind = str(key.get("kind", "record"))
        h = key_hash(key)
        path = self.root / kind / f"{_slug(name)}-{h}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"schema": SCHEMA, "kind": kind, "key": key, "meta": meta, "result": result}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=1, allow_nan=False, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        record["_path"] = str(path)
        self._load()[h] = record
        return record

    def records(self, kind: str) -> list[dict]:
        return [r for r in self._load().values() if r.get("kind") == kind]


# ------------------------------------------------------------------------------------------------ where and when
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _versions(names: Iterable[str]) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine_info() -> dict:
    """What the numbers were measured on (no host names or users: the report is published)."""
    import cv2
    import numpy as np

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "system": platform.system(),
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "cores": int(cores or 0),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        **_versions(("onnxruntime",)),
    }


def machine_label(info: dict) -> str:
    return f"{info.get('cpu', '?')}, {info.get('cores', '?')} cores ({info.get('system', '')} {info.get('arch', '')})"


def machine_id(info: dict) -> str:
    """Machines whose CPU speed figures may stand side by side: same CPU model, core count, OS and runtime."""
    return key_hash({k: info.get(k) for k in ("system", "arch", "cpu", "cores", "onnxruntime", "opencv")})


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def command_line(argv: list[str] | None = None) -> str:
    import shlex

    argv = sys.argv if argv is None else argv
    return " ".join(shlex.quote(a) for a in argv)


__all__ = ["SCHEMA", "Cache", "key_hash", "file_sha256", "machine_info", "machine_label", "machine_id",
           "load_average", "now", "command_line"]
