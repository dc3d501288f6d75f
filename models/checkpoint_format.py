"""The checkpoint file both frameworks share, framework-free: safetensors with string metadata, strict key checks.

``models/torch/checkpoint.py`` and ``models/mindspore/checkpoint.py`` only turn their model's parameters into
arrays and back; everything about the file — opening it, the metadata encoding, and the strict key/shape check
whose error names the first mismatched parameter — is here once, so a mismatch reads the same in either framework.
Arrays are read through ``safetensors.numpy`` (no torch needed).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from edgetrack.errors import CheckpointError, InvalidArgumentError

# PyTorch's BatchNorm counter: never written, ignored when a file holds it (MindSpore has no such buffer).
SKIPPED_SUFFIX = "num_batches_tracked"


def encode_metadata(metadata: Mapping[str, object] | None) -> dict[str, str]:
    """safetensors metadata must be str -> str: non-strings are stored as JSON."""
    meta = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str):
            raise InvalidArgumentError(f"checkpoint metadata keys must be strings, got {key!r}")
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return meta


def write_arrays(path: str | Path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, object] | None) -> Path:
    """Write float32 ``arrays`` and ``metadata`` to ``path`` (parents created)."""
    from safetensors.numpy import save_file

    path = Path(path)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=encode_metadata(metadata))
    return path


def open_checkpoint(path: str | Path):
    """``safe_open`` over ``path`` (numpy arrays), or :class:`CheckpointError` saying what is wrong with it."""
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
    with open_checkpoint(path) as f:
        return dict(f.metadata() or {})


def read_checked(path: str | Path, expected: Mapping[str, tuple]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, arrays) of ``path`` after a strict check against ``expected`` (name -> shape, in model order).

    Raises :class:`CheckpointError` naming the first expected key that is missing or has another shape, or the first
    key of the file that is not expected. Nothing is read into a model here, so a failed check changes nothing.
    """
    with open_checkpoint(path) as f:
        keys = set(f.keys())
        meta = dict(f.metadata() or {})
        for name, model_shape in expected.items():
            model_shape = tuple(model_shape)
            if name not in keys:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} has no {name!r} (shape {model_shape}) that the model needs",
                    fix=fix_hint(meta),
                )
            shape = tuple(f.get_slice(name).get_shape())
            if shape != model_shape:
                raise CheckpointError(
                    f"checkpoint {str(path)!r}: {name!r} has shape {shape}, the model's has {model_shape}",
                    fix=fix_hint(meta),
                )
        extra = sorted(k for k in keys - set(expected) if not k.endswith(SKIPPED_SUFFIX))
        if extra:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has {extra[0]!r}, which the model does not have"
                + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
                fix=fix_hint(meta),
            )
        return meta, {name: f.get_tensor(name) for name in expected}


def fix_hint(meta: Mapping[str, str]) -> str:
    config = meta.get("config")
    if config:
        return f"build the model with the checkpoint's own configuration: {config}"
    return "build the model with the configuration the checkpoint was trained with"
