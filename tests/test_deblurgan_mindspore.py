"""DeblurGAN-v2 in MindSpore: generator shapes and identity start, parameter names, eval determinism, export to ONNX
(127 and 255, run in ONNX Runtime), checkpoints, metrics and losses, and the MindSpore trainer (resume, command line,
learning) on tiny data.

Agreement with the PyTorch twin is tests/test_deblurgan_parity.py; nothing here needs PyTorch.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)
from mindspore import nn  # noqa: E402

from edgetrack.errors import BackendError, CheckpointError, InvalidArgumentError, UnknownChoiceError  # noqa: E402
from edgetrack.models.blur_pairs import BlurCropConfig, BlurFrames, open_blur_pairs  # noqa: E402
from edgetrack.models.deblur_config import DEBLURGAN_PRESETS, DeblurGANConfig  # noqa: E402
from edgetrack.models.mindspore.checkpoint import checkpoint_state, read_metadata  # noqa: E402
from edgetrack.models.mindspore.deblurgan import (  # noqa: E402
    ContentLoss,
    FPNMobileNetV2,
    NLayerDiscriminator,
    build_deblurgan,
    build_discriminator,
    double_scale_loss,
    load_deblurgan,
    pad_to_multiple,
    psnr,
    ralsgan_d_loss,
    ralsgan_g_loss,
    save_deblurgan,
    ssim,
)

pytestmark = pytest.mark.mindspore
TINY = DEBLURGAN_PRESETS["deblurgan-tiny"]
SIZES = (127, 255)


def _t(array) -> "ms.Tensor":
    return ms.Tensor(np.ascontiguousarray(array, dtype=np.float32))


def trained_like(seed: int = 0) -> FPNMobileNetV2:
    """The tiny generator with BN statistics and affine terms away from their initial values and a non-zero
    ``final`` conv (so it is not the identity); eval mode."""
    rng = np.random.default_rng(seed)
    g = build_deblurgan("deblurgan-tiny")
    for _, cell in g.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            n = cell.num_features
            for param, value in ((cell.moving_mean, rng.normal(0, 0.1, n)), (cell.moving_variance,
                                 rng.uniform(0.5, 2.0, n)), (cell.gamma, rng.uniform(0.5, 1.5, n)),
                                 (cell.beta, rng.normal(0, 0.1, n))):
                ms.ops.assign(param, _t(value))
    ms.ops.assign(g.final.weight, _t(rng.normal(0, 0.01, g.final.weight.shape)))
    ms.ops.assign(g.final.bias, _t(rng.normal(0, 0.01, 3)))
    g.set_train(False)
    return g


def crops(n: int, size, seed: int = 0) -> np.ndarray:
    h, w = (size, size) if isinstance(size, int) else size
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, h, w)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    return trained_like()


# -- generator --------------------------------------------------------------------------------------------------------
def test_untrained_generator_is_the_identity_at_any_size():
    g = build_deblurgan("deblurgan-tiny")
    g.set_train(False)
    for size in ((127, 127), (40, 70)):
        x = crops(2, size)
        y = g(_t(x)).asnumpy()
        assert y.shape == x.shape
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-4)  # only the 0..255 <-> [-1, 1] rounding
    x = crops(1, 45) / 127.5 - 1
    np.testing.assert_array_equal(g.restore(_t(x)).asnumpy(), x)


def test_padding_repeats_the_last_row_and_column():
    x = crops(1, (33, 35))
    padded = pad_to_multiple(_t(x)).asnumpy()
    assert padded.shape == (1, 3, 64, 64)
    np.testing.assert_array_equal(padded[:, :, :33, :35], x)
    np.testing.assert_array_equal(padded[:, :, 40, :35], x[:, :, 32])
    np.testing.assert_array_equal(padded[:, :, 50, 60], x[:, :, 32, 34])


def test_parameter_names_are_the_pytorch_state_dict_names():
    keys = checkpoint_state(build_deblurgan("deblurgan-tiny"))
    for key in ("fpn.enc0.0.0.weight", "fpn.enc0.0.1.running_var", "fpn.enc0.1.conv.0.0.weight",
                "fpn.enc1.0.conv.0.1.running_mean", "fpn.enc1.0.conv.3.weight", "fpn.enc4.4.conv.2.weight",
                "fpn.lateral0.weight", "fpn.td3.1.bias", "head4.block1.weight", "smooth2.1.weight", "final.bias"):
        assert key in keys, key
    assert tuple(keys["fpn.enc0.1.conv.0.0.weight"].shape) == (8, 1, 3, 3)  # depthwise, the t=1 block
    assert "fpn.lateral0.bias" not in keys and "final.weight" in keys
    plain = checkpoint_state(FPNMobileNetV2(DeblurGANConfig(width=0.25, fpn_channels=16, head_channels=8,
                                                            norm="none")))
    assert "fpn.td1.0.bias" in plain and "fpn.td1.1.weight" not in plain  # conv with bias, no BN
    d = checkpoint_state(build_discriminator("deblurgan-tiny"))
    assert {"patch.model.0.bias", "patch.model.2.weight", "full.model.11.weight"} <= set(d)
    assert "patch.model.2.bias" not in d  # no bias before InstanceNorm


def test_presets_and_build_errors():
    assert build_deblurgan("deblurgan-tiny").config is TINY
    with pytest.raises(UnknownChoiceError, match="deblurgan-v2"):
        build_deblurgan("deblurgan-v3")
    with pytest.raises(InvalidArgumentError):
        FPNMobileNetV2("deblurgan-tiny")


def test_eval_mode_is_deterministic_and_independent_of_the_batch(tiny):
    x = _t(crops(3, 64, seed=2) / 127.5 - 1)
    batch = tiny.restore(x).asnumpy()
    alone = np.concatenate([tiny.restore(x[i:i + 1]).asnumpy() for i in range(3)])
    np.testing.assert_allclose(alone, batch, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(tiny.restore(x).asnumpy(), batch)
    assert np.abs(batch - x.asnumpy()).max() > 1e-3  # the final conv is not zero: a real correction


def test_discriminator_outputs_a_patch_map_and_one_score():
    d = build_discriminator("deblurgan-tiny")
    patch, full = d(_t(crops(2, 48) / 127.5 - 1))
    side = NLayerDiscriminator.output_side(48, TINY.patch_layers)
    assert patch.shape == (2, 1, side, side) and side == 10 and full.shape == (2, 1, 1, 1)
    assert d.min_size() == 24 and build_discriminator("deblurgan-v2").min_size() == 96


# -- export -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_onnx_export_runs_in_onnx_runtime(tmp_path, tiny, size):
    """MindSpore -> ONNX -> ONNX Runtime, checked on another input than the exported one; nearest Resize only, no
    ConvTranspose, static shapes."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ms.export(tiny, _t(crops(1, size, seed=3)), file_name=str(tmp_path / "deblur"), file_format="ONNX")
    path = tmp_path / "deblur.onnx"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    ops = {n.op_type for n in proto.graph.node}
    allowed = {"Conv", "BatchNormalization", "Clip", "Relu", "Add", "Sub", "Mul", "Resize", "Concat", "Slice",
               "Sigmoid", "Constant", "Cast", "Identity"}
    assert "ConvTranspose" not in ops and ops <= allowed, ops - allowed
    for node in proto.graph.node:
        if node.op_type == "Resize":  # mode absent = ONNX's default, nearest
            assert [a.s for a in node.attribute if a.name == "mode"] in ([], [b"nearest"]), node
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, size, size]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = crops(1, size, seed=4)
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    ref = tiny(_t(x)).asnumpy()
    assert y.shape == ref.shape == x.shape
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()
    # The correction alone (output − input), to its own scale: an error in it could hide behind the input.
    assert np.abs((y - x) - (ref - x)).max() <= 1e-4 * np.abs(ref - x).max()


def test_deblur_converter_exports_the_mindspore_generator(tmp_path, tiny):
    """edgetrack.converters.deblur2onnx with framework="mindspore": both static graphs (the template crop and a
    batch of search crops) through mindspore.onnx.export under the bundle's tensor names, each checked against
    MindSpore in ONNX Runtime by the shared parity helper; a tracker checkpoint or a generator of the other framework
    is refused with a typed error."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from edgetrack.converters.deblur2onnx import DEBLUR_GRAPHS, deblur_to_onnx, load_generator

    shapes = {"template": (1, 3, 127, 127), "search": (3, 3, 255, 255)}
    paths, parity = deblur_to_onnx(tiny, tmp_path, shapes, framework="mindspore")
    assert set(parity) == set(DEBLUR_GRAPHS.values())
    for role, graph in DEBLUR_GRAPHS.items():
        row = parity[graph]
        print(f"\n{graph}: max |onnxruntime - mindspore| / scale = {row['max_rel']:.2e}")
        assert row["passed"] and row["reference"] == "mindspore" and row["max_rel"] <= 1e-4 and row["scale"] > 100
        proto = onnx.load(str(paths[role]))
        assert [i.name for i in proto.graph.input] == ["crop"] and [o.name for o in proto.graph.output] == [
            "deblurred"]
        assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == list(shapes[role])
        # No ConvTranspose (ONNX Runtime refuses MindSpore's), no Cast (tensor * float exports with a float -> float
        # Cast that onnxconverter-common's fp16 conversion mis-types: the generator multiplies by float32 tensors).
        assert not {"ConvTranspose", "Cast"} & {n.op_type for n in proto.graph.node}
        # Nearest Resizes by constant integer scales, as PyTorch writes them (MindSpore writes sizes): the form the
        # Ascend preparation moves to the chip's rounding; with sizes the operator audit refuses the graph.
        resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
        assert len(resizes) == 8 and all(len(n.input) == 3 for n in resizes)
        from edgetrack.converters.onnx2om import rewrite_nearest_resize

        assert len(rewrite_nearest_resize(proto)) == len(resizes)
    # The correction alone (output − input) on a batch, to its own scale: an error in it could hide behind the input.
    x = crops(3, 255, seed=7)
    session = ort.InferenceSession(str(paths["search"]), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"crop": x})
    ref = tiny(_t(x)).asnumpy()
    assert np.abs((y - x) - (ref - x)).max() <= 1e-4 * np.abs(ref - x).max()
    # fp16 compute (the cuda fp16 deblur stage) converts the MindSpore export and stays near MindSpore.
    from edgetrack.converters.precision import fp16_compute

    half = ort.InferenceSession(str(fp16_compute(paths["search"], tmp_path / "half.onnx")),
                                providers=["CPUExecutionProvider"])
    assert np.abs(half.run(None, {"crop": x})[0] - ref).max() <= 1e-2 * np.abs(ref).max()

    from edgetrack.models.mindspore.siamfc import build_siamfc, save_siamfc

    tracker = save_siamfc(build_siamfc("siamfc-tiny"), tmp_path / "siamfc.safetensors")
    with pytest.raises(CheckpointError, match=r"'siamfc' model \(siamfc-tiny\), not a DeblurGAN-v2"):
        load_generator(tracker, framework="mindspore")
    with pytest.raises(InvalidArgumentError, match="framework='mindspore'"):
        load_generator(tiny, framework="torch")
    with pytest.raises(UnknownChoiceError, match="mindspore, torch"):
        load_generator(tiny, framework="jax")
    # One cell exported again at a shape it was exported at (MindSpore caches the rewritten graph: the converter
    # exports a fresh wrapper cell each time).
    again, _ = deblur_to_onnx(tiny, tmp_path / "again", {"template": (1, 3, 127, 127), "search": (1, 3, 127, 127)},
                              framework="mindspore")
    assert all(p.is_file() for p in again.values())


def test_deblur_converter_needs_no_torch_for_mindspore(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ckpt = save_deblurgan(build_deblurgan("deblurgan-tiny"), tmp_path / "g.safetensors")
    code = ("import sys; from edgetrack.converters.deblur2onnx import deblur_to_onnx; "
            f"paths, parity = deblur_to_onnx({str(ckpt)!r}, {str(tmp_path / 'onnx')!r}, "
            "{'template': (1, 3, 32, 32), 'search': (2, 3, 48, 48)}, framework='mindspore'); "
            "print(all(r['passed'] for r in parity.values()), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True False"


# -- checkpoints ------------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_is_strict(tmp_path, tiny):
    path = save_deblurgan(tiny, tmp_path / "g.safetensors", {"note": "test"})
    meta = read_metadata(path)
    assert meta["family"] == "deblurgan" and json.loads(meta["config"]) == TINY.to_dict()
    loaded = load_deblurgan(path)
    assert loaded.config == TINY and not loaded.training
    x = _t(crops(1, 64))
    np.testing.assert_array_equal(loaded(x).asnumpy(), tiny(x).asnumpy())
    from edgetrack.models.mindspore.checkpoint import load_weights

    with pytest.raises(CheckpointError, match="shape"):
        load_weights(FPNMobileNetV2(DeblurGANConfig(width=0.25, fpn_channels=16, head_channels=8)), path)
    from edgetrack.models.mindspore.siamfc import build_siamfc, save_siamfc

    siamfc = save_siamfc(build_siamfc("siamfc-tiny"), tmp_path / "siamfc.safetensors")
    with pytest.raises(CheckpointError, match="not a DeblurGAN"):
        load_deblurgan(siamfc)


def test_mindspore_twin_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, edgetrack.models.mindspore.deblurgan, edgetrack.models.mindspore.deblur_train; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
    # What needs no framework is the PyTorch trainer's own code (edgetrack.models.deblur_training).
    from edgetrack.models import deblur_training as shared
    from edgetrack.models.mindspore import deblur_train

    assert issubclass(deblur_train.DeblurTrainConfig, shared.DeblurTrainConfigBase)
    assert deblur_train.lr_schedule is shared.lr_schedule and deblur_train.LOG_KEYS is shared.LOG_KEYS
    assert "jit" in deblur_train.RESUMABLE_CHANGES and deblur_train.DeblurTrainConfig(device="CPU").device == "cpu"


# -- metrics and losses -----------------------------------------------------------------------------------------------
def test_ssim_and_psnr_match_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(4)
    a = rng.uniform(0, 255, (40, 48, 3))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    ta, tb = (_t(v.transpose(2, 0, 1)[None]) for v in (a, b))
    ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255.0, channel_axis=-1)
    assert float(ssim(ta, tb, data_range=255.0).asnumpy()[0]) == pytest.approx(ref, abs=1e-4)
    assert float(psnr(ta, tb, 255.0).asnumpy()[0]) == pytest.approx(
        metrics.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-3)
    with pytest.raises(InvalidArgumentError, match="11"):
        ssim(_t(np.zeros((1, 3, 8, 8))), _t(np.zeros((1, 3, 8, 8))))


def test_losses_are_finite_and_point_the_right_way():
    d = build_discriminator("deblurgan-tiny")
    rng = np.random.default_rng(5)
    sharp = crops(2, 48) / 127.5 - 1
    fake = _t(sharp + 0.1 * rng.normal(size=sharp.shape))
    sharp = _t(sharp)
    for loss in (ralsgan_d_loss, ralsgan_g_loss):
        value = float(double_scale_loss(loss, d(sharp), d(fake)).asnumpy())
        assert np.isfinite(value) and value > 0
    ones, zeros = _t(np.ones(4)), _t(np.zeros(4))
    assert float(ralsgan_d_loss(ones, zeros).asnumpy()) == pytest.approx(0.0)
    assert float(ralsgan_g_loss(ones, zeros).asnumpy()) == pytest.approx(4.0)
    content = ContentLoss()
    assert float(content(sharp, sharp)[0].asnumpy()) == pytest.approx(0.0, abs=1e-5)
    worse = [float(v.asnumpy()) for v in content(fake, sharp)]
    assert all(v > 0 for v in worse) and worse[0] == pytest.approx(sum(worse[1:]), rel=1e-5)
    with pytest.raises(InvalidArgumentError, match="edge"):
        ContentLoss(edge=-1.0)


def test_perceptual_term_uses_a_trackers_frozen_backbone(tmp_path):
    from edgetrack.models.mindspore.deblurgan import TrackerPerceptual
    from edgetrack.models.mindspore.siamfc import build_siamfc, save_siamfc

    ckpt = save_siamfc(build_siamfc("siamfc-tiny"), tmp_path / "tracker.safetensors")
    term = TrackerPerceptual(str(ckpt))
    content = ContentLoss(perceptual=term, perceptual_weight=0.1).set_train(True)
    assert not any(p.requires_grad for p in term.get_parameters())
    stats = [p.asnumpy().copy() for p in term.backbone.get_parameters() if "moving" in p.name]
    sharp = _t(crops(2, 64) / 127.5 - 1)
    assert float(content(sharp, sharp)[0].asnumpy()) == pytest.approx(0.0, abs=1e-5)
    fake = _t(sharp.asnumpy() + 0.2)
    grad = ms.grad(lambda f: content(f, sharp)[0])(fake).asnumpy()
    assert float(content(fake, sharp)[0].asnumpy()) > float(ContentLoss()(fake, sharp)[0].asnumpy())
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    after = [p.asnumpy() for p in term.backbone.get_parameters() if "moving" in p.name]
    assert len(stats) == 10 and all(np.array_equal(a, b) for a, b in zip(stats, after))  # frozen in train mode too


# -- training ---------------------------------------------------------------------------------------------------------
def write_gopro(root: Path, videos: int = 2, frames: int = 2, size=(128, 96), seed: int = 0, blur: float = 15.0):
    """A tiny GoPro-layout set: coloured shapes on grey (sharp) and the same with a horizontal motion blur."""
    import cv2

    from edgetrack.models.pairs import motion_blur_kernel

    kernel = motion_blur_kernel(blur, 0.0)
    for v in range(videos):
        rng = np.random.default_rng([seed, v])
        for sub in ("blur", "sharp"):
            (root / f"V{v}" / sub).mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            img = np.full((size[1], size[0], 3), 110, np.uint8)
            for _ in range(40):
                colour = tuple(int(c) for c in rng.integers(0, 256, 3))
                x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
                if rng.random() < 0.5:
                    cv2.rectangle(img, (x, y), (x + int(rng.integers(3, 20)), y + int(rng.integers(3, 20))), colour,
                                  -1)
                else:
                    cv2.circle(img, (x, y), int(rng.integers(2, 10)), colour, -1)
            cv2.imwrite(str(root / f"V{v}" / "sharp" / f"{i:06d}.png"), img)
            cv2.imwrite(str(root / f"V{v}" / "blur" / f"{i:06d}.png"),
                        cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT))
    return root


@pytest.fixture(scope="module")
def gopro(tmp_path_factory):
    root = tmp_path_factory.mktemp("gopro")
    write_gopro(root / "train", videos=3, frames=3, seed=0)
    write_gopro(root / "test", videos=1, frames=2, seed=1)
    return (BlurFrames.build(open_blur_pairs(f"gopro:{root}#train"), progress=False),
            BlurFrames.build(open_blur_pairs(f"gopro:{root}#test"), progress=False))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tiny_run(out, **kw):
    from edgetrack.models.mindspore.deblur_train import DeblurTrainConfig

    base = dict(model="deblurgan-tiny", epochs=2, steps_per_epoch=2, batch_size=2, log_every=1, progress=False,
                eval_crops=2, out=str(out), lr_start=1e-3, lr_end=1e-4, jit=False, crops=BlurCropConfig(crop_size=32))
    base.update(kw)
    return DeblurTrainConfig(**base)


def test_resume_continues_exactly_where_it_stopped(tmp_path, gopro):
    from safetensors.numpy import load_file

    from edgetrack.models.mindspore.deblur_train import find_resume_point, train

    data, held = gopro
    out = tmp_path / "run"
    cfg = tiny_run(out)
    train(cfg, data, eval_data=held)
    uninterrupted, evals = read_jsonl(out / "log.jsonl"), read_jsonl(out / "eval.jsonl")
    assert [e["step"] for e in uninterrupted] == [1, 2, 3, 4] and [e["step"] for e in evals] == [0, 2, 4]
    assert evals[0]["psnr"] == evals[0]["psnr_blurred"]  # step 0: the identity, i.e. the baseline
    assert set(uninterrupted[0]) == {"step", "epoch", "lr", "loss", "content", "content_blurred", "adv", "loss_d",
                                     "l1", "ssim_loss", "edge", "time", "pairs_per_s"}
    weights = load_file(str(out / "final.safetensors"))
    with __import__("safetensors").safe_open(str(out / "checkpoints" / "epoch-0001.state.safetensors"),
                                             framework="numpy") as f:
        keys = set(f.keys())
        assert f.metadata()["format"] == "edgetrack-deblur-train-state-1"
    assert {"adam_g.exp_avg.final.weight", "adam_g.exp_avg_sq.fpn.enc0.0.1.weight", "disc.patch.model.0.weight",
            "adam_d.exp_avg.full.model.11.bias"} <= keys
    for p in (out / "checkpoints").glob("epoch-0002*"):
        p.unlink()
    (out / "final.safetensors").unlink()
    assert find_resume_point(out)[0].name == "epoch-0001.safetensors"
    train(cfg, data, eval_data=held, resume=True)
    resumed = read_jsonl(out / "log.jsonl")
    assert [e["step"] for e in resumed] == [1, 2, 3, 4] and [e["step"] for e in read_jsonl(out / "eval.jsonl")] == [
        0, 2, 4]
    for a, b in zip(uninterrupted[2:], resumed[2:]):
        for key in ("lr", "loss", "content", "adv", "loss_d"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    for k, v in load_file(str(out / "final.safetensors")).items():
        np.testing.assert_allclose(v, weights[k], rtol=1e-5, atol=1e-6)
    assert read_metadata(out / "final.safetensors")["framework"] == "mindspore"
    assert json.loads((out / "config.json").read_text())["framework"] == "mindspore"
    with pytest.raises(InvalidArgumentError, match="already holds"):
        train(cfg, data, eval_data=held)
    with pytest.raises(InvalidArgumentError, match="adv_weight"):
        train(tiny_run(out, adv_weight=0.01), data, eval_data=held, resume=True)


def test_devices_options_and_sizes_that_cannot_run_are_errors(tmp_path, gopro):
    from edgetrack.models.mindspore.deblur_train import config_from_args, train

    data, held = gopro
    if not ms.hal.is_available("GPU"):
        with pytest.raises(BackendError, match="'GPU' was asked for"):
            train(tiny_run(tmp_path / "g", device="gpu"), data, eval_data=held)
    with pytest.raises(InvalidArgumentError, match="crop size 16"):
        train(tiny_run(tmp_path / "s", crops=BlurCropConfig(crop_size=16)), data, eval_data=held)
    with pytest.raises(UnknownChoiceError, match="schedule"):
        tiny_run(tmp_path / "x", schedule="step")
    args = argparse.Namespace(model="deblurgan-tiny", out=tmp_path / "a", amp=True)
    with pytest.raises(InvalidArgumentError, match="--amp"):
        config_from_args(args)
    args = argparse.Namespace(model="deblurgan-tiny", out=tmp_path / "a", loss="hsm")
    with pytest.raises(InvalidArgumentError, match="--loss"):
        config_from_args(args)
    args = argparse.Namespace(model="deblurgan-tiny", out=tmp_path / "a", content="vgg")
    with pytest.raises(InvalidArgumentError, match="--content"):
        config_from_args(args)
    cfg = config_from_args(argparse.Namespace(model="deblurgan-tiny", out=tmp_path / "a", crop_size=40, epochs=3,
                                              content="perceptual:t.safetensors"))
    assert (cfg.crops.crop_size, cfg.epochs, cfg.perceptual, cfg.jit) == (40, 3, "t.safetensors", True)


def test_cli_trains_on_a_synthetic_set(tmp_path, capsys):
    """``edgetrack train --framework mindspore`` on the project's own synthetic set, the step compiled (the default;
    its numbers are checked against PyTorch in tests/test_deblurgan_parity.py)."""
    pytest.importorskip("skimage", reason="the generator uses the photos shipped in scikit-image ([eval] extra)")
    from edgetrack.cli import main
    from edgetrack.data.synth import SynthConfig, generate

    train_set = generate(SynthConfig(sequences=2, seed=3, frames=3, size=(128, 96), blur="strong", speed=3.0),
                         tmp_path / "synth", progress=False)
    out = tmp_path / "run"
    argv = ["train", "--model", "deblurgan-tiny", "--framework", "mindspore", "--data", f"synthetic:{train_set}",
            "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--crop-size", "32"]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["framework"], config["crops"]["crop_size"], config["jit"]) == ("mindspore", 32, True)
    evals = read_jsonl(out / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 2] and evals[0]["psnr"] == evals[0]["psnr_blurred"]
    assert all(np.isfinite(e["loss"]) for e in read_jsonl(out / "log.jsonl"))
    assert load_deblurgan(out / "final.safetensors").config.name == "deblurgan-tiny"
    assert main(argv + ["--amp"]) == 2  # a PyTorch option, refused
    assert "--amp does not apply" in capsys.readouterr().err


def test_training_lowers_the_content_loss_against_the_blurred_input(tmp_path):
    """Two 48×48 frame pairs (15-px motion blur) cropped whole, at scale 1, without flips: every crop is one of the
    two frames, so a dozen steps must bring the content loss clearly below the blurred input's and raise the PSNR on
    those crops. It shows the optimisation works end to end in a few CPU seconds; whether the deblurring generalises
    is for the real runs' held-out sets (the PyTorch test trains 80 steps for that)."""
    from edgetrack.models.mindspore.deblur_train import train

    write_gopro(tmp_path / "pairs", videos=1, frames=2, size=(48, 48), seed=2)
    frames = BlurFrames.build(open_blur_pairs(f"gopro:{tmp_path / 'pairs'}"), progress=False)
    out = tmp_path / "run"
    crops_cfg = BlurCropConfig(crop_size=48, random_scale=(1.0, 1.0), hflip_prob=0.0)
    # Content loss only: op by op, the discriminators' three passes and backward take two thirds of a CPU step, and
    # the adversarial path is trained by the tests above.
    cfg = tiny_run(out, epochs=1, steps_per_epoch=12, lr_start=2e-3, lr_end=1e-3, log_every=3, crops=crops_cfg,
                   adv_weight=0.0)
    train(cfg, frames, eval_data=frames)
    log = read_jsonl(out / "log.jsonl")
    assert [e["step"] for e in log] == [3, 6, 9, 12] and all(e["adv"] == e["loss_d"] == 0 for e in log)
    ratio = [e["content"] / e["content_blurred"] for e in log]  # against doing nothing, on the same crops
    assert ratio[-1] < 0.99 and ratio[-1] < ratio[0], ratio
    evals = read_jsonl(out / "eval.jsonl")
    assert evals[-1]["psnr"] > evals[0]["psnr"] == evals[0]["psnr_blurred"], evals
