"""Inference backends: the one place where a graph file meets a runtime library.

The protocol is ONNX Runtime's own shape (``InferenceSession(path).run(feeds)``), kept small so that adding a
runtime means adding one file and one line in :data:`BACKENDS`, never another ``elif``::

    backend = get_backend("onnxruntime")       # a Backend; MissingDependencyError if its library is missing
    session = backend.load("search.onnx", "cpu")
    outputs = session.run({"x": crops})        # dict[str, ndarray] -> dict[str, ndarray]

A backend class has a ``name``, the pip ``package`` that provides its library, ``is_available() -> bool`` (cheap:
it must not import the library), and ``load(graph_path, device) -> Session``. Its library is imported inside its
own module only, on first use, so ``import edgetrack`` needs none of them.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from edgetrack.errors import MissingDependencyError, UnknownChoiceError

__all__ = ["BACKENDS", "AUTO_ORDER", "Backend", "Session", "get_backend", "available_backends", "module_available"]

# name -> "module:Class", imported on first use (so listing backends imports no runtime library).
BACKENDS: dict[str, str] = {
    "onnxruntime": "edgetrack.backends.onnxruntime:OnnxRuntimeBackend",
    # Ascend: the CPU-fallback NPU simulator (what CI runs), pyACL for .om files, MindSpore Lite for MindIR files.
    "simulator": "edgetrack.backends.simulator:SimulatorBackend",
    "acl": "edgetrack.backends.acl:AclBackend",
    "mslite": "edgetrack.backends.mslite:MindSporeLiteBackend",
    # PyTorch running the ONNX graphs (onnx2torch) as CUDA graphs: the GPU path where onnxruntime-gpu is absent.
    "torch": "edgetrack.backends.torchcuda:TorchBackend",
}

# What backend="auto" tries, in order, for a cpu/cuda bundle's graphs. An Ascend bundle gets the backend of the
# toolchain that built its device files (acl for ATC's .om, mslite for MindIR), never the simulator: running an NPU
# build on the CPU unasked would be a silent fall-back (edgetrack.backends._ascend.auto_backends).
AUTO_ORDER: tuple[str, ...] = ("onnxruntime",)


@runtime_checkable
class Session(Protocol):
    """One loaded graph. ``run`` takes every input by name and returns every output by name."""

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@runtime_checkable
class Backend(Protocol):
    name: str
    package: str

    def is_available(self) -> bool: ...

    def load(self, graph_path: str | os.PathLike, device: str) -> Session: ...


def module_available(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (keeps ``is_available`` cheap)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _backend_class(name: str):
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def available_backends() -> list[str]:
    """Names of the registered backends whose library is installed here."""
    return [name for name in BACKENDS if _backend_class(name)().is_available()]


def get_backend(name: str) -> Backend:
    """The backend called ``name``, ready to ``load`` graphs.

    Raises :class:`UnknownChoiceError` (listing the names) for an unknown name and
    :class:`MissingDependencyError` (naming the package) when the backend's library is not installed.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in BACKENDS:
        raise UnknownChoiceError("backend", name, BACKENDS, fix="pass backend='auto' or one of the names listed")
    backend = _backend_class(key)()
    if not backend.is_available():
        # A vendor runtime that pip does not install (pyACL comes with CANN) says how to get it itself.
        hook = getattr(backend, "missing_dependency_error", None)
        raise hook() if hook is not None else MissingDependencyError(f"the {key!r} backend", backend.package)
    return backend
