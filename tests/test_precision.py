"""fp16 / int8 bundles and --target cuda, on siamfc-tiny at one scale (int8 also on siamrpn-tiny) and a two-sequence
synthetic data set."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("skimage", reason="the synthetic data generator uses scikit-image's photos ([eval] extra)")

from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.cli import main  # noqa: E402
from edgetrack.converters.precision import (  # noqa: E402
    DEFAULT_VERIFY_FRAMES,
    CropSet,
    apply_precision,
    check_request,
    fp16_storage,
    sample_crops,
)
from edgetrack.converters.torch2onnx import export_siamfc_onnx, siamfc_bundle  # noqa: E402
from edgetrack.errors import BackendError, DatasetError, InvalidArgumentError  # noqa: E402
from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc  # noqa: E402
from edgetrack.tracking.siamfc import SiamFCParams  # noqa: E402

SCALES = 1


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("precision")


@pytest.fixture(scope="module")
def ckpt(root):
    torch.manual_seed(0)
    model = build_siamfc("siamfc-tiny")
    for m in model.modules():  # non-trivial BatchNorm statistics, as in test_torch2onnx
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return save_siamfc(model.eval(), root / "tiny.safetensors")


@pytest.fixture(scope="module")
def data(root):
    from edgetrack.data.synth import SynthConfig, generate

    out = generate(SynthConfig(sequences=2, frames=6, size=(160, 120), seed=3, pairs=False), root / "synth",
                   progress=False)
    return f"synthetic:{out}"


def bundle(root, ckpt, name, **kwargs):
    return load_bundle(siamfc_bundle(ckpt, root / name, scales=SCALES, **kwargs))


@pytest.fixture(scope="module")
def fp32(root, ckpt):
    return bundle(root, ckpt, "fp32")


@pytest.fixture(scope="module")
def fp16_cpu(root, ckpt):
    return bundle(root, ckpt, "fp16-cpu", precision="fp16")


@pytest.fixture(scope="module")
def fp16_cuda(root, ckpt, data):
    pytest.importorskip("onnxconverter_common")
    return bundle(root, ckpt, "fp16-cuda", target="cuda", precision="fp16", verify_data=data)


@pytest.fixture(scope="module")
def int8_cpu(root, ckpt, data):
    return bundle(root, ckpt, "int8-cpu", precision="int8", calibration=data, calibration_frames=4)


def run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def rel_error(got, expected):
    return float(np.max(np.abs(got.astype(np.float64) - expected)) / np.max(np.abs(expected)))


def real_crop(data):
    crops = sample_crops(data, 1, SiamFCParams(scale_num=SCALES))
    return crops.template(0), crops.search(0)


def initializer_types(path):
    return {i.data_type for i in onnx.load(str(path)).graph.initializer if len(i.dims) and np.prod(i.dims) >= 16}


# ----------------------------------------------------------------------------------------------- fp16 storage
def test_fp16_storage_halves_the_weights_and_computes_in_fp32(fp16_cpu, fp32, data):
    m = fp16_cpu.manifest
    assert (m.target, m.precision) == ("cpu", "fp16")
    assert m.source["precision"]["compute"] == "fp32"
    assert "storage" in m.notes and "fp32" in m.notes
    z, x = real_crop(data)
    for graph, feeds in (("template", {"z": z}), ("search", {"x": x})):
        path, ref = fp16_cpu.graph_path(graph), fp32.graph_path(graph)
        assert initializer_types(path) == {onnx.TensorProto.FLOAT16}
        assert rel_error(run(path, feeds), run(ref, feeds)) < 1e-2
    # The weights (shared by template and search in weights.bin) take half the bytes; the 4096-byte alignment of
    # each of siamfc-tiny's small tensors keeps the ratio above 0.5 (a real model comes close to it).
    ratio = fp16_cpu.file_path("weights.bin").stat().st_size / fp32.file_path("weights.bin").stat().st_size
    assert 0.45 < ratio < 0.75, ratio
    for stage in ("onnx-fp32->fp16 random", "torch->fp16 random"):
        rows = m.parity[stage]
        assert set(rows) == {"template", "search", "head", "chain"}
        assert all(r["passed"] and r["max_rel"] < 1e-2 and r["tolerance"] == 1e-2 for r in rows.values())
    # No data set was named: only random inputs were checked.
    assert not any("crops" in stage for stage in m.parity)


def test_fp16_storage_keeps_tensors_fp16_cannot_hold(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    big = numpy_helper.from_array(np.full((4, 4), 1e5, np.float32), "big")
    small = numpy_helper.from_array(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "small")
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "big"], ["t"]), helper.make_node("Add", ["t", "small"], ["b"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 4])], [big, small],
    )
    src = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(src))
    out = fp16_storage(src, tmp_path / "g16.onnx")
    types = {i.name: i.data_type for i in onnx.load(str(out)).graph.initializer}
    assert types == {"big": TensorProto.FLOAT, "small_fp16": TensorProto.FLOAT16}
    a = np.zeros((4, 4), np.float32)
    np.testing.assert_allclose(run(out, {"a": a}), run(src, {"a": a}), atol=1e-3)


# --------------------------------------------------------------------------------------- fp16 compute (cuda)
def test_cuda_fp16_graphs_compute_in_fp16_with_float32_io(fp16_cuda, fp32, data):
    m = fp16_cuda.manifest
    assert (m.target, m.precision) == ("cuda", "fp16")
    assert m.source["precision"]["compute"] == "fp16"
    assert m.source["precision"]["graphs"] == {"template": "fp16 compute", "search": "fp16 compute", "head": "fp32"}
    for graph in ("template", "search"):
        model = onnx.load(str(fp16_cuda.graph_path(graph)))
        onnx.checker.check_model(model, full_check=True)
        assert onnx.TensorProto.FLOAT16 in initializer_types(fp16_cuda.graph_path(graph))
        # keep_io_types: the runtime feeds the same float32 crops as for fp32 bundles.
        for value in (*model.graph.input, *model.graph.output):
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [t.dtype for t in m.graphs[graph].inputs] == ["float32"]
    assert fp16_cuda.manifest.graphs["head"].sha256 == fp32.manifest.graphs["head"].sha256
    # Real crops were checked (verify_data), against fp32 ONNX and torch, graph by graph and end to end.
    for stage in ("onnx-fp32->fp16 crops", "torch->fp16 crops"):
        assert m.parity[stage]["chain"]["passed"] and m.parity[stage]["chain"]["samples"] == DEFAULT_VERIFY_FRAMES
    _, x = real_crop(data)
    assert rel_error(run(fp16_cuda.graph_path("search"), {"x": x}), run(fp32.graph_path("search"), {"x": x})) < 1e-2


def test_cuda_bundle_runs_on_the_cpu_when_asked_and_never_falls_back(fp16_cuda, moving_target_sequence):
    import edgetrack

    # A cuda bundle holds portable ONNX graphs: device="cpu" is the user's explicit choice (CI without a GPU runs
    # the very bundle the robot gets), so it is allowed.
    seq = moving_target_sequence(n=3)
    tracker = edgetrack.Tracker(fp16_cuda.path, device="cpu")
    tracker.init(seq.frame(0), seq.init_box)
    result = tracker.update(seq.frame(1))
    assert np.all(np.isfinite(result.box)) and 0 <= result.score <= 1
    # Asking for CUDA where ONNX Runtime has no CUDA provider is an error, never a silent CPU run.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the refusal cannot be observed here")
    with pytest.raises(BackendError, match="CUDAExecutionProvider"):
        edgetrack.Tracker(fp16_cuda.path, device="cuda")


# ----------------------------------------------------------------------------------------------------- int8
def test_int8_is_a_calibrated_qdq_graph_that_runs(int8_cpu, fp32, data):
    m = int8_cpu.manifest
    assert (m.target, m.precision) == ("cpu", "int8")
    for graph in ("template", "search"):
        model = onnx.load(str(int8_cpu.graph_path(graph)))
        ops = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
        assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 13
        assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}  # no ONNX Runtime-only domains left
    z, x = real_crop(data)
    got = run(int8_cpu.graph_path("search"), {"x": x})
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert rel_error(got, run(fp32.graph_path("search"), {"x": x})) < 0.25
    calibration = m.source["calibration"]
    assert calibration["data"] == data and calibration["samples"] == 4 and calibration["method"] == "MinMax"
    assert sum(len(v) for v in calibration["frames"].values()) == 4
    assert "AMCT" in calibration["note"]
    assert m.tools["int8_onnx_opset"] == 13 and m.tools["onnx_opset"] == 11  # head: the export's opset
    # Real crops (other frames of the calibration set) are held to the sanity bound; random noise is reported only.
    assert all(r["passed"] for r in m.parity["onnx-fp32->int8 crops"].values())
    assert all(r["passed"] is None and "tolerance" not in r for r in m.parity["onnx-fp32->int8 random"].values())
    assert m.source["verification"]["data"] == data


def test_int8_without_calibration_is_refused_before_the_export(root, ckpt, capsys):
    with pytest.raises(InvalidArgumentError, match="--calibration"):
        siamfc_bundle(ckpt, root / "int8-none", precision="int8")
    assert not (root / "int8-none").exists()
    out = root / "int8-cli"
    argv = ["convert", str(ckpt), "--model", "siamfc-tiny", "--target", "cpu", "--precision", "int8", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--calibration" in err and "int8" in err
    assert not out.exists()


def test_bad_calibration_path_is_refused_before_the_export(root, ckpt, capsys):
    out = root / "int8-bad"
    argv = ["convert", str(ckpt), "--model", "siamfc-tiny", "--target", "cpu", "--precision", "int8", "-o", str(out),
            "--calibration", f"synthetic:{root / 'nowhere'}"]
    assert main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_precision_is_for_onnx_runtime_targets_only():
    with pytest.raises(InvalidArgumentError, match="ATC"):
        check_request("fp16", "ascend310")
    with pytest.raises(InvalidArgumentError, match="precision"):
        check_request("bf16", "cpu")


# ------------------------------------------------------------------------------------------------ real crops
def test_sample_crops_spreads_over_sequences_and_phases_differ(data):
    params = SiamFCParams(scale_num=SCALES)
    a = sample_crops(data, 4, params, phase=0.25)
    b = sample_crops(data, 4, params, phase=0.75)
    assert isinstance(a, CropSet) and len(a) == 4
    assert a.z.dtype == np.uint8 and a.z.shape == (4, 3, 127, 127)
    assert a.x.shape == (4, SCALES, 3, 255, 255) and a.z0.shape == (4, 3, 127, 127)
    # Two sequences x two variants (sharp, blurred): one sample each, each with its own first-frame template.
    assert len(a.provenance["frames"]) == 4 and list(a.template_of) == [0, 1, 2, 3]
    assert a.provenance["frames"] != b.provenance["frames"]
    assert a.search(0).dtype == np.float32 and a.first_template(0).shape == (1, 3, 127, 127)


def test_sample_crops_needs_annotated_sequences(tmp_path):
    from edgetrack.data.synth import SynthConfig, generate

    out = generate(SynthConfig(sequences=1, frames=3, size=(96, 72), seed=1, pairs=True), tmp_path / "s",
                   progress=False)
    with pytest.raises(DatasetError, match="annotated"):
        sample_crops(f"gopro:{out}/gopro#train", 2, SiamFCParams())
    with pytest.raises(InvalidArgumentError):
        sample_crops(f"synthetic:{out}", 0, SiamFCParams())


def test_fp32_with_verify_data_checks_real_crops_too(tmp_path, ckpt, data):
    from edgetrack.converters.precision import torch_reference
    from edgetrack.models.torch.siamfc import load_siamfc

    model = load_siamfc(ckpt)
    params = SiamFCParams(scale_num=SCALES)
    paths = export_siamfc_onnx(model, tmp_path / "o", scales=SCALES)
    result = apply_precision(paths, tmp_path, precision="fp32", target="cpu", params=params,
                             reference=torch_reference(model), verify_data=data, verify_frames=2)
    assert result.paths == paths
    rows = result.parity["torch->onnx crops"]
    assert all(r["passed"] and r["max_rel"] < 1e-4 and r["inputs"] == "crops" for r in rows.values())
    assert "precision" not in result.source and result.source["verification"]["samples"] == 2


# ------------------------------------------------------------------------------------------------------ CLI
def test_convert_cli_fp16_prints_the_table_and_inspect_shows_it(root, ckpt, capsys):
    out = root / "cli-fp16"
    argv = ["convert", str(ckpt), "--model", "siamfc-tiny", "--target", "cpu", "--precision", "fp16", "-o", str(out),
            "--scales", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for word in ("onnx-fp32->fp16 random", "torch->fp16 random", "chain", "max rel err", "target cpu, fp16"):
        assert word in text, word
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "precision:      fp16" in text and '"compute": "fp32"' in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notes"].startswith("fp16 storage")


def test_cuda_fp32_bundle_is_the_cpu_graphs_with_target_cuda(root, ckpt, fp32):
    cuda = bundle(root, ckpt, "fp32-cuda", target="cuda")
    assert (cuda.manifest.target, cuda.manifest.precision) == ("cuda", "fp32")
    assert {n: g.sha256 for n, g in cuda.manifest.graphs.items()} == {
        n: g.sha256 for n, g in fp32.manifest.graphs.items()}
    assert cuda.manifest.device_files_built


def test_cuda_int8_is_symmetric_and_can_quantize_the_head(tmp_path, ckpt, data):
    from onnx import numpy_helper

    from edgetrack.models.torch.siamfc import load_siamfc

    params = SiamFCParams(scale_num=SCALES)
    paths = export_siamfc_onnx(load_siamfc(ckpt), tmp_path / "o", scales=SCALES)
    result = apply_precision(paths, tmp_path, precision="int8", target="cuda", params=params, calibration=data,
                             calibration_frames=2, verify_frames=2, int8_head=True)
    assert result.source["precision"]["graphs"] == {g: "int8 compute" for g in ("template", "search", "head")}
    assert result.source["calibration"]["graphs"] == ["template", "search", "head"]
    for graph in ("template", "search", "head"):
        model = onnx.load(str(result.paths[graph]))
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
        # TensorRT reads symmetric int8: every activation zero point is an int8 zero.
        assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert all(r["passed"] for r in result.parity["onnx-fp32->int8 crops"].values())


# ------------------------------------------------------------------------------------------------ SiamRPN int8
@pytest.fixture(scope="module")
def rpn_ckpt(root):
    from edgetrack.models.torch.siamrpn import save_siamrpn
    from torch_helpers import tiny_siamrpn

    return save_siamrpn(tiny_siamrpn(), root / "rpn-tiny.safetensors")  # non-trivial BN statistics, as siamfc-tiny


@pytest.fixture(scope="module")
def rpn_int8(root, rpn_ckpt, data):
    """`edgetrack convert --precision int8` of a SiamRPN checkpoint, end to end through the CLI."""
    out = root / "rpn-int8"
    argv = ["convert", str(rpn_ckpt), "--model", "siamrpn-tiny", "--target", "cpu", "--precision", "int8",
            "--calibration", data, "--calibration-frames", "4", "-o", str(out)]
    assert main(argv) == 0
    return load_bundle(out)


def test_crops_are_cut_by_the_family_s_own_tracking_code(data):
    from edgetrack.tracker import tracking_class
    from edgetrack.data import open_dataset
    from edgetrack.tracking.siamfc import SiamFCTracking
    from edgetrack.tracking.siamrpn import SiamRPNParams, SiamRPNTracking

    assert tracking_class(SiamFCParams()) is SiamFCTracking
    assert tracking_class(SiamRPNParams()) is SiamRPNTracking
    with pytest.raises(InvalidArgumentError, match="SiamRPNParams"):
        tracking_class(object())
    params = SiamRPNParams()
    crops = sample_crops(data, 2, params)
    assert crops.x.shape == (2, 1, 3, 255, 255)  # SiamRPN searches one crop, its anchors cover scale
    assert "SiamRPNTracking" in crops.provenance["crops"]
    # Sample 0 is exactly what SiamRPNTracking cuts: the template at frame i-1's box, the search around it in frame i.
    (name, (i,)), = list(crops.provenance["frames"].items())[:1]
    seq = next(s for d in open_dataset(data) for s in d.sequences if f"{s.dataset}/{s.name}" == name)
    logic = SiamRPNTracking(params)
    np.testing.assert_array_equal(crops.template(0), logic.init(seq.frame(i - 1), seq.boxes[i - 1]))
    np.testing.assert_array_equal(crops.search(0), logic.search_crops(seq.frame(i)))


def test_siamrpn_int8_keeps_eca_gates_whole(rpn_int8, fp32):
    from onnx import numpy_helper

    from edgetrack.converters.precision import channel_gates

    assert channel_gates(onnx.load(str(fp32.graph_path("search")))).gates == ()  # SiamFC has none
    model = onnx.load(str(rpn_int8.graph_path("search")))
    nodes = model.graph.node
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in nodes for o in n.output}
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    pools = [n for n in nodes if n.op_type == "GlobalAveragePool"]
    # ECA's squeeze path (pool, 1-D conv, sigmoid) computes in fp32: the pool's output is never quantized...
    assert pools and not any("QuantizeLinear" in consumers[p.output[0]] for p in pools)
    # ...and each gate is quantized over the sigmoid's whole range, not the calibrated one.
    def made_by(tensor, op):
        return tensor in producer and producer[tensor].op_type == op

    gates = [n for n in nodes if n.op_type == "QuantizeLinear" and made_by(n.input[0], "Reshape")
             and made_by(producer[n.input[0]].input[0], "Sigmoid")]
    assert len(gates) == len(pools)
    for q in gates:
        assert inits[q.input[1]] == np.float32(1 / 255) and inits[q.input[2]] == 0


def test_siamrpn_int8_bundle_records_its_parity_and_tracks(rpn_int8, data, moving_target_sequence):
    import edgetrack

    m = rpn_int8.manifest
    assert (m.family, m.target, m.precision) == ("siamrpn", "cpu", "int8")
    assert m.source["precision"]["graphs"] == {"template": "int8 compute", "search": "int8 compute", "head": "fp32"}
    for graph in ("template", "search"):
        ops = {n.op_type for n in onnx.load(str(rpn_int8.graph_path(graph))).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    calibration = m.source["calibration"]
    assert calibration["data"] == data and calibration["samples"] == 4
    assert "SiamRPNTracking" in calibration["crops"]
    # Both heads' outputs (cls, loc) are compared, graph by graph and through the whole chain, on real crops
    # (other frames of the calibration set) against fp32 ONNX and torch; random inputs are reported only.
    for stage in ("onnx-fp32->int8 crops", "torch->int8 crops"):
        rows = m.parity[stage]
        assert set(rows) == {"template", "search", "head", "chain"}
        assert all(r["passed"] and r["samples"] == DEFAULT_VERIFY_FRAMES for r in rows.values())
    assert m.parity["onnx-fp32->int8 crops"]["head"]["max_abs"] == 0  # the head stays fp32
    assert all(r["passed"] is None for r in m.parity["onnx-fp32->int8 random"].values())

    seq = moving_target_sequence(n=4)
    tracker = edgetrack.Tracker(rpn_int8.path)
    tracker.init(seq.frame(0), seq.init_box)
    for i in range(1, len(seq)):
        result = tracker.update(seq.frame(i))
        assert np.all(np.isfinite(result.box)) and 0 <= result.score <= 1
