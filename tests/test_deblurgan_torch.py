"""DeblurGAN-v2 in PyTorch: generator shapes and identity start, eval determinism, ONNX export, checkpoints, losses,
the blurred/sharp crop pipeline, and training (resume, command line, learning) on tiny data."""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from edgetrack.errors import (  # noqa: E402
    BackendError,
    CheckpointError,
    DatasetError,
    InvalidArgumentError,
    UnknownChoiceError,
)
from edgetrack.models.blur_pairs import (  # noqa: E402
    BlurCropConfig,
    BlurFrames,
    BlurPairSampler,
    eval_batch,
    open_blur_pairs,
)
from edgetrack.models.deblur_config import DEBLURGAN_PRESETS, DeblurGANConfig  # noqa: E402
from edgetrack.models.torch.deblurgan import (  # noqa: E402
    ContentLoss,
    build_deblurgan,
    build_discriminator,
    double_scale_loss,
    load_deblurgan,
    psnr,
    ralsgan_d_loss,
    ralsgan_g_loss,
    save_deblurgan,
    ssim,
)
from edgetrack.models.torch.deblur_train import DeblurTrainConfig, find_resume_point, lr_schedule, train  # noqa: E402

pytestmark = pytest.mark.torch
SIZES = (255, 127)

from torch_helpers import single_torch_thread, trained_like_deblurgan  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


def trained_like(seed: int = 0):
    return trained_like_deblurgan(seed)


def crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (n, 3, size, size)).astype(np.float32))


def write_gopro(root: Path, videos: int = 2, frames: int = 2, size=(192, 144), seed: int = 0,
                blur: float = 15.0) -> Path:
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
            for _ in range(60):
                colour = tuple(int(c) for c in rng.integers(0, 256, 3))
                x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
                if rng.random() < 0.5:
                    cv2.rectangle(img, (x, y), (x + int(rng.integers(3, 24)), y + int(rng.integers(3, 24))), colour,
                                  -1)
                else:
                    cv2.circle(img, (x, y), int(rng.integers(2, 12)), colour, -1)
            blurred = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
            cv2.imwrite(str(root / f"V{v}" / "sharp" / f"{i:06d}.png"), img)
            cv2.imwrite(str(root / f"V{v}" / "blur" / f"{i:06d}.png"), blurred)
    return root


@pytest.fixture(scope="module")
def gopro(tmp_path_factory):
    root = tmp_path_factory.mktemp("gopro")
    write_gopro(root / "train", videos=4, frames=4, seed=0)
    write_gopro(root / "test", videos=2, frames=4, seed=1)
    return root


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A tiny set from the project's own generator (fast camera and target: visible blur at 128×96)."""
    pytest.importorskip("skimage", reason="the generator uses the photos shipped in scikit-image ([eval] extra)")
    from edgetrack.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth")
    common = dict(frames=4, size=(128, 96), blur="strong", speed=3.0)
    train_set = generate(SynthConfig(sequences=3, seed=3, **common), root / "train", progress=False)
    test_set = generate(SynthConfig(sequences=1, seed=5, split="test", **common), root / "test", progress=False)
    return train_set, test_set


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# -- configuration --------------------------------------------------------------------------------------------------
def test_presets_and_config_validation():
    full = DEBLURGAN_PRESETS["deblurgan-v2"]
    assert (full.width, full.fpn_channels, full.head_channels, full.norm) == (1.0, 128, 64, "batch")
    assert full.export_sizes == (255, 127) and full.encoder_channels == (16, 24, 32, 64, 160)
    assert DeblurGANConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    with pytest.raises(InvalidArgumentError, match="norm"):
        DeblurGANConfig(norm="instance")
    with pytest.raises(InvalidArgumentError, match="head_channels"):
        DeblurGANConfig(head_channels=7)
    with pytest.raises(UnknownChoiceError, match="deblurgan-v2"):
        build_deblurgan("deblurgan-v3")
    cfg = DeblurTrainConfig()
    assert (cfg.lr_start, cfg.adv_weight, cfg.schedule) == (1e-4, 0.001, "cosine")
    assert DeblurTrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(UnknownChoiceError, match="cosine"):
        DeblurTrainConfig(schedule="step")
    for kind in ("cosine", "linear", "geometric"):
        assert lr_schedule(0, 50, 1e-4, 1e-7, kind) == pytest.approx(1e-4)
        assert lr_schedule(49, 50, 1e-4, 1e-7, kind) == pytest.approx(1e-7)
    assert lr_schedule(25, 51, 2e-4, 1e-7, "cosine") == pytest.approx((2e-4 + 1e-7) / 2)
    for kwargs, words in [({"steps_per_epoch": 0}, "None or an integer"), ({"lr_end": 0.0}, "lr_end"),
                          ({"adv_weight": -1.0}, "adv_weight"), ({"epochs": True}, "epochs"),
                          ({"holdout": 1}, "holdout")]:
        with pytest.raises(InvalidArgumentError, match=words):
            DeblurTrainConfig(**kwargs)


def test_the_framework_free_part_is_shared_with_the_mindspore_twin():
    """Config fields, schedule, data, stream, loop and command line live once, in edgetrack.models.deblur_training,
    which imports no framework; the names the trainers exported before still import from them."""
    import subprocess
    import sys

    from edgetrack.models import deblur_training as shared
    from edgetrack.models.torch import deblur_train

    code = ("import sys, edgetrack.models.deblur_training as d; d.DeblurTrainConfigBase(); "
            "print([m for m in ('torch', 'mindspore', 'onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]
    assert issubclass(DeblurTrainConfig, shared.DeblurTrainConfigBase)
    assert lr_schedule is shared.lr_schedule and deblur_train.SCHEDULES is shared.SCHEDULES
    assert deblur_train._batch_stream is shared.batch_stream and deblur_train.STATE_FORMAT == shared.STATE_FORMAT
    assert {"amp", "channels_last"} <= deblur_train.RESUMABLE_CHANGES and "jit" not in deblur_train.RESUMABLE_CHANGES


# -- generator --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_output_size_equals_input_size_and_starts_as_identity(size):
    torch.manual_seed(0)
    g = build_deblurgan("deblurgan-tiny").eval()
    x = crops(2, size)
    with torch.no_grad():
        y = g(x)
        assert y.shape == x.shape
        # final starts at zero: the untrained generator is the do-nothing baseline (up to the /127.5 round trip)
        torch.testing.assert_close(y, x, rtol=0, atol=1e-3)
    g = trained_like()
    with torch.no_grad():
        y = g(x)
        assert y.shape == x.shape and float((y - x).abs().max()) > 1.0  # a real correction now
        assert float(y.min()) >= 0.0 and float(y.max()) <= 255.0
        torch.nn.init.zeros_(g.final.weight)  # the residual branch zeroed: the global skip alone
        torch.nn.init.zeros_(g.final.bias)
        torch.testing.assert_close(g(x), x, rtol=0, atol=1e-3)


def test_full_generator_shapes():
    g = build_deblurgan("deblurgan-v2").eval()
    assert 1.5e6 < sum(p.numel() for p in g.parameters()) < 3e6
    with torch.no_grad():
        assert g(crops(1, 127)).shape == (1, 3, 127, 127)


def test_eval_mode_is_deterministic_and_independent_of_the_batch():
    """BatchNorm after a training step: eval output of a crop is the same alone, in a batch, and run after run."""
    torch.manual_seed(1)
    g = build_deblurgan("deblurgan-tiny")
    torch.nn.init.normal_(g.final.weight, 0, 0.05)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    x = crops(4, 64, seed=2) / 127.5 - 1
    g.train()
    loss = (g.restore(x) - x.flip(-1)).abs().mean()
    loss.backward()
    opt.step()
    g.eval()
    with torch.no_grad():
        batch = g.restore(x)
        alone = torch.cat([g.restore(x[i:i + 1]) for i in range(4)])
        again = g.restore(x)
    torch.testing.assert_close(alone, batch, rtol=0, atol=1e-5)
    assert torch.equal(again, batch)
    # the decoder without BN exists for whoever wants no train/eval difference after the encoder
    cfg = DeblurGANConfig(width=0.25, fpn_channels=16, head_channels=8, norm="none")
    plain = build_deblurgan(cfg)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in (plain.fpn.td1, plain.smooth, plain.smooth2))


# -- export ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_onnx_export_opset11_matches_onnxruntime(tmp_path, size):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    g = trained_like()
    x = crops(1, size, seed=3)
    path = tmp_path / f"deblur{size}.onnx"
    torch.onnx.export(g, (x,), str(path), opset_version=11, input_names=["x"], output_names=["y"], dynamo=False)
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert "ConvTranspose" not in ops and not ops & {"BatchNormalization", "InstanceNormalization", "Pad"}, ops
    for node in model.graph.node:
        if node.op_type == "Resize":
            modes = [a.s for a in node.attribute if a.name == "mode"]
            assert modes == [b"nearest"], modes
    assert ops <= {"Conv", "Clip", "Relu", "Add", "Sub", "Mul", "Resize", "Concat", "Slice", "Tanh", "Constant"}, ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        ref = g(x).numpy()
    assert y.shape == (1, 3, size, size)
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()


# -- checkpoints ------------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_is_strict(tmp_path):
    g = trained_like()
    path = save_deblurgan(g, tmp_path / "g.safetensors", {"note": "test"})
    loaded = load_deblurgan(path)
    assert loaded.config == g.config and not loaded.training
    x = crops(1, 127)
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))
    from edgetrack.models.torch.checkpoint import load_weights

    other = build_deblurgan(DeblurGANConfig(width=0.25, fpn_channels=16, head_channels=8))
    with pytest.raises(CheckpointError, match="shape"):
        load_weights(other, path)
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    siamfc = save_siamfc(build_siamfc("siamfc-tiny"), tmp_path / "siamfc.safetensors")
    with pytest.raises(CheckpointError, match="not a DeblurGAN"):
        load_deblurgan(siamfc)


# -- losses and metrics -----------------------------------------------------------------------------------------------
def test_ssim_and_psnr_match_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(4)
    a = rng.uniform(0, 255, (40, 48, 3))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    ta, tb = (torch.from_numpy(v.transpose(2, 0, 1)[None].astype(np.float32)) for v in (a, b))
    ours = float(ssim(ta, tb, data_range=255.0)[0])
    ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255.0, channel_axis=-1)
    assert ours == pytest.approx(ref, abs=1e-4)
    assert float(psnr(ta, tb, 255.0)[0]) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=255),
                                                          abs=1e-3)


def test_losses_are_finite_and_point_the_right_way():
    torch.manual_seed(5)
    d = build_discriminator("deblurgan-tiny")
    sharp = crops(2, 48) / 127.5 - 1
    fake = sharp + 0.1 * torch.randn_like(sharp)
    real_out, fake_out = d(sharp), d(fake)
    assert real_out[0].shape[-1] > 1 and real_out[1].shape[-2:] == (1, 1)  # a patch map and one global score
    for loss in (ralsgan_d_loss, ralsgan_g_loss):
        value = double_scale_loss(loss, real_out, fake_out)
        assert torch.isfinite(value) and value > 0
    ones, zeros = torch.ones(4), torch.zeros(4)  # D sure that real is real: no D loss left, the most G loss
    assert float(ralsgan_d_loss(ones, zeros - 0.0)) == pytest.approx(0.0)
    assert float(ralsgan_g_loss(ones, zeros)) == pytest.approx(4.0)
    content = ContentLoss()
    same, parts = content(sharp, sharp)
    assert float(same) == pytest.approx(0.0, abs=1e-5)
    worse, parts = content(fake, sharp)
    assert float(worse) > 0 and all(torch.isfinite(v) and v > 0 for v in parts.values())
    assert d.min_size() <= 48 and build_discriminator("deblurgan-v2").min_size() == 96


def test_perceptual_term_uses_a_trackers_frozen_backbone(tmp_path):
    from edgetrack.models.torch.deblurgan import TrackerPerceptual
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    ckpt = save_siamfc(build_siamfc("siamfc-tiny"), tmp_path / "tracker.safetensors")
    term = TrackerPerceptual(str(ckpt)).train()
    assert not term.backbone.training and not any(p.requires_grad for p in term.parameters())
    content = ContentLoss(perceptual=term, perceptual_weight=0.1)
    sharp = crops(2, 64) / 127.5 - 1
    assert float(content(sharp, sharp)[0]) == pytest.approx(0.0, abs=1e-5)
    fake = (sharp + 0.2 * torch.randn_like(sharp)).requires_grad_(True)
    total, parts = content(fake, sharp)
    total.backward()
    assert float(parts["perceptual"].detach()) > 0 and torch.isfinite(fake.grad).all()


# -- data -------------------------------------------------------------------------------------------------------------
def test_synthetic_pairs_are_aligned_tracker_crops(synth):
    from edgetrack.tracking.crop import crop_and_resize

    train_set, _ = synth
    sources = open_blur_pairs(f"synthetic:{train_set}")
    assert len(sources) == 3 and all(s.boxes is not None and len(s) == 4 for s in sources)
    assert all("blurred" in s.blurred[0] and "sharp" in s.sharp[0] for s in sources)
    frames = BlurFrames.build(sources, progress=False)
    cfg = BlurCropConfig(crop_size=64)
    sampler = BlurPairSampler(frames, cfg, seed=7)
    rng = np.random.default_rng(0)
    centre, k, tracker = sampler.geometry(0, rng, tracker=True)
    assert tracker and np.all(np.abs(centre - (frames.boxes[0, :2] + (frames.boxes[0, 2:] - 1) / 2)) <= 64 * k + 1e-9)
    pair = sampler.pair(0, np.random.default_rng(0), tracker=True, augment=False)
    expected = crop_and_resize(frames.sharp[0], centre, k * 64, 64, frames.pad[0])
    np.testing.assert_array_equal(pair["sharp"], expected)  # one geometry for both frames, the tracker's own crop
    assert not np.array_equal(pair["blurred"], pair["sharp"])
    a, b = sampler.sample_at(3, 4), sampler.sample_at(3, 4)
    assert a["blurred"].shape == (4, 3, 64, 64) and a["blurred"].dtype == np.uint8
    assert np.array_equal(a["blurred"], b["blurred"]) and np.array_equal(a["sharp"], b["sharp"])
    held = eval_batch(frames, cfg, 4)
    assert np.array_equal(held["sharp"], eval_batch(frames, cfg, 4)["sharp"])
    assert not np.array_equal(held["sharp"], sampler.sample_at(0, 4)["sharp"])
    train_frames, held_out = frames.split_holdout(0.1)
    assert len(train_frames.names) == 2 and len(held_out.names) == 1 and len(held_out) == 4
    with pytest.raises(DatasetError, match="only its blurred"):
        open_blur_pairs(f"synthetic:{train_set}#blurred")


def test_gopro_pairs_and_sets_without_sharp_frames(gopro, tmp_path):
    sources = open_blur_pairs(f"gopro:{gopro}#train")
    assert len(sources) == 4 and all(s.boxes is None for s in sources)
    frames = BlurFrames.build(sources, frame_stride=2, workers=2, progress=False)
    assert len(frames) == 8 and not np.isfinite(frames.boxes).any()
    batch = BlurPairSampler(frames, BlurCropConfig(crop_size=32), seed=0).sample_at(0, 3)
    assert not batch["tracker"].any()  # no boxes: random crops only
    from edgetrack.data.got10k import write_list, write_sequence

    got = tmp_path / "got"
    write_sequence(got / "seq0", [np.full((48, 64, 3), 100, np.uint8)] * 2, np.array([[4.0, 4, 10, 10]] * 2))
    write_list(got, ["seq0"])
    with pytest.raises(DatasetError, match="no sharp frames"):
        open_blur_pairs(f"got10k:{got}")


def test_crop_threads_deliver_the_stream_in_order(gopro):
    from edgetrack.models.torch.deblur_train import _batch_stream

    frames = BlurFrames.build(open_blur_pairs(f"gopro:{gopro}#train"), progress=False)
    sampler = BlurPairSampler(frames, BlurCropConfig(crop_size=32), seed=1)
    got = list(_batch_stream(sampler, 2, 3, 9, workers=3))
    assert [b["index"] for b in got] == list(range(3, 9))
    for b in got:
        assert np.array_equal(b["blurred"], sampler.sample_at(b["index"], 2)["blurred"])
    stream = _batch_stream(sampler, 2, 0, 100, workers=2)
    assert next(stream)["index"] == 0
    stream.close()  # an interrupted run stops its threads


# -- training ---------------------------------------------------------------------------------------------------------
def tiny(out, **kw) -> DeblurTrainConfig:
    base = dict(model="deblurgan-tiny", epochs=2, steps_per_epoch=2, batch_size=2, log_every=1, progress=False,
                eval_crops=4, out=str(out), lr_start=1e-3, lr_end=1e-4, crops=BlurCropConfig(crop_size=32))
    base.update(kw)
    return DeblurTrainConfig(**base)


def test_resume_continues_exactly_where_it_stopped(tmp_path, gopro):
    data = BlurFrames.build(open_blur_pairs(f"gopro:{gopro}#train"), progress=False)
    held = BlurFrames.build(open_blur_pairs(f"gopro:{gopro}#test"), progress=False)
    out = tmp_path / "run"
    cfg = tiny(out)
    train(cfg, data, eval_data=held)
    uninterrupted, evals = read_jsonl(out / "log.jsonl"), read_jsonl(out / "eval.jsonl")
    assert [e["step"] for e in uninterrupted] == [1, 2, 3, 4] and [e["step"] for e in evals] == [0, 2, 4]
    from safetensors.torch import load_file

    weights = load_file(str(out / "final.safetensors"))
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
        torch.testing.assert_close(v, weights[k], rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidArgumentError, match="already holds"):
        train(cfg, data, eval_data=held)
    with pytest.raises(InvalidArgumentError, match="adv_weight"):
        train(tiny(out, adv_weight=0.01), data, eval_data=held, resume=True)


def test_devices_and_sizes_that_cannot_run_are_errors(tmp_path, gopro):
    data = f"gopro:{gopro}#train"
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="CUDA"):
            train(tiny(tmp_path / "c", device="cuda"), data)
    with pytest.raises(InvalidArgumentError, match="amp"):
        train(tiny(tmp_path / "a", amp=True), data)
    with pytest.raises(InvalidArgumentError, match="crop size 16"):
        train(tiny(tmp_path / "s", crops=BlurCropConfig(crop_size=16)), data)


def test_cli_trains_on_a_synthetic_set(tmp_path, synth, capsys):
    from edgetrack.cli import main

    train_set, test_set = synth
    out = tmp_path / "run"
    argv = ["train", "--model", "deblurgan-tiny", "--data", f"synthetic:{train_set}", "--eval-data",
            f"synthetic:{test_set}", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
            "--crop-size", "32", "--seed", "3"]
    assert main(argv) == 0
    assert "final checkpoint" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["crops"]["crop_size"] == 32
    evals = read_jsonl(out / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 2]
    assert evals[0]["psnr"] == evals[0]["psnr_blurred"]  # step 0: the identity, i.e. the baseline
    assert load_deblurgan(out / "final.safetensors").config.name == "deblurgan-tiny"
    assert main(["train", "--model", "deblurgan-tiny", "--data", f"synthetic:{train_set}", "--out",
                 str(tmp_path / "x"), "--loss", "hsm"]) == 2
    assert "--loss does not apply" in capsys.readouterr().err
    assert main(["train", "--model", "deblurgan-tiny", "--data", f"synthetic:{train_set}", "--out",
                 str(tmp_path / "y"), "--content", "vgg"]) == 2


def test_cli_training_lowers_the_content_loss_and_raises_held_out_psnr(tmp_path, gopro):
    """Uniform 15-px motion blur: the tiny generator beats the do-nothing baseline within 80 steps."""
    from edgetrack.cli import main

    out = tmp_path / "run"
    argv = ["train", "--model", "deblurgan-tiny", "--data", f"gopro:{gopro}#train", "--eval-data",
            f"gopro:{gopro}#test", "--out", str(out), "--epochs", "4", "--steps-per-epoch", "20", "--batch-size", "8",
            "--crop-size", "48", "--lr-start", "2e-3", "--lr-end", "2e-4", "--log-every", "10"]
    assert main(argv) == 0
    log = read_jsonl(out / "log.jsonl")
    assert [e["step"] for e in log] == list(range(10, 81, 10))
    for e in log:
        assert all(np.isfinite(e[k]) for k in ("loss", "content", "content_blurred", "adv", "loss_d"))
    ratio = [e["content"] / e["content_blurred"] for e in log]  # against doing nothing, on the same crops
    assert ratio[-1] < 1.0 and ratio[-1] < ratio[0], ratio
    evals = read_jsonl(out / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 20, 40, 60, 80]
    assert evals[0]["psnr"] == evals[0]["psnr_blurred"] == evals[-1]["psnr_blurred"]
    assert evals[-1]["psnr"] > evals[0]["psnr"] + 0.02, evals
    assert evals[-1]["ssim"] > evals[0]["ssim"], evals
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"epoch-000{e}{s}.safetensors" for e in (1, 2, 3, 4) for s in ("", ".state")]
