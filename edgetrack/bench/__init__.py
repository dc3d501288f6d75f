"""The benchmark report: one call regenerates ``RESULTS.md`` and its plots (``edgetrack bench``,
``python benchmarks/report.py``).

What it does, in order (every expensive step is cached, see :mod:`edgetrack.bench.cache`):

1. **Data**: renders the held-out synthetic test split (``edgetrack data synth --split test``; seed 12 by default:
   training used seeds 11 and 21) into ``--data-dir``, or opens ``--data SPEC``; both variants, sharp and blurred.
2. **Accuracy** (:func:`edgetrack.bench.measure.accuracy_run`): every shipped model (and ``--bundle NAME=PATH``;
   a bundle with a deblur stage twice, deblur gated and off) and the baselines OpenCV CSRT, KCF, MIL and NanoTrack,
   each on each variant: AUC, P@20, P@15, S@0.6, FPS; success and precision plots per variant.
3. **Speed** on this machine, side by side in one run (:func:`edgetrack.bench.measure.speed_run`), with the
   Tracker's stage times and ratios to NanoTrack and CSRT; GPU figures come from ``--gpu-results`` files.
4. **Simulator**: each bundle's latency on Ascend 310 / 310B as :mod:`edgetrack.backends.simulator` estimates it.
5. **Claims and targets** (:mod:`edgetrack.bench.claims`) from these measurements and the earlier runs' result
   files in the results folder.

Output (``--out``, default: ``benchmarks/`` of a source checkout)::

    OUT/RESULTS.md
    OUT/results/report/accuracy-<variant>.png, speed.png
    OUT/results/report/cache/{accuracy,speed,simulator}/<name>-<key hash>.json

Merging measurements made elsewhere: a model this machine cannot track in reasonable time (``siamfc-hsm``, about
50 GMAC a frame) is measured where it can be, with the same test split, and its records copied in::

    python benchmarks/report.py --models siamfc-hsm --baselines none --sections accuracy --out /tmp/o   # there
    cp /tmp/o/results/report/cache/accuracy/*.json benchmarks/results/report/cache/accuracy/          # here

The next run here shows them, marked "(merged)", with the machine and command they came from.

Why a package inside ``edgetrack`` and not a script: ``edgetrack bench`` and ``benchmarks/report.py`` run the same
code, and a user can benchmark their own bundles (``--bundle``) against the baselines from an installed package.
Nothing here is imported by ``import edgetrack``; matplotlib is imported only when a plot is drawn.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgetrack.errors import EdgetrackError, InvalidArgumentError, MissingDependencyError, UnknownChoiceError

MEASURED_SECTIONS = ("accuracy", "speed", "simulator")
DEFAULT_BASELINES = ("csrt", "kcf", "mil", "nanotrack")
DEFAULT_CHIPS = ("ascend310", "ascend310b")
# The full report and the --quick smoke run: (sequences, frames, speed sequences, speed frames).
FULL = (30, 120, 4, 60)
QUICK = (3, 20, 2, 20)
TEST_SEED = 12  # never used in training (seeds 11 and 21 were); see edgetrack/assets/models/README.md
SIZE = (480, 360)
_CHECKOUT = Path(__file__).resolve().parents[2]


def default_out(quick: bool) -> Path:
    """``benchmarks/`` of the source checkout this edgetrack runs from, else ``runs/bench``; quick runs never
    overwrite the real report: ``runs/bench-quick``."""
    if quick:
        return Path("runs/bench-quick")
    bench = _CHECKOUT / "benchmarks"
    return bench if (bench / "results").is_dir() else Path("runs/bench")


def default_results(out: Path) -> Path:
    """Earlier runs' result files: ``benchmarks/results`` of the source checkout (also for a quick run written
    elsewhere), else ``OUT/results``."""
    checkout = _CHECKOUT / "benchmarks" / "results"
    return checkout if checkout.is_dir() else Path(out) / "results"


@dataclass(frozen=True)
class ReportConfig:
    """What :func:`run_report` measures and where it writes. ``None`` fields take the full report's defaults, or
    the quick ones with ``quick=True`` (see :data:`FULL`, :data:`QUICK`)."""

    out: Path | None = None
    results: Path | None = None  # earlier runs' result files (default: default_results(out))
    data: str | None = None  # a data set spec; None: render the synthetic test split
    data_dir: Path = Path("runs/bench-data")
    seed: int = TEST_SEED
    sequences: int | None = None
    frames: int | None = None
    max_frames: int | None = None
    models: tuple[str, ...] | None = None  # shipped models; None: every one
    bundles: tuple[tuple[str, str], ...] = ()
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    speed_sequences: int | None = None
    speed_frames: int | None = None
    chips: tuple[str, ...] = DEFAULT_CHIPS
    gpu_results: tuple[Path, ...] = ()
    precision_results: tuple[Path, ...] = ()
    sections: tuple[str, ...] = MEASURED_SECTIONS
    quick: bool = False
    force: bool = False
    workers: int = 1
    command: str | None = None

    def __post_init__(self):
        defaults = QUICK if self.quick else FULL
        for name, value in zip(("sequences", "frames", "speed_sequences", "speed_frames"), defaults):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name, low in (("sequences", 1), ("frames", 2), ("speed_sequences", 1), ("speed_frames", 2),
                          ("workers", 1), ("seed", 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise InvalidArgumentError(f"{name} must be an integer ≥ {low}, got {v!r}")
        if self.max_frames is not None and (not isinstance(self.max_frames, int) or self.max_frames < 2):
            raise InvalidArgumentError(f"max_frames must be an integer ≥ 2, got {self.max_frames!r}",
                                       fix="frame 1 only initialises the tracker")
        for s in self.sections:
            if s not in MEASURED_SECTIONS:
                raise UnknownChoiceError("section", s, MEASURED_SECTIONS,
                                         fix="claims and targets are always written; they measure nothing")
        if self.out is None:
            object.__setattr__(self, "out", default_out(self.quick))
        object.__setattr__(self, "out", Path(self.out))
        if self.results is None:
            object.__setattr__(self, "results", default_results(self.out))

    @property
    def report_dir(self) -> Path:
        return self.out / "results" / "report"

    @property
    def cache_dir(self) -> Path:
        return self.report_dir / "cache"


@dataclass
class Outcome:
    """What :func:`run_report` did: the file written, and which measurements were computed or reused."""

    results_md: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Report:
    """Everything :mod:`edgetrack.bench.render` needs."""

    config: ReportConfig
    out: Path
    cache_dir: Path
    results_dir: Path | None
    generated: str
    command: str
    version: str
    machine: dict
    data_label: str
    accuracy: dict
    plots: dict
    unavailable: dict
    not_computed: list
    speed: dict | None
    speed_plot: Path | None
    simulator: list
    prior: object
    claims: list
    targets: list
    problems: list
    default_name: str | None = None


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------ data
def _synth_config(cfg: ReportConfig):
    from edgetrack.data.synth import SynthConfig

    return SynthConfig(sequences=cfg.sequences, frames=cfg.frames, size=SIZE, seed=cfg.seed, split="test")


def prepare_data(cfg: ReportConfig) -> tuple[str, list]:
    """The data set spec and its variants; renders the synthetic test split unless it is already there."""
    from edgetrack.data import open_dataset
    from edgetrack.data.synth import generate, read_record
    from edgetrack.evaluation import limit

    if cfg.data:
        spec = cfg.data
    else:
        synth = _synth_config(cfg)
        root = cfg.data_dir / f"synth-test-seed{cfg.seed}-{cfg.sequences}x{cfg.frames}"
        want = json.loads(json.dumps(dataclasses.asdict(synth)))
        have = None
        if (root / "synth.json").is_file():
            try:
                have = read_record(root).get("config")
            except Exception:  # noqa: BLE001 - an unreadable record means: render again
                have = None
        if have != want:
            _log(f"rendering the test split into {root} ({cfg.sequences} sequences × {cfg.frames} frames, seed "
                 f"{cfg.seed}; `edgetrack data synth --split test`)")
            generate(synth, root, workers=cfg.workers, force=True)
        spec = f"synthetic:{root}"
    datasets = open_dataset(spec)
    if cfg.max_frames:
        datasets = [limit(d, max_frames=cfg.max_frames) for d in datasets]
    return spec, datasets


def dataset_fingerprint(spec: str, dataset, max_frames: int | None) -> dict:
    """What the data set *is*, independent of where it lies: a synthetic set by its generator settings and photos
    (the generator is deterministic, so the GPU machine's copy has the same fingerprint), any other set by a hash
    of its sequence names and ground truth."""
    import hashlib

    import numpy as np

    from edgetrack.data import parse_spec

    kind, root, _ = parse_spec(spec)
    out: dict = {"variant": dataset.name, "kind": kind, "sequences": len(dataset),
                 "frames": sum(len(s) for s in dataset.sequences), "max_frames": max_frames}
    if kind == "synthetic":
        from edgetrack.data.synth import read_record

        record = read_record(root)
        files = (record.get("photo_pool") or {}).get("files") or {}
        out.update(format=record.get("format"), config=record.get("config"),
                   photos={k: v.get("sha256_16") for k, v in sorted(files.items()) if isinstance(v, dict)})
        if record.get("libraries"):  # other numpy/OpenCV, other scenes (edgetrack.data.synth, Determinism)
            out["libraries"] = record["libraries"]
    else:
        h = hashlib.sha256()
        for s in dataset.sequences:
            h.update(f"{s.name}:{len(s)};".encode())
            h.update(np.nan_to_num(np.round(np.asarray(s.boxes, float), 2), nan=-1).tobytes())
        out["content"] = h.hexdigest()[:16]
    return out


def _data_label(spec: str, datasets: list, cfg: ReportConfig, fingerprints: dict) -> str:
    from edgetrack.bench.cache import key_hash

    ids = ", ".join(f"{d.name} `{key_hash(fingerprints[d.name])[:8]}`" for d in datasets)
    n = len(datasets[0]) if datasets else 0
    frames = max((len(s) for d in datasets for s in d.sequences), default=0)
    if cfg.data:
        what = f"`{spec}`, {n} sequences of up to {frames} frames"
    else:
        what = (f"synthetic test split (`edgetrack data synth --out DIR --sequences {cfg.sequences} --frames "
                f"{cfg.frames} --seed {cfg.seed} --split test`): {n} sequences × {cfg.frames} frames, "
                f"{SIZE[0]}×{SIZE[1]}, sharp and blurred variants with the same ground truth; test photos only, "
                "and seeds 11 and 21 trained the models")
    if cfg.max_frames:
        what += f", first {cfg.max_frames} frames of each"
    return f"{what}. Fingerprints: {ids}"


# ------------------------------------------------------------------------------------------------------ the run
class _Run:
    """One report run: the cache, where and by what command, and what was computed or reused."""

    def __init__(self, cfg: ReportConfig):
        from edgetrack import __version__
        from edgetrack.bench.cache import Cache, command_line, machine_info

        self.cfg = cfg
        self.version = __version__
        self.command = cfg.command or command_line()
        self.machine = machine_info()
        self.cache = Cache(cfg.cache_dir)
        self.outcome = Outcome(cfg.out / "RESULTS.md")
        self.problems: list[str] = []

    def cached(self, section: str, key: dict, label: str, measure, name: str) -> dict | None:
        """The record of ``key``: from the cache, or measured now by ``measure()`` when ``section`` is to be
        measured (always with ``--force``); None when it is neither cached nor to be measured."""
        from edgetrack.bench.cache import now

        key = {**key, "kind": section, "edgetrack_version": self.version}
        wanted = section in self.cfg.sections
        record = None if self.cfg.force and wanted else self.cache.get(key)
        if record is not None:
            self.outcome.reused.append(label)
            return record
        if not wanted:
            self.outcome.skipped.append(label)
            return None
        _log(label)
        start = time.perf_counter()
        result = measure()
        meta = {"date": now(), "machine": self.machine, "command": self.command, "edgetrack_version": self.version,
                "seconds": round(time.perf_counter() - start, 2)}
        self.outcome.computed.append(label)
        return self.cache.put(key, result, meta, name)

    # -- 1. accuracy, per tracker × variant, and records measured elsewhere
    def accuracy(self, entries, datasets, fingerprints) -> tuple[dict, list[str]]:
        from edgetrack.bench import measure

        accuracy: dict[str, list[dict]] = {}
        missing = []
        for d in datasets:
            for e in entries:
                key = {"tracker": e.spec, "identity": e.identity, "dataset": fingerprints[d.name]}
                record = self.cached("accuracy", key, f"accuracy {e.name} on {d.name}",
                                     lambda e=e, d=d: measure.accuracy_run(e, d), f"{e.name}-{d.name}")
                if record is None:
                    missing.append(f"{e.name} on {d.name}")
                    continue
                accuracy.setdefault(d.name, []).append({"result": record["result"], "meta": record["meta"],
                                                        "default": e.default, "merged": False})
        for variant, record in self.merged(entries, fingerprints):
            accuracy.setdefault(variant, []).append({"result": record["result"], "meta": record["meta"],
                                                     "default": False, "merged": True})
            self.outcome.reused.append(f"accuracy {record['result'].get('tracker')} on {variant} (merged)")
        return {d.name: accuracy[d.name] for d in datasets if d.name in accuracy}, missing

    def merged(self, entries, fingerprints) -> list[tuple[str, dict]]:
        """Cached accuracy records of trackers this run does not include (measured elsewhere, copied in), on the
        same data set and edgetrack version; the newest per tracker and variant. A record of an included tracker
        with another identity (an older bundle of that name) is superseded, not shown."""
        from edgetrack.bench.cache import key_hash

        specs = {e.spec for e in entries}
        wanted = {key_hash(fp): variant for variant, fp in fingerprints.items()}
        newest: dict[tuple[str, str], dict] = {}
        for record in self.cache.records("accuracy"):
            k = record["key"]
            variant = wanted.get(key_hash(k.get("dataset") or {}))
            if variant is None or k.get("edgetrack_version") != self.version or k.get("tracker") in specs:
                continue
            slot = (variant, str(k.get("tracker")))
            if slot not in newest or str(record["meta"].get("date")) > str(newest[slot]["meta"].get("date")):
                newest[slot] = record
        return [(variant, record) for (variant, _), record in sorted(newest.items())]

    def accuracy_plots(self, accuracy: dict) -> dict[str, Path]:
        plots: dict[str, Path] = {}
        try:
            from edgetrack.plots import plot_curves

            for variant, rows in accuracy.items():
                curves = {row["result"]["tracker"] + (" (merged)" if row["merged"] else ""):
                          {**row["result"]["otb_curves"], **row["result"]}
                          for row in rows if row["result"].get("otb_curves")}
                n = len(rows[0]["result"].get("per_sequence") or [])
                if curves:
                    plots[variant] = plot_curves(curves, self.cfg.report_dir / f"accuracy-{variant}.png",
                                                 title=f"{variant} ({n} sequences)")
        except MissingDependencyError as exc:
            self.problems.append(f"no accuracy plots: {exc}")
        return plots

    # -- 2. speed: every tracker in one run, so their figures stand side by side
    def speed(self, entries, datasets, fingerprints) -> tuple[dict | None, Path | None]:
        from edgetrack.bench import measure
        from edgetrack.bench.cache import key_hash, machine_id

        if not entries:
            return None, None
        cfg = self.cfg
        # Any change of tracker (or its bundle) measures the whole group again: a ratio needs one run.
        key = {"machine": machine_id(self.machine),
               "trackers": sorted(f"{e.spec}@{key_hash(e.identity)}" for e in entries),
               "datasets": sorted(key_hash(fp) for fp in fingerprints.values()),
               "sequences": cfg.speed_sequences, "frames": cfg.speed_frames}

        def run():
            result = measure.speed_run(entries, {d.name: d for d in datasets}, sequences=cfg.speed_sequences,
                                       frames=cfg.speed_frames)
            measure.add_ratios(result)
            result.update(frames_per_sequence=cfg.speed_frames, sequences_per_variant=cfg.speed_sequences)
            return result

        label = (f"speed: {len(entries)} tracker(s) side by side, up to {cfg.speed_sequences} sequences × "
                 f"{cfg.speed_frames} frames per variant")
        record = self.cached("speed", key, label, run, "speed")
        plot = None
        if record is not None:
            try:
                from edgetrack.plots import plot_speed

                plot = plot_speed(record["result"]["variants"], cfg.report_dir / "speed.png",
                                  title="milliseconds per frame on this CPU, by stage")
            except (MissingDependencyError, InvalidArgumentError) as exc:
                self.problems.append(f"no speed plot: {exc}")
        return record, plot

    # -- 3. the simulator's estimates, per bundle × chip
    def simulator(self, entries) -> list[dict]:
        from edgetrack.bench import measure

        out = []
        for e in (e for e in entries if e.kind == "edgetrack" and e.deblur in (None, "auto")):
            for chip in self.cfg.chips:
                key = {"tracker": e.spec.split("#")[0], "identity": e.identity, "chip": chip, "precision": "fp16"}
                label = f"simulator {e.name} on {chip}"
                try:
                    record = self.cached("simulator", key, label, lambda e=e, chip=chip: measure.simulator_run(
                        e, chip), f"{e.name}-{chip}")
                except EdgetrackError as exc:  # onnx missing, a graph the estimator cannot read: said in the report
                    self.problems.append(f"{label}: {exc}")
                    continue
                if record is not None:
                    out.append({"name": e.name, "result": record["result"], "meta": record["meta"]})
        return out


def run_report(cfg: ReportConfig) -> Outcome:
    """Measure what is missing from the cache, then write ``cfg.out/RESULTS.md`` and its plots."""
    from edgetrack.ascend.socs import get_soc
    from edgetrack.bench import claims as claims_mod
    from edgetrack.bench import measure, render
    from edgetrack.bench.cache import now

    for chip in cfg.chips:
        get_soc(chip)  # an unknown chip fails here, naming the valid ones, before anything is measured
    run = _Run(cfg)
    spec, datasets = prepare_data(cfg)
    fingerprints = {d.name: dataset_fingerprint(spec, d, cfg.max_frames) for d in datasets}
    entries, unavailable = measure.select_entries(cfg.models, cfg.bundles, cfg.baselines,
                                                  deblur_modes=("auto", "never", "always"))
    for name, why in unavailable.items():
        _log(f"not in this report: {name}: {why.splitlines()[0]}")

    # Deblurring every frame is a speed question (what the gate saves); accuracy compares gated with off.
    accuracy, not_computed = run.accuracy([e for e in entries if e.deblur != "always"], datasets, fingerprints)
    plots = run.accuracy_plots(accuracy)
    speed, speed_plot = run.speed(entries, datasets, fingerprints)
    simulator = run.simulator(entries)

    prior = claims_mod.load_prior(cfg.results, tuple(cfg.gpu_results), tuple(cfg.precision_results),
                                  skip=cfg.report_dir)
    speed_result = speed["result"] if speed else None
    # Sources are named relative to the repository when the report is the checkout's, else to where it ran.
    base = cfg.out.resolve().parent if cfg.out.resolve().name == "benchmarks" else Path.cwd()
    default = next((e for e in entries if e.default), None)
    claims = claims_mod.all_claims(prior, accuracy, speed_result, base)
    targets = claims_mod.all_targets(prior, accuracy, speed_result, default.name if default else None,
                                     bool(default and default.has_deblur_stage), base)

    report = _Report(cfg, cfg.out, cfg.cache_dir, cfg.results, now(), run.command, run.version, run.machine,
                     _data_label(spec, datasets, cfg, fingerprints), accuracy, plots, unavailable, not_computed,
                     speed, speed_plot, simulator, prior, claims, targets,
                     run.cache.skipped + run.problems + prior.problems, default.name if default else None)
    cfg.out.mkdir(parents=True, exist_ok=True)
    run.outcome.results_md.write_text(render.render(report), encoding="utf-8")
    return run.outcome


# ------------------------------------------------------------------------------------------------ command line
def _bundle_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name.strip(), path.strip()


def _list_arg(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip() and s.strip().lower() != "none")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``edgetrack bench`` and ``benchmarks/report.py`` (one definition for both)."""
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder of RESULTS.md (default: benchmarks/ of this checkout, else runs/bench; with --quick "
                        "runs/bench-quick); plots and the cache go to DIR/results/report/")
    g.add_argument("--results", type=Path, default=None, metavar="DIR",
                   help="earlier runs' result files, read for the papers' claims (default: benchmarks/results of "
                        "this checkout, else OUT/results)")
    g.add_argument("--force", action="store_true", help="measure again what is cached")
    g.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK[0]} sequences × {QUICK[1]} frames, speed on {QUICK[2]} × {QUICK[3]}")
    g.add_argument("--sections", type=_list_arg, default=MEASURED_SECTIONS, metavar="LIST",
                   help="what to measure: accuracy,speed,simulator (default all); the others show cached "
                        "results only")
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="SPEC",
                   help="evaluate on this data set (e.g. synthetic:DIR) instead of rendering the test split")
    g.add_argument("--data-dir", type=Path, default=Path("runs/bench-data"), metavar="DIR",
                   help="where the synthetic test split is rendered (default runs/bench-data)")
    g.add_argument("--seed", type=int, default=TEST_SEED, help=f"test split seed (default {TEST_SEED})")
    g.add_argument("--sequences", type=int, default=None, metavar="N", help=f"test sequences (default {FULL[0]})")
    g.add_argument("--frames", type=int, default=None, metavar="F", help=f"frames per sequence (default {FULL[1]})")
    g.add_argument("--max-frames", type=int, default=None, metavar="N", help="use the first N frames of each")
    g.add_argument("--workers", type=int, default=1, metavar="K", help="processes rendering the data (default 1)")
    g = p.add_argument_group("trackers")
    g.add_argument("--models", type=_list_arg, default=None, metavar="LIST",
                   help="shipped models to include, comma-separated, or 'none' (default: every shipped model)")
    g.add_argument("--bundle", type=_bundle_arg, action="append", default=[], metavar="NAME=PATH",
                   help="also a bundle folder, shown as NAME (repeatable)")
    g.add_argument("--baselines", type=_list_arg, default=DEFAULT_BASELINES, metavar="LIST",
                   help="baselines, comma-separated, or 'none' (default csrt,kcf,mil,nanotrack)")
    g = p.add_argument_group("speed")
    g.add_argument("--speed-sequences", type=int, default=None, metavar="N",
                   help=f"sequences per variant in the speed run (default {FULL[2]})")
    g.add_argument("--speed-frames", type=int, default=None, metavar="F",
                   help=f"frames per sequence in the speed run (default {FULL[3]})")
    g.add_argument("--chips", type=_list_arg, default=DEFAULT_CHIPS, metavar="LIST",
                   help="Ascend chips for the simulator's estimates (default ascend310,ascend310b)")
    g.add_argument("--gpu-results", type=Path, action="append", default=[], metavar="PATH",
                   help="GPU speed JSON (benchmarks/gpu_speed.py) to show (repeatable; also found as "
                        "RESULTS/**/gpu*.json)")
    g.add_argument("--precision-results", type=Path, action="append", default=[], metavar="PATH",
                   help="precision_auc.json (benchmarks/precision_auc.py) for the fp16/int8 targets (repeatable; "
                        "also found under RESULTS)")


def command_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, prog: str) -> str:
    """The command line that gives ``args`` (options left at their defaults omitted): what RESULTS.md and every
    cached record name as their source, also when the command was called from Python rather than a shell."""
    import shlex

    def text(v) -> str:
        if isinstance(v, (tuple, list)):
            return ",".join(str(x) for x in v) or "none"
        return str(v)

    words = []
    for action in parser._actions:  # noqa: SLF001 - argparse's documented-by-use list of the options
        if not action.option_strings or action.dest in ("help",) or not hasattr(args, action.dest):
            continue
        value, flag = getattr(args, action.dest), action.option_strings[0]
        if value == action.default:
            continue
        if isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001
            words.append(flag)
        elif isinstance(action, argparse._AppendAction):  # noqa: SLF001
            for item in value:  # --bundle's (name, path) pairs are written back as NAME=PATH
                words += [flag, "=".join(item) if isinstance(item, tuple) else text(item)]
        else:
            words += [flag, text(value)]
    return " ".join([prog, *(shlex.quote(w) for w in words)])


def config_from_args(args: argparse.Namespace, command: str | None = None) -> ReportConfig:
    return ReportConfig(
        out=args.out, results=args.results, data=args.data, data_dir=args.data_dir, seed=args.seed,
        sequences=args.sequences, frames=args.frames, max_frames=args.max_frames, models=args.models,
        bundles=tuple(args.bundle), baselines=tuple(args.baselines), speed_sequences=args.speed_sequences,
        speed_frames=args.speed_frames, chips=tuple(args.chips), gpu_results=tuple(args.gpu_results),
        precision_results=tuple(args.precision_results), sections=tuple(args.sections), quick=args.quick,
        force=args.force, workers=args.workers, command=command,
    )


def run_from_args(args: argparse.Namespace, command: str | None = None) -> int:
    outcome = run_report(config_from_args(args, command))
    print(f"wrote {outcome.results_md}")
    print(f"measured: {len(outcome.computed)}, reused from the cache: {len(outcome.reused)}"
          + (f", not measured (--sections): {len(outcome.skipped)}" if outcome.skipped else ""))
    for label in outcome.computed:
        print(f"  measured  {label}")
    return 0


__all__ = ["ReportConfig", "Outcome", "run_report", "prepare_data", "dataset_fingerprint", "add_arguments",
           "command_from_args", "config_from_args", "run_from_args", "default_out"]
