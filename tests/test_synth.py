"""The synthetic blurred-video generator: determinism, layout, ground truth on the target, blur, labels, CLI."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the generator uses the photos shipped in scikit-image ([eval] extra)")

from edgetrack.cli import main  # noqa: E402
from edgetrack.data import open_dataset, photos  # noqa: E402
from edgetrack.data.synth import (  # noqa: E402
    SynthConfig,
    contact_sheet,
    cover_class,
    generate,
    make_scene,
    prepare_output,
)
from edgetrack.errors import InvalidArgumentError, MissingDependencyError, UnknownChoiceError  # noqa: E402

TINY = dict(sequences=2, frames=8, size=(128, 96), seed=3)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return generate(SynthConfig(**TINY), tmp_path_factory.mktemp("synth") / "set", progress=False)


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny_set):
    again = generate(SynthConfig(**TINY), tmp_path / "again", progress=False)
    a, b = _files(tiny_set), _files(again)
    a.pop("synth.json"), b.pop("synth.json")
    assert a.keys() == b.keys() and a == b  # every frame and label, byte for byte
    boxes = make_scene(SynthConfig(**TINY), 0).boxes
    assert not np.allclose(make_scene(SynthConfig(**{**TINY, "seed": 4}), 0).boxes, boxes)
    assert not np.allclose(make_scene(SynthConfig(**TINY), 1).boxes, boxes)  # each index its own stream
    assert not np.allclose(make_scene(SynthConfig(**TINY, split="test"), 0).boxes, boxes)


def test_parallel_workers_write_the_same_bytes(tmp_path):
    cfg = SynthConfig(**{**TINY, "frames": 3})
    one = generate(cfg, tmp_path / "one", progress=False)
    two = generate(cfg, tmp_path / "two", workers=2, progress=False)
    a, b = _files(one), _files(two)
    assert json.loads(a.pop("synth.json"))["sequences"] == json.loads(b.pop("synth.json"))["sequences"]
    assert a == b


def test_layout_is_got10k_and_variants_share_ground_truth(tiny_set):
    names = (tiny_set / "sharp" / "list.txt").read_text().split()
    assert names == ["SYN_0001", "SYN_0002"]
    assert (tiny_set / "blurred" / "list.txt").read_text() == "SYN_0001\nSYN_0002\n"
    n = TINY["frames"]
    for name in names:
        for variant in ("sharp", "blurred"):
            files = sorted(p.name for p in (tiny_set / variant / name).iterdir())
            assert files == sorted([f"{i:08d}.jpg" for i in range(1, n + 1)]
                                   + ["absence.label", "cover.label", "groundtruth.txt", "meta_info.ini"])
        for f in ("groundtruth.txt", "absence.label", "cover.label", "meta_info.ini"):
            assert (tiny_set / "sharp" / name / f).read_bytes() == (tiny_set / "blurred" / name / f).read_bytes()
        meta = (tiny_set / "sharp" / name / "meta_info.ini").read_text()
        assert meta.startswith("[METAINFO]\nobject_class: ") and "\nblur: " in meta and "\nseed: 3\n" in meta
        gt = np.loadtxt(tiny_set / "sharp" / name / "groundtruth.txt", delimiter=",")
        assert gt.shape == (n, 4)
        # GoPro layout: NAME/{blur,sharp}/000001.jpg, hard links to the GOT-10k frames (no extra disk)
        for folder, variant in (("blur", "blurred"), ("sharp", "sharp")):
            pairs = sorted((tiny_set / "gopro" / "train" / name / folder).iterdir())
            assert [p.name for p in pairs] == [f"{i:06d}.jpg" for i in range(1, n + 1)]
            assert os.path.samefile(pairs[0], tiny_set / variant / name / "00000001.jpg")
    record = json.loads((tiny_set / "synth.json").read_text())
    assert record["seed"] == 3 and record["config"]["size"] == [128, 96] and len(record["sequences"]) == 2
    assert record["edgetrack_version"] and record["photo_pool"]["split"] == "train"
    assert "SeedSequence" in record["seed_rule"]
    sharp, blurred = open_dataset(f"synthetic:{tiny_set}")
    assert (sharp.name, blurred.name) == ("synthetic-sharp", "synthetic-blurred")
    assert sharp.sequences[0].known_size == (128, 96) and len(sharp.sequences[0]) == n
    for s, b in zip(sharp.sequences, blurred.sequences):
        np.testing.assert_array_equal(s.boxes, b.boxes)
        np.testing.assert_array_equal(s.cover, b.cover)
    (only,) = open_dataset(f"synthetic:{tiny_set}#blurred")
    assert only.name == "synthetic-blurred"
    with pytest.raises(UnknownChoiceError):
        open_dataset(f"synthetic:{tiny_set}#foggy")
    (pairs,) = open_dataset(f"gopro:{tiny_set}/gopro#train")
    assert len(pairs.sequences) == 2 and len(pairs.sequences[0]) == n


def test_box_sits_exactly_on_the_visible_target():
    checked = 0
    for seed in range(6):
        cfg = SynthConfig(sequences=1, frames=12, size=(160, 120), seed=seed, blur="none", occlusion=1.0)
        scene = make_scene(cfg, 0)
        for i in (0, 5, 11):
            everything = scene.render_sharp(i).astype(np.int16)
            no_target = scene.render_sharp(i, kinds={"background", "distractor", "occluder"}).astype(np.int16)
            diff = np.abs(everything - no_target).max(-1) > 2  # pixels the target changes
            box = scene.boxes[i]
            if scene.absent[i]:
                assert not np.isfinite(box).any() and diff.sum() < 10
                continue
            x, y, w, h = box.astype(int)
            # everything the target changes lies in the box (its anti-aliased rim within 1 px of it), but for a few
            # pixels where it shows through the soft edge of an occluder (less than half visible: not in the box) ...
            outside = diff.sum() - diff[max(y - 1, 0):y + h + 1, max(x - 1, 0):x + w + 1].sum()
            assert outside <= (0 if scene.cover[i] == 8 else 6)
            # ... and the box is tight: the target shows within 2 px of each of its edges
            ys, xs = np.nonzero(diff[y:y + h, x:x + w])
            assert xs.min() <= 2 and ys.min() <= 2 and xs.max() >= w - 3 and ys.max() >= h - 3
            checked += 1
    assert checked >= 10


def test_box_stays_in_frame_and_cover_matches_absence():
    seen_partial = seen_absent = 0
    for seed in range(8):
        cfg = SynthConfig(sequences=1, frames=60, size=(128, 96), seed=seed, occlusion=1.0)
        scene = make_scene(cfg, 0)
        boxes, absent, cover = scene.boxes, scene.absent.astype(bool), scene.cover
        assert cover[0] == 8 and not absent[0]  # the tracker's first frame shows the whole target
        assert set(np.unique(cover)) <= set(range(9))
        np.testing.assert_array_equal(absent, cover == 0)
        np.testing.assert_array_equal(absent, ~np.isfinite(boxes).all(1))
        ok = boxes[~absent]
        assert (ok[:, :2] >= 0).all() and (ok[:, 0] + ok[:, 2] <= 128).all() and (ok[:, 1] + ok[:, 3] <= 96).all()
        assert (ok[:, 2:] >= 1).all()
        seen_partial += int(((cover > 0) & (cover < 8)).sum())
        seen_absent += int(absent.sum())
    assert seen_partial > 20 and seen_absent > 0  # occlusion and full occlusion do happen
    assert [cover_class(v) for v in (0.0, 0.1, 0.15, 0.5, 0.95, 0.9999, 1.0)] == [0, 1, 2, 4, 7, 8, 8]


def test_blur_grows_with_strength_and_sharp_frames_do_not_change():
    base = dict(sequences=1, frames=4, size=(128, 96), seed=5)
    frames = {level: list(make_scene(SynthConfig(**base, blur=level), 0).frames())
              for level in ("none", "mild", "strong")}
    err = {}
    for level, pairs in frames.items():
        for (s, _), (s_ref, _) in zip(pairs, frames["strong"]):
            np.testing.assert_array_equal(s, s_ref)  # the middle sub-frame is the same scene at every level
        err[level] = np.mean([np.abs(s.astype(float) - b).mean() for s, b in pairs])
    assert err["none"] == 0.0
    assert err["strong"] > err["mild"] > 0.5
    assert make_scene(SynthConfig(**base, blur=0.75), 0).subframes.min() >= 13


def test_train_and_test_photo_pools_are_disjoint():
    train, test = photos.describe_pool("train"), photos.describe_pool("test")
    assert not set(train["files"]) & set(test["files"])
    shared = {f["file"] for f in train["files"].values()} & {f["file"] for f in test["files"].values()}
    assert shared <= {"lfw_subset.npy"}  # faces: disjoint halves
    assert train["faces"]["indices"][1] <= test["faces"]["indices"][0]
    assert train["targets"] and train["backgrounds"] and test["targets"] and test["backgrounds"]


def test_patch_targets_from_every_photo_of_the_split():
    """patches=1, patch_photos="all": every target is a patch, drawn from the split's photos including the
    backgrounds; the default settings keep the scenes sets were made with (the patch stream is separate)."""
    cfg = SynthConfig(**{**TINY, "sequences": 12}, patches=1.0, patch_photos="all")
    targets = [make_scene(cfg, i).target.info for i in range(12)]
    assert all(t["generic"] for t in targets)
    train_pool = {p.key for p in photos.available("train")}
    used = {t["photo"] for t in targets}
    assert used <= train_pool
    assert used & {p.key for p in photos.available("train") if p.background}  # backgrounds serve as targets too
    default = SynthConfig(**TINY)
    explicit = SynthConfig(**TINY, patches=0.25, patch_photos="objects")
    assert make_scene(default, 1).target.info == make_scene(explicit, 1).target.info
    with pytest.raises(InvalidArgumentError, match="patches"):
        SynthConfig(patches=1.5)
    with pytest.raises(UnknownChoiceError, match="'everywhere'"):
        SynthConfig(patch_photos="everywhere")


def test_without_scikit_image_the_error_says_which_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(photos, "package_dirs", lambda: {})
    with pytest.raises(MissingDependencyError) as exc:
        generate(SynthConfig(**TINY), tmp_path / "x", progress=False)
    assert exc.value.extra == "eval" and "edgetrack[eval]" in str(exc.value)
    assert not (tmp_path / "x").exists()


def test_bad_config_is_a_typed_error(tmp_path):
    with pytest.raises(UnknownChoiceError, match="'sideways'"):
        SynthConfig(blur="sideways")
    with pytest.raises(InvalidArgumentError, match="outside"):
        SynthConfig(blur=1.5)
    with pytest.raises(InvalidArgumentError, match="frames"):
        SynthConfig(frames=1)
    with pytest.raises(UnknownChoiceError):
        SynthConfig(split="val")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match="not empty"):
        prepare_output(tmp_path / "full", force=False)
    prepare_output(tmp_path / "full", force=True)
    assert (tmp_path / "full" / "keep.txt").exists()  # --force replaces only what the generator writes


def test_contact_sheet_is_written(tiny_set, tmp_path):
    import cv2

    path = contact_sheet(tiny_set, tmp_path / "sheet.png", cell_width=96)
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] >= 2 * 72 and img.shape[1] >= 3 * 2 * 96


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["data", "synth", "--out", str(out), "--sequences", "1", "--frames", "3", "--size", "96x64", "--seed", "2",
            "--blur", "strong", "--split", "test"]
    assert main(argv) == 0
    assert (out / "contact_sheet.png").stat().st_size > 0
    assert (out / "gopro" / "test" / "SYN_0001" / "blur" / "000003.jpg").is_file()
    assert main(argv) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(argv + ["--force", "--no-contact-sheet"]) == 0
    assert not (out / "contact_sheet.png").exists()
    capsys.readouterr()
    assert main(["data", "info", f"synthetic:{out}"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic-blurred: 1 sequences, 3 frames" in printed and "96x64" in printed
    assert main(["data", "synth", "--out", str(tmp_path / "bad"), "--blur", "foggy"]) == 2
