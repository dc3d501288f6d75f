"""ATC / converter_lite commands and configs (golden), tool runs with fake executables, and the Ascend bundle."""
import json

import numpy as np
import pytest


from edgetrack.converters.onnx2mindir import converter_lite_argv, converter_lite_config, mindir2mindir, onnx2mindir
from edgetrack.converters.onnx2om import (
    atc_argv,
    find_om,
    input_shape_arg,
    onnx2om,
    run_tool,
    write_aipp_config,
)
from edgetrack.ascend import AippConfig
from edgetrack.errors import (
    BundleError,
    EdgetrackError,
    ExternalToolError,
    InvalidArgumentError,
    ToolchainNotFoundError,
    UnknownChoiceError,
    UnsupportedOperatorError,
)

from tool_helpers import make_tool  # noqa: E402 - tests/ is on sys.path

SHAPES = {"z": (1, 3, 127, 127)}


# -- commands and configs ---------------------------------------------------------------------------------------
def test_atc_argv_golden():
    assert atc_argv("template.onnx", "device/template", "ascend310", SHAPES, "fp16", "device/template_aipp.cfg") == [
        "atc",
        "--framework=5",
        "--model=template.onnx",
        "--output=device/template",
        "--soc_version=Ascend310",
        "--input_shape=z:1,3,127,127",
        "--input_format=NCHW",
        "--precision_mode=force_fp16",
        "--insert_op_conf=device/template_aipp.cfg",
        "--log=error",
    ]
    head = atc_argv("head.onnx", "device/head", "ascend310p", {"kernel": (1, 16, 5, 5), "features": (3, 16, 21, 21)},
                    soc_version="ascend310p1")
    assert head[4] == "--soc_version=Ascend310P1"
    assert head[5] == "--input_shape=kernel:1,16,5,5;features:3,16,21,21"
    assert not any(a.startswith("--insert_op_conf") for a in head)
    assert atc_argv("m.onnx", "o", "ascend310b", SHAPES)[4] == "--soc_version=Ascend310B1"
    assert atc_argv("m.onnx", "o", "ascend910", SHAPES)[4] == "--soc_version=Ascend910A"


def test_atc_argv_refuses_what_the_chip_cannot_build():
    with pytest.raises(InvalidArgumentError, match="(?s)fp16 on its AI Core.*--precision fp16"):
        atc_argv("m.onnx", "o", "ascend310", SHAPES, "fp32")
    # int8 is AMCT's deploy model compiled by ATC (tests/test_onnx2amct.py); ATC alone on the fp32 graph is refused.
    with pytest.raises(InvalidArgumentError, match="AMCT's deploy model"):
        atc_argv("m.onnx", "o", "ascend310", SHAPES, "int8")
    with pytest.raises(UnknownChoiceError, match="fp16, int8"):
        atc_argv("m.onnx", "o", "ascend310", SHAPES, "bf16")
    with pytest.raises(UnknownChoiceError, match="Ascend310P3"):
        atc_argv("m.onnx", "o", "ascend310p", SHAPES, soc_version="Ascend310")
    with pytest.raises(InvalidArgumentError, match="static"):
        input_shape_arg({"z": (1, 3, -1, 127)})
    with pytest.raises(InvalidArgumentError):
        input_shape_arg({})


GOLDEN_CONVERTER_LITE_CFG = """\
# edgetrack: converter_lite --optimize=ascend_oriented configuration
[ascend_context]
input_format=NCHW
precision_mode=enforce_fp16
insert_op_config_file_path=device/template_aipp.cfg
"""


def test_converter_lite_argv_and_config_golden():
    assert converter_lite_argv("template.onnx", "device/template", SHAPES, "device/template_converter_lite.cfg") == [
        "converter_lite",
        "--fmk=ONNX",
        "--modelFile=template.onnx",
        "--outputFile=device/template",
        "--saveType=MINDIR",
        "--optimize=ascend_oriented",
        "--inputShape=z:1,3,127,127",
        "--configFile=device/template_converter_lite.cfg",
    ]
    assert converter_lite_config("ascend310", "fp16", "device/template_aipp.cfg") == GOLDEN_CONVERTER_LITE_CFG
    assert "insert_op_config_file_path" not in converter_lite_config("ascend310", "fp16")
    with pytest.raises(InvalidArgumentError, match="fp16"):
        converter_lite_config("ascend310", "fp32")


def test_converter_lite_argv_for_mindspore_mindir_golden():
    """MindSpore's own MindIR as the source: --fmk=MINDIR and the .mindir model file; output, static shapes and config
    as for ONNX (MindSpore Lite's converter docs: onnx2mindir's module docstring)."""
    head = {"kernel": (1, 16, 5, 5), "features": (1, 16, 21, 21)}
    assert converter_lite_argv("head.mindir", "device/head", head, "device/head_converter_lite.cfg",
                               fmk="MINDIR") == [
        "converter_lite",
        "--fmk=MINDIR",
        "--modelFile=head.mindir",
        "--outputFile=device/head",
        "--saveType=MINDIR",
        "--optimize=ascend_oriented",
        "--inputShape=kernel:1,16,5,5;features:1,16,21,21",
        "--configFile=device/head_converter_lite.cfg",
    ]
    with pytest.raises(InvalidArgumentError, match="(?s)--fmk=MINDIR reads a .mindir file.*fmk='ONNX'"):
        converter_lite_argv("head.onnx", "device/head", head, "c.cfg", fmk="MINDIR")
    with pytest.raises(InvalidArgumentError, match="--fmk=ONNX reads a .onnx file"):
        converter_lite_argv("head.mindir", "device/head", head, "c.cfg")
    with pytest.raises(UnknownChoiceError, match="MINDIR, ONNX"):
        converter_lite_argv("head.pb", "device/head", head, "c.cfg", fmk="TF")
    with pytest.raises(InvalidArgumentError, match="over its input"):  # the device file would replace the source
        converter_lite_argv("device/head.mindir", "device/head", head, "c.cfg", fmk="MINDIR")


def test_write_aipp_config_writes_one_block_per_input(tmp_path):
    path = write_aipp_config(tmp_path / "d" / "a.cfg", [AippConfig(4, 4), AippConfig(8, 8, related_input_rank=1)])
    text = path.read_text()
    assert text.count("aipp_op {") == 2 and "related_input_rank: 1" in text


# -- running tools ----------------------------------------------------------------------------------------------
# A stand-in for ATC: writes <--output>.om (or <--output>_linux_x86_64.om when FAKE_SUFFIX is set) and prints
# its arguments, as the real one writes the model and logs.
FAKE_ATC = """\
for a in "$@"; do case "$a" in --output=*) out="${a#--output=}";; esac; done
printf 'fake om for %s' "$out" > "${out}${FAKE_SUFFIX}.om"
echo "ATC run success, welcome to the next use. args: $*"
"""
FAKE_CONVERTER_LITE = """\
for a in "$@"; do
  case "$a" in --outputFile=*) out="${a#--outputFile=}";; --configFile=*) cfg="${a#--configFile=}";; esac
done
test -f "$cfg" || { echo "no config $cfg" >&2; exit 3; }
printf 'fake mindir' > "${out}.mindir"
echo "CONVERT RESULT SUCCESS:0"
"""
FAILING_ATC = """\
echo "ATC start working now, please wait for a moment."
echo "E19999: Inner Error! fake ATC could not parse the model" >&2
exit 1
"""


def test_tool_not_on_path_says_how_to_get_it(no_tools):
    with pytest.raises(ToolchainNotFoundError, match="(?s)toolchain not found.*set_env.sh") as err:
        run_tool(["atc", "--help"])
    assert err.value.tool == "atc"
    with pytest.raises(ToolchainNotFoundError, match="MindSpore Lite"):
        run_tool(["converter_lite"])
    with pytest.raises(InvalidArgumentError, match="list of strings"):
        run_tool("atc --help")


def test_failing_tool_output_is_in_the_error(fake_bin, tmp_path):
    make_tool(fake_bin, "atc", FAILING_ATC)
    with pytest.raises(ExternalToolError) as err:
        run_tool(atc_argv("m.onnx", "out", "ascend310", SHAPES), cwd=tmp_path)
    e = err.value
    assert e.returncode == 1 and e.tool == "atc"
    assert "E19999: Inner Error! fake ATC" in str(e) and "please wait" in str(e)
    assert "--soc_version=Ascend310" in str(e)  # the command, in the fix


def test_successful_tool_writes_the_om(fake_bin, tmp_path, monkeypatch):
    make_tool(fake_bin, "atc", FAKE_ATC)
    run = run_tool(["atc", "--output=x"], cwd=tmp_path)
    assert run.returncode == 0 and "ATC run success" in run.stdout and run.executable == str(fake_bin / "atc")
    (tmp_path / "device").mkdir()
    om = onnx2om("m.onnx", "device/m", "ascend310", SHAPES, cwd=tmp_path)
    assert om == tmp_path / "device" / "m.om" and om.read_text() == "fake om for device/m"
    # Newer CANN names the file <output>_<os>_<arch>.om.
    monkeypatch.setenv("FAKE_SUFFIX", "_linux_x86_64")
    assert onnx2om("m.onnx", "device/n", "ascend310", SHAPES, cwd=tmp_path).name == "n_linux_x86_64.om"
    with pytest.raises(EdgetrackError, match="no nothing.om"):
        find_om(tmp_path / "device" / "nothing")


def test_converter_lite_run_writes_the_mindir(fake_bin, tmp_path):
    make_tool(fake_bin, "converter_lite", FAKE_CONVERTER_LITE)
    (tmp_path / "device").mkdir()
    out = onnx2mindir("m.onnx", "device/m", "ascend310", SHAPES, cwd=tmp_path)
    assert out == tmp_path / "device" / "m.mindir"
    assert (tmp_path / "device" / "m_converter_lite.cfg").read_text().startswith("# edgetrack")
    # From MindSpore's own MindIR: the same config, the device file in device/.
    assert mindir2mindir("n.mindir", "device/n", "ascend310", SHAPES, cwd=tmp_path) == tmp_path / "device" / "n.mindir"
    assert (tmp_path / "device" / "n_converter_lite.cfg").read_text() == converter_lite_config("ascend310")


# -- preparing graphs -------------------------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgetrack.converters.onnx2om import prepare_onnx_for_ascend, rewrite_nearest_resize  # noqa: E402


def _resize_model(scales, ctm="asymmetric", nearest="floor"):
    graph = helper.make_graph(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="nearest",
                          coordinate_transformation_mode=ctm, nearest_mode=nearest)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, int(5 * scales[2]), int(5 * scales[3])])],
        initializer=[numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
                     numpy_helper.from_array(np.asarray(scales, np.float32), "scales")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    return model


def test_nearest_resize_rewrite_is_exact(tmp_path):
    for scales in ([1, 1, 2, 2], [1, 1, 3, 2]):
        src = tmp_path / "src.onnx"
        onnx.save(_resize_model(scales), str(src))
        record = prepare_onnx_for_ascend(src, tmp_path / "dst.onnx")
        assert record["max_abs"] == 0.0 and record["passed"]
        node = onnx.load(str(tmp_path / "dst.onnx")).graph.node[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["coordinate_transformation_mode"] == b"half_pixel"
        assert attrs["nearest_mode"] == b"round_prefer_ceil"
    # Forms whose rounding would change are left for the audit to report.
    assert rewrite_nearest_resize(_resize_model([1, 1, 1.5, 1.5])) == []
    assert rewrite_nearest_resize(_resize_model([1, 1, 2, 2], "asymmetric", "round_prefer_floor")) == []


# -- whole bundles ----------------------------------------------------------------------------------------------
pytest.importorskip("torch")
from edgetrack.bundle import GraphSpec, Manifest, TensorSpec, load_bundle, write_bundle  # noqa: E402
from edgetrack.cli import main  # noqa: E402
from edgetrack.converters.onnx2om import ascend_bundle  # noqa: E402
from edgetrack.converters.torch2onnx import siamfc_bundle  # noqa: E402
from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_siamfc(build_siamfc("siamfc-tiny"), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def onnx_bundle(ckpt, tmp_path_factory):
    return siamfc_bundle(ckpt, tmp_path_factory.mktemp("onnx") / "bundle", scales=1)


def convert(ckpt, out, *extra, target="ascend310"):
    return main(["convert", str(ckpt), "--model", "siamfc-tiny", "--target", target, "-o", str(out), "--scales", "1",
                 *extra])


def test_convert_cli_without_atc_writes_graphs_configs_and_commands(ckpt, tmp_path, no_tools, capsys):
    out = tmp_path / "b"
    assert convert(ckpt, out) == 0  # fp16 is the Ascend default
    text = capsys.readouterr().out
    for word in ("torch->onnx", "onnx->ascend-onnx", "device: ascend ascend310", "not built: atc not found on PATH",
                 "group=16", "device files not built"):
        assert word in text, word
    b = load_bundle(out)
    m = b.manifest
    assert (m.target, m.precision, m.format_version, m.device_files_built) == ("ascend310", "fp16", 2, False)
    d = m.device
    assert (d["chip"], d["soc_version"], d["toolchain"], d["precision_mode"]) == (
        "ascend310", "Ascend310", "atc", "force_fp16")
    assert set(m.files) == {"device/template_aipp.cfg", "device/search_aipp.cfg"}
    assert b.file_path("device/template_aipp.cfg").read_text() == AippConfig(127, 127).render()
    t = d["graphs"]["template"]
    assert t["command"] == atc_argv("template.onnx", "device/template", "ascend310", {"z": (1, 3, 127, 127)},
                                    "fp16", "device/template_aipp.cfg")
    assert t["status"] == "not built: atc not found on PATH" and t["file"] is None
    assert (t["commands"], t["precision"], t["calibration"]) == ([t["command"]], "fp16", None)
    assert t["inputs"] == [{"name": "z", "shape": [1, 127, 127, 3], "dtype": "uint8", "layout": "NHWC"}]
    assert AippConfig.from_dict(t["aipp"]["inputs"]["z"]) == AippConfig(127, 127)
    assert d["graphs"]["head"]["aipp"] is None
    assert "--insert_op_conf" not in " ".join(d["graphs"]["head"]["command"])
    assert [f["rule"] for f in d["audit"]["head"]] == ["conv_runtime_weight"]
    assert "set_env.sh" in d["notes"]
    assert m.parity["onnx->ascend-onnx"]["search"]["max_abs"] == 0.0
    # The ONNX graphs in an Ascend bundle are the prepared ones: the chip's nearest rounding.
    resize = [n for n in onnx.load(str(b.graph_path("search"))).graph.node if n.op_type == "Resize"][0]
    assert {a.name: helper.get_attribute_value(a) for a in resize.attribute}["nearest_mode"] == b"round_prefer_ceil"

    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("format version: 2", "target:         ascend310 (portable graphs only)", "files (sha256 verified)",
                 "device/search_aipp.cfg", "device inputs: x [1, 255, 255, 3] uint8 NHWC", "command: atc --framework=5",
                 "operator audit: 1 info, 4 warning"):
        assert word in text, word


def test_convert_cli_with_fake_atc_builds_the_om_files(ckpt, tmp_path, fake_bin, capsys):
    make_tool(fake_bin, "atc", FAKE_ATC)
    out = tmp_path / "b"
    assert convert(ckpt, out, "--soc-version", "ascend310") == 0
    assert "device files built" in capsys.readouterr().out
    b = load_bundle(out)
    assert b.manifest.device_files_built
    for name in ("template", "search", "head"):
        g = b.manifest.device["graphs"][name]
        assert (g["status"], g["file"]) == ("built", f"device/{name}.om")
        assert b.file_path(g["file"]).read_text() == f"fake om for device/{name}"
    assert b.manifest.tools["atc"] == str(fake_bin / "atc")


@pytest.mark.parametrize("extra, message", [
    (("--precision", "fp32"), "computes convolutions in fp16"),
    (("--precision", "int8"), "--precision int8 needs --calibration"),
    (("--soc-version", "Ascend310P3"), "Ascend310"),
    (("--toolchain", "tensorrt"), "atc, converter_lite"),
    # MindSpore's own MindIR as converter_lite's source needs the MindSpore twin, and converter_lite.
    (("--toolchain", "converter_lite", "--mindir-source", "mindspore"), "--framework torch cannot export"),
    (("--mindir-source", "onnx"), "--toolchain atc does not run converter_lite"),
    (("--toolchain", "converter_lite", "--mindir-source", "ms"), "valid choices: mindspore, onnx"),
])
def test_convert_cli_refuses_bad_ascend_options_before_exporting(ckpt, tmp_path, capsys, extra, message):
    assert convert(ckpt, tmp_path / "b", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_mindir_source_defaults_to_mindspore_only_for_the_mindspore_twin():
    """What converter_lite reads when --mindir-source is not given (resolved before any export)."""
    from argparse import Namespace

    from edgetrack.commands.convert import mindir_source

    def args(**kw):
        return Namespace(**{"target": "ascend310", "toolchain": "converter_lite", "mindir_source": None, **kw})

    assert mindir_source(args(), "mindspore") == "mindspore"
    assert mindir_source(args(), "torch") == "onnx"
    assert mindir_source(args(mindir_source="onnx"), "mindspore") == "onnx"
    assert mindir_source(args(mindir_source="onnx"), "torch") == "onnx"
    assert mindir_source(args(toolchain="atc"), "mindspore") is None
    assert mindir_source(args(target="cuda"), "mindspore") is None


def test_failing_atc_leaves_no_bundle_and_shows_its_output(onnx_bundle, tmp_path, fake_bin):
    make_tool(fake_bin, "atc", FAILING_ATC)
    with pytest.raises(ExternalToolError, match="E19999: Inner Error! fake ATC"):
        ascend_bundle(onnx_bundle, tmp_path / "b", "ascend310p")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_converter_lite_toolchain(onnx_bundle, tmp_path, fake_bin):
    make_tool(fake_bin, "converter_lite", FAKE_CONVERTER_LITE)
    b = load_bundle(ascend_bundle(onnx_bundle, tmp_path / "b", "ascend910", toolchain="converter_lite"))
    d = b.manifest.device
    assert d["toolchain"] == "converter_lite" and d["precision_mode"] == "enforce_fp16"
    t = d["graphs"]["template"]
    assert t["file"] == "device/template.mindir" and t["config"] == "device/template_converter_lite.cfg"
    assert b.file_path(t["config"]).read_text() == GOLDEN_CONVERTER_LITE_CFG
    assert t["command"] == converter_lite_argv("template.onnx", "device/template", {"z": (1, 3, 127, 127)},
                                               "device/template_converter_lite.cfg")
    assert b.manifest.device_files_built
    # A PyTorch export has no MindIR sources: converter_lite reads the ONNX graphs, and says so.
    assert d["mindir_source"] == "onnx" and t["source"] == {"file": "template.onnx", "format": "ONNX"}
    explicit = load_bundle(ascend_bundle(onnx_bundle, tmp_path / "c", "ascend910", toolchain="converter_lite",
                                         mindir_source="onnx")).manifest
    assert explicit.device["graphs"]["head"]["command"] == d["graphs"]["head"]["command"]
    missing = r"(?s)MindIR, but .* has none for graph\(s\) \['head', 'search', 'template'\].*mindir=True"
    with pytest.raises(BundleError, match=missing):
        ascend_bundle(onnx_bundle, tmp_path / "d", "ascend910", toolchain="converter_lite", mindir_source="mindspore")
    with pytest.raises(InvalidArgumentError, match="toolchain 'atc' compiles the ONNX graphs"):
        ascend_bundle(onnx_bundle, tmp_path / "d", "ascend910", mindir_source="mindspore")
    with pytest.raises(UnknownChoiceError, match="mindspore, onnx"):
        ascend_bundle(onnx_bundle, tmp_path / "d", "ascend910", toolchain="converter_lite", mindir_source="tf")
    assert not (tmp_path / "d").exists()


def test_unsupported_operator_fails_before_anything_is_written(tmp_path, no_tools):
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="quant"),
         helper.make_node("DequantizeLinear", ["q", "s"], ["y"], name="dequant")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        initializer=[numpy_helper.from_array(np.float32(0.1), "s")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, str(tmp_path / "g.onnx"))
    x, y = TensorSpec("x", (1, 3, 8, 8)), TensorSpec("y", (1, 3, 8, 8))
    manifest = Manifest("toy", "toy", "cpu", "fp32", {"g": GraphSpec("g", "g.onnx", "", (x,), (y,))})
    src = write_bundle(tmp_path / "src", manifest, {"g": tmp_path / "g.onnx"})
    with pytest.raises(UnsupportedOperatorError) as err:
        ascend_bundle(src, tmp_path / "out", "ascend310")
    assert (err.value.op_type, err.value.node, err.value.chip) == ("QuantizeLinear", "quant", "ascend310")
    assert not (tmp_path / "out").exists()


def test_ascend_bundle_takes_only_portable_bundles(onnx_bundle, tmp_path, no_tools):
    first = ascend_bundle(onnx_bundle, tmp_path / "a", "ascend310")
    with pytest.raises(InvalidArgumentError, match="portable fp32 ONNX bundle"):
        ascend_bundle(first, tmp_path / "b", "ascend310")
    with pytest.raises(EdgetrackError, match="already exists"):
        ascend_bundle(onnx_bundle, first, "ascend310")
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and "device" in manifest


def test_inspect_of_an_ascend_bundle_needs_no_torch_or_onnx(onnx_bundle, tmp_path, no_tools):
    import subprocess
    import sys

    out = ascend_bundle(onnx_bundle, tmp_path / "a", "ascend310b")
    code = (
        "import sys\n"
        "from edgetrack.cli import main\n"
        f"rc = main(['inspect', {str(out)!r}])\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'mindspore') if m in sys.modules)\n"
        "assert rc == 0 and not heavy, (rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "soc_version Ascend310B1" in proc.stdout and "aipp:    device/template_aipp.cfg" in proc.stdout


def test_the_audit_printout_groups_nodes_flagged_by_one_rule():
    from edgetrack.commands.inspect import format_audit

    def finding(node, group):
        return {"severity": "warning", "op_type": "Conv", "node": node, "rule": "conv_group",
                "message": f"group={group} (depthwise)"}

    audit = {"search": [finding(f"dw{i}", 16 * (i + 1)) for i in range(11)],
             "head": [{"severity": "info", "op_type": "Conv", "node": "corr", "rule": "conv_runtime_weight",
                       "message": "weight computed at run time"}]}
    lines = format_audit(audit)
    assert lines[0] == "  operator audit: 1 info, 11 warning"
    assert lines[1] == "    search: warning: Conv 'dw0': group=16 (depthwise) (and 10 more Conv nodes like it)"
    assert lines[2] == "    head: info: Conv 'corr': weight computed at run time"
    assert lines[3] == "    (edgetrack inspect BUNDLE --audit lists every node)"
    every = format_audit(audit, every_node=True)
    assert len(every) == 1 + 12 and every[-2] == "    search: warning: Conv 'dw10': group=176 (depthwise)"
