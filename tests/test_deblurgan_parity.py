"""PyTorch and MindSpore DeblurGAN-v2 twins agree: same weights (one safetensors file), same inputs, same outputs.

The generator in eval mode with BatchNorm's running statistics and affine terms set to random, non-trivial values
and a non-zero ``final`` convolution (an untrained generator is the identity, which would agree trivially), at the
tracker's two crop sizes, 127 and 255. The output is BGR 0..255 = input + correction, so besides the output the
correction alone (output − input) is compared to its own scale: an error in it could hide behind the input. The
measured errors are printed (``pytest -s`` or ``-rP`` shows them) and recorded as test properties. The discriminator,
the losses, the metrics and one training step of the MindSpore trainer (train-mode BN, RaLSGAN with the updated
discriminator, gradients pulled back through the generator) are compared on the tiny model.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)

from edgetrack.errors import CheckpointError  # noqa: E402
from edgetrack.models.deblur_config import DEBLURGAN_PRESETS, DeblurGANConfig  # noqa: E402
from edgetrack.models.mindspore import deblurgan as ms_dg  # noqa: E402
from edgetrack.models.mindspore.checkpoint import checkpoint_state as ms_state  # noqa: E402
from edgetrack.models.mindspore.checkpoint import load_weights as ms_load_weights  # noqa: E402
from edgetrack.models.torch import deblurgan as torch_dg  # noqa: E402
from edgetrack.models.torch.checkpoint import checkpoint_state as torch_state  # noqa: E402
from edgetrack.models.torch.checkpoint import load_weights as torch_load_weights  # noqa: E402
from edgetrack.models.torch.checkpoint import save_weights as torch_save_weights  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.mindspore]

TINY = DEBLURGAN_PRESETS["deblurgan-tiny"]
PLAIN = DeblurGANConfig(width=0.25, fpn_channels=16, head_channels=8, norm="none")
TOL = 1e-4

from torch_helpers import single_torch_thread  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


def _torch_generator(config, seed: int = 0, final_std: float = 0.01) -> "torch.nn.Module":
    torch.manual_seed(seed)
    g = torch_dg.FPNMobileNetV2(config)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0, 0.05)
        # Small enough that tanh is not saturated: the correction then carries the decoder's errors unattenuated.
        torch.nn.init.normal_(g.final.weight, 0, final_std)
        torch.nn.init.normal_(g.final.bias, 0, final_std)
    return g.eval()


def _crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, size, size)).astype(np.float32)


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape and np.isfinite(ours).all()
    scale = float(np.abs(theirs).max())
    assert scale > 0
    return float(np.abs(ours - theirs).max()) / scale


def _compare(tg, mg, size: int, name: str, record_property) -> dict:
    x = _crops(2, size, seed=size)
    with torch.no_grad():
        t_out = tg(torch.from_numpy(x)).numpy()
        t_restore = tg.restore(torch.from_numpy(x / 127.5 - 1)).numpy()
    m_out = mg(ms.Tensor(x)).asnumpy()
    m_restore = mg.restore(ms.Tensor(x / 127.5 - 1)).asnumpy()
    errors = {"output": _relative(m_out, t_out), "correction": _relative(m_out - x, t_out - x),
              "restore": _relative(m_restore, t_restore)}
    for key, value in errors.items():
        record_property(f"relative_error[{name}@{size}][{key}]", value)
    print(f"\n{name} at {size}: max |ms - torch| / scale: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items())
          + f" (correction up to {np.abs(t_out - x).max():.1f} of 255)")
    return errors


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    tg = _torch_generator(TINY)
    path = torch_dg.save_deblurgan(tg, tmp_path_factory.mktemp("deblur") / "tiny.safetensors")
    return tg, ms_dg.load_deblurgan(path)  # the MindSpore loader, strict


@pytest.mark.parametrize("config", [TINY, PLAIN, DEBLURGAN_PRESETS["deblurgan-v2"]], ids=["tiny", "plain", "v2"])
def test_checkpoint_keys_shapes_and_order_are_the_same(config):
    """Same keys and shapes, in the same order, generator and discriminator: a strict load names the same first
    mismatch in both frameworks."""
    ours = [(k, tuple(p.shape)) for k, p in ms_state(ms_dg.FPNMobileNetV2(config)).items()]
    theirs = [(k, tuple(t.shape)) for k, t in torch_state(torch_dg.FPNMobileNetV2(config)).items()]
    assert ours == theirs
    ours = [(k, tuple(p.shape)) for k, p in ms_state(ms_dg.DoubleScaleDiscriminator(config)).items()]
    theirs = [(k, tuple(t.shape)) for k, t in torch_state(torch_dg.DoubleScaleDiscriminator(config)).items()]
    assert ours == theirs


@pytest.mark.parametrize("size", [127, 255])
def test_tiny_generator_agrees_from_a_pytorch_checkpoint(tiny_pair, size, record_property):
    tg, mg = tiny_pair
    assert mg.config == tg.config == TINY and not mg.training
    errors = _compare(tg, mg, size, "deblurgan-tiny", record_property)
    assert max(errors.values()) <= TOL, errors


def test_plain_decoder_agrees_both_ways(tmp_path, record_property):
    """``norm="none"`` (convolutions with bias in the decoder): PyTorch -> file -> MindSpore, and MindSpore -> file ->
    PyTorch with the weights bit-equal on the way back."""
    tg = _torch_generator(PLAIN, seed=3)
    mg = ms_dg.load_deblurgan(torch_dg.save_deblurgan(tg, tmp_path / "from_torch.safetensors"))
    errors = _compare(tg, mg, 127, "plain decoder", record_property)
    assert max(errors.values()) <= TOL, errors
    back = torch_dg.load_deblurgan(ms_dg.save_deblurgan(mg, tmp_path / "from_ms.safetensors"))
    for key, value in torch_state(tg).items():
        np.testing.assert_array_equal(torch_state(back)[key].numpy(), value.numpy())


def test_full_size_generator_agrees(tmp_path, record_property):
    tg = _torch_generator(DEBLURGAN_PRESETS["deblurgan-v2"], final_std=0.002)
    mg = ms_dg.load_deblurgan(torch_dg.save_deblurgan(tg, tmp_path / "v2.safetensors"))
    errors = _compare(tg, mg, 255, "deblurgan-v2", record_property)
    assert max(errors.values()) <= TOL, errors


def test_a_mismatch_reads_the_same_in_both_frameworks(tmp_path):
    path = torch_dg.save_deblurgan(torch_dg.FPNMobileNetV2(PLAIN), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError) as ours:
        ms_load_weights(ms_dg.FPNMobileNetV2(TINY), path)
    with pytest.raises(CheckpointError) as theirs:
        torch_load_weights(torch_dg.FPNMobileNetV2(TINY), path)
    assert "fpn.lateral4.weight" in str(ours.value) and str(ours.value) == str(theirs.value)


def test_discriminator_losses_and_metrics_agree(tmp_path):
    td = torch_dg.build_discriminator("deblurgan-tiny")
    md = ms_dg.DoubleScaleDiscriminator(TINY)
    ms_load_weights(md, torch_save_weights(td, tmp_path / "d.safetensors"))
    rng = np.random.default_rng(1)
    sharp = _crops(2, 48) / 127.5 - 1
    fake = np.clip(sharp + rng.normal(0, 0.2, sharp.shape), -1, 1).astype(np.float32)
    with torch.no_grad():
        t_real, t_fake = td(torch.from_numpy(sharp)), td(torch.from_numpy(fake))
    m_real, m_fake = md(ms.Tensor(sharp)), md(ms.Tensor(fake))
    for ours, theirs in zip(m_real + m_fake, t_real + t_fake):
        assert _relative(ours.asnumpy(), theirs.numpy()) <= TOL
    for name in ("ralsgan_d_loss", "ralsgan_g_loss"):
        ours = ms_dg.double_scale_loss(getattr(ms_dg, name), m_real, m_fake)
        theirs = torch_dg.double_scale_loss(getattr(torch_dg, name), t_real, t_fake)
        assert float(ours.asnumpy()) == pytest.approx(float(theirs), rel=1e-5), name
    total, l1, ssim_term, edge = (float(v.asnumpy()) for v in ms_dg.ContentLoss()(ms.Tensor(fake), ms.Tensor(sharp)))
    t_total, parts = torch_dg.ContentLoss()(torch.from_numpy(fake), torch.from_numpy(sharp))
    assert total == pytest.approx(float(t_total), rel=1e-5)
    for ours, key in ((l1, "l1"), (ssim_term, "ssim"), (edge, "edge")):
        assert ours == pytest.approx(float(parts[key]), rel=1e-5), key
    a, b = ms.Tensor(fake * 0.5 + 0.5), ms.Tensor(sharp * 0.5 + 0.5)
    ta, tb = torch.from_numpy(fake * 0.5 + 0.5), torch.from_numpy(sharp * 0.5 + 0.5)
    np.testing.assert_allclose(ms_dg.ssim(a, b).asnumpy(), torch_dg.ssim(ta, tb).numpy(), rtol=1e-5)
    np.testing.assert_allclose(ms_dg.psnr(a, b).asnumpy(), torch_dg.psnr(ta, tb).numpy(), rtol=1e-5)


@pytest.mark.parametrize("compile_step", [False, True], ids=["pynative", "jit"])
def test_one_training_step_agrees(tmp_path, compile_step, record_property):
    """The MindSpore trainer's step against the PyTorch trainer's recipe on the same weights and crops: train-mode BN
    (running statistics moved once), the discriminator updated first, the generator's RaLSGAN term against the
    updated discriminator, content loss. Plain SGD in both (Adam's per-element normalisation would turn the
    rounding noise of near-zero gradients into full steps), with large rates so each update is far above the
    weights' float32 resolution: the updates then equal −lr · gradient."""
    from mindspore import nn

    from edgetrack.models.mindspore.deblur_train import LOG_KEYS, make_step, name_state

    lr_g, lr_d, adv_weight = 1.0, 10.0, 0.1
    tg = _torch_generator(TINY, seed=2).train()
    td = torch_dg.build_discriminator("deblurgan-tiny")
    mg = ms_dg.load_deblurgan(torch_dg.save_deblurgan(tg, tmp_path / "g.safetensors"))
    md = ms_dg.DoubleScaleDiscriminator(TINY)
    ms_load_weights(md, torch_save_weights(td, tmp_path / "d.safetensors"))
    before = {**{f"g.{k}": v.detach().numpy().copy() for k, v in torch_state(tg).items()},
              **{f"d.{k}": v.detach().numpy().copy() for k, v in torch_state(td).items()}}
    rng = np.random.default_rng(3)
    sharp = _crops(2, 48, seed=4) / 127.5 - 1
    blurred = np.clip(sharp + rng.normal(0, 0.2, sharp.shape), -1, 1).astype(np.float32)

    # The PyTorch trainer's step (models/torch/deblur_train.py), with SGD.
    opt_g, opt_d = torch.optim.SGD(tg.parameters(), lr=lr_g), torch.optim.SGD(td.parameters(), lr=lr_d)
    content_loss = torch_dg.ContentLoss()
    b, s = torch.from_numpy(blurred), torch.from_numpy(sharp)
    fake = tg.restore(b)
    loss_d = torch_dg.double_scale_loss(torch_dg.ralsgan_d_loss, td(s), td(fake.detach()))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    td.requires_grad_(False)
    with torch.no_grad():
        real_out = td(s)
    adv = torch_dg.double_scale_loss(torch_dg.ralsgan_g_loss, real_out, td(fake))
    content, parts = content_loss(fake, s)
    loss_g = content + adv_weight * adv
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    with torch.no_grad():
        identity = content_loss(b, s)[0]
    theirs = [float(v.detach()) for v in (loss_g, content, identity, adv, loss_d, *parts.values())]

    mg.set_train(True)
    md.set_train(True)
    ms_opt_g = name_state(nn.SGD(mg.trainable_params(), learning_rate=lr_g), "sgd_g")
    ms_opt_d = name_state(nn.SGD(md.trainable_params(), learning_rate=lr_d), "sgd_d")
    step = make_step(mg, md, ms_dg.ContentLoss(), ms_opt_g, ms_opt_d, adv_weight, compile_step)
    ours = step(ms.Tensor(blurred), ms.Tensor(sharp)).asnumpy().tolist()
    print(f"\nlosses ({LOG_KEYS}):\n torch     {np.round(theirs, 6).tolist()}\n mindspore {np.round(ours, 6).tolist()}")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)

    after_t = {**{f"g.{k}": v.detach().numpy() for k, v in torch_state(tg).items()},
               **{f"d.{k}": v.detach().numpy() for k, v in torch_state(td).items()}}
    after_m = {**{f"g.{k}": v.asnumpy() for k, v in ms_state(mg).items()},
               **{f"d.{k}": v.asnumpy() for k, v in ms_state(md).items()}}
    assert after_m.keys() == after_t.keys()
    stats = [k for k in after_t if k.endswith(("running_mean", "running_var"))]
    for net in ("g.", "d."):
        # Updates (−lr · gradient) of every tensor, to the largest update of the network: a tensor whose gradient is
        # zero up to rounding (a bias that a following BatchNorm or the relativistic loss cancels) has no scale of
        # its own.
        keys = [k for k in after_t if k.startswith(net) and k not in stats]
        scale = max(float(np.abs(after_t[k] - before[k]).max()) for k in keys)
        worst = max(float(np.abs((after_m[k] - before[k]) - (after_t[k] - before[k])).max()) for k in keys) / scale
        record_property(f"relative_update_error[{net[0]}]", worst)
        print(f"{net[0]}: largest update {scale:.3g}, max |ms - torch| / that {worst:.2e}")
        assert worst <= TOL, (net, worst)
    for key in stats:  # BN statistics moved once, by the same batch statistics
        assert _relative(after_m[key], after_t[key]) <= TOL, key
