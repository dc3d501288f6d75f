"""Training labels for Siamese response maps, framework-free (numpy), shared by the PyTorch and MindSpore twins."""
from __future__ import annotations

import numpy as np

from edgetrack.errors import InvalidArgumentError

__all__ = ["POSITIVE", "NEGATIVE", "IGNORED", "siamfc_labels"]

POSITIVE, NEGATIVE, IGNORED = 1.0, 0.0, 0.5


def siamfc_labels(response_size: int = 17, r_pos: float = 16, r_neg: float = 0, total_stride: int = 8) -> np.ndarray:
    """SiamFC's label map (response_size × response_size, float32): 1 = positive, 0 = negative, 0.5 = ignored.

    A cell is positive when its distance to the map's centre, in input pixels (``total_stride`` per cell), is at most
    ``r_pos``; negative when it is at least ``r_neg`` (and more than ``r_pos``); ignored in between. Distances are
    Euclidean, as in the SiamFC paper (``k·‖u − c‖ ≤ R``); siamfc-pytorch uses the city-block distance, which
    selects the same 13 cells for its defaults (r_pos = 16, stride 8: within 2 cells). The HSM loss reads 1 as
    y = +1 and 0 as y = −1.
    """
    if int(response_size) != response_size or response_size < 1:
        raise InvalidArgumentError(f"response_size must be a positive integer, got {response_size!r}")
    if not (r_pos >= 0 and r_neg >= 0 and total_stride > 0):
        raise InvalidArgumentError(
            f"need r_pos >= 0, r_neg >= 0, total_stride > 0; got {r_pos}, {r_neg}, {total_stride}"
        )
    offsets = np.arange(response_size, dtype=np.float64) - (response_size - 1) / 2
    dist = np.hypot(offsets[None, :], offsets[:, None]) * total_stride
    labels = np.where(dist <= r_pos, POSITIVE, np.where(dist < r_neg, IGNORED, NEGATIVE))
    return labels.astype(np.float32)
