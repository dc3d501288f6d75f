"""The PyTorch trainer: learning, exact resumption, DDP on the CPU, the command line and checkpoint:PATH trackers."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from edgetrack.errors import BackendError, EdgetrackError, InvalidArgumentError, UnknownChoiceError  # noqa: E402
from edgetrack.models.pairs import CropCache, PairConfig, PairSampler  # noqa: E402
from edgetrack.models.torch.train import (  # noqa: E402
    PairBatches,
    TrainConfig,
    find_resume_point,
    lr_at,
    train,
)

pytestmark = pytest.mark.torch

# Shifts and photometric augmentation on; scale/stretch off keeps the cache small (fewer bytes to crop and copy).
PAIRS = PairConfig(scale_jitter=0, stretch=0, max_shift=24)

from torch_helpers import single_torch_thread  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


@pytest.fixture
def sequences(moving_target_sequence):
    return [moving_target_sequence("a", n=8, step=(4, 2)), moving_target_sequence("b", n=8, step=(2, 3))]


@pytest.fixture
def cache(sequences):
    return CropCache.build(sequences, PAIRS, progress=False)


def tiny(out, **kw) -> TrainConfig:
    base = dict(model="siamfc-tiny", epochs=2, steps_per_epoch=3, batch_size=2, log_every=1, progress=False,
                out=str(out), pairs=PAIRS, lr_start=1e-2, lr_end=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def read_log(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def write_got10k(root: Path, n_seq: int = 2, n: int = 8) -> Path:
    """A tiny GOT-10k split (JPEG frames, textured target moving on grey)."""
    import cv2

    from edgetrack.data.got10k import write_list, write_sequence

    names = []
    for s in range(n_seq):
        frames, boxes = [], []
        for i in range(n):
            img = np.full((72, 96, 3), 110, np.uint8)
            x, y = 10 + (3 + s) * i, 12 + 2 * i
            cv2.rectangle(img, (x, y), (x + 19, y + 15), (30, 40, 220), -1)
            cv2.circle(img, (x + 6, y + 5), 3, (240, 240, 40), -1)
            frames.append(img)
            boxes.append((x, y, 20, 16))
        names.append(f"seq{s}")
        write_sequence(root / names[-1], frames, np.array(boxes, float))
    write_list(root, names)
    return root


# -- configuration --------------------------------------------------------------------------------------------------
def test_config_defaults_follow_the_paper_and_validate():
    cfg = TrainConfig()
    assert (cfg.model, cfg.loss, cfg.alpha, cfg.gamma, cfg.epochs, cfg.batch_size) == ("siamfc-hsm", "hsm", 0.6, 2.0,
                                                                                        50, 8)
    assert (cfg.lr_start, cfg.lr_end, cfg.momentum, cfg.weight_decay) == (1e-2, 1e-5, 0.9, 5e-4)
    assert TrainConfig(model="siamfc").loss == "logistic"
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(UnknownChoiceError, match="siamfc-hsm"):
        TrainConfig(model="alexnet")
    with pytest.raises(UnknownChoiceError, match="logistic"):
        TrainConfig(loss="focal")
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_geometric_learning_rate_spans_the_whole_run():
    assert lr_at(0, 100, 1e-2, 1e-5) == pytest.approx(1e-2)
    assert lr_at(99, 100, 1e-2, 1e-5) == pytest.approx(1e-5)
    assert lr_at(33, 67, 1e-2, 1e-4) == pytest.approx(1e-3)  # the geometric midpoint
    assert lr_at(0, 1, 1e-2, 1e-5) == 1e-2


def test_cuda_or_amp_that_cannot_run_here_is_an_error(tmp_path, cache):
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="CUDA"):
            train(tiny(tmp_path / "c", device="cuda"), cache)
    with pytest.raises(InvalidArgumentError, match="amp"):
        train(tiny(tmp_path / "a", amp=True), cache)


# -- data loading ---------------------------------------------------------------------------------------------------
def test_dataloader_workers_deliver_the_stream_in_order(cache):
    sampler = PairSampler(cache, seed=(4, 0))
    loader = torch.utils.data.DataLoader(PairBatches(sampler, 2, start=3, stop=9), batch_size=None, num_workers=2,
                                         multiprocessing_context="fork")
    got = list(loader)
    assert [b["index"] for b in got] == list(range(3, 9))
    for b in got:
        np.testing.assert_array_equal(b["x"].numpy(), sampler.sample_at(b["index"], 2)["x"])


# -- training -------------------------------------------------------------------------------------------------------
def test_training_lowers_the_loss(tmp_path, cache):
    out = tmp_path / "run"
    final = train(tiny(out, epochs=3, steps_per_epoch=10, batch_size=4), cache)
    assert final == out / "final.safetensors" and final.is_file()
    log = read_log(out)
    assert [e["step"] for e in log] == list(range(1, 31))
    assert log[0]["lr"] == pytest.approx(1e-2) and log[-1]["lr"] == pytest.approx(1e-3)
    assert [e["epoch"] for e in log[9:11]] == [1, 2]
    loss = np.array([e["loss"] for e in log])
    assert np.isfinite(loss).all()
    assert loss[-5:].mean() < 0.9 * loss[:5].mean(), loss

    from edgetrack.models.torch.siamfc import load_siamfc

    model = load_siamfc(final)
    assert model.config.name == "siamfc-tiny"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"epoch-000{e}{s}.safetensors" for e in (1, 2, 3) for s in ("", ".state")]
    saved = json.loads((out / "config.json").read_text())
    assert saved["steps_per_epoch"] == 10 and saved["loss"] == "hsm"


def test_resume_continues_exactly_where_it_stopped(tmp_path, cache):
    out = tmp_path / "run"
    cfg = tiny(out)
    train(cfg, cache)
    uninterrupted = read_log(out)
    weights = {k: v.clone() for k, v in _load(out / "final.safetensors").items()}

    # Lose the second epoch, as if the run had died during it.
    for p in (out / "checkpoints").glob("epoch-0002*"):
        p.unlink()
    (out / "final.safetensors").unlink()
    assert find_resume_point(out)[0].name == "epoch-0001.safetensors"
    train(cfg, cache, resume=True)
    resumed = read_log(out)
    assert [e["step"] for e in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(uninterrupted[3:], resumed[3:]):
        assert a["lr"] == b["lr"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-9)
    for k, v in _load(out / "final.safetensors").items():
        torch.testing.assert_close(v, weights[k], rtol=1e-5, atol=1e-7)

    # A finished run resumed again does nothing; a new run into the same folder, or a changed one, is refused.
    assert train(cfg, cache, resume=True) == out / "final.safetensors"
    with pytest.raises(InvalidArgumentError, match="already holds"):
        train(cfg, cache)
    with pytest.raises(InvalidArgumentError, match="lr_start"):
        train(tiny(out, lr_start=5e-3), cache, resume=True)


def _load(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_cache_path_is_written_once_and_reused(tmp_path, sequences):
    path = tmp_path / "pairs.npz"
    train(tiny(tmp_path / "r1", epochs=1, steps_per_epoch=1), sequences, cache_path=path)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    train(tiny(tmp_path / "r2", epochs=1, steps_per_epoch=1), None, cache_path=path)
    assert path.stat().st_mtime_ns == stamp
    with pytest.raises(InvalidArgumentError, match="needs data"):
        train(tiny(tmp_path / "r3"), None, cache_path=tmp_path / "missing.npz")


@pytest.mark.slow
def test_two_process_ddp_on_cpu_writes_one_checkpoint(tmp_path, cache):
    cache_path = cache.save(tmp_path / "pairs.npz")
    out = tmp_path / "ddp"
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        from edgetrack.models.pairs import PairConfig
        from edgetrack.models.torch.train import TrainConfig, train
        cfg = TrainConfig(model="siamfc-tiny", epochs=1, steps_per_epoch=2, batch_size=2, log_every=1,
                          progress=False, out={str(out)!r}, pairs=PairConfig(**{PAIRS.to_dict()!r}))
        final = train(cfg, cache_path={str(cache_path)!r})
        print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], "done", final, flush=True)
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    failures = []
    # One retry: on a loaded 2-core machine the launcher's rendezvous failed once in about six full-suite runs
    # (both ranks on one busy core). A second failure is a real one and shows both outputs.
    for attempt in range(2):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
            capture_output=True, text=True, timeout=300, env=env,
        )
        if proc.returncode == 0:
            break
        failures.append(proc.stdout[-3000:] + proc.stderr[-3000:])
    assert proc.returncode == 0, "\n---- retry ----\n".join(failures)
    assert proc.stdout.count("done") == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "epoch-0001.safetensors", "epoch-0001.state.safetensors"]
    assert (out / "final.safetensors").is_file()
    log = read_log(out)
    assert [e["step"] for e in log] == [1, 2]
    assert log[-1]["pairs_per_s"] > 0


# -- command line ---------------------------------------------------------------------------------------------------
def test_cli_trains_and_eval_runs_the_checkpoint(tmp_path):
    from edgetrack.cli import main
    from edgetrack.evaluation import build_tracker

    data = write_got10k(tmp_path / "got")
    out = tmp_path / "run"
    argv = ["train", "--model", "siamfc-tiny", "--data", f"got10k:{data}", "--out", str(out), "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "2", "--seed", "3", "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    final = out / "final.safetensors"
    assert final.is_file() and (tmp_path / "cache.npz").is_file()
    assert json.loads((out / "config.json").read_text())["seed"] == 3

    factory = build_tracker(f"checkpoint:{final}")
    assert factory.tracker_name == "siamfc-tiny-final"
    evals = tmp_path / "eval"
    assert main(["eval", "--dataset", f"got10k:{data}", "--tracker", f"checkpoint:{final}", "--out", str(evals),
                 "--max-frames", "4"]) == 0
    summary = json.loads((evals / "summary.json").read_text())
    (result,) = summary["results"]
    assert result["tracker"] == "siamfc-tiny-final" and result["failed_frames"] == 0 and result["frames"] == 8


def test_cli_errors_are_typed(tmp_path, capsys):
    from edgetrack.cli import main
    from edgetrack.commands.train import trainer_for

    assert main(["train", "--model", "yolo", "--data", "x", "--out", str(tmp_path)]) == 2
    assert "unknown model 'yolo'" in capsys.readouterr().err
    assert main(["train", "--model", "siamfc-tiny", "--framework", "jax", "--out", str(tmp_path)]) == 2
    assert main(["train", "--model", "siamfc-tiny", "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    import importlib.util

    if importlib.util.find_spec("edgetrack.models.mindspore.train") is None:
        with pytest.raises(EdgetrackError, match="mindspore"):
            trainer_for("siamfc-tiny", "mindspore")
    with pytest.raises(InvalidArgumentError, match="names no checkpoint"):
        from edgetrack.evaluation import build_tracker

        build_tracker("checkpoint:")


BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ImportError(f"{name} is blocked in this test")
            return None
    sys.meta_path.insert(0, _Block())
""")


def test_without_torch_checkpoint_trackers_and_training_say_what_to_install():
    code = BLOCK_TORCH + textwrap.dedent("""
        from edgetrack.errors import MissingDependencyError
        from edgetrack.evaluation import build_tracker
        try:
            build_tracker("checkpoint:/nowhere.safetensors")
        except MissingDependencyError as exc:
            print("tracker:", exc)
        import edgetrack.models.pairs  # the pair pipeline itself needs no framework
        print("pairs ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tracker:" in proc.stdout and "edgetrack[torch]" in proc.stdout and "pairs ok" in proc.stdout
