"""The 'torch' backend (edgetrack.backends.torchcuda): bundle graphs through onnx2torch, equal to ONNX Runtime.

Runs on the CPU here; the tests marked ``cuda`` run where PyTorch sees a GPU (CUDA-graph capture, threads sharing a
captured session, the Tracker on cuda). Tiny models only.
"""
import importlib.util
import subprocess
import sys
import textwrap
import threading

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
if importlib.util.find_spec("onnx2torch") is None:  # not importorskip: importing it needs torchvision (see below)
    pytest.skip("onnx2torch is not installed (pip install --no-deps onnx2torch==1.5.15)", allow_module_level=True)

from edgetrack import Tracker  # noqa: E402
from edgetrack.backends import BACKENDS, AUTO_ORDER, get_backend  # noqa: E402
from edgetrack.backends import torchcuda  # noqa: E402
from edgetrack.backends.torchcuda import ENV_CUDA_GRAPHS, TorchBackend  # noqa: E402
from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.errors import BackendError, InvalidArgumentError, MissingDependencyError  # noqa: E402

pytestmark = pytest.mark.torch
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a GPU that PyTorch can use")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the error raised where PyTorch sees no GPU")
FP32_TOL = 1e-4  # relative to the output's largest magnitude
# ONNX Runtime's CPU provider runs an fp16 graph in fp32 (it wraps fp16 ops in Casts and then cancels the Cast pairs);
# PyTorch computes it in fp16. The two differ by fp16 rounding, which the tiny nets keep near 1e-3.
FP16_TOL = 1e-2
# On a GPU fp32 convolutions run in TF32 (PyTorch's cuDNN default): 10-bit mantissas.
TF32_TOL = 5e-3


@pytest.fixture
def ieee_fp32():
    """fp32 convolutions in fp32 rather than TF32 (PyTorch's cuDNN default on Ampere and newer), so that results
    compare as tightly as on the CPU: the untrained tiny nets have near-ties that TF32 rounding can flip."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before

from torch_helpers import single_torch_thread, trained_like_deblurgan  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


def _trained_like_deblurrer():
    return trained_like_deblurgan(seed=1, bn_affine=False)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Tiny SiamFC, tiny SiamRPN (BatchNorm statistics moved off identity), SiamRPN + a deblur stage, and the
    SiamRPN at --target cuda --precision fp16, without and with a deblur stage (fp16 too)."""
    from edgetrack.converters.deblur2onnx import add_deblur
    from edgetrack.converters.torch2onnx import siamfc_bundle, siamrpn_bundle, tracker_bundle
    from edgetrack.models.torch.deblurgan import save_deblurgan
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc
    from edgetrack.models.torch.siamrpn import build_siamrpn, save_siamrpn

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("torch-backend")
    torch.manual_seed(0)
    fc = save_siamfc(build_siamfc("siamfc-tiny").eval(), root / "fc.safetensors")
    rpn_model = build_siamrpn("siamrpn-tiny")
    with torch.no_grad():
        for m in rpn_model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    rpn = save_siamrpn(rpn_model.eval(), root / "rpn.safetensors")
    deblur = save_deblurgan(_trained_like_deblurrer(), root / "deblur.safetensors")
    out = {
        "siamfc": siamfc_bundle(fc, root / "siamfc"),
        "siamrpn": siamrpn_bundle(rpn, root / "siamrpn"),
        "rpn_fp16": tracker_bundle(rpn, root / "rpn-fp16", family="siamrpn", target="cuda", precision="fp16"),
    }
    out["deblur"] = add_deblur(out["siamrpn"], deblur, root / "deblur")
    out["deblur_fp16"] = add_deblur(out["rpn_fp16"], deblur, root / "deblur-fp16", precision="fp16")
    return out


def _feeds(session, seed=0):
    """Random inputs of each input's shape: crops in pixel units, features and kernels around unit scale."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in session.get_inputs():
        scale = 255.0 if i.name in ("z", "x", "crop") else 1.0
        feeds[i.name] = (rng.random(i.shape) * scale).astype(np.float32)
    return feeds


def _tensors(session):
    return list(session._module.parameters()) + list(session._module.buffers())


def _rel(got, ref):
    return float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-12))


def _compare_graphs(bundle_path, device, tol):
    bundle = load_bundle(bundle_path)
    backend = TorchBackend()
    checked = {}
    for name in bundle.manifest.graphs:
        path = bundle.graph_path(name)
        reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = _feeds(reference)
        expected = dict(zip([o.name for o in reference.get_outputs()], reference.run(None, feeds)))
        session = backend.load(path, device)
        for run in range(3 if device != "cpu" else 1):  # on cuda: eager, then captured, then replayed
            got = session.run(feeds)
            assert set(got) == set(expected)
            for key in expected:
                assert got[key].shape == expected[key].shape and got[key].dtype == expected[key].dtype
                rel = _rel(got[key], expected[key])
                assert rel <= tol, f"{name}.{key} run {run}: relative error {rel:.2e} > {tol:g}"
        checked[name] = session
    return checked


# -- graphs ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["siamfc", "siamrpn", "deblur"])
def test_every_graph_equals_onnxruntime(bundles, which):
    sessions = _compare_graphs(bundles[which], "cpu", FP32_TOL)
    expected = {"siamfc": {"template", "search", "head"}, "siamrpn": {"template", "search", "head"},
                "deblur": {"template", "search", "head", "deblur_template", "deblur_search"}}[which]
    assert set(sessions) == expected
    for s in sessions.values():
        assert s.device == "cpu" and s.mode == "eager" and not s.cuda_graphs and s.cuda_graph_error is None


@pytest.mark.parametrize("which", ["rpn_fp16", "deblur_fp16"])
def test_fp16_graphs_compute_in_fp16_and_take_their_declared_inputs(bundles, which):
    sessions = _compare_graphs(bundles[which], "cpu", FP16_TOL)
    if which == "deblur_fp16":
        assert torch.float16 in {t.dtype for t in _tensors(sessions["deblur_search"])}
    search = sessions["search"]
    assert search.input_dtypes["x"] == np.float32  # keep_io_types: the tracker's fp32 crops go in unchanged
    assert torch.float16 in {t.dtype for t in _tensors(search)}
    # The head stays fp32 (precision.py says why).
    assert {t.dtype for t in _tensors(sessions["head"]) if t.is_floating_point()} == {torch.float32}


def test_shipped_fp16_storage_bundle_runs_at_fp32_with_its_weights_cast_once():
    from edgetrack.tracker import _shipped

    shipped = _shipped()
    if "siamrpn-eca" not in shipped:
        pytest.skip("the shipped siamrpn-eca bundle is not installed")
    sessions = _compare_graphs(shipped["siamrpn-eca"], "cpu", FP32_TOL)
    search = sessions["search"]
    # Its weights are fp16 behind a Cast in the file: converted once at load, not at every run.
    assert search.notes["constant_nodes_to_initializers"] > 0
    assert {t.dtype for t in _tensors(search) if t.is_floating_point()} == {torch.float32}
    assert "OnnxCast" not in {type(m).__name__ for m in search._module.modules()}


def test_load_time_passes_leave_no_shape_read_on_the_device(bundles):
    """Slice/Reshape/... read their shape inputs into Python: those must be CPU values, never device tensors."""
    sessions = {(which, g): TorchBackend().load(load_bundle(bundles[which]).graph_path(g), "cpu")
                for which, g in (("siamrpn", "head"), ("siamrpn", "template"), ("deblur", "deblur_search"),
                                 ("siamfc", "head"))}
    # The grouped-Conv head (ONNX Runtime bundles): the kernel's Reshape and the cls/loc channel Slices. (The
    # elementwise head that Ascend bundles carry has 62: one Slice per kernel position and branch.)
    assert sessions[("siamrpn", "head")].notes["host_shape_inputs"] >= 2
    assert sessions[("deblur", "deblur_search")].notes["host_shape_inputs"] > 0  # Resize scales among them
    for session in sessions.values():
        gm = session._module
        for node in gm.graph.nodes:
            if node.op == "call_module":
                kind = type(gm.get_submodule(node.target)).__name__
                assert kind not in torchcuda._HOST_ARG_MODULES, f"{kind} still takes its shape inputs as tensors"
        names = {type(m).__name__ for m in gm.modules()}
        assert "OnnxSlice" not in names and "OnnxConstant" not in names
    # SiamFC's head correlates with the template kernel as a Conv whose weight is an input.
    assert sessions[("siamfc", "head")].notes["runtime_weight_convs"] == 1


def test_static_shapes_missing_inputs_and_dtypes(bundles):
    path = load_bundle(bundles["siamrpn"]).graph_path("template")
    session = TorchBackend().load(path, "cpu")
    assert session.input_names == ("z",) and session.output_names == ("kernel",)
    with pytest.raises(InvalidArgumentError, match="static shape"):
        session.run({"z": np.zeros((1, 3, 100, 100), np.float32)})
    with pytest.raises(InvalidArgumentError, match="needs input"):
        session.run({"x": np.zeros((1, 3, 127, 127), np.float32)})
    # Another dtype is converted to the graph's declared one (as the crops are float32 already, a no-op there).
    a = session.run({"z": np.full((1, 3, 127, 127), 7, np.uint8)})["kernel"]
    b = session.run({"z": np.full((1, 3, 127, 127), 7.0, np.float32)})["kernel"]
    np.testing.assert_array_equal(a, b)


# -- Tracker ---------------------------------------------------------------------------------------------------------
def _frames(n=6, size=(160, 120)):
    frames, boxes = [], []
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 255, (24, 30, 3), np.uint8)
    for i in range(n):
        f = np.full((size[1], size[0], 3), 100, np.uint8)
        x, y = 40 + 5 * i, 30 + 3 * i
        f[y:y + 24, x:x + 30] = texture
        cv2.circle(f, (x + 8, y + 6), 4, (240, 240, 40), -1)
        frames.append(f)
        boxes.append((x, y, 30, 24))
    return frames, boxes


def _track(tracker, frames, box):
    tracker.init(frames[0], box)
    return [tracker.update(f) for f in frames[1:]]


@pytest.mark.parametrize("which,deblur", [("siamfc", "auto"), ("siamrpn", "auto"), ("deblur", "always")])
def test_tracker_gives_the_boxes_onnxruntime_gives(bundles, which, deblur):
    frames, boxes = _frames()
    reference = _track(Tracker(bundles[which], backend="onnxruntime", device="cpu", deblur=deblur), frames, boxes[0])
    tracker = Tracker(bundles[which], backend="torch", device="cpu", deblur=deblur)
    assert tracker.backend == "torch" and tracker.device == "cpu"
    got = _track(tracker, frames, boxes[0])
    for r, e in zip(got, reference):
        np.testing.assert_allclose(r.box, e.box, atol=1e-3)
        assert abs(r.score - e.score) < 1e-4 and r.lost == e.lost
    if deblur == "always":
        stats = tracker.stats  # the template crop at init, then every search crop
        assert stats.template_deblurred and stats.deblurred == stats.frames == len(frames) - 1
    tracker.close()


def test_one_session_serves_several_threads(bundles):
    path = load_bundle(bundles["siamrpn"]).graph_path("search")
    session = TorchBackend().load(path, "cpu")
    inputs = [{"x": (np.random.default_rng(i).random((1, 3, 255, 255)) * 255).astype(np.float32)} for i in range(4)]
    expected = [session.run(f)["features"] for f in inputs]
    got, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(2):
                got[i] = session.run(inputs[i])["features"]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


# -- registration, options, errors -----------------------------------------------------------------------------------
def test_registered_but_not_chosen_by_auto():
    assert BACKENDS["torch"] == "edgetrack.backends.torchcuda:TorchBackend"
    assert "torch" not in AUTO_ORDER
    backend = get_backend("torch")
    assert backend.name == "torch" and backend.is_available() and backend.default_device == "cuda"


def test_options_and_the_environment_switch(monkeypatch):
    monkeypatch.delenv(ENV_CUDA_GRAPHS, raising=False)
    assert TorchBackend().cuda_graphs is True and TorchBackend().channels_last is False
    monkeypatch.setenv(ENV_CUDA_GRAPHS, "0")
    assert TorchBackend().cuda_graphs is False
    assert TorchBackend(cuda_graphs=True).cuda_graphs is True  # the argument wins over the environment
    with pytest.raises(InvalidArgumentError, match="cuda_graphs"):
        TorchBackend(cuda_graphs="yes")


@no_cuda
def test_cuda_without_cuda_is_an_error_not_a_cpu_fallback(bundles):
    path = load_bundle(bundles["siamfc"]).graph_path("template")
    for device in ("cuda", "cuda:0", "CUDA:1"):
        with pytest.raises(BackendError, match="needs CUDA") as err:
            TorchBackend().load(path, device)
        assert "device='cpu'" in str(err.value) and "CUDA build of PyTorch" in str(err.value)
    with pytest.raises(BackendError, match="needs CUDA"):
        Tracker(bundles["siamfc"], backend="torch")  # the backend's default device is cuda


def test_bad_graph_files_are_backend_errors(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    with pytest.raises(BackendError, match="cannot read ONNX graph"):
        TorchBackend().load(garbage, "cpu")
    with pytest.raises(BackendError, match="does not exist"):
        TorchBackend().load(tmp_path / "missing.onnx", "cpu")
    om = tmp_path / "search.om"
    om.write_bytes(b"OM")
    with pytest.raises(BackendError, match="runs ONNX graphs"):
        TorchBackend().load(om, "cpu")
    from edgetrack.errors import UnknownChoiceError

    with pytest.raises(UnknownChoiceError):
        TorchBackend().load(garbage, "npu")


def test_an_operator_onnx2torch_lacks_is_named(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Det", ["a"], ["b"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [])])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    with pytest.raises(BackendError, match="cannot convert.*Det"):
        TorchBackend().load(path, "cpu")


def test_missing_onnx2torch_names_the_package_and_the_safe_install(monkeypatch):
    real = torchcuda.module_available
    monkeypatch.setattr(torchcuda, "module_available", lambda m: m != "onnx2torch" and real(m))
    with pytest.raises(MissingDependencyError) as err:
        get_backend("torch")
    assert err.value.package == "onnx2torch" and "--no-deps onnx2torch==" in str(err.value)
    monkeypatch.setattr(torchcuda, "module_available", lambda m: m != "torch" and real(m))
    with pytest.raises(MissingDependencyError) as err:
        get_backend("torch")
    assert err.value.package == "torch"


def test_onnx2torch_imports_without_torchvision_and_leaves_no_stand_in(bundles):
    """onnx2torch imports torchvision for NMS/RoiAlign only; without it, the backend still converts our graphs."""
    code = textwrap.dedent(f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torchvision":
                    raise ImportError("torchvision is blocked in this test")
        sys.meta_path.insert(0, _Block())
        import numpy as np
        from edgetrack.backends.torchcuda import TorchBackend
        s = TorchBackend().load({str(load_bundle(bundles["siamfc"]).graph_path("template"))!r}, "cpu")
        assert s.run({{"z": np.zeros((1, 3, 127, 127), np.float32)}})["kernel"].ndim == 4
        assert "torchvision" not in sys.modules and "torchvision.ops" not in sys.modules
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


# -- on a GPU --------------------------------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("which", ["siamfc", "siamrpn", "deblur", "rpn_fp16", "deblur_fp16"])
def test_cuda_graphs_equal_onnxruntime(bundles, which):
    tol = FP16_TOL if which.endswith("fp16") else TF32_TOL
    for session in _compare_graphs(bundles[which], "cuda", tol).values():
        assert session.device == "cuda:0" and session.cuda_graph_error is None and session.mode == "cuda-graph"


@needs_cuda
def test_cuda_eager_when_capture_is_off_and_threads_share_a_captured_session(bundles, ieee_fp32):
    path = load_bundle(bundles["siamrpn"]).graph_path("search")
    eager = TorchBackend(cuda_graphs=False).load(path, "cuda")
    captured = TorchBackend(cuda_graphs=True).load(path, "cuda")
    inputs = [{"x": (np.random.default_rng(i).random((1, 3, 255, 255)) * 255).astype(np.float32)} for i in range(6)]
    expected = [eager.run(f)["features"] for f in inputs]
    assert eager.mode == "eager" and eager.cuda_graph_error is None
    for f in inputs[:2]:
        captured.run(f)
    assert captured.mode == "cuda-graph"
    got, errors = [None] * 6, []

    def work(i):
        try:
            for _ in range(5):
                got[i] = captured.run(inputs[i])["features"]
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for g, e in zip(got, expected):
        assert _rel(g, e) <= FP32_TOL  # eager and captured runs may pick different cuDNN algorithms


@needs_cuda
def test_tracker_on_cuda_follows_onnxruntime(bundles, ieee_fp32):
    frames, boxes = _frames(10)
    for which in ("siamfc", "siamrpn"):
        reference = _track(Tracker(bundles[which], backend="onnxruntime", device="cpu"), frames, boxes[0])
        trackers = [Tracker(bundles[which], backend="torch", device="cuda") for _ in range(3)]
        results = [None] * 3

        def work(i):
            results[i] = _track(trackers[i], frames, boxes[0])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for got in results:
            for r, e in zip(got, reference):
                np.testing.assert_allclose(r.box, e.box, atol=1e-2)
        # Crops, graphs and decode as one CUDA graph a frame (the device path, each family's default on CUDA).
        assert trackers[0].device_tracking and trackers[0]._program.mode == "cuda-graph"


# -- benchmarks/gpu_speed.py -----------------------------------------------------------------------------------------
def _gpu_speed():
    from bundle_helpers import load_benchmark

    return load_benchmark("gpu_speed")


def test_gpu_speed_peak_table_and_share():
    gs = _gpu_speed()
    assert gs.gpu_peak("NVIDIA H100 80GB HBM3")[0] == "H100 SXM"
    assert gs.gpu_peak("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert gs.gpu_peak("NVIDIA H200")[0] == "H200 SXM" and gs.gpu_peak("NVIDIA H200 NVL")[0] == "H200 NVL"
    assert gs.gpu_peak("NVIDIA GeForce RTX 4090") == ("unknown", {})
    _, peaks = gs.gpu_peak("NVIDIA H200")
    share, used = gs.share_of_peak(1000.0, {"search": 1e9, "head": 1e8}, {"search": "fp16", "head": "fp32"},
                                   peaks, tf32=True)
    assert used == "fp16+tf32"
    assert share == pytest.approx(1000 * (2e9 / 989.4e12 + 2e8 / 494.7e12))
    assert gs.share_of_peak(1000.0, {"search": 1e9}, {"search": "fp16"}, {}, tf32=True) == (None, "unknown")


def test_gpu_speed_smoke_on_the_cpu(bundles, tmp_path, capsys):
    import json

    gs = _gpu_speed()
    out = tmp_path / "gs"
    argv = ["--bundle", str(bundles["siamfc"]), "--bundle", str(bundles["deblur"]), "--device", "cpu",
            "--synthetic", "simple", "--frames", "5", "--size", "160x120", "--warmup", "1", "--measure", "3",
            "--streams", "1,2", "--backends", "torch,onnxruntime", "--cpu-streams", "1,2", "--eager",
            "--deblur", "auto,always", "--out", str(out)]
    assert gs.main(argv) == 0
    data = json.loads((out / "gpu_speed.json").read_text())
    rows = data["rows"]
    assert data["meta"]["gpu"] == "none" and data["meta"]["peak_table"] == "unknown"
    # (torch, torch-eager, onnxruntime) × streams 1 and 2 × (SiamFC, SiamRPN+deblur in modes auto and always)
    assert len(rows) == 3 * 2 * 3
    always = [r for r in rows if r["deblur"] == "always"]
    assert len(always) == 6 and all(r["deblurred_share"] == 1.0 for r in always)
    assert {r["deblur"] for r in rows if r["model"] == "siamfc-tiny"} == {"–"}
    for r in rows:
        assert r["per_stream_fps"] > 0 and r["aggregate_fps"] > 0 and r["gmacs_per_frame"] > 0
        assert r["share_of_peak"] is None  # the CPU has no entry in the GPU peak table
    single = [r for r in rows if r["streams"] == 1]
    for r in single:
        assert r["parity_max_rel"] <= 1e-4 and r["time_to_first_frame_s"] > 0
        assert {"search", "head", "gate", "deblur", "crop", "decode", "other"} <= set(r["stages_ms"])
        assert r["stages_ms"]["crop"] > 0 and r["stages_ms"]["decode"] > 0
        assert 0 < r["outside_graphs_share"] < 1
        assert r["aggregate_fps"] == r["per_stream_fps"]
    assert {r["variant"] for r in rows} == {"torch", "torch-eager", "onnxruntime"}
    assert {r["model"] for r in rows} == {"siamfc-tiny", "deblur-siamrpn"}
    text = (out / "gpu_speed.md").read_text()
    assert "| siamfc-tiny | fp32 | torch | – | cpu | eager | 1 |" in text and "by stage" in text
    assert "outside graphs" in text
    assert "gpu_speed.md" in capsys.readouterr().out


def test_gpu_speed_times_the_device_paths_frame_program(bundles, tmp_path, monkeypatch):
    """With crops and decode on the device the frame is one program: its stage ("frame") counts as the graphs'
    time, the host's halves as crop and decode; on the CPU the program is eager and has no graph to replay."""
    import json

    from edgetrack.backends.torchcuda import ENV_DEVICE_TRACKING

    gs = _gpu_speed()
    monkeypatch.setenv(ENV_DEVICE_TRACKING, "1")
    out = tmp_path / "gs"
    argv = ["--bundle", str(bundles["siamfc"]), "--device", "cpu", "--synthetic", "simple", "--frames", "5",
            "--size", "160x120", "--warmup", "1", "--measure", "3", "--streams", "1", "--backends", "torch",
            "--no-check", "--out", str(out)]
    assert gs.main(argv) == 0
    (row,) = json.loads((out / "gpu_speed.json").read_text())["rows"]
    assert row["mode"] == "frame-eager+device-tracking"
    stages = row["stages_ms"]
    assert stages["frame"] > 0 and stages["crop"] > 0 and stages["decode"] > 0
    assert stages["search"] == stages["head"] == 0  # the sessions' own runs are not used on this path
    assert 0 < row["outside_graphs_share"] < 1 and row["gpu_busy_share"] is None
