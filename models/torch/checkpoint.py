"""safetensors checkpoints that both frameworks read: strict, typed errors, framework-neutral key names.

A checkpoint is one ``.safetensors`` file: every parameter and BatchNorm running statistic under the PyTorch
``state_dict`` name (``backbone.conv1.0.weight``, ``backbone.conv1.1.running_mean``, ``head.bias`` ...), float32,
plus string metadata (``family``, ``config`` as JSON, anything the caller adds). Convolution weights are
(out, in, kh, kw) in both frameworks. The MindSpore twin reads the same keys and renames only BatchNorm's four
suffixes on the way in and out: ``weight``/``bias``/``running_mean``/``running_var`` <->
``gamma``/``beta``/``moving_mean``/``moving_variance``.

``num_batches_tracked`` is not written: MindSpore has no such buffer, and PyTorch only reads it when a BatchNorm's
``momentum`` is None (a cumulative average), which no model here uses. On loading it is ignored if present and left
as it is in the model; every other key must match exactly, name and shape, or :class:`CheckpointError` names the
first one that does not.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from edgetrack.errors import CheckpointError, InvalidArgumentError

__all__ = ["save_weights", "load_weights", "read_metadata", "checkpoint_state"]

SKIPPED_SUFFIX = "num_batches_tracked"


def checkpoint_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint holds for ``model``: its state_dict less ``num_batches_tracked``, in order."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith(SKIPPED_SUFFIX)}


def save_weights(model: nn.Module, path: str | Path, metadata: Mapping[str, object] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors); metadata values that are not strings become JSON."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            raise InvalidArgumentError(f"checkpoint metadata keys must be strings, got {key!r}")
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in checkpoint_state(model).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def _open(path: str | Path):
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist", fix="check the path")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError variants
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable safetensors file ({exc})",
            fix="checkpoints are written by save_weights; re-export it or check that the file is complete",
        ) from exc


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a checkpoint."""
    with _open(path) as f:
        return dict(f.metadata() or {})


def load_weights(model: nn.Module, path: str | Path) -> dict[str, str]:
    """Load ``path`` into ``model`` strictly; returns the checkpoint's metadata.

    Raises :class:`CheckpointError` naming the first key (in the model's order) that is missing from the file or
    has another shape, or the first key of the file the model does not have. The model is unchanged on error.
    """
    expected = checkpoint_state(model)
    with _open(path) as f:
        keys = set(f.keys())
        meta = dict(f.metadata() or {})
        for name, tensor in expected.items():
            if name not in keys:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} has no {name!r} (shape {tuple(tensor.shape)}) that the model needs",
                    fix=_fix_hint(meta),
                )
            shape = tuple(f.get_slice(name).get_shape())
            if shape != tuple(tensor.shape):
                raise CheckpointError(
                    f"checkpoint {str(path)!r}: {name!r} has shape {shape}, the model's has {tuple(tensor.shape)}",
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
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(loaded[name])  # state_dict tensors share storage with the model's
    return meta


def _fix_hint(meta: Mapping[str, str]) -> str:
    config = meta.get("config")
    if config:
        return f"build the model with the checkpoint's own configuration: {config}"
    return "build the model with the configuration the checkpoint was trained with"
