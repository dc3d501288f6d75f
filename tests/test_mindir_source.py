"""MindSpore's own MindIR as converter_lite's source (`edgetrack convert --framework mindspore --toolchain
converter_lite`): every graph (template, search, head, deblur) exported with mindspore.export(file_format="MINDIR"),
checked against the MindSpore cell, carried into the Ascend bundle beside the ONNX graphs, and read by converter_lite
with --fmk=MINDIR (a fake converter_lite on PATH builds the device files from them).

Checkpoints are written by the MindSpore twins themselves: nothing here needs PyTorch.
"""
import json
import os

import numpy as np
import pytest


ms = pytest.importorskip("mindspore")
pytest.importorskip("safetensors")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import edgetrack.models.mindspore  # noqa: E402,F401  (sets the CPU convolution ISA before any model runs)

from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.cli import main  # noqa: E402
from edgetrack.converters.ms2mindir import export_cell_mindir, mindir_inputs  # noqa: E402
from edgetrack.converters.onnx2mindir import converter_lite_argv  # noqa: E402
from edgetrack.converters.onnx2om import ascend_bundle  # noqa: E402
from edgetrack.converters.torch2onnx import tracker_bundle  # noqa: E402
from edgetrack.errors import BundleError, InvalidArgumentError  # noqa: E402
from edgetrack.models.mindspore.checkpoint import checkpoint_state  # noqa: E402

from tool_helpers import make_tool, path_without  # noqa: E402 - tests/ is on sys.path

pytestmark = pytest.mark.mindspore

TRACKER_GRAPHS = ("template", "search", "head")
DEBLUR = ("deblur_template", "deblur_search")


def _randomise(model, seed: int):
    """Non-trivial BatchNorm statistics and affine terms (and a non-zero last layer for the generator, which is the
    identity untrained), so the MindIR check compares more than an identity."""
    rng = np.random.default_rng(seed)
    for key, param in checkpoint_state(model).items():
        shape = tuple(param.shape)
        if key.endswith("running_mean"):
            value = rng.normal(0, 0.3, shape)
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.startswith("final."):
            value = rng.normal(0, 0.05, shape)
        elif len(shape) == 1 and key.endswith(".weight"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1 and key.endswith(".bias"):
            value = rng.normal(0, 0.1, shape)
        else:
            continue
        ms.ops.assign(param, ms.Tensor(value.astype(np.float32)))
    model.set_train(False)
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from edgetrack.models.mindspore.deblurgan import build_deblurgan, save_deblurgan
    from edgetrack.models.mindspore.siamfc import build_siamfc, save_siamfc
    from edgetrack.models.mindspore.siamrpn import build_siamrpn, save_siamrpn

    ms.set_seed(0)
    root = tmp_path_factory.mktemp("mindir-ckpt")
    return {
        "siamrpn": save_siamrpn(_randomise(build_siamrpn("siamrpn-tiny"), 1), root / "rpn.safetensors"),
        "siamfc": save_siamfc(_randomise(build_siamfc("siamfc-tiny"), 2), root / "fc.safetensors"),
        "deblur": save_deblurgan(_randomise(build_deblurgan("deblurgan-tiny"), 3), root / "deblur.safetensors"),
    }


@pytest.fixture(scope="module")
def rpn_with_mindir(checkpoints, tmp_path_factory):
    """The portable bundle `edgetrack convert --framework mindspore --toolchain converter_lite` starts from: ONNX graphs
    (the head in the NPU form) with MindSpore's MindIR beside them."""
    return tracker_bundle(checkpoints["siamrpn"], tmp_path_factory.mktemp("rpn") / "bundle", family="siamrpn",
                          framework="mindspore", runtime_weights=False, mindir=True)


def _check_mindir_sources(bundle, graphs, stages):
    """Every graph's MindIR: listed, in files, checked against MindSpore (fp32 <= 1e-4 of the output scale), and
    taking the ONNX graph's input names, order and static shapes."""
    m = bundle.manifest
    section = m.source["mindir"]
    assert section["exporter"] == 'mindspore.export(file_format="MINDIR")' and section["precision"] == "fp32"
    assert set(section["parity"]) == set(stages)
    rows = {g: r for stage in stages for g, r in m.parity[stage].items()}
    assert set(rows) == set(graphs)
    for graph in graphs:
        rel = section["graphs"][graph]
        assert rel == f"{graph}.mindir" and rel in m.files
        row = rows[graph]
        print(f"\n{graph}: max |MindIR - MindSpore| / scale = {row['max_rel']:.2e} (scale {row['scale']:.3g})")
        assert row["passed"] and row["reference"] == "mindspore" and row["max_rel"] <= 1e-4 and row["scale"] > 0
        assert "GraphCell" in row["runtime"]
        spec = m.graphs[graph]
        assert mindir_inputs(bundle.file_path(rel)) == [(t.name, t.shape) for t in spec.inputs]


def _mindir_vs_onnx(bundle, graph, seed=7):
    """The MindIR (positional, the manifest's input order) and the ONNX graph (by name) on the same inputs: the
    outputs agree in the manifest's output order."""
    spec = bundle.manifest.graphs[graph]
    rng = np.random.default_rng(seed)
    feeds = {t.name: rng.uniform(0, 255 if len(spec.inputs) == 1 else 1, t.shape).astype(np.float32)
             for t in spec.inputs}
    cell = ms.nn.GraphCell(ms.load(str(bundle.file_path(f"{graph}.mindir"))))
    got = cell(*(ms.Tensor(feeds[t.name]) for t in spec.inputs))
    got = [t.asnumpy() for t in (got if isinstance(got, (tuple, list)) else (got,))]
    runner = ort.InferenceSession(str(bundle.graph_path(graph)), providers=["CPUExecutionProvider"])
    expected = runner.run([t.name for t in spec.outputs], feeds)
    assert len(got) == len(expected) == len(spec.outputs)
    for t, a, b in zip(spec.outputs, got, expected):
        assert a.shape == b.shape == tuple(t.shape)
        assert np.abs(a - b).max() <= 1e-4 * np.abs(b).max(), (graph, t.name)


@pytest.mark.parametrize("family", ["siamrpn", "siamfc"])
def test_mindir_of_every_tracker_graph_matches_mindspore_and_the_onnx_graph(family, checkpoints, rpn_with_mindir,
                                                                           tmp_path):
    path = rpn_with_mindir if family == "siamrpn" else tracker_bundle(
        checkpoints["siamfc"], tmp_path / "fc", family="siamfc", framework="mindspore", runtime_weights=False,
        scales=3, mindir=True)
    b = load_bundle(path)
    assert (b.manifest.target, b.manifest.source["framework"]) == ("cpu", "mindspore")
    _check_mindir_sources(b, TRACKER_GRAPHS, ["mindspore->mindir"])
    for graph in TRACKER_GRAPHS:
        _mindir_vs_onnx(b, graph)
    if family == "siamfc":  # three search crops: the static batch is in the MindIR too
        assert mindir_inputs(b.file_path("search.mindir")) == [("x", (3, 3, 255, 255))]


# A stand-in for converter_lite that refuses anything but what edgetrack must give it for a MindSpore source, and
# writes a device file naming the model it read.
FAKE_CONVERTER_LITE = """\
for a in "$@"; do
  case "$a" in --outputFile=*) out="${a#--outputFile=}";; --configFile=*) cfg="${a#--configFile=}";;
    --modelFile=*) model="${a#--modelFile=}";; --fmk=*) fmk="${a#--fmk=}";; esac
done
test -f "$cfg" || { echo "no config $cfg" >&2; exit 3; }
test -f "$model" || { echo "no model $model" >&2; exit 4; }
printf 'device mindir from %s %s' "$fmk" "$model" > "${out}.mindir"
echo "CONVERT RESULT SUCCESS:0"
"""


@pytest.fixture
def fake_converter_lite(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    tool = make_tool(folder, "converter_lite", FAKE_CONVERTER_LITE)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{path_without('atc', 'converter_lite')}")
    return tool


def test_cli_converter_lite_builds_the_device_files_from_mindspore_mindir(checkpoints, tmp_path, fake_converter_lite,
                                                                          capsys):
    out = tmp_path / "a310"
    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "mindspore",
                 "--deblur", str(checkpoints["deblur"]), "--target", "ascend310", "--toolchain", "converter_lite",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    for word in ("mindspore->mindir", "deblur mindspore->mindir", "reads MindSpore's MindIR (--fmk=MINDIR)",
                 "device files built"):
        assert word in printed, word
    b = load_bundle(out)
    m = b.manifest
    graphs = (*TRACKER_GRAPHS, *DEBLUR)
    assert set(m.graphs) == set(graphs) and m.device_files_built
    d = m.device
    assert (d["toolchain"], d["mindir_source"], d["precision_mode"]) == ("converter_lite", "mindspore", "enforce_fp16")
    # The sources: checked against MindSpore, carried into the bundle beside the ONNX graphs (which stay).
    _check_mindir_sources(b, graphs, ["mindspore->mindir", "deblur mindspore->mindir"])
    assert "deblur mindspore->mindir" in m.preprocessing["deblur"]["parity"]
    for graph in graphs:
        g = d["graphs"][graph]
        spec = m.graphs[graph]
        assert spec.file == f"{graph}.onnx" and b.graph_path(graph).is_file()
        assert g["source"] == {"file": f"{graph}.mindir", "format": "MINDIR"}
        config = f"device/{graph}_converter_lite.cfg"
        assert g["config"] == config
        assert g["command"] == g["commands"][0] == converter_lite_argv(
            f"{graph}.mindir", f"device/{graph}", {t.name: t.shape for t in spec.inputs}, config, fmk="MINDIR")
        # The device file was built from the MindIR source, not from the ONNX graph.
        assert (g["status"], g["file"]) == ("built", f"device/{graph}.mindir")
        assert b.file_path(g["file"]).read_text() == f"device mindir from MINDIR {graph}.mindir"
    # The exact commands: --fmk=MINDIR, the model file, static shapes named as the MindIR's inputs, the config.
    assert d["graphs"]["head"]["command"] == [
        "converter_lite", "--fmk=MINDIR", "--modelFile=head.mindir", "--outputFile=device/head", "--saveType=MINDIR",
        "--optimize=ascend_oriented", "--inputShape=kernel:1,32,5,5;features:1,32,29,29",
        "--configFile=device/head_converter_lite.cfg"]
    assert d["graphs"]["template"]["command"][1:3] == ["--fmk=MINDIR", "--modelFile=template.mindir"]
    # The config (and with it the AIPP file) is the one the ONNX path writes.
    assert b.file_path("device/template_converter_lite.cfg").read_text() == (
        "# edgetrack: converter_lite --optimize=ascend_oriented configuration\n[ascend_context]\ninput_format=NCHW\n"
        "precision_mode=enforce_fp16\ninsert_op_config_file_path=device/template_aipp.cfg\n")
    assert "insert_op_config_file_path" not in b.file_path("device/head_converter_lite.cfg").read_text()
    assert d["graphs"]["search"]["inputs"] == [{"name": "x", "shape": [1, 255, 255, 3], "dtype": "uint8",
                                               "layout": "NHWC"}]

    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("toolchain converter_lite, precision_mode enforce_fp16, reads MindSpore's MindIR (--fmk=MINDIR)",
                 "source:  template.mindir (MINDIR)", "source:  deblur_search.mindir (MINDIR)",
                 "command: converter_lite --fmk=MINDIR --modelFile=search.mindir", "  head.mindir  sha256",
                 "  device/head.mindir  sha256", "mindspore->mindir"):
        assert word in text, word


def test_cli_without_converter_lite_records_the_mindir_commands(checkpoints, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", path_without("atc", "converter_lite"))
    out = tmp_path / "b"
    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--framework", "mindspore",
                 "--target", "ascend310b", "--toolchain", "converter_lite", "--mindir-source", "mindspore",
                 "-o", str(out)]) == 0
    assert "device files not built" in capsys.readouterr().out
    b = load_bundle(out)
    assert not b.manifest.device_files_built and b.manifest.device["mindir_source"] == "mindspore"
    for graph in TRACKER_GRAPHS:
        g = b.manifest.device["graphs"][graph]
        assert g["status"] == "not built: converter_lite not found on PATH" and g["file"] is None
        assert g["command"][1:3] == ["--fmk=MINDIR", f"--modelFile={graph}.mindir"]
        assert b.file_path(f"{graph}.mindir").is_file()  # the command's input travels with the bundle


def test_mindir_source_onnx_and_atc_leave_the_mindir_out(rpn_with_mindir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_without("atc", "converter_lite"))
    # The default for a bundle with MindIR sources is to read them.
    auto = load_bundle(ascend_bundle(rpn_with_mindir, tmp_path / "auto", "ascend310", toolchain="converter_lite"))
    assert auto.manifest.device["mindir_source"] == "mindspore" and "template.mindir" in auto.manifest.files
    for name, kwargs in (("onnx", dict(toolchain="converter_lite", mindir_source="onnx")), ("atc", {})):
        m = load_bundle(ascend_bundle(rpn_with_mindir, tmp_path / name, "ascend310", **kwargs)).manifest
        assert not any(f.endswith(".mindir") for f in m.files if not f.startswith("device/"))
        assert "mindir" not in m.source and "mindspore->mindir" not in m.parity  # no record of files not carried
        assert "mindspore->onnx" in m.parity
        for graph in TRACKER_GRAPHS:
            assert m.device["graphs"][graph]["source"] == {"file": f"{graph}.onnx", "format": "ONNX"}
        if name == "onnx":
            assert m.device["mindir_source"] == "onnx"
            assert m.device["graphs"]["search"]["command"][1:3] == ["--fmk=ONNX", "--modelFile=search.onnx"]
        else:
            assert "mindir_source" not in m.device


def test_bad_mindir_requests_are_typed(checkpoints, rpn_with_mindir, tmp_path, capsys):
    # MindIR needs the MindSpore twin; the CLI refuses before any export.
    with pytest.raises(InvalidArgumentError, match="(?s)'torch' twin cannot write.*framework='mindspore'"):
        tracker_bundle(checkpoints["siamrpn"], tmp_path / "t", family="siamrpn", framework="torch", mindir=True)
    from edgetrack.converters.deblur2onnx import add_deblur

    with pytest.raises(InvalidArgumentError, match="'torch' generator cannot write"):
        add_deblur(rpn_with_mindir, checkpoints["deblur"], tmp_path / "d", framework="torch", mindir=True)
    for extra, message in (
        (["--framework", "torch", "--toolchain", "converter_lite", "--mindir-source", "mindspore"],
         "--framework torch cannot export"),
        (["--framework", "mindspore", "--mindir-source", "mindspore"], "--toolchain atc does not run converter_lite"),
        (["--framework", "mindspore", "--toolchain", "converter_lite", "--mindir-source", "tflite"],
         "valid choices: mindspore, onnx"),
    ):
        assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--target", "ascend310",
                     *extra, "-o", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err
        assert message in err and "fix:" in err, (extra, err)
        assert not (tmp_path / "c").exists()
    assert main(["convert", str(checkpoints["siamrpn"]), "--model", "siamrpn-tiny", "--target", "cpu",
                 "--framework", "mindspore", "--mindir-source", "onnx", "-o", str(tmp_path / "c")]) == 2
    assert "--target cpu does not run converter_lite" in capsys.readouterr().err

    # A bundle whose MindIR sources do not cover every graph, or whose check did not pass: refused by name.
    src = load_bundle(rpn_with_mindir)
    section = src.manifest.source["mindir"]
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(src.path, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["source"]["mindir"] = {**section, "graphs": {k: v for k, v in section["graphs"].items() if k != "head"}}
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"(?s)none for graph\(s\) \['head'\].*--mindir-source onnx"):
        ascend_bundle(broken, tmp_path / "x", "ascend310", toolchain="converter_lite", mindir_source="mindspore")
    manifest["source"]["mindir"] = section
    manifest["parity"]["mindspore->mindir"]["search"]["passed"] = False
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"MindIR of graph\(s\) \['search'\] has no passed check"):
        ascend_bundle(broken, tmp_path / "x", "ascend310", toolchain="converter_lite")
    assert not (tmp_path / "x").exists()

    # The export wrapper names inputs as the bundle does; other names are refused, not exported under wrong names.
    cell = ms.nn.ReLU()
    with pytest.raises(InvalidArgumentError, match="no MindIR export wrapper for inputs \\['image'\\]"):
        export_cell_mindir(cell, (np.zeros((1, 3, 8, 8), np.float32),), tmp_path / "r.mindir", ("image",))
    with pytest.raises(InvalidArgumentError, match="ends in .mindir"):
        export_cell_mindir(cell, (np.zeros((1, 3, 8, 8), np.float32),), tmp_path / "r.onnx", ("x",))
