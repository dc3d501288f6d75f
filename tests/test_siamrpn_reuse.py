"""siamrpn-reuse: SiamRPN whose trunk is the DeblurGAN-v2 generator's encoder and FPN (deblur-fpn backbone), in
PyTorch: geometry (the crop centre on a cell centre), the copy from a trained deblurrer (names, typed errors, frozen
or fine-tuned, recorded in the checkpoint), training, and the convert CLI. The graphs' ONNX export is
test_siamrpn_torch's export test (its deblur-fpn case); the MindSpore twin's parity is in
tests/test_siamrpn_reuse_parity.py."""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
import torch.nn as nn  # noqa: E402

from edgetrack.errors import CheckpointError, InvalidArgumentError  # noqa: E402
from edgetrack.models.siamrpn_config import REUSE_DEBLUR_PRESETS, SIAMRPN_PRESETS, SiamRPNConfig  # noqa: E402
from edgetrack.models.torch.checkpoint import read_metadata  # noqa: E402
from edgetrack.models.torch.deblurgan import build_deblurgan, pad_to_multiple, save_deblurgan  # noqa: E402
from edgetrack.models.torch.siamrpn import (  # noqa: E402
    SiamRPN,
    build_siamrpn,
    init_backbone,
    load_siamrpn,
    save_siamrpn,
)
from edgetrack.models.torch.train import TrainConfig, family_of  # noqa: E402

pytestmark = pytest.mark.torch

REUSE_TINY = SIAMRPN_PRESETS["siamrpn-reuse-tiny"]

from torch_helpers import random_crops, randomise_bn_affine, single_torch_thread  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


@pytest.fixture(scope="module")
def deblur_tiny(tmp_path_factory):
    """A deblurgan-tiny generator with non-trivial weights and BN statistics, saved as a training run would."""
    torch.manual_seed(11)
    gen = randomise_bn_affine(build_deblurgan("deblurgan-tiny"), seed=12)
    return gen, save_deblurgan(gen, tmp_path_factory.mktemp("deblur") / "final.safetensors")


# -- configuration and geometry ---------------------------------------------------------------------------------------
def test_presets_geometry_and_config_round_trip():
    reuse = SIAMRPN_PRESETS["siamrpn-reuse"]
    assert (reuse.backbone, reuse.width, reuse.fpn_channels) == ("deblur-fpn", 0.5, 64)
    assert REUSE_DEBLUR_PRESETS == {"siamrpn-reuse": "deblurgan-lite", "siamrpn-reuse-tiny": "deblurgan-tiny"}
    for name, cfg in (("siamrpn-reuse", reuse), ("siamrpn-reuse-tiny", REUSE_TINY)):
        assert (cfg.template_feature_size, cfg.template_crop, cfg.search_feature_size) == (15, 4, 31)
        assert (cfg.kernel_size, cfg.search_size, cfg.score_size) == (5, 29, 25)
        assert SiamRPNConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        deblur = cfg.deblur_config()
        from edgetrack.models.deblur_config import DEBLURGAN_PRESETS

        preset = DEBLURGAN_PRESETS[REUSE_DEBLUR_PRESETS[name]]
        assert (deblur.width, deblur.fpn_channels, deblur.norm) == (preset.width, preset.fpn_channels, preset.norm)
    # The other backbones' config dicts are unchanged (no deblur-fpn fields).
    assert "fpn_channels" not in SIAMRPN_PRESETS["siamrpn-eca"].to_dict()
    assert SiamRPNConfig(backbone="deblur-fpn", width=0.25, top_down=False).backbone_channels == 8
    for bad in ({"fpn_channels": 0}, {"fpn_norm": "instance"}, {"top_down": 1}, {"backbone": "deblur-fpn", "width": 5}):
        with pytest.raises(InvalidArgumentError):
            SiamRPNConfig(**bad)


@pytest.mark.parametrize("config", [REUSE_TINY, SiamRPNConfig(backbone="deblur-fpn", width=0.25, top_down=False,
                                                              corr_channels=8)])
def test_maps_graphs_and_training_forward_have_the_contract_shapes(config):
    model = SiamRPN(config).eval()
    z, x = random_crops()
    with torch.no_grad():
        assert model.backbone(z).shape[1:] == (config.backbone_channels, 15, 15)
        assert model.backbone(x).shape[1:] == (config.backbone_channels, 31, 31)
        kernel, features = model.template(z), model.search(x)
        cls, loc = model.head(kernel, features)
    c = config.corr_channels
    assert kernel.shape == (1, 2 * c, 5, 5) and features.shape == (1, 2 * c, 29, 29)
    assert cls.shape == (1, 10, 25, 25) and loc.shape == (1, 20, 25, 25)


def _centroid(model, cell_rows, size=255):
    """Gradient centroid of backbone cells (i, i) w.r.t. a uniform crop, per i (rows, cols)."""
    x = torch.full((1, 3, size, size), 200.0, requires_grad=True)
    f = model.backbone(x)
    out = {}
    for i in cell_rows:
        (g,) = torch.autograd.grad(f[0, :, i, i].sum(), x, retain_graph=True)
        g = g[0].abs().sum(0).double()
        assert float(g.sum()) > 0
        cols = float((g.sum(0) * torch.arange(size)).sum() / g.sum())
        rows = float((g.sum(1) * torch.arange(size)).sum() / g.sum())
        out[i] = (rows, cols)
    return out


def _positive_linear(model):
    """Every convolution a small positive constant, BN the identity, ReLU6 in its linear range for a 200-grey crop:
    each cell's input gradient is then its receptive field's weighting, symmetric about the cell's centre."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.02)
    return model.eval()


def test_encoder_cells_are_centred_on_8i_plus_7():
    """Without the top-down path every cell is a symmetric receptive field: cell i (search map) centred on crop pixel
    8·i + 7 exactly, the crop's centre pixel 127 on cell 15, as EfficientNetECA's (the replicated top/left row and
    column and the dropped first cell are what move MobileNetV2's 'same'-padded grid there)."""
    model = _positive_linear(SiamRPN(SiamRPNConfig(backbone="deblur-fpn", width=0.25, top_down=False)))
    for i, (r, c) in _centroid(model, (12, 15, 18)).items():
        assert r == pytest.approx(8 * i + 7, abs=1e-6) and c == pytest.approx(8 * i + 7, abs=1e-6)
    # The template map too: its centre cell 7 on pixel 63.
    z = torch.full((1, 3, 127, 127), 200.0, requires_grad=True)
    (g,) = torch.autograd.grad(model.backbone(z)[0, :, 7, 7].sum(), z)
    g = g[0].abs().sum(0).double()
    assert float((g.sum(0) * torch.arange(127)).sum() / g.sum()) == pytest.approx(63, abs=1e-6)


def test_top_down_skew_is_the_same_in_template_and_search_so_it_cancels():
    """With the FPN's top-down path the 1-pixel shift still puts the crop centre on a cell centre of every level
    (padded pixel 128 = 8·16 = 16·8 = 32·4), but nearest upsampling followed by a 3×3 convolution is not symmetric:
    cell 2j+1 takes coarse cell j, so a stride-8 cell's receptive field leans up/left, by about 2 px for even and
    1.3 px for odd cells here (all-positive weights). The lean is the generator's own (its weights were trained
    with it) and the template's centre cell leans as the search's centre cell does, so it cancels in the
    correlation: the score map's cell r still answers for a target at 8·r + 31."""
    model = _positive_linear(SiamRPN(REUSE_TINY))
    (r, c), = _centroid(model, (15,)).values()
    z = torch.full((1, 3, 127, 127), 200.0, requires_grad=True)
    (g,) = torch.autograd.grad(model.backbone(z)[0, :, 7, 7].sum(), z)
    g = g[0].abs().sum(0).double()
    zc = float((g.sum(0) * torch.arange(127)).sum() / g.sum())
    zr = float((g.sum(1) * torch.arange(127)).sum() / g.sum())
    for search, template in ((r - 127, zr - 63), (c - 127, zc - 63)):
        assert -4 < search < 0 and -4 < template < 0  # under half a cell
        assert abs(search - template) < 0.5, (search, template)


def test_a_shift_by_8_pixels_moves_the_encoder_map_by_one_cell():
    model = randomise_bn_affine(SiamRPN(SiamRPNConfig(backbone="deblur-fpn", width=0.25, top_down=False)), seed=1)
    g = torch.Generator().manual_seed(2)
    big = torch.rand(1, 3, 255 + 8, 255 + 8, generator=g) * 255
    with torch.no_grad():
        a = model.backbone(big[:, :, :255, :255])
        b = model.backbone(big[:, :, 8:, 8:])
    # Interior cells (away from the padded borders) agree one cell apart.
    assert torch.allclose(a[:, :, 6:24, 6:24], b[:, :, 5:23, 5:23], atol=1e-4, rtol=1e-4)


# -- initialisation from a deblurrer ------------------------------------------------------------------------------------
def test_init_backbone_copies_the_generator_encoder_and_reproduces_its_features(deblur_tiny):
    gen, path = deblur_tiny
    model = build_siamrpn("siamrpn-reuse-tiny")
    record = init_backbone(model, path)
    assert record["frozen"] is False and record["deblur_config"] == "deblurgan-tiny" and len(record["sha256"]) == 64
    gen_state = gen.state_dict()
    for name, tensor in model.backbone.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, gen_state[f"fpn.{name}"]), name
    # The trunk's stride-8 map is the generator's own FPN map2 of the crop (shifted by the replicated row/column).
    model.eval()
    _, x = random_crops(seed=3)
    with torch.no_grad():
        ours = model.backbone(x)
        shifted = torch.cat([x[:, :, :1], x], 2)
        shifted = torch.cat([shifted[:, :, :, :1], shifted], 3) / 127.5 - 1.0
        _, _, map2, _, _ = gen.fpn(pad_to_multiple(shifted))
    assert torch.allclose(ours, map2[:, :, 1:32, 1:32], atol=1e-5)


def test_init_backbone_names_the_first_mismatch_and_changes_nothing(deblur_tiny, tmp_path):
    _, path = deblur_tiny
    model = build_siamrpn("siamrpn-reuse")  # deblurgan-lite's trunk, not tiny's
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"'fpn\.enc0\.0\.0\.weight' has shape .*'backbone\.enc0\.0\.0\.weight'"):
        init_backbone(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    tracker = save_siamrpn(build_siamrpn("siamrpn-reuse-tiny"), tmp_path / "rpn.safetensors")
    with pytest.raises(CheckpointError, match="not a DeblurGAN-v2"):
        init_backbone(build_siamrpn("siamrpn-reuse-tiny"), tracker)
    with pytest.raises(InvalidArgumentError, match="deblur-fpn"):
        init_backbone(build_siamrpn("siamrpn-tiny"), path)


def test_frozen_trunk_gets_no_gradient_keeps_its_statistics_and_is_recorded(deblur_tiny, tmp_path):
    _, path = deblur_tiny
    cfg = TrainConfig(model="siamrpn-reuse-tiny", init_backbone=str(path), freeze_backbone=True)
    model = family_of(cfg.model).build(cfg).train()
    assert not model.backbone.training and model.head.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    stats = model.backbone.enc0[0][1].running_mean.clone()
    z, x = random_crops(2, seed=5)
    cls, loc = model(z, x)
    (cls.sum() + loc.sum()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
    assert torch.equal(model.backbone.enc0[0][1].running_mean, stats)
    saved = save_siamrpn(model, tmp_path / "frozen.safetensors", {"train_config": cfg.to_dict()})
    meta = read_metadata(saved)
    init = json.loads(meta["backbone_init"])
    assert init["frozen"] is True and init["path"] == str(path)
    assert json.loads(meta["train_config"])["init_backbone"] == str(path)
    assert load_siamrpn(saved).config == REUSE_TINY


def test_train_config_checks_the_backbone_options(deblur_tiny):
    _, path = deblur_tiny
    with pytest.raises(InvalidArgumentError, match="deblur-fpn"):
        TrainConfig(model="siamrpn-tiny", init_backbone=str(path))
    with pytest.raises(InvalidArgumentError, match="init_backbone"):
        TrainConfig(model="siamrpn-reuse-tiny", freeze_backbone=True)
    # Unset, the fields stay out of the run's record (older runs resume unchanged).
    record = TrainConfig(model="siamrpn-reuse-tiny").to_dict()
    assert "init_backbone" not in record and "freeze_backbone" not in record
    assert TrainConfig.from_dict(record) == TrainConfig(model="siamrpn-reuse-tiny")


def test_the_deblurrer_itself_refuses_the_backbone_options(tmp_path, capsys):
    from edgetrack.cli import main

    argv = ["train", "--model", "deblurgan-tiny", "--data", "synthetic:/nowhere", "--out", str(tmp_path / "d"),
            "--init-backbone", str(tmp_path / "g.safetensors")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--init-backbone" in err and "deblurgan-tiny is the deblurrer" in err and "siamrpn-reuse" in err
    assert main(argv[:-2] + ["--freeze-backbone"]) == 2
    assert "--freeze-backbone" in capsys.readouterr().err


@pytest.mark.parametrize("freeze", [False, True])
def test_cli_trains_siamrpn_reuse_tiny_from_a_deblurrer(tmp_path, deblur_tiny, freeze):
    from test_siamrpn_torch import _write_got10k

    from edgetrack.cli import main

    _, path = deblur_tiny
    data = _write_got10k(tmp_path / "got")
    out = tmp_path / "run"
    argv = ["train", "--model", "siamrpn-reuse-tiny", "--data", f"got10k:{data}", "--out", str(out), "--epochs",
            "1", "--steps-per-epoch", "4", "--batch-size", "2", "--log-every", "1", "--init-backbone", str(path)]
    assert main(argv + (["--freeze-backbone"] if freeze else [])) == 0
    final = out / "final.safetensors"
    meta = read_metadata(final)
    assert json.loads(meta["backbone_init"])["frozen"] is freeze
    trained = load_siamrpn(final)
    gen_state = deblur_tiny[0].state_dict()
    same = [torch.equal(v, gen_state[f"fpn.{k}"]) for k, v in trained.backbone.state_dict().items()
            if not k.endswith("num_batches_tracked")]
    assert all(same) if freeze else not all(same)
    config = json.loads((out / "config.json").read_text())
    assert config["init_backbone"] == str(path) and config.get("freeze_backbone", False) is freeze


# -- export (the three graphs' ONNX export: test_siamrpn_torch's export test, its deblur-fpn case) ----------------
def test_convert_cli_bundles_siamrpn_reuse(tmp_path):
    """``edgetrack convert --model siamrpn-reuse-tiny --target cpu``: the three graphs, checked against PyTorch."""
    pytest.importorskip("onnxruntime")
    from edgetrack.bundle import load_bundle
    from edgetrack.cli import main

    ckpt = save_siamrpn(randomise_bn_affine(SiamRPN(REUSE_TINY), seed=9), tmp_path / "rpn.safetensors")
    out = tmp_path / "bundle"
    assert main(["convert", str(ckpt), "--model", "siamrpn-reuse-tiny", "--target", "cpu", "-o", str(out)]) == 0
    bundle = load_bundle(out)
    assert bundle.manifest.model == "siamrpn-reuse-tiny"
    assert set(bundle.manifest.graphs) == {"template", "search", "head"}
