"""The papers' claims and the issue's targets, each set against the figure that supports or contradicts it.

Figures come from two places: this report's own measurements (accuracy, speed) and the result files earlier runs
left in the results folder (``benchmarks/results/``), read by their content, not their names:

- training runs (``benchmarks/device_train_siamfc.py``): JSON with an ``evaluation`` list of rows holding
  ``preset``, ``loss``, ``variant`` and ``success_auc``; every JSON of one folder forms one table (a 2×2 ablation is
  two files);
- ``edgetrack eval`` summaries: JSON with a ``results`` list of rows holding ``tracker``, ``dataset`` and
  ``success_auc``;
- deblurring evaluations: JSON-lines with ``psnr`` and ``psnr_blurred`` (the last line counts);
- ``benchmarks/precision_auc.py``'s ``precision_auc.json`` (``meta``, ``rows`` with ``precision`` and
  ``delta_auc_*``);
- GPU speed files (``--gpu-results``; by default any JSON under the results folder whose name, or the name of a
  folder it is in, starts with ``gpu``): rows with a model
  name (``model``/``name``/``tracker``), a batch or stream count, and FPS (``per_stream_fps``, ``tracker_fps``,
  ``end_to_end_fps`` or ``fps``).

Verdicts: *supports* (every figure reaches the paper's claim), *partly* (right direction, short of the claimed
size), *contradicts* (wrong direction everywhere), *mixed* (some of each), *not measured yet*.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

# The papers' own figures (shared/papers/README.md).
PAPER_HSM_GAIN = 0.026  # HSM-SiamFC over SiamFC, OTB-2015 success AUC
PAPER_GAMMA = {0: 0.535, 1: 0.539, 2: 0.558, 3: 0.468, 4: 0.473}  # Table 2
PAPER_ALPHA = {0.5: 0.556, 0.6: 0.589, 0.7: 0.532, 0.8: 0.496, 0.9: 0.512}  # Table 3
PAPER_HSM = {"gamma": 2.0, "alpha": 0.6}  # the settings the paper picks (and edgetrack trains with)
# A sweep's best value beats the paper's pick by at most this AUC: "partly", not "contradicts" (one training seed per
# value, so a smaller gap is no evidence against the pick).
SWEEP_TIE = 0.01
PAPER_RPN = {"SiameseRPN": (0.783, 0.731, 75), "Deblur-SiamRPN": (0.821, 0.815, 42)}  # P@15, S@0.6, FPS (Table 2)

# Issue 7's targets.
TARGET_CSRT_MARGIN = 0.10
TARGET_GPU_FPS = {"siamfc-hsm": 710.0, "deblur-siamrpn": 420.0}
TARGET_CPU_FPS = 30.0
AUC_BUDGET = {"fp16": 0.005, "int8": 0.02}
# "Deblurring costs little on sharp video": at most this much AUC (the fp16 budget's order of magnitude, doubled).
SHARP_COST_TOLERANCE = 0.01

_FPS_KEYS = ("per_stream_fps", "tracker_fps", "end_to_end_fps", "fps")
_NAME_KEYS = ("model", "name", "tracker")
_BATCH_KEYS = ("batch", "batch_size", "streams")


# -------------------------------------------------------------------------------------------------- prior results
@dataclass
class TrainingRun:
    folder: Path
    files: list[str]
    date: str | None
    environment: dict
    test: dict
    cells: dict  # (preset, loss, variant) -> evaluation row, at the paper's HSM settings (gamma 2, alpha 0.6)
    sweep: list = field(default_factory=list)  # every HSM-loss row that records its gamma and alpha

    def auc(self, preset: str, loss: str, variant: str) -> float | None:
        row = self.cells.get((preset, loss, variant))
        return None if row is None else row.get("success_auc")


@dataclass
class EvalSummary:
    path: Path
    created: str | None
    datasets: list
    rows: list[dict]


@dataclass
class Prior:
    root: Path | None
    training: list[TrainingRun] = field(default_factory=list)
    evals: list[EvalSummary] = field(default_factory=list)
    deblur: list[tuple[Path, dict]] = field(default_factory=list)
    precision: list[tuple[Path, dict]] = field(default_factory=list)
    # benchmarks/chain_parity.py results ("kind": "chain-parity"): PyTorch vs MindSpore vs ONNX through one Tracker.
    chain: list[tuple[Path, dict]] = field(default_factory=list)
    gpu: list[tuple[Path, object]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _read_json(path: Path, problems: list[str]):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: {exc}")
        return None


def _readme_date(folder: Path) -> str | None:
    readme = folder / "README.md"
    if readme.is_file():
        m = re.search(r"\d{4}-\d{2}-\d{2}", readme.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0])
        if m:
            return m.group(0)
    return None


def load_prior(root: Path | None, gpu_files: tuple[Path, ...] = (), precision_files: tuple[Path, ...] = (),
               skip: Path | None = None) -> Prior:
    """Everything usable under ``root`` (the results folder), plus the GPU and precision files named explicitly.
    ``skip``: a folder under ``root`` not to read (the report's own cache)."""
    prior = Prior(root)
    problems = prior.problems
    explicit = {Path(p).resolve() for p in (*gpu_files, *precision_files)}
    files = sorted(root.rglob("*.json*")) if root is not None and root.is_dir() else []
    if skip is not None:
        files = [f for f in files if Path(skip).resolve() not in f.resolve().parents]
    runs: dict[Path, TrainingRun] = {}
    for path in files:
        if path.resolve() in explicit:
            continue
        if path.suffix == ".jsonl":
            last = None
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "psnr" in row and "psnr_blurred" in row:
                    last = row
            if last is not None:
                prior.deblur.append((path, last))
            continue
        if path.suffix != ".json":
            continue
        data = _read_json(path, problems)
        if not isinstance(data, dict) and not isinstance(data, list):
            continue
        if isinstance(data, dict) and data.get("kind") == "chain-parity":
            prior.chain.append((path, data))
            continue
        if isinstance(data, dict) and (data.get("meta") or {}).get("gpu") == "none":
            continue  # benchmarks/gpu_speed.py run on a CPU (per-stage figures): not a GPU measurement
        if path.name.startswith("gpu") or (root is not None and any(
                part.startswith("gpu") for part in path.relative_to(root).parts[:-1])):
            prior.gpu.append((path, data))
            continue
        if not isinstance(data, dict):
            continue
        if isinstance(data.get("evaluation"), list):
            rows = [r for r in data["evaluation"] if isinstance(r, dict)
                    and {"preset", "loss", "variant", "success_auc"} <= set(r)]
            if rows:
                run = runs.setdefault(path.parent, TrainingRun(path.parent, [], _readme_date(path.parent),
                                                               data.get("environment") or {},
                                                               (data.get("data") or {}).get("test") or {}, {}))
                run.files.append(path.name)
                for r in rows:
                    if r["loss"] == "hsm" and r.get("gamma") is not None and r.get("alpha") is not None:
                        run.sweep.append(r)
                    if r.get("gamma") in (None, PAPER_HSM["gamma"]) and r.get("alpha") in (None, PAPER_HSM["alpha"]):
                        run.cells[(r["preset"], r["loss"], r["variant"])] = r
        elif isinstance(data.get("results"), list) and any(
                isinstance(r, dict) and {"tracker", "dataset", "success_auc"} <= set(r) for r in data["results"]):
            prior.evals.append(EvalSummary(path, data.get("created"), data.get("datasets") or [],
                                           [r for r in data["results"] if isinstance(r, dict)]))
        elif isinstance(data.get("rows"), list) and any(isinstance(r, dict) and "precision" in r
                                                        for r in data["rows"]):
            prior.precision.append((path, data))
    prior.training = list(runs.values())
    for p in gpu_files:
        data = _read_json(Path(p), problems)
        if data is not None:
            prior.gpu.append((Path(p), data))
    for p in precision_files:
        data = _read_json(Path(p), problems)
        if isinstance(data, dict):
            prior.precision.append((Path(p), data))
    return prior


# ---------------------------------------------------------------------------------------------------- the claims
@dataclass
class Evidence:
    source: str
    figure: str
    verdict: str


@dataclass
class Claim:
    title: str
    paper: str
    evidence: list[Evidence]
    table: list[list[str]] | None = None  # optional detail table (first row: header)

    @property
    def verdict(self) -> str:
        verdicts = {e.verdict for e in self.evidence} - {"not measured yet", "context"}
        if not verdicts:
            return "not measured yet"
        if len(verdicts) == 1:
            return verdicts.pop()
        return "mixed"


def _fmt(v, spec="+.3f") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _direction(deltas: list[float], claimed: float = 0.0) -> str:
    """supports / partly / contradicts / mixed for deltas that should be positive (and reach ``claimed``)."""
    deltas = [d for d in deltas if d is not None]
    if not deltas:
        return "not measured yet"
    if all(d >= claimed and d > 0 for d in deltas):
        return "supports"
    if all(d > 0 for d in deltas):
        return "partly"
    if all(d <= 0 for d in deltas):
        return "contradicts"
    return "mixed"


def _rel(path: Path, base: Path | None) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve())) if base else str(path)
    except ValueError:
        return str(path)


def _run_source(run: TrainingRun, base: Path | None) -> str:
    env = run.environment
    where = ", ".join(str(v) for v in (env.get("gpu") or env.get("device"), f"torch {env['torch']}"
                                       if env.get("torch") else None) if v)
    test = run.test
    data = (f"{test.get('sequences')} test sequences, seed {test.get('seed')}" if test else "test set not recorded")
    files = ", ".join(run.files)
    date = run.date or "date not recorded"
    return (f"`{_rel(run.folder, base)}/` ({files}): {where or 'machine not recorded'}, {date}; {data}; "
            "command in its README.md")


def hsm_claim(prior: Prior, base: Path | None) -> Claim:
    paper = (f"fusion + HSM loss beat plain SiamFC: +{PAPER_HSM_GAIN} success AUC on OTB-2015 (+2 % precision); "
             "the two parts are not separated in the paper")
    evidence, table = [], [["run", "network", "loss", "AUC sharp", "AUC blurred", "P@20 sharp", "P@20 blurred"]]
    for run in prior.training:
        for (preset, loss) in sorted({(p, l) for p, l, _ in run.cells}):
            cell = {v: run.cells.get((preset, loss, v), {}) for v in ("sharp", "blurred")}
            table.append([run.folder.name, "fusion (siamfc-hsm)" if preset == "siamfc-hsm" else preset, loss,
                          *(_fmt(cell[v].get(k), ".3f") for k in ("success_auc", "precision_20")
                            for v in ("sharp", "blurred"))])
        effects = (("fusion + HSM loss vs plain SiamFC", ("siamfc-hsm", "hsm"), PAPER_HSM_GAIN),
                   ("HSM loss alone (plain network)", ("siamfc", "hsm"), None),
                   ("fusion alone (logistic loss)", ("siamfc-hsm", "logistic"), None))
        for label, cell, claimed in effects:
            deltas = {v: (None if run.auc(*cell, v) is None or run.auc("siamfc", "logistic", v) is None
                          else run.auc(*cell, v) - run.auc("siamfc", "logistic", v)) for v in ("sharp", "blurred")}
            if all(d is None for d in deltas.values()):
                continue
            verdict = _direction(list(deltas.values()), claimed or 0.0)
            if claimed is None:
                verdict = "context"  # the paper makes no separate claim for the parts
            evidence.append(Evidence(_run_source(run, base),
                                     f"{label}: ΔAUC {_fmt(deltas['sharp'])} sharp, {_fmt(deltas['blurred'])} blurred",
                                     verdict))
    if not evidence:
        evidence.append(Evidence("–", "no SiamFC training run in the results folder", "not measured yet"))
    return Claim("HSM-SiamFC: feature fusion + hard-sample-mining loss beat plain SiamFC", paper, evidence,
                 table if len(table) > 1 else None)


def sweep_claims(prior: Prior, base: Path | None) -> list[Claim]:
    out = []
    for param, paper_table, chosen in (("gamma", PAPER_GAMMA, 2), ("alpha", PAPER_ALPHA, 0.6)):
        symbol = "γ" if param == "gamma" else "α"
        paper = (f"Table {2 if param == 'gamma' else 3}: AUC " + ", ".join(f"{symbol}={k}: {v}"
                                                                          for k, v in paper_table.items())
                 + f"; best at {symbol} = {chosen}")
        evidence = []
        other = "alpha" if param == "gamma" else "gamma"
        for run in prior.training:
            # One sweep = one network, the other parameter at the paper's value, at least two values of this one.
            for preset in sorted({r["preset"] for r in run.sweep}):
                rows = [r for r in run.sweep if r["preset"] == preset and r[other] == PAPER_HSM[other]]
                if len({r[param] for r in rows}) < 2:
                    continue
                for variant in ("sharp", "blurred"):
                    vals = {r[param]: r["success_auc"] for r in rows if r["variant"] == variant}
                    if not vals:
                        continue
                    best = max(vals, key=vals.get)
                    figure = ", ".join(f"{symbol}={k:g}: {vals[k]:.3f}" for k in sorted(vals))
                    gap = vals[best] - vals[chosen] if chosen in vals else None
                    verdict = ("supports" if best == chosen else "contradicts" if gap is None or gap > SWEEP_TIE
                               else "partly")
                    evidence.append(Evidence(_run_source(run, base), f"{preset}, {variant}: {figure}; best "
                                             f"{symbol}={best:g}" + (f", the paper's {symbol}={chosen:g} "
                                             f"{gap:.3f} behind" if gap else ""), verdict))
        if not evidence:
            evidence.append(Evidence(
                "–", f"the {symbol} sweep has not been run (a shorter training per value is fine: "
                "`benchmarks/device_train_siamfc.py` on the GPU machine, one model per value)", "not measured yet"))
        out.append(Claim(f"HSM loss: the {symbol} sweep", paper, evidence))
    return out


def _is(name: str, *words: str) -> bool:
    name = name.lower()
    return all(w in name for w in words)


def _eval_source(summary: EvalSummary, base: Path | None) -> str:
    return (f"`{_rel(summary.path, base)}` (edgetrack eval, {summary.created or 'date not recorded'}, "
            f"{', '.join(map(str, summary.datasets))}; machine not recorded)")


def backbone_claim(prior: Prior, accuracy: dict, base: Path | None) -> Claim:
    (p0, s0, _), (p1, s1, _) = PAPER_RPN["SiameseRPN"], PAPER_RPN["Deblur-SiamRPN"]
    paper = (f"SiamRPN on EfficientNet-B0 + ECA (with DeblurGAN-v2 in front) beats SiamRPN on AlexNet: P@15 "
             f"{p0} → {p1}, S@0.6 {s0} → {s1} (Table 2; the gain mixes backbone and deblurring)")
    evidence = []
    sources = [(_eval_source(s, base), s.rows) for s in prior.evals]
    sources.append(("this report, section 1", [r["result"] for rows in accuracy.values() for r in rows]))
    for source, rows in sources:
        by_ds: dict = {}
        for r in rows:
            name = str(r.get("tracker", ""))
            if _is(name, "siamrpn", "alexnet"):
                by_ds.setdefault(r.get("dataset"), {})["alexnet"] = r
            elif _is(name, "siamrpn", "eca") and "deblur" not in name:
                by_ds.setdefault(r.get("dataset"), {})["eca"] = r
        for ds, pair in sorted(by_ds.items(), key=lambda kv: str(kv[0])):
            if len(pair) < 2:
                continue
            e, a = pair["eca"], pair["alexnet"]
            d = {k: (e.get(k) - a.get(k)) if e.get(k) is not None and a.get(k) is not None else None
                 for k in ("success_auc", "precision_15", "success_60")}
            evidence.append(Evidence(source, f"{ds}: {e['tracker']} vs {a['tracker']}: ΔAUC {_fmt(d['success_auc'])}, "
                                     f"ΔP@15 {_fmt(d['precision_15'])}, ΔS@0.6 {_fmt(d['success_60'])}",
                                     _direction([d["success_auc"]])))
    if not evidence:
        evidence.append(Evidence("–", "no run with both siamrpn-eca and siamrpn-alexnet on one data set",
                                 "not measured yet"))
    return Claim("Deblur-SiamRPN: EfficientNet-B0 + ECA instead of AlexNet in SiamRPN", paper, evidence)


def reuse_claim(prior: Prior, base: Path | None) -> Claim:
    paper = ("the tracking network reuses the features DeblurGAN-v2 already extracted (the pipeline of the paper, "
             "which gives no separate figure for it): read here as \"a SiamRPN on the deblurrer's own encoder tracks "
             "blurred video at least as well as siamrpn-eca without deblurring\"")
    evidence = []
    for s in prior.evals:
        source = _eval_source(s, base)
        by_ds: dict = {}
        for r in s.rows:
            base_name = str(r.get("tracker", "")).split("?")[0].lower()
            if base_name == "siamrpn-eca" or base_name.startswith("siamrpn-reuse"):
                by_ds.setdefault(r.get("dataset"), {})[base_name] = r
        for ds, rows in sorted(by_ds.items(), key=lambda kv: str(kv[0])):
            eca = rows.get("siamrpn-eca")
            for name, r in sorted(rows.items()):
                if name == "siamrpn-eca" or eca is None or r.get("success_auc") is None:
                    continue
                d = r["success_auc"] - eca["success_auc"]
                verdict = ("supports" if d >= 0 else "contradicts") if "blur" in str(ds) else "context"
                evidence.append(Evidence(source, f"{ds}: {r['tracker']} AUC {r['success_auc']:.3f} vs "
                                         f"{eca['tracker']} {eca['success_auc']:.3f}: ΔAUC {_fmt(d)}", verdict))
    if not evidence:
        evidence.append(Evidence("–", "no run with siamrpn-reuse and siamrpn-eca on one data set (train it with "
                                 "benchmarks/device_train_rpn_deblur.sh, the reuse recipe)", "not measured yet"))
    return Claim("Deblur-SiamRPN: the tracker reuses the deblurrer's features", paper, evidence)


def _pairs(accuracy: dict, other_mode: str) -> list[tuple[str, dict, dict]]:
    """(variant, auto row, other-mode row) for every bundle measured in both deblur modes."""
    out = []
    for variant, rows in accuracy.items():
        by_name = {r["result"].get("tracker"): r["result"] for r in rows}
        for name, result in by_name.items():
            other = by_name.get(f"{name} (deblur {other_mode})")
            if other is not None and "deblur" in result:
                out.append((variant, result, other))
    return out


def deblur_claim(prior: Prior, accuracy: dict, base: Path | None) -> Claim:
    paper = "deblurring first (DeblurGAN-v2) helps tracking on blurred video and costs little on sharp video"
    evidence = []
    for variant, on, off in _pairs(accuracy, "never"):
        d = on["success_auc"] - off["success_auc"] if on.get("success_auc") is not None and off.get(
            "success_auc") is not None else None
        share = (on.get("deblur") or {}).get("deblurred_share")
        blurred = "blur" in variant
        if d is None:
            verdict = "not measured yet"
        elif blurred:
            verdict = "supports" if d > 0 else "contradicts"
        else:
            verdict = "supports" if d >= -SHARP_COST_TOLERANCE else "contradicts"
        evidence.append(Evidence("this report, section 1",
                                 f"{variant}: {on['tracker']} deblur on (gate, {_fmt(share, '.0%')} of frames "
                                 f"deblurred) vs off: ΔAUC {_fmt(d)}"
                                 + ("" if blurred else f" (costs little: ΔAUC ≥ −{SHARP_COST_TOLERANCE})"),
                                 verdict))
    for path, row in prior.deblur:
        gain = row["psnr"] - row["psnr_blurred"]
        evidence.append(Evidence(f"`{_rel(path, base)}` (DeblurGAN-v2 training log, last evaluation)",
                                 f"restoration alone: PSNR {row['psnr']:.2f} dB vs {row['psnr_blurred']:.2f} dB for "
                                 f"the blurred input ({gain:+.2f} dB) on {row.get('crops', '?')} held-out crops",
                                 "context"))
    if not any(e.verdict != "context" for e in evidence):
        evidence.insert(0, Evidence("–", "no bundle with a deblur stage was tracked (deblur-siamrpn is not shipped "
                                    "yet; pass one with --bundle NAME=PATH)", "not measured yet"))
    return Claim("Deblur-SiamRPN: deblurring helps on blurred video, costs little on sharp video", paper, evidence)


def gate_claim(speed: dict | None) -> Claim:
    paper = ("none (edgetrack's own addition, issue 6): the blur gate runs the deblurrer only on crops it finds "
             "blurred, so most of the deblurrer's cost is saved on sharp video")
    evidence = []
    for variant, rows in ((speed or {}).get("variants") or {}).items():
        for name, row in rows.items():
            always = rows.get(f"{name} (deblur always)")
            never = rows.get(f"{name} (deblur never)")
            if always is None or row.get("ms_mean") is None or always.get("ms_mean") is None:
                continue
            saved = 1 - row["ms_mean"] / always["ms_mean"]
            figure = (f"{variant}: {name} {row['ms_mean']:.1f} ms/frame with the gate "
                      f"({_fmt(row.get('deblurred_share'), '.0%')} of frames deblurred, gate "
                      f"{_fmt(row.get('gate_ms'), '.2f')} ms) vs {always['ms_mean']:.1f} deblurring every frame: "
                      f"{saved:.0%} saved")
            if never is not None and never.get("ms_mean"):
                figure += f"; {never['ms_mean']:.1f} ms without the stage"
            evidence.append(Evidence("this report, section 2", figure, "supports" if saved > 0 else "contradicts"))
    if not evidence:
        evidence.append(Evidence("–", "no bundle with a deblur stage in the speed run", "not measured yet"))
    return Claim("The blur gate: what it saves", paper, evidence)


def all_claims(prior: Prior, accuracy: dict, speed: dict | None, base: Path | None) -> list[Claim]:
    return [hsm_claim(prior, base), *sweep_claims(prior, base), backbone_claim(prior, accuracy, base),
            deblur_claim(prior, accuracy, base), reuse_claim(prior, base), gate_claim(speed)]


# --------------------------------------------------------------------------------------------------- the targets
@dataclass
class Target:
    target: str
    measured: str
    status: str  # met / not met / not measured (/ "… with deblurring")
    source: str


def _row(accuracy: dict, variant_word: str, name: str) -> dict | None:
    for variant, rows in accuracy.items():
        if variant_word in variant:
            for r in rows:
                if r["result"].get("tracker") == name:
                    return r["result"]
    return None


def gpu_rows(data) -> list[dict]:
    """The rows of a GPU speed file: a list of dicts, or a dict's ``rows``/``results``/``runs`` list."""
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        for key in ("rows", "results", "runs", "measurements"):
            if isinstance(data.get(key), list):
                return [r for r in data[key] if isinstance(r, dict)]
    return []


def _row_name(r: dict) -> str:
    return next((str(r[k]) for k in _NAME_KEYS if k in r), "")


def _gpu_best(prior: Prior, model: str, variants: bool = True) -> tuple[float, dict, Path] | None:
    """The fastest batch-1 row of ``model`` in the GPU speed files; ``variants`` False: only rows of the model as
    the paper runs it (no parenthesised variant in the name, such as SiamFC's scale search by templates)."""
    best = None
    for path, data in prior.gpu:
        for r in gpu_rows(data):
            name = _row_name(r)
            if name != model and not name.startswith(model + " ") and not name.startswith(model + "-fp"):
                continue
            if not variants and "(" in name:
                continue
            batch = next((r[k] for k in _BATCH_KEYS if k in r), 1)
            if batch not in (1, "1", None):
                continue
            if r.get("deblur") == "never":  # a deblur model with its stage off is the plain tracker, not the model
                continue
            fps = next((r[k] for k in _FPS_KEYS if isinstance(r.get(k), (int, float))), None)
            if fps is not None and (best is None or fps > best[0]):
                best = (float(fps), r, path)
    return best


def _sequence_aucs(result: dict) -> dict[str, float] | None:
    """Per-sequence success AUCs of an accuracy record, by sequence name (None where the record has none)."""
    seqs = result.get("per_sequence") or []
    aucs = {s.get("name"): s.get("success_auc") for s in seqs if isinstance(s, dict)}
    if len(aucs) < 2 or len(aucs) != len(seqs) or any(
            not isinstance(v, (int, float)) or not math.isfinite(v) for v in aucs.values()):
        return None
    return aucs


def auc_interval(result: dict, other: dict | None = None) -> tuple[float, float, float] | None:
    """The 95 % bootstrap interval over sequences of an accuracy record's AUC, or with ``other`` of the paired
    difference of the two records' AUCs (:func:`edgetrack.metrics.bootstrap_interval`); None where a record has no
    per-sequence AUCs or the two were not measured on the same sequences."""
    from edgetrack.metrics import bootstrap_interval

    mine = _sequence_aucs(result)
    if mine is None:
        return None
    if other is None:
        return bootstrap_interval(list(mine.values()))
    theirs = _sequence_aucs(other)
    if theirs is None or set(theirs) != set(mine):
        return None
    names = sorted(mine)
    return bootstrap_interval([mine[n] for n in names], [theirs[n] for n in names])


def all_targets(prior: Prior, accuracy: dict, speed: dict | None, default_name: str | None,
                default_has_deblur: bool, base: Path | None) -> list[Target]:
    out = []
    acc_src = "section 1 (blurred split)"
    d = _row(accuracy, "blur", default_name) if default_name else None
    for ref, margin, text in (("nanotrack", 0.0, "beats NanoTrack"),
                              ("csrt", TARGET_CSRT_MARGIN, f"beats CSRT by ≥ {TARGET_CSRT_MARGIN:.2f} AUC")):
        r = _row(accuracy, "blur", ref)
        goal = f"Accuracy, blurred split: the default model ({default_name or '–'}) {text}"
        if d is None or r is None or d.get("success_auc") is None or r.get("success_auc") is None:
            out.append(Target(goal, "–", "not measured", acc_src))
            continue
        delta = d["success_auc"] - r["success_auc"]
        figure = f"AUC {d['success_auc']:.3f} vs {r['success_auc']:.3f} ({delta:+.3f}"
        paired = auc_interval(d, r)
        if paired is not None:  # sequence by sequence: how far this set's choice of sequences moves the difference
            figure += f"; 95 % interval {paired[1]:+.3f} to {paired[2]:+.3f}, paired by sequence"
        out.append(Target(goal, figure + ")",
                          "met" if (delta >= margin if margin > 0 else delta > 0) else "not met", acc_src))

    goal = f"HSM-SiamFC beats plain SiamFC by ≥ {PAPER_HSM_GAIN} AUC"
    figures, statuses, sources = [], [], []
    for run in prior.training:
        deltas = [None if run.auc("siamfc-hsm", "hsm", v) is None or run.auc("siamfc", "logistic", v) is None
                  else run.auc("siamfc-hsm", "hsm", v) - run.auc("siamfc", "logistic", v) for v in ("sharp", "blurred")]
        if any(x is None for x in deltas):
            continue
        figures.append(f"{run.folder.name}: {deltas[0]:+.3f} sharp, {deltas[1]:+.3f} blurred")
        statuses.append(all(x >= PAPER_HSM_GAIN for x in deltas))
        sources.append(f"`{_rel(run.folder, base)}/`")
    # One training seed per run: runs that disagree are reported as such, not folded into one verdict.
    status = ("not measured" if not statuses else "met" if all(statuses) else
              f"met in {sum(statuses)} of {len(statuses)} runs" if any(statuses) else "not met")
    out.append(Target(goal, "; ".join(figures) or "–", status, ", ".join(sources) or "section 4"))

    for model, goal_fps in TARGET_GPU_FPS.items():
        goal = f"GPU machine, per stream, batch 1, through edgetrack.Tracker: {model} ≥ {goal_fps:.0f} FPS"
        best = _gpu_best(prior, model)
        if best is None:
            out.append(Target(goal, "–", "not measured", "GPU speed files (section 2)"))
        else:
            fps, row, path = best
            prec = row.get("precision") or row.get("dtype") or ""
            figure = f"{fps:.0f} FPS {prec}".strip()
            status = "met" if fps >= goal_fps else "not met"
            sources = [f"`{_rel(path, base)}`"]
            variant = _row_name(row)[len(model):].strip(" ()")
            if variant:  # the fastest is a variant: say which, and where the model as the paper runs it stands
                figure += f" with {variant}"
                status += f" with {variant}"
                plain = _gpu_best(prior, model, variants=False)
                if plain is not None:
                    p_prec = plain[1].get("precision") or plain[1].get("dtype") or ""
                    figure += "; " + f"{plain[0]:.0f} FPS {p_prec}".strip() + " as the paper runs it"
                    sources.append(f"`{_rel(plain[2], base)}`")
            out.append(Target(goal, figure, status, ", ".join(sources)))

    variants = (speed or {}).get("variants") or {}
    blurred = next((rows for v, rows in variants.items() if "blur" in v), {})
    sharp = next((rows for v, rows in variants.items() if "sharp" in v), {})
    goal = f"This CPU: the default model ≥ {TARGET_CPU_FPS:.0f} FPS end to end on blurred video with deblurring"
    row = blurred.get(default_name) if default_name else None
    if row is None or row.get("fps") is None:
        out.append(Target(goal, "–", "not measured", "section 2"))
    elif not default_has_deblur:
        # The shipped model with a deblur stage (its gated, plain-named row) is what "with deblurring" would cost.
        with_deblur = next(((name, r) for name, r in blurred.items() if "(" not in name and r.get("fps")
                            and r.get("deblurred_share") is not None), None)
        figure = f"{row['fps']:.1f} FPS without deblurring: {default_name} has no deblur stage"
        status = "not measured"
        if with_deblur is not None:
            name, r = with_deblur
            figure += (f"; {name}, with its deblur stage: {r['fps']:.1f} FPS "
                       f"({_fmt(r.get('deblurred_share'), '.0%')} of frames deblurred)")
            status = "met with deblurring" if r["fps"] >= TARGET_CPU_FPS else "not met with deblurring"
        out.append(Target(goal, figure, status, "section 2"))
    else:
        out.append(Target(goal, f"{row['fps']:.1f} FPS ({_fmt(row.get('deblurred_share'), '.0%')} of frames deblurred)",
                          "met" if row["fps"] >= TARGET_CPU_FPS else "not met", "section 2"))
    goal = "This CPU: the default model at least as fast as NanoTrack on sharp video (same run)"
    row, ref = (sharp.get(default_name) if default_name else None), sharp.get("nanotrack")
    if row is None or ref is None or not row.get("fps") or not ref.get("fps"):
        out.append(Target(goal, "–", "not measured", "section 2"))
    else:
        out.append(Target(goal, f"{row['fps']:.1f} vs {ref['fps']:.1f} FPS (×{row['fps'] / ref['fps']:.2f})",
                          "met" if row["fps"] >= ref["fps"] else "not met", "section 2"))

    for precision, budget in AUC_BUDGET.items():
        goal = f"{precision} costs at most {budget} AUC"
        figures, statuses, sources = [], [], []
        for path, data in prior.precision:
            meta = data.get("meta") or {}
            model = meta.get("model", "?") + (" + deblur stage" if meta.get("deblur") else "")
            for r in data.get("rows") or []:
                if r.get("precision") != precision:
                    continue
                deltas = [r.get(f"delta_auc_{v}") for v in ("sharp", "blurred") if r.get(f"delta_auc_{v}") is not None]
                if not deltas:
                    continue
                figures.append(f"{model}: ΔAUC " + " / ".join(f"{x:+.4f}" for x in deltas))
                statuses.append(min(deltas) >= -budget)
                sources.append(f"`{_rel(path, base)}`")
        out.append(Target(goal, "; ".join(figures) or "–",
                          "not measured" if not statuses else ("met" if all(statuses) else "not met"),
                          ", ".join(sources) or "`benchmarks/precision_auc.py` (not run yet)"))
    return out


__all__ = ["Prior", "load_prior", "Claim", "Evidence", "all_claims", "Target", "all_targets", "gpu_rows",
           "PAPER_HSM_GAIN", "AUC_BUDGET", "TARGET_GPU_FPS", "TARGET_CPU_FPS", "TARGET_CSRT_MARGIN"]
