"""The evaluation runner, its result files, failure handling, plots and the `edgetrack eval` command."""
import argparse
import dataclasses
import importlib.util
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from edgetrack import metrics
from edgetrack.data import Dataset
from edgetrack.errors import DatasetError, InvalidArgumentError, UnknownChoiceError
from edgetrack.evaluation import TRACKERS, build_tracker, evaluate, format_table, limit, register_tracker


class GroundTruthTracker:
    """Returns the ground truth: the perfect tracker."""

    def __init__(self, boxes, style="box"):
        self.boxes, self.style, self.i = boxes, style, 0

    def init(self, frame, box):
        assert np.allclose(box, self.boxes[0])

    def update(self, frame):
        self.i += 1
        box = self.boxes[self.i]
        if self.style == "pair":
            return True, tuple(box)
        if self.style == "object":
            return SimpleNamespace(box=tuple(box), score=0.9, lost=False)
        if self.style == "list":
            return list(box)
        return np.array(box)


class ConstantTracker:
    def init(self, frame, box):
        self.box = tuple(float(v) for v in box)

    def update(self, frame):
        return self.box


def _dataset(*seqs, name="tiny"):
    return Dataset(name, "synthetic", list(seqs))


def test_perfect_tracker_scores_the_maximum(moving_target_sequence):
    seq = moving_target_sequence()
    for style in ("box", "pair", "object", "list"):
        r = evaluate(lambda: GroundTruthTracker(seq.boxes, style), _dataset(seq), tracker_name=f"gt-{style}")
        np.testing.assert_array_equal(r.sequences[0].boxes, seq.boxes)
        s = r.summary()
        # OTB success uses a strict iou > t on linspace(0, 1, 21): IoU 1.0 fails at t = 1.0 only.
        assert s["success_auc"] == pytest.approx(20 / 21)
        assert s["precision_20"] == s["success_rate_50"] == s["precision_15"] == s["success_60"] == 1.0
        assert s["ao"] == s["sr50"] == s["sr75"] == 1.0
        assert s["failed_frames"] == s["lost_frames"] == 0
        assert s["tracker"] == f"gt-{style}" and s["frames"] == len(seq) and s["fps"] > 0


def test_constant_box_tracker_is_scored_frame_by_frame(moving_target_sequence):
    seq = moving_target_sequence(n=8)  # the 20x16 target moves (4, 2) px per frame
    r = evaluate(ConstantTracker, _dataset(seq))
    pred = np.repeat(seq.boxes[:1], len(seq), axis=0)
    np.testing.assert_array_equal(r.sequences[0].boxes, pred)
    # IoU of the init box with the box moved by (4i, 2i), by hand
    inter = np.array([max(20 - 4 * i, 0) * max(16 - 2 * i, 0) for i in range(1, 8)], float)
    ious = inter / (2 * 320 - inter)
    assert r.got10k["ao"] == pytest.approx(ious.mean())
    assert r.got10k["sr50"] == pytest.approx(np.mean(ious > 0.5))
    assert r.otb["success_auc"] == pytest.approx(metrics.otb_metrics(pred, seq.boxes)["success_auc"])
    assert 0 < r.otb["success_auc"] < 20 / 21
    assert r.tracker == "ConstantTracker"


def test_result_files_follow_the_got10k_toolkit_layouts(moving_target_sequence, tmp_path):
    a, b = moving_target_sequence("a", n=5), moving_target_sequence("b", n=4)
    out = tmp_path / "results"
    r = evaluate(ConstantTracker, _dataset(a, b), result_dir=out, tracker_name="const")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted([
        "const/a/a_001.txt", "const/a/a_time.txt", "const/a.txt", "const/times/a_time.txt",
        "const/b/b_001.txt", "const/b/b_time.txt", "const/b.txt", "const/times/b_time.txt",
    ])
    assert r.result_dir == out / "const"
    text = (out / "const/a/a_001.txt").read_text().splitlines()
    assert text[0] == "10.000,12.000,20.000,16.000" and len(text) == 5
    assert (out / "const/a.txt").read_text() == (out / "const/a/a_001.txt").read_text()
    boxes = np.loadtxt(out / "const/b/b_001.txt", delimiter=",")
    np.testing.assert_allclose(boxes, r.sequences[1].boxes)
    times = np.loadtxt(out / "const/a/a_time.txt")
    assert times.shape == (5,) and np.all(times >= 0)  # first line: the init time, as the toolkit writes it


def test_only_update_calls_are_timed(moving_target_sequence):
    class Slow:
        def init(self, frame, box):
            time.sleep(0.5)  # would pull FPS far below 40 if it were counted
            self.box = box

        def update(self, frame):
            time.sleep(0.01)
            return self.box

    r = evaluate(Slow, _dataset(moving_target_sequence(n=6)))
    assert 40 < r.fps <= 100
    assert r.sequences[0].times[0] >= 0.5 and r.sequences[0].updates == 5


def test_a_tracker_that_raises_is_recorded_and_the_run_goes_on(moving_target_sequence, tmp_path):
    good = moving_target_sequence("good", n=6)

    class FlakyOnFrame3(GroundTruthTracker):
        def update(self, frame):
            if self.i + 1 == 3:
                self.i += 1
                raise ValueError("cannot see anything\nsecond line")
            return super().update(frame)

    r = evaluate(lambda: FlakyOnFrame3(good.boxes), _dataset(good), result_dir=tmp_path)
    seq = r.sequences[0]
    assert [(f.sequence, f.frame) for f in r.failures] == [("good", 3)]
    assert str(r.failures[0]) == "good: update on frame 3 raised ValueError: cannot see anything"
    assert np.isnan(seq.boxes[3]).all() and np.isnan(seq.times[3])
    np.testing.assert_array_equal(np.delete(seq.boxes, 3, axis=0), np.delete(good.boxes, 3, axis=0))
    assert r.got10k["ao"] == pytest.approx(4 / 5)  # the failed frame counts as IoU 0
    assert "nan,nan,nan,nan" in (r.result_dir / "good/good_001.txt").read_text()
    assert r.summary()["failed_frames"] == 1 and r.to_dict()["failures"] == [str(r.failures[0])]


def test_an_init_failure_fails_that_sequence_only(moving_target_sequence):
    bad, good = moving_target_sequence("bad", n=4), moving_target_sequence("good", n=4)

    class InitFails(ConstantTracker):
        def init(self, frame, box):
            if seq_names.pop(0) == "bad":
                raise RuntimeError("model file missing")
            super().init(frame, box)

    seq_names = ["bad", "good"]
    r = evaluate(InitFails, _dataset(bad, good))
    assert [str(f) for f in r.failures] == ["bad: init raised RuntimeError: model file missing"]
    assert np.isnan(r.sequences[0].boxes[1:]).all() and r.got10k["seq_ao"][0] == 0.0
    assert r.got10k["seq_ao"][1] > 0 and r.summary()["failed_sequences"] == 1


def test_unreadable_tracker_output_is_a_failure_not_a_crash(moving_target_sequence):
    class Garbage(ConstantTracker):
        def update(self, frame):
            return "left a bit"

    r = evaluate(Garbage, _dataset(moving_target_sequence(n=3)))
    assert len(r.failures) == 2 and "expected a box (x, y, w, h)" in r.failures[0].error


def test_lost_without_a_box_is_no_prediction_and_lost_with_a_box_keeps_it(moving_target_sequence):
    seq = moving_target_sequence(n=3)

    class Lost(ConstantTracker):
        def update(self, frame):
            self.n = getattr(self, "n", 0) + 1
            # OpenCV's trackers give (False, (0, 0, 0, 0)) when they lose the target
            return (False, (0, 0, 0, 0)) if self.n == 1 else SimpleNamespace(box=self.box, lost=True)

    r = evaluate(Lost, _dataset(seq))
    s = r.sequences[0]
    assert np.isnan(s.boxes[1]).all() and np.allclose(s.boxes[2], seq.boxes[0])
    assert s.lost.tolist() == [False, True, True] and not r.failures


def test_unannotated_sequences_give_result_files_and_a_note_not_metrics(moving_target_sequence, tmp_path):
    seq = moving_target_sequence(n=4)
    test_split = dataclasses.replace(seq, boxes=np.vstack([seq.boxes[:1], np.full((3, 4), np.nan)]))
    r = evaluate(ConstantTracker, _dataset(test_split), result_dir=tmp_path, visualize=True)
    assert r.otb is None and r.got10k is None and "GOT-10k test split" in r.notes[0]
    assert r.summary()["success_auc"] is None and "-" in format_table([r]).splitlines()[2].split()
    assert len((tmp_path / "ConstantTracker" / "seq" / "seq_001.txt").read_text().splitlines()) == 4
    assert len(list((tmp_path / "ConstantTracker" / "seq" / "vis").glob("*.jpg"))) == 4


def test_limit_truncates_sequences_and_frames(moving_target_sequence):
    ds = _dataset(moving_target_sequence("a", n=6), moving_target_sequence("b", n=3), moving_target_sequence("c"))
    small = limit(ds, max_sequences=2, max_frames=4)
    assert [s.name for s in small] == ["a", "b"] and [len(s) for s in small] == [4, 3]
    assert small.sequences[0].boxes.shape == (4, 4) and len(ds.sequences[0]) == 6
    with pytest.raises(InvalidArgumentError, match="max_frames"):
        limit(ds, max_frames=1)


def test_evaluate_refuses_what_is_not_one_tracking_data_set():
    pairs = Dataset("gopro-test", "gopro", [SimpleNamespace(name="GOPR0384_11_00", blur=(), sharp=())])
    with pytest.raises(DatasetError, match="no tracking annotations"):
        evaluate(ConstantTracker, pairs)
    with pytest.raises(DatasetError, match="no tracking annotations"):
        limit(pairs, max_frames=4)
    with pytest.raises(InvalidArgumentError, match="evaluate each item"):
        evaluate(ConstantTracker, [pairs])


def test_tracker_registry_names_valid_choices_and_takes_new_kinds(monkeypatch):
    with pytest.raises(UnknownChoiceError) as err:
        build_tracker("siamfc")
    assert "csrt, kcf, mil, model, nanotrack" in str(err.value)
    monkeypatch.setitem(TRACKERS, "bundle", None)
    seen = []
    register_tracker("bundle", lambda spec: seen.append(spec) or ConstantTracker)
    assert build_tracker("bundle:/robot/model") is ConstantTracker and seen == ["bundle:/robot/model"]


def test_format_table_is_aligned_text(moving_target_sequence):
    seq = moving_target_sequence(n=3)
    rows = [evaluate(ConstantTracker, _dataset(seq), tracker_name=n) for n in ("a", "long-tracker-name")]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["tracker", "dataset", "seqs", "AUC", "P@20", "SR50", "P@15(paper)", "S@0.6(paper)",
                                "AO", "FPS", "failed"]
    assert len({len(line) for line in lines}) == 1 and lines[3].startswith("long-tracker-name  tiny")


def test_plots_are_non_empty_pngs(moving_target_sequence, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the [eval] extra (matplotlib)")
    from edgetrack.plots import plot_results

    seq = moving_target_sequence(n=6)
    results = [
        evaluate(lambda: GroundTruthTracker(seq.boxes), _dataset(seq, name="v-sharp"), tracker_name="perfect"),
        evaluate(ConstantTracker, _dataset(seq, name="v-sharp"), tracker_name="constant"),
        evaluate(ConstantTracker, _dataset(seq, name="v-blurred"), tracker_name="constant"),
    ]
    paths = plot_results(results, tmp_path / "plots")
    assert [p.name for p in paths] == ["v-sharp.png", "v-blurred.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# ------------------------------------------------------------------------------------------------------ the command
def _eval_command(argv):
    """Run `edgetrack eval ARGV` through its own parser, so errors arrive as exceptions."""
    from edgetrack.commands import eval as eval_command

    parser = argparse.ArgumentParser(prog="edgetrack")
    eval_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


@pytest.fixture
def tiny_got10k(tmp_path, moving_target_sequence):
    from edgetrack.data import got10k

    if not hasattr(got10k, "open_got10k"):
        pytest.skip("the GOT-10k reader (edgetrack.data.got10k.open_got10k) is not there yet")
    split = tmp_path / "GOT-10k" / "val"
    names = ["GOT-10k_Val_000001", "GOT-10k_Val_000002", "GOT-10k_Val_000003"]
    for name in names:
        seq = moving_target_sequence(name, n=6)
        got10k.write_sequence(split / name, (seq.frame(i) for i in range(len(seq))), seq.boxes,
                              absent=np.zeros(len(seq)), cover=np.full(len(seq), 8), meta={"object_class": "box"})
    got10k.write_list(split, names)
    return tmp_path / "GOT-10k"


def test_eval_command_writes_table_results_summary_and_plots(tiny_got10k, tmp_path, capsys):
    out = tmp_path / "run"
    spec = f"got10k:{tiny_got10k}#val"
    assert _eval_command(["--dataset", spec, "--tracker", "mil", "--out", str(out),
                          "--max-sequences", "2", "--max-frames", "4"]) == 0
    printed = capsys.readouterr().out
    header, rule, row = printed.splitlines()[:3]
    assert header.split()[:4] == ["tracker", "dataset", "seqs", "AUC"] and set(rule) <= {"-", " "}
    assert row.split()[:3] == ["mil", "got10k-val", "2"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trackers"] == ["mil"] and summary["datasets"] == [spec] and summary["max_frames"] == 4
    (res,) = summary["results"]
    assert res["sequences"] == 2 and res["frames"] == 8 and res["failed_frames"] == 0
    assert 0 <= res["success_auc"] <= 1 and 0 <= res["ao"] <= 1 and res["mao"] == pytest.approx(res["ao"])
    assert len(res["otb_curves"]["success_curve"]) == 21 and len(res["per_sequence"]) == 2
    got = out / "results" / "got10k-val" / "mil"
    assert (got / "GOT-10k_Val_000001" / "GOT-10k_Val_000001_001.txt").is_file()
    assert len((got / "GOT-10k_Val_000002.txt").read_text().splitlines()) == 4
    if importlib.util.find_spec("matplotlib"):
        assert (out / "got10k-val.png").stat().st_size > 10_000


def test_eval_command_errors_are_typed(tiny_got10k, tmp_path):
    with pytest.raises(UnknownChoiceError, match="csrt, kcf, mil, model, nanotrack"):
        _eval_command(["--dataset", f"got10k:{tiny_got10k}", "--tracker", "goturn", "--out", str(tmp_path)])
    with pytest.raises(DatasetError, match="no kind"):
        _eval_command(["--dataset", str(tiny_got10k), "--tracker", "mil", "--out", str(tmp_path)])
    with pytest.raises(InvalidArgumentError, match="--max-frames"):
        _eval_command(["--dataset", f"got10k:{tiny_got10k}", "--tracker", "mil", "--max-frames", "1"])


def test_eval_command_exits_2_with_one_message_on_a_bad_tracker(tiny_got10k, capsys):
    if importlib.util.find_spec("edgetrack.commands.data") is None:
        pytest.skip("the dispatcher needs every command module; edgetrack.commands.data is not there yet")
    from edgetrack.cli import main

    assert main(["eval", "--dataset", f"got10k:{tiny_got10k}", "--tracker", "goturn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgetrack eval: error: unknown tracker 'goturn'") and "Traceback" not in err
