"""MindSpore Lite backend: a bundle's MindIR files (``--toolchain converter_lite``) through ``mindspore_lite``.

``backend="mslite"``, ``device="npu"``/``"npu:N"``/the chip (Ascend context) or ``"cpu"`` (CPU context, for a
MindIR converted for the CPU). The calls are MindSpore Lite's Python API (mindspore.cn/lite/api, ``mindspore_lite``
2.x: ``Context``, ``Model``, ``ModelType``, ``Tensor``)::

    context = mslite.Context()
    context.target = ["ascend"]               # or ["cpu"]
    context.ascend.device_id = 0
    model = mslite.Model()
    model.build_from_file(path, mslite.ModelType.MINDIR, context)
    inputs = model.get_inputs()               # list of Tensor, in the graph's input order
    inputs[0].set_data_from_numpy(array)
    outputs = model.predict(inputs)           # list of Tensor
    outputs[0].get_data_to_numpy()

A MindIR built with AIPP (``insert_op_config_file_path``) takes uint8 NHWC frames, like an OM: the session lists
what it takes in :attr:`MindSporeLiteSession.device_inputs`.

Installation: the ``mindspore-lite`` wheels on PyPI are built for Python 3.7 only; other Pythons take the wheel
for their version (and CANN) from MindSpore's download page. The module is injected (``MindSporeLiteBackend(
mslite=...)``), which is how the tests exercise the call sequence without it.
"""
from __future__ import annotations

import os
import threading
from typing import Mapping

import numpy as np

from edgetrack.backends import module_available
from edgetrack.backends._ascend import (
    DeviceGraph,
    DeviceTensor,
    check_feeds,
    missing_dependency,
    parse_ascend_device,
    resolve_graph,
)
from edgetrack.errors import BackendError, BundleError

__all__ = ["MindSporeLiteBackend", "MindSporeLiteSession", "MSLITE_HINT"]

MSLITE_HINT = (
    "install MindSpore Lite's Python package for your Python and CANN version: the wheel from "
    "https://www.mindspore.cn/lite/docs/en/master/use/downloads.html (pip install mindspore_lite-<version>-"
    "cp3XX-...whl; PyPI's mindspore-lite is for Python 3.7 only), with the CANN toolkit's set_env.sh sourced for "
    "the Ascend target; to try the device path without the device use backend='simulator'"
)


def _import_mslite():
    try:
        import mindspore_lite  # noqa: PLC0415 - the vendor library is imported on first use only
    except ImportError as exc:
        raise missing_dependency("the 'mslite' backend", "mindspore-lite", MSLITE_HINT, detail=str(exc)) from exc
    return mindspore_lite


class MindSporeLiteSession:
    """One MindIR built by MindSpore Lite. ``run(feeds)`` takes :attr:`device_inputs` exactly; one run at a time."""

    def __init__(self, mslite, graph: DeviceGraph, path, target: str, device_id: int):
        self.graph = graph
        self.path = path
        self.target = target
        self._what = f"{graph.where()} ({path.name}) on MindSpore Lite {target}"
        context = mslite.Context()
        context.target = [target]
        if target == "ascend":
            context.ascend.device_id = device_id
        model = mslite.Model()
        try:
            model.build_from_file(str(path), mslite.ModelType.MINDIR, context)
        except Exception as exc:  # MindSpore Lite raises RuntimeError/ValueError with its own message
            raise BackendError(f"MindSpore Lite could not build {self._what}: {exc}",
                               fix="check that the MindIR was converted for this device (converter_lite "
                                   "--optimize=ascend_oriented for Ascend) and matches the installed version") from exc
        self._model = model
        tensors = model.get_inputs()
        inputs = graph.inputs or tuple(
            DeviceTensor(getattr(t, "name", f"input{i}"), tuple(int(d) for d in t.shape), _dtype(t))
            for i, t in enumerate(tensors))
        if len(tensors) != len(inputs):
            raise BundleError(f"{self._what}: the MindIR has {len(tensors)} input(s), the manifest lists "
                              f"{[t.name for t in inputs]}", fix="rebuild the device files with the bundle's commands")
        for spec, t in zip(inputs, tensors):
            if tuple(int(d) for d in t.shape) != tuple(spec.shape):
                raise BundleError(f"{self._what}: the MindIR's input {spec.name!r} is {list(t.shape)}, the manifest's "
                                  f"device input is {spec.describe()}", fix="rebuild the device files")
        self._inputs = inputs
        self.device_inputs: dict[str, DeviceTensor] = {t.name: t for t in inputs}
        self.input_names = tuple(t.name for t in inputs)
        self.output_names = tuple(t.name for t in graph.outputs)
        self._lock = threading.Lock()

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = check_feeds(feeds, self._inputs, self._what)
        with self._lock:  # the input tensors belong to the model: one run fills them at a time
            tensors = self._model.get_inputs()
            for spec, t in zip(self._inputs, tensors):
                t.set_data_from_numpy(feeds[spec.name])
            try:
                outputs = self._model.predict(tensors)
            except Exception as exc:
                raise BackendError(f"MindSpore Lite failed to run {self._what}: {exc}") from exc
            arrays = [np.array(o.get_data_to_numpy(), copy=True) for o in outputs]
        names = self.output_names or tuple(getattr(o, "name", f"output{i}") for i, o in enumerate(outputs))
        if len(arrays) != len(names):
            raise BackendError(f"{self._what}: MindSpore Lite returned {len(arrays)} output(s), expected {list(names)}")
        return dict(zip(names, arrays))

    def __repr__(self) -> str:
        return f"MindSporeLiteSession({self.graph.name!r}, {self.path.name}, {self.target})"


def _dtype(tensor) -> str:
    # mindspore_lite.Tensor.dtype is a DataType enum (FLOAT32, UINT8, ...): its name gives numpy's spelling.
    name = getattr(getattr(tensor, "dtype", None), "name", "FLOAT32").lower()
    return {"float32": "float32", "float16": "float16", "uint8": "uint8", "int8": "int8", "int32": "int32",
            "int64": "int64"}.get(name, "float32")


class MindSporeLiteBackend:
    """Loads MindIR graphs of Ascend bundles with MindSpore Lite (see the module docstring).

    ``mslite``: the ``mindspore_lite`` module to use (default: imported on first load).
    """

    name = "mslite"
    default_device = "npu"  # the bundle's own chip
    package = "mindspore-lite"

    def __init__(self, mslite=None):
        self._mslite = mslite

    def is_available(self) -> bool:
        return self._mslite is not None or module_available("mindspore_lite")

    def missing_dependency_error(self):
        return missing_dependency("the 'mslite' backend", self.package, MSLITE_HINT)

    def load(self, graph_path: str | os.PathLike, device: str = "npu") -> MindSporeLiteSession:
        if isinstance(device, str) and device.strip().lower() == "cpu":
            target, soc, device_id = "cpu", None, 0
        else:
            soc, device_id = parse_ascend_device(device, self.name)
            target = "ascend"
        # For the CPU, soc None: a bundle's own chip, or (a MindIR outside any bundle) no chip at all.
        graph = resolve_graph(graph_path, soc, backend=self.name)
        path = graph.device_file
        if path is None or path.suffix.lower() != ".mindir":
            if graph.bundle_path is not None and not graph.toolchain:
                raise BundleError(
                    f"bundle {str(graph.bundle_path)!r} targets {graph.target!r}: it has no MindIR files",
                    fix="convert the checkpoint with --target ascend310 --toolchain converter_lite where MindSpore "
                        "Lite's converter is installed; to try the device path here use backend='simulator', "
                        "device='ascend310'",
                )
            raise BundleError(
                f"{graph.where()} has no built MindIR (status: {graph.status or 'not a MindIR'}; toolchain "
                f"{graph.toolchain})",
                fix="run the graph's converter_lite command from manifest.json in the bundle folder (or convert "
                    "again with --toolchain converter_lite where the converter is installed)",
            )
        if target == "cpu" and graph.toolchain == "converter_lite":
            raise BundleError(
                f"{graph.where()}: its MindIR was converted for Ascend (converter_lite --optimize=ascend_oriented) "
                "and does not run in a CPU context",
                fix="use device='npu' (or the chip), or backend='simulator' to try it on this machine",
            )
        mslite = self._mslite if self._mslite is not None else _import_mslite()
        return MindSporeLiteSession(mslite, graph, path, target, device_id)

