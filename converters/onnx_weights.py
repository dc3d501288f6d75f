"""Store the weights of a bundle's ONNX graphs once, in one shared external-data file.

A Siamese tracker's template and search graphs run the *same* backbone at two input sizes. Static shapes (which
NPU compilers and the bundle contract want) mean two graphs, and ONNX's default layout copies every weight into
each file: a bundle of the paper's wide AlexNet holds its 60 MB of weights twice. ONNX's external-data format
(`onnx.external_data_helper`, read natively by ONNX Runtime) lets a tensor live in a side file at an offset, so
both graphs can point at one copy.

:func:`share_weights` rewrites graphs in place: every initializer of at least ``min_bytes`` moves into one data
file; tensors with equal type, shape and bytes are stored once, whatever their names (the exporter names folded
BatchNorm weights differently in each graph). Offsets are 4096-aligned so ONNX Runtime can memory-map them.
The result is checked: every graph passes ``onnx.checker`` with its data file beside it.

Only for ONNX Runtime targets (cpu, cuda): the Ascend toolchain gets self-contained graphs.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

from edgetrack.errors import ConversionError, InvalidArgumentError, require

__all__ = ["DATA_FILE", "share_weights"]

DATA_FILE = "weights.bin"
_ALIGN = 4096


def _raw_bytes(tensor, numpy_helper) -> bytes:
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    # Typed fields (float_data, int64_data, ...): numpy_helper knows every layout; re-encode as raw bytes.
    return numpy_helper.to_array(tensor).tobytes()


def share_weights(graphs: Mapping[str, str | os.PathLike], data_file: str = DATA_FILE,
                  min_bytes: int = 1024) -> dict:
    """Move the initializers of ``graphs`` (name -> .onnx path, all in one folder) into ``data_file`` beside them.

    Returns ``{"file": data_file, "bytes": size, "tensors": stored, "references": total, "saved_bytes": n}``.
    Raises :class:`ConversionError` if the graphs are not in one folder or a rewritten graph fails the checker.
    """
    onnx = require("onnx", feature="sharing ONNX weights", extra="torch")
    from onnx import external_data_helper, numpy_helper

    if not graphs:
        raise InvalidArgumentError("share_weights needs at least one graph")
    paths = {name: Path(p) for name, p in graphs.items()}
    folders = {p.resolve().parent for p in paths.values()}
    if len(folders) != 1:
        raise ConversionError(f"graphs to share weights must sit in one folder, got {sorted(map(str, folders))}")
    folder = folders.pop()
    if Path(data_file).name != data_file:
        raise InvalidArgumentError(f"data_file must be a plain file name, got {data_file!r}")

    stored: dict[tuple, tuple[int, int]] = {}
    references = 0
    referenced_bytes = 0
    offset = 0
    with open(folder / data_file, "wb") as fh:
        for name, path in paths.items():
            model = onnx.load(str(path))  # loads any existing external data too
            for tensor in model.graph.initializer:
                raw = _raw_bytes(tensor, numpy_helper)
                if len(raw) < min_bytes:
                    continue
                key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(raw).hexdigest())
                if key not in stored:
                    pad = (-offset) % _ALIGN
                    fh.write(b"\0" * pad)
                    offset += pad
                    fh.write(raw)
                    stored[key] = (offset, len(raw))
                    offset += len(raw)
                start, length = stored[key]
                references += 1
                referenced_bytes += length
                # set_external_data wants raw_data present; the inline copies are dropped right after.
                for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                    tensor.ClearField(field)
                tensor.raw_data = raw
                external_data_helper.set_external_data(tensor, location=data_file, offset=start, length=length)
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
            onnx.save(model, str(path))
    for name, path in paths.items():
        try:
            onnx.checker.check_model(str(path))  # the path form resolves external data relative to the file
        except Exception as exc:  # onnx raises ValidationError and friends
            raise ConversionError(f"graph {name!r} fails onnx.checker after sharing its weights: {exc}") from exc
    size = (folder / data_file).stat().st_size
    return {"file": data_file, "bytes": size, "tensors": len(stored), "references": references,
            "saved_bytes": max(0, referenced_bytes - sum(length for _, length in stored.values()))}
