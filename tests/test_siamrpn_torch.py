"""SiamRPN in PyTorch: geometry, ECA, the two correlation forms, ONNX export of the three graphs, checkpoints, anchor
targets, the loss, and training (API and command line)."""
import json
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError  # noqa: E402
from edgetrack.models.pairs import CropCache, PairConfig, PairSampler  # noqa: E402
from edgetrack.models.rpn_targets import (  # noqa: E402
    ANCHOR_TARGETS,
    CANDIDATE,
    IGNORED,
    NEGATIVE,
    POSITIVE,
    RPN_PAIRS,
    AnchorTargetConfig,
    RPNTargets,
    anchor_distance,
    anchor_iou,
    anchor_target_config,
    anchor_targets,
    batch_targets,
)
from edgetrack.models.siamrpn_config import eca_kernel_size, effnet_stages, round_filters  # noqa: E402
from edgetrack.models.torch.checkpoint import read_metadata, save_weights  # noqa: E402
from edgetrack.models.torch.siamrpn import (  # noqa: E402
    ECA,
    GRAPH_IO,
    SIAMRPN_PRESETS,
    SiamRPN,
    SiamRPNConfig,
    build_siamrpn,
    graph_modules,
    hardest_negatives,
    load_siamrpn,
    rpn_loss,
    save_siamrpn,
    xcorr_depthwise,
    xcorr_depthwise_export,
)
from edgetrack.tracking.siamrpn import anchor_grid  # noqa: E402

pytestmark = pytest.mark.torch

TINY = SIAMRPN_PRESETS["siamrpn-tiny"]
TINY_ALEX = SiamRPNConfig(backbone="alexnet", alexnet_channels=(8, 16, 16, 16, 16), corr_channels=8)

from torch_helpers import random_crops, randomise_bn_affine, single_torch_thread  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


# -- configuration and geometry ---------------------------------------------------------------------------------------
def test_presets_and_derived_geometry():
    eca, alex = SIAMRPN_PRESETS["siamrpn-eca"], SIAMRPN_PRESETS["siamrpn-alexnet"]
    assert (eca.backbone_channels, eca.kernel_size, eca.search_size, eca.score_size) == (112, 5, 29, 25)
    assert (alex.backbone_channels, alex.kernel_size, alex.search_size, alex.score_size) == (256, 4, 20, 17)
    assert eca.num_anchors == 5 and eca.anchor_ratios == (0.33, 0.5, 1.0, 2.0, 3.0)
    assert SiamRPNConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    stem, stages = effnet_stages(1.0, 1.0)
    assert stem == 32 and [s[4] for s in stages] == [16, 24, 40, 80, 112] and [s[5] for s in stages] == [1, 2, 2, 3, 3]
    assert [s[2] for s in stages] == [1, 2, 2, 1, 1]  # stage 4 unstrided: stride 8 from stage 3 on
    assert round_filters(40, 0.25) == 16 and round_filters(32, 0.25) == 8
    for bad in ({"backbone": "resnet"}, {"width": 0}, {"corr_channels": 0}, {"anchor_ratios": ()},
                {"alexnet_channels": (1, 2, 3)}):
        with pytest.raises(InvalidArgumentError):
            SiamRPNConfig(**bad)
    with pytest.raises(InvalidArgumentError, match="no field"):
        SiamRPNConfig.from_dict({"depth_mult": 1})
    with pytest.raises(UnknownChoiceError, match="siamrpn-eca"):
        build_siamrpn("siamrpn-resnet")


@pytest.mark.parametrize("config", [TINY, TINY_ALEX])
def test_shapes_of_the_three_graphs_and_the_training_forward(config):
    model = SiamRPN(config).eval()
    z, x = random_crops()
    with torch.no_grad():
        kernel, features = model.template(z), model.search(x)
        cls, loc = model.head(kernel, features)
    c, k, s, r, a = config.corr_channels, config.kernel_size, config.search_size, config.score_size, 5
    assert kernel.shape == (1, 2 * c, k, k) and features.shape == (1, 2 * c, s, s)
    assert cls.shape == (1, 2 * a, r, r) and loc.shape == (1, 4 * a, r, r)
    z2, x2 = random_crops(3, seed=1)
    cls2, loc2 = model(z2, x2)
    assert cls2.shape == (3, 2 * a, r, r) and loc2.shape == (3, 4 * a, r, r)


def test_full_size_backbones_give_the_documented_maps():
    for name, (t, s) in {"siamrpn-eca": (15, 31), "siamrpn-alexnet": (6, 22)}.items():
        model = build_siamrpn(name).eval()
        with torch.no_grad():
            assert model.backbone(torch.zeros(1, 3, 127, 127)).shape[2:] == (t, t)
            assert model.backbone(torch.zeros(1, 3, 255, 255)).shape[2:] == (s, s)


def test_effnet_cells_are_centred_where_the_docstring_says():
    """Search-map cell i is centred on pixel 8·i + 7: with every weight positive and a uniform input, the input
    gradient of one interior cell is symmetric about that cell's centre, so its centroid is the centre. (ECA's
    weights are zeroed: its global pooling sees the whole crop, which is the point of it, not a cell's geometry.)"""
    model = SiamRPN(TINY)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.05)
    for m in model.modules():
        if isinstance(m, ECA):
            nn.init.zeros_(m.conv.weight)
    model.eval()
    x = torch.full((1, 3, 255, 255), 0.5, requires_grad=True)
    f = model.backbone(x)
    for i in (14, 15, 16):
        (g,) = torch.autograd.grad(f[0, :, i, i].sum(), x, retain_graph=True)
        g = g[0].abs().sum(0).double()
        cols = (g.sum(0) * torch.arange(255)).sum() / g.sum()
        rows = (g.sum(1) * torch.arange(255)).sum() / g.sum()
        assert float(cols) == pytest.approx(8 * i + 7, abs=1e-6) and float(rows) == pytest.approx(8 * i + 7, abs=1e-6)


@pytest.mark.parametrize("shift", [0, 3, 9])
def test_alexnet_features_are_fully_convolutional(shift):
    """AlexNet does not pad: the template's features equal the search features of the same pixels, so score cell r
    sits at 8·r + 63 exactly (the backbone's conv5 cell i at 8·i + 43)."""
    model = randomise_bn_affine(SiamRPN(TINY_ALEX))
    _, x = random_crops()
    o = 8 * shift
    with torch.no_grad():
        fx = model.backbone(x)
        fz = model.backbone(x[:, :, o:o + 127, o:o + 127])
    torch.testing.assert_close(fz, fx[:, :, shift:shift + 6, shift:shift + 6], atol=1e-4, rtol=1e-4)


# -- ECA --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels, k", [(1, 1), (4, 1), (8, 3), (16, 3), (64, 3), (128, 5), (256, 5), (1152, 5),
                                         (4096, 7)])
def test_eca_kernel_size_formula(channels, k):
    # t = int(|log2(C) / 2 + 1 / 2|), up to the next odd number.
    t = int(abs(math.log2(channels) / 2 + 0.5))
    assert eca_kernel_size(channels) == k == (t if t % 2 else t + 1)
    assert ECA(channels).kernel_size == k


def test_eca_is_a_1d_convolution_across_channels():
    torch.manual_seed(0)
    eca = ECA(64)
    x = torch.randn(2, 64, 5, 7)
    pooled = x.mean((2, 3))  # (N, C)
    w = eca.conv.weight.reshape(1, 1, -1)
    ref = torch.sigmoid(nn.functional.conv1d(pooled[:, None], w, padding=1))[:, 0]
    torch.testing.assert_close(eca(x), x * ref[:, :, None, None])
    assert eca.conv.bias is None


# -- the correlation's two forms ------------------------------------------------------------------------------------
@pytest.mark.parametrize("nk", [1, 3])
def test_export_correlation_equals_the_grouped_convolution(nk):
    g = torch.Generator().manual_seed(2)
    kernel = torch.randn(nk, 6, 5, 5, generator=g)
    features = torch.randn(3, 6, 29, 29, generator=g)
    fast = xcorr_depthwise(kernel, features)
    safe = xcorr_depthwise_export(kernel, features, 5, 25)
    assert fast.shape == safe.shape == (3, 6, 25, 25)
    torch.testing.assert_close(safe, fast, atol=1e-5, rtol=1e-5)
    with pytest.raises(InvalidArgumentError, match="templates"):
        xcorr_depthwise(torch.randn(2, 6, 5, 5), features)


@pytest.mark.parametrize("config", [TINY, TINY_ALEX])
def test_split_graphs_equal_the_training_forward(config):
    model = randomise_bn_affine(SiamRPN(config), seed=3)
    graphs = {k: v.eval() for k, v in graph_modules(model).items()}
    z, x = random_crops(2, seed=4)
    with torch.no_grad():
        cls, loc = model(z, x)
        for i in range(2):
            kernel = graphs["template"](z[i:i + 1])
            features = graphs["search"](x[i:i + 1])
            for got, ref in zip(graphs["head"](kernel, features), (cls[i:i + 1], loc[i:i + 1])):
                # Relative to the map's scale: batch 1 and batch 2 sum the convolutions in different orders.
                assert float((got - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


# -- ONNX export ------------------------------------------------------------------------------------------------------
# Operators each backbone's graphs may hold: EfficientNet/AlexNet's, and the DeblurGAN-v2 generator's export-safe
# set for the deblur-fpn trunk (models/torch/deblurgan.py: nearest Resize, Clip for ReLU6, no Pad).
_RPN_OPS = {"Conv", "Relu", "Sigmoid", "Mul", "Add", "Slice", "Reshape", "GlobalAveragePool", "MaxPool", "Constant",
            "Identity"}
_REUSE_OPS = {"Conv", "Relu", "Clip", "Mul", "Add", "Sub", "Slice", "Concat", "Resize", "Constant", "Identity"}


@pytest.mark.parametrize("config, allowed", [(TINY, _RPN_OPS), (TINY_ALEX, _RPN_OPS),
                                             (SIAMRPN_PRESETS["siamrpn-reuse-tiny"], _REUSE_OPS)],
                         ids=["effnet-eca", "alexnet", "deblur-fpn"])
def test_three_graphs_export_to_opset_11_with_constant_weight_convolutions(tmp_path, config, allowed):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = randomise_bn_affine(SiamRPN(config), seed=5)
    graphs = graph_modules(model)
    z, x = random_crops(seed=6)
    with torch.no_grad():
        examples = {"template": (z,), "search": (x,), "head": (model.template(z), model.search(x))}
    z2, x2 = random_crops(seed=7)  # check on other inputs than the traced ones
    with torch.no_grad():
        checks = {"template": (z2,), "search": (x2,), "head": (model.template(z2), model.search(x2))}
    for name, module in graphs.items():
        inputs, outputs = GRAPH_IO[name]
        path = tmp_path / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), examples[name], str(path), input_names=list(inputs),
                              output_names=list(outputs), opset_version=11, do_constant_folding=True, dynamo=False)
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        assert proto.opset_import[0].version == 11
        constants = {i.name for i in proto.graph.initializer}
        constants |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
        ops = {n.op_type for n in proto.graph.node}
        assert ops <= allowed, ops
        for node in proto.graph.node:
            if node.op_type == "Conv":
                # A runtime kernel (a Conv whose weight is a graph input) is what NPU converters reject.
                assert node.input[1] in constants, f"{name}: Conv {node.name} has a runtime weight"
        dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
        assert all(all(v > 0 for v in shape) for shape in dims.values()), dims  # static shapes
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(list(outputs), {n: t.numpy() for n, t in zip(inputs, checks[name])})
        module.eval()
        with torch.no_grad():
            expected = module(*checks[name])
        expected = expected if isinstance(expected, tuple) else (expected,)
        for g, e in zip(got, expected):
            e = e.numpy()
            assert g.shape == e.shape
            assert np.abs(g - e).max() <= 1e-4 * np.abs(e).max(), (name, np.abs(g - e).max(), np.abs(e).max())


# -- checkpoints ------------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_is_strict(tmp_path):
    model = randomise_bn_affine(SiamRPN(TINY), seed=8)
    path = save_siamrpn(model, tmp_path / "m.safetensors", {"note": "x"})
    loaded = load_siamrpn(path)
    assert loaded.config == TINY and not loaded.training
    z, x = random_crops(seed=9)
    with torch.no_grad():
        for a, b in zip(model(z, x), loaded(z, x)):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    keys = set(loaded.state_dict())
    assert "backbone.blocks.0.eca.conv.weight" in keys and "head.cls_head.3.bias" in keys
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        assert set(f.keys()) == {k for k in keys if not k.endswith("num_batches_tracked")}
        assert json.loads(f.metadata()["config"])["name"] == "siamrpn-tiny"

    # A checkpoint of another architecture is refused, naming the first mismatch.
    other = SiamRPN(SiamRPNConfig(backbone="effnet-eca", width=0.25, depth=0.25, corr_channels=8))
    save_weights(other, tmp_path / "other.safetensors", {"family": "siamrpn", "config": TINY.to_dict()})
    with pytest.raises(CheckpointError, match="head.template_conv.0.weight"):
        load_siamrpn(tmp_path / "other.safetensors")
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    save_siamfc(build_siamfc("siamfc-tiny"), tmp_path / "fc.safetensors")
    with pytest.raises(CheckpointError, match="not a SiamRPN checkpoint"):
        load_siamrpn(tmp_path / "fc.safetensors")


# -- anchor targets ---------------------------------------------------------------------------------------------------
def _anchor_box(grid, a, r, c):
    cx, cy, w, h = grid[:, a, r, c]
    return (cx - (w - 1) / 2, cy - (h - 1) / 2, w, h)


def test_anchor_targets_golden_cases():
    grid = anchor_grid(TINY.tracking_params())
    rng = np.random.default_rng(0)
    # The target is exactly the square anchor of the centre cell.
    box = _anchor_box(grid, 2, 12, 12)
    t = anchor_targets(grid, box, rng)
    iou = anchor_iou(grid, box)
    assert iou[2, 12, 12] == 1.0 and t["cls"][2, 12, 12] == POSITIVE
    np.testing.assert_allclose(t["loc"][:, 2, 12, 12], 0, atol=1e-6)
    pos, neg = t["cls"] == POSITIVE, t["cls"] == NEGATIVE
    assert np.all(iou[pos] > 0.6) and np.all(iou[neg] < 0.3)
    assert 1 <= pos.sum() <= 16 and pos.sum() + neg.sum() == 64
    between = (iou >= 0.3) & (iou <= 0.6)
    assert np.all(t["cls"][between] == IGNORED)
    np.testing.assert_array_equal(t["loc_weight"], pos.astype(np.float32))
    # Offsets of a shifted, scaled box (eq. 4).
    cx, cy, w, h = grid[:, 2, 12, 12]
    shifted = (cx + 6 - 39.5, cy - 4 - 39.5, 80.0, 80.0)
    d = anchor_targets(grid, shifted, rng)["loc"][:, 2, 12, 12]
    np.testing.assert_allclose(d, [6 / 64, -4 / 64, math.log(80 / 64), math.log(80 / 64)], rtol=1e-6)


def test_anchor_targets_sample_at_most_16_positives_and_64_in_all():
    grid = anchor_grid(TINY.tracking_params())
    # A large box overlaps many anchors by more than 0.6 once anchors are large too.
    big = grid.copy()
    big[2:] *= 3
    box = (127 - 95.5, 127 - 95.5, 192, 192)
    iou = anchor_iou(big, box)
    assert (iou > 0.6).sum() > 16
    t = anchor_targets(big, box, np.random.default_rng(1))
    assert (t["cls"] == POSITIVE).sum() == 16 and (t["cls"] >= 0).sum() == 64
    # A box nowhere near any anchor's shape: no positives, 64 negatives.
    t = anchor_targets(grid, (120, 120, 6, 6), np.random.default_rng(1))
    assert (t["cls"] == POSITIVE).sum() == 0 and (t["cls"] == NEGATIVE).sum() == 64
    # Deterministic per generator state; another config changes the thresholds.
    a = anchor_targets(grid, _anchor_box(grid, 1, 10, 13), np.random.default_rng(5))
    b = anchor_targets(grid, _anchor_box(grid, 1, 10, 13), np.random.default_rng(5))
    np.testing.assert_array_equal(a["cls"], b["cls"])
    loose = anchor_targets(grid, _anchor_box(grid, 1, 10, 13), np.random.default_rng(5),
                           AnchorTargetConfig(pos_iou=0.3, neg_iou=0.1, max_pos=32, total=128))
    assert (loose["cls"] == POSITIVE).sum() > (a["cls"] == POSITIVE).sum()
    with pytest.raises(InvalidArgumentError):
        AnchorTargetConfig(pos_iou=0.2, neg_iou=0.3)
    with pytest.raises(InvalidArgumentError, match="target box"):
        anchor_targets(grid, (1, 2, 0, 5), np.random.default_rng(0))


def test_ohem_targets_draw_16_negatives_and_leave_the_others_to_the_loss():
    grid = anchor_grid(TINY.tracking_params())
    cfg = ANCHOR_TARGETS["rpn-ohem"]
    assert (cfg.total, cfg.neg_random) == (None, 16)
    box = _anchor_box(grid, 2, 12, 12)
    iou = anchor_iou(grid, box)
    t = anchor_targets(grid, box, np.random.default_rng(0), cfg)
    pos, neg, cand = (t["cls"] == POSITIVE), (t["cls"] == NEGATIVE), (t["cls"] == CANDIDATE)
    # The positives as the papers' sampling has them; 16 random negatives; every other negative a candidate.
    assert 1 <= pos.sum() <= 16 and np.all(iou[pos] > 0.6)
    assert neg.sum() == 16 and np.all(iou[neg | cand] < 0.3) and neg.sum() + cand.sum() == (iou < 0.3).sum()
    assert np.all(t["cls"][(iou >= 0.3) & (iou <= 0.6)] == IGNORED)
    np.testing.assert_array_equal(t["loc_weight"], pos.astype(np.float32))
    # Deterministic per generator state, different for another; the positives are drawn as by the rpn targets.
    again = anchor_targets(grid, box, np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(again["cls"], t["cls"])
    other = anchor_targets(grid, box, np.random.default_rng(1), cfg)
    assert not np.array_equal(other["cls"] == NEGATIVE, neg)
    plain = anchor_targets(grid, box, np.random.default_rng(0))
    np.testing.assert_array_equal(plain["cls"] == POSITIVE, pos)
    # A negative pair: no positives, no regression; the object's anchors are negatives in the positives' slots,
    # 16 more drawn at random, and every other anchor (none is ignored there) a candidate for the loss.
    n = anchor_targets(grid, box, np.random.default_rng(0), cfg, negative=True)
    obj = iou > 0.6
    assert not (n["cls"] == POSITIVE).any() and not (n["cls"] == IGNORED).any() and not n["loc_weight"].any()
    assert np.all(n["cls"][obj] == NEGATIVE) and (n["cls"] == NEGATIVE).sum() == obj.sum() + 16
    assert (n["cls"] == CANDIDATE).sum() == n["cls"].size - obj.sum() - 16
    # The batch transform: a pure function of (seed, batch index), negative pairs included.
    batch = {"index": 3, "box": np.array([box, box]), "negative": np.array([False, True])}
    a = RPNTargets(grid, (4, 0), cfg)(batch)
    b = RPNTargets(grid, (4, 0), anchor_target_config("rpn-ohem"))(batch)
    np.testing.assert_array_equal(a["cls"], b["cls"])
    assert [(a["cls"][i] == NEGATIVE).sum() for i in range(2)] == [16, obj.sum() + 16]
    assert (RPNTargets(grid, (4, 0), anchor_target_config("rpn-ohem", 5))(batch)["cls"][0] == NEGATIVE).sum() == 5
    # Errors name the value and the fix.
    with pytest.raises(InvalidArgumentError, match="total=None"):
        AnchorTargetConfig(neg_random=16)
    with pytest.raises(InvalidArgumentError, match="neg_random"):
        AnchorTargetConfig(total=None, neg_random=-1)
    with pytest.raises(InvalidArgumentError, match="rpn-ohem"):
        anchor_target_config("rpn", 16)
    with pytest.raises(UnknownChoiceError, match="rpn-ohem"):
        anchor_target_config("ohem")


def test_ohem_candidates_can_be_kept_away_from_the_target():
    from edgetrack.models.torch.train import TrainConfig

    grid = anchor_grid(TINY.tracking_params())
    box = _anchor_box(grid, 2, 12, 12)
    iou = anchor_iou(grid, box)
    cx, cy = grid[0, 2, 12, 12], grid[1, 2, 12, 12]  # the box is that anchor's
    dist = np.hypot(grid[0] - cx, grid[1] - cy) / np.sqrt(box[2] * box[3])
    np.testing.assert_allclose(anchor_distance(grid, box), dist)
    every = anchor_targets(grid, box, np.random.default_rng(0), anchor_target_config("rpn-ohem"))
    far = anchor_targets(grid, box, np.random.default_rng(0), anchor_target_config("rpn-ohem", hard_min_dist=1.0))
    cand = far["cls"] == CANDIDATE
    # Candidates only a target size or more away; the near negatives not drawn at random are ignored. The random
    # draw and the positives are the same arrays as without the limit (the generator's stream is unchanged).
    assert cand.any() and np.all(dist[cand] >= 1.0)
    np.testing.assert_array_equal((every["cls"] == CANDIDATE)[dist >= 1.0], cand[dist >= 1.0])
    near = (iou < 0.3) & (dist < 1.0) & (every["cls"] == CANDIDATE)
    assert near.any() and np.all(far["cls"][near] == IGNORED)
    for label in (POSITIVE, NEGATIVE):
        np.testing.assert_array_equal(far["cls"] == label, every["cls"] == label)
    # A negative pair has no target to keep away from: every anchor stays a candidate or a negative.
    n = anchor_targets(grid, box, np.random.default_rng(0), anchor_target_config("rpn-ohem", hard_min_dist=1.0),
                       negative=True)
    assert not (n["cls"] == IGNORED).any()
    with pytest.raises(InvalidArgumentError, match="hard_min_dist"):
        AnchorTargetConfig(total=None, neg_random=16, hard_min_dist=-1.0)
    with pytest.raises(InvalidArgumentError, match="neg_random is None"):
        AnchorTargetConfig(hard_min_dist=1.0)
    with pytest.raises(InvalidArgumentError, match="rpn-ohem"):
        anchor_target_config("rpn", hard_min_dist=1.0)
    with pytest.raises(InvalidArgumentError, match="rpn-ohem"):
        TrainConfig(model="siamrpn-tiny", hard_min_dist=1.0)
    with pytest.raises(InvalidArgumentError, match="hard-min-dist"):
        TrainConfig(model="siamrpn-tiny", loss="rpn-ohem", hard_min_dist=float("nan"))
    assert TrainConfig(model="siamrpn-tiny", loss="rpn-ohem").hard_min_dist == 0.0
    assert TrainConfig(model="siamrpn-tiny", loss="rpn-ohem", hard_min_dist=1).hard_min_dist == 1.0


def test_the_sampler_box_gives_targets_that_follow_the_shift(moving_target_sequence):
    cache = CropCache.build([moving_target_sequence("a", n=4)], RPN_PAIRS, progress=False)
    sampler = PairSampler(cache, seed=3)
    grid = anchor_grid(TINY.tracking_params())
    for shift in ((0, 0), (40, -24), (-64, 64)):
        p = sampler.pair(0, 1, np.random.default_rng(0), shift=shift, augment=False)
        t = anchor_targets(grid, p["box"], np.random.default_rng(0))
        a, r, c = np.unravel_index(np.argmax(anchor_iou(grid, p["box"])), grid.shape[1:])
        assert t["cls"][a, r, c] == POSITIVE
        # The best anchor's cell is the one under the shifted target centre.
        assert (grid[0, a, r, c] - 127, grid[1, a, r, c] - 127) == pytest.approx(shift, abs=4.01)
    batch = RPNTargets(grid, (3, 0))(sampler.sample_at(2, 3))
    assert batch["cls"].shape == (3, 5, 25, 25) and batch["loc"].shape == (3, 4, 5, 25, 25)
    again = RPNTargets(grid, (3, 0))(sampler.sample_at(2, 3))
    np.testing.assert_array_equal(batch["cls"], again["cls"])  # a pure function of (seed, batch index)


def test_dataloader_workers_compute_the_same_targets(moving_target_sequence):
    from edgetrack.models.torch.train import PairBatches

    cache = CropCache.build([moving_target_sequence("a", n=4)], RPN_PAIRS, progress=False)
    sampler = PairSampler(cache, seed=(2, 0))
    transform = RPNTargets(anchor_grid(TINY.tracking_params()), sampler.seed)
    loader = torch.utils.data.DataLoader(PairBatches(sampler, 2, start=1, stop=5, transform=transform),
                                         batch_size=None, num_workers=2, multiprocessing_context="fork")
    got = list(loader)
    assert [b["index"] for b in got] == [1, 2, 3, 4]
    for b in got:
        ref = transform(sampler.sample_at(b["index"], 2))
        for key in ("cls", "loc", "loc_weight"):
            np.testing.assert_array_equal(b[key].numpy(), ref[key])


# -- loss and learning ------------------------------------------------------------------------------------------------
def test_rpn_loss_counts_only_sampled_anchors_and_positives():
    grid = anchor_grid(TINY.tracking_params())
    t = batch_targets(grid, np.array([_anchor_box(grid, 2, 12, 12)]), np.random.default_rng(0))
    cls_t, loc_t, w = (torch.from_numpy(t[k]) for k in ("cls", "loc", "loc_weight"))
    # Confident, correct logits and exact offsets: loss near 0. Ignored anchors may hold anything.
    logits = torch.where(cls_t == POSITIVE, 20.0, -20.0).float()
    logits = torch.where(cls_t == IGNORED, torch.randn_like(logits) * 50, logits)
    cls = torch.stack([-logits, logits], 1).reshape(1, 10, 25, 25)
    loc = loc_t.clone()
    loc[:, :, cls_t[0] != POSITIVE] = 7.0  # only positives are regressed
    loss = rpn_loss(cls, loc.reshape(1, 20, 25, 25), cls_t, loc_t, w)
    assert float(loss) < 1e-6
    # Even odds: ln 2 for classification; an offset error of 1 per coordinate adds λ·4·(1 − 1/18).
    loss = rpn_loss(torch.zeros(1, 10, 25, 25), (loc_t + 1).reshape(1, 20, 25, 25), cls_t, loc_t, w)
    assert float(loss) == pytest.approx(math.log(2) + 1.2 * 4 * (1 - 0.5 / 9), rel=1e-5)


def test_rpn_hsm_loss_weighs_every_anchor_by_its_difficulty():
    from edgetrack.models.rpn_targets import ANCHOR_TARGETS

    grid = anchor_grid(TINY.tracking_params())
    t = batch_targets(grid, np.array([_anchor_box(grid, 2, 12, 12)]), np.random.default_rng(0),
                      ANCHOR_TARGETS["rpn-hsm"])
    cls_t, loc_t, w = (torch.from_numpy(t[k]) for k in ("cls", "loc", "loc_weight"))
    iou = anchor_iou(grid, _anchor_box(grid, 2, 12, 12))
    assert int((cls_t == NEGATIVE).sum()) == int((iou < 0.3).sum())  # every negative labelled, none sampled away
    n_pos = int((cls_t == POSITIVE).sum())
    # Even odds everywhere: every labelled anchor costs alpha_t · 0.5^gamma · ln 2, summed over the positives' count.
    n_neg = int((cls_t == NEGATIVE).sum())
    loss = rpn_loss(torch.zeros(1, 10, 25, 25), loc_t.reshape(1, 20, 25, 25), cls_t, loc_t, w, cls_loss="hsm",
                    alpha=0.6, gamma=2.0)
    expected = (0.6 * n_pos + 0.4 * n_neg) * 0.25 * math.log(2) / n_pos
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # One confident mistake on a negative (a look-alike) costs nearly its full log-loss; easy ones almost nothing.
    logits = torch.where(cls_t == POSITIVE, 8.0, -8.0).float()
    cls = torch.stack([-logits, logits], 1).reshape(1, 10, 25, 25)
    easy = float(rpn_loss(cls, loc_t.reshape(1, 20, 25, 25), cls_t, loc_t, w, cls_loss="hsm"))
    a, r, c = map(int, torch.nonzero(cls_t[0] == NEGATIVE)[0])
    logits[0, a, r, c] = 8.0
    cls = torch.stack([-logits, logits], 1).reshape(1, 10, 25, 25)
    hard = float(rpn_loss(cls, loc_t.reshape(1, 20, 25, 25), cls_t, loc_t, w, cls_loss="hsm"))
    assert easy < 1e-4 and hard - easy == pytest.approx(0.4 * 16.0 / n_pos, rel=1e-3)
    with pytest.raises(UnknownChoiceError, match="hsm"):
        rpn_loss(cls, loc_t.reshape(1, 20, 25, 25), cls_t, loc_t, w, cls_loss="focal")


def _ohem_case():
    """One pair's rpn-ohem targets and logits whose candidates' losses are known and distinct: candidate ``j`` (in
    C order) has the two-class logit ``v = cls₁ − cls₀`` = ``−4 + j / 200``, so the hardest are the last ones."""
    grid = anchor_grid(TINY.tracking_params())
    t = batch_targets(grid, np.array([_anchor_box(grid, 2, 12, 12)]), np.random.default_rng(0),
                      ANCHOR_TARGETS["rpn-ohem"])
    cls_t, loc_t, w = (torch.from_numpy(t[k]) for k in ("cls", "loc", "loc_weight"))
    v = torch.zeros(cls_t.shape)
    v[cls_t == POSITIVE], v[cls_t == NEGATIVE] = 1.5, -2.5
    cand = cls_t == CANDIDATE
    v[cand] = -4.0 + torch.arange(int(cand.sum())).float() / 200
    return cls_t, loc_t, w, v


def _logits(v: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.zeros_like(v), v], 1).reshape(v.shape[0], -1, *v.shape[-2:])


def test_ohem_loss_adds_exactly_the_k_hardest_candidates():
    cls_t, loc_t, w, v = _ohem_case()
    loc = loc_t.reshape(1, 20, 25, 25)
    n_pos, cand = int((cls_t == POSITIVE).sum()), cls_t == CANDIDATE
    # The cross-entropy of each anchor: softplus(−v) for a positive, softplus(v) for a negative.
    expected_sum = n_pos * F.softplus(torch.tensor(-1.5)) + 16 * F.softplus(torch.tensor(-2.5))
    hardest = torch.sort(v[cand]).values[-32:]
    expected = (expected_sum + F.softplus(hardest).sum()) / (n_pos + 16 + 32)
    cls = _logits(v).requires_grad_()
    loss = rpn_loss(cls, loc, cls_t, loc_t, w, cls_loss="ohem")  # 32 hardest by default
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    # The gradient reaches the labelled anchors and the 32 chosen candidates, nothing else; it is the mask's.
    loss.backward()
    touched = cls.grad.reshape(1, 2, 5, 25, 25).abs().sum(1) > 0
    chosen = hardest_negatives(F.softplus(v), cand, 32)
    assert int(chosen.sum()) == 32 and torch.equal(touched, (cls_t >= 0) | chosen)
    assert torch.equal(chosen[cand], torch.arange(int(cand.sum())) >= int(cand.sum()) - 32)  # the last 32
    # Another k; and k above the number of candidates takes them all.
    loss8 = rpn_loss(_logits(v), loc, cls_t, loc_t, w, cls_loss="ohem", neg_hard=8)
    expected8 = (expected_sum + F.softplus(hardest[-8:]).sum()) / (n_pos + 16 + 8)
    assert float(loss8) == pytest.approx(float(expected8), rel=1e-6)
    few = torch.where(cand & (torch.rand(cls_t.shape, generator=torch.Generator().manual_seed(0)) < 0.99),
                      IGNORED, cls_t)
    n_few = int((few == CANDIDATE).sum())
    assert 0 < n_few < 100
    all_of_them = rpn_loss(_logits(v), loc, few, loc_t, w, cls_loss="ohem", neg_hard=100)
    expected_all = (expected_sum + F.softplus(v[few == CANDIDATE]).sum()) / (n_pos + 16 + n_few)
    assert float(all_of_them) == pytest.approx(float(expected_all), rel=1e-6)
    # The ce and hsm losses ignore candidates (label −2), as they ignore −1.
    plain = rpn_loss(_logits(v), loc, cls_t, loc_t, w)
    assert float(plain) == pytest.approx(float(expected_sum / (n_pos + 16)), rel=1e-6)
    with pytest.raises(InvalidArgumentError, match="neg_hard"):
        rpn_loss(_logits(v), loc, cls_t, loc_t, w, cls_loss="ohem", neg_hard=0)


def test_ohem_breaks_ties_by_position_in_every_pair():
    """Tied losses at the k-th place: the first candidates in C order are chosen, whatever order topk returns them
    in, so the gradient is the same in both frameworks (test_siamrpn_parity checks the MindSpore twin)."""
    loss = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.1, 0.5, 0.9, 0.5],
                         [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
                         [0.7, 0.7, 0.3, 0.7, 0.7, 0.7, 0.1, 0.0]])
    pool = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1, 1, 1], [1, 0, 1, 1, 1, 1, 1, 1]]).bool()
    chosen = hardest_negatives(loss, pool, 3)
    expected = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0],   # 0.9, then the first two of the tied 0.5s
                             [0, 1, 1, 0, 1, 0, 0, 0],   # all tied: the first three candidates
                             [1, 0, 0, 1, 1, 0, 0, 0]]).bool()  # 0.7 at 1 is no candidate
    assert torch.equal(chosen, expected)
    # A shape of several axes per pair (N, A, R, R) is flattened in C order.
    assert torch.equal(hardest_negatives(loss.reshape(3, 2, 2, 2), pool.reshape(3, 2, 2, 2), 3),
                       expected.reshape(3, 2, 2, 2))
    # Through the loss: logits all equal on the candidates, so every candidate ties; the first 32 get the gradient.
    cls_t, loc_t, w, v = _ohem_case()
    cand = cls_t == CANDIDATE
    v[cand] = -3.0
    cls = _logits(v).requires_grad_()
    rpn_loss(cls, loc_t.reshape(1, 20, 25, 25), cls_t, loc_t, w, cls_loss="ohem").backward()
    touched = cls.grad.reshape(1, 2, 5, 25, 25).abs().sum(1) > 0
    assert torch.equal(touched[cand], torch.arange(int(cand.sum())) < 32)


def test_rpn_hsm_training_starts_every_anchor_at_the_prior():
    from edgetrack.models.torch.train import TrainConfig, family_of
    from edgetrack.models.training import RPN_HSM_PRIOR

    torch.manual_seed(0)
    model = family_of("siamrpn-tiny").build(TrainConfig(model="siamrpn-tiny", loss="rpn-hsm")).eval()
    with torch.no_grad():
        cls, _ = model(torch.rand(1, 3, 127, 127) * 255, torch.rand(1, 3, 255, 255) * 255)
    p = torch.softmax(cls.reshape(1, 2, -1), 1)[:, 1]
    assert float(p.mean()) == pytest.approx(RPN_HSM_PRIOR, rel=0.2)
    plain = family_of("siamrpn-tiny").build(TrainConfig(model="siamrpn-tiny"))
    assert float(plain.head.cls_head[-1].bias.abs().max()) == 0.0  # the papers' loss keeps even odds


def test_loss_falls_on_a_fixed_batch(moving_target_sequence):
    cache = CropCache.build([moving_target_sequence("a", n=4)], RPN_PAIRS, progress=False)
    sampler = PairSampler(cache, seed=0)
    grid = anchor_grid(TINY.tracking_params())
    batch = RPNTargets(grid, (0,))(sampler.sample_at(0, 2))
    torch.manual_seed(0)
    model = SiamRPN(TINY)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    z, x = torch.from_numpy(batch["z"]), torch.from_numpy(batch["x"])
    targets = [torch.from_numpy(batch[k]) for k in ("cls", "loc", "loc_weight")]
    losses = []
    for _ in range(20):
        loss = rpn_loss(*model(z, x), *targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses


# -- training ---------------------------------------------------------------------------------------------------------
def test_train_config_resolves_the_family_defaults():
    from edgetrack.models.torch.train import TrainConfig

    cfg = TrainConfig(model="siamrpn-eca")
    assert (cfg.loss, cfg.reg_weight, cfg.pairs) == ("rpn", 1.2, RPN_PAIRS)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TrainConfig(model="siamfc-hsm").reg_weight is None and TrainConfig().pairs == PairConfig()
    with pytest.raises(UnknownChoiceError, match="rpn-hsm"):
        TrainConfig(model="siamrpn-tiny", loss="hsm")
    assert TrainConfig(model="siamrpn-tiny", loss="rpn-hsm", gamma=1.0).gamma == 1.0
    # rpn-ohem: its counts filled in (and so recorded), None for every other loss, a count given elsewhere refused.
    ohem = TrainConfig(model="siamrpn-tiny", loss="rpn-ohem")
    assert (ohem.neg_random, ohem.neg_hard, cfg.neg_random, cfg.neg_hard) == (16, 32, None, None)
    assert TrainConfig.from_dict(json.loads(json.dumps(ohem.to_dict()))) == ohem
    assert TrainConfig(model="siamrpn-tiny", loss="rpn-ohem", neg_random=0, neg_hard=8).neg_hard == 8
    with pytest.raises(InvalidArgumentError, match="rpn-ohem"):
        TrainConfig(model="siamrpn-tiny", neg_hard=8)
    with pytest.raises(InvalidArgumentError, match="neg_hard"):
        TrainConfig(model="siamrpn-tiny", loss="rpn-ohem", neg_hard=0)
    with pytest.raises(InvalidArgumentError, match="regression branch"):
        TrainConfig(model="siamfc-tiny", reg_weight=1.0)
    with pytest.raises(InvalidArgumentError, match="reg_weight"):
        TrainConfig(model="siamrpn-tiny", reg_weight=-1.0)
    with pytest.raises(UnknownChoiceError, match="siamrpn-alexnet"):
        TrainConfig(model="siamrpn-vgg")


def _write_got10k(root, n_seq=2, n=8):
    import cv2

    from edgetrack.data.got10k import write_list, write_sequence

    names = []
    for s in range(n_seq):
        frames, boxes = [], []
        for i in range(n):
            img = np.full((72, 96, 3), 110, np.uint8)
            x, y = 10 + (3 + s) * i, 12 + 2 * i
            cv2.rectangle(img, (x, y), (x + 19, y + 15), (30, 40, 220), -1)
            cv2.circle(img, (x + 6, y + 5), 3, (240, 240, 40), -1)
            frames.append(img)
            boxes.append((x, y, 20, 16))
        names.append(f"seq{s}")
        write_sequence(root / names[-1], frames, np.array(boxes, float))
    write_list(root, names)
    return root


@pytest.mark.parametrize("loss_name", ["rpn", "rpn-hsm", "rpn-ohem"])
def test_cli_trains_siamrpn_tiny_with_falling_loss(tmp_path, loss_name):
    from edgetrack.cli import main

    data = _write_got10k(tmp_path / "got")
    out = tmp_path / "run"
    argv = ["train", "--model", "siamrpn-tiny", "--data", f"got10k:{data}", "--out", str(out), "--epochs", "2",
            "--steps-per-epoch", "10", "--batch-size", "4", "--lr-start", "3e-2", "--lr-end", "3e-3",
            "--log-every", "1", "--reg-weight", "1.0", "--loss", loss_name]
    assert main(argv) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 21))
    loss = np.array([e["loss"] for e in log])
    assert np.isfinite(loss).all() and loss[-5:].mean() < 0.85 * loss[:5].mean(), loss
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["loss"], config["reg_weight"]) == ("siamrpn-tiny", loss_name, 1.0)
    assert config["pairs"]["scale_jitter"] == RPN_PAIRS.scale_jitter
    model = load_siamrpn(out / "final.safetensors")
    assert model.config == TINY
    # The checkpoint records the loss and, for rpn-ohem, its counts (the defaults; None for the other losses).
    recorded = json.loads(read_metadata(out / "final.safetensors")["train_config"])
    counts = (16, 32) if loss_name == "rpn-ohem" else (None, None)
    assert (recorded["loss"], recorded["neg_random"], recorded["neg_hard"]) == (loss_name, *counts)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"epoch-000{e}{s}.safetensors" for e in (1, 2) for s in ("", ".state")]


@pytest.mark.parametrize("loss", ["rpn", "rpn-ohem"])
def test_resumed_siamrpn_run_repeats_the_uninterrupted_one(tmp_path, moving_target_sequence, loss):
    """Anchor targets are drawn per batch from (seed, rank, index), and rpn-ohem's hardest negatives are a function
    of the step's logits: a resumed run computes the same steps."""
    from edgetrack.models.torch.train import TrainConfig, train

    cache = CropCache.build([moving_target_sequence("a", n=6)], RPN_PAIRS, progress=False)
    out = tmp_path / "run"
    cfg = TrainConfig(model="siamrpn-tiny", epochs=2, steps_per_epoch=2, batch_size=2, log_every=1, progress=False,
                      out=str(out), lr_start=1e-2, lr_end=1e-3, loss=loss)
    train(cfg, cache)
    first = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    for p in (out / "checkpoints").glob("epoch-0002*"):
        p.unlink()
    (out / "final.safetensors").unlink()
    train(cfg, cache, resume=True)
    again = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert again == pytest.approx(first, rel=1e-5)


def test_a_run_started_before_hard_min_dist_existed_still_resumes(tmp_path):
    """An rpn-ohem run's config.json from before --hard-min-dist lacks the key; it trained with 0 (no limit)."""
    from edgetrack.models.training import check_resumable

    (tmp_path / "config.json").write_text(json.dumps({"loss": "rpn-ohem", "neg_hard": 32}))
    check_resumable(tmp_path, {"loss": "rpn-ohem", "neg_hard": 32, "hard_min_dist": 0.0}, ())
    with pytest.raises(InvalidArgumentError, match="hard_min_dist was None, now 1.0"):
        check_resumable(tmp_path, {"loss": "rpn-ohem", "neg_hard": 32, "hard_min_dist": 1.0}, ())
