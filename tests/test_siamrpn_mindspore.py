"""SiamRPN in MindSpore: shapes, parameter names, ECA, the two correlation forms, export to ONNX (three graphs run in
ONNX Runtime), the loss, checkpoints, and the MindSpore trainer (API and command line).

Agreement with the PyTorch twin is tests/test_siamrpn_parity.py; nothing here needs PyTorch.
"""
import json
import math

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)
from mindspore import nn  # noqa: E402

from edgetrack.errors import CheckpointError, InvalidArgumentError, UnknownChoiceError  # noqa: E402
from edgetrack.models.mindspore.checkpoint import checkpoint_state, read_metadata, save_weights  # noqa: E402
from edgetrack.models.mindspore.siamrpn import (  # noqa: E402
    ECA,
    GRAPH_IO,
    SIAMRPN_PRESETS,
    RPNHead,
    SiamRPN,
    SiamRPNConfig,
    build_siamrpn,
    graph_modules,
    load_siamrpn,
    rpn_loss,
    save_siamrpn,
    xcorr_depthwise,
    xcorr_depthwise_export,
)
from edgetrack.models.pairs import CropCache, PairConfig, PairSampler  # noqa: E402
from edgetrack.models.rpn_targets import IGNORED, POSITIVE, RPN_PAIRS, RPNTargets, batch_targets  # noqa: E402
from edgetrack.tracking.siamrpn import anchor_grid  # noqa: E402

from bundle_helpers import assert_onnx_matches  # noqa: E402 - tests/ is on sys.path

pytestmark = pytest.mark.mindspore

TINY = SIAMRPN_PRESETS["siamrpn-tiny"]
TINY_ALEX = SiamRPNConfig(backbone="alexnet", alexnet_channels=(8, 16, 16, 16, 16), corr_channels=8)


def _t(array) -> "ms.Tensor":
    return ms.Tensor(np.ascontiguousarray(array, dtype=np.float32))


def _randomise(model: nn.Cell, seed: int = 0) -> nn.Cell:
    """Non-trivial BN statistics and affine terms and non-zero biases, so eval-mode tests exercise them."""
    rng = np.random.default_rng(seed)
    bn = {id(c) for _, c in model.cells_and_names() if isinstance(c, nn.BatchNorm2d)}
    for cell_name, cell in model.cells_and_names():
        for local, param in cell.parameters_and_names(expand=False):
            n = param.shape[0]
            if id(cell) in bn:
                value = {"moving_mean": lambda: rng.normal(0, 0.5, n),
                         "moving_variance": lambda: rng.uniform(0.5, 1.5, n),
                         "gamma": lambda: rng.uniform(0.5, 1.5, n),
                         "beta": lambda: rng.normal(0, 0.1, n)}[local]()
            elif local == "bias":
                value = rng.normal(0, 0.05, n)
            else:
                continue
            ms.ops.assign(param, _t(value))
    model.set_train(False)
    return model


def _crops(rng, n=1):
    return rng.random((n, 3, 127, 127), dtype=np.float32) * 255, rng.random((n, 3, 255, 255), dtype=np.float32) * 255


@pytest.fixture(scope="module")
def tiny():
    """One randomised tiny model in eval mode, shared by the read-only tests of this module."""
    return _randomise(SiamRPN(TINY), seed=1)


# -- architecture ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [TINY, TINY_ALEX])
def test_shapes_of_the_three_graphs_and_the_training_forward(config, rng):
    model = SiamRPN(config)
    model.set_train(False)
    z, x = _crops(rng)
    kernel, features = model.template(_t(z)), model.search(_t(x))
    cls, loc = model.head(kernel, features)
    c, k, s, r, a = config.corr_channels, config.kernel_size, config.search_size, config.score_size, 5
    assert kernel.shape == (1, 2 * c, k, k) and features.shape == (1, 2 * c, s, s)
    assert cls.shape == (1, 2 * a, r, r) and loc.shape == (1, 4 * a, r, r)
    z2, x2 = _crops(rng, 3)
    cls2, loc2 = model(_t(z2), _t(x2))
    assert cls2.shape == (3, 2 * a, r, r) and loc2.shape == (3, 4 * a, r, r)


def test_parameter_names_are_the_pytorch_state_dict_names():
    model = build_siamrpn("siamrpn-tiny")
    keys = checkpoint_state(model)
    n_bn = sum(isinstance(c, nn.BatchNorm2d) for _, c in model.cells_and_names())
    assert len(keys) == len(model.trainable_params()) + 2 * n_bn
    for key in ("backbone.stem_conv.weight", "backbone.stem_bn.running_var", "backbone.blocks.0.eca.conv.weight",
                "backbone.blocks.1.expand_conv.weight", "backbone.blocks.4.project_bn.weight",
                "head.template_conv.0.weight", "head.search_conv.1.running_mean", "head.cls_head.3.bias",
                "head.loc_head.3.weight"):
        assert key in keys, key
    assert tuple(keys["backbone.blocks.0.eca.conv.weight"].shape) == (1, 1, 1, 3)
    assert "backbone.blocks.0.expand_conv.weight" not in keys  # stage 1 has no expansion, as in the twin
    alex = checkpoint_state(SiamRPN(TINY_ALEX))
    assert "backbone.conv5.1.running_var" in alex and "backbone.conv1.0.bias" in alex


def test_presets_and_build_errors():
    assert build_siamrpn("siamrpn-tiny").config is TINY
    with pytest.raises(UnknownChoiceError, match="siamrpn-eca"):
        build_siamrpn("siamrpn-resnet")
    with pytest.raises(InvalidArgumentError):
        SiamRPN("siamrpn-tiny")
    with pytest.raises(InvalidArgumentError, match="SiamRPN"):
        graph_modules(nn.Dense(2, 2))


def test_eca_is_a_1d_convolution_across_channels(rng):
    eca = ECA(64)
    w = rng.normal(size=(1, 1, 1, 3)).astype(np.float32)
    ms.ops.assign(eca.conv.weight, _t(w))
    x = rng.normal(size=(2, 64, 5, 7)).astype(np.float32)
    pooled = np.pad(x.mean((2, 3)), ((0, 0), (1, 1)))
    conv = sum(w[0, 0, 0, j] * pooled[:, j:j + 64] for j in range(3))
    ref = x / (1 + np.exp(-conv))[:, :, None, None]
    np.testing.assert_allclose(eca(_t(x)).asnumpy(), ref, rtol=1e-5, atol=1e-6)
    assert eca.kernel_size == 3 and eca.conv.bias is None


@pytest.mark.parametrize("nk", [1, 3])
def test_export_correlation_equals_the_grouped_convolution(nk, rng):
    kernel = rng.normal(size=(nk, 6, 5, 5)).astype(np.float32)
    features = rng.normal(size=(3, 6, 29, 29)).astype(np.float32)
    fast = xcorr_depthwise(_t(kernel), _t(features)).asnumpy()
    safe = xcorr_depthwise_export(_t(kernel), _t(features), 5, 25).asnumpy()
    win = np.lib.stride_tricks.sliding_window_view(features, (5, 5), axis=(2, 3))  # (3, 6, 25, 25, 5, 5)
    ref = np.einsum("ncijkl,nckl->ncij", win, np.broadcast_to(kernel, (3, 6, 5, 5)))
    assert fast.shape == safe.shape == (3, 6, 25, 25)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(safe, ref, rtol=1e-4, atol=1e-4)


def test_correlation_pairing_errors_are_typed(rng):
    features = _t(rng.normal(size=(3, 6, 29, 29)))
    with pytest.raises(InvalidArgumentError, match="2 templates for 3"):
        xcorr_depthwise(_t(rng.normal(size=(2, 6, 5, 5))), features)
    with pytest.raises(InvalidArgumentError, match="channels"):
        xcorr_depthwise(_t(rng.normal(size=(1, 4, 5, 5))), features)
    head = RPNHead(6, 3, 5)
    with pytest.raises(InvalidArgumentError, match="2 templates for 3"):
        head(_t(rng.normal(size=(2, 6, 5, 5))), features)


@pytest.mark.parametrize("config", [TINY, TINY_ALEX])
def test_split_graphs_equal_the_training_forward(config, rng):
    model = _randomise(SiamRPN(config), seed=3)
    graphs = graph_modules(model)
    z, x = _crops(rng, 2)
    cls, loc = model(_t(z), _t(x))
    for i in range(2):
        kernel = graphs["template"](_t(z[i:i + 1]))
        features = graphs["search"](_t(x[i:i + 1]))
        for got, ref in zip(graphs["head"](kernel, features), (cls[i:i + 1], loc[i:i + 1])):
            got, ref = got.asnumpy(), ref.asnumpy()
            # Relative to the map's scale: batch 1 and batch 2 (and MindSpore's CPU threads) sum the convolutions in
            # different orders, and the maps come from large features (measured up to 3e-5 on the AlexNet variant).
            assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    # The wrappers leave the model's parameter names alone (auto_prefix=False).
    assert all(not p.name.startswith("model.") for p in model.get_parameters())


# -- export ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [TINY, TINY_ALEX])
def test_three_graphs_export_to_onnx_and_run_in_onnx_runtime(tmp_path, config, rng):
    """MindSpore -> ONNX -> ONNX Runtime for each graph, checked on other inputs than the exported ones; export-safe
    operators only, and no Conv in any graph (the head's above all) whose weight is computed at run time."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = _randomise(SiamRPN(config), seed=5)
    graphs = graph_modules(model)

    def examples():
        z, x = _crops(rng)
        kernel, features = graphs["template"](_t(z)), graphs["search"](_t(x))
        return {"template": (_t(z),), "search": (_t(x),), "head": (kernel, features)}

    traced, checks = examples(), examples()
    allowed = {"Conv", "BatchNormalization", "Relu", "Sigmoid", "Mul", "Add", "Slice", "Reshape", "ReduceMean", "Pad",
               "MaxPool", "Constant", "Identity", "Cast"}
    for name, graph in graphs.items():
        inputs, outputs = GRAPH_IO[name]
        ms.export(graph, *traced[name], file_name=str(tmp_path / name), file_format="ONNX")
        path = tmp_path / f"{name}.onnx"
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        ops = {n.op_type for n in proto.graph.node}
        assert ops <= allowed, (name, ops - allowed)
        constants = {i.name for i in proto.graph.initializer}
        constants |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
        for node in proto.graph.node:
            if node.op_type == "Conv":
                assert node.input[1] in constants, f"{name}: Conv {node.name} has a runtime weight"
        if name == "head":
            assert {"Slice", "Mul", "Add"} <= ops  # the correlation's export form
        assert [i.name for i in proto.graph.input if i.name not in constants] == list(inputs)
        assert len(proto.graph.output) == len(outputs)
        dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input]
        assert all(all(v > 0 for v in shape) for shape in dims), dims  # static shapes
        expected = graph(*checks[name])
        expected = expected if isinstance(expected, tuple) else (expected,)
        assert_onnx_matches(path, [a.asnumpy() for a in checks[name]], [e.asnumpy() for e in expected], name)


# -- loss ------------------------------------------------------------------------------------------------------------
def _anchor_box(grid, a, r, c):
    cx, cy, w, h = grid[:, a, r, c]
    return (cx - (w - 1) / 2, cy - (h - 1) / 2, w, h)


def test_rpn_loss_counts_only_sampled_anchors_and_positives(rng):
    grid = anchor_grid(TINY.tracking_params())
    t = batch_targets(grid, np.array([_anchor_box(grid, 2, 12, 12)]), np.random.default_rng(0))
    cls_t, loc_t, w = t["cls"], t["loc"], t["loc_weight"]
    # Confident, correct logits and exact offsets: loss near 0. Ignored anchors may hold anything.
    logits = np.where(cls_t == POSITIVE, 20.0, -20.0)
    logits = np.where(cls_t == IGNORED, rng.normal(size=logits.shape) * 50, logits)
    cls = np.stack([-logits, logits], 1).reshape(1, 10, 25, 25)
    loc = loc_t.copy()
    loc[:, :, cls_t[0] != POSITIVE] = 7.0  # only positives are regressed
    assert float(rpn_loss(_t(cls), _t(loc.reshape(1, 20, 25, 25)), cls_t, loc_t, w)) < 1e-6
    # Even odds: ln 2 for classification; an offset error of 1 per coordinate adds λ·4·(1 − 1/18).
    loss = rpn_loss(_t(np.zeros((1, 10, 25, 25))), _t((loc_t + 1).reshape(1, 20, 25, 25)), cls_t, loc_t, w)
    assert float(loss) == pytest.approx(math.log(2) + 1.2 * 4 * (1 - 0.5 / 9), rel=1e-5)
    # Small offset errors are in smooth-L1's quadratic part: 0.5 σ² d² per coordinate.
    loss = rpn_loss(_t(np.zeros((1, 10, 25, 25))), _t((loc_t + 0.1).reshape(1, 20, 25, 25)), cls_t, loc_t, w,
                    reg_weight=1.0)
    assert float(loss) == pytest.approx(math.log(2) + 4 * 0.5 * 9 * 0.01, rel=1e-5)
    with pytest.raises(InvalidArgumentError, match="reg_weight"):
        rpn_loss(_t(cls), _t(loc.reshape(1, 20, 25, 25)), cls_t, loc_t, w, reg_weight=-1)
    with pytest.raises(InvalidArgumentError, match="neg_hard"):
        rpn_loss(_t(cls), _t(loc.reshape(1, 20, 25, 25)), cls_t, loc_t, w, cls_loss="ohem", neg_hard=0)


# -- checkpoints -----------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_is_strict(tmp_path, tiny, rng):
    path = save_siamrpn(tiny, tmp_path / "m.safetensors", {"note": "x"})
    meta = read_metadata(path)
    assert meta["family"] == "siamrpn" and meta["note"] == "x" and json.loads(meta["config"]) == TINY.to_dict()
    loaded = load_siamrpn(path)
    assert loaded.config == TINY and not loaded.training
    z, x = _crops(rng, 2)
    for a, b in zip(tiny(_t(z), _t(x)), loaded(_t(z), _t(x))):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        assert set(f.keys()) == set(checkpoint_state(tiny))

    # A checkpoint of another architecture is refused, naming the first mismatch.
    other = SiamRPN(SiamRPNConfig(backbone="effnet-eca", width=0.25, depth=0.25, corr_channels=8))
    save_weights(other, tmp_path / "other.safetensors", {"family": "siamrpn", "config": TINY.to_dict()})
    with pytest.raises(CheckpointError, match="head.template_conv.0.weight"):
        load_siamrpn(tmp_path / "other.safetensors")
    from edgetrack.models.mindspore.siamfc import build_siamfc, save_siamfc

    save_siamfc(build_siamfc("siamfc-tiny"), tmp_path / "fc.safetensors")
    with pytest.raises(CheckpointError, match="not a SiamRPN checkpoint"):
        load_siamrpn(tmp_path / "fc.safetensors")


def test_mindspore_twin_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, edgetrack.models.mindspore.siamrpn, edgetrack.models.mindspore.train; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


# -- trainer ---------------------------------------------------------------------------------------------------------
def test_train_config_resolves_the_family_defaults():
    from edgetrack.models.mindspore.train import TrainConfig, family_of

    cfg = TrainConfig(model="siamrpn-eca")
    assert (cfg.loss, cfg.reg_weight, cfg.pairs) == ("rpn", 1.2, RPN_PAIRS)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TrainConfig(model="siamfc-hsm").reg_weight is None and TrainConfig().pairs == PairConfig()
    assert family_of("siamrpn-tiny").name == "siamrpn" and family_of("siamfc").name == "siamfc"
    with pytest.raises(UnknownChoiceError, match="rpn"):
        TrainConfig(model="siamrpn-tiny", loss="hsm")
    # rpn-ohem: its counts filled in, so config.json and the checkpoints record them; refused with another loss.
    ohem = TrainConfig(model="siamrpn-tiny", loss="rpn-ohem")
    assert (ohem.neg_random, ohem.neg_hard, cfg.neg_random, cfg.neg_hard) == (16, 32, None, None)
    assert ohem.to_dict()["neg_hard"] == 32 and TrainConfig.from_dict(ohem.to_dict()) == ohem
    assert family_of("siamrpn-tiny").cls_loss(ohem) == {"cls_loss": "ohem", "neg_hard": 32}
    with pytest.raises(InvalidArgumentError, match="rpn-ohem"):
        TrainConfig(model="siamrpn-tiny", neg_random=4)
    with pytest.raises(InvalidArgumentError, match="neg_random"):
        TrainConfig(model="siamrpn-tiny", loss="rpn-ohem", neg_random=-1)
    with pytest.raises(InvalidArgumentError, match="regression branch"):
        TrainConfig(model="siamfc-tiny", reg_weight=1.0)
    with pytest.raises(InvalidArgumentError, match="reg_weight"):
        TrainConfig(model="siamrpn-tiny", reg_weight=-1.0)
    with pytest.raises(UnknownChoiceError, match="siamrpn-alexnet"):
        TrainConfig(model="siamrpn-vgg")


def test_config_from_args_takes_the_family_pairs():
    import argparse

    from edgetrack.models.mindspore.train import config_from_args

    args = argparse.Namespace(model="siamrpn-tiny", out="run", epochs=2, loss=None, reg_weight=0.5, max_shift=32.0)
    cfg = config_from_args(args)
    assert (cfg.loss, cfg.reg_weight, cfg.epochs) == ("rpn", 0.5, 2)
    assert cfg.pairs.max_shift == 32.0 and cfg.pairs.scale_jitter == RPN_PAIRS.scale_jitter
    args = argparse.Namespace(model="siamrpn-tiny", out="run", loss="rpn-ohem", neg_random=8, neg_hard=24)
    assert (config_from_args(args).neg_random, config_from_args(args).neg_hard) == (8, 24)


def test_pair_workers_deliver_the_same_targets(moving_target_sequence):
    from edgetrack.models.mindspore.train import _batch_stream

    cache = CropCache.build([moving_target_sequence("a", n=4)], RPN_PAIRS, progress=False)
    sampler = PairSampler(cache, RPN_PAIRS, seed=(2, 0))
    transform = RPNTargets(anchor_grid(TINY.tracking_params()), sampler.seed)
    alone = list(_batch_stream(sampler, 2, 1, 5, workers=0, transform=transform))
    pooled = list(_batch_stream(sampler, 2, 1, 5, workers=2, transform=transform))
    assert [b["index"] for b in pooled] == [1, 2, 3, 4]
    for a, b in zip(alone, pooled, strict=True):
        for key in ("x", "cls", "loc", "loc_weight"):
            np.testing.assert_array_equal(a[key], b[key])
        ref = transform(sampler.sample_at(a["index"], 2))  # the same arrays the PyTorch trainer computes
        np.testing.assert_array_equal(a["cls"], ref["cls"])


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


@pytest.mark.slow
def test_cli_trains_siamrpn_tiny_with_mindspore_and_falling_loss(tmp_path):
    """``edgetrack train --framework mindspore`` on a tiny GOT-10k folder: 16 steps of 2 pairs (the depthwise
    convolutions' weight gradients are slow on MindSpore's CPU kernels), loss falling, files as the PyTorch run's."""
    from edgetrack.cli import main

    data = _write_got10k(tmp_path / "got")
    out = tmp_path / "run"
    argv = ["train", "--model", "siamrpn-tiny", "--framework", "mindspore", "--data", f"got10k:{data}", "--out",
            str(out), "--epochs", "2", "--steps-per-epoch", "8", "--batch-size", "2", "--lr-start", "3e-2",
            "--lr-end", "3e-3", "--log-every", "1", "--reg-weight", "1.0"]
    assert main(argv) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 17))
    loss = np.array([e["loss"] for e in log])
    assert np.isfinite(loss).all() and loss[-5:].mean() < 0.85 * loss[:5].mean(), loss
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["loss"], config["reg_weight"], config["framework"]) == (
        "siamrpn-tiny", "rpn", 1.0, "mindspore")
    assert config["pairs"]["scale_jitter"] == RPN_PAIRS.scale_jitter
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"epoch-000{e}{s}.safetensors" for e in (1, 2) for s in ("", ".state")]
    model = load_siamrpn(out / "final.safetensors")
    assert model.config == TINY
    meta = read_metadata(out / "final.safetensors")
    assert meta["step"] == "16" and meta["framework"] == "mindspore"
    from safetensors import safe_open

    with safe_open(str(out / "checkpoints" / "epoch-0002.state.safetensors"), framework="numpy") as f:
        assert "momentum.backbone.blocks.0.eca.conv.weight" in set(f.keys())
