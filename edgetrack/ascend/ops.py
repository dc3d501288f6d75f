"""Which ONNX operators the Ascend toolchain accepts, and an audit of a graph against that list.

The data is Huawei's "支持ONNX算子清单" (supported ONNX operator list, CANN 8.0.0, stated against ONNX 1.12 /
ONNX Runtime 1.14), transcribed into ``data/onnx_operators.json`` with each operator's documented model opsets and
the restrictions that matter for edgetrack's graphs (constant inputs, Resize modes, Conv limits, ...). Where the
JSON cites a later page (a rule's ``doc``), the rule comes from that page. The list is the same for the four
chips; chip-specific statements are rules of their own (see ``scope`` in the JSON).

:func:`audit_graph` walks an ONNX graph and returns :class:`Finding` s:

- ``error``: the documentation says the toolchain does not support this (an operator not in the list, an opset
  the operator is not listed for, a violated restriction). The audit raises
  :class:`~edgetrack.errors.UnsupportedOperatorError` naming the operator, the node and the chip.
- ``warning``: a documented restriction that is ambiguous, slower (runs on the AI CPU), or stated for other chips
  or other CANN versions; ATC decides.
- ``info``: a documented property that holds and is worth knowing (a Conv whose weight is computed at run time).

Only the standard library is imported here; onnx is imported when a graph is audited.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Iterable, Mapping

from edgetrack.ascend.socs import get_soc
from edgetrack.errors import InvalidArgumentError, UnsupportedOperatorError, require

__all__ = [
    "SEVERITIES",
    "Rule",
    "OpSpec",
    "OperatorList",
    "Finding",
    "load_operator_list",
    "audit_graph",
    "format_findings",
]

SEVERITIES = ("error", "warning", "info")
_DATA = "onnx_operators.json"
_ONNX_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Rule:
    """A documented restriction of one operator; ``id`` names the check in this module that enforces it."""

    id: str
    severity: str
    text: str
    doc: str = ""
    chips_documented: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpSpec:
    """One operator of the list. ``opsets`` is None where the range was not transcribed."""

    op_type: str
    opsets: tuple[int, ...] | None
    doc: str = ""
    rules: tuple[Rule, ...] = ()
    listed_as: str = ""
    domain: str = "ai.onnx"
    note: str = ""


@dataclass(frozen=True)
class OperatorList:
    title: str
    source: Mapping[str, str]
    scope: Mapping[str, object]
    operators: Mapping[str, OpSpec]

    def spec(self, op_type: str) -> OpSpec | None:
        return self.operators.get(op_type)

    def supported(self) -> frozenset[str]:
        """ONNX op_types of the default domain in the list."""
        return frozenset(n for n, s in self.operators.items() if s.domain == "ai.onnx")


@dataclass(frozen=True)
class Finding:
    """One result of an audit: what (op_type, node) broke or met which documented rule, on which chip."""

    severity: str
    chip: str
    graph: str
    op_type: str
    node: str
    rule: str
    message: str
    doc: str = ""

    def to_dict(self) -> dict:
        return {
            "severity": self.severity,
            "op_type": self.op_type,
            "node": self.node,
            "rule": self.rule,
            "message": self.message,
            "doc": self.doc,
        }

    def __str__(self) -> str:
        where = f"graph {self.graph!r} " if self.graph else ""
        return f"{self.severity}: {where}{self.op_type} node {self.node!r}: {self.message}"


@lru_cache(maxsize=1)
def load_operator_list() -> OperatorList:
    """The transcribed operator list shipped in ``edgetrack/ascend/data`` (read once)."""
    text = resources.files("edgetrack.ascend").joinpath("data", _DATA).read_text(encoding="utf-8")
    data = json.loads(text)
    ops = {}
    for name, entry in data["operators"].items():
        rules = []
        for r in entry.get("rules", ()):
            if r["id"] not in _RULES or r["severity"] not in SEVERITIES:
                raise InvalidArgumentError(
                    f"{_DATA}: operator {name} has an unknown rule {r['id']!r} or severity {r['severity']!r}"
                )
            rules.append(Rule(r["id"], r["severity"], r["text"], r.get("doc", entry.get("doc", "")),
                              tuple(r.get("chips_documented", ()))))
        opsets = entry.get("opsets")
        ops[name] = OpSpec(
            op_type=name,
            opsets=None if opsets is None else tuple(int(v) for v in opsets),
            doc=entry.get("doc", ""),
            rules=tuple(rules),
            listed_as=entry.get("listed_as", ""),
            domain="huawei" if entry.get("domain") == "huawei" else "ai.onnx",
            note=entry.get("note", ""),
        )
    return OperatorList(title=data["title"], source=data["source"], scope=data["scope"], operators=ops)


# -- the graph, as the rules need to see it ---------------------------------------------------------------------
class _Graph:
    """Constant tensors, their values and the tensors' static shapes of one ONNX model."""

    def __init__(self, onnx, model):
        self.onnx = onnx
        self.model = model
        graph = model.graph
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = [i for i in graph.input if i.name not in self.initializers]
        self._constant_nodes = {}
        self.constant: set[str] = set(self.initializers)
        for node in graph.node:  # nodes are topologically sorted in a valid ONNX graph
            if node.op_type == "Constant":
                self.constant.update(node.output)
                for out in node.output:
                    self._constant_nodes[out] = node
            elif node.input and node.op_type not in {"RandomNormalLike", "RandomUniformLike", "Multinomial"} and all(
                (not i) or i in self.constant for i in node.input
            ):
                self.constant.update(node.output)
        self._identity = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input}
        self.shapes: dict[str, tuple] = {}
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - shapes only refine the audit; a graph onnx cannot infer is still audited
            inferred = model
        g = inferred.graph
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        for name, t in self.initializers.items():
            self.shapes[name] = tuple(t.dims)

    def value(self, name: str):
        """The numpy value of a constant tensor made by an initializer or Constant node (through Identity)."""
        seen = 0
        while name in self._identity and seen < 16:
            name, seen = self._identity[name], seen + 1
        if name in self.initializers:
            return self.onnx.numpy_helper.to_array(self.initializers[name])
        node = self._constant_nodes.get(name)
        if node is not None:
            for a in node.attribute:
                if a.name == "value":
                    return self.onnx.numpy_helper.to_array(a.t)
        return None

    def shape(self, name: str):
        return self.shapes.get(name)


def _attrs(onnx, node) -> dict:
    out = {}
    for a in node.attribute:
        if a.name == "sparse_value":
            out[a.name] = True
            continue
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _input(node, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


# -- the rules: (node, attrs, graph, soc, opset, rule) -> messages ----------------------------------------------
RuleFn = Callable[..., list]


def _r_constant_not_sparse(node, a, g, soc, opset, rule):
    return ["the value is a sparse tensor"] if a.get("sparse_value") else []


def _r_conv_group_one(node, a, g, soc, opset, rule):
    group = int(a.get("group", 1))
    if group == 1:
        return []
    x = g.shape(_input(node, 0))
    kind = " (depthwise)" if x and len(x) > 1 and x[1] == group else ""
    return [f"group={group}{kind}: the Conv spec says group must be 1; CANN's operator set has DepthwiseConv2D "
            "for this case, and ATC decides whether it maps the node to it"]


def _r_conv_limits(node, a, g, soc, opset, rule):
    msgs = []
    w = g.shape(_input(node, 1))
    kernel = list(a.get("kernel_shape") or (w[2:] if w and len(w) > 2 else []))
    if len(kernel) != 2:
        return msgs
    checks = (
        ("kernel", kernel, 1, 255),
        ("strides", list(a.get("strides", [1, 1])), 1, 63),
        ("pads", list(a.get("pads", [0, 0, 0, 0])), 0, 255),
        ("dilations", list(a.get("dilations", [1, 1])), 1, 255),
    )
    for what, values, lo, hi in checks:
        bad = [v for v in values if v is not None and not lo <= v <= hi]
        if bad:
            msgs.append(f"{what} {values} outside [{lo}, {hi}]")
    x = g.shape(_input(node, 0))
    if x and len(x) == 4 and x[3] is not None and not 1 <= x[3] <= 4096:
        msgs.append(f"input width {x[3]} outside [1, 4096]")
    return msgs


def _r_conv_runtime_weight(node, a, g, soc, opset, rule):
    weight = _input(node, 1)
    if weight in g.constant:
        return []
    return [f"weight {weight!r} is computed at run time: allowed (the spec asks no constant weight), multiplied "
            f"in fp16 on {soc.chip}; int8 (AMCT) would leave this Conv in fp16"]


def _r_maxpool_limits(node, a, g, soc, opset, rule):
    msgs = []
    x = g.shape(_input(node, 0))
    if x and len(x) == 4 and x[3] is not None and not 1 <= x[3] <= 4096:
        msgs.append(f"input width {x[3]} outside [1, 4096]")
    if any(d != 1 for d in a.get("dilations", [])):
        msgs.append(f"dilations {list(a['dilations'])} are not supported for 2-D inputs")
    auto_pad = a.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "VALID" and int(a.get("ceil_mode", 0)) == 1:
        msgs.append("auto_pad VALID needs ceil_mode 0")
    if auto_pad != "NOTSET" and "pads" in a:
        msgs.append(f"pads and auto_pad={auto_pad} cannot be used together")
    return msgs


def _r_maxpool_aicpu(node, a, g, soc, opset, rule):
    kernel = list(a.get("kernel_shape", []))
    strides = list(a.get("strides", [1] * len(kernel)))
    slow = any(s > 63 for s in strides) or any(not 1 <= k <= 255 for k in kernel)
    if len(kernel) == 2 and kernel[0] * kernel[1] > 256:
        slow = True
    return [f"kernel {kernel}, strides {strides}: runs on the AI CPU (slower)"] if slow else []


def _r_pad_modes(node, a, g, soc, opset, rule):
    mode = a.get("mode", "constant") or "constant"
    if mode not in ("constant", "reflect", "edge"):
        return [f"mode {mode!r} is not one of constant, reflect, edge"]
    if mode != "constant":
        return []
    value = _input(node, 2) if opset >= 11 else ""
    if opset < 11 and float(a.get("value", 0.0)) != 0.0:
        return [f"constant value {a['value']} (only 0 is supported)"]
    if not value:
        return []
    if value not in g.constant:
        return [f"constant_value {value!r} is computed at run time (only a constant 0 is supported)"]
    v = g.value(value)
    if v is not None and v.size and float(v.reshape(-1)[0]) != 0.0:
        return [f"constant_value {float(v.reshape(-1)[0])} (only 0 is supported)"]
    return []


def _r_pad_chip(node, a, g, soc, opset, rule):
    if soc.name in rule.chips_documented:
        return []
    return [f"some CANN versions document Pad for {', '.join(rule.chips_documented)} only, not {soc.name}"]


def _r_resize_constant_inputs(node, a, g, soc, opset, rule):
    names = [_input(node, 1)] if opset < 11 else [_input(node, 2), _input(node, 3)]
    runtime = [n for n in names if n and n not in g.constant]
    return [f"{', '.join(repr(n) for n in runtime)} (scales/sizes) computed at run time; they must be constants"] \
        if runtime else []


def _r_resize_modes(node, a, g, soc, opset, rule):
    mode = a.get("mode", "nearest") or "nearest"
    if mode not in ("nearest", "linear"):
        return [f"mode {mode!r} (only nearest and linear)"]
    x = g.shape(_input(node, 0))
    if x and len(x) == 5:
        if mode != "linear":
            return ["5-D input needs mode linear"]
        ctm = a.get("coordinate_transformation_mode", "half_pixel")
        if ctm not in ("align_corners", "pytorch_half_pixel"):
            return [f"5-D linear resize needs align_corners or pytorch_half_pixel coordinates, not {ctm!r}"]
    return []


def _r_resize_nearest_mode(node, a, g, soc, opset, rule):
    if (a.get("mode", "nearest") or "nearest") != "nearest" or opset < 11:
        return []
    nearest_mode = a.get("nearest_mode", "round_prefer_floor")
    if nearest_mode == "round_prefer_ceil":
        return []
    ctm = a.get("coordinate_transformation_mode", "half_pixel")
    return [f"nearest_mode {nearest_mode!r} (coordinate_transformation_mode {ctm!r}): the device rounds "
            "round_prefer_ceil, so it would pick other pixels than ONNX Runtime"]


def _r_slice_limits(node, a, g, soc, opset, rule):
    msgs = []
    x = g.shape(_input(node, 0))
    rank = len(x) if x else None
    if rank == 1:
        msgs.append("the input is 1-D")
    if opset < 10 or not _input(node, 4):
        return msgs
    steps_name = _input(node, 4)
    steps = g.value(steps_name)
    if steps is None:
        if steps_name not in g.constant:
            msgs.append(f"steps {steps_name!r} computed at run time; the last axis' step must be 1")
        return msgs
    axes = g.value(_input(node, 3)) if _input(node, 3) else None
    axes = list(range(len(steps))) if axes is None else [int(v) for v in axes.reshape(-1)]
    for axis, step in zip(axes, steps.reshape(-1)):
        if rank and axis % rank == rank - 1 and int(step) != 1:
            msgs.append(f"step {int(step)} on the last axis (must be 1)")
    return msgs


_RULES: dict[str, RuleFn] = {
    "constant_not_sparse": _r_constant_not_sparse,
    "conv_group_one": _r_conv_group_one,
    "conv_limits": _r_conv_limits,
    "conv_runtime_weight": _r_conv_runtime_weight,
    "maxpool_limits": _r_maxpool_limits,
    "maxpool_aicpu": _r_maxpool_aicpu,
    "pad_modes": _r_pad_modes,
    "pad_chip": _r_pad_chip,
    "resize_constant_inputs": _r_resize_constant_inputs,
    "resize_modes": _r_resize_modes,
    "resize_nearest_mode": _r_resize_nearest_mode,
    "slice_limits": _r_slice_limits,
}


# -- the audit ----------------------------------------------------------------------------------------------------
def _load_model(onnx, model_or_path):
    if isinstance(model_or_path, (str, os.PathLike)):
        if not os.path.isfile(model_or_path):
            raise InvalidArgumentError(f"ONNX graph {str(model_or_path)!r} does not exist", fix="pass an .onnx file")
        return onnx.load(str(model_or_path))
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    raise InvalidArgumentError(
        f"audit_graph takes an onnx.ModelProto or a path to an .onnx file, got {type(model_or_path).__name__}"
    )


def _model_opset(model) -> int | None:
    for imp in model.opset_import:
        if imp.domain in _ONNX_DOMAINS:
            return int(imp.version)
    return None


def _iter_nodes(onnx, graph) -> Iterable:
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _iter_nodes(onnx, a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    yield from _iter_nodes(onnx, sub)


def audit_graph(model_or_path, soc, opset: int | None = None, *, graph: str = "",
                raise_errors: bool = True) -> list[Finding]:
    """Check every node of an ONNX graph against the chip's supported-operator list.

    ``soc``: a :class:`~edgetrack.ascend.socs.Soc` or its name ("ascend310"). ``opset``: the model's ai.onnx opset
    (read from the model when None). ``graph``: a name for messages. Returns the findings, errors first; with
    ``raise_errors`` (the default) any error raises :class:`~edgetrack.errors.UnsupportedOperatorError` naming the
    first offending operator and node, with every error finding attached.
    """
    soc = get_soc(soc)
    onnx = require("onnx", feature="auditing ONNX graphs for Ascend", extra="torch")
    model = _load_model(onnx, model_or_path)
    if opset is None:
        opset = _model_opset(model)
        if opset is None:
            raise InvalidArgumentError(
                f"graph {graph!r} has no ai.onnx opset_import", fix="pass opset=... or re-export the graph"
            )
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < 1:
        raise InvalidArgumentError(f"opset must be a positive integer, got {opset!r}")
    oplist = load_operator_list()
    g = _Graph(onnx, model)
    findings: list[Finding] = []

    def add(severity, op_type, node, rule, message, doc=""):
        findings.append(Finding(severity, soc.name, graph, op_type, node, rule, message, doc))

    for inp in g.inputs:
        dims = g.shape(inp.name) or ()
        if not dims or any(d is None or d <= 0 for d in dims):
            add("error", "(graph input)", inp.name, "static_shapes",
                f"input shape {list(dims)} is not static; edgetrack gives ATC fixed --input_shape values")
    unknown_range_reported: set[str] = set()
    for i, node in enumerate(_iter_nodes(onnx, model.graph)):
        name = node.name or f"#{i} ({node.op_type})"
        if node.domain not in _ONNX_DOMAINS:
            add("error", node.op_type, name, "domain",
                f"custom domain {node.domain!r}: only the standard ai.onnx operators are in the list")
            continue
        spec = oplist.spec(node.op_type)
        if spec is None or spec.domain != "ai.onnx":
            add("error", node.op_type, name, "not_listed",
                f"{node.op_type} is not in Huawei's supported ONNX operator list (CANN "
                f"{oplist.source.get('cann', '?').split(' ')[0]}, ONNX {oplist.source.get('onnx', '?')})",
                oplist.source.get("list", ""))
            continue
        if spec.opsets is None:
            if node.op_type not in unknown_range_reported:
                unknown_range_reported.add(node.op_type)
                add("warning", node.op_type, name, "opset_unknown",
                    f"{node.op_type} is listed, but its opset range is not transcribed in edgetrack's data; "
                    f"ATC decides for opset {opset}", spec.doc or oplist.source.get("list", ""))
        elif opset not in spec.opsets:
            add("error", node.op_type, name, "opset_not_listed",
                f"{node.op_type} is documented for opsets {_ranges(spec.opsets)}, not opset {opset}", spec.doc)
            continue
        attrs = _attrs(onnx, node)
        for rule in spec.rules:
            for message in _RULES[rule.id](node, attrs, g, soc, opset, rule):
                add(rule.severity, node.op_type, name, rule.id, message, rule.doc or spec.doc)

    findings.sort(key=lambda f: SEVERITIES.index(f.severity))
    errors = [f for f in findings if f.severity == "error"]
    if errors and raise_errors:
        first = errors[0]
        listed = "\n".join(f"  - {f}" for f in errors[:8])
        more = f"\n  ... and {len(errors) - 8} more" if len(errors) > 8 else ""
        raise UnsupportedOperatorError(
            f"{soc.chip} ({soc.name}) cannot run graph {graph or '(unnamed)'!r}: {first.op_type} node "
            f"{first.node!r}: {first.message}\n{listed}{more}",
            op_type=first.op_type, node=first.node, chip=soc.name, findings=errors,
            fix="change the model to use supported operator forms (see edgetrack/ascend/data/onnx_operators.json), "
                "or convert for --target cpu/cuda",
        )
    return findings


def _ranges(values: Iterable[int]) -> str:
    values = sorted(values)
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(v) if v == start else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def format_findings(findings: Iterable[Finding]) -> str:
    """Findings as indented lines, one per finding."""
    return "\n".join(f"  {f}" for f in findings) or "  (none)"
