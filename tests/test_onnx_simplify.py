"""converters/onnx_simplify.py: BatchNorm and Pad fold into the convolutions, Constant nodes become initializers, the
function stays the same; a simplification that would bring an operator or change the interface is refused."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgetrack.converters.onnx_simplify import simplify_graphs, simplify_onnx  # noqa: E402
from edgetrack.errors import ConversionError  # noqa: E402


def _graph(path, *, external: bool = False):
    """x (1, 3, 16, 16) -> Pad -> Conv -> BatchNormalization -> Relu -> y, as MindSpore's exporter writes a block."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 8).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "shift"),
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.5, 2, 8).astype(np.float32), "var"),
    ]
    pads = helper.make_node("Constant", [], ["pads"], value=numpy_helper.from_array(
        np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    nodes = [
        pads,
        helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant"),
        helper.make_node("Conv", ["xp", "w", "b"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], epsilon=1e-5),
        helper.make_node("Relu", ["n"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
                  size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_batchnorm_and_pad_fold_into_the_conv_and_the_function_stays(tmp_path):
    path = _graph(tmp_path / "g.onnx")
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 16, 16)).astype(np.float32)
    before = _run(path, x)
    record = simplify_onnx(path)
    assert record == {"nodes": [5, 2], "removed": {"BatchNormalization": 1, "Constant": 1, "Pad": 1}}
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu"]
    assert model.opset_import[0].version == 11
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["y"]
    after = _run(path, x)
    assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()


def test_what_simplify_graphs_records(tmp_path):
    paths = {"a": _graph(tmp_path / "a.onnx"), "b": _graph(tmp_path / "b.onnx")}
    assert simplify_graphs(paths, enabled=False) == {"simplifier": "off (--no-simplify)"}
    assert [n.op_type for n in onnx.load(str(paths["a"])).graph.node][:2] == ["Constant", "Pad"]  # untouched
    tools = simplify_graphs(paths)
    assert tools["simplifier"].startswith("onnxscript ")
    assert set(tools["simplified"]) == {"a", "b"} and tools["simplified"]["a"]["nodes"] == [5, 2]


def test_a_graph_with_external_weights_comes_out_self_contained(tmp_path):
    path = _graph(tmp_path / "g.onnx", external=True)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 16, 16)).astype(np.float32)
    before = _run(path, x)
    simplify_onnx(path)
    (tmp_path / "w.bin").unlink()  # the simplified graph must not need it
    model = onnx.load(str(path), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert np.abs(_run(path, x) - before).max() <= 1e-5 * np.abs(before).max()


def test_a_simplification_that_brings_an_operator_is_refused_and_the_file_kept(tmp_path, monkeypatch):
    import onnxscript.optimizer

    path = _graph(tmp_path / "g.onnx")
    original = path.read_bytes()
    real = onnxscript.optimizer.optimize

    def sneaky(model, *args, **kwargs):  # as if a rule rewrote Relu into an operator the graph did not have
        out = real(model, *args, **kwargs)
        for node in out.graph.node:
            if node.op_type == "Relu":
                node.op_type = "Elu"
        return out

    monkeypatch.setattr(onnxscript.optimizer, "optimize", sneaky)
    with pytest.raises(ConversionError, match=r"brought operators \['Elu'\]") as info:
        simplify_onnx(path)
    assert "--no-simplify" in info.value.fix
    assert path.read_bytes() == original
