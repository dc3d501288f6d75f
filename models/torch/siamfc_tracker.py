"""A SiamFC tracker driven by a PyTorch model: the framework-free tracking logic plus the three graphs in torch.

The training side's reference tracker (evaluation during training, parity checks against exported bundles); the
device side runs the same :class:`~edgetrack.tracking.siamfc.SiamFCTracking` against its own backend.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgetrack.errors import BackendError, InvalidArgumentError, TrackerStateError, UnknownChoiceError
from edgetrack.models.torch.siamfc import SiamFC, load_siamfc
from edgetrack.tracking.siamfc import SiamFCParams, SiamFCTracking

__all__ = ["TorchSiamFCTracker", "resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``; asking for CUDA where there is none is an error, never a fallback."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UnknownChoiceError("device", device, ["cpu", "cuda", "cuda:N"]) from exc
    if dev.type not in ("cpu", "cuda"):
        raise UnknownChoiceError("device", str(device), ["cpu", "cuda", "cuda:N"])
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(
                f"device {str(device)!r} was asked for, but this PyTorch ({torch.__version__}) sees no CUDA device",
                fix="use device='cpu', or install a CUDA build of PyTorch on a machine with an NVIDIA GPU",
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(
                f"device {str(device)!r} was asked for, but only {torch.cuda.device_count()} CUDA device(s) exist",
                fix=f"use one of cuda:0..cuda:{torch.cuda.device_count() - 1}",
            )
    return dev


class TorchSiamFCTracker:
    """``init(frame, box)``, then ``update(frame) -> (box, score)`` per frame; the scales run as one batch.

    ``model``: a :class:`~edgetrack.models.torch.siamfc.SiamFC` (or any module with the same ``template``,
    ``search`` and ``head``), or the path of a checkpoint written by
    :func:`~edgetrack.models.torch.siamfc.save_siamfc`. The model is put in eval mode and moved to ``device``.
    """

    def __init__(
        self,
        model: SiamFC | torch.nn.Module | str | Path,
        device: str = "cpu",
        params: SiamFCParams | None = None,
    ):
        self.device = resolve_device(device)
        if isinstance(model, (str, Path)):
            model = load_siamfc(model)
        if not isinstance(model, torch.nn.Module) or not all(
            callable(getattr(model, name, None)) for name in ("template", "search", "head")
        ):
            raise InvalidArgumentError(
                f"model must be a SiamFC module or a checkpoint path, got {type(model).__name__}",
                fix="build one with edgetrack.models.torch.siamfc.build_siamfc or load_siamfc",
            )
        self.model = model.to(self.device).eval()
        self.logic = SiamFCTracking(params)
        stride = getattr(getattr(model, "config", None), "total_stride", self.logic.params.total_stride)
        if stride != self.logic.params.total_stride:
            raise InvalidArgumentError(
                f"the model's total stride is {stride} but the tracking parameters say "
                f"{self.logic.params.total_stride}; the peak would be mapped to the wrong place",
                fix=f"use SiamFCParams(total_stride={stride}, ...)",
            )
        self._kernel: torch.Tensor | None = None

    @torch.no_grad()
    def init(self, frame: np.ndarray, box) -> None:
        z = self.logic.init(frame, box)
        self._kernel = self.model.template(torch.from_numpy(z).to(self.device))

    @torch.no_grad()
    def update(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        if self._kernel is None:
            raise TrackerStateError("update() was called before init()", fix="call init(frame, box) first")
        x = torch.from_numpy(self.logic.search_crops(frame)).to(self.device)
        responses = self.model.head(self._kernel, self.model.search(x))
        return self.logic.update_from_responses(responses[:, 0].float().cpu().numpy())
