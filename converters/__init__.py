"""Checkpoint -> ONNX -> device converters (installed as ``edgetrack.converters``), one ``src2dst`` step each."""
