"""Tracking metrics with the conventions of the got10k toolkit (``pip install got10k``, L. Huang).

These numbers decide whether a tracker is good, so they follow the toolkit line by line
(``got10k/utils/metrics.py``, ``got10k/experiments/otb.py``, ``got10k/experiments/got10k.py``); every place where
edgetrack has to decide something the toolkit does not is marked **choice** below.

Boxes are float ``(x, y, w, h)`` rows (N × 4), top-left corner, pixels.

IoU (:func:`iou`, toolkit ``rect_iou``)
    ``inter / (union + eps)`` with ``eps = np.finfo(float).eps``, clipped to [0, 1]: zero-area and disjoint boxes
    give exactly 0, never NaN; identical boxes of area >= 1 give exactly 1.0. A box containing NaN gives NaN.
    With ``bound=(W, H)`` both boxes are first clipped the toolkit's way: ``x -> clip(x, 0, W)``,
    ``y -> clip(y, 0, H)``, then ``w -> clip(w, 0, W - x)``, ``h -> clip(h, 0, H - y)`` with the *clipped* x, y.
    Two consequences are reproduced on purpose: the image is [0, W] × [0, H] (not [0, W-1]), and a box that starts
    left of / above the image is *moved* to the edge and keeps its size (up to the far edge) instead of being cut:
    ``(-10, 0, 30, 10)`` in a 100 px wide image becomes ``(0, 0, 30, 10)``, not ``(0, 0, 20, 10)``.

Centre error (:func:`center_error`)
    Euclidean distance between centres ``(x + (w - 1) / 2, y + (h - 1) / 2)`` (the toolkit's OTB convention).
    The ``-1/2`` cancels in a difference, so it only shows in :func:`box_centers`.

OTB (:func:`otb_metrics` for one sequence, :func:`otb_summary` over sequences), as ``ExperimentOTB.report``:
    - frame 1 counts, and its prediction is replaced by the ground truth first (``boxes[0] = anno[0]`` in the
      toolkit), so frame 1 is always a perfect frame whatever the tracker returned for it;
    - unclipped IoU; success curve over ``np.linspace(0, 1, 21)`` with strict ``iou > t``; ``success_auc`` is the
      mean of the 21 points. Because ``1.0 > 1.0`` is false, a perfect tracker scores 20/21, not 1;
    - precision curve over ``np.arange(0, 51)`` px with ``err <= t``; ``precision_20`` is the point at 20 px;
      ``success_rate_50`` the point at 0.5 (share with ``iou > 0.5``);
    - Deblur-SiamRPN's protocol: ``precision_15`` = share with centre error **strictly** below 15 px (the paper:
      "小于某一给定阈值", *less than* the threshold; so it can differ from ``precision_curve[15]``, which uses
      ``<=``) and ``success_60`` = share with ``iou > 0.6`` (the paper: "IOU 大于阈值 0.6", *greater than*);
    - **choice**: frames whose ground truth has a NaN (unannotated, target absent: edgetrack's readers write NaN
      rows there) are left out of numerator and denominator. The toolkit never meets them on OTB (every frame is
      annotated); fed NaN it would count them as failures. Zero-size ground truth is kept, as in the toolkit
      (IoU 0; its centre error is computed normally);
    - a prediction with NaN (tracker failure) counts as a failure at every threshold, exactly as in the toolkit
      (``NaN > t`` and ``NaN <= t`` are both false): IoU 0 and centre error infinite;
    - :func:`otb_summary` averages the per-sequence curves (every sequence weighs the same, whatever its length)
      and reads AUC, precision at 20 px and success rate at 0.5 off the averaged curves, as the toolkit does;
      ``precision_15`` and ``success_60`` are averaged over sequences the same way.

GOT-10k (:func:`got10k_metrics`), as ``ExperimentGOT10k.report``:
    - the first frame is dropped (``b[1:], anno[1:]``); IoU clipped to the image when its size is given
      (the toolkit always has it: ``meta['resolution']``); only frames with ``cover > 0`` count;
    - the IoUs of all sequences are pooled before averaging, so a long sequence weighs more than a short one:
      ``ao`` = mean IoU, ``sr50`` = share with ``iou > 0.5``, ``sr75`` = share with ``iou > 0.75``, success curve
      over ``np.linspace(0, 1, 101)`` with ``>``; ``seq_ao`` is each sequence's own mean (the toolkit's
      ``seq_wise`` AO);
    - **choice**: a prediction containing NaN counts as IoU 0. The toolkit would make the whole AO NaN
      (``np.mean`` over a NaN) while its SR already counts the frame as a failure; IoU 0 agrees with its SR and
      its curve and keeps AO finite. A missing prediction (fewer rows than ground truth) is an error, as in the
      toolkit (``assert b.shape == anno.shape``): report a lost target as a NaN row, not by leaving it out;
    - **choice**: frames whose ground truth has a NaN are left out like ``cover == 0`` frames;
    - ``mao`` (HSM-SiamFC, eq. 14): ``mAO = 1/C · Σ_c (1/|S_c|) Σ_{i ∈ S_c} AO_i``, the mean over classes of the
      mean per-sequence AO of that class's sequences. **choice**: a sequence with no frame left to evaluate has
      ``seq_ao`` NaN and is left out of its class (a class with none left is left out of the mean).
"""
from __future__ import annotations

from collections.abc import Sequence as _Seq
from typing import Any

import numpy as np

from edgetrack.errors import InvalidArgumentError

OTB_IOU_THRESHOLDS = np.linspace(0, 1, 21)
OTB_CE_THRESHOLDS = np.arange(0, 51)
GOT10K_IOU_THRESHOLDS = np.linspace(0, 1, 101)
_EPS = np.finfo(float).eps


# --------------------------------------------------------------------------------------------- validation helpers
def _boxes(value: Any, name: str) -> np.ndarray:
    """``value`` as a float64 N × 4 array (a new array: callers may modify it)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{name} must be numeric (x, y, w, h) rows; could not convert it: {exc}",
            fix="pass an N×4 array of floats",
        ) from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InvalidArgumentError(
            f"{name} must have shape (N, 4) with rows (x, y, w, h), got shape {arr.shape}",
            fix="pass an N×4 array; wrap a single box as np.atleast_2d(box)",
        )
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise InvalidArgumentError(
            f"{name_a} has {len(a)} rows but {name_b} has {len(b)}; they must describe the same frames",
            fix="give one predicted box per ground-truth frame (a NaN row where the tracker has none)",
        )


def _bound(bound: Any, name: str = "bound") -> tuple[float, float]:
    try:
        w, h = (float(v) for v in bound)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be the image size (W, H), got {bound!r}") from None
    if not (np.isfinite(w) and np.isfinite(h) and w > 0 and h > 0):
        raise InvalidArgumentError(f"{name} must be a positive finite image size (W, H), got {bound!r}")
    return w, h


def _per_sequence(value: Any, name: str, n: int | None) -> list:
    # One sequence's N×4 array passed where a list of sequences is expected would otherwise be read as N sequences.
    one_array = isinstance(value, np.ndarray) and (value.ndim == 0 or (value.ndim == 2 and name.endswith("_boxes")))
    if one_array or isinstance(value, (str, bytes)) or not isinstance(value, (_Seq, np.ndarray)):
        raise InvalidArgumentError(
            f"{name} must be a list with one entry per sequence, got {type(value).__name__}",
            fix="wrap a single sequence's array in a list",
        )
    if n is not None and len(value) != n:
        raise InvalidArgumentError(
            f"{name} has {len(value)} entries but pred_boxes has {n} sequences; give one entry per sequence"
        )
    return list(value)


def _clip_to_image(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """The toolkit's ``rect_iou(..., bound=)`` clipping, on a copy (the toolkit modifies its inputs in place)."""
    out = boxes.copy()
    out[:, 0] = np.clip(out[:, 0], 0, width)
    out[:, 1] = np.clip(out[:, 1], 0, height)
    out[:, 2] = np.clip(out[:, 2], 0, width - out[:, 0])  # the clipped x: boxes are moved, not cut (see module doc)
    out[:, 3] = np.clip(out[:, 3], 0, height - out[:, 1])
    return out


# --------------------------------------------------------------------------------------------------- frame metrics
def iou(a: Any, b: Any, bound: Any = None) -> np.ndarray:
    """IoU of the row pairs of ``a`` and ``b`` (N × 4 each); ``bound=(W, H)`` clips both to the image first."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    _same_length(a, b, "a", "b")
    if bound is not None:
        w, h = _bound(bound)
        a, b = _clip_to_image(a, w, h), _clip_to_image(b, w, h)
    with np.errstate(invalid="ignore"):
        iw = np.maximum(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0)
        ih = np.maximum(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0)
        inter = iw * ih
        union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
        return np.clip(inter / (union + _EPS), 0.0, 1.0)


def box_centers(boxes: Any) -> np.ndarray:
    """Centres ``(x + (w - 1) / 2, y + (h - 1) / 2)`` of N × 4 boxes, as N × 2 (the toolkit's OTB convention)."""
    boxes = _boxes(boxes, "boxes")
    return boxes[:, :2] + (boxes[:, 2:] - 1) / 2


def center_error(a: Any, b: Any) -> np.ndarray:
    """Distance in pixels between the centres of the row pairs of ``a`` and ``b``; NaN where a box has NaN."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    _same_length(a, b, "a", "b")
    d = box_centers(a) - box_centers(b)
    return np.sqrt(np.sum(d**2, axis=-1))  # the toolkit's formula (not np.hypot), so results match to the last bit


# ------------------------------------------------------------------------------------------------------------ OTB
def otb_metrics(pred_boxes: Any, gt_boxes: Any) -> dict:
    """OTB one-pass-evaluation metrics of one sequence (see the module docstring for every convention).

    Returns ``success_curve``/``success_thresholds`` (21 points), ``precision_curve``/``precision_thresholds``
    (51 points), ``success_auc``, ``precision_20``, ``success_rate_50``, ``precision_15``, ``success_60`` and
    ``n_frames`` (the frames counted: those with a ground truth).
    """
    pred, gt = _boxes(pred_boxes, "pred_boxes"), _boxes(gt_boxes, "gt_boxes")
    _same_length(pred, gt, "pred_boxes", "gt_boxes")
    if len(gt) == 0 or np.isnan(gt[0]).any():
        raise InvalidArgumentError(
            "gt_boxes must start with the annotated first frame (the box the tracker is initialised with); "
            + ("it is empty" if len(gt) == 0 else f"it is {gt[0].tolist()}")
        )
    pred[0] = gt[0]  # the toolkit's `boxes[0] = anno[0]`
    keep = ~np.isnan(gt).any(axis=1)
    ious = iou(pred[keep], gt[keep])
    errs = center_error(pred[keep], gt[keep])
    failed = np.isnan(ious) | np.isnan(errs)  # NaN in the prediction: a failure at every threshold
    ious[failed], errs[failed] = 0.0, np.inf

    success = np.mean(ious[:, None] > OTB_IOU_THRESHOLDS[None, :], axis=0)
    precision = np.mean(errs[:, None] <= OTB_CE_THRESHOLDS[None, :], axis=0)
    return {
        "success_auc": float(np.mean(success)),
        "precision_20": float(precision[20]),
        "success_rate_50": float(success[len(OTB_IOU_THRESHOLDS) // 2]),
        "precision_15": float(np.mean(errs < 15)),
        "success_60": float(np.mean(ious > 0.6)),
        "n_frames": int(keep.sum()),
        "success_curve": success,
        "success_thresholds": OTB_IOU_THRESHOLDS.copy(),
        "precision_curve": precision,
        "precision_thresholds": OTB_CE_THRESHOLDS.copy(),
    }


def otb_summary(per_sequence: list[dict]) -> dict:
    """Aggregate :func:`otb_metrics` results of several sequences the toolkit's way (per-sequence curves averaged).

    Same keys as :func:`otb_metrics`, plus ``n_sequences``; ``n_frames`` is the total.
    """
    seqs = _per_sequence(per_sequence, "per_sequence", None)
    if not seqs:
        raise InvalidArgumentError("per_sequence is empty; give the otb_metrics result of at least one sequence")
    needed = ("success_curve", "precision_curve", "precision_15", "success_60", "n_frames")
    for i, m in enumerate(seqs):
        missing = [k for k in needed if not isinstance(m, dict) or k not in m]
        if missing:
            raise InvalidArgumentError(
                f"per_sequence[{i}] is not an otb_metrics result (missing {', '.join(missing)})",
                fix="pass the dicts that otb_metrics returned",
            )
    success = np.array([m["success_curve"] for m in seqs], dtype=np.float64)
    precision = np.array([m["precision_curve"] for m in seqs], dtype=np.float64)
    if success.shape[1:] != OTB_IOU_THRESHOLDS.shape or precision.shape[1:] != OTB_CE_THRESHOLDS.shape:
        raise InvalidArgumentError(
            f"per-sequence curves must have {len(OTB_IOU_THRESHOLDS)} (success) and {len(OTB_CE_THRESHOLDS)} "
            f"(precision) points, got {success.shape[1:]} and {precision.shape[1:]}"
        )
    success, precision = success.mean(axis=0), precision.mean(axis=0)
    return {
        "success_auc": float(np.mean(success)),
        "precision_20": float(precision[20]),
        "success_rate_50": float(success[len(OTB_IOU_THRESHOLDS) // 2]),
        "precision_15": float(np.mean([m["precision_15"] for m in seqs])),
        "success_60": float(np.mean([m["success_60"] for m in seqs])),
        "n_frames": int(sum(m["n_frames"] for m in seqs)),
        "n_sequences": len(seqs),
        "success_curve": success,
        "success_thresholds": OTB_IOU_THRESHOLDS.copy(),
        "precision_curve": precision,
        "precision_thresholds": OTB_CE_THRESHOLDS.copy(),
    }


# -------------------------------------------------------------------------------------------------------- GOT-10k
def got10k_metrics(
    pred_boxes: list,
    gt_boxes: list,
    *,
    covers: list | None = None,
    image_sizes: list | None = None,
    classes: list | None = None,
) -> dict:
    """GOT-10k metrics over several sequences (each argument a list with one entry per sequence).

    ``covers``: per-sequence cover arrays (frames with ``cover == 0`` are left out; an entry may be None).
    ``image_sizes``: per-sequence ``(W, H)`` to clip boxes to the image (an entry may be None: no clipping).
    ``classes``: per-sequence class names, to compute ``mao``.

    Returns ``ao``, ``sr50``, ``sr75``, ``succ_curve``/``succ_thresholds`` (101 points), all over the pooled frames,
    ``n_frames`` (pooled), ``seq_ao`` and ``seq_frames`` (per sequence), and with ``classes`` also ``mao`` and
    ``class_ao`` (class -> mean AO of its sequences).
    """
    preds = _per_sequence(pred_boxes, "pred_boxes", None)
    n = len(preds)
    gts = _per_sequence(gt_boxes, "gt_boxes", n)
    covs = _per_sequence(covers, "covers", n) if covers is not None else [None] * n
    sizes = _per_sequence(image_sizes, "image_sizes", n) if image_sizes is not None else [None] * n
    names = _per_sequence(classes, "classes", n) if classes is not None else None
    if n == 0:
        raise InvalidArgumentError("pred_boxes is empty; give at least one sequence")

    seq_ious = []
    for i in range(n):
        pred, gt = _boxes(preds[i], f"pred_boxes[{i}]"), _boxes(gts[i], f"gt_boxes[{i}]")
        _same_length(pred, gt, f"pred_boxes[{i}]", f"gt_boxes[{i}]")
        pred, gt = pred[1:], gt[1:]  # the first frame is the initialisation, never scored
        keep = ~np.isnan(gt).any(axis=1)
        if covs[i] is not None:
            cover = np.asarray(covs[i], dtype=np.float64)
            if cover.shape != (len(gt) + 1,):
                raise InvalidArgumentError(
                    f"covers[{i}] has shape {cover.shape} but gt_boxes[{i}] has {len(gt) + 1} frames",
                    fix="give one cover value per frame, the first frame included",
                )
            keep &= cover[1:] > 0
        bound = _bound(sizes[i], f"image_sizes[{i}]") if sizes[i] is not None else None
        ious = iou(pred[keep], gt[keep], bound=bound)
        ious[np.isnan(ious)] = 0.0  # NaN in the prediction (tracker failure): IoU 0, see module docstring
        seq_ious.append(ious)

    pooled = np.concatenate(seq_ious)
    if pooled.size == 0:
        raise InvalidArgumentError(
            "no frame is left to evaluate (every sequence has only its first frame, cover 0 or NaN ground truth)"
        )
    seq_ao = [float(np.mean(s)) if s.size else float("nan") for s in seq_ious]
    out = {
        "ao": float(np.mean(pooled)),
        "sr50": float(np.mean(pooled > 0.5)),
        "sr75": float(np.mean(pooled > 0.75)),
        "n_frames": int(pooled.size),
        "seq_ao": seq_ao,
        "seq_frames": [int(s.size) for s in seq_ious],
        "succ_curve": np.mean(pooled[:, None] > GOT10K_IOU_THRESHOLDS[None, :], axis=0),
        "succ_thresholds": GOT10K_IOU_THRESHOLDS.copy(),
    }
    if names is not None:
        by_class: dict[Any, list[float]] = {}
        for name, ao in zip(names, seq_ao):
            if not np.isnan(ao):
                by_class.setdefault(name, []).append(ao)
        out["class_ao"] = {name: float(np.mean(v)) for name, v in by_class.items()}
        out["mao"] = float(np.mean(list(out["class_ao"].values())))
    return out


# ----------------------------------------------------------------------------------------------- uncertainty
def bootstrap_interval(values, other=None, *, level: float = 0.95, resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of per-sequence ``values`` and its percentile bootstrap interval.

    With ``other`` (one value per sequence, the same sequences in the same order) the mean and interval are those of
    the **paired** difference ``values − other``: both trackers are resampled on the same sequences, so an easy or
    hard sequence counts for both, which is how two trackers on one data set compare (a difference whose interval
    excludes 0 holds beyond this set's choice of sequences). The interval covers only that choice, not a second
    training run of a model. The OTB AUC over a data set is the mean of its sequences' AUCs (:func:`otb_summary`
    averages the curves), so the interval of the per-sequence ``success_auc`` values is the AUC's. ``resamples``
    draws of as many sequences, with replacement, from a generator seeded with ``seed`` (the same inputs give the
    same interval).
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if other is not None:
        y = np.asarray(other, dtype=np.float64).reshape(-1)
        if y.shape != x.shape:
            raise InvalidArgumentError(f"a paired interval needs one value per sequence on both sides, got {x.size} "
                                       f"and {y.size}", fix="pass the two trackers' results on the same sequences")
        x = x - y
    if x.size < 2:
        raise InvalidArgumentError(f"a bootstrap interval needs at least 2 sequences, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise InvalidArgumentError("per-sequence values must be finite (a NaN or inf among them)",
                                   fix="leave out sequences without a result")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise InvalidArgumentError(f"level must be in (0, 1), got {level!r}", fix="pass e.g. level=0.95")
    if not isinstance(resamples, (int, np.integer)) or isinstance(resamples, bool) or resamples < 100:
        raise InvalidArgumentError(f"resamples must be an integer >= 100, got {resamples!r}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (int(resamples), x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(x.mean()), float(low), float(high)


__all__ = [
    "OTB_IOU_THRESHOLDS",
    "OTB_CE_THRESHOLDS",
    "GOT10K_IOU_THRESHOLDS",
    "iou",
    "box_centers",
    "center_error",
    "otb_metrics",
    "otb_summary",
    "got10k_metrics",
    "bootstrap_interval",
]
