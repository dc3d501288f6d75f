"""HSM-SiamFC in PyTorch: shapes, the fusion's geometry, the head, the losses, checkpoints and the tracker."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgetrack.errors import (  # noqa: E402
    BackendError,
    CheckpointError,
    InvalidArgumentError,
    TrackerStateError,
    UnknownChoiceError,
)
from edgetrack.models.labels import siamfc_labels  # noqa: E402
from edgetrack.models.torch.checkpoint import load_weights, read_metadata, save_weights  # noqa: E402
from edgetrack.models.torch.losses import (  # noqa: E402
    balanced_logistic_loss,
    build_loss,
    hsm_loss,
)
from edgetrack.models.torch.siamfc import (  # noqa: E402
    SIAMFC_PRESETS,
    CorrelationHead,
    SiamFC,
    SiamFCConfig,
    build_siamfc,
    graph_modules,
    load_siamfc,
    save_siamfc,
    upsample2x_aligned,
)
from edgetrack.models.torch.siamfc_tracker import TorchSiamFCTracker  # noqa: E402

pytestmark = pytest.mark.torch

TINY = SIAMFC_PRESETS["siamfc-tiny"]
TINY_PLAIN = SiamFCConfig(channels=TINY.channels, fusion=False)


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so eval-mode tests exercise them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


# -- architecture ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", [True, False])
def test_full_size_shapes_match_table_1(fusion):
    torch.manual_seed(0)
    model = SiamFC(SiamFCConfig(fusion=fusion)).eval()
    with torch.no_grad():
        z2, z3, z5 = model.backbone(torch.rand(1, 3, 127, 127) * 255)
        x2, x3, x5 = model.backbone(torch.rand(1, 3, 255, 255) * 255)
        assert (z2.shape, z3.shape, z5.shape) == ((1, 512, 25, 25), (1, 768, 10, 10), (1, 512, 6, 6))
        assert (x2.shape, x3.shape, x5.shape) == ((1, 512, 57, 57), (1, 768, 26, 26), (1, 512, 22, 22))
        kernel = model.fusion(z2, z3, z5) if fusion else z5
        features = model.fusion(x2, x3, x5) if fusion else x5
        k, s = (5, 21) if fusion else (6, 22)
        assert kernel.shape == (1, 512, k, k) and features.shape == (1, 512, s, s)
        cfg = model.config
        assert (cfg.kernel_size, cfg.search_feature_size, cfg.feature_channels) == (k, s, 512)
        assert model.head(kernel, features).shape == (1, 1, 17, 17)


@pytest.mark.parametrize("config", [TINY, TINY_PLAIN])
def test_tiny_shapes_and_three_scale_batch(config):
    model = SiamFC(config).eval()
    with torch.no_grad():
        kernel = model.template(torch.rand(1, 3, 127, 127) * 255)
        features = model.search(torch.rand(3, 3, 255, 255) * 255)
        response = model.head(kernel, features)
    k, c = config.kernel_size, config.feature_channels
    assert kernel.shape == (1, c, k, k) and features.shape == (3, c, k + 16, k + 16)
    assert response.shape == (3, 1, 17, 17)
    # forward(z, x) on a batch of pairs: one template per search crop.
    assert model(torch.rand(2, 3, 127, 127), torch.rand(2, 3, 255, 255)).shape == (2, 1, 17, 17)


def test_export_safe_upsampling_equals_aligned_bilinear():
    x = torch.randn(2, 4, 6, 9)
    kernel = torch.full((4, 1, 2, 2), 0.25)
    ours = upsample2x_aligned(x, kernel)
    ref = F.interpolate(x, size=(11, 17), mode="bilinear", align_corners=True)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("config", [TINY, TINY_PLAIN])
@pytest.mark.parametrize("shift", [0, 3, 8, 16])
def test_features_are_fully_convolutional(config, shift):
    """The template's features equal the search features of the same pixels: what correlation relies on.

    Padding, or resizing template and search maps by different factors (6->10 vs 22->26), breaks this.
    """
    torch.manual_seed(1)
    model = _randomise_bn(SiamFC(config))
    x = torch.rand(1, 3, 255, 255) * 255
    o = 8 * shift
    with torch.no_grad():
        fx = model.search(x)
        fz = model.template(x[:, :, o : o + 127, o : o + 127])
    k = config.kernel_size
    torch.testing.assert_close(fz, fx[:, :, shift : shift + k, shift : shift + k], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("config", [TINY, TINY_PLAIN])
def test_feature_cells_are_centred_where_the_docstring_says(config):
    """Cell m of the correlated features is centred on input pixel 8m + 47 (fused) or 8m + 43 (conv5).

    With uniform positive kernels, identity BN and average pooling (same geometry as max pooling), every cell's
    receptive field is symmetric about its centre, so the centroid of the input gradient is that centre. A fusion
    that adds maps whose cells are not centred on the same pixel (a crop off by one) moves the centroid.
    """
    model = SiamFC(config).eval()
    model.backbone.pool1 = nn.AvgPool2d(3, 2)
    model.backbone.pool2 = nn.AvgPool2d(3, 2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.zero_()
    offset = 47 if config.fusion else 43
    for side in (127, 255):
        x = torch.full((1, 3, side, side), 1.0, requires_grad=True)
        f = model.embed(x)
        n = f.shape[-1]
        for cell in (0, n // 2, n - 1):
            (grad,) = torch.autograd.grad(f[0, :, cell, n - 1 - cell].sum(), x, retain_graph=True)
            g = grad[0].abs().sum(0)
            ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            cy, cx = float((g * ys).sum() / g.sum()), float((g * xs).sum() / g.sum())
            assert (cy, cx) == pytest.approx((offset + 8 * cell, offset + 8 * (n - 1 - cell)), abs=1e-3)


def test_head_broadcasts_one_template_and_groups_pairs():
    head = CorrelationHead(out_scale=0.01)
    head.bias.data.fill_(0.5)
    kernel = torch.randn(1, 4, 5, 5)
    features = torch.randn(3, 4, 21, 21)
    out = head(kernel, features)
    for i in range(3):
        ref = F.conv2d(features[i : i + 1], kernel) * 0.01 + 0.5
        torch.testing.assert_close(out[i : i + 1], ref)
    kernels = torch.randn(3, 4, 5, 5)
    out = head(kernels, features)
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], F.conv2d(features[i : i + 1], kernels[i : i + 1]) * 0.01 + 0.5)
    # A template per scale against one search crop (scale_search="templates").
    out = head(kernels, features[:1])
    assert out.shape == (3, 1, 17, 17)
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], F.conv2d(features[:1], kernels[i : i + 1]) * 0.01 + 0.5)
    with pytest.raises(InvalidArgumentError, match="2 templates for 3"):
        head(torch.randn(2, 4, 5, 5), features)


def test_graph_modules_reproduce_forward():
    model = SiamFC(TINY).eval()
    graphs = graph_modules(model)
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(3, 3, 255, 255) * 255
    with torch.no_grad():
        out = graphs["head"](graphs["template"](z), graphs["search"](x))
        torch.testing.assert_close(out, model(z.expand(3, -1, -1, -1), x))


def test_presets_and_config_validation():
    assert set(SIAMFC_PRESETS) == {"siamfc-hsm", "siamfc", "siamfc-hsm-half", "siamfc-hsm-quarter",
                                   "siamfc-tiny"}
    assert SIAMFC_PRESETS["siamfc-hsm"].fusion and not SIAMFC_PRESETS["siamfc"].fusion
    assert SIAMFC_PRESETS["siamfc-hsm"].channels == (192, 512, 768, 768, 512)
    assert build_siamfc("siamfc-tiny").config is TINY
    with pytest.raises(UnknownChoiceError, match="siamfc-tiny"):
        build_siamfc("siamfc-huge")
    with pytest.raises(InvalidArgumentError):
        SiamFCConfig(channels=(8, 16, 24))
    with pytest.raises(InvalidArgumentError):
        SiamFCConfig(channels=(8, 16, 0, 24, 16))
    with pytest.raises(InvalidArgumentError):
        SiamFCConfig(out_scale=0)
    assert SiamFCConfig.from_dict(TINY.to_dict()) == TINY


# The checkpoint key names are the contract with the MindSpore twin: renaming any is a breaking change.
TINY_KEYS = (
    [f"backbone.conv{i}.0.{p}" for i in range(1, 6) for p in ("weight", "bias")]
    + [f"backbone.conv{i}.1.{p}" for i in range(1, 6) for p in ("weight", "bias", "running_mean", "running_var")]
    + [f"fusion.lateral{i}.0.{p}" for i in (5, 3) for p in ("weight", "bias")]
    + [f"fusion.lateral{i}.1.{p}" for i in (5, 3) for p in ("weight", "bias", "running_mean", "running_var")]
    + [f"fusion.out_bn.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
    + ["head.bias"]
)


def test_parameter_names_are_the_documented_ones(tmp_path):
    path = save_siamfc(SiamFC(TINY), tmp_path / "tiny.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == sorted(TINY_KEYS)
        assert f.get_tensor("backbone.conv5.0.weight").shape == (16, 24, 3, 3)


# -- losses ----------------------------------------------------------------------------------------------------------
def test_labels_are_siamfc_labels():
    labels = siamfc_labels()
    assert labels.shape == (17, 17) and labels.sum() == 13 and (labels == 0).sum() == 289 - 13
    assert labels[8, 6] == 1 and labels[6, 8] == 1 and labels[7, 7] == 1 and labels[7, 6] == 0
    ignored = siamfc_labels(r_pos=16, r_neg=32)
    assert (ignored == 0.5).sum() > 0 and ignored.sum() > 13


def test_hsm_loss_matches_hand_computation():
    v = [2.0, -1.0, 0.5, 3.0]
    y = [1, -1, 1, -1]
    alpha, gamma = 0.6, 2.0
    expected = 0.0
    for vi, yi in zip(v, y):
        p = 1 / (1 + math.exp(-vi))
        p_t = p if yi == 1 else 1 - p
        a_t = alpha if yi == 1 else 1 - alpha
        expected += a_t * (1 - p_t) ** gamma * math.log(1 + math.exp(-yi * vi))
    expected /= 4
    logits = torch.tensor(v, dtype=torch.float64).reshape(1, 1, 2, 2)
    labels01 = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64).reshape(2, 2)
    assert hsm_loss(logits, labels01, alpha, gamma).item() == pytest.approx(expected, rel=1e-12)
    labels_pm = torch.tensor(y, dtype=torch.float64).reshape(2, 2)  # ±1 labels read the same
    assert hsm_loss(logits, labels_pm, alpha, gamma).item() == pytest.approx(expected, rel=1e-12)


def test_hsm_with_gamma_0_alpha_half_is_half_the_logistic_loss():
    torch.manual_seed(0)
    logits = torch.randn(4, 1, 17, 17) * 3
    labels = torch.from_numpy(siamfc_labels())
    y = labels * 2 - 1
    logistic = torch.log1p(torch.exp(-y * logits)).mean()  # eq. 2, unbalanced, averaged over the map (eq. 7)
    assert hsm_loss(logits, labels, alpha=0.5, gamma=0.0).item() == pytest.approx(0.5 * logistic.item(), rel=1e-5)


def test_hsm_loss_is_stable_and_down_weights_easy_samples():
    labels = torch.tensor([[1.0, 0.0]])
    big = hsm_loss(torch.tensor([[-200.0, 200.0]]), labels)  # both badly wrong: finite, large
    assert torch.isfinite(big) and big.item() > 50
    easy = hsm_loss(torch.tensor([[5.0, -5.0]]), labels, gamma=2.0)
    plain = hsm_loss(torch.tensor([[5.0, -5.0]]), labels, gamma=0.0)
    assert easy.item() < plain.item() * 1e-3  # (1 - p_T)^2 ≈ 4.5e-5 for confident, correct cells


def test_balanced_logistic_loss_weights_each_class_to_half():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 17, 17)
    labels = torch.from_numpy(siamfc_labels())
    t = labels.expand_as(logits)
    pos, neg = t == 1, t == 0
    weight = pos / pos.sum() + neg / neg.sum()
    weight = weight / weight.sum()  # siamfc-pytorch's BalancedLoss
    ref = F.binary_cross_entropy_with_logits(logits, t, weight, reduction="sum")
    assert balanced_logistic_loss(logits, labels).item() == pytest.approx(ref.item(), rel=1e-5)
    # Ignored cells (0.5) count in neither class.
    ignoring = torch.from_numpy(siamfc_labels(r_neg=32))
    keep = (ignoring != 0.5).expand_as(logits)
    assert balanced_logistic_loss(logits, ignoring).item() == pytest.approx(
        balanced_logistic_loss(logits[keep], ignoring.expand_as(logits)[keep]).item(), rel=1e-6
    )


def test_build_loss_and_one_training_step():
    with pytest.raises(UnknownChoiceError, match="hsm, logistic"):
        build_loss("focal")
    torch.manual_seed(0)
    model = SiamFC(TINY).train()
    loss_fn = build_loss("hsm", alpha=0.6, gamma=2.0)
    logits = model(torch.rand(2, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255)
    loss = loss_fn(logits, torch.from_numpy(siamfc_labels()))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.head.bias.grad.abs().item() > 0


# -- checkpoints -----------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    src = _randomise_bn(SiamFC(TINY), seed=3)
    path = save_siamfc(src, tmp_path / "m.safetensors", metadata={"epoch": 7, "note": "x"})
    meta = read_metadata(path)
    assert meta["family"] == "siamfc" and meta["epoch"] == "7" and meta["note"] == "x"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert not any(k.endswith("num_batches_tracked") for k in f.keys())
        assert "backbone.conv1.1.running_var" in f.keys()
    dst = load_siamfc(path)
    assert dst.config == TINY and not dst.training
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(3, 3, 255, 255) * 255
    with torch.no_grad():
        torch.testing.assert_close(dst.head(dst.template(z), dst.search(x)), src.head(src.template(z), src.search(x)))
    other = SiamFC(TINY)
    load_weights(other, path)  # into a model built by hand
    torch.testing.assert_close(other.backbone.conv3[1].running_mean, src.backbone.conv3[1].running_mean)


def test_checkpoint_mismatches_are_named(tmp_path):
    plain = save_weights(SiamFC(TINY_PLAIN), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match=r"no 'fusion\.lateral5\.0\.weight' \(shape \(24, 16, 1, 1\)\)"):
        load_weights(SiamFC(TINY), plain)
    fused = save_weights(SiamFC(TINY), tmp_path / "fused.safetensors")
    with pytest.raises(CheckpointError, match=r"'fusion\.lateral3\.0\.bias'.*which the model does not have"):
        load_weights(SiamFC(TINY_PLAIN), fused)
    wider = SiamFC(SiamFCConfig(channels=(8, 16, 24, 24, 32)))
    shapes = r"'backbone\.conv5\.0\.weight' has shape \(16, 24, 3, 3\), the model's has \(32, 24, 3, 3\)"
    with pytest.raises(CheckpointError, match=shapes):
        load_weights(wider, fused)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(SiamFC(TINY), tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_weights(SiamFC(TINY), junk)
    with pytest.raises(CheckpointError, match="not a SiamFC checkpoint"):
        load_siamfc(plain)  # written by save_weights without the family/config metadata


# -- the PyTorch-backed tracker ----------------------------------------------------------------------------------------
class _MeanPoolCorrelator(nn.Module):
    """A correlation-only "model" with SiamFC's geometry: features = 7×7/8 average of the centred brightness.

    127 -> 16×16, 255 -> 32×32, cell i centred on pixel 8i + 3: the same stride and centring as the real network.
    """

    def __init__(self):
        super().__init__()
        self.head = CorrelationHead(out_scale=1e-3)

    def template(self, z):
        return F.avg_pool2d(z.mean(1, keepdim=True) - 128.0, 7, 8)

    search = template


def _moving_square(n=24, size=(240, 320), side=24, start=(60.0, 50.0), step=(4.0, 2.5), seed=0):
    rng = np.random.default_rng(seed)
    frames, boxes = [], []
    for i in range(n):
        frame = np.clip(rng.normal(40, 6, size + (3,)), 0, 255).astype(np.uint8)
        x, y = start[0] + step[0] * i, start[1] + step[1] * i
        xi, yi = int(round(x)), int(round(y))
        frame[yi : yi + side, xi : xi + side] = (220, 200, 180)
        frames.append(frame)
        boxes.append((xi, yi, side, side))
    return frames, np.array(boxes, dtype=np.float64)


def test_tracker_follows_a_moving_square():
    frames, boxes = _moving_square()
    tracker = TorchSiamFCTracker(_MeanPoolCorrelator())
    tracker.init(frames[0], boxes[0])
    for frame, gt in zip(frames[1:], boxes[1:]):
        box, score = tracker.update(frame)
        err = np.abs((box[:2] + box[2:] / 2) - (gt[:2] + gt[2:] / 2)).max()
        assert err < 3.0, (box, gt)
        assert 0.8 < box[2] / gt[2] < 1.25 and 0 <= score <= 1


def test_tracker_runs_the_tiny_network_end_to_end(tmp_path):
    torch.manual_seed(0)
    path = save_siamfc(_randomise_bn(SiamFC(TINY)), tmp_path / "tiny.safetensors")
    frames, boxes = _moving_square(n=5)
    tracker = TorchSiamFCTracker(path, device="cpu")
    with pytest.raises(TrackerStateError):
        tracker.update(frames[0])
    tracker.init(frames[0], boxes[0])
    for frame in frames[1:]:
        box, score = tracker.update(frame)
        assert box.shape == (4,) and np.all(np.isfinite(box)) and box[2] > 0 and 0 <= score <= 1


def test_tracker_device_requests_are_honoured_or_refused():
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA"):
            TorchSiamFCTracker(SiamFC(TINY), device="cuda")
    with pytest.raises(UnknownChoiceError):
        TorchSiamFCTracker(SiamFC(TINY), device="npu")
    with pytest.raises(InvalidArgumentError, match="SiamFC module or a checkpoint"):
        TorchSiamFCTracker(object())


def test_three_graphs_export_to_onnx_with_plain_operators(tmp_path):
    """The split the converters rely on: each graph exports alone and ONNX Runtime reproduces it."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import warnings

    torch.manual_seed(0)
    model = _randomise_bn(SiamFC(TINY))
    graphs = graph_modules(model)
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(3, 3, 255, 255) * 255
    with torch.no_grad():
        kernel, features = graphs["template"](z), graphs["search"](x)
        expected = {"template": kernel, "search": features, "head": graphs["head"](kernel, features)}
    for name, args in (("template", (z,)), ("search", (x,)), ("head", (kernel, features))):
        path = tmp_path / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graphs[name], args, str(path), dynamo=False, opset_version=13)
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert ops <= {"Conv", "MaxPool", "Relu", "Add", "Mul", "Slice", "Resize", "Constant", "Identity"}, ops
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)})[0]
        ref = expected[name].numpy()
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
