"""``edgetrack.Tracker``: a device bundle, one inference backend, and the framework-free tracking logic.

::

    tracker = edgetrack.Tracker("bundles/siamfc-cpu")       # a folder written by `edgetrack convert`
    tracker.init(frame, (x, y, w, h))                       # frame: BGR uint8 H×W×3
    result = tracker.update(next_frame)                     # TrackResult(box=(x, y, w, h), score, lost)

The template graph runs once, at ``init``; each ``update`` runs the search graph (SiamFC: all scales in one batch;
SiamRPN: one crop), then the head graph, then the family's tracking class
(:class:`~edgetrack.tracking.siamfc.SiamFCTracking`, :class:`~edgetrack.tracking.siamrpn.SiamRPNTracking`) decodes
the maps.

``lost`` is a result, not an exception. A frame whose ``score`` is below ``lost_threshold`` (or, with
``LostParams.apce_ratio``, whose peak is much less sharp than usual) is unconfident; a few unconfident frames in a
row make the target lost, and the tracker then searches wider, at no extra cost per frame, until it finds the
target again (:mod:`edgetrack.tracking.siamfc` and :mod:`edgetrack.tracking.siamrpn` have the design,
:class:`~edgetrack.tracking.LostParams` its parameters; ``LostParams(enabled=False)`` makes ``lost`` plain
``score < lost_threshold``). The default threshold is the family's: for SiamFC, whose score is the sigmoid of a
logistic-loss response, 0.5, the network's own decision boundary; for SiamRPN, a softmax probability, also 0.5
(:data:`~edgetrack.tracking.siamrpn.DEFAULT_SCORE_THRESHOLD`: recalibrated for tracking accuracy; 0.9 flags most
occlusions at a cost of 0.02-0.05 AUC, see :mod:`edgetrack.tracking.siamrpn`). A bundle may carry its own ``lost_threshold`` in
its manifest's ``tracking`` section; ``lost_params.score_threshold`` and then the ``lost_threshold`` argument
override it. The box is still reported when lost: the last confident one (or, once found, the candidate's
position).

Frames may change size between ``init`` and ``update`` (a camera that switches resolution, a resized stream):
SiamFC crops a search region around the last centre from whatever frame it gets, so this is allowed; the centre
is kept inside the new frame. The box stays in the coordinates of the frame it was last given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Callable, Mapping
from pathlib import Path

import numpy as np

from edgetrack.backends import AUTO_ORDER, BACKENDS, Session, get_backend
from edgetrack.backends._ascend import adapt_feed, auto_backends, check_bundle_backend
from edgetrack.bundle import Bundle, load_bundle
from edgetrack.errors import (
    BundleError,
    InvalidArgumentError,
    MissingDependencyError,
    TrackerStateError,
    UnknownChoiceError,
)
from edgetrack.tracking.blur import DEBLUR_MODES, DEBLUR_SECTION, DeblurSpec, DeblurStage, DeblurStats
from edgetrack.tracking import siamfc, siamrpn
from edgetrack.tracking.siamese import LostParams

__all__ = ["Tracker", "TrackResult", "TrackingSettings", "list_models", "tracking_settings", "tracking_class",
           "DEFAULT_MODEL", "DEFAULT_LOST_THRESHOLD", "bundle_tracker"]

DEFAULT_LOST_THRESHOLD = siamfc.DEFAULT_SCORE_THRESHOLD  # SiamFC's; each family has its own (_FAMILIES)

# Shipped models: bundles inside the package (edgetrack/assets/models/<name>/), made by `edgetrack convert` from
# checkpoints trained on the GPU machine (the recipe: edgetrack/assets/models/README.md). DEFAULT_MODEL is what
# Tracker() runs with no model named.
_MODELS_DIR = Path(__file__).parent / "assets" / "models"
DEFAULT_MODEL = "siamrpn-eca"  # CPU-friendly: about 1 GMAC per frame (HSM-SiamFC needs ~50)

_NO_MODEL_FIX = (
    "pass a shipped model name (edgetrack.list_models()) or the folder of a bundle made by `edgetrack convert`, "
    "e.g. Tracker('bundles/siamfc-cpu')"
)
_GRAPHS = ("template", "search", "head")

@dataclass(frozen=True)
class _Family:
    """What the Tracker needs to know of a model family. Every family splits into the same three graphs: template
    z -> kernel (once), search x -> features, head (kernel, features) -> maps; its tracking class turns crops and
    maps into boxes, score and ``lost``."""

    params: type  # its tracking parameters, built from the bundle manifest's ``tracking`` section
    logic: type  # its tracking class: logic(params, LostParams), with init / search_crops / <update> / lost
    head_roles: tuple[str, ...]  # the head graph's outputs, in order
    update: Callable  # logic.<update>(*maps) -> (box, score)


_FAMILIES: dict[str, _Family] = {
    "siamfc": _Family(siamfc.SiamFCParams, siamfc.SiamFCTracking, ("response",),
                      siamfc.SiamFCTracking.update_from_responses),
    "siamrpn": _Family(siamrpn.SiamRPNParams, siamrpn.SiamRPNTracking, ("cls", "loc"),
                       siamrpn.SiamRPNTracking.update_from_outputs),
}


@dataclass(frozen=True)
class TrackingSettings:
    """What a :class:`Tracker` of a bundle tracks with: its family's tracking parameters and the lost-target logic's
    (the threshold resolved: argument, ``lost_params``, bundle, family default)."""

    params: object  # SiamFCParams or SiamRPNParams
    lost: LostParams

    def to_dict(self) -> dict:
        """Plain JSON types (e.g. for a benchmark's record of what it measured)."""
        import json
        from dataclasses import asdict

        return json.loads(json.dumps({"params": asdict(self.params), "lost": asdict(self.lost)}, default=str))


def tracking_settings(model=None, *, lost_threshold: float | None = None, lost_params: LostParams | None = None,
                      tracking: Mapping[str, float] | None = None) -> TrackingSettings:
    """The settings ``Tracker(model, lost_threshold=..., lost_params=..., tracking=...)`` tracks with, without
    loading any graph (the arguments mean what they mean to :class:`Tracker`, and bad ones raise the same errors).
    A new default in edgetrack's code changes them for the same bundle, so a measurement records them."""
    bundle = _resolve_bundle(model)
    manifest = bundle.manifest
    if manifest.family not in _FAMILIES:
        raise BundleError(
            f"bundle {str(bundle.path)!r} holds a {manifest.family!r} model, which this Tracker does not "
            f"run (families: {sorted(_FAMILIES)})",
            fix="upgrade edgetrack, or convert a checkpoint of a supported family with `edgetrack convert`",
        )
    family = _FAMILIES[manifest.family]
    params_cls = family.params
    tracking_cfg = dict(manifest.tracking)
    bundle_threshold = tracking_cfg.pop("lost_threshold", None)
    if tracking is not None:
        if not isinstance(tracking, Mapping):
            raise InvalidArgumentError(f"tracking must be a mapping of parameter names to values, got "
                                       f"{type(tracking).__name__}", fix="pass e.g. tracking={'penalty_k': 0.1}")
        known = {f.name for f in fields(params_cls)}
        unknown = sorted(set(tracking) - known)
        if unknown:
            raise InvalidArgumentError(
                f"tracking parameter(s) {unknown} do not exist for a {manifest.family} model",
                fix=f"use some of {sorted(known)}")
        tracking_cfg.update(tracking)
    try:
        params = params_cls(**tracking_cfg)
    except TypeError as exc:
        raise BundleError(
            f"bundle {str(bundle.path)!r}: its tracking parameters do not fit {params_cls.__name__} ({exc})",
            fix="rebuild the bundle with the edgetrack version that runs it",
        ) from exc
    if lost_params is not None and not isinstance(lost_params, LostParams):
        raise InvalidArgumentError(
            f"lost_params must be edgetrack.tracking.LostParams, got {type(lost_params).__name__}",
            fix="pass LostParams(...), or None for the defaults",
        )
    threshold = lost_threshold
    if threshold is None and lost_params is not None:
        threshold = lost_params.score_threshold
    if threshold is None:
        threshold = bundle_threshold
    # None so far: the family's calibrated default (what LostParams' None means to its tracking class).
    threshold = family.logic.default_score_threshold if threshold is None else threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise InvalidArgumentError(f"lost_threshold must be a number in [0, 1], got {threshold!r}")
    lost = replace(lost_params or LostParams(), score_threshold=float(threshold))
    if lost.apce_ratio is None:  # as the tracking class resolves it: what the tracker really uses
        lost = replace(lost, apce_ratio=family.logic.default_apce_ratio)
    return TrackingSettings(params, lost)


def tracking_class(params) -> type:
    """The tracking class a :class:`Tracker` drives for ``params``' family (``SiamFCParams`` -> ``SiamFCTracking``,
    ``SiamRPNParams`` -> ``SiamRPNTracking``): for code that must cut crops exactly as the Tracker does."""
    for family in _FAMILIES.values():
        if isinstance(params, family.params):
            return family.logic
    raise InvalidArgumentError(
        f"params must be one tracker family's tracking parameters "
        f"({', '.join(f.params.__name__ for f in _FAMILIES.values())}), got {type(params).__name__}",
        fix="pass the model's own parameters (SiamFCParams(), or SiamRPNConfig.tracking_params())",
    )


def _shipped() -> dict[str, Path]:
    if not _MODELS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(_MODELS_DIR.iterdir()) if (p / "manifest.json").is_file()}


def list_models() -> list[str]:
    """Names of the models that ship with edgetrack, usable as ``Tracker(name)``."""
    return sorted(_shipped())


@dataclass(frozen=True)
class TrackResult:
    """One frame's answer: ``box`` ``(x, y, w, h)`` in frame pixels, ``score`` in (0, 1), ``lost`` while the
    target counts as lost (see the module docstring; the box is then the last confident one)."""

    box: tuple[float, float, float, float]
    score: float
    lost: bool


def _resolve_bundle(model) -> Bundle:
    if isinstance(model, Bundle):
        return model
    shipped = _shipped()
    if model is None:
        if DEFAULT_MODEL not in shipped:
            raise BundleError(
                f"the default model {DEFAULT_MODEL!r} is missing from this installation ({_MODELS_DIR})",
                fix="reinstall edgetrack, or " + _NO_MODEL_FIX,
            )
        model = DEFAULT_MODEL
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"model must be a bundle folder (str or Path), got {type(model).__name__}", fix=_NO_MODEL_FIX
        )
    if isinstance(model, str) and model in shipped:
        return load_bundle(shipped[model])
    path = Path(model)
    looks_like_a_name = isinstance(model, str) and os.sep not in model and "/" not in model and not path.exists()
    if looks_like_a_name:
        raise UnknownChoiceError("model", model, list_models(), fix=_NO_MODEL_FIX)
    return load_bundle(path)


def _pick_backend(backend: str, bundle: Bundle):
    if backend != "auto":
        return get_backend(backend)
    ascend = auto_backends(bundle)  # an Ascend bundle: the runtime of its device files, never the simulator
    if ascend is not None:
        if not ascend:
            raise BundleError(f"bundle {str(bundle.path)!r}: no backend runs its device toolchain",
                              fix="pass backend='acl', 'mslite' or 'simulator'")
        return get_backend(ascend[0])
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
    Ascend: ``backend="acl"`` (OM files) or ``"mslite"`` (MindIR) with ``device="npu"``/``"npu:N"``;
    ``backend="simulator", device="ascend310"`` (310, 310B, 310P, 910) runs any bundle as that chip would, on the
    CPU (:mod:`edgetrack.backends.simulator`). ``device=None``: the backend's usual device.
    ``lost_threshold`` and ``lost_params`` (a :class:`~edgetrack.tracking.LostParams`): see the module docstring.

    ``deblur``: for a bundle with a deblur stage (e.g. ``deblur-siamrpn``), ``"auto"`` deblurs a crop only when the
    blur gate (:mod:`edgetrack.tracking.blur`) finds it blurred, ``"always"`` deblurs every crop, ``"never"`` none
    (its graphs are not even loaded). The template crop is gated and deblurred at ``init``, the search crops every
    frame. For a bundle without the stage ``"auto"`` and ``"never"`` change nothing and ``"always"`` is an error.
    :attr:`stats` says what the stage did since ``init`` (frames deblurred, seconds spent).

    ``tracking``: tracking hyper-parameters that replace the bundle's (names of
    :class:`~edgetrack.tracking.siamfc.SiamFCParams` / :class:`~edgetrack.tracking.siamrpn.SiamRPNParams`, e.g.
    ``{"window_influence": 0.3}``), to tune a model without converting it again; geometry fixed by the graphs
    (crop and map sizes) is checked against them as always.

    One ``Tracker`` follows one target; use one instance per target (instances are independent and may run in
    separate threads).
    """

    def __init__(
        self,
        model=None,
        backend: str = "auto",
        device: str | None = None,
        *,
        lost_threshold: float | None = None,
        lost_params: LostParams | None = None,
        deblur: str = "auto",
        tracking: Mapping[str, float] | None = None,
    ):
        if not isinstance(deblur, str) or deblur not in DEBLUR_MODES:
            raise UnknownChoiceError("deblur", deblur, DEBLUR_MODES,
                                     fix="'auto' deblurs blurred crops only, 'always' every crop, 'never' none")
        self.bundle = _resolve_bundle(model)
        settings = tracking_settings(self.bundle, lost_threshold=lost_threshold, lost_params=lost_params,
                                     tracking=tracking)
        self.family = self.bundle.manifest.family
        family = self._family = _FAMILIES[self.family]
        self._head_roles = family.head_roles
        self.settings = settings
        params = settings.params
        self.lost_threshold = settings.lost.score_threshold
        self._check_graphs(params)

        if isinstance(backend, str) and backend.strip().lower() in BACKENDS:
            # A target the backend cannot run is said before whether its library is installed matters.
            check_bundle_backend(self.bundle, backend.strip().lower(), device)
        self._backend = _pick_backend(backend, self.bundle)
        # None: the backend's usual device ("cpu" for ONNX Runtime, "npu" -- the bundle's chip -- on Ascend).
        device = getattr(self._backend, "default_device", "cpu") if device is None else device
        self.device = device
        self._sessions: dict[str, Session] = {
            name: self._backend.load(self.bundle.graph_path(name), device) for name in _GRAPHS
        }
        self._deblur = self._deblur_stage(deblur, device)
        self.logic = family.logic(params, settings.lost)
        self._kernel: np.ndarray | None = None
        # A backend that can crop and decode on its device does so (edgetrack.tracking.device); the blur gate reads
        # host crops, so a bundle whose deblur stage is on keeps the host path.
        ops_for = getattr(self._backend, "tracking_ops", None)
        self._ops = (ops_for(device, pays=self.logic.device_tracking_pays)
                     if ops_for is not None and not self._deblur.active else None)
        self.logic.use_device(self._ops)
        # On the device a frame is one program: crops, search and head graphs and the decode (one CUDA graph on a
        # GPU), between the host's choice of crops and its reading of the decoded vector.
        self._program = None if self._ops is None else self._ops.program(self._device_step)

    @property
    def device_tracking(self) -> bool:
        """Whether the search crops and the decode run on the backend's device (:mod:`edgetrack.tracking.device`)
        rather than in numpy and OpenCV on the host."""
        return self._ops is not None

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def deblur(self) -> str:
        """The deblur mode asked for ("auto", "always" or "never")."""
        return self._deblur.mode

    @property
    def has_deblur_stage(self) -> bool:
        return self._deblur.gate is not None

    @property
    def stats(self) -> DeblurStats:
        """The deblur stage since the last ``init``: frames, frames deblurred, seconds in the gate and the deblurrer,
        the last blur measure (a frozen snapshot; see :class:`~edgetrack.tracking.blur.DeblurStats`)."""
        return self._deblur.stats

    def _deblur_stage(self, mode: str, device) -> DeblurStage:
        """The deblur stage of this bundle in ``mode``: its gate and graphs, or a pass-through without one."""
        spec = DeblurSpec.from_manifest(self.bundle.manifest)
        if spec is None:
            if mode == "always":
                with_stage = _deblur_models()
                raise InvalidArgumentError(
                    f"deblur='always' needs a model with a deblur stage; {self.bundle.manifest.model!r} "
                    f"({str(self.bundle.path)!r}) has none",
                    fix=(f"use a model with one ({', '.join(with_stage)}) " if with_stage else
                         "add one to the bundle (edgetrack.converters.deblur2onnx.add_deblur) ")
                    + "or pass deblur='auto' or 'never'",
                )
            return DeblurStage(mode)
        if mode == "never":
            return DeblurStage(mode, spec.gate)
        graphs = self.bundle.manifest.graphs
        runners = {}
        for role, name in spec.graphs.items():
            g, crop = graphs[name], graphs[role].inputs[0]
            if len(g.inputs) != 1 or len(g.outputs) != 1 or g.inputs[0].shape != crop.shape \
                    or g.outputs[0].shape != crop.shape:
                raise BundleError(
                    f"bundle {str(self.bundle.path)!r}: deblur graph {name!r} must map the {role} crop {crop.shape} "
                    f"to the same shape; it takes {[t.shape for t in g.inputs]} and gives "
                    f"{[t.shape for t in g.outputs]}",
                    fix="rebuild the bundle's deblur stage for this tracker (add_deblur)")
            session = self._sessions[name] = self._backend.load(self.bundle.graph_path(name), device)
            runners[role] = _runner(session, g.inputs[0].name, g.outputs[0].name)
        return DeblurStage(mode, spec.gate, runners["template"], runners["search"])

    def _check_graphs(self, params) -> None:
        graphs = self.bundle.manifest.graphs
        where = f"bundle {str(self.bundle.path)!r}"
        missing = [g for g in _GRAPHS if g not in graphs]
        if missing:
            raise BundleError(f"{where} lacks {self.family} graph(s) {missing}; has {sorted(graphs)}")
        t, s, h = (graphs[g] for g in _GRAPHS)
        if len(t.inputs) != 1 or len(t.outputs) != 1 or len(s.inputs) != 1 or len(s.outputs) != 1:
            raise BundleError(f"{where}: template and search graphs must each have one input and one output")
        roles = self._head_roles
        if len(h.inputs) != 2 or len(h.outputs) != len(roles):
            raise BundleError(f"{where}: the {self.family} head graph must take (kernel, features) and give "
                              f"{len(roles)} output(s) {list(roles)}; it has {len(h.inputs)} in, {len(h.outputs)} out")
        e, i = params.exemplar_size, params.instance_size
        # SiamFC searches all its scales in one batch (or one crop against a template per scale); SiamRPN one crop.
        n, nt = getattr(params, "search_batch", 1), getattr(params, "template_batch", 1)
        # Static shapes: a crop of another size would fail deep inside the runtime with a cryptic message.
        if t.inputs[0].shape != (nt, 3, e, e) or s.inputs[0].shape != (n, 3, i, i):
            raise BundleError(
                f"bundle graphs take {t.inputs[0].shape} and {s.inputs[0].shape}, but its tracking parameters "
                f"make crops of {(nt, 3, e, e)} and {(n, 3, i, i)}",
                fix="rebuild the bundle for these tracking parameters (scale_num and scale_search fix the graphs' "
                    "batch sizes), or leave them at the bundle's",
            )
        self._names = {
            "z": t.inputs[0].name,
            "kernel_out": t.outputs[0].name,
            "x": s.inputs[0].name,
            "features_out": s.outputs[0].name,
            "kernel_in": h.inputs[0].name,
            "features_in": h.inputs[1].name,
            "maps": tuple(o.name for o in h.outputs),
        }

    def init(self, frame: np.ndarray, box) -> None:
        """Start tracking the target in ``box`` ``(x, y, w, h)`` of ``frame`` (BGR uint8 H×W×3)."""
        n = self._names
        z = self.logic.init(frame, box)  # validates frame and box before touching any state
        self._kernel = None  # a failing template run must not leave the previous target's kernel behind
        z = self._deblur.template(z, self.logic.exemplar_side / self.logic.params.exemplar_size)
        template = self._sessions["template"]
        self._kernel = self._run(template, {n["z"]: adapt_feed(template, n["z"], z)})[n["kernel_out"]]

    def _run(self, graph: Session, feeds) -> dict:
        # With device ops, the template's kernel stays on the device, where the frame program reads it.
        return graph.run(feeds) if self._ops is None else graph.run(feeds, device_outputs=True)

    def update(self, frame: np.ndarray) -> TrackResult:
        """Track into ``frame``; returns the new box, its score and whether the target counts as lost."""
        if self._kernel is None:
            raise TrackerStateError("update() was called before init()", fix="call init(frame, box) first")
        if self._program is not None:
            region, request = self.logic.search_request(frame)
            decoded = self._program(region, request, self._kernel, capacity=frame.size)
            box, score = self.logic.update_from_device(decoded)
            return TrackResult(box=tuple(float(v) for v in box), score=float(score), lost=bool(self.logic.lost))
        n = self._names
        x = self.logic.search_crops(frame)
        params = self.logic.params
        x = self._deblur.search(x, self.logic.search_side / params.instance_size, params.exemplar_size)
        x = adapt_feed(self._sessions["search"], n["x"], x)
        features = self._sessions["search"].run({n["x"]: x})[n["features_out"]]
        outputs = self._sessions["head"].run({n["kernel_in"]: self._kernel, n["features_in"]: features})
        box, score = self._family.update(self.logic, *(outputs[name] for name in n["maps"]))
        return TrackResult(box=tuple(float(v) for v in box), score=float(score), lost=bool(self.logic.lost))

    def _device_step(self, pixels, request, kernel):
        """One frame on the device (:class:`~edgetrack.tracking.device.DeviceOps`' program; captured, so no step
        may wait for the host): the search crops sampled from the frame's region, the search and head graphs, the
        family's decode into one vector."""
        n = self._names
        x = self._ops.sample(pixels, request, *self.logic.crop_layout)
        features = self._sessions["search"].forward({n["x"]: x})[n["features_out"]]
        outputs = self._sessions["head"].forward({n["kernel_in"]: kernel, n["features_in"]: features})
        return self.logic.decode_on_device(*(outputs[name] for name in n["maps"]), request)

    def close(self) -> None:
        """Release what the backend holds for this tracker (on an NPU: models and device memory)."""
        if self._program is not None:
            self._program.close()
        for session in self._sessions.values():
            close = getattr(session, "close", None)
            if close is not None:
                close()

    def __repr__(self) -> str:
        m = self.bundle.manifest
        return f"Tracker({m.model!r} from {str(self.bundle.path)!r}, backend={self.backend!r}, device={self.device!r})"


def _runner(session: Session, input_name: str, output_name: str):
    def run(crops: np.ndarray) -> np.ndarray:
        return session.run({input_name: adapt_feed(session, input_name, crops)})[output_name]

    return run


def _deblur_models() -> list[str]:
    """Shipped models whose bundle has a deblur stage (read from their manifests; no graph is hashed)."""
    import json

    out = []
    for name, path in _shipped().items():
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest.get("preprocessing"), dict) and DEBLUR_SECTION in manifest["preprocessing"]:
            out.append(name)
    return out


def _spec_options(spec: str, query: str) -> dict:
    """``key=value&...`` of a tracker spec -> Tracker keyword arguments (see :func:`bundle_tracker`)."""
    options: dict = {}
    tracking: dict = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not value:
            raise InvalidArgumentError(f"tracker spec {spec!r}: option {item!r} is not key=value",
                                       fix="write e.g. bundle:PATH?backend=torch&device=cuda&window_influence=0.3")
        if key in ("backend", "device", "deblur"):
            options[key] = value.strip()
            continue
        try:
            number = float(value)
            # "3" is an integer (scale_num, score sizes), "3.0" and "0.3" floats
            tracking[key] = int(number) if number.is_integer() and value.strip().lstrip("+-").isdigit() else number
        except ValueError:
            raise InvalidArgumentError(f"tracker spec {spec!r}: tracking parameter {key}={value!r} is not a number",
                                       fix="backend, device and deblur take names; tracking parameters numbers")
    if tracking:
        options["tracking"] = tracking
    return options


def bundle_tracker(spec: str):
    """``bundle:PATH[#DEVICE][?OPTIONS]`` or ``model:NAME[#DEVICE][?OPTIONS]`` (a shipped model) for
    :data:`edgetrack.evaluation.TRACKERS`: a factory of :class:`Tracker`.

    ``OPTIONS``: ``key=value`` pairs joined by ``&``: ``backend``, ``device``, ``deblur`` (Tracker's arguments) and
    tracking hyper-parameters (Tracker's ``tracking``), e.g.
    ``bundle:b/deblur-siamrpn?backend=torch&device=cuda&deblur=never&window_influence=0.3``. The tracker's name in
    tables carries the options, so variants of one bundle stay apart.

    The bundle is loaded and verified once, here, so a bad path fails before any sequence runs.
    """
    kind, _, rest = spec.partition(":")
    rest, _, query = rest.partition("?")
    path, _, device = rest.partition("#")
    if not path:
        raise InvalidArgumentError(
            f"tracker spec {spec!r} names no {kind}",
            fix=f"write bundle:PATH or model:NAME (one of {list_models()}), optionally with #cuda",
        )
    if kind.strip().lower() == "model" and path not in _shipped():
        raise UnknownChoiceError("model", path, list_models(), fix="name a shipped model, or use bundle:PATH")
    bundle = _resolve_bundle(path)
    options = _spec_options(spec, query)
    if device and "device" in options:
        raise InvalidArgumentError(f"tracker spec {spec!r} names the device twice", fix="keep #DEVICE or ?device=")
    options.setdefault("device", device or "cpu")
    Tracker(bundle, **options)  # fail here (family, backend, device), not once per sequence

    def factory():
        return Tracker(bundle, **options)

    name = path if kind.strip().lower() == "model" else f"{bundle.manifest.model}-{Path(path).name}"
    if query:
        name += "?" + query
    factory.tracker_name = name  # type: ignore[attr-defined]
    return factory
