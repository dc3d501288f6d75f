"""pyACL backend: a bundle's .om files on an Ascend NPU through the ``acl`` module of Huawei's CANN toolkit.

``backend="acl"``, ``device="npu"`` (device 0), ``"npu:N"``, or the chip (``"ascend310"``, ``"ascend310b:1"``,
checked against the bundle and against the chip pyACL reports). pyACL is not on PyPI: it comes with the CANN
toolkit (or nnrt) and is found after ``source /usr/local/Ascend/ascend-toolkit/set_env.sh``.

The call sequence is the one in Huawei's pyACL guide ("pyACL接口调用流程"); every signature used below is cited
from the pyACL API reference (hiascend.com, CANN 8.0.0 "aclpythondevg_01_*"; older releases have the same ones):

- ``ret = acl.init()`` -- once per process ("一个进程内只能调用一次acl.init接口");
  ``ACL_ERROR_REPEAT_INITIALIZE`` (100002) means someone else in the process (MindSpore, another library)
  already did, and then it is not ours to finalize. Because a second ``acl.init`` after ``acl.finalize`` is not
  allowed, :func:`finalize` runs at interpreter exit (``atexit``) or when called; everything else is released as
  soon as the last session on a device closes.
- ``ret = acl.rt.set_device(device_id)``, ``context, ret = acl.rt.create_context(device_id)``; per run
  ``ret = acl.rt.set_context(context)`` so that any thread may run a session.
- ``model_id, ret = acl.mdl.load_from_file(path)``; ``desc = acl.mdl.create_desc()``,
  ``ret = acl.mdl.get_desc(desc, model_id)``; ``acl.mdl.get_num_inputs(desc)``,
  ``acl.mdl.get_input_size_by_index(desc, i)`` (and the ``output`` twins), ``dims, ret =
  acl.mdl.get_output_dims(desc, i)`` (``dims["dims"]``), ``acl.mdl.get_output_data_type(desc, i)`` (aclDataType).
- Buffers: ``dev_ptr, ret = acl.rt.malloc(size, ACL_MEM_MALLOC_HUGE_FIRST)``,
  ``buffer = acl.create_data_buffer(dev_ptr, size)``, ``dataset = acl.mdl.create_dataset()``,
  ``dataset, ret = acl.mdl.add_dataset_buffer(dataset, buffer)``; host staging for outputs
  ``host_ptr, ret = acl.rt.malloc_host(size)``.
- Per run: ``ptr = acl.util.bytes_to_ptr(data)`` (``numpy_to_ptr`` on releases without it),
  ``ret = acl.rt.memcpy(dst, dest_max, src, count, kind)`` with ``ACL_MEMCPY_HOST_TO_DEVICE`` = 1 /
  ``ACL_MEMCPY_DEVICE_TO_HOST`` = 2 (``ACL_MEMCPY_DEVICE_TO_DEVICE`` = 3 when the program runs on the device
  itself: ``run_mode, ret = acl.rt.get_run_mode()`` is ``ACL_DEVICE`` = 0), ``ret = acl.mdl.execute(model_id,
  input_dataset, output_dataset)``, ``bytes_out = acl.util.ptr_to_bytes(ptr, size)``.
- Release, in reverse: ``acl.destroy_data_buffer``, ``acl.mdl.destroy_dataset``, ``acl.rt.free``,
  ``acl.rt.free_host``, ``acl.mdl.destroy_desc``, ``acl.mdl.unload``, ``acl.rt.destroy_context``,
  ``acl.rt.reset_device``, and at exit ``acl.finalize``.

Every acquired resource is pushed on a release stack (:class:`contextlib.ExitStack`) the moment it exists, so a
failure half-way through ``load`` releases exactly what was acquired, and :meth:`AclSession.close` (or garbage
collection of the session) releases the rest, even when a release call itself fails. The ``acl`` module is
injected (``AclBackend(acl=...)``): CI runs this code against :mod:`edgetrack.backends._acl_sim`, a fake ``acl``
that executes the OM's source graph on the NPU simulator and tracks every allocation.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from pathlib import Path
from typing import Mapping

import numpy as np

from edgetrack.ascend.socs import soc_for_version
from edgetrack.backends import module_available
from edgetrack.backends._ascend import (
    DeviceGraph,
    DeviceTensor,
    check_feeds,
    missing_dependency,
    parse_ascend_device,
    resolve_graph,
)
from edgetrack.errors import BackendError, BundleError, EdgetrackError, UnknownChoiceError

__all__ = ["AclBackend", "AclSession", "finalize", "CANN_HINT", "ACL_DTYPES"]

# Constants of the pyACL reference (values as documented; pyACL takes plain ints).
ACL_SUCCESS = 0
ACL_ERROR_REPEAT_INITIALIZE = 100002
ACL_MEM_MALLOC_HUGE_FIRST = 0
ACL_MEMCPY_HOST_TO_DEVICE = 1
ACL_MEMCPY_DEVICE_TO_HOST = 2
ACL_MEMCPY_DEVICE_TO_DEVICE = 3
ACL_DEVICE = 0  # aclrtRunMode: the program runs on the device's own CPU (Atlas 200 DK), host memory is device memory
# aclDataType -> numpy.
ACL_DTYPES = {0: "float32", 1: "float16", 2: "int8", 3: "int32", 4: "uint8", 6: "int16", 7: "uint16", 8: "uint32",
              9: "int64", 10: "uint64", 11: "float64", 12: "bool"}

CANN_HINT = (
    "pyACL (the Python module 'acl') comes with Huawei's CANN toolkit, not from pip: install the CANN toolkit or "
    "nnrt for your chip, then `source /usr/local/Ascend/ascend-toolkit/set_env.sh` (or your install's set_env.sh) "
    "so that Python finds it; to try the device path without the device use backend='simulator'"
)


def _import_acl():
    try:
        import acl  # noqa: PLC0415 - the vendor library is imported on first use only
    except ImportError as exc:
        raise missing_dependency("the 'acl' backend", "pyACL (CANN toolkit)", CANN_HINT, detail=str(exc)) from exc
    return acl


def _fail(what: str, ret, acl) -> BackendError:
    msg = ""
    get = getattr(acl, "get_recent_err_msg", None)
    if get is not None:
        try:
            msg = get() or ""
        except Exception:  # noqa: BLE001 - the message is a bonus; the code is the error
            msg = ""
    return BackendError(f"pyACL {what} failed with error code {ret}" + (f": {msg}" if msg else ""),
                        fix="see the aclError table of the pyACL reference for the code; check `npu-smi info`")


def _check(what: str, ret, acl) -> None:
    if ret != ACL_SUCCESS:
        raise _fail(what, ret, acl)


class _Runtime:
    """Process-wide pyACL state for one ``acl`` module: init once, one context per device, shared by sessions."""

    _all: dict[int, "_Runtime"] = {}
    _all_lock = threading.Lock()

    def __init__(self, acl):
        self.acl = acl
        self.lock = threading.RLock()
        self.initialised = False   # acl.init succeeded in this process (by us or by someone else)
        self.owns_init = False     # we called acl.init first: ours to finalize
        self.devices: dict[int, list] = {}  # device id -> [context, number of sessions]

    @classmethod
    def of(cls, acl) -> "_Runtime":
        with cls._all_lock:
            rt = cls._all.get(id(acl))
            if rt is None or rt.acl is not acl:
                rt = cls._all[id(acl)] = cls(acl)
            return rt

    def acquire(self, device_id: int):
        """The context of ``device_id``, initialising pyACL and opening the device on first use."""
        acl = self.acl
        with self.lock:
            if not self.initialised:
                ret = acl.init()
                if ret not in (ACL_SUCCESS, ACL_ERROR_REPEAT_INITIALIZE):
                    raise _fail("acl.init()", ret, acl)
                self.initialised, self.owns_init = True, ret == ACL_SUCCESS
            entry = self.devices.get(device_id)
            if entry is None:
                _check(f"acl.rt.set_device({device_id})", acl.rt.set_device(device_id), acl)
                try:
                    context, ret = acl.rt.create_context(device_id)
                    _check(f"acl.rt.create_context({device_id})", ret, acl)
                except BaseException:
                    acl.rt.reset_device(device_id)
                    raise
                entry = self.devices[device_id] = [context, 0]
            entry[1] += 1
            return entry[0]

    def release(self, device_id: int) -> None:
        """One session fewer on ``device_id``; the last one destroys the context and resets the device."""
        acl = self.acl
        with self.lock:
            entry = self.devices.get(device_id)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del self.devices[device_id]
            errors = []
            ret = acl.rt.destroy_context(entry[0])
            if ret != ACL_SUCCESS:
                errors.append(f"acl.rt.destroy_context -> {ret}")
            ret = acl.rt.reset_device(device_id)
            if ret != ACL_SUCCESS:
                errors.append(f"acl.rt.reset_device({device_id}) -> {ret}")
            if errors:
                raise BackendError("releasing the NPU failed: " + "; ".join(errors))

    def finalize(self) -> None:
        with self.lock:
            if self.devices:
                raise BackendError(
                    f"pyACL cannot be finalized while sessions are open on devices {sorted(self.devices)}",
                    fix="close every AclSession (or Tracker) first")
            if self.initialised and self.owns_init:
                ret = self.acl.finalize()
                if ret != ACL_SUCCESS:
                    raise _fail("acl.finalize()", ret, self.acl)
            self.initialised = self.owns_init = False


def finalize(acl=None) -> None:
    """Finalize pyACL for ``acl`` (default: every module this backend initialised) once no session is open.

    Runs by itself at interpreter exit; call it only to end pyACL earlier (pyACL allows one ``acl.init`` per
    process, so no session can be opened afterwards).
    """
    with _Runtime._all_lock:
        runtimes = [r for r in _Runtime._all.values() if acl is None or r.acl is acl]
    for rt in runtimes:
        rt.finalize()


@atexit.register
def _finalize_at_exit() -> None:  # pragma: no cover - runs at interpreter exit
    with contextlib.suppress(Exception):
        finalize()


class _Resources:
    """The release stack of one session; ``close`` runs every release even when some fail, then reports."""

    def __init__(self, acl, stack: contextlib.ExitStack, context, runtime: _Runtime, device_id: int):
        self.acl, self.stack, self.context = acl, stack, context
        self.runtime, self.device_id = runtime, device_id
        self.errors: list[str] = []

    def call(self, what: str, fn, *args) -> None:
        """A release call: its failure is recorded, never stops the others."""
        try:
            ret = fn(*args)
        except Exception as exc:  # noqa: BLE001 - keep releasing
            self.errors.append(f"{what}: {exc}")
            return
        if isinstance(ret, tuple):
            ret = ret[-1]
        if ret not in (None, ACL_SUCCESS):
            self.errors.append(f"{what} -> {ret}")

    def close(self) -> None:
        try:
            # The context must be current in the thread that releases (a garbage collector may run anywhere).
            self.call("acl.rt.set_context", self.acl.rt.set_context, self.context)
            self.stack.close()
        finally:
            try:
                self.runtime.release(self.device_id)
            except EdgetrackError as exc:
                self.errors.append(str(exc))
        if self.errors:
            errors, self.errors = self.errors, []
            raise BackendError("releasing pyACL resources reported errors: " + "; ".join(errors))


def _close_quietly(resources: _Resources) -> None:
    with contextlib.suppress(Exception):  # a finalizer must not raise; close() reports for explicit calls
        resources.close()


class AclSession:
    """One .om model loaded on the NPU, with its device buffers. ``run(feeds)`` takes :attr:`device_inputs`.

    Close it with :meth:`close` (or ``with``); an unreferenced session is closed by the garbage collector.
    One run at a time per session (a lock); sessions of one device share its context across threads.
    """

    def __init__(self, acl, graph: DeviceGraph, om_path: Path, device_id: int):
        self._acl = acl
        self.graph = graph
        self.path = om_path
        self.device_id = device_id
        self._what = f"{graph.where()} ({om_path.name}) on NPU {device_id}"
        self._lock = threading.Lock()
        runtime = _Runtime.of(acl)
        stack = contextlib.ExitStack()
        context = runtime.acquire(device_id)
        resources = _Resources(acl, stack, context, runtime, device_id)
        try:
            self._load(acl, graph, om_path, resources)
        except BaseException:
            with contextlib.suppress(Exception):
                resources.close()
            raise
        self._resources = resources
        self._context = context
        self._finalizer = weakref.finalize(self, _close_quietly, resources)

    # -- loading ---------------------------------------------------------------------------------------------------
    def _load(self, acl, graph: DeviceGraph, om_path: Path, res: _Resources) -> None:
        stack = res.stack
        soc_name = acl.get_soc_name()
        if graph.soc is not None and soc_name:
            try:
                found = soc_for_version(soc_name)
            except UnknownChoiceError:
                found = None
            if found is not None and found.name != graph.soc.name:
                raise BundleError(
                    f"{graph.where()} was built for {graph.soc.name} ({graph.soc_version or graph.soc.chip}); "
                    f"NPU {self.device_id} is {soc_name} ({found.chip})",
                    fix=f"convert the checkpoint again with --target {found.name} (ATC builds an OM for one chip)",
                )
        run_mode, ret = acl.rt.get_run_mode()
        _check("acl.rt.get_run_mode()", ret, acl)
        on_device = run_mode == ACL_DEVICE
        self._h2d = ACL_MEMCPY_DEVICE_TO_DEVICE if on_device else ACL_MEMCPY_HOST_TO_DEVICE
        self._d2h = ACL_MEMCPY_DEVICE_TO_DEVICE if on_device else ACL_MEMCPY_DEVICE_TO_HOST

        model_id, ret = acl.mdl.load_from_file(str(om_path))
        _check(f"acl.mdl.load_from_file({str(om_path)!r})", ret, acl)
        stack.callback(res.call, "acl.mdl.unload", acl.mdl.unload, model_id)
        self._model_id = model_id
        desc = acl.mdl.create_desc()
        if not desc:
            raise BackendError("pyACL acl.mdl.create_desc() returned no description")
        stack.callback(res.call, "acl.mdl.destroy_desc", acl.mdl.destroy_desc, desc)
        _check("acl.mdl.get_desc", acl.mdl.get_desc(desc, model_id), acl)

        n_in, n_out = acl.mdl.get_num_inputs(desc), acl.mdl.get_num_outputs(desc)
        inputs = graph.inputs or tuple(self._desc_input(acl, desc, i) for i in range(n_in))
        if len(inputs) != n_in:
            raise BundleError(
                f"{self._what}: the OM has {n_in} input(s), the manifest lists {[t.name for t in inputs]}",
                fix="rebuild the device files with the bundle's commands (the OM is not the bundle's graph)",
            )
        in_sizes = [int(acl.mdl.get_input_size_by_index(desc, i)) for i in range(n_in)]
        for t, size in zip(inputs, in_sizes):
            if t.shape and size != int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize:
                raise BundleError(
                    f"{self._what}: the OM's input {t.name!r} holds {size} bytes, but the manifest's device input "
                    f"is {t.describe()}", fix="rebuild the device files with the bundle's commands")
        self.device_inputs: dict[str, DeviceTensor] = {t.name: t for t in inputs}
        self._inputs = inputs
        self._in_sizes = in_sizes

        self._out_specs = []
        for i in range(n_out):
            dims, ret = acl.mdl.get_output_dims(desc, i)
            _check(f"acl.mdl.get_output_dims({i})", ret, acl)
            dtype = ACL_DTYPES.get(int(acl.mdl.get_output_data_type(desc, i)))
            if dtype is None:
                raise BackendError(f"{self._what}: output {i} has an aclDataType edgetrack does not read")
            name = graph.outputs[i].name if i < len(graph.outputs) else acl.mdl.get_output_name_by_index(desc, i)
            self._out_specs.append((name, tuple(int(d) for d in dims["dims"]), np.dtype(dtype),
                                    int(acl.mdl.get_output_size_by_index(desc, i))))
        if graph.outputs and len(graph.outputs) != n_out:
            raise BundleError(f"{self._what}: the OM has {n_out} output(s), the manifest lists "
                              f"{[t.name for t in graph.outputs]}", fix="rebuild the device files")
        self.input_names = tuple(t.name for t in inputs)
        self.output_names = tuple(s[0] for s in self._out_specs)

        self._in_dataset = self._dataset(acl, res, in_sizes, "input")
        self._in_ptrs = self._ptrs
        out_sizes = [s[3] for s in self._out_specs]
        self._out_dataset = self._dataset(acl, res, out_sizes, "output")
        self._out_ptrs = self._ptrs
        self._host_ptrs = []
        for size in out_sizes:
            ptr, ret = acl.rt.malloc_host(size)
            _check(f"acl.rt.malloc_host({size})", ret, acl)
            stack.callback(res.call, "acl.rt.free_host", acl.rt.free_host, ptr)
            self._host_ptrs.append(ptr)

    def _desc_input(self, acl, desc, i: int) -> DeviceTensor:
        """An input as the OM's description states it (an OM outside a bundle: nothing else to go by)."""
        dims, ret = acl.mdl.get_input_dims(desc, i)
        _check(f"acl.mdl.get_input_dims({i})", ret, acl)
        dtype = ACL_DTYPES.get(int(acl.mdl.get_input_data_type(desc, i)), "uint8")
        shape = tuple(int(d) for d in dims["dims"])
        return DeviceTensor(acl.mdl.get_input_name_by_index(desc, i), shape, dtype, "NCHW" if len(shape) == 4 else "ND")

    def _dataset(self, acl, res: _Resources, sizes, what: str):
        dataset = acl.mdl.create_dataset()
        if not dataset:
            raise BackendError(f"pyACL acl.mdl.create_dataset() returned nothing for the {what}s")
        res.stack.callback(res.call, "acl.mdl.destroy_dataset", acl.mdl.destroy_dataset, dataset)
        self._ptrs = []
        for size in sizes:
            ptr, ret = acl.rt.malloc(size, ACL_MEM_MALLOC_HUGE_FIRST)
            _check(f"acl.rt.malloc({size})", ret, acl)
            res.stack.callback(res.call, "acl.rt.free", acl.rt.free, ptr)
            buffer = acl.create_data_buffer(ptr, size)
            if not buffer:
                raise BackendError(f"pyACL acl.create_data_buffer({size}) returned nothing")
            res.stack.callback(res.call, "acl.destroy_data_buffer", acl.destroy_data_buffer, buffer)
            _, ret = acl.mdl.add_dataset_buffer(dataset, buffer)
            _check(f"acl.mdl.add_dataset_buffer ({what})", ret, acl)
            self._ptrs.append(ptr)
        return dataset

    # -- running ---------------------------------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._finalizer.alive:
            raise BackendError(f"{self._what}: the session is closed", fix="load the graph again")
        feeds = check_feeds(feeds, self._inputs, self._what)
        acl = self._acl
        with self._lock:
            _check("acl.rt.set_context", acl.rt.set_context(self._context), acl)
            for t, ptr, size in zip(self._inputs, self._in_ptrs, self._in_sizes):
                data = np.ascontiguousarray(feeds[t.name]).tobytes()
                if len(data) != size:
                    raise BackendError(f"{self._what}: input {t.name!r} has {len(data)} bytes, the OM takes {size}")
                # `data` stays referenced until the copy returns: the pointer is only valid while it lives.
                _check(f"acl.rt.memcpy (input {t.name!r})",
                       acl.rt.memcpy(ptr, size, self._host_ptr(data), size, self._h2d), acl)
            _check("acl.mdl.execute", acl.mdl.execute(self._model_id, self._in_dataset, self._out_dataset), acl)
            out = {}
            for (name, dims, dtype, size), dev, host in zip(self._out_specs, self._out_ptrs, self._host_ptrs):
                _check(f"acl.rt.memcpy (output {name!r})", acl.rt.memcpy(host, size, dev, size, self._d2h), acl)
                raw = acl.util.ptr_to_bytes(host, size)
                out[name] = np.frombuffer(raw, dtype=dtype, count=int(np.prod(dims))).reshape(dims).copy()
            return out

    def _host_ptr(self, data: bytes) -> int:
        util = self._acl.util
        if hasattr(util, "bytes_to_ptr"):
            return util.bytes_to_ptr(data)
        return util.numpy_to_ptr(np.frombuffer(data, dtype=np.uint8))  # pyACL releases before bytes_to_ptr

    # -- releasing -------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the model, buffers and (for the last session of the device) the context and device."""
        if self._finalizer.detach() is not None:
            self._resources.close()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> "AclSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AclSession({self.graph.name!r}, {self.path.name}, npu:{self.device_id})"


class AclBackend:
    """Loads .om graphs of Ascend bundles onto the NPU through pyACL (see the module docstring).

    ``acl``: the pyACL module to use (default: ``import acl`` on first load).
    """

    name = "acl"
    default_device = "npu"  # the bundle's own chip
    package = "pyACL (CANN toolkit)"

    def __init__(self, acl=None):
        self._acl = acl

    def is_available(self) -> bool:
        return self._acl is not None or module_available("acl")

    def missing_dependency_error(self):
        return missing_dependency("the 'acl' backend", self.package, CANN_HINT)

    def load(self, graph_path: str | os.PathLike, device: str = "npu") -> AclSession:
        soc, device_id = parse_ascend_device(device, self.name)
        graph = resolve_graph(graph_path, soc, backend=self.name)
        om = graph.device_file
        if om is None or om.suffix.lower() != ".om":
            if graph.bundle_path is not None and not graph.toolchain:
                raise BundleError(
                    f"bundle {str(graph.bundle_path)!r} targets {graph.target!r}: it has no .om files",
                    fix="convert the checkpoint with --target ascend310 (your chip) where the CANN toolkit's atc "
                        "is on PATH; to try the device path here use backend='simulator', device='ascend310'",
                )
            raise BundleError(
                f"{graph.where()} has no built .om file (status: {graph.status or 'not an OM'}; toolchain "
                f"{graph.toolchain})",
                fix="run the graph's commands from manifest.json (device.graphs.<graph>.commands, in order: AMCT's "
                    "calibration first for int8, then ATC) in the bundle folder where the CANN toolkit is installed "
                    "(or convert again there); backend='simulator' runs the bundle as the chip would",
            )
        acl = self._acl if self._acl is not None else _import_acl()
        return AclSession(acl, graph, om, device_id)
