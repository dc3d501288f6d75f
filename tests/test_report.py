"""The benchmark report (`edgetrack bench`, `benchmarks/report.py`): a tiny run writes RESULTS.md with every section
and its plots, a second run measures nothing, records measured elsewhere are merged, earlier results feed the
claims and targets."""
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skimage")  # the synthetic generator's photos
pytest.importorskip("matplotlib")

from edgetrack.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from edgetrack.baselines import list_baselines
    from edgetrack.converters.torch2onnx import siamfc_bundle
    from edgetrack.data.synth import SynthConfig, generate
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    root = tmp_path_factory.mktemp("report")
    generate(SynthConfig(sequences=2, frames=10, size=(160, 120), seed=12, split="test"), root / "data",
             progress=False)
    torch.manual_seed(0)
    bundle = siamfc_bundle(save_siamfc(build_siamfc("siamfc-tiny").eval(), root / "tiny.safetensors"),
                           root / "bundle")
    # Earlier runs' results, as the GPU machine's scripts write them: a SiamFC training run and a GPU speed file.
    prior = root / "prior"
    (prior / "siamfc-run").mkdir(parents=True)
    rows = [{"preset": p, "loss": l, "variant": v, "success_auc": auc, "precision_20": 0.8}
            for p, l, aucs in (("siamfc-hsm", "hsm", (0.75, 0.74)), ("siamfc", "logistic", (0.70, 0.71)))
            for v, auc in zip(("sharp", "blurred"), aucs)]
    # A gamma sweep in the same run: gamma=2 is the row above; gamma=0 trails it and must not replace it.
    rows[0].update(gamma=2.0, alpha=0.6)
    rows[1].update(gamma=2.0, alpha=0.6)
    rows += [{"preset": "siamfc-hsm", "loss": "hsm", "gamma": 0.0, "alpha": 0.6, "variant": v, "success_auc": auc,
              "precision_20": 0.8} for v, auc in (("sharp", 0.70), ("blurred", 0.69))]
    (prior / "siamfc-run" / "results.json").write_text(json.dumps(
        {"environment": {"gpu": "Some GPU"}, "data": {"test": {"sequences": 30, "seed": 12}}, "evaluation": rows}))
    (prior / "gpu_speed.json").write_text(json.dumps(
        {"meta": {"gpu": "Some GPU"}, "rows": [{"model": "siamfc-hsm", "batch": 1, "precision": "fp16",
                                                 "per_stream_fps": 800.0}]}))
    # benchmarks/gpu_speed.py run on a CPU (per-stage figures): not a GPU result.
    (prior / "cpu-stages").mkdir()
    (prior / "cpu-stages" / "gpu_speed.json").write_text(json.dumps(
        {"meta": {"gpu": "none"}, "rows": [{"model": "siamfc-hsm", "batch": 1, "precision": "fp16",
                                             "per_stream_fps": 12.5}]}))
    # benchmarks/chain_parity.py and benchmarks/precision_auc.py results.
    (prior / "chain-parity").mkdir()
    (prior / "chain-parity" / "chain_parity.json").write_text(json.dumps(
        {"kind": "chain-parity", "meta": {"model": "siamrpn-eca", "test_data": "synthetic:T", "crops": 4,
                                          "sequences": 10, "max_frames": 60},
         "rows": [{"row": "pytorch", "what": "PyTorch twin", "precision": "fp32", "error": {"max_rel": 0.0},
                   "auc_sharp": 0.7, "auc_blurred": 0.6, "delta_sharp": 0.0, "delta_blurred": 0.0},
                  {"row": "mindspore", "what": "MindSpore twin", "precision": "fp32", "error": {"max_rel": 2e-6},
                   "auc_sharp": 0.7, "auc_blurred": 0.61, "delta_sharp": 0.0, "delta_blurred": 0.01}]}))
    (prior / "precision").mkdir()
    (prior / "precision" / "precision_auc.json").write_text(json.dumps(
        {"meta": {"model": "siamrpn-eca", "deblur": "d.safetensors"},
         "rows": [{"precision": "int8", "max_rel_err": 0.13, "auc_sharp": 0.67, "auc_blurred": 0.66,
                   "delta_auc_sharp": 0.006, "delta_auc_blurred": 0.008}]}))
    baseline = "kcf" if list_baselines()["kcf"] is None else "mil"
    return root, bundle, baseline


def _argv(root: Path, bundle: Path, baseline: str, *more: str) -> list[str]:
    return ["bench", "--out", str(root / "out"), "--data", f"synthetic:{root / 'data'}", "--models", "none",
            "--bundle", f"tiny={bundle}", "--baselines", baseline, "--speed-sequences", "2", "--speed-frames", "6",
            "--chips", "ascend310", "--results", str(root / "prior"), *more]


def _records(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in (out / "results" / "report" / "cache").rglob("*.json")}


def test_report_has_every_section_and_a_second_run_reuses_the_cache(setup, capsys):
    from edgetrack.bench.render import SECTIONS

    root, bundle, baseline = setup
    out = root / "out"
    assert main(_argv(root, bundle, baseline)) == 0
    first = capsys.readouterr().out
    # 2 trackers × 2 variants accuracy, one speed run, one simulator estimate.
    assert "measured: 6, reused from the cache: 0" in first
    text = (out / "RESULTS.md").read_text()
    for title in SECTIONS:
        assert f"## {title}" in text
    for name in ("tiny", baseline):
        assert f"| {name} |" in text
    assert "Generated" in text and "edgetrack bench --out" in text  # where the numbers came from
    for png in ("accuracy-synthetic-sharp.png", "accuracy-synthetic-blurred.png", "speed.png"):
        assert (out / "results" / "report" / png).stat().st_size > 1000
    assert "](results/report/accuracy-synthetic-blurred.png)" in text
    # Earlier results: the claim, and the targets they settle (fake figures: +0.05 / +0.03 AUC, 800 FPS).
    assert "— **supports**" in text and "+0.050 sharp, +0.030 blurred" in text
    assert "siamfc-hsm, blurred: γ=0: 0.690, γ=2: 0.740; best γ=2 | supports" in text
    assert "the α sweep has not been run" in text  # one α value is no sweep
    assert "| GPU machine, per stream, batch 1, through edgetrack.Tracker: siamfc-hsm ≥ 710 FPS | 800 FPS fp16 | " \
           "**met**" in text
    assert "deblur-siamrpn ≥ 420 FPS | – | not measured" in text
    assert "12.5" not in text  # the CPU run of gpu_speed.py is not a GPU figure
    # Section 6: the chain's rows, and the precision rows.
    assert "| MindSpore twin | 2.0e-06 | 0.700 | 0.610 | +0.0000 / +0.0100 |" in text
    assert "sequences 10, max frames 60 of each variant" in text
    assert "| siamrpn-eca + deblur stage | int8 | 1.3e-01 | 0.670 | 0.660 | +0.0060 / +0.0080 |" in text

    before = _records(out)
    assert len(before) == 6
    assert main(_argv(root, bundle, baseline)) == 0
    assert "measured: 0, reused from the cache: 6" in capsys.readouterr().out
    assert _records(out) == before  # not even rewritten

    # --force measures again what it is asked to measure (here the cheap simulator estimate only).
    assert main(_argv(root, bundle, baseline, "--force", "--sections", "simulator")) == 0
    assert "measured: 1, reused from the cache: 5" in capsys.readouterr().out


def test_records_measured_elsewhere_are_merged_and_nothing_is_measured_without_sections(setup, capsys):
    root, bundle, baseline = setup
    out = root / "out"
    if not list((out / "results" / "report" / "cache" / "accuracy").glob("tiny-synthetic-blurred-*.json")):
        assert main(_argv(root, bundle, baseline)) == 0
    src = next((out / "results" / "report" / "cache" / "accuracy").glob("tiny-synthetic-blurred-*.json"))
    record = json.loads(src.read_text())
    # As if the GPU machine had tracked a model this machine lacks, on the same data, and the file was copied in.
    record["key"]["tracker"] = "model:gpu-only"
    record["result"]["tracker"] = "gpu-only"
    record["meta"]["machine"] = {"cpu": "GPU host", "cores": 16}
    dropped = out / "results" / "report" / "cache" / "from-gpu" / "anything.json"
    dropped.parent.mkdir(exist_ok=True)
    dropped.write_text(json.dumps(record))
    try:
        assert main(_argv(root, bundle, baseline, "--sections", "none")) == 0
        printed = capsys.readouterr().out
        assert "measured: 0," in printed
        text = (out / "RESULTS.md").read_text()
        assert "| gpu-only (merged) |" in text and "GPU host, 16 cores" in text
    finally:
        shutil.rmtree(dropped.parent)


def test_bad_options_are_errors_that_say_what_to_do(setup, capsys):
    root, bundle, baseline = setup
    assert main(_argv(root, bundle, baseline, "--sections", "accuracy,plots")) == 2
    assert "plots" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--bundle", "no-equals-sign"])
    assert "NAME=PATH" in capsys.readouterr().err


def test_cpu_deblur_target_reads_the_deblur_model_when_the_default_has_none():
    """The default model has no deblur stage: the target row says so and gives the shipped deblur model's rate."""
    from edgetrack.bench.claims import TARGET_CPU_FPS, Prior, all_targets

    speed = {"variants": {"synthetic-blurred": {
        "siamrpn-eca": {"fps": 32.3, "deblurred_share": None},
        "deblur-siamrpn": {"fps": 17.8, "deblurred_share": 0.58},
        "deblur-siamrpn (deblur always)": {"fps": 13.9, "deblurred_share": 1.0},
    }, "synthetic-sharp": {}}}
    rows = {t.target: t for t in all_targets(Prior(None), {}, speed, "siamrpn-eca", False, None)}
    row = next(t for goal, t in rows.items() if "with deblurring" in goal)
    assert "siamrpn-eca has no deblur stage" in row.measured and "deblur-siamrpn, with its deblur stage: 17.8" in row.measured
    assert row.status == ("not met with deblurring" if 17.8 < TARGET_CPU_FPS else "met with deblurring")
    speed["variants"]["synthetic-blurred"].pop("deblur-siamrpn")
    speed["variants"]["synthetic-blurred"].pop("deblur-siamrpn (deblur always)")
    rows = {t.target: t for t in all_targets(Prior(None), {}, speed, "siamrpn-eca", False, None)}
    assert next(t for goal, t in rows.items() if "with deblurring" in goal).status == "not measured"


def test_reuse_claim_compares_each_reuse_model_with_siamrpn_eca_of_the_same_eval():
    from edgetrack.bench.claims import EvalSummary, Prior, reuse_claim

    assert reuse_claim(Prior(None), None).verdict == "not measured yet"
    q = "?backend=torch&device=cuda"
    rows = [{"tracker": "siamrpn-eca" + q, "dataset": "synthetic-blurred", "success_auc": 0.666},
            {"tracker": "siamrpn-eca-ohem" + q, "dataset": "synthetic-blurred", "success_auc": 0.582},
            {"tracker": "siamrpn-reuse-reuse" + q, "dataset": "synthetic-blurred", "success_auc": 0.605},
            {"tracker": "siamrpn-eca" + q, "dataset": "synthetic-sharp", "success_auc": 0.671},
            {"tracker": "siamrpn-reuse-reuse" + q, "dataset": "synthetic-sharp", "success_auc": 0.574}]
    prior = Prior(None, evals=[EvalSummary(Path("r/summary.json"), "2026-11-21", [], rows)])
    claim = reuse_claim(prior, None)
    assert [e.verdict for e in claim.evidence] == ["contradicts", "context"]  # blurred first; OHEM is not reuse
    assert "ΔAUC -0.061" in claim.evidence[0].figure and claim.verdict == "contradicts"
    rows[2]["success_auc"] = 0.7
    assert reuse_claim(prior, None).verdict == "supports"


def test_gpu_target_skips_a_deblur_model_with_its_stage_off():
    """deblur-siamrpn's GPU target is the model with its deblur stage, not the plain tracker it is with deblur=never."""
    import types

    from edgetrack.bench.claims import _gpu_best

    rows = [{"model": "deblur-siamrpn", "deblur": "never", "streams": 1, "per_stream_fps": 849.0},
            {"model": "deblur-siamrpn", "deblur": "auto", "streams": 1, "per_stream_fps": 481.5},
            {"model": "siamfc-hsm", "deblur": "–", "streams": 1, "per_stream_fps": 649.0}]
    prior = types.SimpleNamespace(gpu=[(Path("gpu_speed.json"), {"rows": rows})])
    assert _gpu_best(prior, "deblur-siamrpn")[0] == 481.5
    assert _gpu_best(prior, "siamfc-hsm")[0] == 649.0


def test_gpu_target_names_a_variant_and_where_the_paper_setting_stands():
    """A faster variant (SiamFC's scale search by templates) meets the target under its own name, beside the model
    as the paper runs it."""
    import types

    from edgetrack.bench.claims import all_targets

    rows = [{"model": "siamfc-hsm", "precision": "fp16", "deblur": "–", "streams": 1, "per_stream_fps": 649.0},
            {"model": "siamfc-hsm (scale search by templates)", "precision": "fp16", "deblur": "–", "streams": 1,
             "per_stream_fps": 941.0}]
    prior = types.SimpleNamespace(gpu=[(Path("gpu_speed.json"), {"rows": rows})], training=[], precision=[])
    target = next(t for t in all_targets(prior, {}, None, None, False, None) if "siamfc-hsm ≥ 710" in t.target)
    assert target.measured == "941 FPS fp16 with scale search by templates; 649 FPS fp16 as the paper runs it"
    assert target.status == "met with scale search by templates"


def test_accuracy_targets_give_the_paired_interval_and_the_table_each_trackers_interval():
    """Per-sequence AUCs give the accuracy table an interval per tracker and the targets a paired one; records
    without them, or of other sequences, give none rather than a wrong one."""
    from edgetrack.bench.claims import Prior, all_targets, auc_interval

    names = [f"SYN_{i:04d}" for i in range(1, 11)]
    def record(tracker, aucs):
        return {"result": {"tracker": tracker, "success_auc": sum(aucs) / len(aucs),
                           "per_sequence": [{"name": n, "success_auc": a} for n, a in zip(names, aucs)]},
                "meta": {}}
    mine = [0.60 + 0.03 * (i % 4) for i in range(10)]
    accuracy = {"synthetic-blurred": [record("siamrpn-eca", mine), record("nanotrack", [a - 0.02 for a in mine]),
                                      record("csrt", [a + 0.01 for a in mine])]}
    rows = {t.target: t for t in all_targets(Prior(None), accuracy, None, "siamrpn-eca", False, None)}
    nano = next(t for goal, t in rows.items() if "beats NanoTrack" in goal)
    # Every sequence 0.02 better: the difference is certain, the interval a point.
    assert nano.status == "met" and "(+0.020; 95 % interval +0.020 to +0.020, paired by sequence)" in nano.measured
    assert "-0.010 to -0.010" in next(t for goal, t in rows.items() if "CSRT" in goal).measured
    mean, low, high = auc_interval(accuracy["synthetic-blurred"][0]["result"])
    assert low < mean < high
    # Not the same sequences, or no per-sequence AUCs: no interval.
    other = record("nanotrack", mine[:9])["result"]
    assert auc_interval(accuracy["synthetic-blurred"][0]["result"], other) is None
    assert auc_interval({"success_auc": 0.6}) is None
