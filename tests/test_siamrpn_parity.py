"""PyTorch and MindSpore SiamRPN twins agree: same weights (one safetensors file), same inputs, same outputs.

Eval mode with BatchNorm's running statistics and affine terms and the convolutions' biases set to random,
non-trivial values, so BN is really compared; one 127 px template against two 255 px search crops. Every graph's
output (template kernel, search features, the head's ``cls`` and ``loc`` through both correlation forms) must agree
to 1e-4 of its scale. The measured errors are printed (``pytest -s`` or ``-rP`` shows them) and recorded as test
properties. The loss and a training step (train-mode BN, gradients, SGD with momentum and weight decay) are compared
on the tiny model, the full-size models' forward passes under ``slow``.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)

from edgetrack.errors import CheckpointError  # noqa: E402
from edgetrack.models.mindspore import siamrpn as ms_rpn  # noqa: E402
from edgetrack.models.mindspore.checkpoint import checkpoint_state as ms_state  # noqa: E402
from edgetrack.models.mindspore.checkpoint import load_weights as ms_load_weights  # noqa: E402
from edgetrack.models.rpn_targets import ANCHOR_TARGETS, CANDIDATE, batch_targets  # noqa: E402
from edgetrack.models.siamrpn_config import SIAMRPN_PRESETS, SiamRPNConfig  # noqa: E402
from edgetrack.models.torch import siamrpn as torch_rpn  # noqa: E402
from edgetrack.models.torch.checkpoint import checkpoint_state as torch_state  # noqa: E402
from edgetrack.models.torch.checkpoint import load_weights as torch_load_weights  # noqa: E402
from edgetrack.tracking.siamrpn import anchor_grid  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.mindspore]

TINY = SIAMRPN_PRESETS["siamrpn-tiny"]
TINY_ALEX = SiamRPNConfig(backbone="alexnet", alexnet_channels=(8, 16, 16, 16, 16), corr_channels=8)
TOL = 1e-4

from torch_helpers import randomise_bn_affine, single_torch_thread  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


def _torch_model(config, seed: int = 0) -> "torch.nn.Module":
    torch.manual_seed(seed)
    model = torch_rpn.SiamRPN(config)
    randomise_bn_affine(model, seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    return model.eval()


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((1, 3, 127, 127), dtype=np.float32) * 255, rng.random((2, 3, 255, 255), dtype=np.float32) * 255


def _compare(tm, mm, name: str, record_property) -> dict:
    """Every graph's output in both frameworks; returns the relative errors by output."""
    z, x = _inputs()
    with torch.no_grad():
        t_kernel = tm.template(torch.from_numpy(z))
        t_features = tm.search(torch.from_numpy(x))
        t_cls, t_loc = tm.head(t_kernel, t_features)
    m_kernel = mm.template(ms.Tensor(z))
    m_features = mm.search(ms.Tensor(x))
    m_cls, m_loc = mm.head(m_kernel, m_features)
    e_cls, e_loc = ms_rpn.graph_modules(mm)["head"](m_kernel, m_features)  # the export form of the correlation
    pairs = {"kernel": (m_kernel, t_kernel), "features": (m_features, t_features), "cls": (m_cls, t_cls),
             "loc": (m_loc, t_loc), "cls (export head)": (e_cls, t_cls), "loc (export head)": (e_loc, t_loc)}
    errors = {}
    for key, (ours, theirs) in pairs.items():
        ours, theirs = ours.asnumpy(), theirs.numpy()
        assert ours.shape == theirs.shape, key
        scale = float(np.abs(theirs).max())
        assert np.isfinite(ours).all() and scale > 0, key
        errors[key] = float(np.abs(ours - theirs).max()) / scale
        record_property(f"relative_error[{key}]", errors[key])
    print(f"\n{name}: max |ms - torch| / scale: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    # The trackers would pick the same anchor: the argmax of the positive-class logits agrees.
    ref = t_cls.numpy().reshape(2, 2, -1)[:, 1]
    assert (m_cls.asnumpy().reshape(2, 2, -1)[:, 1].argmax(1) == ref.argmax(1)).all()
    return errors


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    tm = _torch_model(TINY)
    path = torch_rpn.save_siamrpn(tm, tmp_path_factory.mktemp("rpn") / "tiny.safetensors")
    return tm, path


@pytest.mark.parametrize("name", ["siamrpn-tiny", "siamrpn-alexnet", "siamrpn-eca"])
def test_checkpoint_keys_shapes_and_order_are_the_same(name):
    """Same keys and shapes, in the same order: a strict load names the same first mismatch in both frameworks."""
    ours = [(k, tuple(p.shape)) for k, p in ms_state(ms_rpn.build_siamrpn(name)).items()]
    theirs = [(k, tuple(t.shape)) for k, t in torch_state(torch_rpn.build_siamrpn(name)).items()]
    assert ours == theirs


def test_tiny_outputs_agree_from_a_pytorch_checkpoint(tiny_checkpoint, record_property):
    tm, path = tiny_checkpoint
    mm = ms_rpn.load_siamrpn(path)  # the MindSpore loader, strict
    assert mm.config == tm.config == TINY
    errors = _compare(tm, mm, "siamrpn-tiny", record_property)
    assert max(errors.values()) <= TOL, errors


def test_tiny_alexnet_outputs_agree_both_ways(tmp_path, record_property):
    """PyTorch -> file -> MindSpore, then MindSpore -> file -> PyTorch, weights bit-equal on the way back."""
    tm = _torch_model(TINY_ALEX, seed=3)
    mm = ms_rpn.load_siamrpn(torch_rpn.save_siamrpn(tm, tmp_path / "from_torch.safetensors"))
    errors = _compare(tm, mm, "tiny alexnet", record_property)
    assert max(errors.values()) <= TOL, errors
    back = torch_rpn.load_siamrpn(ms_rpn.save_siamrpn(mm, tmp_path / "from_ms.safetensors"))
    for key, value in torch_state(tm).items():
        np.testing.assert_array_equal(torch_state(back)[key].numpy(), value.numpy())


@pytest.mark.parametrize("other, first", [
    (SiamRPNConfig(backbone="effnet-eca", width=0.25, depth=0.25, corr_channels=8), "head.template_conv.0.weight"),
    (SiamRPNConfig(backbone="effnet-eca", width=0.5, depth=0.25, corr_channels=16), "backbone.stem_conv.weight"),
    (SiamRPNConfig(backbone="effnet-eca", width=0.25, depth=0.5, corr_channels=16), "backbone.blocks.4."),
])
def test_a_mismatch_reads_the_same_in_both_frameworks(tmp_path, other, first):
    path = torch_rpn.save_siamrpn(torch_rpn.SiamRPN(other), tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError) as ours:
        ms_load_weights(ms_rpn.SiamRPN(TINY), path)
    with pytest.raises(CheckpointError) as theirs:
        torch_load_weights(torch_rpn.SiamRPN(TINY), path)
    assert first in str(ours.value)
    assert str(ours.value) == str(theirs.value)


def test_a_missing_batchnorm_reads_the_same_in_both_frameworks(tmp_path):
    """All four of one BatchNorm's tensors missing: both name its ``weight`` (PyTorch's order in both)."""
    from safetensors.numpy import load_file, save_file

    path = torch_rpn.save_siamrpn(torch_rpn.SiamRPN(TINY), tmp_path / "m.safetensors")
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("head.search_conv.1.")}
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=r"no 'head\.search_conv\.1\.weight'") as ours:
        ms_load_weights(ms_rpn.SiamRPN(TINY), path)
    with pytest.raises(CheckpointError) as theirs:
        torch_load_weights(torch_rpn.SiamRPN(TINY), path)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["siamrpn-eca", "siamrpn-alexnet"])
def test_full_size_outputs_agree(name, tmp_path, record_property):
    tm = _torch_model(SIAMRPN_PRESETS[name])
    mm = ms_rpn.load_siamrpn(torch_rpn.save_siamrpn(tm, tmp_path / f"{name}.safetensors"))
    errors = _compare(tm, mm, name, record_property)
    assert max(errors.values()) <= TOL, errors


def _targets(n: int, seed: int, loss: str = "rpn", negative=None):
    grid = anchor_grid(TINY.tracking_params())
    rng = np.random.default_rng(seed)
    centres = 127 + rng.uniform(-40, 40, (n, 2))
    sizes = rng.uniform(30, 90, (n, 2))
    boxes = np.concatenate([centres - sizes / 2, sizes], 1)
    return batch_targets(grid, boxes, rng, ANCHOR_TARGETS[loss], negative)


def test_rpn_loss_equals_the_pytorch_loss():
    rng = np.random.default_rng(4)
    t = _targets(3, seed=5)
    cls = (rng.normal(size=(3, 10, 25, 25)) * 3).astype(np.float32)
    cls[0, :2, 0, :3] = (-60.0, 60.0, 25.0)  # saturated logits: log_softmax's stable branch
    loc = (t["loc"].reshape(3, 20, 25, 25) + rng.normal(size=(3, 20, 25, 25)) * 0.3).astype(np.float32)
    for reg_weight, sigma in ((1.2, 3.0), (0.5, 1.0)):
        theirs = torch_rpn.rpn_loss(torch.from_numpy(cls), torch.from_numpy(loc), *(torch.from_numpy(t[k]) for k in
                                    ("cls", "loc", "loc_weight")), reg_weight=reg_weight, sigma=sigma)
        ours = ms_rpn.rpn_loss(ms.Tensor(cls), ms.Tensor(loc), t["cls"], t["loc"], t["loc_weight"],
                               reg_weight=reg_weight, sigma=sigma)
        cell = ms_rpn.RPNLoss(reg_weight, sigma)(ms.Tensor(cls), ms.Tensor(loc), ms.Tensor(t["cls"].astype(np.float32)),
                                                 ms.Tensor(t["loc"]), ms.Tensor(t["loc_weight"]))
        assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
        assert float(cell) == pytest.approx(float(theirs), rel=1e-6)


def test_rpn_hsm_loss_equals_the_pytorch_loss():
    from edgetrack.models.rpn_targets import AnchorTargetConfig

    rng = np.random.default_rng(6)
    grid = anchor_grid(TINY.tracking_params())
    t = batch_targets(grid, np.array([[100.0, 90, 60, 40], [80, 110, 50, 70]]), rng, AnchorTargetConfig(total=None))
    cls = (rng.normal(size=(2, 10, 25, 25)) * 3).astype(np.float32)
    cls[0, :2, 0, :3] = (-60.0, 60.0, 25.0)
    loc = (t["loc"].reshape(2, 20, 25, 25) + rng.normal(size=(2, 20, 25, 25)) * 0.3).astype(np.float32)
    for alpha, gamma in ((0.6, 2.0), (0.5, 0.0), (0.25, 3.0)):
        kw = dict(cls_loss="hsm", alpha=alpha, gamma=gamma)
        theirs = torch_rpn.rpn_loss(torch.from_numpy(cls), torch.from_numpy(loc), *(torch.from_numpy(t[k]) for k in
                                    ("cls", "loc", "loc_weight")), **kw)
        ours = ms_rpn.rpn_loss(ms.Tensor(cls), ms.Tensor(loc), t["cls"], t["loc"], t["loc_weight"], **kw)
        cell = ms_rpn.RPNLoss(**kw)(ms.Tensor(cls), ms.Tensor(loc), ms.Tensor(t["cls"].astype(np.float32)),
                                    ms.Tensor(t["loc"]), ms.Tensor(t["loc_weight"]))
        assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
        assert float(cell) == pytest.approx(float(theirs), rel=1e-5)


def test_rpn_ohem_loss_and_its_gradient_equal_the_pytorch_ones():
    """The same loss, and the same anchors chosen as the hardest: the gradient with respect to the logits (which
    reaches only the anchors used) agrees, with a positive and a negative pair, for two ``neg_hard``, and with exact
    ties at the k-th place (a block of equal logits among the candidates; both twins take the first in C order)."""
    rng = np.random.default_rng(8)
    t = _targets(3, seed=9, loss="rpn-ohem", negative=[False, True, False])
    assert (t["cls"] == CANDIDATE).any(axis=(1, 2, 3)).all()
    cls = (rng.normal(size=(3, 10, 25, 25)) * 3).astype(np.float32)
    cls[0, :2, 0, :3] = (-60.0, 60.0, 25.0)
    # A block of anchors, every shape, with one logit pair: cls₁ − cls₀ = 8, a tie among ~1 400 candidates of the
    # third pair that the 100th and 300th places fall into (the random logits put few candidates above it).
    cls[2, :5, 3:20, 3:20], cls[2, 5:, 3:20, 3:20] = 0.0, 8.0
    v = (cls[2, 5:] - cls[2, :5])[t["cls"][2] == CANDIDATE]
    assert (v > 8).sum() < 100 and (v >= 8).sum() > 300
    loc = (t["loc"].reshape(3, 20, 25, 25) + rng.normal(size=(3, 20, 25, 25)) * 0.3).astype(np.float32)
    targets_t = [torch.from_numpy(t[k]) for k in ("cls", "loc", "loc_weight")]
    targets_m = [ms.Tensor(t["cls"].astype(np.float32)), ms.Tensor(t["loc"]), ms.Tensor(t["loc_weight"])]
    for neg_hard in (32, 100, 300):
        kw = dict(cls_loss="ohem", neg_hard=neg_hard)
        cls_t = torch.from_numpy(cls).requires_grad_()
        theirs = torch_rpn.rpn_loss(cls_t, torch.from_numpy(loc), *targets_t, **kw)
        theirs.backward()
        ours = ms_rpn.rpn_loss(ms.Tensor(cls), ms.Tensor(loc), t["cls"], t["loc"], t["loc_weight"], **kw)
        cell = ms_rpn.RPNLoss(**kw)
        grad = ms.grad(lambda c: cell(c, ms.Tensor(loc), *targets_m))(ms.Tensor(cls)).asnumpy()
        assert float(ours) == pytest.approx(float(theirs.detach()), rel=1e-5)
        assert float(cell(ms.Tensor(cls), ms.Tensor(loc), *targets_m)) == pytest.approx(float(theirs.detach()),
                                                                                        rel=1e-5)
        ref = cls_t.grad.numpy()
        used = lambda g: np.abs(g.reshape(3, 2, -1)).sum(1) > 0  # noqa: E731
        np.testing.assert_array_equal(used(grad), used(ref))
        assert (used(ref).sum(1) - (t["cls"] >= 0).reshape(3, -1).sum(1) == neg_hard).all()
        np.testing.assert_allclose(grad, ref, rtol=1e-5, atol=1e-7)
    # The choice itself, ties included, from the same losses.
    nll = rng.integers(0, 4, (4, 50)).astype(np.float32)
    pool = rng.random((4, 50)) < 0.7
    for k in (1, 5, 40):
        ours = ms_rpn.hardest_negatives(ms.Tensor(nll), ms.Tensor(pool), k).asnumpy()
        theirs = torch_rpn.hardest_negatives(torch.from_numpy(nll), torch.from_numpy(pool), k).numpy()
        np.testing.assert_array_equal(ours.astype(bool), theirs)
        assert (theirs.sum(1) == np.minimum(k, pool.sum(1))).all()


def test_prior_bias_is_the_same_in_both_twins():
    tm, mm = torch_rpn.SiamRPN(TINY), ms_rpn.SiamRPN(TINY)
    tm.set_prior(0.01)
    mm.set_prior(0.01)
    np.testing.assert_array_equal(tm.head.cls_head[-1].bias.detach().numpy(), mm.head.cls_head[3].bias.asnumpy())
    assert tm.head.cls_head[-1].bias[TINY.num_anchors:].detach().numpy() == pytest.approx(math.log(0.01 / 0.99))


@pytest.mark.parametrize("loss", ["rpn", "rpn-ohem"])
def test_two_training_steps_agree(tiny_checkpoint, loss):
    """Train-mode BN, the RPN loss on the same numpy anchor targets, gradients through the grouped-convolution
    correlation, and two SGD steps (momentum, weight decay) through the MindSpore trainer's own step and hooks;
    ``rpn-ohem`` with a negative pair, its hardest negatives chosen inside the compiled step."""
    from mindspore import nn

    from edgetrack.models.mindspore.train import FAMILIES, TrainConfig, _Dist, _make_step

    _, path = tiny_checkpoint
    tm = torch_rpn.load_siamrpn(path).train()
    mm = ms_rpn.load_siamrpn(path)
    mm.set_train(True)
    rng = np.random.default_rng(6)
    z = rng.random((2, 3, 127, 127), dtype=np.float32) * 255
    x = rng.random((2, 3, 255, 255), dtype=np.float32) * 255
    batch = {"z": z, "x": x, **_targets(2, seed=7, loss=loss, negative=[False, loss == "rpn-ohem"])}
    train_cfg = TrainConfig(model="siamrpn-tiny", loss=loss)
    lr, momentum, wd = 1e-2, 0.9, 5e-4
    family = FAMILIES["siamrpn"]

    opt = torch.optim.SGD(tm.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    targets = [torch.from_numpy(batch[k]) for k in ("cls", "loc", "loc_weight")]
    t_losses = []
    for _ in range(2):  # two steps: the second one uses the momentum buffers
        value = torch_rpn.rpn_loss(*tm(torch.from_numpy(z), torch.from_numpy(x)), *targets,
                                   **family.cls_loss(train_cfg))
        opt.zero_grad()
        value.backward()
        opt.step()
        t_losses.append(value.item())

    ms_opt = nn.SGD([{"params": mm.trainable_params(), "weight_decay": wd}], learning_rate=lr, momentum=momentum)
    step = _make_step(mm, family.objective(train_cfg), ms_opt, _Dist(), compile_step=True)
    m_losses = [float(step(ms.Tensor(z), ms.Tensor(x), *family.targets(batch)).asnumpy()) for _ in range(2)]

    print(f"\nlosses: torch {t_losses}, mindspore {m_losses}")
    np.testing.assert_allclose(m_losses, t_losses, rtol=1e-4)
    theirs = {k: v.detach().numpy() for k, v in torch_state(tm).items()}
    ours = {k: v.asnumpy() for k, v in ms_state(mm).items()}
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        # Weights after two steps and BN running statistics after two updates, each to its own scale.
        tol = 1e-4 * max(1.0, float(np.abs(value).max()))
        assert np.abs(ours[key] - value).max() <= tol, (key, float(np.abs(ours[key] - value).max()))
