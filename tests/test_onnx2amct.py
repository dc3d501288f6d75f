"""int8 for Ascend: AMCT's command and .bin calibration data (golden), ATC on AMCT's deploy model, fake tools on PATH,
the bundle without the toolchain, the CLI, and the simulator on an int8 bundle."""

import numpy as np
import pytest


from edgetrack.converters.onnx2amct import (
    DEFAULT_CALIBRATION_BATCHES,
    MAX_CALIBRATION_BATCHES,
    amct_argv,
    check_batches,
    deploy_model,
    find_deploy_model,
    onnx2amct,
    write_calibration_data,
)
from edgetrack.converters.onnx2mindir import converter_lite_precision_mode
from edgetrack.converters.onnx2om import atc_argv, atc_precision_mode
from edgetrack.errors import (
    ConversionError,
    ExternalToolError,
    InvalidArgumentError,
    ToolchainNotFoundError,
)

from tool_helpers import make_tool, path_without  # noqa: E402 - tests/ is on sys.path

HEAD = {"kernel": (1, 16, 5, 5), "features": (1, 16, 21, 21)}


# -- commands ----------------------------------------------------------------------------------------------------
def test_amct_argv_golden():
    assert amct_argv("template.onnx", "device/amct/template", {"z": (1, 3, 127, 127)},
                     {"z": "device/calibration/template/z"}, 8) == [
        "amct_onnx",
        "calibration",
        "--model=template.onnx",
        "--save_path=device/amct/template",
        "--input_shape=z:1,3,127,127",
        "--data_dir=device/calibration/template/z/",
        "--data_types=float32",
        "--batch_num=8",
    ]
    # Several inputs: folders and types in the inputs' order (not the mapping's), joined by ';'.
    head = amct_argv("head.onnx", "device/amct/head", HEAD,
                     {"features": "device/calibration/head/features/", "kernel": "device/calibration/head/kernel"}, 3)
    assert head[4:] == [
        "--input_shape=kernel:1,16,5,5;features:1,16,21,21",
        "--data_dir=device/calibration/head/kernel/;device/calibration/head/features/",
        "--data_types=float32;float32",
        "--batch_num=3",
    ]
    assert deploy_model("device/amct/head") == "device/amct/head_deploy_model.onnx"


def test_amct_argv_refuses_what_amct_cannot_read():
    dirs = {"z": "d/z"}
    with pytest.raises(InvalidArgumentError, match="name the inputs"):
        amct_argv("m.onnx", "o/m", {"z": (1, 3, 8, 8)}, {"x": "d/x"}, 1)
    with pytest.raises(InvalidArgumentError, match="characters AMCT does not accept"):
        amct_argv("m.onnx", "o/m", {"z": (1, 3, 8, 8)}, {"z": "d/a b"}, 1)
    with pytest.raises(InvalidArgumentError, match="characters AMCT does not accept"):
        amct_argv("m.onnx", "o/m;x", {"z": (1, 3, 8, 8)}, dirs, 1)
    with pytest.raises(InvalidArgumentError, match="data_types"):
        amct_argv("m.onnx", "o/m", {"z": (1, 3, 8, 8)}, dirs, 1, data_types=["uint8"])
    with pytest.raises(InvalidArgumentError, match="static"):
        amct_argv("m.onnx", "o/m", {"z": (1, 3, -1, 8)}, dirs, 1)
    for bad in (0, -1, True, 2.0):
        with pytest.raises(InvalidArgumentError, match="positive integer"):
            amct_argv("m.onnx", "o/m", {"z": (1, 3, 8, 8)}, dirs, bad)
    with pytest.raises(InvalidArgumentError, match=f"(?s)at most {MAX_CALIBRATION_BATCHES}.*--calibration-frames"):
        check_batches(MAX_CALIBRATION_BATCHES + 1)
    assert check_batches(None) == DEFAULT_CALIBRATION_BATCHES and check_batches(MAX_CALIBRATION_BATCHES) == 32


def test_atc_compiles_int8_only_from_amcts_deploy_model():
    argv = atc_argv("device/amct/template_deploy_model.onnx", "device/template", "ascend310",
                    {"z": (1, 3, 127, 127)}, "int8", "device/template_aipp.cfg")
    assert argv == [
        "atc",
        "--framework=5",
        "--model=device/amct/template_deploy_model.onnx",
        "--output=device/template",
        "--soc_version=Ascend310",
        "--input_shape=z:1,3,127,127",
        "--input_format=NCHW",
        # ATC has no int8 mode: AMCT's layers are int8, the rest fp16.
        "--precision_mode=force_fp16",
        "--insert_op_conf=device/template_aipp.cfg",
        "--log=error",
    ]
    assert atc_precision_mode("ascend310p", "int8") == "force_fp16"
    with pytest.raises(InvalidArgumentError, match="(?s)AMCT's deploy model.*fix: calibrate the graph with AMCT"):
        atc_argv("template.onnx", "device/template", "ascend310", {"z": (1, 3, 127, 127)}, "int8")


def test_converter_lite_int8_is_refused_with_the_atc_fix():
    with pytest.raises(InvalidArgumentError, match="(?s)FULL_QUANT.*NHWC.*fix: use --toolchain atc for int8"):
        converter_lite_precision_mode("ascend310", "int8")
    assert converter_lite_precision_mode("ascend310", "fp16") == "enforce_fp16"


# -- calibration data ---------------------------------------------------------------------------------------------
class _T:
    def __init__(self, name, shape):
        self.name, self.shape = name, shape


def test_calibration_data_is_raw_float32_in_the_input_layout(tmp_path):
    rng = np.random.default_rng(0)
    inputs = [_T("kernel", HEAD["kernel"]), _T("odd name", (1, 2))]
    feeds = [{"kernel": rng.random(HEAD["kernel"]), "odd name": rng.random((1, 2)).astype(np.float32)}
             for _ in range(4)]
    dirs, files = write_calibration_data(tmp_path, "device/calibration/head", inputs, iter(feeds), 3)
    # A name AMCT would not accept in a path gets the input's index instead.
    assert dirs == {"kernel": "device/calibration/head/kernel", "odd name": "device/calibration/head/input1"}
    assert files == [f"device/calibration/head/{d}/batch{k:04d}.bin" for k in range(3) for d in ("kernel", "input1")]
    for k in range(3):
        raw = np.fromfile(tmp_path / f"device/calibration/head/kernel/batch{k:04d}.bin", dtype="<f4")
        np.testing.assert_array_equal(raw.reshape(HEAD["kernel"]), feeds[k]["kernel"].astype(np.float32))
    assert sorted(p.name for p in (tmp_path / "device/calibration/head/kernel").iterdir()) == [
        "batch0000.bin", "batch0001.bin", "batch0002.bin"]
    with pytest.raises(ConversionError, match="(?s)has shape \\(1, 3\\).*--input_shape"):
        write_calibration_data(tmp_path / "b", "c", [_T("x", (1, 2))], [{"x": np.zeros((1, 3))}], 1)
    with pytest.raises(ConversionError, match="gave 1 samples, 2 were asked"):
        write_calibration_data(tmp_path / "c", "c", [_T("x", (1, 2))], [{"x": np.zeros((1, 2))}], 2)


# -- running AMCT --------------------------------------------------------------------------------------------------
# A stand-in for amct_onnx: checks the subcommand and that every --data_dir folder holds --batch_num .bin files,
# writes <--save_path>_deploy_model.onnx and logs as AMCT does.
FAKE_AMCT = """\
test "$1" = calibration || { echo "expected the calibration subcommand, got $1" >&2; exit 5; }
for a in "$@"; do
  case "$a" in --save_path=*) save="${a#--save_path=}";; --data_dir=*) dirs="${a#--data_dir=}";;
               --batch_num=*) n="${a#--batch_num=}";; esac
done
IFS=';'
for d in $dirs; do
  c=$(ls "$d" | grep -c '[.]bin$')
  test "$c" = "$n" || { echo "$d holds $c .bin files, --batch_num=$n" >&2; exit 4; }
done
mkdir -p "$(dirname "$save")"
printf 'fake deploy model of %s' "$save" > "${save}_deploy_model.onnx"
echo "INFO - [AMCT]:[Utils]: The model file is saved in ${save}_deploy_model.onnx"
"""
FAILING_AMCT = """\
echo "INFO - [AMCT]: start calibration"
echo "ERROR - [AMCT]: fake AMCT cannot read device/calibration" >&2
exit 2
"""
SILENT_AMCT = "exit 0\n"
# ATC that records which model it compiled (the int8 chain must hand it AMCT's deploy model).
FAKE_ATC = """\
for a in "$@"; do case "$a" in --output=*) out="${a#--output=}";; --model=*) model="${a#--model=}";; esac; done
test -f "$model" || { echo "no model $model" >&2; exit 3; }
printf 'fake om of %s' "$model" > "${out}.om"
echo "ATC run success, welcome to the next use."
"""


def test_onnx2amct_runs_the_tool_and_finds_its_deploy_model(fake_bin, tmp_path):
    work = tmp_path / "w"
    write_calibration_data(work, "cal", [_T("z", (1, 2))], [{"z": np.ones((1, 2))}] * 2, 2)
    with pytest.raises(ToolchainNotFoundError, match="(?s)amct_onnx.*amct_onnx-<version>.*set_env.sh"):
        onnx2amct("m.onnx", "amct/m", {"z": (1, 2)}, {"z": "cal/z"}, 2, cwd=work)
    make_tool(fake_bin, "amct_onnx", FAKE_AMCT)
    out = onnx2amct("m.onnx", "amct/m", {"z": (1, 2)}, {"z": "cal/z"}, 2, cwd=work)
    assert out == work / "amct/m_deploy_model.onnx" and out.read_text() == "fake deploy model of amct/m"
    # The fake checks --batch_num against the folder: the argv and the data agree.
    with pytest.raises(ExternalToolError, match="holds 2 .bin files, --batch_num=3"):
        onnx2amct("m.onnx", "amct/m", {"z": (1, 2)}, {"z": "cal/z"}, 3, cwd=work)
    make_tool(fake_bin, "amct_onnx", FAILING_AMCT)
    with pytest.raises(ExternalToolError) as err:
        onnx2amct("m.onnx", "amct/m", {"z": (1, 2)}, {"z": "cal/z"}, 2, cwd=work)
    assert err.value.returncode == 2 and "fake AMCT cannot read" in str(err.value)
    assert "start calibration" in str(err.value) and "--save_path=amct/m" in str(err.value)
    with pytest.raises(ConversionError, match="reported success but 'n_deploy_model.onnx'"):
        find_deploy_model(work / "amct" / "n")


# -- whole bundles -------------------------------------------------------------------------------------------------
pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.cli import main  # noqa: E402
from edgetrack.converters.onnx2om import ascend_bundle  # noqa: E402
from edgetrack.converters.torch2onnx import siamfc_bundle  # noqa: E402
from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc  # noqa: E402

BATCHES = 3
SHAPES = {"template": {"z": (1, 3, 127, 127)}, "search": {"x": (1, 3, 255, 255)},
          "head": {"kernel": (1, 16, 5, 5), "features": (1, 16, 21, 21)}}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    return save_siamfc(build_siamfc("siamfc-tiny").eval(), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def onnx_bundle(ckpt, tmp_path_factory):
    return siamfc_bundle(ckpt, tmp_path_factory.mktemp("onnx") / "bundle", scales=1)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    from edgetrack.data.synth import SynthConfig, generate

    data = generate(SynthConfig(sequences=2, frames=6, size=(160, 120), seed=3, pairs=False),
                    tmp_path_factory.mktemp("synth") / "synth", progress=False)
    return f"synthetic:{data}"


@pytest.fixture(scope="module")
def int8_bundle(onnx_bundle, calibration, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", path_without("atc", "amct_onnx"))
        return ascend_bundle(onnx_bundle, tmp_path_factory.mktemp("a") / "int8", "ascend310", precision="int8",
                             calibration=calibration, calibration_frames=BATCHES)


def _golden_commands(name):
    shapes = SHAPES[name]
    dirs = {inp: f"device/calibration/{name}/{inp}" for inp in shapes}
    aipp = f"device/{name}_aipp.cfg" if name != "head" else None
    return [
        amct_argv(f"{name}.onnx", f"device/amct/{name}", shapes, dirs, BATCHES),
        atc_argv(f"device/amct/{name}_deploy_model.onnx", f"device/{name}", "ascend310", shapes, "int8", aipp),
    ]


def test_without_the_toolchain_the_bundle_holds_commands_and_calibration_data(int8_bundle):
    b = load_bundle(int8_bundle)  # every file's sha256 verified
    m = b.manifest
    assert (m.target, m.precision, m.device_files_built) == ("ascend310", "int8", False)
    d = m.device
    assert d["precision_mode"] == "force_fp16"
    for name in ("template", "search", "head"):
        g = d["graphs"][name]
        assert g["status"] == "not built: amct_onnx and atc not found on PATH" and g["file"] is None
        assert g["precision"] == "int8"
        assert g["commands"] == _golden_commands(name)
        assert g["command"] == g["commands"][-1]  # readers of `command` get the ATC step, as for fp16
        assert g["calibration"] == {
            "tool": "amct_onnx", "command": g["commands"][0], "batches": BATCHES, "dtype": "float32",
            "data": {inp: f"device/calibration/{name}/{inp}/" for inp in SHAPES[name]},
            "deploy_model": f"device/amct/{name}_deploy_model.onnx",
        }
    assert "set_env.sh" in d["notes"] and "amct_onnx-<version>" in d["notes"] and "in order" in d["notes"]
    assert m.tools["amct_onnx"] == "not found on PATH" and m.tools["atc"] == "not found on PATH"
    calib = m.source["calibration"]
    assert calib["batches"] == BATCHES and calib["samples"] == BATCHES and calib["data"].startswith("synthetic:")
    assert m.source["precision"]["graphs"] == {"template": "int8", "search": "int8", "head": "int8"}
    bins = sorted(rel for rel in m.files if rel.endswith(".bin"))
    assert len(bins) == BATCHES * 4  # z, x, kernel, features


def test_the_calibration_files_are_the_crops_and_what_the_fp32_graphs_make_of_them(int8_bundle, calibration):
    import onnxruntime as ort

    from edgetrack.converters.precision import sample_crops
    from edgetrack.tracker import tracking_settings

    b = load_bundle(int8_bundle)
    crops = sample_crops(calibration, BATCHES, tracking_settings(b).params, phase=0.25)
    run = {g: ort.InferenceSession(str(b.graph_path(g)), providers=["CPUExecutionProvider"])
           for g in ("template", "search")}

    def read(name, inp, k):
        path = b.file_path(f"device/calibration/{name}/{inp}/batch{k:04d}.bin")
        shape = SHAPES[name][inp]
        assert path.stat().st_size == 4 * int(np.prod(shape))  # raw float32, no header
        return np.fromfile(path, dtype="<f4").reshape(shape)

    for k in range(BATCHES):
        np.testing.assert_array_equal(read("template", "z", k), crops.template(k))
        np.testing.assert_array_equal(read("search", "x", k), crops.search(k))
        kernel = run["template"].run(None, {"z": crops.first_template(k)})[0]
        features = run["search"].run(None, {"x": crops.search(k)})[0]
        np.testing.assert_allclose(read("head", "kernel", k), kernel, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(read("head", "features", k), features, rtol=1e-6, atol=1e-6)
    assert float(np.ptp(read("search", "x", 0))) > 0  # real pixels, not a blank frame


def test_inspect_shows_the_calibration_step_before_atc(int8_bundle, capsys):
    assert main(["inspect", str(int8_bundle)]) == 0
    text = capsys.readouterr().out
    for word in ("precision:      int8", "precision: int8 (AMCT calibration on 3 float32 batches: z: "
                 "device/calibration/template/z/)", "calibrate: amct_onnx calibration --model=template.onnx",
                 "command: atc --framework=5 --model=device/amct/template_deploy_model.onnx",
                 "device/calibration/head/kernel/batch0002.bin"):
        assert word in text, word
    assert text.index("calibrate: amct_onnx calibration --model=head.onnx") < text.index(
        "command: atc --framework=5 --model=device/amct/head_deploy_model.onnx")


def test_the_simulator_tracks_an_int8_bundle_and_says_it_simulates_fp16(int8_bundle):
    from bundle_helpers import moving_texture_frames

    from edgetrack import Tracker
    from edgetrack.backends.simulator import INT8_NOTE, SimulatorBackend, estimate_bundle

    sim = SimulatorBackend().load(load_bundle(int8_bundle).graph_path("search"))
    assert INT8_NOTE in sim.notes and "simulated at fp16" in INT8_NOTE
    est = sim.estimate()
    assert (est["precision"], est["simulated_precision"], est["note"]) == ("fp16", "fp16", INT8_NOTE)
    assert sim.estimate(precision="int8")["precision"] == "int8"
    assert estimate_bundle(int8_bundle)["note"] == INT8_NOTE
    frames, boxes = moving_texture_frames(4)
    tracker = Tracker(int8_bundle, backend="simulator", device="ascend310")
    tracker.init(frames[0], boxes[0])
    for f in frames[1:]:
        assert np.all(np.isfinite(tracker.update(f).box))


def test_with_fake_amct_and_atc_the_om_files_are_built_from_the_deploy_models(onnx_bundle, calibration, tmp_path,
                                                                               fake_bin):
    make_tool(fake_bin, "amct_onnx", FAKE_AMCT)
    make_tool(fake_bin, "atc", FAKE_ATC)
    b = load_bundle(ascend_bundle(onnx_bundle, tmp_path / "b", "ascend310", precision="int8",
                                  calibration=calibration, calibration_frames=2))
    assert b.manifest.device_files_built
    for name in ("template", "search", "head"):
        g = b.manifest.device["graphs"][name]
        assert (g["status"], g["file"]) == ("built", f"device/{name}.om")
        assert b.file_path(g["file"]).read_text() == f"fake om of device/amct/{name}_deploy_model.onnx"
    assert b.manifest.tools["amct_onnx"] == str(fake_bin / "amct_onnx")


def test_only_atc_on_path_builds_nothing_and_names_amct(onnx_bundle, calibration, tmp_path, fake_bin):
    make_tool(fake_bin, "atc", FAKE_ATC)
    b = load_bundle(ascend_bundle(onnx_bundle, tmp_path / "b", "ascend310", precision="int8",
                                  calibration=calibration, calibration_frames=1))
    assert not b.manifest.device_files_built
    assert b.manifest.device["graphs"]["head"]["status"] == "not built: amct_onnx not found on PATH"
    assert "amct_onnx-<version>" in b.manifest.device["notes"]


@pytest.mark.parametrize("body, error, match", [
    (FAILING_AMCT, ExternalToolError, "(?s)exit status 2.*fake AMCT cannot read"),
    (SILENT_AMCT, ConversionError, "amct_onnx reported success but '(head|template|search)_deploy_model.onnx'"),
])
def test_a_failing_amct_leaves_no_bundle_and_shows_its_output(onnx_bundle, calibration, tmp_path, fake_bin,
                                                              body, error, match):
    make_tool(fake_bin, "amct_onnx", body)
    make_tool(fake_bin, "atc", FAKE_ATC)
    with pytest.raises(error, match=match):
        ascend_bundle(onnx_bundle, tmp_path / "b", "ascend310p", precision="int8", calibration=calibration,
                      calibration_frames=1)
    assert not (tmp_path / "b").exists()


def test_ascend_bundle_refuses_int8_requests_it_cannot_build(onnx_bundle, tmp_path, no_tools, calibration):
    with pytest.raises(InvalidArgumentError, match="(?s)no --calibration.*fix: pass --calibration KIND:PATH"):
        ascend_bundle(onnx_bundle, tmp_path / "a", "ascend310", precision="int8")
    with pytest.raises(InvalidArgumentError, match="at most 32"):
        ascend_bundle(onnx_bundle, tmp_path / "a", "ascend310", precision="int8", calibration=calibration,
                      calibration_frames=33)
    with pytest.raises(InvalidArgumentError, match="--toolchain atc for int8"):
        ascend_bundle(onnx_bundle, tmp_path / "a", "ascend310", precision="int8", calibration=calibration,
                      toolchain="converter_lite")
    assert not (tmp_path / "a").exists()


# -- the command line ----------------------------------------------------------------------------------------------
def convert(ckpt, out, *extra):
    return main(["convert", str(ckpt), "--model", "siamfc-tiny", "--target", "ascend310", "-o", str(out),
                 "--scales", "1", "--precision", "int8", *extra])


def test_convert_cli_int8_without_cann(ckpt, calibration, tmp_path, no_tools, capsys):
    out = tmp_path / "b"
    assert convert(ckpt, out, "--calibration", calibration, "--calibration-frames", "2") == 0
    text = capsys.readouterr().out
    for word in ("not built: amct_onnx and atc not found on PATH", "calibrate: amct_onnx calibration",
                 "--precision_mode=force_fp16", "int8, 3 graphs, device files not built"):
        assert word in text, word
    m = load_bundle(out).manifest
    assert m.precision == "int8" and m.device["graphs"]["search"]["calibration"]["batches"] == 2
    assert len([f for f in m.files if f.endswith(".bin")]) == 2 * 4


@pytest.mark.parametrize("extra, message", [
    ((), "--precision int8 needs --calibration"),
    (("--calibration", "synthetic:x", "--calibration-frames", "33"), "at most 32"),
    (("--calibration", "synthetic:x", "--toolchain", "converter_lite"), "use --toolchain atc for int8"),
])
def test_convert_cli_refuses_int8_requests_before_exporting(ckpt, tmp_path, capsys, extra, message):
    assert convert(ckpt, tmp_path / "b", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
