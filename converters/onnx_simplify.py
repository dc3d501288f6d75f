"""Simplify an exported ONNX graph in place, with onnxscript's optimizer and a chosen set of its rewrite rules.

Every exporter (:mod:`~edgetrack.converters.torch2onnx`, :mod:`~edgetrack.converters.ms2onnx`,
:mod:`~edgetrack.converters.deblur2onnx`) runs :func:`simplify_onnx` on each graph right after onnx's checker and
before the parity check, so the numbers in the manifest are the simplified graph's against the framework's.

What it does, measured on ``siamrpn-eca`` (template / search / head nodes):

- PyTorch's TorchScript exporter already folds constants and BatchNorm (``do_constant_folding``): only its
  ``Constant`` nodes become initializers (183 / 173 / 19 -> 153 / 151 / 10).
- ``mindspore.onnx.export`` writes every BatchNorm, and every convolution's padding as a ``Pad`` node before it:
  the rules fold them into the Conv (230 / 229 / 13 -> 152 / 151 / 10, the PyTorch export's graph). Fewer
  operators for the Ascend audit and ATC, and for ``--target cuda`` fp16 the folded weights are rounded once (an
  unfolded BatchNorm doubled the MindSpore deblur stage's fp16 error).

The tools: ``onnxscript.optimizer.optimize`` (constant folding, ``Constant`` nodes to initializers, unused nodes
removed) and ``onnxscript.rewriter.rewrite`` with :data:`RULES` only (folds and no-op removals that keep the
operator set: no rule that brings a new operator type, which the Ascend operator list might not hold). The graph's
opset, inputs and outputs must come out unchanged, and no operator type may appear that the exported graph did
not have; otherwise :class:`~edgetrack.errors.ConversionError` (and ``--no-simplify`` to convert without it).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from edgetrack.errors import ConversionError, require

__all__ = ["RULES", "simplify_onnx", "simplify_graphs", "tool_version"]

# onnxscript.rewriter.rules.common's rules that fold or remove operators without bringing new ones.
RULES = (
    "fuse_batchnorm_into_conv_rule",
    "fuse_batchnorm_into_conv_transpose_rule",
    "fuse_pad_into_conv_rule",
    "no_op_cast_rule",
    "no_op_expand_rule",
    "no_op_transpose_rule",
    "add_0_rule",
    "sub_0_rule",
    "mul_by_1_rule",
    "div_by_1_rule",
    "dropout_inference_rule",
    "dropout_zero_rule",
    "cast_cast_rule",
    "reshape_reshape_rule",
    "transpose_transpose_rule",
    "unsqueeze_unsqueeze_rule",
    "successive_relu_rule",
    "successive_clip_rule",
)


def _onnxscript():
    return require("onnxscript", feature="simplifying ONNX graphs", extra="torch")


def tool_version() -> str:
    """What simplified the graphs, for the manifest's ``tools``."""
    return f"onnxscript {_onnxscript().__version__} (optimizer + {len(RULES)} fold/no-op rewrite rules)"


def _signature(model) -> tuple:
    def io(values):
        return tuple((v.name, tuple(d.dim_value for d in v.type.tensor_type.shape.dim), v.type.tensor_type.elem_type)
                     for v in values)

    opsets = tuple(sorted((o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")))
    return opsets, io(model.graph.input), io(model.graph.output)


def simplify_onnx(path: str | os.PathLike) -> dict:
    """Simplify the ONNX file at ``path`` in place (see the module docstring); returns what changed:
    ``{"nodes": [before, after], "removed": {op_type: count}}``.

    Weights kept in an external file are read, and the simplified file holds them itself: simplify before the
    weights are shared between graphs (:mod:`edgetrack.converters.onnx_weights`), as the exporters do.
    """
    onnx = require("onnx", feature="simplifying ONNX graphs", extra="torch")
    _onnxscript()
    import onnxscript.optimizer
    import onnxscript.rewriter
    from onnxscript.rewriter.rules import common

    path = Path(path)
    model = onnx.load(str(path))  # with any external weights: the simplified file holds them itself
    before = Counter(n.op_type for n in model.graph.node)
    signature = _signature(model)
    try:
        out = onnxscript.optimizer.optimize(model)
        out = onnxscript.rewriter.rewrite(out, pattern_rewrite_rules=[getattr(common, r) for r in RULES])
        out = onnxscript.optimizer.optimize(out)
    except Exception as exc:  # the tool's own failure, on a graph the checker accepted
        raise ConversionError(f"onnxscript could not simplify {path.name!r}: {exc}",
                              fix="convert with --no-simplify, and report the graph") from exc
    after = Counter(n.op_type for n in out.graph.node)
    new_ops = sorted(set(after) - set(before))
    if new_ops or _signature(out) != signature:
        what = (f"brought operators {new_ops}" if new_ops
                else f"changed the opset or the inputs/outputs ({signature} -> {_signature(out)})")
        raise ConversionError(f"simplifying {path.name!r} {what}", fix="convert with --no-simplify, and report it")
    out.producer_name, out.producer_version = model.producer_name, model.producer_version
    try:
        onnx.checker.check_model(out, full_check=True)
    except Exception as exc:
        raise ConversionError(f"the simplified {path.name!r} fails onnx's checker: {exc}",
                              fix="convert with --no-simplify, and report the graph") from exc
    onnx.save(out, str(path))
    removed = {op: before[op] - after.get(op, 0) for op in sorted(before) if before[op] > after.get(op, 0)}
    return {"nodes": [sum(before.values()), sum(after.values())], "removed": removed}


def simplify_graphs(paths: dict, enabled: bool = True) -> dict:
    """:func:`simplify_onnx` on every graph of ``paths`` (name -> .onnx); returns the manifest's ``tools`` entries:
    ``{"simplifier": what ran, "simplified": {name: record}}`` (``enabled`` False: the simplifier "off")."""
    if not enabled:
        return {"simplifier": "off (--no-simplify)"}
    return {"simplifier": tool_version(), "simplified": {name: simplify_onnx(path) for name, path in paths.items()}}
