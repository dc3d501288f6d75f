"""PyTorch SiamFC -> ONNX -> bundle, on siamfc-tiny: graphs, operators, parity, and an end-to-end crop."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.converters.torch2onnx import FP32_TOLERANCE, siamfc_bundle, siamfc_to_onnx  # noqa: E402
from edgetrack.errors import BundleError, ConversionError  # noqa: E402
from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc  # noqa: E402
from edgetrack.tracking.siamfc import SiamFCParams, SiamFCTracking  # noqa: E402

# Conv/BN/ReLU/MaxPool: backbone; Slice: fusion crops; Resize (nearest) + Conv: upsampling; Add/Mul: fusion and
# head. Constant (Resize scales, Slice bounds at opset 11) and Identity (a shared buffer) are what the exporter
# emits around them; both are on ATC's operator list.
ALLOWED_OPS = {"Conv", "Relu", "MaxPool", "Add", "Mul", "Slice", "Resize", "BatchNormalization", "Constant", "Identity"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = build_siamfc("siamfc-tiny")
    # Non-trivial BatchNorm statistics, so eval-mode BN (folded or not) is actually exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    with torch.no_grad():
        model.head.bias.fill_(0.25)
    model.eval()
    root = tmp_path_factory.mktemp("tiny")
    ckpt = save_siamfc(model, root / "tiny.safetensors")
    out = siamfc_bundle(ckpt, root / "bundle")
    return model, ckpt, out


def test_bundle_has_three_checked_graphs(tiny):
    _, ckpt, out = tiny
    b = load_bundle(out)
    m = b.manifest
    assert set(m.graphs) == {"template", "search", "head"}
    assert (m.family, m.model, m.target, m.precision) == ("siamfc", "siamfc-tiny", "cpu", "fp32")
    assert m.preprocessing["channel_order"] == "BGR" and m.preprocessing["layout"] == "NCHW"
    assert m.preprocessing["value_range"] == [0.0, 255.0]
    assert m.tracking["scale_num"] == 3 and m.tracking["exemplar_size"] == 127
    from edgetrack.bundle import sha256_file

    assert m.source["checkpoint_sha256"] == sha256_file(ckpt)
    assert {"torch", "onnx", "onnxruntime"} <= set(m.tools)
    for name, spec in m.graphs.items():
        model_proto = onnx.load(str(b.graph_path(name)))
        onnx.checker.check_model(model_proto, full_check=True)
        assert [i.name for i in model_proto.graph.input] == [t.name for t in spec.inputs]
        assert [o.name for o in model_proto.graph.output] == [t.name for t in spec.outputs]
        # Static shapes only: every input dimension is a number.
        for inp, t in zip(model_proto.graph.input, spec.inputs):
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            assert dims == list(t.shape)
        ops = {n.op_type for n in model_proto.graph.node}
        assert ops <= ALLOWED_OPS, f"{name} uses unexpected operators {sorted(ops - ALLOWED_OPS)}"
        assert model_proto.opset_import[0].version == 11
        p = m.parity["torch->onnx"][name]
        assert p["passed"] and p["max_rel"] <= FP32_TOLERANCE
    assert m.graphs["template"].inputs[0].shape == (1, 3, 127, 127)
    assert m.graphs["search"].inputs[0].shape == (3, 3, 255, 255)
    assert m.graphs["head"].outputs[0].shape == (3, 1, 17, 17)


def test_ort_chain_matches_torch_forward_on_a_real_crop(tiny):
    model, _, out = tiny
    b = load_bundle(out)
    sessions = {n: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for n, p in b.graph_paths.items()}
    frame = np.full((120, 160, 3), 100, np.uint8)
    yy, xx = np.mgrid[:120, :160]
    frame[..., 0] = (xx * 1.5).astype(np.uint8)
    frame[..., 1] = (yy * 2).astype(np.uint8)
    frame[40:70, 60:100] = (30, 40, 220)
    logic = SiamFCTracking(SiamFCParams())
    z = logic.init(frame, (60, 40, 40, 30))
    x = logic.search_crops(frame)
    (kernel,) = sessions["template"].run(None, {"z": z})
    (features,) = sessions["search"].run(None, {"x": x})
    (response,) = sessions["head"].run(None, {"kernel": kernel, "features": features})
    with torch.no_grad():
        expected = model(torch.from_numpy(z), torch.from_numpy(x)).numpy()
    assert response.shape == expected.shape == (3, 1, 17, 17)
    np.testing.assert_allclose(response, expected, rtol=0, atol=FP32_TOLERANCE * np.abs(expected).max())
    # The response is not flat: the check compares something.
    assert np.ptp(expected) > 1e-3 * np.abs(expected).max()


def test_siamfc_to_onnx_returns_paths(tiny, tmp_path):
    model, _, _ = tiny
    paths = siamfc_to_onnx(model, tmp_path / "onnx", scales=1)
    assert sorted(paths) == ["head", "search", "template"]
    assert all(p.is_file() for p in paths.values())


def test_existing_bundle_refused_before_export(tiny):
    _, ckpt, out = tiny
    with pytest.raises(BundleError, match="already exists"):
        siamfc_bundle(ckpt, out)


def test_parity_failure_is_a_conversion_error(tiny, tmp_path):
    import copy

    from edgetrack.converters.torch2onnx import export_siamfc_onnx, verify_siamfc_onnx

    model = copy.deepcopy(tiny[0])
    paths = export_siamfc_onnx(model, tmp_path / "o", scales=1)
    with torch.no_grad():  # the graphs no longer match the model they are checked against
        model.backbone.conv1[0].weight.mul_(-1)
    with pytest.raises(ConversionError, match="'template' disagrees"):
        verify_siamfc_onnx(model, paths, scales=1)


def test_templates_bundle_searches_one_crop_against_a_template_per_scale(tiny, tmp_path):
    """scale_search="templates": the graphs take a template per scale and one search crop, the head correlates
    each template with it, and a Tracker on the bundle gives the torch model's responses for its crops."""
    from edgetrack import Tracker

    model, ckpt, crops_bundle = tiny
    out = siamfc_bundle(ckpt, tmp_path / "templates", scale_search="templates")
    m = load_bundle(out).manifest
    assert m.tracking["scale_search"] == "templates"
    assert m.graphs["template"].inputs[0].shape == (3, 3, 127, 127)
    assert m.graphs["search"].inputs[0].shape == (1, 3, 255, 255)
    assert m.graphs["head"].inputs[0].shape[0] == 3 and m.graphs["head"].outputs[0].shape == (3, 1, 17, 17)
    assert all(p["passed"] for p in m.parity["torch->onnx"].values())
    t = Tracker(out, device="cpu")
    frame = np.random.default_rng(3).integers(0, 255, (120, 160, 3), np.uint8)
    t.init(frame, (60, 40, 40, 30))
    z = t.logic.init(frame, (60, 40, 40, 30))
    x = t.logic.search_crops(frame)
    with torch.no_grad():
        expected = model.head(model.template(torch.from_numpy(z)), model.search(torch.from_numpy(x))).numpy()
    got = t._sessions["head"].run({"kernel": t._kernel, "features": t._sessions["search"].run({"x": x})["features"]})
    np.testing.assert_allclose(got["response"], expected, rtol=0, atol=FP32_TOLERANCE * np.abs(expected).max())
    # The graphs' batches are fixed: asking a crops bundle for templates (or the reverse) is refused by name.
    with pytest.raises(BundleError, match=r"scale_search.*rebuild|rebuild.*scale_search"):
        Tracker(crops_bundle, device="cpu", tracking={"scale_search": "templates"})


def test_scale_search_is_siamfcs_only(tmp_path):
    from edgetrack.converters.torch2onnx import siamrpn_bundle
    from edgetrack.errors import InvalidArgumentError
    from edgetrack.models.torch.siamrpn import build_siamrpn, save_siamrpn

    ckpt = save_siamrpn(build_siamrpn("siamrpn-tiny").eval(), tmp_path / "rpn.safetensors")
    with pytest.raises(InvalidArgumentError, match="SiamFC's"):
        siamrpn_bundle(ckpt, tmp_path / "rpn", scale_search="templates")
    assert not (tmp_path / "rpn").exists()
