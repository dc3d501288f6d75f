"""Framework-free tracking logic (numpy + OpenCV): crops, each family's decode of the network's outputs, and the
lost-target search and recovery they share.

Every backend — PyTorch on the training side, ONNX Runtime / Ascend on the device — runs the same code from here,
so a bundle behaves the same wherever it runs. Nothing here imports a deep-learning framework.
"""
from edgetrack.tracking.crop import (
    box_center,
    check_box,
    check_frame,
    context_size,
    crop_and_resize,
    mean_color,
    reaches_outside,
)
from edgetrack.tracking.siamese import LostParams
from edgetrack.tracking.siamfc import SiamFCParams, SiamFCTracking
from edgetrack.tracking.siamrpn import SiamRPNParams, SiamRPNTracking

__all__ = [
    "box_center",
    "check_box",
    "check_frame",
    "context_size",
    "crop_and_resize",
    "mean_color",
    "reaches_outside",
    "LostParams",
    "SiamFCParams",
    "SiamFCTracking",
    "SiamRPNParams",
    "SiamRPNTracking",
]
