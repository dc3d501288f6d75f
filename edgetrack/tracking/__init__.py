"""Framework-free tracking logic (numpy + OpenCV): crops, and each family's decode of the network's outputs.

Every backend — PyTorch on the training side, ONNX Runtime / Ascend on the device — runs the same code from here,
so a bundle behaves the same wherever it runs. Nothing here imports a deep-learning framework.
"""
from edgetrack.tracking.crop import box_center, check_box, check_frame, context_size, crop_and_resize, mean_color
from edgetrack.tracking.siamfc import LostParams, SiamFCParams, SiamFCTracking

__all__ = [
    "box_center",
    "check_box",
    "check_frame",
    "context_size",
    "crop_and_resize",
    "mean_color",
    "LostParams",
    "SiamFCParams",
    "SiamFCTracking",
]
