"""Crops and decoding on the backend's device: what a backend offers so that the tracking classes need not do their
pixel work on the host, and why it is shaped this way.

The problem
-----------
On one H100 and one stream, the numpy/OpenCV work around the networks was 42-56 % of a frame
(``benchmarks/results/gpu-stages/``): SiamRPN's search crop (``cv2.warpAffine`` + NCHW float conversion) 0.45 ms
and its decode 0.39 ms against 1.22 ms of networks; SiamFC's three crops 1.05 ms and its decode 1.37 ms (three
17×17 → 272×272 bicubic ``cv2.resize`` and the peak search) against 2.26 ms. On the CPU the same work is 4-6 % of a
frame and stays where it is.

The design: one program per frame, composed of pieces written once
-----------------------------------------------------------------
A backend may offer ``tracking_ops(device)``, an object of the :class:`DeviceOps` protocol below; the torch backend
does (``TorchDeviceOps`` in :mod:`edgetrack.backends.torchcuda`, the only file that imports torch). With it a frame
is three steps, and only the middle one runs on the device:

1. *The host decides* (``search_request``, numpy): the tracking class makes every decision it makes on the host
   path — which regions to crop (centres, sides, scales, search windows while lost), whether a crop reaches outside
   the frame and so which padding colour (``cv2.mean`` on the host, as before), the geometry as one 2×3 map per
   crop from :func:`~edgetrack.tracking.crop.crop_affine` (the map ``cv2.warpAffine`` is given on the host path)
   — and :func:`~edgetrack.tracking.crop.crop_request` turns them into the part of the frame the crops' bilinear
   taps read (only it crosses the bus, not the whole frame: at 1920×1080 a full upload would cost what the host
   crop costs) and one float64 vector: OpenCV's sample positions relative to that region, the padding colour, then
   the decode's settings that change with the track's state (SiamFC: the scale penalties and the window's
   influence, which differ while searching; SiamRPN: the current size in crop pixels and the influence).
2. *The device computes* (the backend's frame program, ``DeviceOps.program``): ``DeviceOps.sample`` gathers the
   taps from the region and interpolates them, the search and head graphs run (the torch sessions'
   ``forward``: no copies or waits of their own), and the family's ``decode_on_device`` reduces the maps to one
   vector — SiamFC's bicubic upsampling (``DeviceOps.upsample_bicubic``: torch's bicubic is OpenCV's
   ``INTER_CUBIC`` kernel, a = −0.75, half-pixel centres, replicated border) and peak search
   (:func:`~edgetrack.tracking.siamfc.peak_search`: scale penalty, normalisation, cosine window, argmax), or
   SiamRPN's anchor choice (:func:`~edgetrack.tracking.siamrpn.select_anchor`: the two-class softmax as a logistic
   of the difference, the sizes decoded against the anchors, the scale/ratio penalty, the cosine window, the argmax
   over 3 125 anchors, in float64 as on the host) — plus whether every value of the maps is finite, and what the
   confidence test reads (SiamFC's three 17×17 maps, SiamRPN's best anchor's 25×25 score map). Both decodes are
   written once with the operations numpy arrays and torch tensors share (``xp``), and with no step that needs a
   device value on the host (no ``int()`` of an argmax: indices stay 1-element device arrays), so the whole step
   has static shapes and no synchronisation. On a GPU the torch backend captures it into **one CUDA graph** on the
   second frame (:class:`~edgetrack.backends.torchcuda.TorchFrameProgram`); each frame is then two uploads (the
   region's bytes into a static buffer of the frame's size, and the vector), one replay, one small download and
   one wait. A new ``init``'s template kernel is copied into the graph's static input; a capture that fails
   leaves the program eager (logged, ``cuda_graph_error``), as a session's does.
3. *The host reads the vector* (``update_from_device``, numpy): the NaN/infinity check (the same typed error as
   the host path, after the one copy), then the same code as the host path's update — position, size, the
   confidence test, the lost-target state machine.

The host path (``search_crops``, the graphs' ``run``, ``update_from_responses`` / ``update_from_outputs``) calls
the same functions with numpy arrays and OpenCV, with the same float32/float64 operations in the same order as
before, so CPU results do not change. Every other backend (ONNX Runtime, the Ascend ones, the simulator) has no
``tracking_ops`` and keeps it; so does the torch backend on the CPU unless asked (``TorchBackend(device_tracking=
True)`` or ``EDGETRACK_TORCH_DEVICE_TRACKING=1``), and so does any bundle whose deblur stage is on (the blur gate
measures host crops). On CUDA the default follows the tracking family's ``device_tracking_pays``, measured on the
GPU machine (figures below). ``Tracker.device_tracking`` says which path a tracker took.

Two other ways were weighed and not taken: keeping each piece a separate call (crops, then each graph's own CUDA
graph, then the decode's ~40 small kernels and three or four waits for their results: measured on an H100 it made
SiamRPN's frames slower than the host path, ×0.78–0.83, and SiamFC's host and launch work 57 % of its frame,
``benchmarks/results/gpu-device-tracking/``); and appending the decode to the head graph of cuda bundles (it
changes the bundle and its parity figures, the Ascend converters reject bicubic ``Resize``, and the crops would
still be separate).

Agreement with the host path (tests/test_device_tracking.py, torch on the CPU)
------------------------------------------------------------------------------
OpenCV 4's ``warpAffine`` (4.10 to 4.13 checked) rounds each sample position to 1/32 px (after a rounding to
1/1024 px) and computes the bilinear weights in fixed point; OpenCV 5's samples at float32 positions with float
weights (:func:`~edgetrack.tracking.crop.opencv_rounds_positions` probes which one is installed). Sampling at the exact positions ``M · (u, v, 1)`` instead differs
from it, over 40 crops per kind (inside the frame, across its border, far outside; 31 to 255 px): by at most 7 grey
levels, mean 0.23, 17 % of values, on one-pixel uniform noise; at most 3, mean 0.018, 1.6 % of values, on smooth
content (the largest ones along the frame's edge against the padding colour). So the tracking class gives the
device OpenCV's own positions (:func:`~edgetrack.tracking.crop.sample_positions`, numpy, from the same
:func:`~edgetrack.tracking.crop.crop_affine` map), and the device interpolates the four taps with weights ``k/32``:
every product and sum is then exact in float32 (values below 256, weights on a 1/32 grid), so, rounded half up as
OpenCV rounds, the crops are ``cv2.warpAffine``'s exactly (0 grey levels on every crop of the tests); against
OpenCV 5 they are within 1 grey level in 0.01 % of values (float32 weights summed in another order). The bicubic upsampling agrees with
``cv2.resize`` within 1e-5 of the map's largest magnitude (the sums are added in another order), and trackers on
the device give the host path's boxes within 0.01 px and scores within 1e-4, tracking
and searching while lost. One case cannot agree by construction: a featureless frame gives a flat map whose argmax
is a tie that the last bit of the sums decides. SiamRPN's anchor choice is numpy's to 1e-12 (the same anchor; the
difference is torch's and numpy's ``exp`` in the last bits), and a SiamRPN track on random head outputs — tracked,
lost, searched for and found again, 1 800 frames over 12 sequences — gives the host's boxes within 2e-13 px,
scores within 3e-16 and the same lost flags.

Measured (``benchmarks/results/gpu-frame-program/``)
-----------------------------------------------------
One H200, 640×480 frames, one stream, 500 timed updates, the device path (one CUDA graph a frame) and the host
path (numpy/OpenCV crops and decode around each graph's own CUDA graph) alternated in one session, three sessions:

==================  ===========  ===========  =========  ==========  =========
model               host path    device path  ratio      outside     GPU busy
==================  ===========  ===========  =========  ==========  =========
siamfc-hsm fp16     270–289 FPS  629–649 FPS  ×2.2–2.4   13–14 %     77–78 %
siamfc-hsm-half     312–348 FPS  829–840 FPS  ×2.4–2.7   16–18 %     70–72 %
siamrpn-eca         567–636 FPS  841–904 FPS  ×1.3–1.6   16–18 %     67–73 %
==================  ===========  ===========  =========  ==========  =========

"Outside": the share of the frame outside the program — the host's choice of crops and cut of the region
(0.12–0.15 ms), its reading of the vector (0.05 ms) and the Python glue (0.01 ms, under 1 %); "GPU busy": the
captured graph alone, replayed back to back (0.80 ms for siamrpn-eca, 1.20 ms for siamfc-hsm), over the frame. The
program's own overhead (two uploads, one download, one wait) is 0.13–0.15 ms. At 1920×1080 the region upload and
the host's cut grow: siamfc-hsm 465, siamrpn-eca 519 FPS (one stream), 819 and 1139 FPS aggregated over four.

What is left
------------
* The host's part is 13–18 % of a frame on the GPU (on the CPU, where the networks take longer, 3.6–5.5 %:
  ``benchmarks/results/cpu-stages/``). Most of it is numpy and Python on small arrays (the frame checks, the crops'
  maps and the region's bounds, the state machine). Moving the sample positions to the device (they are computed
  there from each crop's map) halved the request's cost on this 2-core CPU but left the GPU machine's 0.13–0.14 ms
  where it was.
* One wait for the device per frame stays, by construction: the next crop's centre depends on the chosen anchor
  (SiamFC likewise on its peak). Several trackers in one process overlap it by running on streams of their own
  (each program has one): at 1920×1080 four streams aggregate ×1.8–2.2 one stream's rate.
* The graph itself is most of a SiamFC frame: three search crops through the backbone. SiamFC converted with
  ``--scale-search templates`` (:class:`~edgetrack.tracking.siamfc.SiamFCParams`) searches one crop against a
  template per scale: siamfc-hsm 755–941 FPS per stream against 550–649, for 0.011 / 0.033 AUC
  (``benchmarks/results/siamfc-scale-search/``).
* A bundle whose deblur stage is on keeps the host path (the blur gate measures host crops); so do the other
  backends (ONNX Runtime's CUDA provider could offer ``tracking_ops`` through DLPack).
* fp16 cuda bundles: the head's fp16 maps are decoded in float64 on the device as on the host; agreement with the
  host path on a GPU is tested with fp32 bundles only (``tests/test_device_tracking.py``'s CUDA tests).

Measuring it on the GPU
-----------------------
``benchmarks/gpu_speed.py`` times the device path's stages (``crop``: the host's request, ``frame``: the program,
``decode``: the host's reading) and replays the frame graph alone for its GPU time;
``EDGETRACK_TORCH_DEVICE_TRACKING=0`` gives the host path for comparison::

    python -m pytest tests/test_device_tracking.py -q     # its CUDA tests: crops, anchor choice, boxes
    for rep in 1 2; do for dt in 1 0; do EDGETRACK_TORCH_DEVICE_TRACKING=$dt python benchmarks/gpu_speed.py \
        --bundle HSM_CUDA_BUNDLE --bundle siamfc-hsm-half --bundle siamrpn-eca --deblur never --streams 1 \
        --backends torch --synthetic simple --measure 500 --no-check --out /tmp/out/fps-dt$dt-$rep; done; done

(``HSM_CUDA_BUNDLE``: siamfc-hsm's ``--target cuda --precision fp16`` bundle, built by recipe 1 of
``edgetrack/assets/models/README.md``; ``--size 1920x1080 --streams 1,4`` for full HD and several streams.)
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["DeviceOps", "FrameProgram"]


class DeviceOps(Protocol):
    """What a backend's ``tracking_ops(device)`` returns (None: the host path). "Device array" is the backend's
    own array type, opaque to the tracking classes; the backend's graphs take it as an input."""

    #: The device arrays' namespace (numpy-like functions: exp, clip, maximum, sqrt, stack, concatenate,
    #: asarray(..., dtype=xp.float64), isfinite, float64): what the decodes
    #: (:func:`~edgetrack.tracking.siamrpn.select_anchor`, the families' ``decode_on_device``) compute with.
    xp: object

    def program(self, step) -> "FrameProgram":
        """``step(pixels, request, state) -> vector`` (device arrays in and out) as this device's frame program:
        see :class:`FrameProgram`."""

    def sample(self, pixels, request, n: int, size: int) -> object:
        """(n, 3, size, size) float32 crops, made on the device with no wait for the host: ``pixels`` the region of
        :func:`~edgetrack.tracking.crop.crop_request` as a flat uint8 device array, ``request`` its vector (and
        whatever follows it) as a float64 device array; taps outside the frame read its padding colour, values are
        rounded to whole grey levels."""

    def crops(self, frame: np.ndarray, xs: np.ndarray, ys: np.ndarray, pad) -> object:
        """:meth:`sample` in one call from the host: (N, 3, S, S) float32 device crops of ``frame`` (uint8 H×W×3),
        crop ``n``'s pixel ``(u, v)`` at ``(xs[n, u], ys[n, v])`` (the (N, S) positions of
        :func:`~edgetrack.tracking.crop.sample_positions`), ``pad`` (3 values) outside the frame."""

    def upsample_bicubic(self, maps, size: int) -> object:
        """(N, size, size) float32 device array: each (R, R) map resized as ``cv2.resize(..., INTER_CUBIC)``."""

    def max_rows(self, a) -> object:
        """Each row's maximum of a 2-D device array."""

    def asarray(self, a: np.ndarray) -> object:
        """A numpy constant on the device (cached by the caller)."""

    def to_host(self, a) -> np.ndarray:
        """A device array (or a numpy one, returned as is) as numpy."""


class FrameProgram(Protocol):
    """One frame's device work (:meth:`DeviceOps.program`): the host calls it with the frame's ``region`` (uint8,
    any shape), ``request`` (float64 vector) and the track's ``state`` (a device array: the template kernel); it
    uploads the first two, runs ``step`` (on a GPU, as one captured graph) and returns ``step``'s vector as a
    float64 numpy array. ``capacity``: the most bytes a region can have (the frame's size)."""

    mode: str  # "cuda-graph" once captured, else "eager"

    def __call__(self, region: np.ndarray, request: np.ndarray, state, capacity: int = 0) -> np.ndarray:
        ...

    def close(self) -> None:
        """Release the program's device buffers and graph."""
