"""The pyACL backend's own code, run against a fake ``acl`` built on the NPU simulator: same boxes as the simulator,
every device resource released after normal use, a failing execute and a failing load; pyACL missing says CANN."""
import gc
import os
import stat
import sys
import threading
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from edgetrack import Tracker  # noqa: E402
from edgetrack.backends import get_backend  # noqa: E402
from edgetrack.backends._acl_sim import ACL_DEVICE, make_fake_acl, read_fake_om  # noqa: E402
from edgetrack.backends.acl import AclBackend, finalize  # noqa: E402
from edgetrack.backends.simulator import DeviceOverflowWarning  # noqa: E402
from edgetrack.bundle import load_bundle  # noqa: E402
from edgetrack.errors import BackendError, BundleError, InvalidArgumentError, MissingDependencyError  # noqa: E402

GRAPHS = ("template", "search", "head")
pytestmark = pytest.mark.filterwarnings("ignore::edgetrack.backends.simulator.DeviceOverflowWarning")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny SiamFC Ascend 310 bundle whose .om files a fake ATC built (the fake acl runs them)."""
    torch = pytest.importorskip("torch")
    from edgetrack.converters.onnx2om import ascend_bundle
    from edgetrack.converters.torch2onnx import siamfc_bundle
    from edgetrack.models.torch.siamfc import build_siamfc, save_siamfc

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("acl")
    ckpt = save_siamfc(build_siamfc("siamfc-tiny").eval(), root / "tiny.safetensors")
    cpu = siamfc_bundle(ckpt, root / "cpu", scales=1)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    atc = bin_dir / "atc"
    atc.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m edgetrack.backends._acl_sim atc "$@"\n')
    atc.chmod(atc.stat().st_mode | stat.S_IXUSR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        out = ascend_bundle(cpu, root / "a310", "ascend310")
    b = load_bundle(out)
    assert b.manifest.device_files_built
    return b


@pytest.fixture
def acl(monkeypatch):
    """A fresh fake pyACL (one NPU, Ascend 310), importable as ``acl``."""
    fake = make_fake_acl("ascend310")
    monkeypatch.setitem(sys.modules, "acl", fake)
    yield fake
    finalize(fake)


def _frames(n=5):
    frames = []
    for i in range(n):
        img = np.full((72, 96, 3), 110, np.uint8)
        x, y = 10 + 4 * i, 12 + 2 * i
        cv2.rectangle(img, (x, y), (x + 19, y + 15), (30, 40, 220), -1)
        cv2.circle(img, (x + 6, y + 5), 3, (240, 240, 40), -1)
        frames.append(img)
    return frames, (10, 12, 20, 16)


def _track(tracker):
    frames, box = _frames()
    tracker.init(frames[0], box)
    return np.array([tracker.update(f).box for f in frames[1:]])


def _om(bundle, name):
    return bundle.file_path(bundle.manifest.device["graphs"][name]["file"])


def test_the_fake_om_embeds_what_the_device_runs(bundle):
    om = read_fake_om(_om(bundle, "search"))
    assert om["soc_version"] == "Ascend310" and om["input_shape"] == "x:1,3,255,255"
    assert [c.src_image_size_w for c in om["aipp"]] == [255]
    assert om["onnx"] == bundle.graph_path("search").read_bytes()


def test_tracking_through_acl_gives_the_simulators_boxes_and_releases_everything(bundle, acl):
    tracker = Tracker(bundle)  # auto: an ATC bundle runs on pyACL, the bundle's chip
    assert (tracker.backend, tracker.device) == ("acl", "npu")
    boxes = _track(tracker)
    assert acl.device.leaks()["models"] and acl.device.initialized
    tracker.close()
    assert acl.device.leaks() == {}
    assert acl.device.initialized  # pyACL allows one acl.init per process: finalized at exit or on request
    np.testing.assert_array_equal(boxes, _track(Tracker(bundle, backend="simulator")))
    finalize(acl)
    assert not acl.device.initialized
    calls = acl.device.calls
    assert calls[:3] == ["init", "rt.set_device", "rt.create_context"]
    assert calls[-3:] == ["rt.destroy_context", "rt.reset_device", "finalize"]


def test_a_garbage_collected_session_releases_its_resources(bundle, acl):
    s = AclBackend().load(bundle.graph_path("template"), "ascend310:0")
    z = np.zeros((1, 127, 127, 3), np.uint8)
    assert s.run({"z": z})["kernel"].shape == (1, 16, 5, 5)
    assert acl.device.leaks()
    del s
    gc.collect()
    assert acl.device.leaks() == {}


def test_an_exception_mid_execute_is_a_backend_error_and_leaks_nothing(bundle, acl):
    backend = AclBackend(acl=acl)
    with backend.load(bundle.graph_path("template"), "npu") as s:
        z = np.zeros((1, 127, 127, 3), np.uint8)
        acl.device.fail("mdl.execute", 507011)
        with pytest.raises(BackendError, match=r"acl.mdl.execute failed with error code 507011: injected"):
            s.run({"z": z})
        acl.device.fail("rt.memcpy", 100000, after=1)  # the output copy back
        with pytest.raises(BackendError, match="memcpy"):
            s.run({"z": z})
        assert s.run({"z": z})["kernel"].shape == (1, 16, 5, 5)  # the session survives a failed run
        with pytest.raises(InvalidArgumentError, match=r"static input shapes \[z \(1, 127, 127, 3\) uint8 NHWC\]"):
            s.run({"z": z[..., 0]})
    assert s.closed and acl.device.leaks() == {}
    with pytest.raises(BackendError, match="closed"):
        s.run({"z": z})


@pytest.mark.parametrize("api, after", [
    ("rt.set_device", 0),
    ("rt.create_context", 0),
    ("mdl.load_from_file", 0),
    ("mdl.get_desc", 0),
    ("rt.malloc", 1),               # the output buffer, after the input one
    ("create_data_buffer", 1),
    ("mdl.add_dataset_buffer", 1),
    ("rt.malloc_host", 0),
])
def test_a_failing_load_releases_what_it_had_acquired(bundle, acl, api, after):
    backend = AclBackend(acl=acl)
    if api not in ("rt.set_device", "rt.create_context"):  # those run once per device, not per session
        keep = backend.load(bundle.graph_path("head"), "npu")  # another session keeps the device open
        acl.device.fail(api, after=after)
        with pytest.raises(BackendError, match=api.split(".")[-1]):
            backend.load(bundle.graph_path("search"), "npu")
        held = acl.device.leaks()
        assert len(held["models"]) == 1 and held["devices"] == {0: 1} and len(held["contexts"]) == 1
        keep.close()
        assert acl.device.leaks() == {}
    acl.device.fail(api, after=after)  # alone: the device is reset again
    with pytest.raises(BackendError, match=api.split(".")[-1]):
        backend.load(bundle.graph_path("search"), "npu")
    assert acl.device.leaks() == {}


def test_an_om_for_another_chip_or_an_unknown_file_is_refused(bundle, tmp_path):
    acl310p = make_fake_acl("ascend310p")
    with pytest.raises(BundleError, match=r"(?s)built for ascend310.*is Ascend310P3.*--target ascend310p"):
        AclBackend(acl=acl310p).load(bundle.graph_path("head"), "npu")
    assert acl310p.device.leaks() == {}
    with pytest.raises(BundleError, match="--target ascend910"):
        AclBackend(acl=acl310p).load(bundle.graph_path("head"), "ascend910")
    bad = tmp_path / "broken.om"
    bad.write_text("not an om")
    fake = make_fake_acl()
    with pytest.raises(BackendError, match=r"load_from_file.*error code 100003: cannot read OM"):
        AclBackend(acl=fake).load(bad, "npu")
    assert fake.device.leaks() == {}


def test_bundles_without_om_files_are_typed_errors(bundle, acl, tmp_path):
    cpu = bundle.path.parent / "cpu"
    with pytest.raises(BundleError, match=r"(?s)targets 'cpu'.*no \.om files.*backend='simulator'"):
        Tracker(cpu, backend="acl")
    with pytest.raises(BundleError, match="no .om files"):
        AclBackend(acl=acl).load(load_bundle(cpu).graph_path("search"), "npu")
    with pytest.raises(BundleError, match="cuda"):
        Tracker(bundle, backend="onnxruntime", device="cuda")


def test_missing_pyacl_says_that_cann_provides_it(bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "acl", None)  # `import acl` raises ImportError
    for call in (lambda: get_backend("acl"), lambda: AclBackend().load(bundle.graph_path("head"), "npu")):
        with pytest.raises(MissingDependencyError, match=r"(?s)pyACL.*CANN toolkit.*set_env\.sh") as err:
            call()
        assert "pip install" not in str(err.value)
    with pytest.raises(MissingDependencyError, match="CANN"):
        Tracker(bundle)  # auto on an Ascend bundle: pyACL, never a silent run on the CPU


def test_someone_elses_acl_init_is_not_finalized_and_device_run_mode_copies_on_device(bundle):
    fake = make_fake_acl(run_mode=ACL_DEVICE)
    assert fake.init() == 0  # e.g. MindSpore initialised pyACL in this process
    with AclBackend(acl=fake).load(bundle.graph_path("template"), "npu") as s:
        s.run({"z": np.zeros((1, 127, 127, 3), np.uint8)})
    finalize(fake)
    assert fake.device.initialized and fake.device.leaks() == {}


def test_sessions_share_the_device_across_threads(bundle, acl):
    trackers = [Tracker(bundle, backend="acl") for _ in range(2)]
    expected = _track(Tracker(bundle, backend="simulator"))
    results = [None, None]

    def work(i):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeviceOverflowWarning)
            results[i] = _track(trackers[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)
    assert len(acl.device.leaks()["contexts"]) == 1  # one context per device, shared
    for t in trackers:
        t.close()
    assert acl.device.leaks() == {}
