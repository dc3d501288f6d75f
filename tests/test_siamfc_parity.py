"""PyTorch and MindSpore twins agree: same weights (torch -> safetensors -> MindSpore), same inputs, same outputs.

Full-size HSM-SiamFC and plain SiamFC in eval mode, with BatchNorm's running statistics and affine terms set to
random, non-trivial values so that BN is really compared; one 127 px template against three 255 px search crops
(a tracker's three scales). The response maps must agree to 1e-4 of the map's scale. The measured errors are
printed (``pytest -s`` or ``-rP`` shows them) and recorded as test properties.

A training step is compared on the tiny model: BN in training mode (batch statistics, running-statistics update),
the HSM loss, gradients, and one SGD step with momentum and weight decay.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)

from edgetrack.models.labels import siamfc_labels  # noqa: E402
from edgetrack.models.mindspore import siamfc as ms_siamfc  # noqa: E402
from edgetrack.models.mindspore.checkpoint import checkpoint_state as ms_state  # noqa: E402
from edgetrack.models.torch import siamfc as torch_siamfc  # noqa: E402
from edgetrack.models.torch.checkpoint import checkpoint_state as torch_state  # noqa: E402

from torch_helpers import randomise_bn_affine  # noqa: E402 - tests/ is on sys.path

pytestmark = [pytest.mark.torch, pytest.mark.mindspore]


def _torch_model(name: str, seed: int = 0) -> "torch.nn.Module":
    torch.manual_seed(seed)
    model = torch_siamfc.build_siamfc(name)
    randomise_bn_affine(model, seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
        model.head.bias.fill_(0.25)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["siamfc-hsm", "siamfc", "siamfc-tiny"])
def test_response_maps_agree(name, tmp_path, record_property):
    tm = _torch_model(name)
    path = torch_siamfc.save_siamfc(tm, tmp_path / f"{name}.safetensors")
    mm = ms_siamfc.load_siamfc(path)
    assert mm.config == tm.config

    rng = np.random.default_rng(0)
    z = rng.random((1, 3, 127, 127), dtype=np.float32) * 255
    x = rng.random((3, 3, 255, 255), dtype=np.float32) * 255
    with torch.no_grad():
        t_kernel = tm.template(torch.from_numpy(z))
        t_features = tm.search(torch.from_numpy(x))
        ref = tm.head(t_kernel, t_features).numpy()
    m_kernel = mm.template(ms.Tensor(z))
    m_features = mm.search(ms.Tensor(x))
    got = mm.head(m_kernel, m_features).asnumpy()

    assert got.shape == ref.shape == (3, 1, 17, 17)
    scale = float(np.abs(ref).max())
    err = float(np.abs(got - ref).max())
    kernel_err = float(np.abs(m_kernel.asnumpy() - t_kernel.numpy()).max())
    print(f"\n{name}: response max |ms - torch| = {err:.3g} (map scale {scale:.4g}, relative {err / scale:.2e}); "
          f"template features max error {kernel_err:.3g}")
    record_property("max_abs_error", err)
    record_property("relative_error", err / scale)
    assert np.isfinite(got).all() and ref.std() > 0
    assert err <= 1e-4 * max(1.0, scale)
    # The maps are not just close in value: the trackers would pick the same peak on every scale.
    assert (got.reshape(3, -1).argmax(1) == ref.reshape(3, -1).argmax(1)).all()


def test_one_training_step_agrees(tmp_path):
    """Train-mode BN, the HSM loss, gradients and one SGD step (momentum, weight decay) in both frameworks."""
    from mindspore import nn

    from edgetrack.models.mindspore.losses import build_loss as ms_build_loss
    from edgetrack.models.mindspore.train import _Dist, _make_step
    from edgetrack.models.torch.losses import build_loss as torch_build_loss

    tm = _torch_model("siamfc-tiny", seed=2).train()
    path = torch_siamfc.save_siamfc(tm, tmp_path / "tiny.safetensors")
    mm = ms_siamfc.load_siamfc(path)
    mm.set_train(True)

    rng = np.random.default_rng(1)
    z = rng.random((4, 3, 127, 127), dtype=np.float32) * 255
    x = rng.random((4, 3, 255, 255), dtype=np.float32) * 255
    labels = np.broadcast_to(siamfc_labels(), (4, 1, 17, 17)).copy()
    lr, momentum, wd = 1e-2, 0.9, 5e-4

    opt = torch.optim.SGD(tm.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    t_losses = []
    loss_fn = torch_build_loss("hsm", alpha=0.6, gamma=2.0)
    for _ in range(2):  # two steps: the second one uses the momentum buffers
        loss = loss_fn(tm(torch.from_numpy(z), torch.from_numpy(x)), torch.from_numpy(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
        t_losses.append(loss.item())

    ms_opt = nn.SGD([{"params": mm.trainable_params(), "weight_decay": wd}], learning_rate=lr, momentum=momentum)
    step = _make_step(mm, ms_build_loss("hsm", alpha=0.6, gamma=2.0), ms_opt, _Dist(), compile_step=True)
    m_losses = [float(step(ms.Tensor(z), ms.Tensor(x), ms.Tensor(labels)).asnumpy()) for _ in range(2)]

    np.testing.assert_allclose(m_losses, t_losses, rtol=1e-4)
    theirs = {k: v.detach().numpy() for k, v in torch_state(tm).items()}
    ours = {k: v.asnumpy() for k, v in ms_state(mm).items()}
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        # Weights after two steps and BN running statistics after two updates, each to its own scale.
        tol = 1e-4 * max(1.0, float(np.abs(value).max()))
        assert np.abs(ours[key] - value).max() <= tol, key
