"""ONNX Runtime backend: ``.onnx`` graphs on the CPU or an NVIDIA GPU.

``onnxruntime`` is imported here only, on first ``load``, so the rest of edgetrack does not depend on it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from edgetrack.backends import module_available
from edgetrack.errors import BackendError, InvalidArgumentError, UnknownChoiceError

__all__ = ["OnnxRuntimeBackend", "OnnxRuntimeSession", "DEFAULT_THREADS"]

# SiamFC's graphs run at batch 1-3 on small crops: past about four threads the per-op split costs more than it
# saves, and ONNX Runtime's default (one spinning thread per core) starves the robot's other loops.
DEFAULT_THREADS = 4

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> (kind, index)."""
    m = _DEVICE.match(device.strip().lower()) if isinstance(device, str) else None
    if m is None or (m.group(1) == "cpu" and m.group(2) is not None):
        raise UnknownChoiceError("device", device, ["cpu", "cuda", "cuda:N"], fix="pass device='cpu' or 'cuda'")
    return m.group(1), int(m.group(2) or 0)


class OnnxRuntimeSession:
    """One ``onnxruntime.InferenceSession``; ``run`` feeds inputs by name and returns every output by name."""

    def __init__(self, session, path: Path):
        self._session = session
        self.path = path
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())
        self.providers = tuple(session.get_providers())

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise InvalidArgumentError(
                f"graph {self.path.name!r} needs input(s) {sorted(missing)}; got {sorted(feeds)}",
                fix=f"feed exactly {list(self.input_names)}",
            )
        try:
            # InferenceSession.run is documented thread-safe, so one session may serve several trackers.
            outputs = self._session.run(list(self.output_names), {k: feeds[k] for k in self.input_names})
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise BackendError(f"ONNX Runtime failed to run graph {self.path.name!r}: {exc}") from exc
        return dict(zip(self.output_names, outputs))


class OnnxRuntimeBackend:
    """Loads ``.onnx`` graphs into ONNX Runtime. ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""

    name = "onnxruntime"
    package = "onnxruntime"

    def __init__(self, threads: int | None = None):
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise InvalidArgumentError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads if threads is not None else min(DEFAULT_THREADS, os.cpu_count() or 1)

    def is_available(self) -> bool:
        return module_available("onnxruntime")

    def load(self, graph_path: str | os.PathLike, device: str = "cpu") -> OnnxRuntimeSession:
        kind, index = parse_device(device)
        import onnxruntime as ort

        path = Path(graph_path)
        if not path.is_file():
            raise BackendError(f"graph file {str(path)!r} does not exist", fix="load graphs from a bundle folder")
        provider = _PROVIDERS[kind]
        available = ort.get_available_providers()
        if provider not in available:
            raise BackendError(
                f"device {device!r} needs ONNX Runtime's {provider}, which this onnxruntime "
                f"({ort.__version__}) does not have; it has {available}",
                fix="use device='cpu', or replace onnxruntime with onnxruntime-gpu (matching your CUDA/cuDNN)"
                if kind == "cuda" else "reinstall onnxruntime",
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1  # the graphs are chains: nothing to run in parallel between ops
        providers = [(provider, {"device_id": index})] if kind == "cuda" else [provider]
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime could not load {str(path)!r} on {device!r}: {exc}") from exc
        # ONNX Runtime logs a warning and quietly runs on the CPU when the CUDA provider fails to initialise
        # (missing cuDNN, wrong CUDA version; onnxruntime issue #22229). Asking for CUDA and getting the CPU is an
        # error here, never a silent 10x slowdown on the robot.
        actual = session.get_providers()
        if not actual or actual[0] != provider:
            raise BackendError(
                f"device {device!r} was asked for, but ONNX Runtime created the session on {actual} "
                f"(it falls back to the CPU when {provider} cannot start)",
                fix="check that the CUDA and cuDNN versions match your onnxruntime-gpu build, or use device='cpu'",
            )
        return OnnxRuntimeSession(session, path)
