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

from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from edgetrack.models.checkpoint_format import SKIPPED_SUFFIX, read_checked, read_metadata, write_arrays

__all__ = ["save_weights", "load_weights", "read_metadata", "checkpoint_state"]



def checkpoint_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint holds for ``model``: its state_dict less ``num_batches_tracked``, in order."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith(SKIPPED_SUFFIX)}


def save_weights(model: nn.Module, path: str | Path, metadata: Mapping[str, object] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors); metadata values that are not strings become JSON."""
    arrays = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in checkpoint_state(model).items()}
    return write_arrays(path, arrays, metadata)


def load_weights(model: nn.Module, path: str | Path) -> dict[str, str]:
    """Load ``path`` into ``model`` strictly; returns the checkpoint's metadata.

    Raises :class:`CheckpointError` naming the first key (in the model's order) that is missing from the file or
    has another shape, or the first key of the file the model does not have. The model is unchanged on error.
    """
    expected = checkpoint_state(model)
    meta, loaded = read_checked(path, {name: tuple(t.shape) for name, t in expected.items()})
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(torch.from_numpy(loaded[name]))  # state_dict tensors share storage with the model's
    return meta
