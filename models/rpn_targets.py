"""SiamRPN's training targets, framework-free (numpy): anchor assignment by IoU, sampling, normalised offsets.

Both trainers feed on this module (like :mod:`edgetrack.models.pairs`), so a batch's targets are the same arrays
whichever framework consumes them. The anchors come from the runtime (:func:`edgetrack.tracking.siamrpn.anchor_grid`:
one definition for training and tracking); the target box comes from :class:`~edgetrack.models.pairs.PairSampler`,
whose ``box`` is already the target's box in search-crop pixels after the shift, scale and stretch it applied.

Assignment (SiamRPN §3.4, pysot's ``AnchorTarget``): an anchor whose IoU with the target box is above
``pos_iou`` (0.6) is positive, below ``neg_iou`` (0.3) negative, in between ignored. At most ``max_pos`` (16)
positives and ``total`` (64) samples in all are kept per pair, drawn at random; the rest become ignored. Offsets
(eq. 4): ``δ = ((x − x_a) / w_a, (y − y_a) / h_a, ln(w / w_a), ln(h / h_a))`` over box centres and sizes.

Negative pairs (the exemplar from another sequence, :attr:`~edgetrack.models.pairs.PairConfig.neg_prob`) have no
positives and no regression: the anchors that would be positive on the search crop's object are negatives (that
object is exactly what must be rejected), the rest of the ``total`` are drawn from the other negatives.

Online hard negative mining (the ``rpn-ohem`` loss, ``AnchorTargetConfig(total=None, neg_random=16)``): the
positives are sampled as above, exactly ``neg_random`` negatives are drawn at random (they keep the background's
scores calibrated), and every other negative is labelled :data:`CANDIDATE` (−2), the pool from which the loss itself
takes each pair's hardest negatives by their current loss (a top-k, :func:`edgetrack.models.torch.siamrpn.rpn_loss`).
The hardest cannot be chosen here: they depend on the weights of the step. Split this way, the random part stays a
draw of the batch's generator (resumed runs stay exact) and the hard part a deterministic function of the logits,
the same in both frameworks. ``hard_min_dist`` > 0 keeps the candidates away from the target: a negative anchor
whose centre lies within ``hard_min_dist`` target sizes (``√(w·h)``) of the target's centre is no candidate (it can
still be drawn at random). Such an anchor overlaps the target or sits beside it with another shape, the hardest
negatives of a well-localising network; mining them pushes down the target's own surroundings instead of the
look-alikes and clutter elsewhere in the crop that make a tracker drift (measured: not better,
``benchmarks/results/rpn-hard-min-dist/``). On a negative pair the object's anchors take the positives' slots as
above, and every other anchor (all are negatives there) is drawn or a candidate, so the loss's hardest are the
rest of the object's anchors for as long as the model still fires on them.

Targets per pair: ``cls`` (A, R, R) int64, 1 positive / 0 negative / −1 ignored / −2 candidate (only with
``neg_random``; the ``rpn`` and ``rpn-hsm`` losses count only labels ≥ 0, so a candidate is ignored there);
``loc`` (4, A, R, R) float32, the offsets of every anchor (only positives' count); ``loc_weight`` (A, R, R) float32,
1 on positives.
The assignment's draws come from the batch's own generator, so a batch's targets are a pure function of
``(seed, rank, batch index)`` like its pairs, and resumed runs stay exact.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgetrack.errors import InvalidArgumentError, UnknownChoiceError
from edgetrack.models.pairs import PairConfig
from edgetrack.tracking.crop import box_center

__all__ = ["AnchorTargetConfig", "RPN_PAIRS", "anchor_iou", "anchor_distance", "encode", "anchor_targets",
           "batch_targets", "RPNTargets", "ANCHOR_TARGETS", "anchor_target_config", "POSITIVE", "NEGATIVE", "IGNORED",
           "CANDIDATE", "OHEM_RANDOM", "OHEM_HARD"]

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1
# A negative anchor not drawn at random: a candidate for the hardest negatives the rpn-ohem loss picks.
CANDIDATE = -2
# The rpn-ohem loss's negatives per pair: drawn at random here, and the hardest by their current loss, picked in the
# loss (top-k). With SiamRPN's at most 16 positives a pair still counts 64 anchors, as the papers' sampling does.
OHEM_RANDOM = 16
OHEM_HARD = 32

# Pair augmentation for SiamRPN (pysot's SEARCH: scale 0.18, shift 64): the regression branch learns size changes
# only from pairs whose target changes size, which SiamFC's 5 % scale jitter barely provides. One pair in five is
# negative (pysot's DATASET.NEG 0.2): trained without them, siamrpn-eca learnt to find "the object" near the centre
# whatever the exemplar (a template from another sequence still gave the target 0.88 against 0.94 for its own, the
# two score maps correlating at 0.89), and jumped to look-alikes and background clutter (issue #4). Mirroring and
# channel swaps (both crops alike): without them the model localised the training photos' objects to 1.8 px and
# their sizes without bias, but held-out objects to 8-13 px with boxes 5-8 % too small -- it had memorised the
# few objects a synthetic training set holds (issue #4).
RPN_PAIRS = PairConfig(scale_jitter=0.18, max_shift=64.0, neg_prob=0.2, flip_prob=0.5, swap_prob=0.25)

# Mixed into the batch generator's seed so the assignment's draws never repeat the pair sampler's.
_TARGET_STREAM = 0x52504E


@dataclass(frozen=True)
class AnchorTargetConfig:
    """IoU thresholds and sampling of the anchor assignment (SiamRPN's values).

    ``total=None`` keeps every negative anchor instead of sampling (for the ``rpn-hsm`` loss, which weighs each
    anchor by how hard it is: a look-alike's anchors are among the few that count, and random sampling keeps one of
    them in about half of the pairs).

    ``neg_random`` (with ``total=None``; for the ``rpn-ohem`` loss): draw exactly this many negatives per pair at
    random (fewer where a pair has fewer) and label every other negative :data:`CANDIDATE`, for the loss to take
    the hardest of them (module docstring). 0 leaves every negative to the loss's choice. ``hard_min_dist`` (with
    ``neg_random``): no candidate within that many target sizes of the target's centre (module docstring; 0: none
    excluded).
    """

    pos_iou: float = 0.6
    neg_iou: float = 0.3
    max_pos: int = 16
    total: int | None = 64
    neg_random: int | None = None
    hard_min_dist: float = 0.0

    def __post_init__(self):
        if not (0 <= self.neg_iou <= self.pos_iou <= 1):
            raise InvalidArgumentError(f"AnchorTargetConfig needs 0 <= neg_iou <= pos_iou <= 1, got "
                                       f"{self.neg_iou}, {self.pos_iou}")
        for name in ("max_pos", "total"):
            value = getattr(self, name)
            if name == "total" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"AnchorTargetConfig.{name} must be a positive integer, got {value!r}")
        if self.total is not None and self.max_pos > self.total:
            raise InvalidArgumentError(f"AnchorTargetConfig.max_pos ({self.max_pos}) exceeds total ({self.total})")
        if self.neg_random is not None:
            value = self.neg_random
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentError(f"AnchorTargetConfig.neg_random must be None or an integer >= 0, got "
                                           f"{value!r}", fix="pass the number of negatives to draw at random per pair")
            if self.total is not None:
                raise InvalidArgumentError(
                    f"AnchorTargetConfig.neg_random ({value}) draws the negatives itself, but total is {self.total}",
                    fix="pass total=None with neg_random (the loss adds the hardest negatives to the drawn ones)")
        dist = self.hard_min_dist
        if isinstance(dist, bool) or not isinstance(dist, (int, float)) or not (np.isfinite(dist) and dist >= 0):
            raise InvalidArgumentError(f"AnchorTargetConfig.hard_min_dist must be a finite number >= 0, got {dist!r}",
                                       fix="pass the candidates' least distance from the target, in target sizes")
        if dist and self.neg_random is None:
            raise InvalidArgumentError(f"AnchorTargetConfig.hard_min_dist ({dist}) limits the rpn-ohem loss's "
                                       "candidates, but neg_random is None (no candidates)",
                                       fix="pass neg_random with hard_min_dist, or leave hard_min_dist at 0")


# The anchor assignment each SiamRPN training loss expects: the papers' cross-entropy on 64 sampled anchors per
# pair, the HSM loss on every labelled anchor, the cross-entropy on the sampled positives, OHEM_RANDOM random
# negatives and the OHEM_HARD hardest of the other negatives (picked by the loss among the candidates).
ANCHOR_TARGETS = {"rpn": AnchorTargetConfig(), "rpn-hsm": AnchorTargetConfig(total=None),
                  "rpn-ohem": AnchorTargetConfig(total=None, neg_random=OHEM_RANDOM)}


def anchor_target_config(loss: str, neg_random: int | None = None, hard_min_dist: float = 0.0) -> AnchorTargetConfig:
    """The assignment the SiamRPN loss ``loss`` (a key of :data:`ANCHOR_TARGETS`) expects; ``neg_random``
    (``rpn-ohem`` only; None: :data:`OHEM_RANDOM`) the number of negatives it draws at random per pair,
    ``hard_min_dist`` (``rpn-ohem`` only) the candidates' least distance from the target in target sizes."""
    if loss not in ANCHOR_TARGETS:
        raise UnknownChoiceError("SiamRPN loss", loss, ANCHOR_TARGETS)
    cfg = ANCHOR_TARGETS[loss]
    if neg_random is None and not hard_min_dist:
        return cfg
    if cfg.neg_random is None:
        given = f"neg_random ({neg_random})" if neg_random is not None else f"hard_min_dist ({hard_min_dist})"
        raise InvalidArgumentError(f"{given} is a setting of the rpn-ohem loss, not of {loss!r}",
                                   fix="leave it unset, or train with the rpn-ohem loss")
    return dataclasses.replace(cfg, neg_random=cfg.neg_random if neg_random is None else neg_random,
                               hard_min_dist=hard_min_dist)


def _box_cxcywh(box) -> tuple[float, float, float, float]:
    box = np.asarray(box, dtype=np.float64).reshape(4)
    if not (np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0):
        raise InvalidArgumentError(f"target box {tuple(box.tolist())} must be finite with width and height > 0")
    cx, cy = box_center(box)
    return float(cx), float(cy), float(box[2]), float(box[3])


def anchor_iou(anchors: np.ndarray, box) -> np.ndarray:
    """IoU of every anchor ``(cx, cy, w, h)`` (4, ...) with ``box`` ``(x, y, w, h)``; the shape of ``anchors[0]``.

    Both are taken as the continuous rectangles ``centre ± size / 2``, so an anchor equal to the box has IoU 1.
    """
    cx, cy, w, h = _box_cxcywh(box)
    ax, ay, aw, ah = anchors
    iw = np.clip(np.minimum(ax + aw / 2, cx + w / 2) - np.maximum(ax - aw / 2, cx - w / 2), 0, None)
    ih = np.clip(np.minimum(ay + ah / 2, cy + h / 2) - np.maximum(ay - ah / 2, cy - h / 2), 0, None)
    inter = iw * ih
    return inter / (aw * ah + w * h - inter)


def anchor_distance(anchors: np.ndarray, box) -> np.ndarray:
    """Distance of every anchor's centre from the centre of ``box`` ``(x, y, w, h)``, in target sizes
    (``√(w·h)``); the shape of ``anchors[0]``."""
    cx, cy, w, h = _box_cxcywh(box)
    return np.hypot(anchors[0] - cx, anchors[1] - cy) / np.sqrt(w * h)


def encode(anchors: np.ndarray, box) -> np.ndarray:
    """(4, ...) offsets ``(dx, dy, dw, dh)`` of ``box`` ``(x, y, w, h)`` from every anchor (eq. 4).

    The inverse of :func:`edgetrack.tracking.siamrpn.decode`.
    """
    cx, cy, w, h = _box_cxcywh(box)
    ax, ay, aw, ah = anchors
    return np.stack([(cx - ax) / aw, (cy - ay) / ah, np.log(w / aw), np.log(h / ah)])


def anchor_targets(anchors: np.ndarray, box, rng: np.random.Generator,
                   cfg: AnchorTargetConfig | None = None, negative: bool = False) -> dict:
    """Targets of one pair: ``cls`` (A, R, R), ``loc`` (4, A, R, R), ``loc_weight`` (A, R, R) (module docstring).

    ``negative``: a negative pair; ``box`` is then the search crop's (wrong) object.
    """
    cfg = AnchorTargetConfig() if cfg is None else cfg
    iou = anchor_iou(anchors, box)
    cls = np.full(iou.shape, IGNORED, dtype=np.int64)
    flat = cls.reshape(-1)
    if negative:
        hard = np.flatnonzero(iou.reshape(-1) > cfg.pos_iou)
        if len(hard) > cfg.max_pos:
            hard = rng.choice(hard, cfg.max_pos, replace=False)
        rest = np.setdiff1d(np.arange(flat.size), hard)
        flat[hard] = NEGATIVE
        if cfg.neg_random is not None:
            flat[rest] = CANDIDATE
            rest = rng.choice(rest, min(len(rest), cfg.neg_random), replace=False)
        elif cfg.total is not None:
            rest = rng.choice(rest, min(len(rest), cfg.total - len(hard)), replace=False)
        flat[rest] = NEGATIVE
        return {"cls": cls, "loc": encode(anchors, box).astype(np.float32),
                "loc_weight": np.zeros(iou.shape, np.float32)}
    pos = np.flatnonzero(iou.reshape(-1) > cfg.pos_iou)
    neg = np.flatnonzero(iou.reshape(-1) < cfg.neg_iou)
    if len(pos) > cfg.max_pos:
        pos = rng.choice(pos, cfg.max_pos, replace=False)
    if cfg.neg_random is not None:
        cand = neg
        if cfg.hard_min_dist:
            cand = neg[anchor_distance(anchors, box).reshape(-1)[neg] >= cfg.hard_min_dist]
        flat[cand] = CANDIDATE
        n_neg = cfg.neg_random
    else:
        n_neg = len(neg) if cfg.total is None else cfg.total - len(pos)
    if len(neg) > n_neg:
        neg = rng.choice(neg, n_neg, replace=False)
    flat[pos] = POSITIVE
    flat[neg] = NEGATIVE
    loc = encode(anchors, box).astype(np.float32)
    return {"cls": cls, "loc": loc, "loc_weight": (cls == POSITIVE).astype(np.float32)}


def batch_targets(anchors: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
                  cfg: AnchorTargetConfig | None = None, negative=None) -> dict:
    """Targets of a batch of pairs: ``boxes`` (B, 4) -> ``cls`` (B, A, R, R), ``loc`` (B, 4, A, R, R),
    ``loc_weight`` (B, A, R, R). ``negative``: (B,) bools, the negative pairs (None: none)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InvalidArgumentError(f"boxes must be (B, 4), got shape {boxes.shape}")
    negative = np.zeros(len(boxes), bool) if negative is None else np.asarray(negative, dtype=bool).reshape(-1)
    if negative.shape != (len(boxes),):
        raise InvalidArgumentError(f"negative must have one flag per box ({len(boxes)}), got shape {negative.shape}")
    per_pair = [anchor_targets(anchors, b, rng, cfg, bool(n)) for b, n in zip(boxes, negative)]
    return {key: np.stack([t[key] for t in per_pair]) for key in ("cls", "loc", "loc_weight")}


class RPNTargets:
    """A batch transform for the trainers: adds ``cls``, ``loc`` and ``loc_weight`` to a PairSampler batch.

    ``anchors``: the model's grid (:func:`edgetrack.tracking.siamrpn.anchor_grid`); ``seed``: the sampler's seed
    tuple. Picklable (plain arrays and tuples), so DataLoader workers can run it next to the sampler.
    """

    def __init__(self, anchors: np.ndarray, seed, cfg: AnchorTargetConfig | None = None):
        """``cfg``: the assignment (:func:`anchor_target_config` by loss name; None: sampled, SiamRPN's)."""
        self.anchors = np.asarray(anchors, dtype=np.float64)
        self.seed = tuple(int(s) for s in (seed if isinstance(seed, (tuple, list)) else (seed,)))
        self.cfg = AnchorTargetConfig() if cfg is None else cfg

    def __call__(self, batch: dict) -> dict:
        rng = np.random.default_rng([*self.seed, int(batch["index"]), _TARGET_STREAM])
        return {**batch, **batch_targets(self.anchors, batch["box"], rng, self.cfg, batch.get("negative"))}

