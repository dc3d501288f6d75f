"""Baseline trackers: OpenCV's MIL / CSRT / KCF and NanoTrack, really run on a tiny sequence."""
import numpy as np
import pytest

from edgetrack import baselines
from edgetrack.baselines import find_nanotrack, list_baselines, make_baseline, to_cv_box
from edgetrack.data import Dataset
from edgetrack.errors import BaselineUnavailableError, InvalidArgumentError, TrackerStateError, UnknownChoiceError
from edgetrack.evaluation import evaluate


def _contrib_reason():
    try:
        make_baseline("csrt")
    except BaselineUnavailableError as exc:
        return str(exc).splitlines()[0]
    return None


def _nanotrack_reason():
    try:
        find_nanotrack()
    except BaselineUnavailableError as exc:
        return str(exc)
    return None


def _run(name, seq):
    r = evaluate(make_baseline(name), Dataset("tiny", "synthetic", [seq]), tracker_name=name)
    assert not r.failures, [str(f) for f in r.failures]
    boxes = r.sequences[0].boxes
    assert boxes.dtype == np.float64 and np.isfinite(boxes).all()
    assert r.fps > 0 and r.otb is not None and r.got10k is not None
    return r


def test_cv_box_rounds_corners_and_stays_inside_the_image():
    assert to_cv_box((10.4, 20.6, 30.2, 10.0), (100, 80)) == (10, 21, 31, 10)  # corners 10.4->10, 40.6->41
    assert to_cv_box((-5.0, -3.0, 20.0, 10.0), (100, 80)) == (0, 0, 15, 7)
    assert to_cv_box((95.0, 75.0, 20.0, 20.0), (100, 80)) == (95, 75, 5, 5)
    assert to_cv_box((50.2, 50.2, 0.2, 0.2), (100, 80)) == (50, 50, 1, 1)  # never below one pixel
    assert all(isinstance(v, int) for v in to_cv_box((1.5, 2.5, 3.5, 4.5), (10, 10)))
    with pytest.raises(InvalidArgumentError, match="not a valid"):
        to_cv_box((1, 2, 0, 4), (10, 10))
    with pytest.raises(InvalidArgumentError, match="not a valid"):
        to_cv_box((np.nan, 2, 3, 4), (10, 10))


def test_mil_tracks_the_tiny_sequence(moving_target_sequence):
    r = _run("mil", moving_target_sequence(n=6))
    assert r.otb["precision_20"] > 0.5  # an easy target: MIL must at least stay near it


def test_nanotrack_tracks_the_tiny_sequence(moving_target_sequence):
    reason = _nanotrack_reason()
    if reason:
        pytest.skip(reason)
    r = _run("nanotrack", moving_target_sequence(n=6))
    assert r.otb["success_auc"] > 0.5


@pytest.mark.parametrize("name", ["csrt", "kcf"])
def test_contrib_trackers_track_the_tiny_sequence(name, moving_target_sequence):
    reason = _contrib_reason()
    if reason:
        pytest.skip(f"{reason} (run `bash tools/use_opencv_contrib.sh` to test them)")
    _run(name, moving_target_sequence(n=6))


def test_missing_contrib_says_why_and_how_to_fix(monkeypatch):
    monkeypatch.setattr(baselines, "_contrib_create", lambda kind: None)  # this cv2 may well have contrib
    with pytest.raises(BaselineUnavailableError) as err:
        make_baseline("kcf")
    msg = str(err.value)
    assert "cv2.TrackerKCF_create" in msg and "contrib" in msg
    assert "bash tools/use_opencv_contrib.sh" in msg
    assert "pip uninstall -y opencv-python-headless && pip install opencv-contrib-python-headless==" in msg


def test_missing_nanotrack_files_name_the_paths_searched(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("EDGETRACK_NANOTRACK_DIR", str(empty))
    monkeypatch.setattr(baselines, "_CHECKOUT_NANOTRACK_DIR", tmp_path / "checkout")
    with pytest.raises(BaselineUnavailableError) as err:
        make_baseline("nanotrack")
    msg = str(err.value)
    assert str(empty) in msg and str(tmp_path / "checkout") in msg and "EDGETRACK_NANOTRACK_DIR" in msg
    # an explicit folder is the only one searched: never quietly another copy
    with pytest.raises(BaselineUnavailableError) as err:
        make_baseline(f"nanotrack:{tmp_path / 'given'}")
    assert str(tmp_path / "given") in str(err.value) and str(empty) not in str(err.value)


def test_nanotrack_folder_from_environment_or_spec(tmp_path, monkeypatch):
    for f in baselines.NANOTRACK_FILES:
        (tmp_path / f).write_bytes(b"onnx")
    assert find_nanotrack(tmp_path).backbone == tmp_path / baselines.NANOTRACK_FILES[0]
    monkeypatch.setenv("EDGETRACK_NANOTRACK_DIR", str(tmp_path))
    assert find_nanotrack().head == tmp_path / baselines.NANOTRACK_FILES[1]


def test_names_are_checked():
    with pytest.raises(UnknownChoiceError, match="csrt, kcf, mil, nanotrack"):
        make_baseline("goturn")
    with pytest.raises(InvalidArgumentError, match="takes no argument"):
        make_baseline("mil:fast")
    assert make_baseline("MIL").tracker_name == "mil"


def test_list_baselines_reports_availability():
    listed = list_baselines()
    assert set(listed) == {"csrt", "kcf", "mil", "nanotrack"} and listed["mil"] is None
    assert (listed["csrt"] is None) == (_contrib_reason() is None)


def test_update_before_init_is_a_state_error():
    with pytest.raises(TrackerStateError, match="before init"):
        make_baseline("mil")().update(np.zeros((8, 8, 3), np.uint8))
