"""RESULTS.md from the report's measurements: plain Markdown tables, plots linked relative to the file."""
from __future__ import annotations

import json
import math
from pathlib import Path

from edgetrack.bench.cache import machine_label
from edgetrack.bench.claims import (
    AUC_BUDGET,
    PAPER_HSM_GAIN,
    TARGET_CPU_FPS,
    TARGET_CSRT_MARGIN,
    TARGET_GPU_FPS,
    auc_interval,
    gpu_rows,
)

SECTIONS = (
    "1. Accuracy on the held-out synthetic test split",
    "2. Speed",
    "3. Ascend 310 / 310B: the simulator's latency estimates",
    "4. The papers' claims on this data",
    "5. Targets (issue #7)",
    "6. Parity across the chain",
)


def num(v, spec: str = ".3f", none: str = "–") -> str:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return none
    return format(v, spec)


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A Markdown table; ``align``: one letter per column, ``l`` or ``r`` (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"] + ["| " + " | ".join(r) + " |"
                                                                                 for r in esc]


def rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it lies inside it (links in RESULTS.md), else absolute."""
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


class Sources:
    """Distinct (date, machine, command) of the records a section shows, as footnote letters."""

    def __init__(self):
        self._keys: list[tuple[str, str, str]] = []

    def tag(self, meta: dict) -> str:
        # By day: one run spans minutes, and its records should share one letter.
        key = (str(meta.get("date", "?"))[:10], machine_label(meta.get("machine") or {}),
               str(meta.get("command", "?")))
        if key not in self._keys:
            self._keys.append(key)
        return chr(ord("a") + self._keys.index(key)) if len(self._keys) <= 26 else str(self._keys.index(key) + 1)

    def lines(self) -> list[str]:
        out = []
        for i, (date, machine, command) in enumerate(self._keys):
            letter = chr(ord("a") + i) if len(self._keys) <= 26 else str(i + 1)
            out.append(f"- [{letter}] {date}, {machine}: `{command}`")
        return out


# ------------------------------------------------------------------------------------------------------ sections
def header(r) -> list[str]:
    cfg = r.config
    lines = [
        "# edgetrack: how good and how fast",
        "",
    ]
    if cfg.quick:
        lines += ["> **Quick smoke run** (`--quick`: a few short sequences): these numbers only show that the report "
                  "works. The report is `python benchmarks/report.py` without `--quick`.", ""]
    lines += [
        f"Generated {r.generated} by `{r.command}` (edgetrack {r.version}) on {machine_label(r.machine)}. "
        f"Regenerate with `python benchmarks/report.py` or `edgetrack bench`: measurements already in "
        f"`{rel(r.cache_dir, r.out)}/` (one JSON per tracker × data set variant, keyed by tracker, data set "
        "fingerprint and edgetrack version) are reused, `--force` measures again, and JSON measured elsewhere "
        "(the GPU machine) is merged by copying it anywhere into that folder.",
        "",
        f"**Test data**: {r.data_label}.",
        "",
        "Contents: " + " · ".join(f"[{s}](#{_anchor(s)})" for s in SECTIONS),
        "",
    ]
    return lines


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.strip().replace(" ", "-")


def accuracy_section(r) -> list[str]:
    lines = [f"## {SECTIONS[0]}", ""]
    if not r.accuracy:
        return lines + ["Not measured yet.", ""]
    sources = Sources()
    lines += [
        "Every tracker runs once over every sequence (`edgetrack.evaluation.evaluate`, the got10k toolkit's "
        "conventions): **AUC** is OTB's success AUC, **P@20** the share of frames with centre error ≤ 20 px; the "
        "Deblur-SiamRPN paper's protocol is **P@15** (centre error < 15 px) and **S@0.6** (IoU > 0.6). **FPS** "
        "counts `update` calls only (no decoding), one tracker at a time, so it depends on the machine's load then "
        "(section 2 has the side-by-side speed run). **AUC 95 % interval**: the bootstrap interval over the "
        "sequences (10 000 resamples, `edgetrack.metrics.bootstrap_interval`): how far another choice of as many "
        "sequences could move the AUC; two trackers compare more tightly than their intervals suggest, since both "
        "ran on the same sequences (section 5 gives the paired intervals of the accuracy targets). Bundles run "
        "through `edgetrack.Tracker` (ONNX Runtime, CPU); "
        "`(deblur never)` is the same bundle with its deblur stage off.",
        "",
    ]
    for variant, rows in r.accuracy.items():
        lines += [f"### {variant}", ""]
        body = []
        for row in sorted(rows, key=lambda x: -(x["result"].get("success_auc") or -1)):
            res, meta = row["result"], row["meta"]
            name = res.get("tracker", "?") + (" (merged)" if row.get("merged") else "")
            if row.get("default"):
                name += " (default)"
            extra = ""
            stage = res.get("deblur") or {}
            if stage.get("mode") == "never":
                extra = "deblur stage off"
            elif stage.get("deblurred_share") is not None:
                extra = f"{stage['deblurred_share']:.0%} of frames deblurred"
            if res.get("failed_frames"):
                extra = (extra + "; " if extra else "") + f"{res['failed_frames']} failed frames"
            interval = auc_interval(res)
            body.append([name, num(res.get("success_auc")),
                         f"{interval[1]:.3f}–{interval[2]:.3f}" if interval else "–", num(res.get("precision_20")),
                         num(res.get("precision_15")), num(res.get("success_60")), num(res.get("fps"), ".1f"),
                         f"{res.get('sequences', '?')} / {res.get('frames', '?')}", extra or "",
                         f"[{sources.tag(meta)}]"])
        lines += table(["tracker", "AUC", "AUC 95 % interval", "P@20", "P@15", "S@0.6", "FPS", "sequences / frames",
                        "note", "measured"], body, "lrrrrrrrll")
        plot = r.plots.get(variant)
        if plot:
            lines += ["", f"![success and precision plots, {variant}]({rel(plot, r.out)})"]
        lines.append("")
    lines += ["Measured:", *sources.lines(), ""]
    if r.unavailable:
        lines += ["Not in the tables (cannot run here):", ""]
        lines += [f"- **{name}**: {why.splitlines()[0]}" for name, why in r.unavailable.items()]
        lines.append("")
    if r.not_computed:
        lines += ["Not measured in this run (`--sections` left accuracy out and nothing was cached): "
                  + ", ".join(r.not_computed), ""]
    lines += ["(merged): a record of a tracker this run did not include, measured on the same data set and "
              "edgetrack version (e.g. on the GPU machine) and copied into the cache folder.", ""]
    return lines


def speed_section(r) -> list[str]:
    lines = [f"## {SECTIONS[1]}", "", "### On this CPU, side by side in one run", ""]
    speed = r.speed
    if not speed:
        lines += ["Not measured yet.", ""]
    else:
        res, meta = speed["result"], speed["meta"]
        lines += [
            f"Measured {meta.get('date')} on {machine_label(meta.get('machine') or {})} by `{meta.get('command')}`; "
            f"load average {res.get('load_before')} before, {res.get('load_after')} after (this machine is shared: "
            "the ratios, measured in the same run, are the robust figures). Every tracker tracks the same decoded "
            f"frames ({res.get('frames_per_sequence')} frames of each of {res.get('sequences_per_variant')} "
            "sequences per variant), sequence by sequence in rotating order, after an untimed warm-up. "
            "**ms/frame**: mean of the `update` calls (median, 90th percentile); **gate** and **deblur**: the "
            "blur gate's and the deblurrer's share per frame as `Tracker.stats` reports them, **tracking**: the "
            "rest (crop, networks, decoding the box); **init**: `init` (template branch, and its deblurring). "
            "`(deblur always)` deblurs every frame, `(deblur never)` none; the plain name is the default, gated.",
            "",
        ]
        for variant, rows in res.get("variants", {}).items():
            lines += [f"#### {variant}", ""]
            body = []
            for name, t in sorted(rows.items(), key=lambda kv: -(kv[1].get("fps") or 0)):
                ratio = t.get("ratio") or {}
                body.append([name + (" (default)" if name == r.default_name else ""), num(t.get("fps"), ".1f"),
                             f"{num(t.get('ms_mean'), '.1f')} ({num(t.get('ms_median'), '.1f')} / "
                             f"{num(t.get('ms_p90'), '.1f')})",
                             num(t.get("rest_ms"), ".1f"), num(t.get("gate_ms"), ".2f"), num(t.get("deblur_ms"), ".1f"),
                             num(t.get("deblurred_share"), ".0%"), num(t.get("init_ms_mean"), ".1f"),
                             num(ratio.get("nanotrack"), ".2f"), num(ratio.get("csrt"), ".2f"),
                             str(t.get("failures") or "")])
            lines += table(["tracker", "FPS", "ms/frame (median / p90)", "tracking ms", "gate ms", "deblur ms",
                            "deblurred", "init ms", "× NanoTrack", "× CSRT", "failed"], body, "lrrrrrrrrrr")
            lines.append("")
        if r.speed_plot:
            lines += [f"![milliseconds per frame by stage]({rel(r.speed_plot, r.out)})", ""]
    lines += ["### On the GPU machine", ""]
    if not r.prior.gpu:
        lines += ["Not measured yet (per-stream FPS at batch 1 and aggregate FPS of many streams, fp32 and fp16, "
                  "share of the GPU's peak: `benchmarks/gpu_speed.py` on the GPU machine; pass its JSON with "
                  "`--gpu-results PATH` or copy it to `results/` as `gpu*.json`).", ""]
    for path, data in r.prior.gpu:
        lines += gpu_table(path, data, r.out)
    return lines


def gpu_table(path: Path, data, out: Path) -> list[str]:
    meta = data.get("meta") or data.get("environment") or {} if isinstance(data, dict) else {}
    lines = [f"From `{rel(path, out)}`" + (": " + ", ".join(f"{k} {v}" for k, v in meta.items()
                                                          if isinstance(v, (str, int, float)))[:600]
                                          if meta else "") + ".", ""]
    rows = gpu_rows(data)
    if not rows:
        return lines + ["```json", json.dumps(data, indent=1, default=str)[:3000], "```", ""]
    cols: list[str] = []
    for row in rows:
        for k, v in row.items():
            if k not in cols and (v is None or isinstance(v, (str, int, float, bool))):
                cols.append(k)
    cols = cols[:12]
    body = [[num(row.get(c), ".4g") if isinstance(row.get(c), float) else str(row.get(c, "–")) for c in cols]
            for row in rows]
    return lines + table(cols, body, "l" * len(cols)) + [""]


def simulator_section(r) -> list[str]:
    lines = [f"## {SECTIONS[2]}", ""]
    if not r.simulator:
        return lines + ["Not measured yet (no bundle in this run).", ""]
    sources = Sources()
    first = r.simulator[0]["result"]
    lines += [
        "**Estimates, not measurements**: `edgetrack.backends.simulator` counts each graph's work from its "
        "shapes (cube MACs with channels padded to the cube's block, everything else on the vector unit) and "
        f"divides by the chip's published fp16 peak at an assumed {num(first.get('assumed_utilisation'), '.0%')} "
        "utilisation; launch costs, memory bandwidth, AIPP and host↔device copies are not modelled. "
        "Per frame = the graphs run every frame (search + head); with deblurring adds the deblur graph on frames "
        "the gate opens on. **loads** says whether `Tracker(bundle, backend=\"simulator\", device=chip)` accepts "
        "the bundle (operator audit, device memory).",
        "",
    ]
    body = []
    for row in r.simulator:
        res = row["result"]
        body.append([row["name"], res.get("chip", "?"), res.get("precision", "?"),
                     num(res.get("macs_per_frame", 0) / 1e6, ".0f") if res.get("macs_per_frame") else "–",
                     num(res.get("init_ms"), ".2f"), num(res.get("per_frame_ms"), ".2f"),
                     num(res.get("fps"), ".0f"), num(res.get("per_frame_deblur_ms"), ".2f"),
                     num(res.get("fps_deblur"), ".0f"),
                     "yes" if not res.get("load_error") else res["load_error"].splitlines()[0][:120],
                     f"[{sources.tag(row['meta'])}]"])
    lines += table(["model", "chip", "precision", "MMAC/frame", "init ms", "ms/frame", "est. FPS",
                    "ms/frame deblurring", "est. FPS deblurring", "loads", "computed"], body, "lllrrrrrrll")
    lines += ["", f"Assumptions (from the simulator): {first.get('assumptions', '–')}.", "", "Computed:",
              *sources.lines(), ""]
    return lines


def claims_section(r) -> list[str]:
    lines = [f"## {SECTIONS[3]}", "",
             "Each claim with the figures that bear on it, from this report's runs and from the result files of "
             f"earlier runs in `{rel(r.results_dir, r.out) if r.results_dir else 'results/'}` (read by content: "
             "training runs' `evaluation` rows, `edgetrack eval` summaries, deblurring logs). Our data is "
             "synthetic and our training runs are short (minutes on one GPU, one seed each): a figure here weighs "
             "less than the paper's OTB-2015/GoPro runs, and says so.", ""]
    for i, claim in enumerate(r.claims, 1):
        lines += [f"### 4.{i} {claim.title} — **{claim.verdict}**", "", f"Paper: {claim.paper}.", ""]
        lines += table(["figure", "verdict", "source"], [[e.figure, e.verdict, e.source] for e in claim.evidence],
                       "lll")
        if claim.table:
            lines += ["", *table(claim.table[0], claim.table[1:], "lll" + "r" * (len(claim.table[0]) - 3))]
        lines.append("")
    return lines


def targets_section(r) -> list[str]:
    lines = [f"## {SECTIONS[4]}", ""]
    body = [[t.target, t.measured, f"**{t.status}**" if t.status == "met" else t.status, t.source]
            for t in r.targets]
    lines += table(["target", "measured", "status", "source"], body, "llll")
    lines += ["", f"Targets as issue #7 states them: accuracy on the blurred split (default model vs NanoTrack, and vs "
              f"CSRT by {TARGET_CSRT_MARGIN:.2f} AUC), HSM-SiamFC over plain SiamFC by the paper's "
              f"{PAPER_HSM_GAIN} AUC, GPU per-stream FPS "
              + ", ".join(f"{m} ≥ {v:.0f}" for m, v in TARGET_GPU_FPS.items())
              + f" (ten times the papers' 71 and 42 FPS), this CPU ≥ {TARGET_CPU_FPS:.0f} FPS with deblurring and "
              "not slower than NanoTrack on sharp video, "
              + " and ".join(f"{p} within {b} AUC" for p, b in AUC_BUDGET.items()) + ".", ""]
    return lines


def parity_section(r) -> list[str]:
    """PyTorch vs MindSpore vs ONNX through one Tracker (``benchmarks/chain_parity.py``), and fp32 vs fp16 vs int8
    per converted model (``benchmarks/precision_auc.py``), from the results folder."""
    lines = [f"## {SECTIONS[5]}", ""]
    chain = r.prior.chain
    if not chain:
        lines += ["PyTorch vs MindSpore vs ONNX: not measured yet (`benchmarks/chain_parity.py`).", ""]
    for path, data in chain:
        meta = data.get("meta") or {}
        limits = ", ".join(f"{k.replace('_', ' ')} {meta[k]}" for k in ("sequences", "max_frames") if meta.get(k))
        lines += [f"**{meta.get('model', '?')}: the frameworks and the exports** (`{rel(path, r.out)}`; test set "
                  f"`{meta.get('test_data', '?')}`{' — ' + limits + ' of each variant' if limits else ''}; "
                  f"{meta.get('date', '?')}). Every row tracks through the same `edgetrack.Tracker` code; only what "
                  "computes the graphs differs. Output error: the whole chain on "
                  f"{meta.get('crops', '?')} real crops against the PyTorch twin.", ""]
        body = [[row.get("what", row.get("row", "?")), num((row.get("error") or {}).get("max_rel"), ".1e"),
                 num(row.get("auc_sharp")), num(row.get("auc_blurred")),
                 f"{num(row.get('delta_sharp'), '+.4f')} / {num(row.get('delta_blurred'), '+.4f')}"]
                for row in data.get("rows") or [] if isinstance(row, dict)]
        lines += table(["chain step", "output error (max rel)", "AUC sharp", "AUC blurred",
                        "ΔAUC vs PyTorch (sharp / blurred)"], body) + [""]
    if r.prior.precision:
        lines += ["**fp32 vs fp16 vs int8** (`benchmarks/precision_auc.py`: each model converted at every precision "
                  "from the PyTorch export and tracked on the test set; output error: the whole chain against the "
                  "fp32 ONNX chain, fp32 against PyTorch):", ""]
        body = []
        for path, data in r.prior.precision:
            meta = data.get("meta") or {}
            model = meta.get("model", "?") + (" + deblur stage" if meta.get("deblur") else "")
            for row in data.get("rows") or []:
                if not isinstance(row, dict):
                    continue
                body.append([model, str(row.get("precision", "?")), num(row.get("max_rel_err"), ".1e"),
                             num(row.get("auc_sharp")), num(row.get("auc_blurred")),
                             f"{num(row.get('delta_auc_sharp'), '+.4f')} / {num(row.get('delta_auc_blurred'), '+.4f')}",
                             f"`{rel(path, r.out)}`"])
        lines += table(["model", "precision", "output error (max rel)", "AUC sharp", "AUC blurred",
                        "ΔAUC vs fp32 (sharp / blurred)", "source"], body, "llrrrrl") + [""]
    return lines


def render(r) -> str:
    lines = header(r)
    for part in (accuracy_section, speed_section, simulator_section, claims_section, targets_section,
                 parity_section):
        lines += part(r)
    if r.problems:
        lines += ["## What could not be read or drawn", "", *[f"- {p}" for p in r.problems], ""]
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["render", "SECTIONS", "table", "num"]
