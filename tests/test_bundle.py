"""The bundle format: round trip, integrity checks, version gate, atomic writes."""
import json

import pytest

from edgetrack import bundle as bundle_mod
from edgetrack.bundle import FORMAT_VERSION, MANIFEST_NAME, GraphSpec, Manifest, TensorSpec, load_bundle, write_bundle
from edgetrack.errors import BundleError


def _manifest() -> Manifest:
    t = TensorSpec("z", (1, 3, 127, 127))
    k = TensorSpec("kernel", (1, 16, 5, 5))
    return Manifest(
        family="siamfc",
        model="siamfc-tiny",
        target="cpu",
        precision="fp32",
        graphs={
            "template": GraphSpec("template", "template.onnx", "", (t,), (k,)),
            "head": GraphSpec("head", "graphs/head.onnx", "", (k,), ({"name": "response", "shape": [3, 1, 17, 17]},)),
        },
        preprocessing={"channel_order": "BGR", "value_range": (0.0, 255.0), "layout": "NCHW"},
        tracking={"scale_num": 3, "scale_step": 1.0375},
        source={"checkpoint_sha256": "ab" * 32},
        tools={"onnx": "1.18.0"},
        parity={"torch->onnx": {"template": {"max_rel": 1e-7}}},
        notes="test",
    )


@pytest.fixture
def sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"template graph bytes")
    (src / "b.bin").write_bytes(b"head graph bytes" * 100)
    return {"template": src / "a.bin", "head": src / "b.bin"}


def test_round_trip(tmp_path, sources):
    m = _manifest()
    out = write_bundle(tmp_path / "bundle", m, sources)
    b = load_bundle(out)
    # No device section or further files: written at format 1, readable by edgetrack releases that read only 1.
    assert b.manifest.format_version == 1 and FORMAT_VERSION == 2
    assert "device" not in json.loads((out / MANIFEST_NAME).read_text())
    assert b.manifest.graphs["template"].sha256 == bundle_mod.sha256_file(sources["template"])
    assert b.graph_path("head").read_bytes() == sources["head"].read_bytes()
    # Exact JSON round trip: loading and re-serialising gives the same text, and the manifest equals the input's.
    text = (out / MANIFEST_NAME).read_text()
    assert b.manifest.to_json() == text
    assert Manifest.from_json(text) == b.manifest
    expected = {**m.to_dict(), "graphs": b.manifest.to_dict()["graphs"]}
    assert json.loads(text) == expected
    with pytest.raises(BundleError, match="no graph 'search'"):
        b.graph_path("search")


def test_altered_file_names_file_and_both_hashes(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    good = bundle_mod.sha256_file(out / "graphs/head.onnx")
    (out / "graphs/head.onnx").write_bytes(b"tampered")
    bad = bundle_mod.sha256_file(out / "graphs/head.onnx")
    with pytest.raises(BundleError, match="head.onnx") as err:
        load_bundle(out)
    assert good in str(err.value) and bad in str(err.value)


def test_missing_file(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    (out / "template.onnx").unlink()
    with pytest.raises(BundleError, match="template.onnx.*missing"):
        load_bundle(out)


def _edit_manifest(out, fn):
    data = json.loads((out / MANIFEST_NAME).read_text())
    fn(data)
    (out / MANIFEST_NAME).write_text(json.dumps(data))


def test_newer_format_version_asks_to_upgrade(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    _edit_manifest(out, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(BundleError, match="upgrade edgetrack"):
        load_bundle(out)


def test_unknown_and_missing_fields_are_named(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    _edit_manifest(out, lambda d: (d.update(colour="blue"), d.pop("tracking")))
    with pytest.raises(BundleError, match=r"missing field\(s\) \['tracking'\].*unknown field\(s\) \['colour'\]"):
        load_bundle(out)
    _edit_manifest(out, lambda d: d.pop("format_version"))
    with pytest.raises(BundleError, match="no format_version"):
        load_bundle(out)


def test_manifest_file_names_cannot_escape_the_folder(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    _edit_manifest(out, lambda d: d["graphs"]["head"].update(file="../src/b.bin"))
    with pytest.raises(BundleError, match="plain relative path"):
        load_bundle(out)


def test_existing_folder_refused_without_force(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(out, _manifest(), sources)
    sources["head"].write_bytes(b"new head")
    write_bundle(out, _manifest(), sources, force=True)
    assert load_bundle(out).graph_path("head").read_bytes() == b"new head"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "src"]


def test_failed_write_leaves_nothing(tmp_path, sources, monkeypatch):
    real = bundle_mod._copy_and_hash
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real(src, dst)

    monkeypatch.setattr(bundle_mod, "_copy_and_hash", flaky)
    with pytest.raises(OSError, match="simulated"):
        write_bundle(tmp_path / "bundle", _manifest(), sources)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]

    # With force over an existing bundle, a failure keeps the old bundle intact.
    monkeypatch.setattr(bundle_mod, "_copy_and_hash", real)
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    calls.clear()
    monkeypatch.setattr(bundle_mod, "_copy_and_hash", flaky)
    with pytest.raises(OSError, match="simulated"):
        write_bundle(out, _manifest(), sources, force=True)
    load_bundle(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "src"]


def test_files_must_match_manifest_graphs(tmp_path, sources):
    with pytest.raises(BundleError, match="one source file per manifest graph"):
        write_bundle(tmp_path / "bundle", _manifest(), {"template": sources["template"]})
    assert not (tmp_path / "bundle").exists()


def test_bundle_module_needs_no_training_libraries():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class B:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'onnx', 'onnxruntime', 'mindspore'}: raise ImportError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "import edgetrack.bundle\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _device_manifest() -> Manifest:
    import dataclasses

    return dataclasses.replace(
        _manifest(),
        target="ascend310",
        precision="fp16",
        device={"kind": "ascend", "chip": "ascend310", "graphs": {"head": {"status": "built", "file": "device/head.om"}}},
        format_version=None,
    )


@pytest.fixture
def extra(tmp_path):
    src = tmp_path / "extra"
    src.mkdir()
    (src / "head.om").write_bytes(b"fake om")
    (src / "aipp.cfg").write_text("aipp_op {\n}\n")
    return {"device/head.om": src / "head.om", "device/template_aipp.cfg": src / "aipp.cfg"}


def test_device_bundle_is_format_2_with_verified_files(tmp_path, sources, extra):
    m = _device_manifest()
    assert m.format_version == 2
    out = write_bundle(tmp_path / "bundle", m, sources, extra_files=extra)
    b = load_bundle(out)
    assert b.manifest.format_version == 2
    assert b.manifest.device["chip"] == "ascend310"
    assert set(b.manifest.files) == set(extra)
    assert b.manifest.files["device/head.om"] == bundle_mod.sha256_file(extra["device/head.om"])
    assert b.file_path("device/head.om").read_bytes() == b"fake om"
    assert Manifest.from_json((out / MANIFEST_NAME).read_text()) == b.manifest
    with pytest.raises(BundleError, match="no file 'nope'"):
        b.file_path("nope")

    (out / "device/head.om").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="device/head.om.*altered"):
        load_bundle(out)
    (out / "device/head.om").unlink()
    with pytest.raises(BundleError, match="device/head.om.*missing"):
        load_bundle(out)


def test_extra_files_alone_need_format_2(tmp_path, sources, extra):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources, extra_files=extra)
    assert load_bundle(out).manifest.format_version == 2


def test_format_1_cannot_hold_a_device_section():
    import dataclasses

    with pytest.raises(BundleError, match="format 1 cannot hold.*device"):
        dataclasses.replace(_device_manifest(), format_version=1)


def test_version_1_manifest_with_version_2_fields_is_refused(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    _edit_manifest(out, lambda d: d.update(device={"kind": "ascend"}))
    with pytest.raises(BundleError, match=r"unknown field\(s\) \['device'\]"):
        load_bundle(out)


def test_version_1_bundle_written_before_format_2_still_loads(tmp_path, sources):
    out = write_bundle(tmp_path / "bundle", _manifest(), sources)
    data = json.loads((out / MANIFEST_NAME).read_text())
    assert data["format_version"] == 1 and "files" not in data
    m = load_bundle(out).manifest
    assert m.device == {} and m.files == {}


def test_extra_files_must_match_manifest_files_and_stay_inside(tmp_path, sources, extra):
    import dataclasses

    m = dataclasses.replace(_device_manifest(), files={"device/other.om": "ab"})
    with pytest.raises(BundleError, match="manifest.files lists"):
        write_bundle(tmp_path / "bundle", m, sources, extra_files=extra)
    with pytest.raises(BundleError, match="plain relative path"):
        write_bundle(tmp_path / "bundle", _device_manifest(), sources, extra_files={"../x.om": extra["device/head.om"]})
    with pytest.raises(BundleError, match="share one file name"):
        write_bundle(tmp_path / "bundle", _device_manifest(), sources,
                     extra_files={"template.onnx": extra["device/head.om"]})
    assert not (tmp_path / "bundle").exists()


def test_manifest_files_cannot_escape_the_folder(tmp_path, sources, extra):
    out = write_bundle(tmp_path / "bundle", _device_manifest(), sources, extra_files=extra)
    _edit_manifest(out, lambda d: d["files"].update({"../src/a.bin": "00"}))
    with pytest.raises(BundleError, match="plain relative path"):
        load_bundle(out)
