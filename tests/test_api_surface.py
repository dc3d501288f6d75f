"""The public surface of `import edgetrack` is small on purpose; changing it must be a conscious decision."""
import edgetrack

EXPECTED = {
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
}


def test_public_surface_is_exactly_the_documented_one():
    assert set(edgetrack.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(edgetrack, name), name


def test_errors_are_one_hierarchy_and_say_the_fix():
    for name in EXPECTED - {"__version__", "EdgetrackError", "Tracker", "TrackResult", "list_models"}:
        assert issubclass(getattr(edgetrack, name), edgetrack.EdgetrackError), name
    err = edgetrack.UnknownChoiceError("target", "ascend999", ["ascend310", "cpu"], fix="pick one")
    assert "ascend999" in str(err) and "ascend310, cpu" in str(err) and "fix: pick one" in str(err)
    assert isinstance(err, ValueError)
