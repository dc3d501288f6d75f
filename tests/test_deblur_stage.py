"""The deblur stage end to end: DeblurGAN-v2 as two bundle graphs, composing them into a tracker bundle (add_deblur),
the blur gate, and edgetrack.Tracker running the stage with deblur="auto" | "always" | "never"."""
import json
import shutil

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

from edgetrack import Tracker  # noqa: E402
from edgetrack.bundle import load_bundle, sha256_file  # noqa: E402
from edgetrack.errors import (  # noqa: E402
    BundleError,
    CheckpointError,
    InvalidArgumentError,
    UnknownChoiceError,
)
from edgetrack.models.pairs import motion_blur_kernel  # noqa: E402
from edgetrack.tracking.blur import (  # noqa: E402
    DEBLUR_MODES,
    BlurGate,
    DeblurStage,
    blur_measure,
    gate_rates,
    roc_auc,
)

pytestmark = pytest.mark.torch

from torch_helpers import single_torch_thread, trained_like_deblurgan  # noqa: E402 - tests/ is on sys.path

one_thread = pytest.fixture(autouse=True)(single_torch_thread)


def _trained_like(seed: int = 0):
    return trained_like_deblurgan(seed)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A tiny SiamFC bundle, an identity (untrained) and a trained-like DeblurGAN-v2, and the composed bundles."""
    from edgetrack.converters.deblur2onnx import add_deblur
    from edgetrack.converters.torch2onnx import siamfc_bundle
    from edgetrack.models.torch.deblurgan import build_deblurgan, save_deblurgan
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("deblur")
    torch.manual_seed(0)
    tracker_ckpt = save_siamfc(build_siamfc("siamfc-tiny").eval(), root / "tracker.safetensors")
    tracker = siamfc_bundle(tracker_ckpt, root / "tracker")
    identity = save_deblurgan(build_deblurgan("deblurgan-tiny"), root / "identity.safetensors")
    trained = save_deblurgan(_trained_like(), root / "trained.safetensors")
    return {
        "root": root,
        "tracker_ckpt": tracker_ckpt,
        "tracker": tracker,
        "identity_ckpt": identity,
        "trained_ckpt": trained,
        "identity": add_deblur(tracker, identity, root / "identity"),
        "trained": add_deblur(tracker, trained, root / "trained", model="deblur-siamfc-test"),
    }


def _scene(size=(160, 120), seed=0) -> np.ndarray:
    """Coloured shapes and a little texture on grey: edges in every direction."""
    rng = np.random.default_rng(seed)
    img = np.full((size[1], size[0], 3), 110, np.uint8)
    for _ in range(40):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(3, 20)), y + int(rng.integers(3, 20))), colour, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(2, 10)), colour, -1)
    return img


def _blurred(img: np.ndarray, length: float = 15.0, angle: float = 0.3) -> np.ndarray:
    return cv2.filter2D(img, -1, motion_blur_kernel(length, angle), borderType=cv2.BORDER_REFLECT)


def _frames(n=5, blur=0.0, size=(160, 120)):
    """A target (a red box with a yellow dot) moving right over a textured scene; optionally motion-blurred."""
    frames, boxes = [], []
    background = _scene(size, seed=3)
    for i in range(n):
        img = background.copy()
        x, y = 40 + 5 * i, 40 + 2 * i
        cv2.rectangle(img, (x, y), (x + 27, y + 21), (30, 40, 220), -1)
        cv2.circle(img, (x + 8, y + 7), 4, (240, 240, 40), -1)
        frames.append(_blurred(img, blur) if blur else img)
        boxes.append((x, y, 28, 22))
    return frames, boxes


def _track(tracker, frames, box):
    tracker.init(frames[0], box)
    return [tracker.update(f) for f in frames[1:]]


# -- the graphs and the composed bundle ------------------------------------------------------------------------------
def test_deblur_graphs_match_torch_at_the_trackers_shapes(bundles, tmp_path):
    from edgetrack.converters.deblur2onnx import DEBLUR_GRAPHS, deblur_to_onnx

    g = _trained_like()
    shapes = {"template": (1, 3, 127, 127), "search": (3, 3, 255, 255)}
    paths, parity = deblur_to_onnx(g, tmp_path, shapes)
    assert set(parity) == set(DEBLUR_GRAPHS.values())
    for row in parity.values():
        assert row["passed"] and row["max_rel"] <= 1e-4 and row["scale"] > 100
    # A real-looking crop through the shipped bundle's graphs (weights in deblur_weights.bin) against torch.
    bundle = load_bundle(bundles["trained"])
    crop = cv2.resize(_scene(), (255, 255)).transpose(2, 0, 1)[None].astype(np.float32)
    batch = np.repeat(crop, 3, axis=0)
    session = ort.InferenceSession(str(bundle.graph_path("deblur_search")), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"crop": batch})
    with torch.no_grad():
        ref = g(torch.from_numpy(batch)).numpy()
    assert y.shape == (3, 3, 255, 255)
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.abs(y - batch).max() > 1.0  # the trained-like generator really changes the crop


def test_add_deblur_writes_a_loadable_hash_checked_bundle(bundles):
    from edgetrack.converters.onnx_weights import DATA_FILE as TRACKER_WEIGHTS

    tracker = load_bundle(bundles["tracker"])
    bundle = load_bundle(bundles["trained"])
    m = bundle.manifest
    assert m.model == "deblur-siamfc-test" and m.family == "siamfc"
    assert load_bundle(bundles["identity"]).manifest.model == "deblur-siamfc"  # the default: deblur-<family>
    assert set(m.graphs) == set(tracker.manifest.graphs) | {"deblur_template", "deblur_search"}
    for role, graph in (("template", "deblur_template"), ("search", "deblur_search")):
        crop = tracker.manifest.graphs[role].inputs[0].shape
        assert m.graphs[graph].inputs[0].shape == crop == m.graphs[graph].outputs[0].shape
    # The tracker's graphs and further files are copied through unchanged.
    for name, spec in tracker.manifest.graphs.items():
        assert m.graphs[name].sha256 == spec.sha256
    for rel, digest in tracker.manifest.files.items():
        assert m.files[rel] == digest
    assert "deblur_weights.bin" in m.files and (TRACKER_WEIGHTS in m.files) == bool(tracker.manifest.files)
    section = m.preprocessing["deblur"]
    assert section["graphs"] == {"template": "deblur_template", "search": "deblur_search"}
    assert section["gate"] == BlurGate().to_dict()
    assert section["checkpoint_sha256"] == sha256_file(bundles["trained_ckpt"])
    assert section["config"]["name"] == section["model"] == "deblurgan-tiny"
    assert section["weights"]["saved_bytes"] > 0  # the two graphs hold one copy of the weights
    for stage in section["parity"]:
        assert all(row["passed"] for row in m.parity[stage].values())
    assert m.parity["deblur torch->onnx"]["deblur_search"]["max_rel"] <= 1e-4
    assert m.tracking == tracker.manifest.tracking and "Deblur stage" in m.notes
    # Every file is hash-checked at load, the deblur weights included.
    copy = bundles["root"] / "altered"
    shutil.copytree(bundles["trained"], copy)
    with open(copy / "deblur_weights.bin", "r+b") as fh:
        fh.seek(5000)
        fh.write(b"\x01\x02")
    with pytest.raises(BundleError, match="deblur_weights.bin.*altered"):
        load_bundle(copy)


def test_add_deblur_fp16_and_its_refusals(bundles, tmp_path):
    from edgetrack.converters.deblur2onnx import add_deblur

    out = add_deblur(bundles["tracker"], bundles["trained_ckpt"], tmp_path / "fp16", precision="fp16", gate=0.4)
    m = load_bundle(out).manifest
    assert m.preprocessing["deblur"]["gate"]["threshold"] == 0.4
    assert m.preprocessing["deblur"]["precision"].startswith("fp16")
    for stage in ("deblur torch->fp16", "deblur onnx-fp32->fp16"):
        assert all(r["passed"] and r["max_rel"] <= 1e-2 for r in m.parity[stage].values())
    fp32 = load_bundle(bundles["trained"]).file_path("deblur_weights.bin").stat().st_size
    assert load_bundle(out).file_path("deblur_weights.bin").stat().st_size < 0.75 * fp32
    # A tracker checkpoint is not a deblurrer: the error names what it holds.
    with pytest.raises(CheckpointError, match=r"'siamfc' model \(siamfc-tiny\), not a DeblurGAN-v2"):
        add_deblur(bundles["tracker"], bundles["tracker_ckpt"], tmp_path / "wrong")
    with pytest.raises(BundleError, match="already has a deblur stage"):
        add_deblur(bundles["trained"], bundles["trained_ckpt"], tmp_path / "twice")
    with pytest.raises(BundleError, match="already exists"):
        add_deblur(bundles["tracker"], bundles["trained_ckpt"], bundles["trained"])
    with pytest.raises(UnknownChoiceError, match="fp16, fp32"):
        add_deblur(bundles["tracker"], bundles["trained_ckpt"], tmp_path / "int8", precision="int8")
    with pytest.raises(InvalidArgumentError, match="threshold"):
        add_deblur(bundles["tracker"], bundles["trained_ckpt"], tmp_path / "gate", gate=1.5)
    assert not (tmp_path / "wrong").exists() and not (tmp_path / "int8").exists()


# -- the tracker -----------------------------------------------------------------------------------------------------
def test_an_identity_deblurrer_leaves_tracking_unchanged(bundles):
    frames, boxes = _frames(blur=9.0)
    plain = _track(Tracker(bundles["tracker"]), frames, boxes[0])
    tracker = Tracker(bundles["identity"], deblur="always")
    assert tracker.has_deblur_stage and tracker.deblur == "always"
    results = _track(tracker, frames, boxes[0])
    for a, b in zip(plain, results):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        assert a.score == pytest.approx(b.score, abs=1e-4) and a.lost == b.lost
    s = tracker.stats
    assert (s.frames, s.deblurred, s.template_deblurred) == (len(frames) - 1, len(frames) - 1, True)
    assert s.deblur_seconds > 0 and s.gate_seconds == 0 and s.last_blur is None
    # init starts the statistics afresh
    tracker.init(frames[0], boxes[0])
    assert (tracker.stats.frames, tracker.stats.deblurred) == (0, 0)


def test_a_trained_deblurrer_changes_the_crops_the_tracker_sees(bundles):
    frames, boxes = _frames()
    never = Tracker(bundles["trained"], deblur="never")
    always = Tracker(bundles["trained"], deblur="always")
    never.init(frames[0], boxes[0])
    always.init(frames[0], boxes[0])
    assert not np.allclose(never._kernel, always._kernel, atol=1e-4)
    assert "deblur_search" not in never._sessions  # "never" does not even load the deblur graphs
    r_never, r_always = never.update(frames[1]), always.update(frames[1])
    assert r_never.score != pytest.approx(r_always.score, abs=1e-6) or r_never.box != r_always.box
    assert never.stats.deblurred == 0 and never.stats.frames == 1 and always.stats.deblurred == 1


def test_auto_deblurs_blurred_frames_and_skips_sharp_ones(bundles):
    for blur, expect in ((0.0, 0), (15.0, 4)):
        frames, boxes = _frames(blur=blur)
        tracker = Tracker(bundles["trained"])  # deblur="auto" is the default
        _track(tracker, frames, boxes[0])
        s = tracker.stats
        assert s.mode == "auto" and s.frames == 4 and s.deblurred == expect, (blur, s)
        assert s.template_deblurred == bool(expect) and s.last_blur is not None and s.gate_seconds > 0
        assert (s.deblur_seconds > 0) == bool(expect)
        assert s.deblurred_share == expect / 4


def test_deblur_always_without_a_stage_and_bad_modes_are_typed_errors(bundles, tmp_path, monkeypatch):
    import edgetrack.tracker as tracker_module

    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(bundles["tracker"], models / "siamfc-tiny")
    shutil.copytree(bundles["identity"], models / "deblur-siamfc")
    monkeypatch.setattr(tracker_module, "_MODELS_DIR", models)
    with pytest.raises(InvalidArgumentError, match=r"(?s)'siamfc-tiny'.* has none.*deblur-siamfc"):
        Tracker(bundles["tracker"], deblur="always")
    with pytest.raises(InvalidArgumentError, match="siamfc-tiny"):
        Tracker("siamfc-tiny", deblur="always")
    for mode in ("auto", "never"):  # no stage: nothing to do
        t = Tracker(bundles["tracker"], deblur=mode)
        assert not t.has_deblur_stage
        frames, boxes = _frames(3, blur=15.0)
        _track(t, frames, boxes[0])
        assert (t.stats.frames, t.stats.deblurred) == (2, 0)
    assert Tracker("deblur-siamfc", deblur="always").has_deblur_stage
    for bad in ("sometimes", "ALWAYS", None, True):
        with pytest.raises(UnknownChoiceError, match="always, auto, never"):
            Tracker(bundles["trained"], deblur=bad)


def test_a_bundle_whose_deblur_section_is_broken_is_a_bundle_error(bundles, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(bundles["identity"], copy)
    path = copy / "manifest.json"
    data = json.loads(path.read_text())
    data["preprocessing"]["deblur"]["graphs"]["search"] = "nope"
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="nope"):
        Tracker(copy)
    data["preprocessing"]["deblur"]["graphs"]["search"] = "deblur_search"
    data["preprocessing"]["deblur"]["gate"]["threshold"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidArgumentError, match="threshold"):
        Tracker(copy)


def test_the_simulator_runs_the_composed_bundle_as_the_chip_would(bundles):
    pytest.importorskip("onnx")
    frames, boxes = _frames(3, blur=15.0)
    cpu = _track(Tracker(bundles["identity"], deblur="always"), frames, boxes[0])
    sim = Tracker(bundles["identity"], backend="simulator", device="ascend310", deblur="always")
    results = _track(sim, frames, boxes[0])
    assert sim.stats.deblurred == 2
    for a, b in zip(cpu, results):  # fp16 arithmetic on the chip: close, not equal
        np.testing.assert_allclose(a.box, b.box, atol=2.0)


# -- the gate --------------------------------------------------------------------------------------------------------
def test_the_measure_separates_motion_blur_and_ignores_contrast():
    sharp = _scene(seed=1)
    values = [blur_measure(_blurred(sharp, length, angle)) for length, angle in
              ((1, 0.0), (5, 0.0), (9, 0.0), (15, 0.0), (15, np.pi / 2), (15, np.pi / 4), (25, 1.0))]
    assert values[0] < 0.15 and values[3] > 0.5
    assert values[0] < values[1] < values[2] < values[3]  # more blur, higher measure
    assert min(values[3:]) > 0.35  # any direction (a diagonal streak shows on both axes, less on each)
    gate = BlurGate()
    assert not gate.opens(blur_measure(sharp)) and gate.opens(blur_measure(_blurred(sharp, 15)))
    # Contrast and brightness cancel out; layouts agree.
    low = (sharp.astype(np.float32) * 0.3 + 60).astype(np.float32)
    assert blur_measure(low) == pytest.approx(blur_measure(sharp.astype(np.float32) * 0.3), abs=1e-4)
    assert abs(blur_measure(low) - blur_measure(sharp)) < 0.02
    chw = np.ascontiguousarray(sharp.transpose(2, 0, 1)).astype(np.float32)
    assert blur_measure(chw, layout="CHW") == pytest.approx(blur_measure(sharp), abs=1e-5)
    grey = cv2.cvtColor(sharp, cv2.COLOR_BGR2GRAY)
    assert blur_measure(grey, layout="HW") == pytest.approx(blur_measure(sharp), abs=0.01)
    assert blur_measure(np.full((40, 40, 3), 90, np.uint8)) == 0.0  # flat: nothing to deblur
    # An upsampled crop is measured at the frame's resolution: upsampling alone does not look like motion blur.
    up = cv2.resize(sharp, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    assert blur_measure(up) > 0.25 and blur_measure(up, scale=1 / 3) < 0.2
    with pytest.raises(InvalidArgumentError, match="layout 'HWC'"):
        blur_measure(chw)
    with pytest.raises(InvalidArgumentError, match="scale"):
        blur_measure(sharp, 0)


def test_the_gate_on_the_synthetic_generators_sharp_and_blurred_frames(tmp_path):
    pytest.importorskip("skimage", reason="the generator uses the photos shipped in scikit-image ([eval] extra)")
    from edgetrack.data import open_dataset
    from edgetrack.data.synth import SynthConfig, generate
    from edgetrack.tracking.crop import box_center, context_size, crop_and_resize, mean_color

    generate(SynthConfig(sequences=1, frames=6, size=(240, 180), blur="strong", speed=3.0, seed=4, split="test",
                         occlusion=0.0, pairs=False), tmp_path / "s", progress=False)
    variants = {d.name.split("-")[-1]: d.sequences[0] for d in open_dataset(f"synthetic:{tmp_path / 's'}")}
    gate = BlurGate()
    sharp, blurred = [], []
    for i in range(1, 6):
        box = variants["sharp"].boxes[i - 1]
        side = context_size(box[2], box[3]) * 255 / 127
        for name, out in (("sharp", sharp), ("blurred", blurred)):
            frame = variants[name].frame(i)
            crop = crop_and_resize(frame, box_center(box), side, 255, mean_color(frame)).transpose(2, 0, 1)
            out.append(gate.value(crop, side / 255))
    assert max(sharp) < gate.threshold, sharp
    assert np.mean(blurred) > np.mean(sharp) + 0.1 and np.mean([gate.opens(v) for v in blurred]) >= 0.6, blurred


def test_gate_parameters_hysteresis_and_calibration_helpers():
    gate = BlurGate(threshold=0.5, hysteresis=0.1)
    assert not gate.opens(0.45) and gate.opens(0.5) and gate.opens(0.45, was_open=True)
    assert not gate.opens(0.39, was_open=True)
    assert BlurGate.from_dict(gate.to_dict()) == gate
    for bad in ({"threshold": -0.1}, {"threshold": 1.1}, {"hysteresis": float("nan")}, {"kernel": 1},
                {"threshold": True}):
        with pytest.raises(InvalidArgumentError):
            BlurGate(**bad)
    with pytest.raises(UnknownChoiceError, match="reblur-gradient-energy"):
        BlurGate(measure="laplacian")
    with pytest.raises(BundleError, match="fields"):
        BlurGate.from_dict({"threshold": 0.3, "colour": 1})
    # The stage with hysteresis (opens at 0.5, stays open down to 0.3) on crops measuring about 0.09, 0.37, 0.7.
    calls = []
    stage = DeblurStage("auto", BlurGate(threshold=0.5, hysteresis=0.2), run_template=lambda c: c,
                        run_search=lambda c: calls.append(1) or c + 1)
    scene = _scene(seed=1)
    crop = {name: np.ascontiguousarray(img.transpose(2, 0, 1))[None].astype(np.float32)
            for name, img in (("sharp", scene), ("mild", _blurred(scene, 5, 0.0)), ("strong", _blurred(scene, 15)))}
    assert stage.template(crop["sharp"], 1.0) is crop["sharp"]
    opened = []
    for name in ("mild", "strong", "mild", "sharp", "mild"):
        out = stage.search(crop[name], 1.0)
        opened.append(out is not crop[name])
    assert opened == [False, True, True, False, False] and len(calls) == 2
    s = stage.stats
    assert (s.frames, s.deblurred, s.template_deblurred) == (5, 2, False) and 0.3 < s.last_blur < 0.5
    with pytest.raises(UnknownChoiceError):
        DeblurStage("sometimes")
    assert DEBLUR_MODES == ("auto", "always", "never")
    # roc_auc is the Mann-Whitney statistic (ties count half).
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 50).round(1), rng.normal(0, 1, 40).round(1)
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(pos, neg) == pytest.approx(brute)
    assert roc_auc([1, 2], [0]) == 1.0 and roc_auc([0], [1, 2]) == 0.0
    assert gate_rates([0.1, 0.2, 0.6], [0.5, 0.7], 0.5) == {
        "threshold": 0.5, "sharp_deblurred": pytest.approx(1 / 3), "blurred_deblurred": 1.0}


def test_deblur_siamrpn_one_search_crop_and_an_identity_deblurrer(bundles, tmp_path):
    try:
        from edgetrack.converters.torch2onnx import siamrpn_bundle
    except ImportError:
        pytest.skip("this edgetrack converts no SiamRPN bundles yet")
    from edgetrack.converters.deblur2onnx import add_deblur
    from edgetrack.models.torch.siamrpn import build_siamrpn, save_siamrpn

    torch.manual_seed(0)
    ckpt = save_siamrpn(build_siamrpn("siamrpn-tiny").eval(), tmp_path / "rpn.safetensors")
    tracker = siamrpn_bundle(ckpt, tmp_path / "rpn")
    composed = add_deblur(tracker, bundles["identity_ckpt"], tmp_path / "deblur-rpn")
    m = load_bundle(composed).manifest
    assert m.model == "deblur-siamrpn" and m.family == "siamrpn"
    assert m.graphs["deblur_search"].inputs[0].shape == (1, 3, 255, 255)
    frames, boxes = _frames(4, blur=15.0)
    plain = _track(Tracker(tracker), frames, boxes[0])
    deblurred = Tracker(composed)
    results = _track(deblurred, frames, boxes[0])
    assert deblurred.stats.deblurred == 3 and deblurred.stats.template_deblurred
    for a, b in zip(plain, results):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_the_ascend_converter_takes_a_trained_deblur_stage(bundles, tmp_path):
    """The nearest-Resize rewrite for ATC computes the same function, but ONNX Runtime orders a trained
    generator's rewritten arithmetic differently (5e-4 on 0..255, 2e-6 of the scale): the bound is the fp32
    tolerance, not 0."""
    pytest.importorskip("onnx")
    from edgetrack.converters.onnx2om import ascend_bundle

    out = ascend_bundle(bundles["trained"], tmp_path / "ascend", "ascend310", run_tools=False)
    record = load_bundle(out).manifest.parity["onnx->ascend-onnx"]
    for name in ("deblur_template", "deblur_search"):
        assert record[name]["passed"] and record[name]["max_rel"] <= record[name]["tolerance"] == 1e-4
        assert record[name]["changes"]  # the rewrite happened
