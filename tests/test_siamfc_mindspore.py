"""HSM-SiamFC in MindSpore: shapes, parameter names, export to ONNX and MindIR, losses, checkpoints, the trainer.

Agreement with the PyTorch twin on full-size models is tests/test_siamfc_parity.py; the comparisons here that need
PyTorch (losses on the same inputs, checkpoints read by the other framework) skip without it.
"""
import json
import math

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)
from mindspore import nn  # noqa: E402

from edgetrack.errors import BackendError, CheckpointError, InvalidArgumentError, UnknownChoiceError  # noqa: E402
from edgetrack.models.labels import siamfc_labels  # noqa: E402
from edgetrack.models.mindspore.checkpoint import (  # noqa: E402
    BN_RENAMES,
    checkpoint_state,
    load_weights,
    read_metadata,
    save_weights,
)
from edgetrack.models.mindspore.losses import balanced_logistic_loss, build_loss, hsm_loss  # noqa: E402
from edgetrack.models.mindspore.siamfc import (  # noqa: E402
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

pytestmark = pytest.mark.mindspore

TINY = SIAMFC_PRESETS["siamfc-tiny"]
TINY_PLAIN = SiamFCConfig(channels=TINY.channels, fusion=False)

# The contract with the PyTorch twin (the same list as tests/test_siamfc_torch.py): one file loads into both.
TINY_KEYS = (
    [f"backbone.conv{i}.0.{p}" for i in range(1, 6) for p in ("weight", "bias")]
    + [f"backbone.conv{i}.1.{p}" for i in range(1, 6) for p in ("weight", "bias", "running_mean", "running_var")]
    + [f"fusion.lateral{i}.0.{p}" for i in (5, 3) for p in ("weight", "bias")]
    + [f"fusion.lateral{i}.1.{p}" for i in (5, 3) for p in ("weight", "bias", "running_mean", "running_var")]
    + [f"fusion.out_bn.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
    + ["head.bias"]
)


def _t(array) -> "ms.Tensor":
    return ms.Tensor(np.ascontiguousarray(array, dtype=np.float32))


def _randomise(model: nn.Cell, seed: int = 0) -> nn.Cell:
    """Non-trivial BN statistics and affine terms and a non-zero head bias, so eval-mode tests exercise them."""
    rng = np.random.default_rng(seed)
    state = checkpoint_state(model)
    for key, param in state.items():
        n = param.shape[0]
        if key.endswith("running_mean"):
            value = rng.normal(0, 0.5, n)
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, n)
        elif ".1.weight" in key:
            value = rng.uniform(0.5, 1.5, n)
        elif ".1.bias" in key or key == "head.bias":
            value = rng.normal(0, 0.1, n)
        else:
            continue
        ms.ops.assign(param, _t(value))
    model.set_train(False)
    return model


def _images(rng, n, side):
    return rng.random((n, 3, side, side), dtype=np.float32) * 255


# -- architecture ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [TINY, TINY_PLAIN])
def test_tiny_shapes_and_three_scale_batch(config, rng):
    model = build_siamfc(config)
    model.set_train(False)
    kernel = model.template(_t(_images(rng, 1, 127)))
    features = model.search(_t(_images(rng, 3, 255)))
    response = model.head(kernel, features)
    k, c = config.kernel_size, config.feature_channels
    assert kernel.shape == (1, c, k, k) and features.shape == (3, c, k + 16, k + 16)
    assert response.shape == (3, 1, 17, 17)
    assert model(_t(_images(rng, 2, 127)), _t(_images(rng, 2, 255))).shape == (2, 1, 17, 17)


def test_parameter_names_are_the_pytorch_state_dict_names(tmp_path):
    model = build_siamfc("siamfc-tiny")
    assert sorted(checkpoint_state(model)) == sorted(TINY_KEYS)
    assert len(checkpoint_state(model)) == len(model.trainable_params()) + 2 * 8  # + BN moving mean/var (8 BNs)
    path = save_siamfc(model, tmp_path / "tiny.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == sorted(TINY_KEYS)
        assert f.get_tensor("backbone.conv5.0.weight").shape == (16, 24, 3, 3)
    # The BN renaming is one table, both ways.
    assert BN_RENAMES == {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                          "moving_variance": "running_var"}


def test_export_safe_upsampling_equals_aligned_bilinear(rng):
    x = rng.normal(size=(2, 4, 6, 9)).astype(np.float32)
    ours = upsample2x_aligned(_t(x), _t(np.full((4, 1, 2, 2), 0.25))).asnumpy()
    # Aligned-corner bilinear n -> 2n - 1: even outputs are the inputs, odd ones the mean of two neighbours.
    rows = np.empty((2, 4, 11, 9), np.float32)
    rows[:, :, 0::2] = x
    rows[:, :, 1::2] = (x[:, :, :-1] + x[:, :, 1:]) / 2
    ref = np.empty((2, 4, 11, 17), np.float32)
    ref[..., 0::2] = rows
    ref[..., 1::2] = (rows[..., :-1] + rows[..., 1:]) / 2
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("config", [TINY, TINY_PLAIN])
def test_features_are_fully_convolutional(config, rng):
    """The template's features equal the search features of the same pixels (what correlation relies on)."""
    model = _randomise(SiamFC(config))
    x = _images(rng, 1, 255)
    fx = model.search(_t(x)).asnumpy()
    k = config.kernel_size
    for shift in (0, 5, 16):
        o = 8 * shift
        fz = model.template(_t(x[:, :, o : o + 127, o : o + 127])).asnumpy()
        ref = fx[:, :, shift : shift + k, shift : shift + k]
        assert np.abs(fz - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_head_broadcasts_one_template_and_groups_pairs(rng):
    head = CorrelationHead(out_scale=0.01)
    ms.ops.assign(head.bias, _t([0.5]))
    features = rng.normal(size=(3, 4, 21, 21)).astype(np.float32)

    def corr(f, k):  # plain valid cross-correlation, (C, S, S) * (C, k, k)
        n = f.shape[-1] - k.shape[-1] + 1
        win = np.lib.stride_tricks.sliding_window_view(f, k.shape[-2:], axis=(1, 2))[:, :n, :n]
        return np.einsum("cijkl,ckl->ij", win, k) * 0.01 + 0.5

    kernel = rng.normal(size=(1, 4, 5, 5)).astype(np.float32)
    out = head(_t(kernel), _t(features)).asnumpy()
    kernels = rng.normal(size=(3, 4, 5, 5)).astype(np.float32)
    pairs = head(_t(kernels), _t(features)).asnumpy()
    for i in range(3):
        np.testing.assert_allclose(out[i, 0], corr(features[i], kernel[0]), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(pairs[i, 0], corr(features[i], kernels[i]), rtol=1e-4, atol=1e-4)
    one = head(_t(kernels), _t(features[:1])).asnumpy()  # a template per scale, one search crop
    assert one.shape == (3, 1, 17, 17)
    for i in range(3):
        np.testing.assert_allclose(one[i, 0], corr(features[0], kernels[i]), rtol=1e-4, atol=1e-4)
    with pytest.raises(InvalidArgumentError, match="2 templates for 3"):
        head(_t(kernels[:2]), _t(features))


def test_presets_and_build_errors():
    assert build_siamfc("siamfc-tiny").config is TINY
    with pytest.raises(UnknownChoiceError, match="siamfc-tiny"):
        build_siamfc("siamfc-huge")
    with pytest.raises(InvalidArgumentError):
        SiamFC("siamfc-tiny")


def test_mindspore_twin_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, edgetrack.models.mindspore.siamfc, edgetrack.models.mindspore.losses, "
            "edgetrack.models.mindspore.checkpoint, edgetrack.models.mindspore.train; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


# -- export ----------------------------------------------------------------------------------------------------------
def test_three_graphs_export_to_onnx_and_mindir(tmp_path, rng):
    """Each graph goes MindSpore -> ONNX -> ONNX Runtime and matches MindSpore; MindIR is written and reloads."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _randomise(SiamFC(TINY), seed=1)
    graphs = graph_modules(model)
    z, x = _t(_images(rng, 1, 127)), _t(_images(rng, 3, 255))
    kernel, features = graphs["template"](z), graphs["search"](x)
    expected = {"template": kernel, "search": features, "head": graphs["head"](kernel, features)}
    allowed = {"Conv", "BatchNormalization", "MaxPool", "Relu", "Add", "Mul", "Slice", "Resize", "Constant",
               "Identity", "Cast"}
    for name, args in (("template", (z,)), ("search", (x,)), ("head", (kernel, features))):
        ref = expected[name].asnumpy()
        ms.export(graphs[name], *args, file_name=str(tmp_path / name), file_format="ONNX")
        path = tmp_path / f"{name}.onnx"
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert ops <= allowed, ops
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {i.name: a.asnumpy() for i, a in zip(sess.get_inputs(), args)})[0]
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), name

        ms.export(graphs[name], *args, file_name=str(tmp_path / name), file_format="MINDIR")
        mindir = tmp_path / f"{name}.mindir"
        assert mindir.is_file() and mindir.stat().st_size > 0
        loaded = nn.GraphCell(ms.load(str(mindir)))
        again = loaded(*args)
        again = again[0] if isinstance(again, (tuple, list)) else again
        assert np.abs(again.asnumpy() - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), name


# -- losses ----------------------------------------------------------------------------------------------------------
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
    logits = _t(np.array(v).reshape(1, 1, 2, 2))
    assert float(hsm_loss(logits, np.array([1.0, 0.0, 1.0, 0.0]).reshape(2, 2))) == pytest.approx(expected, rel=1e-6)
    assert float(hsm_loss(logits, np.array(y, np.float32).reshape(2, 2))) == pytest.approx(expected, rel=1e-6)


def test_loss_argument_checks():
    logits = _t(np.zeros((1, 1, 17, 17)))
    with pytest.raises(InvalidArgumentError, match="alpha"):
        hsm_loss(logits, siamfc_labels(), alpha=1.5)
    with pytest.raises(InvalidArgumentError, match="gamma"):
        hsm_loss(logits, siamfc_labels(), gamma=-1)
    with pytest.raises(UnknownChoiceError, match="hsm, logistic"):
        build_loss("focal")
    with pytest.raises(InvalidArgumentError):
        build_loss("hsm", alpha=2.0)


@pytest.mark.parametrize("labels_kind", ["siamfc", "ignored", "pm1"])
def test_losses_equal_the_pytorch_losses(labels_kind, rng):
    torch = pytest.importorskip("torch")
    from edgetrack.models.torch import losses as torch_losses

    logits = (rng.normal(size=(4, 1, 17, 17)) * 4).astype(np.float32)
    logits[0, 0, 0, :3] = (-60.0, 60.0, 25.0)  # saturated cells: softplus's large-input branch
    labels = {"siamfc": siamfc_labels(), "ignored": siamfc_labels(r_neg=40),
              "pm1": siamfc_labels() * 2 - 1}[labels_kind]
    tl, tlab = torch.from_numpy(logits), torch.from_numpy(labels)
    pairs = [
        (hsm_loss(_t(logits), labels), torch_losses.hsm_loss(tl, tlab)),
        (hsm_loss(_t(logits), labels, 0.5, 0.0), torch_losses.hsm_loss(tl, tlab, 0.5, 0.0)),
        (hsm_loss(_t(logits), labels, 0.8, 3.0), torch_losses.hsm_loss(tl, tlab, 0.8, 3.0)),
        (balanced_logistic_loss(_t(logits), labels), torch_losses.balanced_logistic_loss(tl, tlab)),
        (build_loss("hsm", alpha=0.6, gamma=2.0)(_t(logits), _t(labels)), torch_losses.hsm_loss(tl, tlab)),
        (build_loss("logistic")(_t(logits), _t(labels)), torch_losses.balanced_logistic_loss(tl, tlab)),
    ]
    for ours, theirs in pairs:
        assert float(ours) == pytest.approx(float(theirs), rel=1e-6, abs=1e-7)


# -- checkpoints -----------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path, rng):
    src = _randomise(build_siamfc("siamfc-tiny"), seed=3)
    path = save_siamfc(src, tmp_path / "m.safetensors", metadata={"epoch": 7, "note": "x"})
    meta = read_metadata(path)
    assert meta["family"] == "siamfc" and meta["epoch"] == "7" and meta["note"] == "x"
    assert json.loads(meta["config"]) == TINY.to_dict()
    dst = load_siamfc(path)
    assert dst.config == TINY and not dst.training
    z, x = _t(_images(rng, 1, 127)), _t(_images(rng, 3, 255))
    np.testing.assert_array_equal(dst.head(dst.template(z), dst.search(x)).asnumpy(),
                                  src.head(src.template(z), src.search(x)).asnumpy())
    other = build_siamfc("siamfc-tiny")
    load_weights(other, path)
    np.testing.assert_array_equal(other.backbone.conv3[1].moving_mean.asnumpy(),
                                  src.backbone.conv3[1].moving_mean.asnumpy())


def test_loading_reaches_an_already_compiled_graph(tmp_path, rng):
    """Weights loaded after a graph was compiled are the weights it computes with (ops.assign, not set_data)."""
    a, b = build_siamfc("siamfc-tiny"), _randomise(build_siamfc("siamfc-tiny"), seed=4)
    a.set_train(False)
    path = save_weights(b, tmp_path / "b.safetensors")
    compiled = ms.jit(_template_of(a))
    z = _t(_images(rng, 1, 127))
    compiled(z)
    load_weights(a, path)
    np.testing.assert_allclose(compiled(z).asnumpy(), b.template(z).asnumpy(), rtol=1e-5, atol=1e-3)


def _template_of(model):
    def run(z):
        return model.template(z)

    return run


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
        load_siamfc(plain)


def test_num_batches_tracked_is_ignored(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = save_weights(_randomise(SiamFC(TINY)), tmp_path / "m.safetensors")
    tensors = load_file(str(path))
    tensors["backbone.conv1.1.num_batches_tracked"] = np.array(12, np.int64)
    save_file(tensors, str(path))
    load_weights(SiamFC(TINY), path)


def test_torch_reads_mindspore_checkpoints_and_back(tmp_path, rng):
    """MindSpore -> file -> PyTorch and PyTorch -> file -> MindSpore, outputs compared; errors read the same."""
    torch = pytest.importorskip("torch")
    from edgetrack.models.torch import checkpoint as torch_ckpt
    from edgetrack.models.torch import siamfc as torch_siamfc

    z, x = _images(rng, 1, 127), _images(rng, 3, 255)

    def torch_out(model):
        with torch.no_grad():
            return model.head(model.template(torch.from_numpy(z)), model.search(torch.from_numpy(x))).numpy()

    def ms_out(model):
        return model.head(model.template(_t(z)), model.search(_t(x))).asnumpy()

    ms_model = _randomise(build_siamfc("siamfc-tiny"), seed=5)
    path = save_siamfc(ms_model, tmp_path / "from_ms.safetensors", metadata={"epoch": 2})
    torch_model = torch_siamfc.load_siamfc(path)  # the torch loader, strict
    ref = ms_out(ms_model)
    assert np.abs(torch_out(torch_model) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    for key, value in torch_ckpt.checkpoint_state(torch_model).items():
        np.testing.assert_array_equal(value.numpy(), checkpoint_state(ms_model)[key].asnumpy())

    torch_path = torch_siamfc.save_siamfc(torch_model, tmp_path / "from_torch.safetensors")
    back = load_siamfc(torch_path)
    np.testing.assert_array_equal(ms_out(back), ref)

    # The same mismatch reads the same in both frameworks.
    plain = save_weights(SiamFC(TINY_PLAIN), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError) as ours:
        load_weights(SiamFC(TINY), plain)
    with pytest.raises(CheckpointError) as theirs:
        torch_ckpt.load_weights(torch_siamfc.SiamFC(TINY), plain)
    assert str(ours.value) == str(theirs.value)


# -- trainer ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def pair_cache(moving_target_sequence):
    from edgetrack.models.pairs import CropCache, PairConfig

    cfg = PairConfig(max_shift=8)
    seqs = [moving_target_sequence("a", n=8), moving_target_sequence("b", n=6, step=(2, 3))]
    return CropCache.build(seqs, cfg, progress=False), cfg


def _train_cfg(tmp_path, pairs, **kw):
    from edgetrack.models.mindspore.train import TrainConfig

    base = dict(model="siamfc-tiny", epochs=3, steps_per_epoch=10, batch_size=4, lr_start=3e-2, lr_end=1e-3,
                out=str(tmp_path / "run"), log_every=2, progress=False, pairs=pairs)
    base.update(kw)
    return TrainConfig(**base)


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tiny_model_learns_and_its_checkpoint_loads_into_pytorch(tmp_path, pair_cache, rng):
    from edgetrack.models.mindspore.train import lr_at, train

    cache, pairs = pair_cache
    cfg = _train_cfg(tmp_path, pairs)
    final = train(cfg, cache)
    out = tmp_path / "run"
    log = _log(out)
    assert [r["step"] for r in log] == list(range(2, 31, 2))
    assert log[0]["lr"] == pytest.approx(lr_at(1, 30, 3e-2, 1e-3)) and log[-1]["lr"] == pytest.approx(1e-3)
    losses = [r["loss"] for r in log]
    assert all(math.isfinite(v) for v in losses)
    early, late = np.mean(losses[:3]), np.mean(losses[-3:])
    assert late < 0.85 * early, losses  # falls clearly, beyond step-to-step noise
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"epoch-{e:04d}{s}.safetensors" for e in (1, 2, 3) for s in ("", ".state")]
    config = json.loads((out / "config.json").read_text())
    assert config["framework"] == "mindspore" and config["loss"] == "hsm" and config["steps_per_epoch"] == 10

    meta = read_metadata(final)
    assert meta["step"] == "30" and json.loads(meta["train_config"])["model"] == "siamfc-tiny"
    trained = load_siamfc(final)
    z, x = _images(rng, 1, 127), _images(rng, 3, 255)
    ref = trained.head(trained.template(_t(z)), trained.search(_t(x))).asnumpy()
    torch = pytest.importorskip("torch")
    from edgetrack.models.torch.siamfc import load_siamfc as torch_load_siamfc

    twin = torch_load_siamfc(final)
    with torch.no_grad():
        got = twin.head(twin.template(torch.from_numpy(z)), twin.search(torch.from_numpy(x))).numpy()
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_resumed_run_equals_uninterrupted_run(tmp_path, pair_cache):
    from safetensors.numpy import load_file

    from edgetrack.models.mindspore.train import train

    cache, pairs = pair_cache
    cfg = _train_cfg(tmp_path, pairs, epochs=2, steps_per_epoch=2, batch_size=2, log_every=1)
    final = train(cfg, cache)
    whole = load_file(str(final))
    log_whole = _log(tmp_path / "run")
    with pytest.raises(InvalidArgumentError, match="already holds a training run"):
        train(cfg, cache)
    # Interrupted after epoch 1: epoch 2's files never written.
    (tmp_path / "run" / "checkpoints" / "epoch-0002.safetensors").unlink()
    (tmp_path / "run" / "checkpoints" / "epoch-0002.state.safetensors").unlink()
    final.unlink()
    resumed = load_file(str(train(cfg, cache, resume=True)))
    def steps(log):  # everything but the wall-clock fields
        return [{k: v for k, v in r.items() if k not in ("time", "pairs_per_s")} for r in log]

    assert steps(_log(tmp_path / "run")) == steps(log_whole)
    for key, value in whole.items():
        np.testing.assert_allclose(resumed[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    with pytest.raises(InvalidArgumentError, match="cannot resume.*batch_size"):
        (tmp_path / "run" / "final.safetensors").unlink()
        train(_train_cfg(tmp_path, pairs, epochs=2, steps_per_epoch=2, batch_size=3, log_every=1), cache,
              resume=True)


def test_pair_workers_deliver_the_same_stream(pair_cache):
    from edgetrack.models.mindspore.train import _batch_stream
    from edgetrack.models.pairs import PairSampler

    cache, pairs = pair_cache
    sampler = PairSampler(cache, pairs, seed=(0, 0))
    alone = list(_batch_stream(sampler, 2, 3, 7, workers=0))
    pooled = list(_batch_stream(sampler, 2, 3, 7, workers=2))
    assert [b["index"] for b in pooled] == [3, 4, 5, 6]
    for a, b in zip(alone, pooled):
        np.testing.assert_array_equal(a["x"], b["x"])
        np.testing.assert_array_equal(a["labels"], b["labels"])


def test_devices_are_honoured_or_refused():
    from edgetrack.models.mindspore.train import TrainConfig, set_device

    assert set_device("cpu") == "CPU"
    if not ms.hal.is_available("Ascend"):
        with pytest.raises(BackendError, match="'Ascend' was asked for"):
            set_device("ascend")
    if not ms.hal.is_available("GPU"):
        with pytest.raises(BackendError, match="'GPU' was asked for"):
            set_device("gpu")
    assert ms.get_context("device_target") == "CPU"  # a refused request leaves the CPU context usable
    with pytest.raises(UnknownChoiceError, match="ascend, cpu, cuda, gpu"):
        set_device("npu")
    with pytest.raises(UnknownChoiceError):
        TrainConfig(device="tpu")
    assert TrainConfig(device="Ascend").device == "ascend"


def test_train_from_args_refuses_pytorch_only_options(tmp_path):
    import argparse

    from edgetrack.models.mindspore.train import config_from_args, train_from_args

    args = argparse.Namespace(model="siamfc-tiny", data=[], out=tmp_path / "run", epochs=2, steps_per_epoch=None,
                              batch_size=None, lr_start=None, lr_end=None, loss=None, alpha=None, gamma=None,
                              device="ascend", workers=None, resume=False, seed=None, cache=None, amp=None,
                              channels_last=None, log_every=None, frame_stride=None)
    cfg = config_from_args(args)
    assert (cfg.model, cfg.epochs, cfg.device, cfg.batch_size, cfg.loss) == ("siamfc-tiny", 2, "ascend", 8, "hsm")
    with pytest.raises(InvalidArgumentError, match="no training data"):
        train_from_args(args)
    with pytest.raises(InvalidArgumentError, match="--amp"):
        config_from_args(argparse.Namespace(**{**vars(args), "amp": True}))
