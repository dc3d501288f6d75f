#!/usr/bin/env python3
"""Parity across the conversion chain for one checkpoint: PyTorch vs MindSpore vs ONNX (exported by either), and the
fp16 / int8 bundles — the output error and what it does to tracking (issue #7's "parity across the chain").

Every row tracks through the same :class:`edgetrack.Tracker` code (crops, decode, lost logic, tracking parameters
of the bundle), so rows differ only in what computes the three graphs:

- ``pytorch``: the checkpoint's PyTorch twin (``graph_modules``) computes each graph, in float32 on the CPU;
- ``mindspore``: the MindSpore twin of the same checkpoint file, likewise;
- ``onnx fp32 (PyTorch export)`` / ``onnx fp32 (MindSpore export)``: the fp32 bundles ``edgetrack convert`` writes
  with ``--framework torch`` / ``mindspore``, run by ONNX Runtime;
- ``onnx fp16`` / ``onnx int8``: rows read from a ``benchmarks/precision_auc.py`` result of the same checkpoint and
  test set (``--precision-json``), which converted them from the PyTorch export.

Output error: the whole chain (template -> search -> head, every output) on real crops of the test set
(:func:`edgetrack.converters.precision.sample_crops`), against the PyTorch twin: the largest absolute error relative
to the PyTorch output's largest magnitude. AUC: OTB success AUC on the test set's sharp and blurred variants.

Writes ``chain_parity.json`` and ``chain_parity.md`` into ``--out`` (what the report's parity section reads)::

    python benchmarks/chain_parity.py --checkpoint /work/ckpt/rpn3/siamrpn-eca/final.safetensors --model siamrpn-eca \\
        --test-data synthetic:runs/bench-data/synth-test-seed12-30x120 --sequences 10 --max-frames 60 \\
        --out benchmarks/results/chain-parity

The MindSpore twin runs at about 0.35 s a search crop on a 2-core CPU (graph mode), so the report's full test set
(7 200 frames) takes hours there: the example tracks every row on the same 10 sequences × 60 frames of each variant.
With the whole set (no limits), ``--precision-json`` adds the fp16 and int8 rows of ``precision_auc.py``.

Runs from a plain checkout: if edgetrack is not installed, the repository is put on the path.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _checkout import log, use_checkout  # noqa: E402 - benchmarks/ is on sys.path

use_checkout()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint (.safetensors), either framework's")
    p.add_argument("--model", required=True, help="model the checkpoint holds (e.g. siamrpn-eca)")
    p.add_argument("--test-data", required=True, metavar="SPEC", help="synthetic:PATH test set (sharp and blurred)")
    p.add_argument("--out", type=Path, required=True, help="folder for chain_parity.json / .md")
    p.add_argument("--work", type=Path, default=None, help="bundles (default: OUT/work)")
    p.add_argument("--precision-json", type=Path, default=None,
                   help="precision_auc.json of the same checkpoint and test set: its fp16 and int8 rows join the table")
    p.add_argument("--crops", type=int, default=32, help="real crop samples for the output error (default 32)")
    p.add_argument("--max-frames", type=int, default=None, help="track the first N frames of each sequence")
    p.add_argument("--sequences", type=int, default=None, help="track the first N sequences of each variant")
    p.add_argument("--rows", default="pytorch,mindspore,onnx-torch,onnx-mindspore",
                   help="rows to measure, comma-separated (default all four)")
    return p.parse_args(argv)


ROWS = {
    "pytorch": "PyTorch twin",
    "mindspore": "MindSpore twin",
    "onnx-torch": "onnx fp32 (PyTorch export)",
    "onnx-mindspore": "onnx fp32 (MindSpore export)",
}


class _FrameworkSession:
    """A bundle graph computed by a framework's module/cell instead of the graph file: ``run(feeds)`` by name."""

    def __init__(self, run, inputs: list[str], outputs: list[str]):
        self._run, self._inputs, self._outputs = run, inputs, outputs

    def run(self, feeds):
        out = self._run(*(np.asarray(feeds[name], dtype=np.float32) for name in self._inputs))
        return dict(zip(self._outputs, out))


def _torch_graphs(checkpoint: Path, family: str) -> dict:
    from edgetrack.converters.precision import torch_reference
    from edgetrack.converters.torch2onnx import _load_model

    return torch_reference(_load_model(checkpoint, family), join=False)


def _mindspore_graphs(checkpoint: Path, family: str) -> dict:
    import mindspore as ms

    from edgetrack.converters import ms2onnx

    # Graph mode compiles each graph once (static shapes): MindSpore's PyNative mode dispatches EfficientNet's many
    # small operators one by one, several times slower on a CPU. The head as one grouped Conv, as in the cpu
    # bundles (the same function as the elementwise form).
    ms.set_context(mode=ms.GRAPH_MODE)
    model = ms2onnx.load_mindspore_model(checkpoint, family)
    return ms2onnx.mindspore_reference(model, family, join=False, runtime_weights=True)


def _onnx_graphs(bundle) -> dict:
    from edgetrack.converters.precision import ort_runner

    return {name: ort_runner(bundle.graph_path(name), join=False) for name in ("template", "search", "head")}


def _io(bundle) -> dict[str, tuple[list[str], list[str]]]:
    return {name: ([t.name for t in g.inputs], [t.name for t in g.outputs])
            for name, g in bundle.manifest.graphs.items()}


def _factory(bundle_path: Path, graphs: dict | None):
    """Trackers over ``bundle_path`` whose graphs ``graphs`` computes (None: the bundle's own, ONNX Runtime)."""
    from edgetrack.bundle import load_bundle
    from edgetrack.tracker import Tracker

    io = _io(load_bundle(bundle_path))

    def factory():
        tracker = Tracker(bundle_path)
        if graphs is not None:  # same tracking code, other arithmetic
            tracker._sessions = {name: _FrameworkSession(graphs[name], *io[name]) for name in tracker._sessions}
        return tracker

    return factory


def _chain_outputs(graphs: dict, crops) -> list[np.ndarray]:
    outs = []
    for n in range(len(crops)):
        kernel = graphs["template"](crops.first_template(n))[0]
        features = graphs["search"](crops.search(n))[0]
        outs.append(np.concatenate([np.asarray(o, np.float64).ravel() for o in graphs["head"](kernel, features)]))
    return outs


def _error(reference: list[np.ndarray], got: list[np.ndarray]) -> dict:
    scale = max(float(np.max(np.abs(r))) for r in reference)
    max_abs = max(float(np.max(np.abs(g - r))) for r, g in zip(reference, got))
    return {"max_abs": max_abs, "max_rel": max_abs / scale if scale else max_abs, "scale": scale}


def main(argv=None) -> int:
    import mindspore as ms

    mode = ms.get_context("mode")
    try:
        return _main(argv)
    finally:
        ms.set_context(mode=mode)  # _mindspore_graphs switches to graph mode; a caller's mode comes back


def _main(argv=None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)  # before the convert calls below touch sys.argv
    args = parse_args(argv)
    from edgetrack.bundle import load_bundle
    from edgetrack.cli import main as cli
    from edgetrack.converters.precision import sample_crops
    from edgetrack.data import open_dataset
    from edgetrack.evaluation import evaluate, limit
    from edgetrack.tracker import tracking_settings

    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows_wanted) - set(ROWS))
    if unknown:
        raise SystemExit(f"unknown --rows {unknown}; rows: {', '.join(ROWS)}")
    work = args.work or args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    bundles = {}
    for framework in ("torch", "mindspore"):
        out = work / f"onnx-{framework}"
        argv = ["convert", str(args.checkpoint), "--model", args.model, "--framework", framework, "--target", "cpu",
                "--precision", "fp32", "-o", str(out), "--force"]
        log("edgetrack " + " ".join(argv))
        if cli(argv) != 0:
            raise SystemExit(f"edgetrack convert --framework {framework} failed")
        bundles[framework] = load_bundle(out)
    family = bundles["torch"].manifest.family

    graphs = {
        "pytorch": _torch_graphs(args.checkpoint, family),
        "mindspore": _mindspore_graphs(args.checkpoint, family),
        "onnx-torch": _onnx_graphs(bundles["torch"]),
        "onnx-mindspore": _onnx_graphs(bundles["mindspore"]),
    }
    params = tracking_settings(bundles["torch"].path).params
    crops = sample_crops(args.test_data, args.crops, params)
    reference = _chain_outputs(graphs["pytorch"], crops)
    errors = {name: _error(reference, _chain_outputs(g, crops)) for name, g in graphs.items()}

    variants = {d.name.split("-")[-1]: d for d in open_dataset(args.test_data)}
    rows = []
    for name in rows_wanted:
        bundle = bundles["mindspore" if name in ("mindspore", "onnx-mindspore") else "torch"]
        factory = _factory(bundle.path, None if name.startswith("onnx") else graphs[name])
        row = {"row": name, "what": ROWS[name], "precision": "fp32", "error": errors[name]}
        for split in ("sharp", "blurred"):
            dataset = variants.get(split)
            if dataset is None:
                continue
            if args.max_frames or args.sequences:
                dataset = limit(dataset, max_frames=args.max_frames, max_sequences=args.sequences)
            log(f"tracking {name} on {dataset.name} ({len(dataset)} sequences)")
            result = evaluate(factory, dataset, tracker_name=name)
            row[f"auc_{split}"] = result.summary()["success_auc"]
        rows.append(row)

    if args.precision_json is not None:
        data = json.loads(args.precision_json.read_text(encoding="utf-8"))
        meta = data.get("meta", {})
        same = (meta.get("test_data") == args.test_data and Path(meta.get("checkpoint", "")).name == args.checkpoint.name
                and not meta.get("deblur") and not (args.max_frames or args.sequences))
        if not same:
            log(f"not merging {args.precision_json}: another checkpoint, test set or frame limit")
        else:
            for r in data.get("rows", []):
                if r.get("precision") in ("fp16", "int8"):
                    rows.append({"row": f"onnx-{r['precision']}", "what": f"onnx {r['precision']} (PyTorch export)",
                                 "precision": r["precision"],
                                 "error": {"max_rel": r.get("max_rel_err"), "against": "onnx fp32 (PyTorch export)"},
                                 "auc_sharp": r.get("auc_sharp"), "auc_blurred": r.get("auc_blurred"),
                                 "from": str(args.precision_json)})

    base = next((r for r in rows if r["row"] == "pytorch"), None)
    for r in rows:
        for split in ("sharp", "blurred"):
            have = base is not None and r.get(f"auc_{split}") is not None and base.get(f"auc_{split}") is not None
            r[f"delta_{split}"] = r[f"auc_{split}"] - base[f"auc_{split}"] if have else None

    def fmt(v, spec=".3f"):
        return "–" if v is None else format(v, spec)

    header = "| chain step | output error (max rel) | AUC sharp | AUC blurred | ΔAUC vs PyTorch (sharp / blurred) |"
    lines = [header, "|---|--:|--:|--:|--:|"]
    for r in rows:
        err = r["error"].get("max_rel")
        against = r["error"].get("against")
        lines.append(f"| {r['what']} | {fmt(err, '.1e')}{' (vs ' + against + ')' if against else ''} "
                     f"| {fmt(r.get('auc_sharp'))} | {fmt(r.get('auc_blurred'))} "
                     f"| {fmt(r.get('delta_sharp'), '+.4f')} / {fmt(r.get('delta_blurred'), '+.4f')} |")
    table = "\n".join(lines)
    meta = {"checkpoint": str(args.checkpoint), "model": args.model, "test_data": args.test_data,
            "crops": len(crops), "max_frames": args.max_frames, "sequences": args.sequences,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "command": "python benchmarks/chain_parity.py " + " ".join(command)}
    md = [f"# Parity across the chain: {args.model}", "",
          f"Checkpoint `{args.checkpoint}`; test set `{args.test_data}` (sharp and blurred variants); output error on "
          f"{len(crops)} real crop samples of it, the whole chain (template -> search -> head) against the PyTorch "
          "twin, relative to its largest magnitude. Every row tracks through the same `edgetrack.Tracker` code; only "
          "what computes the graphs differs.", "", table, "",
          f"Generated by `{meta['command']}` ({meta['date']}).", ""]
    (args.out / "chain_parity.md").write_text("\n".join(md), encoding="utf-8")
    (args.out / "chain_parity.json").write_text(
        json.dumps({"kind": "chain-parity", "meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(table)
    log(f"wrote {args.out / 'chain_parity.md'} and chain_parity.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
