"""Losses for Siamese response maps: the HSM (hard sample mining) loss and SiamFC's balanced logistic loss.

Both take raw response maps (logits ``v``) and label maps from :func:`edgetrack.models.labels.siamfc_labels`
(1 = positive, 0 = negative, 0.5 = ignored; −1 is read as negative too, so ±1 labels work as well), broadcastable to
each other, e.g. (N, 1, 17, 17) logits against a (17, 17) map.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgetrack.errors import InvalidArgumentError, UnknownChoiceError
from edgetrack.models.labels import IGNORED

__all__ = ["hsm_loss", "balanced_logistic_loss", "HSMLoss", "BalancedLogisticLoss", "LOSSES", "build_loss"]


def _signs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    labels = torch.as_tensor(labels, dtype=logits.dtype, device=logits.device).expand_as(logits)
    positive = labels > 0.75
    valid = labels != IGNORED
    y = torch.where(positive, logits.new_tensor(1.0), logits.new_tensor(-1.0))
    return y, positive, valid


def hsm_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.6, gamma: float = 2.0) -> torch.Tensor:
    """The paper's eq. 3-7, averaged over every labelled cell of every map.

    ``p = sigmoid(v)``; ``p_T = p`` for y = +1 and ``1 − p`` for y = −1, i.e. ``p_T = sigmoid(y·v)``;
    ``α_T = α`` for y = +1 and ``1 − α`` for y = −1; ``l = α_T · (1 − p_T)^γ · log(1 + exp(−y·v))``.
    ``log(1 + exp(−y·v))`` is computed as ``softplus(−y·v)`` (no overflow for large |v|) and ``1 − p_T`` as
    ``sigmoid(−y·v)`` (no cancellation when ``p_T`` is near 1). γ = 0, α = 0.5 gives half the plain logistic loss.
    """
    if not 0 <= alpha <= 1:
        raise InvalidArgumentError(f"alpha must be in [0, 1], got {alpha}")
    if gamma < 0:
        raise InvalidArgumentError(f"gamma must be >= 0, got {gamma}")
    y, positive, valid = _signs(logits, labels)
    yv = y * logits
    alpha_t = torch.where(positive, logits.new_tensor(alpha), logits.new_tensor(1.0 - alpha))
    loss = alpha_t * torch.sigmoid(-yv).pow(gamma) * F.softplus(-yv)
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def balanced_logistic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SiamFC's logistic loss (eq. 2) with the positives and the negatives each weighted to half of the total.

    Every positive cell weighs ``0.5 / num_pos``, every negative ``0.5 / num_neg`` (counted over the whole batch),
    ignored cells 0: siamfc-pytorch's ``BalancedLoss`` (its weights normalised to sum 1).
    """
    y, positive, valid = _signs(logits, labels)
    negative = valid & ~positive
    num_pos = positive.sum().clamp(min=1)
    num_neg = negative.sum().clamp(min=1)
    weight = positive * (0.5 / num_pos) + negative * (0.5 / num_neg)
    return (weight * F.softplus(-y * logits)).sum()


class HSMLoss(nn.Module):
    def __init__(self, alpha: float = 0.6, gamma: float = 2.0):
        super().__init__()
        if not 0 <= alpha <= 1 or gamma < 0:
            raise InvalidArgumentError(f"HSMLoss needs 0 <= alpha <= 1 and gamma >= 0, got {alpha}, {gamma}")
        self.alpha, self.gamma = float(alpha), float(gamma)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return hsm_loss(logits, labels, self.alpha, self.gamma)


class BalancedLogisticLoss(nn.Module):
    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return balanced_logistic_loss(logits, labels)


LOSSES = {"hsm": HSMLoss, "logistic": BalancedLogisticLoss}


def build_loss(name: str, **kwargs) -> nn.Module:
    """``"hsm"`` (kwargs alpha, gamma) or ``"logistic"``."""
    if name not in LOSSES:
        raise UnknownChoiceError("loss", name, LOSSES)
    return LOSSES[name](**kwargs)
