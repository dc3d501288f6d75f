"""The synthetic blurred-video generator: determinism, layout, ground truth on the target, blur, CLI."""
import json

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the generator uses the photos shipped in scikit-image ([eval] extra)")

from edgetrack.cli import main  # noqa: E402
from edgetrack.data import open_dataset  # noqa: E402
from edgetrack.data.synth import SynthConfig, cover_class, generate, make_scene, render_sequence  # noqa: E402
from edgetrack.errors import InvalidArgumentError, UnknownChoiceError  # noqa: E402

TINY = dict(sequences=2, frames=6, size=(128, 96), seed=3)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    generate(SynthConfig(**TINY), out, progress=False)
    return out


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny_set):
    again = generate(SynthConfig(**TINY), tmp_path / "again", progress=False)
    for rel in ("blurred/list.txt", "sharp/SYN-train-s3-0001/groundtruth.txt", "blurred/SYN-train-s3-0002/00000004.jpg"):
        assert (tiny_set / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = render_sequence(SynthConfig(**{**TINY, "seed": 4}), 0)[2]
    assert not np.allclose(other, render_sequence(SynthConfig(**TINY), 0)[2])


def test_layout_is_got10k_and_variants_share_ground_truth(tiny_set):
    names = (tiny_set / "sharp" / "list.txt").read_text().split()
    assert names == ["SYN-train-s3-0001", "SYN-train-s3-0002"]
    for name in names:
        for f in ("groundtruth.txt", "absence.label", "cover.label", "meta_info.ini"):
            assert (tiny_set / "sharp" / name / f).read_bytes() == (tiny_set / "blurred" / name / f).read_bytes()
        assert sorted(p.name for p in (tiny_set / "blurred" / name).glob("*.jpg"))[0] == "00000001.jpg"
        assert (tiny_set / "sharp" / name / "meta_info.ini").read_text().startswith("[METAINFO]\nobject_class: ")
        assert len(list((tiny_set / "gopro" / "train" / name / "blur").iterdir())) == TINY["frames"]
    record = json.loads((tiny_set / "synth.json").read_text())
    assert record["config"]["seed"] == 3 and len(record["sequences"]) == 2
    sharp, blurred = open_dataset(f"synthetic:{tiny_set}")
    assert (sharp.name, blurred.name) == ("synthetic-sharp", "synthetic-blurred")
    assert sharp.sequences[0].image_size == (128, 96)
    np.testing.assert_array_equal(sharp.sequences[1].boxes, blurred.sequences[1].boxes)
    (pairs,) = open_dataset(f"gopro:{tiny_set}/gopro#train")
    assert len(pairs.sequences) == 2


def test_box_sits_on_the_target():
    cfg = SynthConfig(sequences=1, frames=3, size=(160, 120), seed=11, occlusion=0.0, distractors=(0, 0))
    scene = make_scene(cfg, 0)
    with_target = scene.render(1.0)
    scene.target.mask[:] = 0  # same scene without the target
    without = scene.render(1.0)
    scene2 = make_scene(cfg, 0)
    box, visible = scene2.ground_truth(1.0)
    x, y, w, h = box.astype(int)
    diff = np.abs(with_target - without).sum(-1) > 1
    # the box holds the pixels the target covers by more than half; its anti-aliased rim lies within 1 px of it
    inside = diff[y - 1 : y + h + 1, x - 1 : x + w + 1].sum()
    assert visible == pytest.approx(1.0, abs=1e-3)
    assert inside == diff.sum()
    assert diff[y : y + h, x : x + w].any(0).all() or w < 3  # and the box is tight: no empty column inside


def test_blur_grows_with_strength():
    errs = {}
    for level in ("mild", "strong"):
        sharp, blurred, *_ = render_sequence(SynthConfig(sequences=1, frames=4, size=(128, 96), seed=5, blur=level), 0)
        errs[level] = np.mean([np.abs(s.astype(float) - b).mean() for s, b in zip(sharp, blurred)])
    sharp, blurred, *_ = render_sequence(SynthConfig(sequences=1, frames=3, size=(128, 96), seed=5, blur="none"), 0)
    assert all(np.array_equal(s, b) for s, b in zip(sharp, blurred))
    assert errs["strong"] > errs["mild"] > 0


def test_cover_and_absence_are_consistent(tiny_set):
    for seq in open_dataset(f"synthetic:{tiny_set}#sharp")[0].sequences:
        assert set(np.unique(seq.cover)) <= set(range(9))
        assert not (seq.absent.astype(bool) & (seq.cover >= 2)).any()
        assert seq.cover[0] == 8 and not seq.absent[0]
    assert [cover_class(v) for v in (0.0, 0.1, 0.15, 0.5, 0.95, 1.0)] == [0, 1, 1, 4, 7, 8]


def test_bad_config_is_a_typed_error():
    with pytest.raises(UnknownChoiceError, match="'sideways'"):
        SynthConfig(blur="sideways")
    with pytest.raises(InvalidArgumentError, match="frames"):
        SynthConfig(frames=1)


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["data", "synth", "--out", str(out), "--sequences", "1", "--frames", "3", "--size", "96x64", "--seed", "2"]
    assert main(argv) == 0
    assert (out / "contact_sheet.png").stat().st_size > 0
    assert main(argv) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0
    assert main(["data", "info", f"synthetic:{out}"]) == 0
    assert "synthetic-blurred: 1 sequences, 3 frames" in capsys.readouterr().out
