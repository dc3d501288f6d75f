"""`edgetrack track` through the CLI entry point on a tiny SiamFC bundle: folders, videos, outputs and errors."""
import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgetrack.cli import main  # noqa: E402
from edgetrack.commands.track import parse_box  # noqa: E402
from edgetrack.errors import InvalidArgumentError  # noqa: E402

N, W, H = 8, 96, 96
BOX = (10.0, 12.0, 20.0, 16.0)
BOX_ARG = "10,12,20,16"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from edgetrack.converters.torch2onnx import siamfc_bundle
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("track")
    ckpt = save_siamfc(build_siamfc("siamfc-tiny").eval(), root / "tiny.safetensors")
    return siamfc_bundle(ckpt, root / "bundle")


def _frames():
    out = []
    for i in range(N):
        img = np.full((H, W, 3), 110, np.uint8)
        x, y = 10 + 4 * i, 12 + 2 * i
        cv2.rectangle(img, (x, y), (x + 19, y + 15), (30, 40, 220), -1)
        out.append(img)
    return out


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    for i, img in enumerate(_frames()):
        cv2.imwrite(str(d / f"{i + 1:08d}.png"), img)
    (d / "notes.txt").write_text("not a frame")
    return d


@pytest.fixture(scope="module")
def mp4_ok(tmp_path_factory):
    """Whether this OpenCV build can write mp4v (checked once; some builds lack the encoder)."""
    path = tmp_path_factory.mktemp("probe") / "probe.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    ok = w.isOpened()
    if ok:
        for img in _frames()[:2]:
            w.write(img)
    w.release()
    return ok and path.exists() and path.stat().st_size > 0


def _lines(path):
    return path.read_text().splitlines()


def test_track_a_folder_writes_results_scores_and_video(bundle, frame_dir, mp4_ok, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["track", str(frame_dir), "--model", str(bundle), "--box", BOX_ARG, "--out", str(out)]) == 0
    results = _lines(out / "results.txt")
    assert len(results) == N
    assert tuple(float(v) for v in results[0].split(",")) == BOX and results[0] == "10.0000,12.0000,20.0000,16.0000"
    assert all(len(r.split(",")) == 4 and np.isfinite([float(v) for v in r.split(",")]).all() for r in results)
    scores = _lines(out / "scores.txt")
    assert len(scores) == N
    for s in scores:
        score, lost = s.split(",")
        assert 0 <= float(score) <= 1 and lost in ("0", "1")
    text = capsys.readouterr().out
    for word in (f"frames:  {N}", "fps:", "lost", str(out / "results.txt"), str(out / "scores.txt")):
        assert word in text
    if mp4_ok:
        assert (out / "track.mp4").stat().st_size > 0 and str(out / "track.mp4") in text


def test_track_on_the_simulator_prints_the_chip_estimate(bundle, frame_dir, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "sim"
    assert main(["track", str(frame_dir), "--model", str(bundle), "--box", BOX_ARG, "--out", str(out), "--no-video",
                 "--backend", "simulator", "--device", "ascend310"]) == 0
    text = capsys.readouterr().out
    assert "simulator on ascend310" in text
    line = next(t for t in text.splitlines() if t.startswith("device:"))
    assert "ms/frame on ascend310" in line and "an estimate" in line and "not a measurement" in line
    assert float(line.split()[1]) > 0
    # ONNX Runtime: no chip, no estimate line.
    assert main(["track", str(frame_dir), "--model", str(bundle), "--box", BOX_ARG, "--out", str(out), "--no-video"]) == 0
    assert "device:" not in capsys.readouterr().out


def test_track_a_video_with_max_frames_and_no_video(bundle, tmp_path, capsys):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    if not w.isOpened():
        pytest.skip("this OpenCV cannot write MJPG AVI")
    for img in _frames():
        w.write(img)
    w.release()
    out = tmp_path / "out"
    argv = ["track", str(path), "--model", str(bundle), "--box", BOX_ARG, "--out", str(out), "--no-video"]
    assert main(argv + ["--max-frames", "5"]) == 0
    assert len(_lines(out / "results.txt")) == 5 and len(_lines(out / "scores.txt")) == 5
    assert not (out / "track.mp4").exists()
    assert main(argv) == 0
    assert len(_lines(out / "results.txt")) == N


@pytest.mark.parametrize("text", ["10,12,20", "a,b,c,d", "10,12,0,16", "10,12,20,-1", "1,2,3,4,5", "nan,1,2,3"])
def test_bad_box_text_exits_2_with_a_message(bundle, frame_dir, tmp_path, capsys, text):
    with pytest.raises(InvalidArgumentError):
        parse_box(text)
    assert main(["track", str(frame_dir), "--model", str(bundle), "--box", text, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--box" in err and "fix:" in err
    assert not (tmp_path / "results.txt").exists()


def test_box_outside_the_first_frame_exits_2(bundle, frame_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["track", str(frame_dir), "--model", str(bundle), "--box", "500,500,20,20",
                 "--out", str(out), "--no-video"]) == 2
    assert "outside the first frame (96x96" in capsys.readouterr().err
    assert not out.exists()  # nothing is written before the first frame and the box are checked


def test_parse_box_accepts_floats_and_spaces():
    assert parse_box(" 1.5, 2 ,3,4 ") == (1.5, 2.0, 3.0, 4.0)


def test_missing_source_and_empty_folder_exit_2(bundle, tmp_path, capsys):
    missing = tmp_path / "nope.mp4"
    assert main(["track", str(missing), "--model", str(bundle), "--box", BOX_ARG]) == 2
    assert str(missing) in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["track", str(empty), "--model", str(bundle), "--box", BOX_ARG]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "no frames" in err


def test_unreadable_video_and_bad_camera_exit_2(bundle, tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    assert main(["track", str(junk), "--model", str(bundle), "--box", BOX_ARG, "--out", str(tmp_path / "o")]) == 2
    assert str(junk) in capsys.readouterr().err
    assert main(["track", "97", "--model", str(bundle), "--box", BOX_ARG, "--out", str(tmp_path / "o")]) == 2
    assert "camera 97" in capsys.readouterr().err


def test_track_is_listed_after_inspect():
    from edgetrack.cli import COMMANDS

    assert COMMANDS.index("track") == COMMANDS.index("inspect") + 1
