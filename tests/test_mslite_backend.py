"""The MindSpore Lite backend: its call sequence against a small fake ``mindspore_lite``, its errors, and what a
machine without MindSpore Lite (this one: PyPI's wheels are Python 3.7 only) says."""
import sys
import types
from enum import Enum

import numpy as np
import pytest

from edgetrack.backends import get_backend
from edgetrack.backends.mslite import MindSporeLiteBackend
from edgetrack.bundle import GraphSpec, Manifest, TensorSpec, load_bundle, write_bundle
from edgetrack.errors import BackendError, BundleError, InvalidArgumentError, MissingDependencyError

X_SHAPE = (1, 8, 8, 3)
Y_SHAPE = (1, 4, 2, 2)


def fake_mslite(calls, *, fail_build=False, input_shape=X_SHAPE):
    """The part of mindspore_lite 2.x the backend uses; every call is appended to ``calls``."""
    m = types.ModuleType("mindspore_lite")

    class ModelType(Enum):
        MINDIR = 0

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape, self._data = name, list(shape), None

        def set_data_from_numpy(self, array):
            calls.append(("set_data_from_numpy", self.name, array.dtype.name, array.shape))
            self._data = array

        def get_data_to_numpy(self):
            calls.append(("get_data_to_numpy", self.name))
            return self._data

    class Context:
        def __init__(self):
            calls.append(("Context",))
            self.target = ["cpu"]
            self.ascend = types.SimpleNamespace(device_id=0)
            self.cpu = types.SimpleNamespace(thread_num=0)

    class Model:
        def __init__(self):
            calls.append(("Model",))
            self._inputs = [Tensor("x", input_shape)]

        def build_from_file(self, model_path, model_type, context=None, config_path=""):
            calls.append(("build_from_file", model_path.rsplit("/", 1)[-1], model_type.name, list(context.target),
                          context.ascend.device_id))
            if fail_build:
                raise RuntimeError("build_from_file failed: Ascend device not found")

        def get_inputs(self):
            calls.append(("get_inputs",))
            return self._inputs

        def predict(self, inputs):
            calls.append(("predict", len(inputs)))
            x = inputs[0]._data.astype(np.float32)
            out = Tensor("Default/y", Y_SHAPE)
            out._data = np.full(Y_SHAPE, x.mean(), np.float32)
            return [out]

    m.ModelType, m.Tensor, m.Context, m.Model = ModelType, Tensor, Context, Model
    return m


def _bundle(tmp_path, toolchain="converter_lite", built=True, kind="ascend"):
    """A hand-made Ascend bundle: one graph with a uint8 NHWC AIPP input and its (fake) MindIR."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    suffix = ".mindir" if toolchain == "converter_lite" else ".om"
    (tmp_path / "g.onnx").write_bytes(b"portable graph")
    (tmp_path / f"g{suffix}").write_bytes(b"device file for the NPU")
    spec = GraphSpec("g", "g.onnx", "", (TensorSpec("x", (1, 3, 8, 8)),), (TensorSpec("y", Y_SHAPE),))
    device = {}
    extra = {}
    if kind == "ascend":
        rel = f"device/g{suffix}"
        device = {"kind": "ascend", "chip": "ascend310p", "soc_version": "Ascend310P3", "toolchain": toolchain,
                  "precision_mode": "enforce_fp16", "audit": {}, "notes": "",
                  "graphs": {"g": {"status": "built" if built else "not built: converter_lite not found on PATH",
                                   "file": rel if built else None, "command": ["converter_lite"], "config": None,
                                   "aipp": None,
                                   "inputs": [{"name": "x", "shape": list(X_SHAPE), "dtype": "uint8",
                                               "layout": "NHWC"}]}}}
        if built:
            extra[rel] = tmp_path / f"g{suffix}"
    manifest = Manifest("toy", "toy", "ascend310p" if kind == "ascend" else "cpu",
                        "fp16" if kind == "ascend" else "fp32", {"g": spec}, device=device,
                        device_files_built=built and kind == "ascend")
    return load_bundle(write_bundle(tmp_path / "bundle", manifest, {"g": tmp_path / "g.onnx"}, extra_files=extra))


def test_the_call_sequence_of_mindspore_lite(tmp_path):
    calls = []
    b = _bundle(tmp_path)
    session = MindSporeLiteBackend(mslite=fake_mslite(calls)).load(b.graph_path("g"), "npu:1")
    assert calls == [("Context",), ("Model",), ("build_from_file", "g.mindir", "MINDIR", ["ascend"], 1),
                     ("get_inputs",)]
    assert session.device_inputs["x"].shape == X_SHAPE and session.device_inputs["x"].dtype == "uint8"
    calls.clear()
    x = np.full(X_SHAPE, 7, np.uint8)
    out = session.run({"x": x})
    assert calls == [("get_inputs",), ("set_data_from_numpy", "x", "uint8", X_SHAPE), ("predict", 1),
                     ("get_data_to_numpy", "Default/y")]
    assert list(out) == ["y"] and out["y"].shape == Y_SHAPE and float(out["y"][0, 0, 0, 0]) == 7.0
    with pytest.raises(InvalidArgumentError, match=r"static input shapes \[x \(1, 8, 8, 3\) uint8 NHWC\]"):
        session.run({"x": np.zeros((1, 3, 8, 8), np.float32)})


def test_build_failures_and_mismatched_mindirs_are_backend_errors(tmp_path):
    b = _bundle(tmp_path)
    with pytest.raises(BackendError, match=r"(?s)could not build.*Ascend device not found"):
        MindSporeLiteBackend(mslite=fake_mslite([], fail_build=True)).load(b.graph_path("g"), "npu")
    with pytest.raises(BundleError, match=r"MindIR's input 'x' is \[1, 3, 8, 8\]"):
        MindSporeLiteBackend(mslite=fake_mslite([], input_shape=(1, 3, 8, 8))).load(b.graph_path("g"), "npu")
    with pytest.raises(BundleError, match=r"(?s)built for ascend310p.*device='ascend310p'"):
        MindSporeLiteBackend(mslite=fake_mslite([])).load(b.graph_path("g"), "ascend310")
    with pytest.raises(BundleError, match="converted for Ascend"):
        MindSporeLiteBackend(mslite=fake_mslite([])).load(b.graph_path("g"), "cpu")


def test_bundles_without_mindir_files_say_what_to_do(tmp_path):
    fake = fake_mslite([])
    atc = _bundle(tmp_path / "atc", toolchain="atc")
    with pytest.raises(BundleError, match=r"(?s)built with 'atc'.*backend='acl'"):
        MindSporeLiteBackend(mslite=fake).load(atc.graph_path("g"), "npu")
    unbuilt = _bundle(tmp_path / "unbuilt", built=False)
    with pytest.raises(BundleError, match=r"(?s)not built.*converter_lite"):
        MindSporeLiteBackend(mslite=fake).load(unbuilt.graph_path("g"), "npu")
    cpu = _bundle(tmp_path / "cpu", kind="cpu")
    with pytest.raises(BundleError, match=r"(?s)targets 'cpu'.*no \.mindir files.*backend='simulator'"):
        MindSporeLiteBackend(mslite=fake).load(cpu.graph_path("g"), "npu")


def test_without_mindspore_lite_the_error_names_the_package_and_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mindspore_lite", None)
    assert not MindSporeLiteBackend().is_available()
    b = _bundle(tmp_path)
    for call in (lambda: get_backend("mslite"), lambda: MindSporeLiteBackend().load(b.graph_path("g"), "npu")):
        with pytest.raises(MissingDependencyError, match=r"(?s)'mindspore-lite'.*mindspore\.cn.*Python 3\.7") as err:
            call()
        assert err.value.package == "mindspore-lite"


def test_a_mindir_outside_any_bundle_runs_in_a_cpu_context(tmp_path):
    calls = []
    mindir = tmp_path / "model.mindir"
    mindir.write_bytes(b"mindir for the cpu")
    session = MindSporeLiteBackend(mslite=fake_mslite(calls)).load(mindir, "cpu")
    assert ("build_from_file", "model.mindir", "MINDIR", ["cpu"], 0) in calls
    assert session.run({"x": np.zeros(X_SHAPE, np.float32)})["Default/y"].shape == Y_SHAPE
