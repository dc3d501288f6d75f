"""Every error edgetrack raises on purpose.

Each error says what was wrong (the bad value), what would have been valid, and how to fix it. The command line
prints them as one readable message and exits with status 2; it never shows a stack trace for them.
Losing the target is not an error: ``Tracker.update`` reports it as ``TrackResult(lost=True)``.
"""
from __future__ import annotations

from typing import Iterable


class EdgetrackError(Exception):
    """Base class of every deliberate edgetrack error.

    ``fix`` is a short instruction telling the user what to do; it is appended to the message.
    """

    def __init__(self, message: str, *, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message}\n  fix: {fix}")


class InvalidArgumentError(EdgetrackError, ValueError):
    """A value given by the user (argument, option, box, frame) is not acceptable."""


class UnknownChoiceError(InvalidArgumentError):
    """A name that must be one of a fixed set of choices is not."""

    def __init__(self, what: str, value: object, choices: Iterable[str], *, fix: str | None = None):
        self.what, self.value, self.choices = what, value, sorted(choices)
        listed = ", ".join(self.choices) if self.choices else "(none available)"
        super().__init__(f"unknown {what} {value!r}; valid choices: {listed}", fix=fix)


class DatasetError(EdgetrackError):
    """A data set on disk does not have the layout or content its reader expects."""


class MissingDependencyError(EdgetrackError, ImportError):
    """An optional library needed for the asked feature is not installed."""

    def __init__(self, feature: str, package: str, *, extra: str | None = None, detail: str | None = None):
        self.feature, self.package, self.extra = feature, package, extra
        how = f"pip install 'edgetrack[{extra}]'" if extra else f"pip install {package}"
        msg = f"{feature} needs the package {package!r}, which is not installed"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg, fix=how)


class BaselineUnavailableError(EdgetrackError):
    """A baseline tracker cannot be built in this environment (missing OpenCV module or peer files)."""


class CheckpointError(EdgetrackError):
    """A checkpoint is missing, unreadable, or does not match the model it is loaded into."""


class BundleError(EdgetrackError):
    """A device bundle is missing, altered, of an unsupported format version, or incomplete."""


class ConversionError(EdgetrackError):
    """A conversion step failed (unsupported operator, parity out of tolerance, external tool failure)."""


class UnsupportedOperatorError(ConversionError):
    """A graph uses an operator (or an operator form) the target chip's toolchain does not support.

    ``op_type``, ``node`` and ``chip`` name the first offending node; ``findings`` holds every error-level finding
    of the audit (see :func:`edgetrack.ascend.ops.audit_graph`).
    """

    def __init__(self, message: str, *, op_type: str, node: str, chip: str, findings=(), fix: str | None = None):
        self.op_type, self.node, self.chip, self.findings = op_type, node, chip, tuple(findings)
        super().__init__(message, fix=fix)


class ToolchainNotFoundError(ConversionError):
    """An external converter (ATC, converter_lite) is not on PATH; ``tool`` names it, the fix says how to get it."""

    def __init__(self, tool: str, hint: str):
        self.tool = tool
        super().__init__(f"toolchain not found: {tool!r} is not on PATH", fix=hint)


class ExternalToolError(ConversionError):
    """An external converter ran and failed; its exit status and the tail of its output are in the message."""

    def __init__(self, tool: str, returncode: int, output: str, *, argv=(), fix: str | None = None):
        self.tool, self.returncode, self.output, self.argv = tool, returncode, output, tuple(argv)
        super().__init__(f"{tool} failed with exit status {returncode}; its output:\n{output}", fix=fix)


class BackendError(EdgetrackError):
    """An inference backend cannot run what was asked (library missing, device/provider not available)."""


class TrackerStateError(EdgetrackError, RuntimeError):
    """A tracker method was called in the wrong order (for example ``update`` before ``init``)."""


def require(module: str, *, feature: str, package: str | None = None, extra: str | None = None):
    """Import an optional module or raise :class:`MissingDependencyError` that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised through the callers' tests
        raise MissingDependencyError(feature, package or module.split(".")[0], extra=extra, detail=str(exc)) from exc


__all__ = [
    "EdgetrackError",
    "InvalidArgumentError",
    "UnknownChoiceError",
    "DatasetError",
    "MissingDependencyError",
    "BaselineUnavailableError",
    "CheckpointError",
    "BundleError",
    "ConversionError",
    "UnsupportedOperatorError",
    "ToolchainNotFoundError",
    "ExternalToolError",
    "BackendError",
    "TrackerStateError",
    "require",
]
