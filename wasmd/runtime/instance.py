"""One live instance of a plug-in version, and how each ABI calls into it.

An ``Instance`` is a Store plus the exports requests may reach; it lives on one worker thread.
Its Store caps everything a guest can make the host hold: each linear memory (``memory_max``),
table elements, and the number of instances, tables and memories. When the module uses WASI,
its stdout and stderr are sealed memfd files (wasi.py) whose new lines are logged, tagged
with the plug-in's name, after every call; a stream that has room for less than one more
call's ``OUTPUT_LIMIT`` is replaced, with the whole WASI context (guest-opened files close;
preopens come back at the same descriptors). The command ABI has no lasting instance:
``run_command`` makes one per call, with the request's stdin and args, runs ``_start``, and
returns the exit code and output.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgpack
import wasmtime

from ..errors import ErrorCode, WasmdError
from .extism import ExtismState, extism_state, kernel_block
from .fastcall import Caller, Cancellable, EpochGuard, install_guard, make_caller, set_deadline
from .host import call_state
from .plugin import make_linker
from .traps import CallEnded, GuestFault
from .wasi import MemFile, make_wasi_config

if TYPE_CHECKING:
    from .plugin import CompiledPlugin

# What one call may write to stdout or to stderr: a command's output beyond it is refused as
# resource_exhausted; the writes past it fail inside the guest.
OUTPUT_LIMIT = 16 * 1024 * 1024
# A persistent instance's streams have room for two calls' worth: at least one whole call.
PERSISTENT_STREAM_CAPACITY = 2 * OUTPUT_LIMIT + 1
# Store limits besides memory_max (DESIGN.md section 4). Each table element costs the host
# 8 bytes or more: a million is ~8 MiB a table; modules of real programs have a few thousand.
TABLE_ELEMENTS_MAX = 1_000_000
TABLES_MAX = 4
MEMORIES_MAX = 2  # the module's own, and an Extism plug-in's kernel
INSTANCES_MAX = 2  # the module, and an Extism plug-in's kernel
# Guest output logged per call and stream, at most; the rest is counted, not logged.
LOG_OUTPUT_LIMIT = 64 * 1024


class Deadline:
    """When a guest call (or an instantiation) must end: wall-clock ``at`` (monotonic
    seconds) and the same span in epoch ticks, for Stores without an ``EpochGuard``."""

    __slots__ = ("at", "call", "ticks")

    def __init__(self, at: float, ticks: int, call: Cancellable | None = None) -> None:
        self.at, self.ticks, self.call = at, ticks, call


def _new_store(
    plugin: CompiledPlugin, deadline: Deadline
) -> tuple[wasmtime.Store, EpochGuard | None]:
    store = wasmtime.Store(plugin.engine)
    store.set_limits(
        memory_size=plugin.manifest.memory_max,
        table_elements=TABLE_ELEMENTS_MAX,
        instances=INSTANCES_MAX,
        tables=TABLES_MAX,
        memories=MEMORIES_MAX,
    )
    guard = install_guard(store)
    # Start functions and _initialize run during instantiation: bounded like any call.
    _arm(store, guard, deadline)
    if plugin.manifest.fuel:
        store.set_fuel(plugin.manifest.fuel)
    return store, guard


def _arm(store: wasmtime.Store, guard: EpochGuard | None, deadline: Deadline) -> None:
    if guard is not None:
        guard.arm(store, deadline.at, deadline.call)
    else:
        set_deadline(store, deadline.ticks)


@contextlib.contextmanager
def _guarded(guard: EpochGuard | None) -> Iterator[None]:
    """Report a call the guard ended as ``CallEnded``, not as wasmtime's generic error."""
    try:
        yield
    except wasmtime.WasmtimeError:
        if guard is not None and guard.ended is not None:
            raise CallEnded(guard.ended) from None
        raise


class Instance:
    __slots__ = (
        "alloc",
        "callers",
        "extism",
        "guard",
        "kernel_calls",
        "log",
        "memory",
        "plugin",
        "store",
        "streams",
    )

    def __init__(self, plugin: CompiledPlugin, deadline: Deadline) -> None:
        self.plugin = plugin
        self.log = logging.getLogger(f"wasmd.plugin.{plugin.name}")
        self.store, self.guard = _new_store(plugin, deadline)
        store = self.store
        self.streams: tuple[MemFile, MemFile] | None = None
        if plugin.uses_wasi:
            self._new_wasi_context()
        self.extism: ExtismState | None = None
        try:
            with _guarded(self.guard):
                instance = self._instantiate(plugin, store, deadline.at)
                exports = instance.exports(store)
                initialize = exports.get("_initialize")
                if isinstance(initialize, wasmtime.Func):
                    initialize(store)  # a WASI reactor's constructors
        except BaseException:
            self.close()
            raise
        self.callers: dict[str, Caller] = {}
        for name in plugin.calls:
            func = exports[name]
            assert isinstance(func, wasmtime.Func)  # plugin.calls holds function exports only
            sig = plugin.exports[name]
            self.callers[name] = make_caller(store, func, sig.params, sig.results)
        memory, alloc = exports.get("memory"), exports.get("wasmd_alloc")
        self.memory = memory if isinstance(memory, wasmtime.Memory) else None
        self.alloc = (
            make_caller(store, alloc, ("i32",), ("i32",))
            if isinstance(alloc, wasmtime.Func)
            else None
        )

    def _new_wasi_context(self) -> None:
        """Give the Store a WASI context with fresh streams (and close the old streams)."""
        plugin, capacity = self.plugin, PERSISTENT_STREAM_CAPACITY
        streams = (
            MemFile(f"{plugin.name}-out", capacity=capacity),
            MemFile(f"{plugin.name}-err", capacity=capacity),
        )
        try:
            # Deny by default: the context grants only what the manifest lists.
            self.store.set_wasi(
                make_wasi_config(
                    plugin.manifest,
                    plugin.grants,
                    argv=[plugin.name, *plugin.manifest.wasi_args],  # argv[0]: the program
                    stdout=streams[0],
                    stderr=streams[1],
                )
            )
        except BaseException:
            for stream in streams:
                stream.close()
            raise
        old, self.streams = self.streams, streams
        for stream in old or ():
            stream.close()

    def _instantiate(
        self, plugin: CompiledPlugin, store: wasmtime.Store, deadline_at: float
    ) -> wasmtime.Instance:
        if plugin.kernel is None:
            assert plugin.template is not None
            return plugin.template.instantiate(store)
        # Extism: the kernel first, in this Store, then the plug-in linked against it.
        kernel = wasmtime.Instance(store, plugin.kernel, [])
        k = kernel.exports(store)
        memory, alloc, length = k["memory"], k["alloc"], k["length"]
        assert isinstance(memory, wasmtime.Memory)
        assert isinstance(alloc, wasmtime.Func)
        assert isinstance(length, wasmtime.Func)
        self.extism = ExtismState(
            plugin.host, plugin.manifest.extism_allowed_hosts, memory, alloc, length
        )
        self.extism.deadline = deadline_at  # start code may make requests
        calls = {}
        for name, params, results in (
            ("wasmd_begin", ("i64",), ("i64",)),
            ("wasmd_output_offset", (), ("i64",)),
            ("wasmd_output_length", (), ("i64",)),
            ("wasmd_error", (), ("i64",)),
        ):
            func = k[name]
            assert isinstance(func, wasmtime.Func)
            calls[name] = make_caller(store, func, params, results)
        self.kernel_calls = calls
        extism_state.state = self.extism  # start code may already use the host functions
        linker = make_linker(
            plugin.engine, plugin.module, plugin.host, plugin.uses_wasi, (store, kernel)
        )
        return linker.instantiate(store, plugin.module)

    def arm(self, deadline: Deadline) -> None:
        """Bound the next call: it ends at ``deadline`` (or when its call is cancelled).
        Host functions that wait (Extism's http_request) keep to the same deadline."""
        _arm(self.store, self.guard, deadline)
        if self.extism is not None:
            self.extism.deadline = deadline.at
        if self.plugin.manifest.fuel:
            self.store.set_fuel(self.plugin.manifest.fuel)

    def call(self, export: str, args: Any) -> Any:
        """Run one call of the plug-in's ABI (after ``arm``); raises what wasmtime raises,
        or WasmdError."""
        call_state.reset()
        try:
            if self.plugin.abi == "msgpack":
                return self._call_msgpack(export, args)
            if self.extism is not None:
                return self._call_extism(export, args)
            result = self.callers[export](*args)
            _raise_host_outcome()
            return result
        except wasmtime.WasmtimeError:  # inline rather than _guarded: this is the hot path
            guard = self.guard
            if guard is not None and guard.ended is not None:
                raise CallEnded(guard.ended) from None
            raise
        finally:
            self.forward_output()

    def _call_msgpack(self, export: str, payload: bytes) -> Any:
        store, memory, alloc = self.store, self.memory, self.alloc
        assert memory is not None  # msgpack_problems checked both when compiling
        assert alloc is not None
        ptr = alloc(len(payload)) & 0xFFFFFFFF
        if ptr + len(payload) > memory.data_len(store):
            raise GuestFault(f"wasmd_alloc({len(payload)}) returned {ptr}, outside memory")
        if payload:
            memory.write(store, payload, ptr)
        packed = self.callers[export](ptr, len(payload)) & 0xFFFFFFFFFFFFFFFF
        _raise_host_outcome()
        if packed == 0:
            return None
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        if out_ptr + out_len > memory.data_len(store):
            raise GuestFault(
                f"{export} returned bytes {out_ptr}..{out_ptr + out_len}, outside memory"
            )
        try:
            return msgpack.unpackb(
                bytes(memory.read(store, out_ptr, out_ptr + out_len)), strict_map_key=False
            )
        except Exception as exc:
            message = f"{export} returned bytes that are not one msgpack value: {exc}"
            raise GuestFault(message) from None

    def _call_extism(self, export: str, payload: bytes) -> bytes:
        state, store, calls = self.extism, self.store, self.kernel_calls
        assert state is not None
        assert state.memory is not None
        extism_state.state = state
        offs = int(calls["wasmd_begin"](len(payload)))
        if offs == 0:
            raise WasmdError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"no room for a {len(payload)}-byte input in Extism memory",
            )
        if payload:
            state.memory.write(store, payload, offs)
        state.permission_denied = state.past_deadline = None
        status = self.callers[export]()
        if state.permission_denied is not None:
            message, state.permission_denied = state.permission_denied, None
            call_state.fault = None
            raise WasmdError(ErrorCode.PERMISSION_DENIED, message)
        if state.past_deadline is not None:
            raise WasmdError(
                ErrorCode.TIMEOUT,
                f"call exceeded its deadline of {self.plugin.manifest.timeout_ms} ms "
                f"({state.past_deadline})",
            )
        _raise_host_outcome()
        error = int(calls["wasmd_error"]())
        if error or status != 0:
            message = kernel_block(state, store, error).decode("utf-8", "replace")
            raise WasmdError(
                ErrorCode.TRAP,
                message or f"{export} returned {status}",
                {"kind": "guest_error", "status": status},
            )
        out, size = int(calls["wasmd_output_offset"]()), int(calls["wasmd_output_length"]())
        if out + size > state.memory.data_len(store):
            raise GuestFault(f"{export} set output outside Extism memory")
        return bytes(state.memory.read(store, out, out + size)) if size else b""

    def memory_at_limit(self) -> bool:
        """Whether the memory is within a quarter of memory_max.

        wasmtime-py offers no hook on a refused memory.grow, and allocators grow in chunks,
        so a trap this close to the ceiling is taken to be an allocation that failed.
        """
        if self.memory is None:
            return False
        limit = self.plugin.manifest.memory_max
        return limit - self.memory.data_len(self.store) < max(limit // 4, 64 * 1024)

    def forward_output(self) -> None:
        if self.streams is None:
            return
        for stream, level in zip(self.streams, (logging.INFO, logging.WARNING), strict=True):
            count, data = stream.take(LOG_OUTPUT_LIMIT)
            if count > OUTPUT_LIMIT:
                self.log.warning(
                    "(%d bytes of output in one call: writes past %d bytes may have failed)",
                    count,
                    OUTPUT_LIMIT,
                )
            elif data is None:
                self.log.log(level, "(more than %d bytes of output, not logged)", LOG_OUTPUT_LIMIT)
            elif data:
                for line in data.decode("utf-8", errors="replace").splitlines():
                    self.log.log(level, "%s", line)
        if any(s.capacity - s.end() <= OUTPUT_LIMIT for s in self.streams):
            self._new_wasi_context()

    def close(self) -> None:
        if self.streams is not None:
            for stream in self.streams:
                stream.close()
            self.streams = None


def _raise_host_outcome() -> None:
    if call_state.fault is not None:
        raise GuestFault(call_state.fault)
    if call_state.guest_error is not None:
        raise WasmdError(ErrorCode.TRAP, call_state.guest_error, {"kind": "guest_error"})


def run_command(
    plugin: CompiledPlugin, args: tuple[bytes, list[str]], deadline: Deadline
) -> dict[str, Any]:
    """The command ABI: a fresh instance runs ``_start`` with this request's stdin and args."""
    store, guard = _new_store(plugin, deadline)
    with _guarded(guard):
        return _run_start(plugin, store, args)


def _run_start(
    plugin: CompiledPlugin, store: wasmtime.Store, args: tuple[bytes, list[str]]
) -> dict[str, Any]:
    stdin_bytes, argv = args
    streams = (
        MemFile("stdin", stdin_bytes),
        MemFile("stdout", capacity=OUTPUT_LIMIT + 1),
        MemFile("stderr", capacity=OUTPUT_LIMIT + 1),
    )
    try:
        store.set_wasi(
            make_wasi_config(
                plugin.manifest,
                plugin.grants,
                argv=[plugin.name, *plugin.manifest.wasi_args, *argv],
                stdin=streams[0],
                stdout=streams[1],
                stderr=streams[2],
            )
        )
        exit_code = 0
        try:
            assert plugin.template is not None  # a command is never an Extism plug-in
            instance = plugin.template.instantiate(store)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        _, stdout = streams[1].take(OUTPUT_LIMIT)
        _, stderr = streams[2].take(OUTPUT_LIMIT)
        if stdout is None or stderr is None:
            which = "stdout" if stdout is None else "stderr"
            raise WasmdError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{plugin.name} wrote more than {OUTPUT_LIMIT} bytes to {which} "
                "(the writes past it failed)",
            )
        return {"exit_code": exit_code, "stdout": stdout, "stderr": stderr}
    finally:
        for stream in streams:
            stream.close()
