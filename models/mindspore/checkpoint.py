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

from pathlib import Path
from typing import Mapping

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from edgetrack.models.checkpoint_format import read_checked, read_metadata, write_arrays  # noqa: F401 (read_metadata re-exported)

__all__ = [
    "save_weights",
    "load_weights",
    "read_metadata",
    "checkpoint_state",
    "to_checkpoint_name",
    "from_checkpoint_name",
    "BN_RENAMES",
]


# MindSpore BatchNorm parameter -> PyTorch state_dict name. These four names occur only in BatchNorm cells.
BN_RENAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
_BN_BACK = {v: k for k, v in BN_RENAMES.items()}
_BN_ORDER = {name: i for i, name in enumerate(BN_RENAMES)}


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
    outside a parent), so BatchNorm is recognised by type and nothing else is renamed. A BatchNorm's four come in
    PyTorch's order (weight, bias, running_mean, running_var; MindSpore's own puts the statistics first), so the
    whole order is the twin's ``state_dict`` order and a strict load names the same first mismatch in both.
    """
    state: dict[str, ms.Parameter] = {}
    for cell_name, cell in model.cells_and_names():
        batchnorm = isinstance(cell, nn.BatchNorm2d)
        params = list(cell.parameters_and_names(expand=False))
        if batchnorm:
            params.sort(key=lambda item: _BN_ORDER.get(item[0], len(_BN_ORDER)))
        for local, param in params:
            key = to_checkpoint_name(f"{cell_name}.{local}" if cell_name else local, batchnorm)
            state.setdefault(key, param)
    return state


def save_weights(model: nn.Cell, path: str | Path, metadata: Mapping[str, object] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors); metadata values that are not strings become JSON."""
    return write_arrays(path, {k: p.asnumpy() for k, p in checkpoint_state(model).items()}, metadata)


def load_weights(model: nn.Cell, path: str | Path) -> dict[str, str]:
    """Load ``path`` into ``model`` strictly; returns the checkpoint's metadata.

    Raises :class:`CheckpointError` naming the first key (in the model's order) that is missing from the file or
    has another shape, or the first key of the file the model does not have. The model is unchanged on error.
    """
    expected = checkpoint_state(model)
    meta, loaded = read_checked(path, {name: tuple(p.shape) for name, p in expected.items()})
    for name, param in expected.items():
        ops.assign(param, ms.Tensor(np.asarray(loaded[name], dtype=np.float32), dtype=param.dtype))
    return meta
