"""Crops and decoding on the backend's device: what a backend offers so that the tracking classes need not do their
pixel work on the host, and why it is shaped this way.

The problem
-----------
On one H100 and one stream, the numpy/OpenCV work around the networks was 42-56 % of a frame
(``benchmarks/results/gpu-stages/``): SiamRPN's search crop (``cv2.warpAffine`` + NCHW float conversion) 0.45 ms
and its decode 0.39 ms against 1.22 ms of networks; SiamFC's three crops 1.05 ms and its decode 1.37 ms (three
17×17 → 272×272 bicubic ``cv2.resize`` and the peak search) against 2.26 ms. On the CPU the same work is 4-6 % of a
frame and stays where it is.

The design: a backend capability, with the tracking math written once
---------------------------------------------------------------------
Three ways were weighed:

(a) *A backend capability* (chosen for the crop). A backend may offer ``tracking_ops(device)``, an object of the
    :class:`DeviceOps` protocol below; the torch backend does (``TorchDeviceOps`` in
    :mod:`edgetrack.backends.torchcuda`, the only file that imports torch). The tracking classes keep every
    decision: which regions to crop (centres, sides, scales, search windows while lost), whether the crop reaches
    outside the frame and so which padding colour (``cv2.mean`` on the host, as before), and the geometry, as one
    2×3 map per crop from :func:`~edgetrack.tracking.crop.crop_affine` — the same map ``cv2.warpAffine`` is given
    on the host path. The device only turns (frame, maps, pad) into pixels: it uploads the part of the uint8
    frame the crops read (once per update, not the whole frame: at 1920×1080 a full upload would cost what the
    host crop costs), and samples it with ``grid_sample`` at exactly those positions, bilinear, padding colour
    outside, rounded to whole grey levels as a uint8 crop is.
(b) *Decode math written once for numpy and torch arrays* (chosen for both decodes). SiamFC's upsampling is the
    device's (``DeviceOps.upsample_bicubic``: torch's bicubic is OpenCV's ``INTER_CUBIC`` kernel, a = −0.75,
    half-pixel centres, replicated border); the peak search that follows —
    :func:`~edgetrack.tracking.siamfc.peak_search`: scale penalty, normalisation, cosine window, argmax — is one
    function written with the operations numpy arrays and torch tensors share, plus ``max_rows`` from the ops.
    The host path calls the same function with numpy arrays and ``cv2.resize``, with the same float32 operations
    in the same order as before, so CPU results do not change. Only the 17×17 maps (for the finiteness check and
    the APCE) and three numbers (best scale, flat index, peak value) come back to the host. SiamRPN's decode,
    :func:`~edgetrack.tracking.siamrpn.select_anchor` — the two-class softmax as a logistic of the difference, the
    sizes decoded against the anchors, the scale/ratio penalty, the cosine window, the argmax over 3 125 anchors,
    in float64 as on the host — is written with the functions numpy and torch share (``xp``: numpy, or
    ``DeviceOps.xp``). On the device one vector of ten numbers comes back per frame (the best anchor's flat
    index, score, penalty, scale and ratio change, size and offsets, and whether every value of both maps is
    finite: ``_check_map``'s NaN/infinity error, raised after that one copy rather than before the decode); the
    best anchor's 25×25 score map only when the APCE test asks for it (``Confidence.judge`` takes a function; the
    test is off by default for SiamRPN). Shapes are checked before anything runs, as on the host. The host path
    calls the same function with numpy arrays and gives the boxes it gave before bit for bit.
(c) *Appending the SiamFC upsampling to the head graph for cuda bundles* was not taken: it changes the bundle
    (a cuda bundle's head would answer differently from the CPU bundle's, and from the manifest's parity
    figures), the Ascend converters reject bicubic ``Resize`` anyway, and the peak search would still run on the
    host over 3 × 272 × 272 values.

With ops, ``search_crops`` returns a device tensor that the search graph takes as its input directly, the search
graph's features go to the head on the device, and the head's maps come back to the tracking class as device
tensors (``TorchSession.run(feeds, device_outputs=True)``); nothing of the frame's size crosses the bus twice.
Every other backend (ONNX Runtime, the Ascend ones, the simulator) has no ``tracking_ops`` and keeps the numpy
path, unchanged; so does the torch backend on the CPU unless asked (``TorchBackend(device_tracking=True)`` or
``EDGETRACK_TORCH_DEVICE_TRACKING=1``), and so does any bundle whose deblur stage is on (the blur gate measures
host crops). On CUDA the default follows the tracking family's ``device_tracking_pays``, measured on an H100
(``benchmarks/results/gpu-device-tracking/``): SiamFC runs ×1.8–2.2 faster on the device path and takes it;
SiamRPN runs ×0.78–0.83 as fast there (its decode's small kernels cost more in launches than numpy does) and keeps
the host path unless asked. ``Tracker.device_tracking`` says which path a tracker took.

Agreement with the host path (tests/test_device_tracking.py, torch on the CPU)
------------------------------------------------------------------------------
OpenCV 4's ``warpAffine`` (4.10 to 4.13 checked) rounds each sample position to 1/32 px (after a rounding to
1/1024 px) and computes the bilinear weights in fixed point; OpenCV 5's samples at float32 positions with float
weights (:func:`~edgetrack.tracking.crop.opencv_rounds_positions` probes which one is installed). Sampling at the exact positions ``M · (u, v, 1)`` instead differs
from it, over 40 crops per kind (inside the frame, across its border, far outside; 31 to 255 px): by at most 7 grey
levels, mean 0.23, 17 % of values, on one-pixel uniform noise; at most 3, mean 0.018, 1.6 % of values, on smooth
content (the largest ones along the frame's edge against the padding colour). So the tracking class gives the
device OpenCV's own positions (:func:`~edgetrack.tracking.crop.sample_positions`, numpy, from the same
:func:`~edgetrack.tracking.crop.crop_affine` map), and the device samples a region padded to power-of-two sides, where
``grid_sample``'s coordinates, weights and sums are exact in float32; rounded half up as OpenCV rounds, the crops
are ``cv2.warpAffine``'s exactly (0 grey levels on every crop of the tests); against OpenCV 5 they are within 1
grey level in 0.01 % of values (float32 weights summed in another order). The bicubic upsampling agrees with
``cv2.resize`` within 1e-5 of the map's largest magnitude (the sums are added in another order), and trackers on
the device give the host path's boxes within 0.01 px and scores within 1e-4, tracking
and searching while lost. One case cannot agree by construction: a featureless frame gives a flat map whose argmax
is a tie that the last bit of the sums decides. SiamRPN's anchor choice is numpy's to 1e-12 (the same anchor; the
difference is torch's and numpy's ``exp`` in the last bits), and a SiamRPN track on random head outputs — tracked,
lost, searched for and found again, 1 800 frames over 12 sequences — gives the host's boxes within 2e-13 px,
scores within 3e-16 and the same lost flags.

What is left
------------
* *SiamRPN's device decode does not pay yet.* It is some 40 small kernels over 3 125 values: 1.68 ms against the
  host's 0.52 on an H100 (stages synchronised), and its single ``grid_sample`` crop 0.95 against OpenCV's 0.58 ms.
  The next step is to capture ``select_anchor`` with the head in the CUDA graph (static shapes already; the target
  size would become a device input) or to fuse it with ``torch.compile``; then ``device_tracking_pays`` can turn
  on for SiamRPN.
* One wait for the device per frame stays, by construction: the next crop's centre depends on the chosen anchor
  (SiamFC likewise on its peak). Several trackers in one process would hide it only by running on streams of their
  own, which the Tracker does not do.
* SiamFC still copies its three 17×17 maps back every frame (for the finiteness check and the APCE test, which is
  on by default for SiamFC); a device reduction could replace them by a few numbers, as SiamRPN's.
* A bundle whose deblur stage is on keeps the host path (the blur gate measures host crops); so do the other
  backends (ONNX Runtime's CUDA provider could offer ``tracking_ops`` through DLPack).
* fp16 cuda bundles: the head's fp16 maps are decoded in float64 on the device as on the host; agreement with the
  host path on a GPU is tested with fp32 bundles only (``tests/test_device_tracking.py``'s CUDA tests).

Measuring it on the GPU
-----------------------
``benchmarks/gpu_speed.py`` times crop / decode / the rest per stage; ``--sync-stages`` makes each stage wait for
the device so that work launched asynchronously is charged to the stage that launched it, and
``EDGETRACK_TORCH_DEVICE_TRACKING=0`` gives the host path for comparison::

    python -m pytest tests/test_device_tracking.py -q     # its CUDA tests: crops, anchor choice, boxes
    for dt in 1 0; do EDGETRACK_TORCH_DEVICE_TRACKING=$dt python benchmarks/gpu_speed.py \\
        --bundle HSM_CUDA_BUNDLE --bundle siamrpn-eca --deblur never --streams 1 --backends torch \\
        --synthetic simple --measure 300 --sync-stages --out /tmp/out/stages-640-dt$dt; done
    for dt in 1 0; do EDGETRACK_TORCH_DEVICE_TRACKING=$dt python benchmarks/gpu_speed.py \\
        --bundle siamrpn-eca --deblur never --streams 1 --backends torch \\
        --synthetic simple --measure 300 --out /tmp/out/fps-640-dt$dt; done       # the frame rate itself

(``HSM_CUDA_BUNDLE``: siamfc-hsm's ``--target cuda --precision fp16`` bundle, ``/work/main/.carry/b/hsm`` in
``benchmarks/results/gpu-stages/``; ``--size 1920x1080 --measure 200`` for full HD). SiamRPN's decode on the device
shows in the first loop as ``decode`` of siamrpn-eca with ``dt1`` against ``dt0`` (0.39 ms on the host path).
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["DeviceOps"]


class DeviceOps(Protocol):
    """What a backend's ``tracking_ops(device)`` returns (None: the host path). "Device array" is the backend's
    own array type, opaque to the tracking classes; the backend's loaded graphs take it as an input."""

    #: The device arrays' namespace (numpy-like functions: exp, clip, maximum, sqrt, stack, concatenate,
    #: asarray(..., dtype=xp.float64), isfinite, float64): what :func:`~edgetrack.tracking.siamrpn.select_anchor`
    #: computes with, on the device.
    xp: object

    def crops(self, frame: np.ndarray, xs: np.ndarray, ys: np.ndarray, pad) -> object:
        """(N, 3, S, S) float32 device array: ``frame`` (uint8 H×W×3) sampled bilinearly, crop ``n``'s pixel
        ``(u, v)`` at ``(xs[n, u], ys[n, v])`` (the (N, S) positions of
        :func:`~edgetrack.tracking.crop.sample_positions`, from the maps of
        :func:`~edgetrack.tracking.crop.crop_affine`), ``pad`` (3 values) outside the frame, rounded to whole
        values."""

    def upsample_bicubic(self, maps, size: int) -> object:
        """(N, size, size) float32 device array: each (R, R) map resized as ``cv2.resize(..., INTER_CUBIC)``."""

    def max_rows(self, a) -> object:
        """Each row's maximum of a 2-D device array."""

    def asarray(self, a: np.ndarray) -> object:
        """A numpy constant on the device (cached by the caller)."""

    def to_host(self, a) -> np.ndarray:
        """A device array (or a numpy one, returned as is) as numpy."""
