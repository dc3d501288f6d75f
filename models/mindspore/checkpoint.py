"""The shared safetensors checkpoints, read and written from MindSpore (no torch needed: ``safetensors.numpy``).

The format is :mod:`edgetrack.models.torch.checkpoint`'s: every parameter and BatchNorm statistic under its PyTorch
``state_dict`` name, float32, (out, in, kh, kw) convolution weights, string metadata. The twins' cells have the
same names, so the only translation is BatchNorm's four parameters, done here by :data:`BN_RENAMES` and nowhere
else. ``num_batches_tracked`` (PyTorch only) is never written and ignored when a file holds it. Errors have the
PyTorch loader's wording, so a mismatch reads the same whichever framework found it.

Loading writes with ``ops.assign``, into the parameters' own memory: ``Parameter.set_data`` swaps in a new tensor,
which a graph compiled before the load (``mindspore.jit``, graph mode) never sees — it would keep computing with the
old weights (checked on MindSpore 2.10).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from edgetrack.errors import CheckpointError, InvalidArgumentError

__all__ = [
    "save_weights",
    "load_weights",
    "read_metadata",
    "checkpoint_state",
    "to_checkpoint_name",
    "from_checkpoint_name",
    "BN_RENAMES",
]

SKIPPED_SUFFIX = "num_batches_tracked"

# MindSpore BatchNorm parameter -> PyTorch state_dict name. These four names occur only in BatchNorm cells.
BN_RENAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
_BN_BACK = {v: k for k, v in BN_RENAMES.items()}


def to_checkpoint_name(name: str, batchnorm: bool) -> str:
    """A MindSpore parameter name as the checkpoint (PyTorch) key; ``batchnorm``: it belongs to a BatchNorm cell."""
    prefix, _, last = name.rpartition(".")
    if batchnorm and last in BN_RENAMES:
        last = BN_RENAMES[last]
    return f"{prefix}.{last}" if prefix else last


def from_checkpoint_name(key: str, batchnorm: bool) -> str:
    """The inverse of :func:`to_checkpoint_name`."""
    prefix, _, last = key.rpartition(".")
    if batchnorm and last in _BN_BACK:
        last = _BN_BACK[last]
    return f"{prefix}.{last}" if prefix else last


def checkpoint_state(model: nn.Cell) -> dict[str, ms.Parameter]:
    """The model's parameters under their checkpoint keys, in the model's order.

    Built from the cells (not from the parameters' own ``name``, which MindSpore may leave unprefixed in cells built
    outside a parent), so BatchNorm is recognised by type and nothing else is renamed.
    """
    state: dict[str, ms.Parameter] = {}
    for cell_name, cell in model.cells_and_names():
        batchnorm = isinstance(cell, nn.BatchNorm2d)
        for local, param in cell.parameters_and_names(expand=False):
            key = to_checkpoint_name(f"{cell_name}.{local}" if cell_name else local, batchnorm)
            state.setdefault(key, param)
    return state


def save_weights(model: nn.Cell, path: str | Path, metadata: Mapping[str, object] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors); metadata values that are not strings become JSON."""
    from safetensors.numpy import save_file

    path = Path(path)
    meta = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            raise InvalidArgumentError(f"checkpoint metadata keys must be strings, got {key!r}")
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tensors = {
        k: np.ascontiguousarray(p.asnumpy(), dtype=np.float32) for k, p in checkpoint_state(model).items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def _open(path: str | Path):
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist", fix="check the path")
    try:
        return safe_open(str(path), framework="numpy")
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError variants
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable safetensors file ({exc})",
            fix="checkpoints are written by save_weights; re-export it or check that the file is complete",
        ) from exc


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a checkpoint."""
    with _open(path) as f:
        return dict(f.metadata() or {})


def load_weights(model: nn.Cell, path: str | Path) -> dict[str, str]:
    """Load ``path`` into ``model`` strictly; returns the checkpoint's metadata.

    Raises :class:`CheckpointError` naming the first key (in the model's order) that is missing from the file or
    has another shape, or the first key of the file the model does not have. The model is unchanged on error.
    """
    expected = checkpoint_state(model)
    with _open(path) as f:
        keys = set(f.keys())
        meta = dict(f.metadata() or {})
        for name, param in expected.items():
            model_shape = tuple(param.shape)
            if name not in keys:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} has no {name!r} (shape {model_shape}) that the model needs",
                    fix=_fix_hint(meta),
                )
            shape = tuple(f.get_slice(name).get_shape())
            if shape != model_shape:
                raise CheckpointError(
                    f"checkpoint {str(path)!r}: {name!r} has shape {shape}, the model's has {model_shape}",
                    fix=_fix_hint(meta),
                )
        extra = sorted(k for k in keys - set(expected) if not k.endswith(SKIPPED_SUFFIX))
        if extra:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has {extra[0]!r}, which the model does not have"
                + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
                fix=_fix_hint(meta),
            )
        loaded = {name: f.get_tensor(name) for name in expected}
    for name, param in expected.items():
        ops.assign(param, ms.Tensor(np.asarray(loaded[name], dtype=np.float32), dtype=param.dtype))
    return meta


def _fix_hint(meta: Mapping[str, str]) -> str:
    config = meta.get("config")
    if config:
        return f"build the model with the checkpoint's own configuration: {config}"
    return "build the model with the configuration the checkpoint was trained with"
