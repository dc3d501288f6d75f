"""One shared weights file for a bundle's graphs: stored once, same outputs, checker-clean, tamper-evident."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgetrack.converters.onnx_weights import DATA_FILE, share_weights  # noqa: E402
from edgetrack.converters.torch2onnx import siamfc_to_onnx  # noqa: E402
from edgetrack.errors import ConversionError  # noqa: E402
from edgetrack.models.torch.siamfc import build_siamfc  # noqa: E402


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    torch.manual_seed(0)
    model = build_siamfc("siamfc-tiny").eval()
    folder = tmp_path_factory.mktemp("graphs")
    return siamfc_to_onnx(model, folder)


def _run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_weights_stored_once_and_outputs_identical(graphs, rng):
    z = rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    x = rng.uniform(0, 255, (3, 3, 255, 255)).astype(np.float32)
    before = {"template": _run(graphs["template"], {"z": z}), "search": _run(graphs["search"], {"x": x})}
    sizes = {n: p.stat().st_size for n, p in graphs.items()}

    info = share_weights(graphs, min_bytes=256)

    data = graphs["template"].parent / DATA_FILE
    assert info["file"] == DATA_FILE and data.stat().st_size == info["bytes"]
    # The template and search graphs hold the same backbone: every stored tensor is referenced twice.
    assert info["references"] == 2 * info["tensors"] and info["saved_bytes"] > 0
    assert graphs["template"].stat().st_size < sizes["template"] / 4
    # Larger than one copy of the weights would be a failure to deduplicate (4096-byte alignment aside).
    assert info["bytes"] < sizes["search"] + 4096 * info["tensors"]
    np.testing.assert_array_equal(_run(graphs["template"], {"z": z}), before["template"])
    np.testing.assert_array_equal(_run(graphs["search"], {"x": x}), before["search"])


def test_graphs_in_different_folders_are_refused(graphs, tmp_path):
    other = tmp_path / "head.onnx"
    other.write_bytes(graphs["head"].read_bytes())
    with pytest.raises(ConversionError, match="one folder"):
        share_weights({"search": graphs["search"], "head": other})
