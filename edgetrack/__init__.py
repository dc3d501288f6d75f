"""edgetrack: single-object visual tracking for motion-blurred video, from training to edge devices.

``import edgetrack`` needs only numpy, OpenCV and an inference runtime; training and conversion code lives in
``edgetrack.models`` / ``edgetrack.converters`` and is never imported from here.
"""
from edgetrack._version import __version__
from edgetrack.errors import (
    BackendError,
    BaselineUnavailableError,
    BundleError,
    CheckpointError,
    ConversionError,
    DatasetError,
    EdgetrackError,
    InvalidArgumentError,
    MissingDependencyError,
    TrackerStateError,
    UnknownChoiceError,
)
from edgetrack.tracker import Tracker, TrackResult, list_models

__all__ = [
    "__version__",
    "Tracker",
    "TrackResult",
    "list_models",
    "EdgetrackError",
    "InvalidArgumentError",
    "UnknownChoiceError",
    "DatasetError",
    "MissingDependencyError",
    "BaselineUnavailableError",
    "CheckpointError",
    "BundleError",
    "ConversionError",
    "BackendError",
    "TrackerStateError",
]
