"""``edgetrack inspect``: verify a bundle (format version, fields, every graph's sha256) and print its manifest.

Meant to run on the device itself, so it needs only the standard library and :mod:`edgetrack.bundle`: no torch,
no onnx, no inference runtime.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgetrack.commands.convert import format_parity


def register(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="verify a device bundle and print its manifest",
        description="Load a bundle folder, check its format version and every graph file's sha256, and print what "
        "it holds: model, target, precision, graphs with their inputs and outputs, preprocessing, tracking "
        "parameters, provenance, tool versions and parity results.",
        epilog="example: edgetrack inspect bundles/hsm",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE",
                   help="bundle folder written by edgetrack convert, or a shipped model's name (e.g. siamrpn-eca)")
    p.add_argument("--audit", action="store_true",
                   help="list every node the Ascend operator audit flagged (by default one line per rule and graph)")
    p.set_defaults(func=run)


def _tensor(t) -> str:
    return f"{t.name} {list(t.shape)} {t.dtype}"


def _section(title: str, data: dict) -> list[str]:
    lines = [f"{title}:"]
    if not data:
        return lines + ["  (none)"]
    width = max(len(str(k)) for k in data)
    for key in sorted(data):
        value = data[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        lines.append(f"  {str(key).ljust(width)}  {text}")
    return lines


def _command(argv) -> str:
    import shlex

    return shlex.join(str(a) for a in argv) if isinstance(argv, (list, tuple)) else str(argv)


# device["mindir_source"] (what converter_lite reads) in words.
_SOURCES = {"mindspore": "MindSpore's MindIR (--fmk=MINDIR)", "onnx": "the ONNX graphs (--fmk=ONNX)"}


def format_audit(audit: dict, every_node: bool = False) -> list[str]:
    """The operator audit's findings (graph -> list of finding dicts): a count per severity, then one line per
    (graph, severity, rule) with how many nodes it flagged and the first one's message (a depthwise EfficientNet
    flags every depthwise Conv alike), or every node with ``every_node``."""
    counts: dict[str, int] = {}
    for findings in audit.values():
        for f in findings:
            counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    summary = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items())) or "no findings"
    lines = [f"  operator audit: {summary}"]
    grouped = False
    for name, findings in audit.items():
        if every_node:
            lines += [f"    {name}: {f['severity']}: {f['op_type']} {f['node']!r}: {f['message']}" for f in findings]
            continue
        groups: dict[tuple, list[dict]] = {}
        for f in findings:
            groups.setdefault((f["severity"], f["op_type"], f.get("rule", "")), []).append(f)
        for (severity, op_type, _), same in groups.items():
            first = same[0]
            more = f" (and {len(same) - 1} more {op_type} nodes like it)" if len(same) > 1 else ""
            grouped |= len(same) > 1
            lines.append(f"    {name}: {severity}: {op_type} {first['node']!r}: {first['message']}{more}")
    if grouped:
        lines.append("    (edgetrack inspect BUNDLE --audit lists every node)")
    return lines


def format_device(manifest, every_node: bool = False) -> str:
    """The manifest's ``device`` section (format 2: chip, toolchain (converter_lite: and what it reads, MindSpore's
    MindIR or ONNX), per-graph status, the source file each command reads, precision, AIPP, commands in the order they
    run (int8: ``calibrate``, AMCT, then ``command``, ATC), audit)."""
    d = manifest.device
    if not d:
        return "device: (none: the ONNX graphs are the device files)"
    lines = [
        f"device: {d.get('kind', '?')} {d.get('chip', '?')}, soc_version {d.get('soc_version', '?')}, "
        f"toolchain {d.get('toolchain', '?')}, precision_mode {d.get('precision_mode', '?')}"
        + (f", reads {_SOURCES.get(d['mindir_source'], d['mindir_source'])}" if d.get("mindir_source") else "")
    ]
    for name, g in d.get("graphs", {}).items():
        status = g.get("status", "?")
        lines.append(f"  {name}: {status}" + (f" -> {g['file']}" if g.get("file") else ""))
        inputs = ", ".join(f"{i['name']} {i['shape']} {i['dtype']} {i['layout']}" for i in g.get("inputs", []))
        if inputs:
            lines.append(f"    device inputs: {inputs}")
        aipp = g.get("aipp")
        if aipp:
            from edgetrack.ascend.aipp import AippConfig

            for inp, cfg in aipp.get("inputs", {}).items():
                lines.append(f"    aipp:    {aipp.get('file')} ({inp}: {AippConfig.from_dict(cfg).describe()})")
        source = g.get("source")
        if source:
            lines.append(f"    source:  {source.get('file')} ({source.get('format')})")
        if g.get("config"):
            lines.append(f"    config:  {g['config']}")
        calibration = g.get("calibration")
        if calibration:  # int8: AMCT's step runs before the ATC command
            data = ", ".join(f"{inp}: {folder}" for inp, folder in calibration.get("data", {}).items())
            lines.append(f"    precision: {g.get('precision', '?')} (AMCT calibration on {calibration.get('batches')} "
                         f"{calibration.get('dtype', '')} batches: {data})")
            lines.append(f"    calibrate: {_command(calibration.get('command', []))}")
        elif g.get("precision"):
            lines.append(f"    precision: {g['precision']}")
        lines.append(f"    command: {_command(g.get('command', []))}")
    lines += format_audit(d.get("audit", {}), every_node)
    if d.get("notes"):
        lines.append(f"  notes: {d['notes']}")
    return "\n".join(lines)


def format_manifest(bundle, every_node: bool = False) -> str:
    """A loaded :class:`edgetrack.bundle.Bundle` as readable text (``every_node``: the whole operator audit)."""
    m = bundle.manifest
    lines = [
        f"bundle:         {bundle.path}",
        f"format version: {m.format_version}",
        f"family/model:   {m.family} / {m.model}",
        f"target:         {m.target} ({'device files built' if m.device_files_built else 'portable graphs only'})",
        f"precision:      {m.precision}",
        "graphs (sha256 verified):",
    ]
    for name, g in m.graphs.items():
        lines.append(f"  {name}: {g.file}  sha256 {g.sha256[:12]}")
        lines.append(f"    inputs:  {', '.join(_tensor(t) for t in g.inputs) or '(none)'}")
        lines.append(f"    outputs: {', '.join(_tensor(t) for t in g.outputs) or '(none)'}")
    if m.files:
        lines.append("files (sha256 verified):")
        lines += [f"  {rel}  sha256 {digest[:12]}" for rel, digest in sorted(m.files.items())]
    if m.device:
        lines += format_device(m, every_node).splitlines()
    lines += _section("preprocessing", m.preprocessing)
    lines += _section("tracking", m.tracking)
    lines += _section("source", m.source)
    lines += _section("tools", m.tools)
    lines.append("parity:")
    if m.parity:
        lines += ["  " + line for line in format_parity(m.parity).splitlines()]
    else:
        lines.append("  (none)")
    if m.notes:
        lines.append(f"notes: {m.notes}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from edgetrack.bundle import load_bundle
    from edgetrack.tracker import _shipped

    shipped = _shipped()
    path = args.bundle
    if not path.exists() and str(path) in shipped:  # a shipped model's name
        path = shipped[str(path)]
    print(format_manifest(load_bundle(path), getattr(args, "audit", False)))
    return 0
