"""`edgetrack convert` and `edgetrack inspect` through the CLI entry point, on siamfc-tiny."""
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgetrack.cli import main  # noqa: E402
from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_siamfc(build_siamfc("siamfc-tiny"), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def bundle(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "bundle"
    assert convert(ckpt, out) == 0
    return out


def convert(ckpt, out, *extra, model="siamfc-tiny", target="cpu"):
    return main(["convert", str(ckpt), "--model", model, "--target", target, "-o", str(out), "--scales", "1", *extra])


def test_convert_prints_parity_and_inspect_prints_manifest(ckpt, tmp_path, capsys):
    out = tmp_path / "b"
    assert convert(ckpt, out, "--precision", "fp32") == 0
    text = capsys.readouterr().out
    for word in ("max abs err", "max rel err", "template", "search", "head", f"bundle: {out}"):
        assert word in text
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("format version: 2", "siamfc / siamfc-tiny", "weights.bin", "target:         cpu", "precision:      fp32",
                 "template.onnx", "z [1, 3, 127, 127] float32", "response [1, 1, 17, 17] float32",
                 "channel_order", "scale_num", "checkpoint_sha256", "onnxruntime", "torch->onnx"):
        assert word in text, word


def test_existing_out_refused_then_forced(ckpt, bundle, capsys):
    assert convert(ckpt, bundle) == 2
    assert "already exists" in capsys.readouterr().err
    assert convert(ckpt, bundle, "--force") == 0
    assert main(["inspect", str(bundle)]) == 0


def test_unknown_target_lists_valid_ones(ckpt, tmp_path, capsys):
    assert convert(ckpt, tmp_path / "b", target="tpu") == 2
    err = capsys.readouterr().err
    assert "unknown target 'tpu'" in err
    for t in ("cpu", "cuda", "ascend310", "ascend310b", "ascend310p", "ascend910"):
        assert t in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("target", ["cpu", "ascend310"])
def test_int8_without_calibration_data_names_the_fix_on_every_target(ckpt, tmp_path, capsys, target):
    # Ascend int8 is AMCT's calibration (tests/test_onnx2amct.py): it needs the same real crops as the cpu path.
    assert convert(ckpt, tmp_path / "b", "--precision", "int8", target=target) == 2
    err = capsys.readouterr().err
    assert "--precision int8 needs --calibration" in err and "fix: add --calibration KIND:PATH[#SUBSET]" in err
    assert not (tmp_path / "b").exists()


def test_unknown_precision_lists_valid_ones(ckpt, tmp_path, capsys):
    assert convert(ckpt, tmp_path / "b", "--precision", "fp8") == 2
    err = capsys.readouterr().err
    assert "unknown precision 'fp8'" in err and "fp16, fp32, int8" in err


def test_model_mismatch_names_both(ckpt, tmp_path, capsys):
    assert convert(ckpt, tmp_path / "b", model="siamfc-hsm") == 2
    err = capsys.readouterr().err
    assert "siamfc-tiny" in err and "siamfc-hsm" in err
    assert not (tmp_path / "b").exists()


def test_missing_checkpoint(tmp_path, capsys):
    assert convert(tmp_path / "nope.safetensors", tmp_path / "b") == 2
    assert "does not exist" in capsys.readouterr().err


def test_inspect_altered_bundle_names_the_file(bundle, tmp_path, capsys):
    import shutil

    copy = tmp_path / "altered"
    shutil.copytree(bundle, copy)
    with open(copy / "head.onnx", "ab") as fh:
        fh.write(b"\0")
    assert main(["inspect", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "head.onnx" in err and "altered" in err


def test_inspect_needs_no_torch_or_onnx(bundle):
    code = (
        "import sys\n"
        "from edgetrack.cli import main\n"
        f"rc = main(['inspect', {str(bundle)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'mindspore') if m in sys.modules)\n"
        "assert rc == 0 and not heavy, (rc, heavy)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_convert_with_a_deblur_stage_makes_one_bundle_the_tracker_runs(tmp_path, capsys):
    import numpy as np

    from edgetrack import Tracker
    from edgetrack.bundle import load_bundle
    from edgetrack.models.torch.deblurgan import build_deblurgan, save_deblurgan
    from edgetrack.models.torch.siamrpn import build_siamrpn, save_siamrpn

    rpn = save_siamrpn(build_siamrpn("siamrpn-tiny").eval(), tmp_path / "rpn.safetensors")
    deblur = save_deblurgan(build_deblurgan("deblurgan-tiny").eval(), tmp_path / "deblur.safetensors")
    out = tmp_path / "deblur-rpn"
    assert main(["convert", str(rpn), "--model", "siamrpn-tiny", "--target", "cpu", "--precision", "fp16",
                 "--deblur", str(deblur), "--name", "deblur-rpn-tiny", "-o", str(out)]) == 0
    m = load_bundle(out).manifest
    assert m.model == "deblur-rpn-tiny" and {"deblur_template", "deblur_search"} <= set(m.graphs)
    tracker = Tracker(out, deblur="always")
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    tracker.init(frame, (40, 30, 30, 24))
    tracker.update(frame)
    assert tracker.stats.deblurred == 1 and tracker.stats.template_deblurred

    # int8: the tracker's graphs quantized on the calibration crops, the deblur stage kept at fp16.
    from edgetrack.data.synth import SynthConfig, generate

    data = generate(SynthConfig(sequences=2, frames=6, size=(160, 120), seed=3, pairs=False), tmp_path / "synth",
                    progress=False)
    # The seeded model of tests/test_precision.py, whose int8 graphs pass the sanity bounds on these crops (an
    # untrained model's int8 error depends on its random weights).
    from torch_helpers import tiny_siamrpn

    rpn = save_siamrpn(tiny_siamrpn(), tmp_path / "rpn-seeded.safetensors")
    out8 = tmp_path / "int8"
    assert main(["convert", str(rpn), "--model", "siamrpn-tiny", "--target", "cpu", "--precision", "int8",
                 "--calibration", f"synthetic:{data}", "--calibration-frames", "4", "--deblur", str(deblur),
                 "-o", str(out8)]) == 0
    m8 = load_bundle(out8).manifest
    assert m8.precision == "int8" and m8.preprocessing["deblur"]["precision"].startswith("fp16")
    assert all(r["passed"] is not False for rows in m8.parity.values() for r in rows.values())
    tracker = Tracker(out8, deblur="always")
    tracker.init(frame, (40, 30, 30, 24))
    assert np.all(np.isfinite(tracker.update(frame).box)) and tracker.stats.deblurred == 1


def test_scale_search_by_templates_through_the_cli(ckpt, tmp_path, capsys):
    from edgetrack.bundle import load_bundle

    out = tmp_path / "templates"
    assert main(["convert", str(ckpt), "--model", "siamfc-tiny", "--target", "cpu", "-o", str(out),
                 "--scale-search", "templates"]) == 0
    m = load_bundle(out).manifest
    assert m.tracking["scale_search"] == "templates" and m.graphs["search"].inputs[0].shape[0] == 1
    assert m.graphs["template"].inputs[0].shape[0] == 3
    with pytest.raises(SystemExit):
        main(["convert", str(ckpt), "--model", "siamfc-tiny", "--target", "cpu", "-o", str(tmp_path / "x"),
              "--scale-search", "pyramid"])
    assert "invalid choice: 'pyramid'" in capsys.readouterr().err
