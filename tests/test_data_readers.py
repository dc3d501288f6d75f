"""The data set readers (GOT-10k, OTB-2015, ILSVRC2015-VID, GoPro) on tiny fixtures in each format's real layout."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgetrack.data as data
from edgetrack.data import BlurPairSequence, Dataset, Sequence, open_dataset
from edgetrack.data import got10k, otb
from edgetrack.data.gopro import open_gopro
from edgetrack.data.got10k import open_got10k
from edgetrack.data.otb import open_otb
from edgetrack.data.vid import open_vid
from edgetrack.errors import DatasetError, UnknownChoiceError

W, H = 32, 24


def _encoded(ext: str) -> bytes:
    img = np.zeros((H, W, 3), np.uint8)
    img[4:12, 8:20] = (40, 200, 90)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


_IMAGES = {ext: _encoded(ext) for ext in (".jpg", ".png")}


def put_images(folder: Path, names) -> None:
    """Real (decodable) tiny images, encoded once and written as bytes so a few hundred frames stay fast."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        ext = ".png" if name.endswith(".png") else ".jpg"
        (folder / name).write_bytes(_IMAGES[ext])


def write_lines(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def err_text(excinfo) -> str:
    return str(excinfo.value)


# ------------------------------------------------------------------------------------------------------ GOT-10k


def got_seq(split: Path, name: str, n: int, *, gt_lines=None, absent=None, cover=None, meta=True) -> Path:
    seq = split / name
    put_images(seq, [f"{i:08d}.jpg" for i in range(1, n + 1)])
    if gt_lines is None:
        gt_lines = [f"{1 + i}.0000,{2 + i}.0000,10.0000,8.0000" for i in range(n)]
    write_lines(seq / "groundtruth.txt", gt_lines)
    if absent is not None:
        write_lines(seq / "absence.label", absent)
    if cover is not None:
        write_lines(seq / "cover.label", cover)
    if meta:
        write_lines(
            seq / "meta_info.ini",
            [
                "[METAINFO]",
                "url: https://youtu.be/abc",
                "begin: 00:00:01",
                "anno_fps: 10Hz",
                "object_class: ichneumon",
                "motion_class: walking",
                "major_class: viverrine",
                "root_class: animal",
                "resolution: (1920, 1080)",
            ],
        )
    return seq


@pytest.fixture
def got_root(tmp_path):
    root = tmp_path / "GOT-10k"
    val = root / "val"
    got_seq(val, "GOT-10k_Val_000001", 5, absent=[0, 0, 1, 0, 0], cover=[8, 7, 0, 3, 8])
    got_seq(val, "GOT-10k_Val_000002", 3, meta=False)  # no absence/cover/meta: tolerated
    write_lines(val / "list.txt", ["GOT-10k_Val_000001", "GOT-10k_Val_000002"])
    test = root / "test"
    got_seq(test, "GOT-10k_Test_000001", 4, gt_lines=["3.0,4.0,12.0,9.0"], meta=False)
    write_lines(test / "list.txt", ["GOT-10k_Test_000001"])
    train = root / "train"  # no list.txt: folders holding groundtruth.txt, sorted
    got_seq(train, "GOT-10k_Train_000002", 2)
    got_seq(train, "GOT-10k_Train_000001", 2)
    (train / "not_a_sequence").mkdir()
    return root


def test_got10k_val_split_boxes_labels_meta(got_root, monkeypatch):
    # Readers only list frames: nothing is decoded while opening.
    monkeypatch.setattr(cv2, "imread", lambda *a, **k: pytest.fail("a reader decoded a frame"))
    (ds,) = open_got10k(got_root, "val")
    monkeypatch.undo()
    assert isinstance(ds, Dataset) and ds.name == "got10k-val" and ds.kind == "got10k"
    a, b = ds.sequences
    assert isinstance(a, Sequence) and a.name == "GOT-10k_Val_000001" and a.dataset == "got10k-val"
    assert len(a) == 5 and a.frames[0].endswith("00000001.jpg") and Path(a.frames[4]).is_file()
    assert a.boxes.dtype == np.float64 and a.boxes.shape == (5, 4)
    np.testing.assert_array_equal(a.boxes[0], [1, 2, 10, 8])
    np.testing.assert_array_equal(a.absent, [False, False, True, False, False])
    assert np.isnan(a.boxes[2]).all() and not np.isnan(a.boxes[[0, 1, 3, 4]]).any()
    np.testing.assert_array_equal(a.cover, [8, 7, 0, 3, 8])
    assert a.meta["object_class"] == "ichneumon" and a.meta["url"] == "https://youtu.be/abc"
    assert a.meta["resolution"] == "(1920, 1080)" and a.meta["anno_fps"] == "10Hz"
    assert b.absent is None and b.cover is None and dict(b.meta) == {}
    assert a.image_size == (W, H) and a.frame(0).shape == (H, W, 3)


def test_got10k_test_split_has_only_the_first_box(got_root):
    (ds,) = open_got10k(got_root / "test", None)  # the path is the split folder itself
    (seq,) = ds.sequences
    assert ds.name == "got10k-test" and len(seq) == 4
    np.testing.assert_array_equal(seq.init_box, [3, 4, 12, 9])
    assert np.isnan(seq.boxes[1:]).all()
    assert seq.absent is None and seq.cover is None and dict(seq.meta) == {}
    # naming the split it already is, is fine; another split is not
    assert open_got10k(got_root / "test", "test")[0].name == "got10k-test"
    with pytest.raises(DatasetError, match="one GOT-10k split folder"):
        open_got10k(got_root / "test", "val")


def test_got10k_without_list_txt_lists_sequence_folders(got_root):
    (ds,) = open_got10k(got_root, "train")
    assert [s.name for s in ds] == ["GOT-10k_Train_000001", "GOT-10k_Train_000002"]


def test_got10k_several_splits_need_a_subset(got_root):
    with pytest.raises(DatasetError) as e:
        open_got10k(got_root, None)
    assert "several GOT-10k splits (train, val, test)" in err_text(e) and "#val" in err_text(e)
    with pytest.raises(DatasetError) as e:
        open_got10k(got_root, "validation")
    assert "'validation'" in err_text(e) and "train, val, test" in err_text(e)
    both = open_got10k(got_root, "train,val")
    assert [d.name for d in both] == ["got10k-train", "got10k-val"]


def test_got10k_one_split_root_needs_no_subset(tmp_path):
    got_seq(tmp_path / "GOT" / "val", "a", 2)
    (ds,) = open_got10k(tmp_path / "GOT", None)
    assert ds.name == "got10k-val" and [s.name for s in ds] == ["a"]


def test_got10k_errors_name_file_and_line(tmp_path):
    split = tmp_path / "val"
    got_seq(split, "bad_gt", 3, gt_lines=["1,2,3,4", "1,2,3", "1,2,3,4"])
    with pytest.raises(DatasetError) as e:
        open_got10k(split, None)
    msg = err_text(e)
    assert "groundtruth.txt" in msg and "line 2" in msg and "expected 4 numbers" in msg and "'1,2,3'" in msg

    split = tmp_path / "val2"
    got_seq(split, "short_gt", 4, gt_lines=["1,2,3,4", "1,2,3,4"])
    with pytest.raises(DatasetError, match=r"has 2 lines but .* holds 4 frames"):
        open_got10k(split, None)

    split = tmp_path / "val3"
    got_seq(split, "bad_label", 3, absent=[0, 2, 0])
    with pytest.raises(DatasetError) as e:
        open_got10k(split, None)
    assert "absence.label" in err_text(e) and "line 2" in err_text(e) and "'2'" in err_text(e)

    split = tmp_path / "val4"
    got_seq(split, "short_label", 3, cover=[8, 8])
    with pytest.raises(DatasetError, match=r"cover.label.* has 2 lines but the sequence has 3 frames"):
        open_got10k(split, None)

    split = tmp_path / "val5"
    got_seq(split, "ok", 2)
    write_lines(split / "list.txt", ["ok", "missing_one"])
    with pytest.raises(DatasetError) as e:
        open_got10k(split, None)
    assert "list.txt" in err_text(e) and "line 2" in err_text(e) and "'missing_one'" in err_text(e)

    split = tmp_path / "val6"
    seq = got_seq(split, "gap", 4)
    (seq / "00000003.jpg").unlink()
    with pytest.raises(DatasetError, match="00000003.jpg is missing"):
        open_got10k(split, None)

    split = tmp_path / "val7"
    seq = got_seq(split, "meta", 2, meta=False)
    write_lines(seq / "meta_info.ini", ["[METAINFO]", "object_class: car", "this line has no colon"])
    with pytest.raises(DatasetError, match=r"meta_info.ini.* line 3: expected 'key: value'"):
        open_got10k(split, None)

    with pytest.raises(DatasetError, match="not a GOT-10k folder"):
        open_got10k(_empty(tmp_path), None)


def _empty(tmp_path: Path) -> Path:
    p = tmp_path / "empty"
    p.mkdir()
    return p


def test_got10k_tolerates_tabs_crlf_and_trailing_blank_lines(tmp_path):
    split = tmp_path / "val"
    seq = got_seq(split, "s", 3, meta=False)
    (seq / "groundtruth.txt").write_bytes(b"1,2,3,4\r\n5\t6\t7\t8\r\n9 10 11 12\r\n\r\n")
    seq = open_got10k(split, None)[0].sequences[0]
    np.testing.assert_array_equal(seq.boxes, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])


def test_got10k_writer_round_trip(tmp_path, rng):
    frames = [rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(4)]
    boxes = np.array([[1.5, 2.25, 10, 8], [2, 3, 10, 8], [3, 4, 10, 8], [4, 5, 10, 8]])
    split = tmp_path / "synthetic"
    got10k.write_sequence(split / "seq_a", frames, boxes, absent=[0, 0, 0, 1], cover=[8, 8, 5, 0],
                          meta={"object_class": "box", "motion_class": "fast"})
    got10k.write_list(split, ["seq_a"])
    (seq,) = got10k.read_split(split, dataset="synthetic")
    np.testing.assert_allclose(seq.boxes[:3], boxes[:3])
    assert np.isnan(seq.boxes[3]).all() and seq.absent.tolist() == [False, False, False, True]
    assert seq.cover.tolist() == [8, 8, 5, 0] and seq.meta == {"object_class": "box", "motion_class": "fast"}
    assert seq.dataset == "synthetic" and seq.frame(2).shape == (H, W, 3)


# -------------------------------------------------------------------------------------------- open_dataset


def test_open_dataset_end_to_end(got_root):
    (ds,) = open_dataset(f"got10k:{got_root}#val")
    assert ds.name == "got10k-val" and len(ds) == 2
    seq = ds.sequences[0]
    assert seq.frame(4).shape == (H, W, 3) and seq.image_size == (W, H)
    (ds,) = open_dataset(f"GOT10K:{got_root / 'test'}")
    assert ds.name == "got10k-test"


def test_open_dataset_wrong_specs_say_what_to_write(got_root, tmp_path):
    with pytest.raises(DatasetError) as e:
        open_dataset(str(got_root))
    assert "has no kind" in err_text(e) and "KIND:PATH[#SUBSET]" in err_text(e) and "got10k" in err_text(e)
    with pytest.raises(UnknownChoiceError) as e:
        open_dataset(f"lasot:{got_root}")
    assert "'lasot'" in err_text(e) and all(k in err_text(e) for k in ("got10k", "otb", "vid", "gopro"))
    with pytest.raises(DatasetError, match="has no path"):
        open_dataset("got10k:#val")
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(f"got10k:{tmp_path / 'nowhere'}#val")
    with pytest.raises(DatasetError) as e:
        open_dataset(f"got10k:{got_root}")
    assert "several GOT-10k splits" in err_text(e) and "fix:" in err_text(e)
    with pytest.raises(DatasetError, match="not an OTB folder"):
        open_dataset(f"otb:{_empty(tmp_path)}#Basketball")


def test_readers_are_registered():
    for kind in ("got10k", "otb", "vid", "gopro"):
        module, func = data.READERS[kind]
        assert callable(getattr(__import__(module, fromlist=[func]), func))


# ------------------------------------------------------------------------------------------------------ OTB-2015


def otb_seq(root: Path, name: str, n_images: int, gt: dict[str, list[str]], digits: int = 4) -> Path:
    seq = root / name
    put_images(seq / "img", [f"{i:0{digits}d}.jpg" for i in range(1, n_images + 1)])
    for fname, lines in gt.items():
        write_lines(seq / fname, lines)
    return seq


def boxes_from(first: int, count: int) -> list[str]:
    return [f"{k},{k + 1},20,10" for k in range(first, first + count)]


@pytest.fixture
def otb_root(tmp_path):
    root = tmp_path / "OTB100"
    otb_seq(root, "Basketball", 4, {"groundtruth_rect.txt": ["198,214,34,81", "197\t214\t34\t81", "196 213 34 81",
                                                              "195, 212\t34 81"]})
    # David: the benchmark annotates frames 300..770 of 770 images (471 lines)
    otb_seq(root, "David", 770, {"groundtruth_rect.txt": boxes_from(300, 471)})
    # Tiger1: a line for every image, but the benchmark starts at frame 6
    otb_seq(root, "Tiger1", 354, {"groundtruth_rect.txt": boxes_from(1, 354)})
    otb_seq(root, "Jogging", 5, {"groundtruth_rect.1.txt": boxes_from(1, 5), "groundtruth_rect.2.txt": boxes_from(50, 5)})
    # Human4: groundtruth_rect.1.txt is empty in the download; the benchmark's target is .2
    otb_seq(root, "Human4", 3, {"groundtruth_rect.1.txt": [], "groundtruth_rect.2.txt": boxes_from(7, 3)})
    otb_seq(root, "Board", 3, {"groundtruth_rect.txt": boxes_from(1, 3)}, digits=5)
    (root / "readme.txt").write_text("not a sequence\n")
    return root


def test_otb_reads_sequences_with_mixed_separators(otb_root):
    (ds,) = open_otb(otb_root, None)
    assert ds.name == "otb" and ds.kind == "otb"
    names = [s.name for s in ds]
    assert names == ["Basketball", "Board", "David", "Human4", "Jogging.1", "Jogging.2", "Tiger1"]
    bb = ds.sequences[0]
    np.testing.assert_array_equal(bb.boxes, [[198, 214, 34, 81], [197, 214, 34, 81], [196, 213, 34, 81],
                                             [195, 212, 34, 81]])
    assert bb.boxes.dtype == np.float64 and bb.absent is None and bb.cover is None
    assert bb.frames[0].endswith("0001.jpg") and bb.dataset == "otb"
    board = ds.sequences[1]
    assert board.frames[-1].endswith("00003.jpg") and len(board) == 3


def test_otb_known_frame_ranges_line_up_frames_and_boxes(otb_root):
    (ds,) = open_otb(otb_root, "David,Tiger1")
    david, tiger = ds.sequences
    assert len(david) == 471 and david.frames[0].endswith("0300.jpg") and david.frames[-1].endswith("0770.jpg")
    # boxes_from(300, ...) puts the frame number in x: every row must sit on its own frame
    assert [int(Path(f).stem) for f in david.frames[:3]] == david.boxes[:3, 0].astype(int).tolist()
    assert david.meta["frames"] == "300-770"
    assert len(tiger) == 349 and tiger.frames[0].endswith("0006.jpg")
    assert int(tiger.boxes[0, 0]) == 6 and int(tiger.boxes[-1, 0]) == 354


def test_otb_two_targets_share_frames(otb_root):
    (ds,) = open_otb(otb_root, "Jogging")
    j1, j2 = ds.sequences
    assert (j1.name, j2.name) == ("Jogging.1", "Jogging.2") and j1.frames == j2.frames
    assert j1.boxes[0, 0] == 1 and j2.boxes[0, 0] == 50
    assert j1.meta["target"] == "1" and j2.meta["sequence"] == "Jogging"
    (ds,) = open_otb(otb_root, "jogging_2,human4")  # pytracking's spelling, any case
    assert [s.name for s in ds] == ["Jogging.2", "Human4"]
    assert ds.sequences[1].boxes[0, 0] == 7


def test_otb_unknown_subset_lists_sequences(otb_root):
    with pytest.raises(DatasetError) as e:
        open_otb(otb_root, "Basketball,Bolt")
    assert "'Bolt'" in err_text(e) and "Basketball, Board, David" in err_text(e)


def test_otb_unknown_sequence_fewer_lines_is_inferred_with_a_warning(tmp_path):
    root = tmp_path / "otb"
    otb_seq(root, "MyClip", 6, {"groundtruth_rect.txt": boxes_from(1, 4)})
    with pytest.warns(UserWarning, match=r"MyClip.*4 lines for 6 images.*frames 1\.\.4.*MyClip_frames.txt"):
        (ds,) = open_otb(root, None)
    (seq,) = ds.sequences
    assert len(seq) == 4 and seq.frames[-1].endswith("0004.jpg")


def test_otb_frames_txt_overrides_and_more_lines_than_images_fails(tmp_path):
    root = tmp_path / "otb"
    seq_dir = otb_seq(root, "Late", 8, {"groundtruth_rect.txt": boxes_from(3, 4)})
    write_lines(seq_dir / "Late_frames.txt", ["3,6"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (seq,) = open_otb(root, None)[0].sequences
    assert [Path(f).stem for f in seq.frames] == ["0003", "0004", "0005", "0006"] and seq.boxes[0, 0] == 3

    root2 = tmp_path / "otb2"
    otb_seq(root2, "TooMany", 3, {"groundtruth_rect.txt": boxes_from(1, 5)})
    with pytest.raises(DatasetError) as e:
        open_otb(root2, None)
    msg = err_text(e)
    assert "has 5 lines" in msg and "only 3 images" in msg and "TooMany_frames.txt" in msg and "fix:" in msg


def test_otb_table_range_that_does_not_fit_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(otb.FRAME_RANGES, "Clip", (2, 5))
    root = tmp_path / "otb"
    otb_seq(root, "Clip", 5, {"groundtruth_rect.txt": boxes_from(1, 3)})
    with pytest.raises(DatasetError, match=r"has 3 lines, but edgetrack's table .* frames 2\.\.5"):
        open_otb(root, None)
    # an img/ folder already trimmed to the annotated frames also works
    root2 = tmp_path / "otb2"
    otb_seq(root2, "Clip", 4, {"groundtruth_rect.txt": boxes_from(2, 4)})
    (seq,) = open_otb(root2, None)[0].sequences
    assert len(seq) == 4 and seq.frames[0].endswith("0001.jpg")


def test_otb_bad_line_names_file_and_line(tmp_path):
    root = tmp_path / "otb"
    otb_seq(root, "Bad", 3, {"groundtruth_rect.txt": ["1,2,3,4", "1,2,3,4", "1;2;3;4"]})
    with pytest.raises(DatasetError) as e:
        open_otb(root, None)
    assert "groundtruth_rect.txt" in err_text(e) and "line 3" in err_text(e) and "'1;2;3;4'" in err_text(e)


def test_otb_path_may_be_one_sequence(otb_root):
    (ds,) = open_otb(otb_root / "Basketball", None)
    assert [s.name for s in ds] == ["Basketball"]


# ------------------------------------------------------------------------------------------------ ILSVRC2015-VID


def vid_xml(objects, width=W, height=H, folder="x", filename="000000") -> str:
    objs = "".join(
        f"<object><trackid>{t}</trackid><name>{name}</name><bndbox><xmax>{x2}</xmax><xmin>{x1}</xmin>"
        f"<ymax>{y2}</ymax><ymin>{y1}</ymin></bndbox><occluded>{occ}</occluded><generated>0</generated></object>"
        for t, name, (x1, y1, x2, y2), occ in objects
    )
    return (
        f"<annotation><folder>{folder}</folder><filename>{filename}</filename><source><database>ILSVRC_2015"
        f"</database></source><size><width>{width}</width><height>{height}</height></size>{objs}</annotation>"
    )


def vid_video(root: Path, split: str, rel: str, per_frame) -> None:
    anno = root / "Annotations" / "VID" / split / rel
    frames = root / "Data" / "VID" / split / rel
    anno.mkdir(parents=True, exist_ok=True)
    put_images(frames, [f"{i:06d}.JPEG" for i in range(len(per_frame))])
    for i, objects in enumerate(per_frame):
        (anno / f"{i:06d}.xml").write_text(vid_xml(objects, filename=f"{i:06d}"))


@pytest.fixture
def vid_root(tmp_path):
    root = tmp_path / "ILSVRC2015"
    plane, cat = "n02691156", "n02121808"
    per_frame = [
        [(0, plane, (10, 2, 20, 12), 0)],
        [(0, plane, (11, 2, 21, 12), 0), (1, cat, (1, 1, 5, 6), 0)],
        [(0, plane, (12, 2, 22, 12), 1), (1, cat, (2, 1, 6, 6), 0), (2, cat, (0, 0, 3, 3), 0)],
        [(0, plane, (13, 2, 23, 12), 0)],  # track 1 missing here: absent inside its span
        [(0, plane, (14, 2, 24, 12), 0), (1, cat, (4, 1, 8, 6), 1)],
        [],  # a frame with no object
    ]
    vid_video(root, "val", "ILSVRC2015_val_00000000", per_frame)
    vid_video(root, "train", "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000",
              [[(0, "n02958343", (1, 1, 9, 9), 0)]] * 3)
    vid_video(root, "train", "ILSVRC2015_VID_train_0001/ILSVRC2015_train_00010000",
              [[(3, "n99999999", (1, 1, 9, 9), 0)]] * 2)
    return root


def test_vid_one_sequence_per_track_with_absent_frames(vid_root):
    (ds,) = open_vid(vid_root, None)  # val by default
    assert ds.name == "vid-val" and ds.kind == "vid"
    names = [s.name for s in ds]
    assert names == ["ILSVRC2015_val_00000000.0", "ILSVRC2015_val_00000000.1"]  # track 2: one frame, left out
    plane, cat = ds.sequences
    assert len(plane) == 5 and plane.frames[0].endswith("Data/VID/val/ILSVRC2015_val_00000000/000000.JPEG")
    np.testing.assert_array_equal(plane.boxes[0], [10, 2, 10, 10])  # w = xmax - xmin
    assert not plane.absent.any() and plane.meta["occluded_frames"] == "1"
    assert plane.meta["object_class"] == "n02691156" and plane.meta["class_name"] == "airplane"
    assert plane.meta["video"] == "ILSVRC2015_val_00000000" and plane.meta["track_id"] == "0"
    assert plane.known_size == (W, H) and plane.image_size == (W, H)
    # the cat track spans frames 1..4 and is missing in frame 3
    assert len(cat) == 4 and cat.frames[0].endswith("000001.JPEG") and cat.frames[-1].endswith("000004.JPEG")
    assert cat.absent.tolist() == [False, False, True, False]
    assert np.isnan(cat.boxes[2]).all() and not np.isnan(cat.boxes[[0, 1, 3]]).any()
    np.testing.assert_array_equal(cat.boxes[3], [4, 1, 4, 5])
    assert cat.meta["class_name"] == "domestic_cat" and cat.frame(0).shape == (H, W, 3)


def test_vid_train_split_has_subfolders(vid_root):
    (ds,) = open_vid(vid_root, "train")
    assert [s.name for s in ds] == ["ILSVRC2015_train_00000000.0", "ILSVRC2015_train_00010000.3"]
    assert "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/000002.JPEG" in ds.sequences[0].frames[-1]
    assert ds.sequences[1].meta["class_name"] == "n99999999"  # unknown class: the WordNet id stands in
    assert [d.name for d in open_vid(vid_root.parent, "train,val")] == ["vid-train", "vid-val"]  # parent also works


def test_vid_errors(vid_root, tmp_path):
    with pytest.raises(DatasetError, match=r"unknown ILSVRC2015-VID split 'test'; valid choices: train, val"):
        open_vid(vid_root, "test")
    with pytest.raises(DatasetError, match="has no Annotations/VID"):
        open_vid(_empty(tmp_path), None)
    bad = vid_root / "Annotations" / "VID" / "val" / "ILSVRC2015_val_00000000" / "000003.xml"
    bad.write_text("<annotation><object><trackid>0</trackid>")
    with pytest.raises(DatasetError) as e:
        open_vid(vid_root, "val")
    assert "000003.xml" in err_text(e) and "not well-formed XML" in err_text(e)
    bad.write_text(vid_xml([(0, "n02691156", (1, 1, 5, 5), 0)]).replace("<xmax>5</xmax>", ""))
    with pytest.raises(DatasetError, match=r"000003.xml.*no <bndbox/xmax>"):
        open_vid(vid_root, "val")
    (vid_root / "Data" / "VID" / "val" / "ILSVRC2015_val_00000000" / "000000.JPEG").unlink()
    with pytest.raises(DatasetError, match="000000.JPEG' does not exist"):
        open_vid(vid_root, "val")


# ---------------------------------------------------------------------------------------------------------- GoPro


def gopro_video(split: Path, name: str, frames, gamma: bool = True, sharp_frames=None) -> None:
    put_images(split / name / "blur", frames)
    put_images(split / name / "sharp", sharp_frames or frames)
    if gamma:
        put_images(split / name / "blur_gamma", frames)


@pytest.fixture
def gopro_root(tmp_path):
    root = tmp_path / "GOPRO_Large"
    gopro_video(root / "train", "GOPR0372_07_00", ["000047.png", "000048.png", "000049.png"])
    gopro_video(root / "train", "GOPR0372_07_01", ["000140.png", "000141.png"])
    gopro_video(root / "test", "GOPR0384_11_00", ["000001.png", "000002.png"], gamma=False)
    return root


def test_gopro_pairs_by_name(gopro_root):
    (ds,) = open_gopro(gopro_root, None)  # test by default
    assert ds.name == "gopro-test" and ds.kind == "gopro"
    (seq,) = ds.sequences
    assert isinstance(seq, BlurPairSequence) and seq.name == "GOPR0384_11_00" and seq.blur_gamma is None
    assert len(seq) == 2 and seq.blur[0].endswith("blur/000001.png") and seq.sharp[1].endswith("sharp/000002.png")
    blurred, sharp = seq.pair(0)
    assert blurred.shape == sharp.shape == (H, W, 3)
    (train,) = open_gopro(gopro_root, "train")
    assert [s.name for s in train] == ["GOPR0372_07_00", "GOPR0372_07_01"]
    first = train.sequences[0]
    assert first.blur_gamma is not None and first.blur_gamma[2].endswith("blur_gamma/000049.png")
    assert all(Path(b).name == Path(s).name for b, s in zip(first.blur, first.sharp))
    assert [d.name for d in open_gopro(gopro_root, "train,test")] == ["gopro-train", "gopro-test"]
    assert open_dataset(f"gopro:{gopro_root / 'train'}")[0].name == "gopro-train"


def test_gopro_mismatched_names_fail(tmp_path):
    root = tmp_path / "GOPRO_Large"
    gopro_video(root / "test", "GOPR0001_00_00", ["000001.png", "000002.png"],
                sharp_frames=["000001.png", "000003.png"])
    with pytest.raises(DatasetError) as e:
        open_gopro(root, "test")
    msg = err_text(e)
    assert "GOPR0001_00_00" in msg and "'000002.png'" in msg and "'000003.png'" in msg and "paired by file name" in msg


def test_gopro_wrong_split_and_wrong_folder(gopro_root, tmp_path):
    with pytest.raises(DatasetError, match=r"GoPro split 'val' not found.*splits found: test, train"):
        open_gopro(gopro_root, "val")
    with pytest.raises(DatasetError, match="not a GoPro folder"):
        open_gopro(_empty(tmp_path), None)
