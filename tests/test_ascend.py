"""edgetrack.ascend: the chips, the supported-operator audit and static AIPP."""
import subprocess
import sys

import numpy as np
import pytest

from edgetrack.ascend import SOCS, AippConfig, get_soc, load_operator_list, soc_for_version
from edgetrack.errors import InvalidArgumentError, UnknownChoiceError, UnsupportedOperatorError


# -- chips ------------------------------------------------------------------------------------------------------
def test_every_target_is_a_chip_with_cited_figures():
    from edgetrack.commands.convert import ASCEND_TARGETS

    assert set(SOCS) == set(ASCEND_TARGETS)
    for soc in SOCS.values():
        assert soc.soc_versions[0] == soc.default_soc_version
        assert soc.peak_int8_tops == 2 * soc.peak_fp16_tflops  # the cube's 2:1 int8/fp16 rate, as published
        assert soc.compute_precisions == ("fp16", "int8") and soc.atc_precision_mode == "force_fp16"
        assert {"peak", "memory", "soc_version"} <= set(soc.sources)
        assert soc.device_memory_bytes >= 4 << 30


@pytest.mark.parametrize("name, expected", [
    ("ascend310", "ascend310"), ("Ascend 310P", "ascend310p"), ("ascend-310b", "ascend310b"), ("910", "ascend910"),
])
def test_chip_names_parse(name, expected):
    assert get_soc(name).name == expected


def test_unknown_chip_lists_the_valid_ones():
    with pytest.raises(UnknownChoiceError, match="ascend310, ascend310b, ascend310p, ascend910"):
        get_soc("ascend999")
    # A soc_version is not a chip name: Ascend910B is a bin of the 910, not the 910B family.
    with pytest.raises(UnknownChoiceError):
        get_soc("Ascend910B4")


def test_soc_versions():
    assert soc_for_version("ascend310b4").name == "ascend310b"
    assert soc_for_version("Ascend310P3").name == "ascend310p"
    assert get_soc("ascend310p").check_soc_version("ascend310p3") == "Ascend310P3"
    assert get_soc("ascend310").check_soc_version(None) == "Ascend310"
    with pytest.raises(UnknownChoiceError, match="(?s)Ascend310B1.*npu-smi"):
        get_soc("ascend310b").check_soc_version("Ascend310P3")
    with pytest.raises(UnknownChoiceError):
        soc_for_version("Ascend999")


def test_peak_throughput_has_no_fp32():
    soc = get_soc("ascend310")
    assert soc.peak_ops_per_second("fp16") == 8e12 and soc.peak_ops_per_second("int8") == 16e12
    with pytest.raises(UnknownChoiceError, match="fp16"):
        soc.peak_ops_per_second("fp32")


def test_ascend_package_imports_without_onnx_or_torch():
    code = (
        "import sys\n"
        "class B:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'onnx', 'onnxruntime', 'mindspore'}: raise ImportError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "import edgetrack.ascend as a\n"
        "assert len(a.load_operator_list().operators) > 100\n"
        "print(a.AippConfig(4, 4).render().splitlines()[1])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "aipp_op {"


# -- the operator list ------------------------------------------------------------------------------------------
def test_operator_list_covers_the_siamfc_ops_at_opset_11():
    ops = load_operator_list()
    for op in ("Conv", "Relu", "MaxPool", "Add", "Mul", "Slice", "Resize", "BatchNormalization", "Constant",
               "Identity"):
        spec = ops.spec(op)
        assert spec is not None and 11 in spec.opsets, op
        assert spec.doc.startswith("https://www.hiascend.com/"), op
    assert ops.spec("Resize").opsets == (10, 11, 12, 14, 15, 16, 17, 18)  # the list leaves out 13
    assert ops.spec("Constant").opsets[-1] == 13
    assert "Upsample" not in ops.supported() and "QuantizeLinear" not in ops.supported()
    assert ops.spec("ArgMax").listed_as == "Argmax"  # the list's spelling, keyed by the ONNX op_type
    assert ops.spec("Corr").domain == "huawei"


# -- audits of handcrafted graphs -------------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgetrack.ascend.ops import audit_graph  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=11):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def test_unsupported_operator_names_op_node_and_chip():
    model = _model(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant_in"),
         helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dequant_out")],
        [("x", [1, 3, 8, 8])], [("y", [1, 3, 8, 8])],
        inits=[("s", np.float32(0.1)), ("zp", np.uint8(0))],
    )
    onnx.checker.check_model(model)
    with pytest.raises(UnsupportedOperatorError) as err:
        audit_graph(model, "ascend310", graph="qdq")
    e = err.value
    assert (e.op_type, e.node, e.chip) == ("QuantizeLinear", "quant_in", "ascend310")
    assert {f.node for f in e.findings} == {"quant_in", "dequant_out"}
    assert "QuantizeLinear" in str(e) and "'quant_in'" in str(e) and "Ascend 310" in str(e) and "fix:" in str(e)


def test_conv_with_a_runtime_weight_is_allowed_and_reported():
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="xcorr")],
                   [("x", [3, 16, 22, 22]), ("w", [1, 16, 6, 6])], [("y", [3, 1, 17, 17])])
    findings = audit_graph(model, "ascend310p", graph="head")
    assert [(f.severity, f.rule, f.node) for f in findings] == [("info", "conv_runtime_weight", "xcorr")]
    assert "run time" in findings[0].message


def test_conv_limits_and_group():
    w = np.zeros((4, 1, 3, 3), np.float32)
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=4, strides=[64, 64])],
                   [("x", [1, 4, 128, 128])], [("y", [1, 4, 2, 2])], inits=[("w", w)])
    findings = audit_graph(model, "ascend310", raise_errors=False)
    rules = {(f.severity, f.rule) for f in findings}
    assert rules == {("error", "conv_limits"), ("warning", "conv_group_one")}
    with pytest.raises(UnsupportedOperatorError, match="strides"):
        audit_graph(model, "ascend310")


def test_resize_needs_constant_scales_and_the_chips_rounding():
    runtime_scales = _model(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="nearest",
                          coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")],
        [("x", [1, 2, 4, 4]), ("scales", [4])], [("y", [1, 2, 8, 8])], inits=[("roi", np.zeros(0, np.float32))],
    )
    with pytest.raises(UnsupportedOperatorError) as err:
        audit_graph(runtime_scales, "ascend310")
    assert err.value.findings[0].rule == "resize_constant_inputs" and err.value.node == "up"

    floor = _model(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        [("x", [1, 2, 4, 4])], [("y", [1, 2, 8, 8])],
        inits=[("roi", np.zeros(0, np.float32)), ("scales", np.array([1, 1, 2, 2], np.float32))],
    )
    with pytest.raises(UnsupportedOperatorError, match="round_prefer_ceil"):
        audit_graph(floor, "ascend910")
    cubic = _model(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="cubic")],
        [("x", [1, 2, 4, 4])], [("y", [1, 2, 8, 8])],
        inits=[("roi", np.zeros(0, np.float32)), ("scales", np.array([1, 1, 2, 2], np.float32))],
    )
    assert audit_graph(cubic, "ascend310", raise_errors=False)[0].rule == "resize_modes"


def test_opset_domain_and_static_shapes():
    relu13 = _model(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="r", mode="linear")],
        [("x", [1, 2, 4, 4])], [("y", [1, 2, 8, 8])],
        inits=[("roi", np.zeros(0, np.float32)), ("scales", np.array([1, 1, 2, 2], np.float32))], opset=13,
    )
    with pytest.raises(UnsupportedOperatorError, match="opsets 10-12, 14-18, not opset 13"):
        audit_graph(relu13, "ascend310")
    custom = _model([helper.make_node("Fancy", ["x"], ["y"], name="f", domain="com.example")],
                    [("x", [1, 2])], [("y", [1, 2])])
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    assert audit_graph(custom, "ascend310", raise_errors=False)[0].rule == "domain"
    tanh = _model([helper.make_node("Tanh", ["x"], ["y"], name="t1"),
                   helper.make_node("Tanh", ["y"], ["z"], name="t2")], [("x", [1, 2])], [("z", [1, 2])])
    assert [(f.severity, f.rule, f.node) for f in audit_graph(tanh, "ascend310")] == [
        ("warning", "opset_unknown", "t1")]  # listed, range not transcribed: said once per operator
    dynamic = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", ["N", 3])], [("y", ["N", 3])])
    with pytest.raises(UnsupportedOperatorError, match="not static"):
        audit_graph(dynamic, "ascend310")


def test_slice_pad_and_maxpool_rules():
    slice2 = _model(
        [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="s")],
        [("x", [1, 2, 8, 8])], [("y", [1, 2, 8, 4])],
        inits=[("st", np.array([0], np.int64)), ("en", np.array([8], np.int64)), ("ax", np.array([3], np.int64)),
               ("sp", np.array([2], np.int64))],
    )
    with pytest.raises(UnsupportedOperatorError, match="last axis"):
        audit_graph(slice2, "ascend310")
    pad = _model(
        [helper.make_node("Pad", ["x", "p", "v"], ["y"], name="pad", mode="constant")],
        [("x", [1, 2, 4, 4])], [("y", [1, 2, 6, 6])],
        inits=[("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)), ("v", np.float32(3.0))],
    )
    rules = {(f.severity, f.rule) for f in audit_graph(pad, "ascend310", raise_errors=False)}
    assert rules == {("error", "pad_modes"), ("warning", "pad_chip")}
    pad0 = _model(
        [helper.make_node("Pad", ["x", "p"], ["y"], name="pad", mode="reflect")],
        [("x", [1, 2, 4, 4])], [("y", [1, 2, 6, 6])], inits=[("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))],
    )
    assert audit_graph(pad0, "ascend310p") == []  # the chip the Pad statement names
    pool = _model([helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[17, 17], strides=[17, 17])],
                  [("x", [1, 2, 34, 34])], [("y", [1, 2, 2, 2])])
    assert [(f.severity, f.rule) for f in audit_graph(pool, "ascend310")] == [("warning", "maxpool_aicpu")]


def test_audit_rejects_bad_arguments(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        audit_graph(tmp_path / "nope.onnx", "ascend310")
    with pytest.raises(InvalidArgumentError, match="ModelProto"):
        audit_graph(42, "ascend310")
    with pytest.raises(UnknownChoiceError):
        audit_graph(tmp_path / "nope.onnx", "tpu")


# -- the real SiamFC graphs -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def siamfc_graphs(tmp_path_factory):
    pytest.importorskip("torch")
    from edgetrack.converters.torch2onnx import export_siamfc_onnx
    from edgetrack.models.torch.siamfc import build_siamfc

    out = tmp_path_factory.mktemp("graphs")
    return export_siamfc_onnx(build_siamfc("siamfc-tiny").eval(), out, scales=1)


def test_siamfc_export_hits_the_resize_rounding_and_passes_once_prepared(siamfc_graphs, tmp_path):
    from edgetrack.converters.onnx2om import prepare_onnx_for_ascend

    with pytest.raises(UnsupportedOperatorError) as err:
        audit_graph(siamfc_graphs["search"], "ascend310", graph="search")
    assert (err.value.op_type, err.value.node) == ("Resize", "/fusion/Resize")
    assert audit_graph(siamfc_graphs["head"], "ascend310", graph="head")[0].rule == "conv_runtime_weight"

    for name, path in siamfc_graphs.items():
        dst = tmp_path / f"{name}.onnx"
        record = prepare_onnx_for_ascend(path, dst)
        assert (record is not None) == (name != "head")
        if record:
            assert record["max_abs"] == 0.0 and "half_pixel/round_prefer_ceil" in record["changes"][0]
        for chip in SOCS:
            findings = audit_graph(dst, chip, graph=name)
            assert all(f.severity != "error" for f in findings)
            if name == "head":
                assert [f.rule for f in findings] == ["conv_runtime_weight"]
            else:  # the fusion module's two fixed depthwise convolutions
                assert [f.rule for f in findings] == ["conv_group_one", "conv_group_one"]


# -- AIPP -------------------------------------------------------------------------------------------------------
GOLDEN_AIPP = """\
# edgetrack: uint8 packed HWC frames in, the model's float NCHW input out (static AIPP)
aipp_op {
    aipp_mode: static
    related_input_rank: 0
    input_format: RGB888_U8
    src_image_size_w: 255
    src_image_size_h: 255
    crop: false
    csc_switch: false
    rbuv_swap_switch: false
    mean_chn_0: 0
    mean_chn_1: 0
    mean_chn_2: 0
    min_chn_0: 0.0
    min_chn_1: 0.0
    min_chn_2: 0.0
    var_reci_chn_0: 1.0
    var_reci_chn_1: 1.0
    var_reci_chn_2: 1.0
}
"""

SIAMFC_PREPROCESSING = {
    "template_size": [127, 127], "search_size": [255, 255], "channel_order": "BGR", "value_range": [0.0, 255.0],
    "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "layout": "NCHW", "dtype": "float32",
}


def test_aipp_for_the_siamfc_preprocessing_renders_the_golden_file():
    aipp = AippConfig.from_preprocessing(SIAMFC_PREPROCESSING, 255, 255)
    assert aipp == AippConfig(255, 255)
    assert aipp.render() == GOLDEN_AIPP
    assert AippConfig.from_dict(aipp.to_dict()) == aipp
    assert aipp.device_input_shape(3) == (3, 255, 255, 3)


def test_aipp_apply_equals_what_the_tracker_feeds():
    from edgetrack.tracking.siamese import to_nchw as _to_nchw

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)
    aipp = AippConfig.from_preprocessing(SIAMFC_PREPROCESSING, 255, 255)
    out = aipp.apply(crops)
    assert out.dtype == np.float16 and out.shape == (3, 3, 255, 255)
    np.testing.assert_array_equal(out.astype(np.float32), _to_nchw(crops))
    np.testing.assert_array_equal(aipp.apply(crops[0]), out[:1])


def test_aipp_apply_on_a_tracker_crop():
    from edgetrack.tracking.siamfc import SiamFCParams, SiamFCTracking

    yy, xx = np.mgrid[:120, :160]
    frame = np.stack([xx * 1.5, yy * 2.0, (xx + yy) * 0.7], axis=-1).astype(np.uint8)
    fed = SiamFCTracking(SiamFCParams()).init(frame, (60.0, 40.0, 30.0, 20.0))  # float32 (1, 3, 127, 127)
    crop_u8 = fed[0].transpose(1, 2, 0).astype(np.uint8)
    assert np.array_equal(crop_u8.astype(np.float32), fed[0].transpose(1, 2, 0))  # the crop is whole pixels
    aipp = AippConfig.from_preprocessing(SIAMFC_PREPROCESSING, 127, 127)
    np.testing.assert_array_equal(aipp.apply(crop_u8).astype(np.float32), fed)


def test_aipp_normalisation_and_channel_swap():
    pre = dict(SIAMFC_PREPROCESSING, channel_order="RGB", value_range=[0.0, 1.0],
               mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    aipp = AippConfig.from_preprocessing(pre, 4, 4)
    assert aipp.rbuv_swap_switch and aipp.mean_chn == (0, 0, 0)
    assert "rbuv_swap_switch: true" in aipp.render()
    assert aipp.min_chn[0] == pytest.approx(0.485 * 255) and aipp.var_reci_chn[0] == pytest.approx(1 / 255 / 0.229)
    frame = np.random.default_rng(1).integers(0, 256, (4, 4, 3), dtype=np.uint8)  # BGR
    rgb = frame[..., ::-1].astype(np.float64) / 255.0
    expected = ((rgb - np.array(pre["mean"])) / np.array(pre["std"])).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(aipp.apply(frame).astype(np.float64), expected, atol=4e-3)  # fp16 output


def test_aipp_rejects_bad_configs_and_inputs():
    with pytest.raises(InvalidArgumentError, match=r"\[1, 4096\]"):
        AippConfig(0, 4)
    with pytest.raises(InvalidArgumentError, match=r"\[1, 4096\]"):
        AippConfig(5000, 4)
    with pytest.raises(UnknownChoiceError, match="RGB888_U8"):
        AippConfig(4, 4, input_format="YUV420SP_U8")
    with pytest.raises(InvalidArgumentError, match="layout"):
        AippConfig.from_preprocessing(dict(SIAMFC_PREPROCESSING, layout="NHWC"), 4, 4)
    aipp = AippConfig(4, 4)
    with pytest.raises(InvalidArgumentError, match="uint8"):
        aipp.apply(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InvalidArgumentError, match=r"\(H, W\) = \(4, 4\)"):
        aipp.apply(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(InvalidArgumentError, match="static"):
        AippConfig.from_dict({**aipp.to_dict(), "aipp_mode": "dynamic"})
