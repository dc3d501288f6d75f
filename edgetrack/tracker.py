"""``edgetrack.Tracker``: a device bundle, one inference backend, and the framework-free tracking logic.

::

    tracker = edgetrack.Tracker("bundles/siamfc-cpu")       # a folder written by `edgetrack convert`
    tracker.init(frame, (x, y, w, h))                       # frame: BGR uint8 H×W×3
    result = tracker.update(next_frame)                     # TrackResult(box=(x, y, w, h), score, lost)

For SiamFC the template graph runs once, at ``init``; each ``update`` runs the search graph on all scales in
one batch, then the head graph, then :class:`~edgetrack.tracking.siamfc.SiamFCTracking` decodes the responses.

``lost`` is a result, not an exception: it is ``score < lost_threshold``. ``score`` is the sigmoid of the raw
response at the chosen peak, and the network is trained with a logistic loss, so the default threshold 0.5 is the
network's own decision boundary ("the peak is less likely the target than not"). A bundle may carry its own
``lost_threshold`` in its manifest's ``tracking`` section; the ``lost_threshold`` argument overrides both. The box
is still reported when lost (SiamFC keeps searching around it).

Frames may change size between ``init`` and ``update`` (a camera that switches resolution, a resized stream):
SiamFC crops a search region around the last centre from whatever frame it gets, so this is allowed; the centre
is kept inside the new frame. The box stays in the coordinates of the frame it was last given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetrack.backends import AUTO_ORDER, BACKENDS, Session, get_backend
from edgetrack.bundle import Bundle, load_bundle
from edgetrack.errors import (
    BundleError,
    InvalidArgumentError,
    MissingDependencyError,
    TrackerStateError,
    UnknownChoiceError,
)
from edgetrack.tracking.siamfc import SiamFCParams, SiamFCTracking

__all__ = ["Tracker", "TrackResult", "list_models", "DEFAULT_LOST_THRESHOLD", "bundle_tracker"]

DEFAULT_LOST_THRESHOLD = 0.5

# Shipped model name -> bundle folder inside the package. None ships yet: trained weights come with a release.
_SHIPPED: dict[str, str] = {}

_NO_MODEL_FIX = (
    "no model ships with edgetrack yet; pass the folder of a bundle made by `edgetrack convert`, "
    "e.g. Tracker('bundles/siamfc-cpu')"
)
_SIAMFC_GRAPHS = ("template", "search", "head")


def list_models() -> list[str]:
    """Names of the models that ship with edgetrack, usable as ``Tracker(name)``. None ship yet: ``[]``."""
    return sorted(_SHIPPED)


@dataclass(frozen=True)
class TrackResult:
    """One frame's answer: ``box`` ``(x, y, w, h)`` in frame pixels, ``score`` in (0, 1), ``lost`` if the score is
    below the tracker's threshold (the box is still the tracker's best guess)."""

    box: tuple[float, float, float, float]
    score: float
    lost: bool


def _resolve_bundle(model) -> Bundle:
    if isinstance(model, Bundle):
        return model
    if model is None:
        raise InvalidArgumentError("Tracker needs a model", fix=_NO_MODEL_FIX)
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"model must be a bundle folder (str or Path), got {type(model).__name__}", fix=_NO_MODEL_FIX
        )
    if isinstance(model, str) and model in _SHIPPED:  # pragma: no cover - nothing ships yet
        return load_bundle(Path(__file__).parent / _SHIPPED[model])
    path = Path(model)
    looks_like_a_name = isinstance(model, str) and os.sep not in model and "/" not in model and not path.exists()
    if looks_like_a_name:
        raise UnknownChoiceError("model", model, list_models(), fix=_NO_MODEL_FIX)
    return load_bundle(path)


def _pick_backend(backend: str):
    if backend != "auto":
        return get_backend(backend)
    for name in AUTO_ORDER:
        try:
            return get_backend(name)
        except MissingDependencyError:
            continue
    raise MissingDependencyError(
        "running a bundle", AUTO_ORDER[0], detail=f"no backend of {sorted(BACKENDS)} is installed"
    )


class Tracker:
    """Single-object tracker running a device bundle.

    ``model``: a bundle folder written by ``edgetrack convert`` (a shipped model name once one ships; see
    :func:`list_models`). ``backend``: ``"auto"`` (the first installed of :data:`edgetrack.backends.AUTO_ORDER`) or
    a name from :data:`edgetrack.backends.BACKENDS`. ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a device
    the backend cannot use is a :class:`~edgetrack.errors.BackendError`, never a silent fall-back to the CPU.
    ``lost_threshold``: see the module docstring.

    One ``Tracker`` follows one target; use one instance per target (instances are independent and may run in
    separate threads).
    """

    def __init__(self, model=None, backend: str = "auto", device: str = "cpu", *, lost_threshold: float | None = None):
        self.bundle = _resolve_bundle(model)
        manifest = self.bundle.manifest
        if manifest.family != "siamfc":
            raise BundleError(
                f"bundle {str(self.bundle.path)!r} holds a {manifest.family!r} model, which Tracker does not "
                "support yet (supported: 'siamfc')",
                fix="convert a SiamFC checkpoint with `edgetrack convert`, or upgrade edgetrack",
            )
        tracking = dict(manifest.tracking)
        bundle_threshold = tracking.pop("lost_threshold", None)
        try:
            params = SiamFCParams(**tracking)
        except TypeError as exc:
            raise BundleError(
                f"bundle {str(self.bundle.path)!r}: its tracking parameters do not fit SiamFCParams ({exc})",
                fix="rebuild the bundle with the edgetrack version that runs it",
            ) from exc
        threshold = lost_threshold if lost_threshold is not None else bundle_threshold
        threshold = DEFAULT_LOST_THRESHOLD if threshold is None else threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise InvalidArgumentError(f"lost_threshold must be a number in [0, 1], got {threshold!r}")
        self.lost_threshold = float(threshold)
        self._check_graphs(params)

        self._backend = _pick_backend(backend)
        self.device = device
        self._sessions: dict[str, Session] = {
            name: self._backend.load(self.bundle.graph_path(name), device) for name in _SIAMFC_GRAPHS
        }
        self.logic = SiamFCTracking(params)
        self._kernel: np.ndarray | None = None

    @property
    def backend(self) -> str:
        return self._backend.name

    def _check_graphs(self, params: SiamFCParams) -> None:
        graphs = self.bundle.manifest.graphs
        missing = [g for g in _SIAMFC_GRAPHS if g not in graphs]
        if missing:
            raise BundleError(f"bundle {str(self.bundle.path)!r} lacks SiamFC graph(s) {missing}; has {sorted(graphs)}")
        t, s, h = (graphs[g] for g in _SIAMFC_GRAPHS)
        if len(t.inputs) != 1 or len(t.outputs) != 1 or len(s.inputs) != 1 or len(s.outputs) != 1:
            raise BundleError("SiamFC template and search graphs must each have one input and one output")
        if len(h.inputs) != 2 or len(h.outputs) != 1:
            raise BundleError("the SiamFC head graph must have two inputs (kernel, features) and one output")
        e, i, n = params.exemplar_size, params.instance_size, params.scale_num
        # Static shapes: a crop of another size would fail deep inside the runtime with a cryptic message.
        if t.inputs[0].shape != (1, 3, e, e) or s.inputs[0].shape != (n, 3, i, i):
            raise BundleError(
                f"bundle graphs take {t.inputs[0].shape} and {s.inputs[0].shape}, but its tracking parameters "
                f"make crops of {(1, 3, e, e)} and {(n, 3, i, i)}",
                fix="rebuild the bundle; its manifest and graphs disagree",
            )
        self._names = {
            "z": t.inputs[0].name,
            "kernel_out": t.outputs[0].name,
            "x": s.inputs[0].name,
            "features_out": s.outputs[0].name,
            "kernel_in": h.inputs[0].name,
            "features_in": h.inputs[1].name,
            "response": h.outputs[0].name,
        }

    def init(self, frame: np.ndarray, box) -> None:
        """Start tracking the target in ``box`` ``(x, y, w, h)`` of ``frame`` (BGR uint8 H×W×3)."""
        n = self._names
        z = self.logic.init(frame, box)  # validates frame and box before touching any state
        self._kernel = None  # a failing template run must not leave the previous target's kernel behind
        self._kernel = self._sessions["template"].run({n["z"]: z})[n["kernel_out"]]

    def update(self, frame: np.ndarray) -> TrackResult:
        """Track into ``frame``; returns the new box, its score and whether the target counts as lost."""
        if self._kernel is None:
            raise TrackerStateError("update() was called before init()", fix="call init(frame, box) first")
        n = self._names
        x = self.logic.search_crops(frame)
        features = self._sessions["search"].run({n["x"]: x})[n["features_out"]]
        responses = self._sessions["head"].run({n["kernel_in"]: self._kernel, n["features_in"]: features})
        box, score = self.logic.update_from_responses(responses[n["response"]])
        return TrackResult(box=tuple(float(v) for v in box), score=float(score), lost=score < self.lost_threshold)

    def __repr__(self) -> str:
        m = self.bundle.manifest
        return f"Tracker({m.model!r} from {str(self.bundle.path)!r}, backend={self.backend!r}, device={self.device!r})"


def bundle_tracker(spec: str):
    """``bundle:PATH[#DEVICE]`` for :data:`edgetrack.evaluation.TRACKERS`: a factory of :class:`Tracker`.

    The bundle is loaded and verified once, here, so a bad path fails before any sequence runs.
    """
    _, _, rest = spec.partition(":")
    path, _, device = rest.partition("#")
    if not path:
        raise InvalidArgumentError(
            f"tracker spec {spec!r} names no bundle", fix="write bundle:PATH (optionally bundle:PATH#cuda)"
        )
    bundle = load_bundle(path)
    device = device or "cpu"
    Tracker(bundle, device=device)  # fail here (family, backend, device), not once per sequence

    def factory():
        return Tracker(bundle, device=device)

    factory.tracker_name = f"{bundle.manifest.model}-{Path(path).name}"  # type: ignore[attr-defined]
    return factory
