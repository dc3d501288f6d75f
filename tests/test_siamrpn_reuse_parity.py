"""siamrpn-reuse's twins: one checkpoint in PyTorch and MindSpore, the same outputs (≤ 1e-4 of their scale), the
same training step (frozen and fine-tuned trunk), the same copy from a deblurrer, and MindSpore's export through
ONNX Runtime."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)

from edgetrack.errors import CheckpointError  # noqa: E402
from edgetrack.models.mindspore import siamrpn as ms_rpn  # noqa: E402
from edgetrack.models.mindspore.checkpoint import checkpoint_state as ms_state  # noqa: E402
from edgetrack.models.rpn_targets import ANCHOR_TARGETS, batch_targets  # noqa: E402
from edgetrack.models.siamrpn_config import GRAPH_IO, SIAMRPN_PRESETS  # noqa: E402
from edgetrack.models.torch import siamrpn as torch_rpn  # noqa: E402
from edgetrack.models.torch.checkpoint import checkpoint_state as torch_state  # noqa: E402
from edgetrack.models.torch.deblurgan import build_deblurgan, save_deblurgan  # noqa: E402
from edgetrack.tracking.siamrpn import anchor_grid  # noqa: E402

from bundle_helpers import assert_onnx_matches, runtime_weight_convs  # noqa: E402 - tests/ is on sys.path
from torch_helpers import randomise_bn_affine, single_torch_thread  # noqa: E402

one_thread = pytest.fixture(autouse=True)(single_torch_thread)

TOL = 1e-4
REUSE_TINY = SIAMRPN_PRESETS["siamrpn-reuse-tiny"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("reuse")
    torch.manual_seed(0)
    tracker = torch_rpn.save_siamrpn(randomise_bn_affine(torch_rpn.SiamRPN(REUSE_TINY), 1), d / "rpn.safetensors")
    torch.manual_seed(2)
    deblur = save_deblurgan(randomise_bn_affine(build_deblurgan("deblurgan-tiny"), 3), d / "deblur.safetensors")
    return tracker, deblur


def _inputs(seed=0, n=2):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, 127, 127), dtype=np.float32) * 255, rng.random((n, 3, 255, 255), dtype=np.float32) * 255


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))


@pytest.mark.parametrize("name", ["siamrpn-reuse-tiny", "siamrpn-reuse"])
def test_checkpoint_keys_shapes_and_order_are_the_same(name):
    ours = [(k, tuple(p.shape)) for k, p in ms_state(ms_rpn.build_siamrpn(name)).items()]
    theirs = [(k, tuple(t.shape)) for k, t in torch_state(torch_rpn.build_siamrpn(name)).items()]
    assert ours == theirs


def test_outputs_agree_from_a_pytorch_checkpoint(checkpoints, record_property):
    path, _ = checkpoints
    tm, mm = torch_rpn.load_siamrpn(path), ms_rpn.load_siamrpn(path)
    z, x = _inputs()
    with torch.no_grad():
        t_out = {"kernel": tm.template(torch.from_numpy(z[:1])).numpy(),
                 "features": tm.search(torch.from_numpy(x)).numpy()}
        t_cls, t_loc = tm(torch.from_numpy(z), torch.from_numpy(x))
    m_out = {"kernel": mm.template(ms.Tensor(z[:1])).asnumpy(), "features": mm.search(ms.Tensor(x)).asnumpy()}
    m_cls, m_loc = mm(ms.Tensor(z), ms.Tensor(x))
    t_out.update(cls=t_cls.numpy(), loc=t_loc.numpy())
    m_out.update(cls=m_cls.asnumpy(), loc=m_loc.asnumpy())
    errors = {k: _rel(t_out[k], m_out[k]) for k in t_out}
    print(f"\nsiamrpn-reuse-tiny forward, relative max error: {errors}")
    record_property("forward_rel_error", json.dumps(errors))
    assert max(errors.values()) <= TOL, errors


def test_init_backbone_is_the_same_in_both_and_names_the_same_mismatch(checkpoints):
    _, deblur = checkpoints
    tm, mm = torch_rpn.build_siamrpn("siamrpn-reuse-tiny"), ms_rpn.build_siamrpn("siamrpn-reuse-tiny")
    t_rec, m_rec = torch_rpn.init_backbone(tm, deblur), ms_rpn.init_backbone(mm, deblur)
    assert t_rec == m_rec
    theirs = torch_state(tm.backbone)
    ours = ms_state(mm.backbone)
    for k, v in theirs.items():
        np.testing.assert_array_equal(ours[k].asnumpy(), v.numpy())
    messages = []
    for module in (torch_rpn, ms_rpn):
        with pytest.raises(CheckpointError) as info:
            module.init_backbone(module.build_siamrpn("siamrpn-reuse"), deblur)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "'backbone.enc0.0.0.weight'" in messages[0]


def _targets(n, seed):
    grid = anchor_grid(REUSE_TINY.tracking_params())
    rng = np.random.default_rng(seed)
    centres = 127 + rng.uniform(-40, 40, (n, 2))
    sizes = rng.uniform(30, 90, (n, 2))
    boxes = np.concatenate([centres - sizes / 2, sizes], 1)
    return batch_targets(grid, boxes, rng, ANCHOR_TARGETS["rpn"], None)


@pytest.mark.parametrize("freeze", [False, True])
def test_one_training_step_agrees(checkpoints, freeze, record_property):
    """Train-mode BN (eval for a frozen trunk), the RPN loss, gradients and one SGD step through the MindSpore
    trainer's own step and hooks, from one checkpoint and one deblurrer."""
    from mindspore import nn

    from edgetrack.models.mindspore.train import FAMILIES, TrainConfig, _Dist, _make_step

    path, deblur = checkpoints
    tm = torch_rpn.load_siamrpn(path)
    mm = ms_rpn.load_siamrpn(path)
    if freeze:
        torch_rpn.init_backbone(tm, deblur, freeze=True)
        ms_rpn.init_backbone(mm, deblur, freeze=True)
    tm.train()
    mm.set_train(True)
    z, x = _inputs(seed=6)
    batch = {"z": z, "x": x, **_targets(2, seed=7)}
    train_cfg = TrainConfig(model="siamrpn-reuse-tiny")
    lr, momentum, wd = 1e-2, 0.9, 5e-4
    family = FAMILIES["siamrpn"]

    opt = torch.optim.SGD([p for p in tm.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                          weight_decay=wd)
    targets = [torch.from_numpy(batch[k]) for k in ("cls", "loc", "loc_weight")]
    value = torch_rpn.rpn_loss(*tm(torch.from_numpy(z), torch.from_numpy(x)), *targets, **family.cls_loss(train_cfg))
    opt.zero_grad()
    value.backward()
    opt.step()

    ms_opt = nn.SGD([{"params": mm.trainable_params(), "weight_decay": wd}], learning_rate=lr, momentum=momentum)
    assert len(mm.trainable_params()) == len(opt.param_groups[0]["params"])
    step = _make_step(mm, family.objective(train_cfg), ms_opt, _Dist(), compile_step=True)
    m_loss = float(step(ms.Tensor(z), ms.Tensor(x), *family.targets(batch)).asnumpy())
    print(f"\nloss: torch {value.item()}, mindspore {m_loss}")
    assert m_loss == pytest.approx(value.item(), rel=TOL)
    theirs = {k: v.detach().numpy() for k, v in torch_state(tm).items()}
    ours = {k: v.asnumpy() for k, v in ms_state(mm).items()}
    worst = 0.0
    for key, v in theirs.items():
        err = float(np.abs(ours[key] - v).max()) / max(1.0, float(np.abs(v).max()))
        worst = max(worst, err)
        assert err <= TOL, (key, err)
    record_property("step_rel_error", worst)
    print(f"worst weight/statistic error after one step: {worst:.2e}")


def test_three_graphs_export_to_onnx_and_match_onnx_runtime(checkpoints, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path, _ = checkpoints
    model = ms_rpn.load_siamrpn(path)
    graphs = ms_rpn.graph_modules(model)
    z, x = _inputs(seed=8, n=1)
    z2, x2 = _inputs(seed=9, n=1)
    traced = {"template": (ms.Tensor(z),), "search": (ms.Tensor(x),),
              "head": (graphs["template"](ms.Tensor(z)), graphs["search"](ms.Tensor(x)))}
    checks = {"template": (ms.Tensor(z2),), "search": (ms.Tensor(x2),),
              "head": (graphs["template"](ms.Tensor(z2)), graphs["search"](ms.Tensor(x2)))}
    for name, graph in graphs.items():
        inputs, outputs = GRAPH_IO[name]
        ms.export(graph, *traced[name], file_name=str(tmp_path / name), file_format="ONNX")
        path = tmp_path / f"{name}.onnx"
        onnx.checker.check_model(onnx.load(str(path)))
        assert not runtime_weight_convs(path)[0], f"{name}: a Conv has a runtime weight"
        expected = graph(*checks[name])
        expected = expected if isinstance(expected, tuple) else (expected,)
        assert_onnx_matches(path, [a.asnumpy() for a in checks[name]], [e.asnumpy() for e in expected], name)
