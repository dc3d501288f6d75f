"""The NPU simulator: static shapes, fp16, AIPP, operator list, memory budget, latency estimate, Tracker on it."""
import dataclasses
import warnings

import cv2
import numpy as np
import pytest


pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgetrack import Tracker  # noqa: E402
from edgetrack.ascend import AippConfig  # noqa: E402
from edgetrack.backends import BACKENDS, get_backend  # noqa: E402
from edgetrack.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edgetrack.backends.simulator import (  # noqa: E402
    ESTIMATE_LABEL,
    DeviceOverflowWarning,
    SimulatorBackend,
    estimate_bundle,
    graph_cost,
)
from edgetrack.bundle import GraphSpec, Manifest, TensorSpec, load_bundle, write_bundle  # noqa: E402
from edgetrack.errors import (  # noqa: E402
    BackendError,
    BundleError,
    InvalidArgumentError,
    MissingDependencyError,
    UnknownChoiceError,
    UnsupportedOperatorError,
)

from tool_helpers import path_without  # noqa: E402 - tests/ is on sys.path

GRAPHS = ("template", "search", "head")
CHIPS = ("ascend310", "ascend310b", "ascend310p", "ascend910")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A tiny SiamFC cpu bundle, its Ascend 310 bundle (ONNX + AIPP + commands, no ATC here) and a variant whose
    head folds the output scale into the kernel (fp16-safe)."""
    torch = pytest.importorskip("torch")
    from edgetrack.converters.onnx2om import ascend_bundle
    from edgetrack.converters.torch2onnx import siamfc_bundle
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("sim")
    ckpt = save_siamfc(build_siamfc("siamfc-tiny").eval(), root / "tiny.safetensors")
    cpu = siamfc_bundle(ckpt, root / "cpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", path_without("atc"))
        a310 = ascend_bundle(cpu, root / "a310", "ascend310")
    # The SiamFC head scales the kernel before correlating (fp16-safe), so the plain bundle is the safe one.
    return {"cpu": cpu, "a310": a310, "safe": cpu}


def _frames(n=8):
    frames = []
    for i in range(n):
        img = np.full((72, 96, 3), 110, np.uint8)
        x, y = 10 + 4 * i, 12 + 2 * i
        cv2.rectangle(img, (x, y), (x + 19, y + 15), (30, 40, 220), -1)
        cv2.circle(img, (x + 6, y + 5), 3, (240, 240, 40), -1)
        frames.append(img)
    return frames, (10, 12, 20, 16)


def _track(tracker):
    frames, box = _frames()
    tracker.init(frames[0], box)
    return np.array([tracker.update(f).box for f in frames[1:]])


@pytest.fixture(scope="module")
def sessions(bundles):
    sim = SimulatorBackend()
    return {g: sim.load(load_bundle(bundles["a310"]).graph_path(g), "ascend310") for g in GRAPHS}


@pytest.fixture(scope="module")
def reference(bundles):
    ort = OnnxRuntimeBackend(threads=1)
    return {g: ort.load(load_bundle(bundles["cpu"]).graph_path(g), "cpu") for g in GRAPHS}


def _crops(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (1, 127, 127, 3), np.uint8), rng.integers(0, 256, (3, 255, 255, 3), np.uint8)


def _nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


# -- registry and devices -------------------------------------------------------------------------------------------
def test_registered_available_and_devices_are_chips(bundles):
    assert {"simulator", "acl", "mslite"} <= set(BACKENDS)
    assert get_backend("simulator").name == "simulator"
    search = load_bundle(bundles["a310"]).graph_path("search")
    for bad in ("cpu", "cuda:0", "ascend999", 3):
        with pytest.raises(UnknownChoiceError, match="ascend310"):
            SimulatorBackend().load(search, bad)
    with pytest.raises(BundleError, match="(?s)built for ascend310.*--target ascend910"):
        SimulatorBackend().load(search, "ascend910")
    # "npu" means the Ascend bundle's own chip; a cpu bundle has none and must be told.
    assert SimulatorBackend().load(search, "npu").soc.name == "ascend310"
    with pytest.raises(UnknownChoiceError, match="name the chip"):
        SimulatorBackend().load(load_bundle(bundles["cpu"]).graph_path("search"), "npu")


def test_a_missing_onnx_or_onnxruntime_names_the_package(monkeypatch):
    import edgetrack.backends.simulator as sim

    monkeypatch.setattr(sim, "module_available", lambda m: m != "onnx")
    with pytest.raises(MissingDependencyError, match="'onnx'"):
        get_backend("simulator")


# -- (a) static shapes ------------------------------------------------------------------------------------------
def test_only_the_static_device_shapes_are_taken(sessions):
    s = sessions["search"]
    assert s.device_inputs["x"].shape == (3, 255, 255, 3) and s.device_inputs["x"].dtype == "uint8"
    z, x = _crops()
    with pytest.raises(InvalidArgumentError, match=r"(?s)x \(3, 255, 255, 3\) uint8 NHWC.*got x \(1, 255, 255, 3\)"):
        s.run({"x": x[:1]})
    with pytest.raises(InvalidArgumentError, match=r"got x \(3, 3, 255, 255\) float32"):
        s.run({"x": _nchw(x)})  # what the cpu bundle takes is not what the device takes
    with pytest.raises(InvalidArgumentError, match=r"takes input\(s\) \['x'\]"):
        s.run({"z": x})
    with pytest.raises(InvalidArgumentError, match="kernel"):
        sessions["head"].run({"kernel": np.zeros((1, 16, 6, 6), np.float32),
                              "features": np.zeros((3, 16, 21, 21), np.float32)})


# -- (b) fp16 ---------------------------------------------------------------------------------------------------
def test_fp16_is_close_to_fp32_but_visibly_fp16(sessions, reference):
    z, x = _crops()
    k16 = sessions["template"].run({"z": z})["kernel"]
    k32 = reference["template"].run({"z": _nchw(z)})["kernel"]
    f16 = sessions["search"].run({"x": x})["features"]
    f32 = reference["search"].run({"x": _nchw(x)})["features"]
    for lo, hi in ((k16, k32), (f16, f32)):
        assert lo.dtype == np.float32 and lo.shape == hi.shape
        rel = np.abs(lo - hi).max() / np.abs(hi).max()
        assert 1e-5 < rel < 1e-2, rel  # fp16's 11-bit mantissa: about 1e-3 of the scale after a few layers
        assert np.array_equal(lo, lo.astype(np.float16).astype(np.float32))  # every value an fp16 value
        assert not np.array_equal(hi, hi.astype(np.float16).astype(np.float32))
    assert sessions["search"].overflows == {}


def test_overflow_saturates_as_the_chip_does_and_is_reported(tmp_path):
    """A product past fp16's 65504 (255 · 1000): the chip saturates it, the session warns once and records it."""
    nodes = [helper.make_node("Mul", ["x", "k"], ["y"], name="/Mul")]
    b = _toy_bundle(tmp_path, nodes, (1, 3, 8, 8), initializers=[numpy_helper.from_array(np.float32(1000.0), "k")])
    session = SimulatorBackend().load(b.graph_path("toy"), "ascend310")
    feed = np.full(session.device_inputs["x"].shape, 255, np.float32)
    with pytest.warns(DeviceOverflowWarning, match=r"(?s)Mul node '/Mul'.*saturates them at ±65504"):
        y = session.run({"x": feed})["y"]
    assert set(session.overflows) == {"Mul node '/Mul'"}
    assert np.all(y == np.float32(65504))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once per session, recorded every run
        session.run({"x": feed})
    assert session.overflows


# -- (c) AIPP ---------------------------------------------------------------------------------------------------
def _toy_bundle(tmp_path, nodes, out_shape, preprocessing=None, initializers=(), opset=11, in_shape=(1, 3, 8, 8)):
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
                              initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.save(model, str(tmp_path / "toy.onnx"))
    spec = GraphSpec("toy", "toy.onnx", "", (TensorSpec("x", in_shape),), (TensorSpec("y", tuple(out_shape)),))
    manifest = Manifest("toy", "toy", "cpu", "fp32", {"toy": spec}, preprocessing=preprocessing or {})
    return load_bundle(write_bundle(tmp_path / "bundle", manifest, {"toy": tmp_path / "toy.onnx"}))


def test_aipp_from_the_preprocessing_is_applied_as_the_chip_would(tmp_path):
    pre = {"template_size": [8, 8], "channel_order": "RGB", "value_range": [0.0, 1.0],
           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "layout": "NCHW", "dtype": "float32"}
    b = _toy_bundle(tmp_path, [helper.make_node("Identity", ["x"], ["y"])], (1, 3, 8, 8), pre)
    s = SimulatorBackend().load(b.graph_path("toy"), "ascend310b")
    assert s.device_inputs["x"].shape == (1, 8, 8, 3) and s.device_inputs["x"].dtype == "uint8"
    assert any("AIPP derived from the manifest preprocessing" in n for n in s.notes)
    frame = np.random.default_rng(1).integers(0, 256, (1, 8, 8, 3), np.uint8)
    y = s.run({"x": frame})["y"]
    rgb = frame[..., ::-1].astype(np.float64) / 255.0
    expected = ((rgb - pre["mean"]) / pre["std"]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, expected, atol=4e-3)  # fp16 of values up to ~2.6
    assert np.array_equal(y, AippConfig.from_preprocessing(pre, 8, 8).apply(frame).astype(np.float32))


# -- (d) operators ----------------------------------------------------------------------------------------------
def test_an_unsupported_operator_is_refused_at_load_naming_op_node_and_chip(tmp_path):
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="quant"),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"], name="dequant")]
    b = _toy_bundle(tmp_path, nodes, (1, 3, 8, 8), initializers=[numpy_helper.from_array(np.float32(0.1), "s")])
    with pytest.raises(UnsupportedOperatorError, match="QuantizeLinear") as err:
        SimulatorBackend().load(b.graph_path("toy"), "ascend310p")
    assert (err.value.op_type, err.value.node, err.value.chip) == ("QuantizeLinear", "quant", "ascend310p")


# -- (e) memory -------------------------------------------------------------------------------------------------
def test_device_memory_is_estimated_and_the_budget_enforced(bundles, sessions):
    mem = sessions["search"].memory()
    assert mem["label"] == ESTIMATE_LABEL and mem["budget_bytes"] == 4 << 30
    assert mem["total_bytes"] == mem["weight_bytes"] + mem["peak_activation_bytes"] + mem["io_buffer_bytes"]
    # Weights at fp16: half of the float32 initializers' bytes.
    model = onnx.load(str(sessions["search"].graph.onnx_path))
    f32 = sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer if t.data_type == TensorProto.FLOAT)
    assert mem["weight_bytes"] >= f32 // 2
    with pytest.raises(BackendError, match=r"(?s)MiB of device memory.*Ascend 310.*fix: use a smaller model"):
        SimulatorBackend(memory_budget_bytes=100_000).load(load_bundle(bundles["a310"]).graph_path("search"), "npu")


# -- (f) latency estimate ---------------------------------------------------------------------------------------
def test_mac_count_of_a_known_graph(tmp_path):
    w = numpy_helper.from_array(np.ones((16, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    b = _toy_bundle(tmp_path, nodes, (1, 16, 8, 8), initializers=[w])
    cost = graph_cost(onnx.load(str(b.graph_path("toy"))))
    assert cost.macs == 8 * 8 * 16 * 3 * 9
    assert cost.cube_macs == 8 * 8 * 16 * 16 * 9  # 3 input channels fill one C0 block of 16
    assert cost.vector_ops == 8 * 8 * 16  # the Relu
    assert cost.weight_bytes == 16 * 3 * 9 * 2


def test_latency_estimate_is_labelled_and_follows_the_chip(bundles, sessions):
    e = sessions["search"].estimate()
    assert e["label"] == "estimate, not a measurement" and e["chip"] == "ascend310"
    assert e["macs"] > 0 and 0 < e["assumed_utilisation"] <= 1 and e["estimated_ms"] > 0
    assert e["estimated_ms"] == pytest.approx(e["cube_ms"] + e["vector_ms"])
    assert sessions["search"].estimate(utilisation=0.7)["estimated_ms"] == pytest.approx(e["estimated_ms"] / 2)
    e8 = sessions["search"].estimate(precision="int8")
    assert (e8["precision"], e8["peak_tops"], e["peak_tops"]) == ("int8", 16.0, 8.0)
    per_chip = {chip: estimate_bundle(bundles["cpu"], chip)["per_frame_ms"] for chip in CHIPS}
    # Published fp16 peaks: 310B 4 < 310 8 < 310P 70 < 910 256 TFLOPS.
    assert per_chip["ascend310b"] > per_chip["ascend310"] > per_chip["ascend310p"] > per_chip["ascend910"]
    whole = estimate_bundle(bundles["a310"])
    assert whole["chip"] == "ascend310" and whole["per_frame_graphs"] == ["head", "search"]
    assert whole["per_frame_ms"] == pytest.approx(per_chip["ascend310"])
    assert whole["label"] == ESTIMATE_LABEL


# -- device files -----------------------------------------------------------------------------------------------
def test_an_om_without_its_onnx_graph_cannot_be_simulated(tmp_path):
    om = tmp_path / "search.om"
    om.write_bytes(b"\x00compiled for the chip")
    with pytest.raises(BackendError, match=r"(?s)compiled for the chip and runs only there.*backend='acl'"):
        SimulatorBackend().load(om, "ascend310")


# -- the Tracker on the simulator -------------------------------------------------------------------------------
def test_tracker_runs_cpu_and_ascend_bundles_on_the_simulator_alike(bundles, caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceOverflowWarning)
        with caplog.at_level("INFO", logger="edgetrack.backends.simulator"):
            on_the_fly = Tracker(bundles["cpu"], backend="simulator", device="ascend310")
        assert "on-the-fly Ascend view" in caplog.text
        ascend = Tracker(bundles["a310"], backend="simulator")  # device None: the bundle's chip
        assert ascend.device == "npu" and on_the_fly.backend == "simulator"
        np.testing.assert_array_equal(_track(on_the_fly), _track(ascend))


def test_with_an_fp16_safe_head_the_simulated_track_stays_close_to_fp32(bundles):
    # The untrained net's scale maps nearly tie: SiamFC's scale penalty (not the default 1.0) keeps fp16 rounding
    # from flipping the chosen scale, so the comparison measures the arithmetic, not a tie-break.
    tracking = {"scale_penalty": 0.9745}
    fp32 = _track(Tracker(bundles["safe"], tracking=tracking))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeviceOverflowWarning)
        boxes = {chip: _track(Tracker(bundles["safe"], backend="simulator", device=chip, tracking=tracking))
                 for chip in ("ascend310",)}
    for chip, b in boxes.items():
        assert np.abs(b - fp32).max() < 0.5, (chip, np.abs(b - fp32).max())


def test_targets_the_backend_cannot_run_are_typed_errors(bundles):
    with pytest.raises(BundleError, match=r"(?s)targets ascend310.*'onnxruntime' backend.*backend='simulator'"):
        Tracker(bundles["a310"], backend="onnxruntime", device="cuda")
    with pytest.raises(BundleError, match=r"(?s)targets 'cpu'.*no \.om files.*backend='simulator'"):
        Tracker(bundles["cpu"], backend="acl")  # said before "pyACL is not installed"
    with pytest.raises(BundleError, match=r"(?s)device files were not built.*backend='simulator'"):
        Tracker(bundles["a310"], backend="acl")
    # backend="auto" never runs an NPU bundle on the CPU: it asks for the device runtime.
    with pytest.raises(MissingDependencyError, match=r"(?s)CANN.*set_env.sh.*backend='simulator'"):
        Tracker(bundles["a310"])

