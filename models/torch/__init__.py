"""PyTorch twins of the model families (``edgetrack.models.torch``)."""
