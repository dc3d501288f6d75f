"""The HSM loss and SiamFC's balanced logistic loss in MindSpore: the twins of :mod:`edgetrack.models.torch.losses`.

Same semantics, same formulas (``tests/test_siamfc_mindspore.py`` compares them with the PyTorch versions on the
same inputs): logits ``v`` against label maps from :func:`edgetrack.models.labels.siamfc_labels` (1 = positive,
0 = negative, 0.5 = ignored; −1 reads as negative too), broadcastable to each other.

The public functions check their arguments and accept NumPy labels; the checks raise edgetrack's typed errors, which
MindSpore's graph compiler refuses to parse (it only compiles ``raise`` of built-in exceptions), so the arithmetic
lives in ``_hsm`` / ``_balanced_logistic`` and the loss cells, which check in ``__init__``, call those directly:
they compile inside a ``mindspore.jit`` training step.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from edgetrack.errors import InvalidArgumentError, UnknownChoiceError
from edgetrack.models.labels import IGNORED

__all__ = ["hsm_loss", "balanced_logistic_loss", "HSMLoss", "BalancedLogisticLoss", "LOSSES", "build_loss"]


def _check_hsm(alpha: float, gamma: float) -> None:
    if not 0 <= alpha <= 1:
        raise InvalidArgumentError(f"alpha must be in [0, 1], got {alpha}")
    if gamma < 0:
        raise InvalidArgumentError(f"gamma must be >= 0, got {gamma}")


def _as_tensor(value, dtype):
    if isinstance(value, ms.Tensor):
        return value.astype(dtype)
    return ms.Tensor(np.asarray(value), dtype)


def _signs(logits, labels):
    labels = ops.broadcast_to(labels.astype(logits.dtype), logits.shape)
    positive = (labels > 0.75).astype(logits.dtype)
    valid = (labels != IGNORED).astype(logits.dtype)
    y = positive * 2.0 - 1.0
    return y, positive, valid


def _hsm(logits, labels, alpha: float, gamma: float):
    y, positive, valid = _signs(logits, labels)
    yv = y * logits
    alpha_t = positive * alpha + (1.0 - positive) * (1.0 - alpha)
    # softplus(-yv) = log(1 + exp(-yv)) without overflow; sigmoid(-yv) = 1 - p_T without cancellation.
    loss = alpha_t * ops.pow(ops.sigmoid(-yv), gamma) * ops.softplus(-yv)
    return (loss * valid).sum() / ops.maximum(valid.sum(), 1.0)


def _balanced_logistic(logits, labels):
    y, positive, valid = _signs(logits, labels)
    negative = valid * (1.0 - positive)
    num_pos = ops.maximum(positive.sum(), 1.0)
    num_neg = ops.maximum(negative.sum(), 1.0)
    weight = positive * (0.5 / num_pos) + negative * (0.5 / num_neg)
    return (weight * ops.softplus(-y * logits)).sum()


def hsm_loss(logits, labels, alpha: float = 0.6, gamma: float = 2.0):
    """The paper's eq. 3-7, averaged over every labelled cell of every map (see the PyTorch twin).

    ``l = α_T · (1 − p_T)^γ · log(1 + exp(−y·v))``, ``p_T = sigmoid(y·v)``, ``α_T = α`` for y = +1 else ``1 − α``.
    """
    _check_hsm(alpha, gamma)
    return _hsm(logits, _as_tensor(labels, logits.dtype), float(alpha), float(gamma))


def balanced_logistic_loss(logits, labels):
    """SiamFC's logistic loss (eq. 2), positives and negatives each weighted to half of the total (batch-wide)."""
    return _balanced_logistic(logits, _as_tensor(labels, logits.dtype))


class HSMLoss(nn.Cell):
    def __init__(self, alpha: float = 0.6, gamma: float = 2.0):
        super().__init__()
        if not 0 <= alpha <= 1 or gamma < 0:
            raise InvalidArgumentError(f"HSMLoss needs 0 <= alpha <= 1 and gamma >= 0, got {alpha}, {gamma}")
        self.alpha, self.gamma = float(alpha), float(gamma)

    def construct(self, logits, labels):
        return _hsm(logits, labels, self.alpha, self.gamma)


class BalancedLogisticLoss(nn.Cell):
    def construct(self, logits, labels):
        return _balanced_logistic(logits, labels)


LOSSES = {"hsm": HSMLoss, "logistic": BalancedLogisticLoss}


def build_loss(name: str, **kwargs) -> nn.Cell:
    """``"hsm"`` (kwargs alpha, gamma) or ``"logistic"``."""
    if name not in LOSSES:
        raise UnknownChoiceError("loss", name, LOSSES)
    return LOSSES[name](**kwargs)
