"""Helpers several bundle and benchmark test modules share (imported by name: pytest puts tests/ on sys.path).
Framework-free: numpy, onnx, onnxruntime and edgetrack only, imported inside the helpers that need them."""
import importlib.util
import sys
from pathlib import Path

import numpy as np


def moving_texture_frames(n: int = 6):
    """``n`` 160×120 grey frames with a 30×24 random texture moving (+5, +3) px a frame, and its boxes."""
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 255, (24, 30, 3), np.uint8)
    frames, boxes = [], []
    for i in range(n):
        f = np.full((120, 160, 3), 100, np.uint8)
        x, y = 40 + 5 * i, 30 + 3 * i
        f[y:y + 24, x:x + 30] = texture
        frames.append(f)
        boxes.append((x, y, 30, 24))
    return frames, boxes


def runtime_weight_convs(path):
    """(the Conv nodes of the ONNX graph at ``path`` whose weight is computed at run time, the graph's op types)."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    constant = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    return [n for n in g.node if n.op_type == "Conv" and n.input[1] not in constant], {n.op_type for n in g.node}


def assert_onnx_matches(path, inputs, expected, name: str = "", tol: float = 1e-4) -> None:
    """ONNX Runtime on the graph at ``path``, fed ``inputs`` (arrays, in the graph's input order), gives ``expected``
    (arrays, in its output order) within ``tol`` of each expected output's largest magnitude."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: np.asarray(a) for i, a in zip(session.get_inputs(), inputs, strict=True)})
    for g, e in zip(got, expected, strict=True):
        e = np.asarray(e)
        assert g.shape == e.shape, (name, g.shape, e.shape)
        assert np.abs(g - e).max() <= tol * np.abs(e).max(), (name, np.abs(g - e).max(), np.abs(e).max())


def assert_track_alike(a, b, frames, boxes, box_atol: float, score_tol: float) -> None:
    """Two trackers started on ``frames[0]`` give the same boxes (within ``box_atol`` px) and scores on the rest."""
    a.init(frames[0], boxes[0])
    b.init(frames[0], boxes[0])
    for f in frames[1:]:
        ra, rb = a.update(f), b.update(f)
        np.testing.assert_allclose(ra.box, rb.box, atol=box_atol)
        assert abs(ra.score - rb.score) < score_tol


def load_benchmark(name: str):
    """The script ``benchmarks/NAME.py`` as a module, imported as when run (its folder first on sys.path, for
    ``benchmarks/_checkout.py``)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
