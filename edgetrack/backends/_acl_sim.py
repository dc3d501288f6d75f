"""A fake pyACL (``acl`` module) on top of the NPU simulator, so CI runs the acl backend's own code.

:func:`make_fake_acl` returns a module with the pyACL functions the backend calls (same names, arguments and
``(value, ret)`` returns as the pyACL reference; see :mod:`edgetrack.backends.acl`), backed by a
:class:`FakeDevice` that keeps a table of everything allocated (device and host memory, models, descriptions,
datasets, data buffers, contexts, devices) so tests can assert that all of it was released
(:meth:`FakeDevice.leaks`), and that can be told to fail any call (:meth:`FakeDevice.fail`).

"Models" are fake OM files written by a fake ATC (:func:`fake_atc_main`, also ``python -m
edgetrack.backends._acl_sim atc ARGS``, which takes ATC's own arguments): like a real OM they embed what the
device runs -- the ONNX graph, the ``--soc_version`` and the static AIPP of ``--insert_op_conf`` -- so a bundle
built with the fake ATC is self-contained. ``acl.mdl.execute`` runs the embedded graph on the simulator
(:func:`edgetrack.backends.simulator.session_for_model`): fp16 arithmetic, AIPP, static shapes, as the chip would.

Test-only: nothing in edgetrack imports this module at run time.
"""
from __future__ import annotations

import base64
import functools
import itertools
import json
import sys
import threading
import types
from collections import OrderedDict
from importlib.machinery import ModuleSpec
from pathlib import Path

import numpy as np

from edgetrack.ascend.aipp import AippConfig
from edgetrack.ascend.socs import get_soc, soc_for_version

__all__ = ["make_fake_acl", "FakeDevice", "write_fake_om", "read_fake_om", "parse_aipp_config", "fake_atc_main",
           "OM_FORMAT", "ACL_HOST", "ACL_DEVICE"]

OM_FORMAT = "edgetrack-fake-om/1"
ACL_DEVICE, ACL_HOST = 0, 1
# Error codes (aclError table of the pyACL reference).
ACL_ERROR_INVALID_PARAM = 100000
ACL_ERROR_UNINITIALIZE = 100001
ACL_ERROR_REPEAT_INITIALIZE = 100002
ACL_ERROR_INVALID_FILE = 100003
ACL_ERROR_RT_MEMORY_ALLOCATION = 207001
ACL_ERROR_INTERNAL = 500000
_FLOAT, _UINT8 = 0, 4
_HOST_REFS_KEPT = 256


# -- fake OM files ----------------------------------------------------------------------------------------------
def parse_aipp_config(text: str) -> list[AippConfig]:
    """The ``aipp_op`` blocks of an ATC ``--insert_op_conf`` file (the static subset edgetrack writes)."""
    configs, block = [], None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("aipp_op"):
            block = {}
            continue
        if line == "}":
            if block is not None:
                configs.append(_aipp_from_block(block))
            block = None
            continue
        if block is not None and ":" in line:
            key, value = (s.strip() for s in line.split(":", 1))
            block[key] = value
    return configs


def _aipp_from_block(b: dict) -> AippConfig:
    if b.get("aipp_mode", "static") != "static" or b.get("csc_switch", "false") != "false" or \
            b.get("crop", "false") != "false":
        raise ValueError(f"fake ATC handles static AIPP without crop/csc only, got {b}")
    return AippConfig(
        src_image_size_w=int(b["src_image_size_w"]),
        src_image_size_h=int(b["src_image_size_h"]),
        input_format=b.get("input_format", "RGB888_U8"),
        rbuv_swap_switch=b.get("rbuv_swap_switch", "false") == "true",
        mean_chn=tuple(int(b.get(f"mean_chn_{i}", 0)) for i in range(3)),
        min_chn=tuple(float(b.get(f"min_chn_{i}", 0.0)) for i in range(3)),
        var_reci_chn=tuple(float(b.get(f"var_reci_chn_{i}", 1.0)) for i in range(3)),
        related_input_rank=int(b.get("related_input_rank", 0)),
    )


def write_fake_om(path, onnx_bytes: bytes, soc_version: str, aipp: list[AippConfig] = (),
                  input_shape: str = "") -> Path:
    path = Path(path)
    path.write_text(json.dumps({
        "format": OM_FORMAT,
        "soc_version": soc_version,
        "input_shape": input_shape,
        "aipp": [c.to_dict() for c in aipp],
        "onnx": base64.b64encode(onnx_bytes).decode("ascii"),
    }), encoding="utf-8")
    return path


def read_fake_om(path) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != OM_FORMAT:
        raise ValueError(f"{path} is not a fake OM ({OM_FORMAT})")
    data["aipp"] = [AippConfig.from_dict(c) for c in data["aipp"]]
    data["onnx"] = base64.b64decode(data["onnx"])
    return data


def fake_atc_main(argv: list[str]) -> int:
    """ATC's command line (the options edgetrack's commands use) -> ``<--output>.om`` as a fake OM."""
    opts = {}
    for a in argv:
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            opts[k] = v
    for key in ("framework", "model", "output", "soc_version", "input_shape"):
        if key not in opts:
            print(f"E10001: fake ATC: --{key} is required", file=sys.stderr)
            return 1
    if opts["framework"] != "5":
        print(f"E10001: fake ATC reads ONNX only (--framework=5), got {opts['framework']}", file=sys.stderr)
        return 1
    try:
        soc_for_version(opts["soc_version"])
    except Exception as exc:  # noqa: BLE001 - reported as ATC would
        print(f"E10001: fake ATC: bad --soc_version: {exc}", file=sys.stderr)
        return 1
    aipp = parse_aipp_config(Path(opts["insert_op_conf"]).read_text()) if opts.get("insert_op_conf") else []
    out = Path(opts["output"] + ".om")
    write_fake_om(out, Path(opts["model"]).read_bytes(), opts["soc_version"], aipp, opts["input_shape"])
    print(f"ATC run success, welcome to the next use. (fake ATC wrote {out})")
    return 0


# -- the fake device --------------------------------------------------------------------------------------------
class FakeDevice:
    """What the fake pyACL holds. ``calls``: every API call by name, in order."""

    def __init__(self, chip: str, run_mode: int, memory_bytes: int | None, simulator_options: dict):
        self.soc = get_soc(chip)
        self.run_mode = run_mode
        self.memory_bytes = memory_bytes if memory_bytes is not None else self.soc.device_memory_bytes
        self.simulator_options = dict(simulator_options)
        self.lock = threading.RLock()
        self.calls: list[str] = []
        self.initialized = False
        self.devices: dict[int, int] = {}
        self.contexts: dict[int, int] = {}
        self.current_context = threading.local()
        self.device_mem: dict[int, bytearray] = {}
        self.host_mem: dict[int, bytearray] = {}
        self.host_refs: OrderedDict[int, bytes] = OrderedDict()
        self.models: dict[int, dict] = {}
        self.descs: dict[int, int | None] = {}
        self.datasets: dict[int, list[int]] = {}
        self.buffers: dict[int, tuple[int, int]] = {}
        self.last_error = ""
        self._ids = itertools.count(1)
        self._addresses = itertools.count(0x1000)
        self._failures: dict[str, list] = {}

    # -- test hooks ---------------------------------------------------------------------------------------------
    def fail(self, name: str, code: int = ACL_ERROR_INTERNAL, *, after: int = 0, times: int = 1) -> None:
        """Make API ``name`` (e.g. ``"mdl.execute"``, ``"rt.malloc"``) return ``code`` after ``after`` more
        successful calls, ``times`` times."""
        self._failures[name] = [after, times, code]

    def leaks(self) -> dict:
        """Everything still held on the fake device (empty when all was released)."""
        held = {
            "device_memory": sorted(self.device_mem),
            "host_memory": sorted(self.host_mem),
            "models": sorted(self.models),
            "descs": sorted(self.descs),
            "datasets": sorted(self.datasets),
            "data_buffers": sorted(self.buffers),
            "contexts": sorted(self.contexts),
            "devices": {k: v for k, v in self.devices.items() if v},
        }
        return {k: v for k, v in held.items() if v}

    def device_bytes(self) -> int:
        return sum(len(b) for b in self.device_mem.values()) + sum(m["bytes"] for m in self.models.values())

    # -- helpers ------------------------------------------------------------------------------------------------
    def injected(self, name: str):
        f = self._failures.get(name)
        if f is None:
            return None
        if f[0] > 0:
            f[0] -= 1
            return None
        f[1] -= 1
        if f[1] <= 0:
            del self._failures[name]
        self.last_error = f"injected failure of {name}"
        return f[2]

    def new_id(self) -> int:
        return next(self._ids)

    def new_address(self, size: int) -> int:
        return next(self._addresses) << 20  # far apart, 1 MiB aligned: no two regions overlap in the fake

    def error(self, code: int, message: str) -> int:
        self.last_error = message
        return code


def _api(device: FakeDevice, name: str, returns: str):
    """Wrap a fake API: record the call, apply injected failures with pyACL's return shapes (``returns``:
    "code" -> ret, "pair" -> (value, ret), "handle" -> a handle or None/0 on failure)."""

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args):
            with device.lock:
                device.calls.append(name)
                code = device.injected(name)
                if code is not None:
                    return {"code": code, "pair": (None, code), "handle": None}[returns]
                return fn(*args)

        return call

    return wrap


def make_fake_acl(chip: str = "ascend310", *, run_mode: int = ACL_HOST, memory_bytes: int | None = None,
                  **simulator_options) -> types.ModuleType:
    """A fresh fake ``acl`` module for ``chip``; its :class:`FakeDevice` is ``module.device``."""
    from edgetrack.backends.simulator import session_for_model

    dev = FakeDevice(chip, run_mode, memory_bytes, simulator_options)
    acl = types.ModuleType("acl")
    acl.__spec__ = ModuleSpec("acl", None)  # so importlib.util.find_spec("acl") finds it in sys.modules
    acl.device = dev
    rt, mdl, util = (types.SimpleNamespace() for _ in range(3))
    acl.rt, acl.mdl, acl.util = rt, mdl, util

    def api(name, returns="code"):
        return _api(dev, name, returns)

    # -- init, device, context ----------------------------------------------------------------------------------
    @api("init")
    def init(config_path=None):
        if dev.initialized:
            return dev.error(ACL_ERROR_REPEAT_INITIALIZE, "acl.init called twice")
        dev.initialized = True
        return 0

    @api("finalize")
    def finalize():
        if not dev.initialized:
            return dev.error(ACL_ERROR_UNINITIALIZE, "acl.finalize without acl.init")
        dev.initialized = False
        return 0

    @api("get_soc_name")
    def get_soc_name():
        return dev.soc.default_soc_version

    @api("get_recent_err_msg")
    def get_recent_err_msg():
        return dev.last_error

    def need_init():
        return None if dev.initialized else dev.error(ACL_ERROR_UNINITIALIZE, "acl.init was not called")

    @api("rt.set_device")
    def set_device(device_id):
        if (e := need_init()) is not None:
            return e
        if device_id != 0:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"no NPU {device_id} (the fake has one)")
        dev.devices[device_id] = dev.devices.get(device_id, 0) + 1
        return 0

    @api("rt.reset_device")
    def reset_device(device_id):
        if not dev.devices.get(device_id):
            return dev.error(ACL_ERROR_INVALID_PARAM, f"NPU {device_id} was not set")
        dev.devices[device_id] -= 1
        return 0

    @api("rt.create_context", returns="pair")
    def create_context(device_id):
        if not dev.devices.get(device_id):
            return None, dev.error(ACL_ERROR_INVALID_PARAM, f"NPU {device_id} was not set")
        ctx = dev.new_id()
        dev.contexts[ctx] = device_id
        dev.current_context.value = ctx
        return ctx, 0

    @api("rt.destroy_context")
    def destroy_context(ctx):
        if dev.contexts.pop(ctx, None) is None:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"no context {ctx}")
        return 0

    @api("rt.set_context")
    def set_context(ctx):
        if ctx not in dev.contexts:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"no context {ctx}")
        dev.current_context.value = ctx
        return 0

    @api("rt.get_run_mode", returns="pair")
    def get_run_mode():
        return dev.run_mode, 0

    # -- memory -------------------------------------------------------------------------------------------------
    @api("rt.malloc", returns="pair")
    def malloc(size, policy):
        if (e := need_init()) is not None:
            return None, e
        if not size or size < 0 or policy not in range(6):
            return None, dev.error(ACL_ERROR_INVALID_PARAM, f"malloc({size}, {policy})")
        if dev.device_bytes() + size > dev.memory_bytes:
            return None, dev.error(ACL_ERROR_RT_MEMORY_ALLOCATION, f"out of device memory ({size} bytes asked)")
        ptr = dev.new_address(size)
        dev.device_mem[ptr] = bytearray(size)
        return ptr, 0

    @api("rt.free")
    def free(ptr):
        if dev.device_mem.pop(ptr, None) is None:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"free of unknown device pointer {ptr:#x}")
        return 0

    @api("rt.malloc_host", returns="pair")
    def malloc_host(size):
        if (e := need_init()) is not None:
            return None, e
        ptr = dev.new_address(size)
        dev.host_mem[ptr] = bytearray(size)
        return ptr, 0

    @api("rt.free_host")
    def free_host(ptr):
        if dev.host_mem.pop(ptr, None) is None:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"free_host of unknown host pointer {ptr:#x}")
        return 0

    def region(ptr):
        for kind, table in (("device", dev.device_mem), ("host", dev.host_mem), ("hostref", dev.host_refs)):
            if ptr in table:
                return kind, table[ptr]
        return None, None

    @api("rt.memcpy")
    def memcpy(dst, dest_max, src, count, kind):
        dkind, dbuf = region(dst)
        skind, sbuf = region(src)
        if dbuf is None or sbuf is None or dkind == "hostref":
            return dev.error(ACL_ERROR_INVALID_PARAM, f"memcpy between unknown regions {dst!r} <- {src!r}")
        if count > dest_max or count > len(dbuf) or count > len(sbuf):
            return dev.error(ACL_ERROR_INVALID_PARAM, f"memcpy of {count} bytes into {dest_max}/{len(dbuf)}")
        if dev.run_mode == ACL_HOST:
            wanted = {(True, False): 1, (False, True): 2, (False, False): 3, (True, True): 0}[
                (skind != "device", dkind != "device")]
            if kind != wanted:
                return dev.error(ACL_ERROR_INVALID_PARAM, f"memcpy kind {kind} for a {skind}->{dkind} copy "
                                                          f"(expected {wanted})")
        dbuf[:count] = bytes(sbuf[:count])
        return 0

    @api("util.bytes_to_ptr")
    def bytes_to_ptr(data):
        ptr = dev.new_address(len(data))
        dev.host_refs[ptr] = data
        while len(dev.host_refs) > _HOST_REFS_KEPT:  # the real pointer dies with its bytes object
            dev.host_refs.popitem(last=False)
        return ptr

    @api("util.ptr_to_bytes")
    def ptr_to_bytes(ptr, size):
        _, buf = region(ptr)
        if buf is None:
            raise ValueError(f"ptr_to_bytes of unknown pointer {ptr:#x}")
        return bytes(buf[:size])

    # -- models ---------------------------------------------------------------------------------------------------
    @api("mdl.load_from_file", returns="pair")
    def load_from_file(model_path):
        if (e := need_init()) is not None:
            return None, e
        if not dev.devices.get(0):
            return None, dev.error(ACL_ERROR_INVALID_PARAM, "no device set")
        try:
            om = read_fake_om(model_path)
        except (OSError, ValueError) as exc:
            return None, dev.error(ACL_ERROR_INVALID_FILE, f"cannot read OM {model_path}: {exc}")
        built = soc_for_version(om["soc_version"])
        if built.name != dev.soc.name:
            return None, dev.error(ACL_ERROR_INVALID_FILE, f"OM built for {om['soc_version']}, device is "
                                                           f"{dev.soc.default_soc_version}")
        import onnx

        model = onnx.load_from_string(om["onnx"])
        session = session_for_model(model, dev.soc, name=Path(model_path).stem,
                                    aipp_by_rank={c.related_input_rank: c for c in om["aipp"]},
                                    **dev.simulator_options)
        weights = session.memory()["weight_bytes"] + session.memory()["peak_activation_bytes"]
        if dev.device_bytes() + weights > dev.memory_bytes:
            return None, dev.error(ACL_ERROR_RT_MEMORY_ALLOCATION, "out of device memory loading the model")
        model_id = dev.new_id()
        dev.models[model_id] = {"session": session, "bytes": weights}
        return model_id, 0

    @api("mdl.unload")
    def unload(model_id):
        if dev.models.pop(model_id, None) is None:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"no model {model_id}")
        return 0

    @api("mdl.create_desc", returns="handle")
    def create_desc():
        d = dev.new_id()
        dev.descs[d] = None
        return d

    @api("mdl.destroy_desc")
    def destroy_desc(desc):
        if desc not in dev.descs:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"no desc {desc}")
        del dev.descs[desc]
        return 0

    @api("mdl.get_desc")
    def get_desc(desc, model_id):
        if desc not in dev.descs or model_id not in dev.models:
            return dev.error(ACL_ERROR_INVALID_PARAM, "get_desc of unknown desc/model")
        dev.descs[desc] = model_id
        return 0

    def session_of(desc):
        return dev.models[dev.descs[desc]]["session"]

    def nbytes(t):
        return int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize

    mdl.get_num_inputs = api("mdl.get_num_inputs")(lambda desc: len(session_of(desc).graph.inputs))
    mdl.get_num_outputs = api("mdl.get_num_outputs")(lambda desc: len(session_of(desc).graph.outputs))
    mdl.get_input_size_by_index = api("mdl.get_input_size_by_index")(
        lambda desc, i: nbytes(session_of(desc).graph.inputs[i]))
    mdl.get_output_size_by_index = api("mdl.get_output_size_by_index")(
        lambda desc, i: int(np.prod(session_of(desc).graph.outputs[i].shape)) * 4)
    mdl.get_input_name_by_index = api("mdl.get_input_name_by_index")(
        lambda desc, i: session_of(desc).graph.inputs[i].name)
    mdl.get_output_name_by_index = api("mdl.get_output_name_by_index")(
        lambda desc, i: session_of(desc).graph.outputs[i].name)
    mdl.get_input_data_type = api("mdl.get_input_data_type")(
        lambda desc, i: _UINT8 if session_of(desc).graph.inputs[i].dtype == "uint8" else _FLOAT)
    mdl.get_output_data_type = api("mdl.get_output_data_type")(lambda desc, i: _FLOAT)

    def dims(t):
        return {"name": t.name, "dimCount": len(t.shape), "dims": list(t.shape)}

    mdl.get_input_dims = api("mdl.get_input_dims", "pair")(lambda desc, i: (dims(session_of(desc).graph.inputs[i]), 0))
    mdl.get_output_dims = api("mdl.get_output_dims", "pair")(
        lambda desc, i: (dims(session_of(desc).graph.outputs[i]), 0))

    @api("mdl.create_dataset", returns="handle")
    def create_dataset():
        d = dev.new_id()
        dev.datasets[d] = []
        return d

    @api("mdl.destroy_dataset")
    def destroy_dataset(dataset):
        if dev.datasets.pop(dataset, None) is None:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"no dataset {dataset}")
        return 0  # as in pyACL: the data buffers stay; they are destroyed on their own

    @api("mdl.add_dataset_buffer", returns="pair")
    def add_dataset_buffer(dataset, buffer):
        if dataset not in dev.datasets or buffer not in dev.buffers:
            return dataset, dev.error(ACL_ERROR_INVALID_PARAM, "add_dataset_buffer of unknown dataset/buffer")
        dev.datasets[dataset].append(buffer)
        return dataset, 0

    mdl.get_dataset_num_buffers = api("mdl.get_dataset_num_buffers")(lambda ds: len(dev.datasets[ds]))
    mdl.get_dataset_buffer = api("mdl.get_dataset_buffer")(lambda ds, i: dev.datasets[ds][i])

    @api("create_data_buffer", returns="handle")
    def create_data_buffer(ptr, size):
        if ptr not in dev.device_mem or size > len(dev.device_mem[ptr]):
            dev.last_error = f"create_data_buffer on unknown device memory {ptr!r}"
            return None
        b = dev.new_id()
        dev.buffers[b] = (ptr, size)
        return b

    @api("destroy_data_buffer")
    def destroy_data_buffer(buffer):
        if dev.buffers.pop(buffer, None) is None:
            return dev.error(ACL_ERROR_INVALID_PARAM, f"no data buffer {buffer}")
        return 0

    acl.get_data_buffer_addr = api("get_data_buffer_addr")(lambda b: dev.buffers[b][0])
    acl.get_data_buffer_size_v2 = api("get_data_buffer_size_v2")(lambda b: dev.buffers[b][1])

    @api("mdl.execute")
    def execute(model_id, in_ds, out_ds):
        model = dev.models.get(model_id)
        if model is None or in_ds not in dev.datasets or out_ds not in dev.datasets:
            return dev.error(ACL_ERROR_INVALID_PARAM, "execute with unknown model/datasets")
        session = model["session"]
        ins, outs = dev.datasets[in_ds], dev.datasets[out_ds]
        if len(ins) != len(session.graph.inputs) or len(outs) != len(session.graph.outputs):
            return dev.error(ACL_ERROR_INVALID_PARAM, "execute: dataset sizes do not match the model")
        feeds = {}
        for t, b in zip(session.graph.inputs, ins):
            ptr, size = dev.buffers[b]
            if size != nbytes(t):
                return dev.error(ACL_ERROR_INVALID_PARAM, f"input {t.name}: buffer of {size} bytes")
            feeds[t.name] = np.frombuffer(bytes(dev.device_mem[ptr][:size]), dtype=t.dtype).reshape(t.shape)
        try:
            result = session.run(feeds)
        except Exception as exc:  # noqa: BLE001 - a device error code, as the real runtime gives
            return dev.error(ACL_ERROR_INTERNAL, f"execute failed: {exc}")
        for t, b in zip(session.graph.outputs, outs):
            ptr, size = dev.buffers[b]
            data = np.ascontiguousarray(result[t.name], dtype=np.float32).tobytes()
            if len(data) > size:
                return dev.error(ACL_ERROR_INVALID_PARAM, f"output {t.name}: buffer of {size} bytes")
            dev.device_mem[ptr][:len(data)] = data
        return 0

    for fn in (init, finalize, get_soc_name, get_recent_err_msg, create_data_buffer, destroy_data_buffer):
        setattr(acl, fn.__name__, fn)
    for fn in (set_device, reset_device, create_context, destroy_context, set_context, get_run_mode, malloc, free,
               malloc_host, free_host, memcpy):
        setattr(rt, fn.__name__, fn)
    for fn in (load_from_file, unload, create_desc, destroy_desc, get_desc, create_dataset, destroy_dataset,
               add_dataset_buffer, execute):
        setattr(mdl, fn.__name__, fn)
    util.bytes_to_ptr, util.ptr_to_bytes = bytes_to_ptr, ptr_to_bytes
    return acl


if __name__ == "__main__":  # pragma: no cover - exercised through the fake ATC script in the tests
    if len(sys.argv) < 2 or sys.argv[1] != "atc":
        print("usage: python -m edgetrack.backends._acl_sim atc --framework=5 --model=... --output=... ...")
        sys.exit(2)
    sys.exit(fake_atc_main(sys.argv[2:]))
