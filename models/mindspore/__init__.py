"""MindSpore twins of the model families (``edgetrack.models.mindspore``)."""
