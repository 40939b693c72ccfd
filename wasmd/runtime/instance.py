"""One live instance of a plug-in version: a Store, and the exports requests may reach.

An ``Instance`` is used by one thread at a time; its plug-in's ABI (``wasmd.runtime.abis``)
instantiates the module in it and makes each call (``run``).
Its Store caps everything a guest can make the host hold: each linear memory (``memory_max``),
table elements, and the number of instances, tables and memories. When the module uses WASI,
its stdout and stderr are sealed memfd files (wasi.py) whose new lines are logged, tagged
with the plug-in's name, after every call; a stream that has room for less than one more
call's ``OUTPUT_LIMIT`` is replaced, with the whole WASI context (guest-opened files close;
preopens come back at the same descriptors). An ABI that keeps no instance (command) gets
a bare Instance per call: the Store and its limits, and nothing instantiated in it until its
``call`` does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import wasmtime

from .extism import ExtismState
from .fastcall import (
    Caller,
    Cancellable,
    EpochGuard,
    export,
    install_guard,
    make_caller,
    set_deadline,
)
from .host import call_state
from .kv import atomic
from .traps import CallEnded
from .wasi import MemFile, make_wasi_config

if TYPE_CHECKING:
    from wasmtime import component as wc

    from ..manifest import Manifest
    from ..statestore import Namespace
    from .host import HostContext
    from .signatures import ExportSignature
    from .wasi import Grant


class InstanceAbi(Protocol):
    """What an instance asks of its plug-in's ABI (``abis.base.Abi`` is more)."""

    @property
    def keeps_instance(self) -> bool: ...

    def instantiate(
        self, instance: Instance, deadline_at: float
    ) -> wasmtime.Instance | wc.Instance: ...

    def call(self, instance: Instance, export: str, args: Any) -> Any: ...


class Compiled(Protocol):
    """What an instance, and the ABI that instantiates it, read of the compiled version
    (``plugin.CompiledPlugin``). A protocol, so this module, which the ABIs import, imports
    neither them nor the module that imports them."""

    @property
    def name(self) -> str: ...
    @property
    def manifest(self) -> Manifest: ...
    @property
    def engine(self) -> wasmtime.Engine: ...
    @property
    def module(self) -> wasmtime.Module | None: ...
    @property
    def template(self) -> wasmtime.InstancePre | None: ...
    @property
    def kernel(self) -> wasmtime.Module | None: ...
    @property
    def abi(self) -> InstanceAbi: ...
    @property
    def exports(self) -> Mapping[str, ExportSignature]: ...
    @property
    def uses_wasi(self) -> bool: ...
    @property
    def grants(self) -> tuple[Grant, ...]: ...
    @property
    def host(self) -> HostContext: ...
    @property
    def component(self) -> object | None: ...  # an abis.component.LinkedComponent
    @property
    def uses_state(self) -> bool: ...  # it imports kv_* (kv.py)
    @property
    def state(self) -> Namespace | None: ...  # its durable state, if it has a store


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
# A component instantiates several core modules (its own, adapters, the shims and fix-ups
# wasm-tools adds, a componentize-py build's libraries), each with tables; its memories are
# capped as a module's are, so the memory ceiling means the same for both.
COMPONENT_LIMITS = {"instances": 32, "tables": 16, "memories": MEMORIES_MAX}
# Guest output logged per call and stream, at most; the rest is counted, not logged.
LOG_OUTPUT_LIMIT = 64 * 1024


class Deadline:
    """When a guest call (or an instantiation) must end: wall-clock ``at`` (monotonic
    seconds) and the same span in epoch ticks, for Stores without an ``EpochGuard``."""

    __slots__ = ("at", "call", "ticks")

    def __init__(self, at: float, ticks: int, call: Cancellable | None = None) -> None:
        self.at, self.ticks, self.call = at, ticks, call


def _new_store(plugin: Compiled, deadline: Deadline) -> tuple[wasmtime.Store, EpochGuard | None]:
    store = wasmtime.Store(plugin.engine)
    counts = {"instances": INSTANCES_MAX, "tables": TABLES_MAX, "memories": MEMORIES_MAX}
    store.set_limits(
        memory_size=plugin.manifest.memory_max,
        table_elements=TABLE_ELEMENTS_MAX,
        **(COMPONENT_LIMITS if plugin.component is not None else counts),
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


class _Exports:
    """An instance's exports, looked up by name as they are needed (``fastcall.export``):
    listing them all is quadratic in wasmtime."""

    __slots__ = ("instance", "store")

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance) -> None:
        self.store, self.instance = store, instance

    def get(self, name: str) -> Any:
        return export(self.store, self.instance, name)

    def __getitem__(self, name: str) -> Any:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found


class _Callers(dict[str, Caller]):
    """An instance's callers by export name, each made on its first call: making 20,000 of
    them took half a second, paid by every instantiation (after a trap, per call in
    per-call mode) for exports that may never be called."""

    __slots__ = ("exports", "plugin", "store")

    def __init__(self, plugin: Compiled, store: wasmtime.Store, exports: _Exports) -> None:
        super().__init__()
        self.plugin, self.store, self.exports = plugin, store, exports

    def __missing__(self, name: str) -> Caller:
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)  # plugin.calls holds function exports only
        sig = self.plugin.exports[name]
        caller = self[name] = make_caller(self.store, func, sig.params, sig.results)
        return caller


class Instance:
    __slots__ = (
        "abi_call",
        "alloc",
        "bytes_in",
        "bytes_out",
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

    def __init__(self, plugin: Compiled, deadline: Deadline) -> None:
        self.plugin = plugin
        self.log = logging.getLogger(f"wasmd.plugin.{plugin.name}")
        self.store, self.guard = _new_store(plugin, deadline)
        # A plain function: no layer on the hot path.
        self.abi_call: Callable[[Instance, str, Any], Any] = plugin.abi.call
        if plugin.uses_state:
            # State hook (issue 26): each call is one transaction on the plug-in's state,
            # committed before ``run`` returns (so before the answer is sent) and rolled
            # back by any exception: the guest's error, a trap, a timeout, a cancellation.
            self.abi_call = atomic(plugin.abi.call, plugin.state, plugin.manifest.state)
        self.streams: tuple[MemFile, MemFile] | None = None
        self.extism: ExtismState | None = None  # an Extism plug-in's kernel and host state
        self.kernel_calls: dict[str, Caller] = {}
        self.callers: dict[str, Caller] = {}  # _Callers once instantiated
        self.memory: wasmtime.Memory | None = None
        self.alloc: Caller | None = None
        # Payload bytes the ABI copied into and out of the guest, over this instance's life
        # (counted by the ABIs that move bytes; the pool adds them up).
        self.bytes_in = self.bytes_out = 0
        if plugin.abi.keeps_instance:
            self._instantiate(deadline)

    def _instantiate(self, deadline: Deadline) -> None:
        plugin, store = self.plugin, self.store
        if plugin.uses_wasi:
            self._new_wasi_context()
        # Start code may call other plug-ins (wasmd.call): under this deadline, not the one
        # of whatever call ran last on this thread.
        outer = call_state.deadline_at, call_state.cancellable
        call_state.deadline_at, call_state.cancellable = deadline.at, deadline.call
        try:
            with _guarded(self.guard):
                instance = plugin.abi.instantiate(self, deadline.at)
                if not isinstance(instance, wasmtime.Instance):
                    return  # a component: its ABI bound the methods in ``callers``
                exports = _Exports(store, instance)
                initialize = exports.get("_initialize")
                if isinstance(initialize, wasmtime.Func):
                    initialize(store)  # a WASI reactor's constructors
        except BaseException:
            self.close()
            raise
        finally:
            call_state.deadline_at, call_state.cancellable = outer
        self.callers = _Callers(plugin, store, exports)
        memory, alloc = exports.get("memory"), exports.get("wasmd_alloc")
        self.memory = memory if isinstance(memory, wasmtime.Memory) else None
        if isinstance(alloc, wasmtime.Func):
            self.alloc = make_caller(store, alloc, ("i32",), ("i32",))

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

    def run(self, export: str, args: Any, deadline: Deadline) -> Any:
        """One call of the plug-in's ABI, bounded by ``deadline`` (it ends then, or when its
        call is cancelled; host functions that wait, Extism's http_request, keep to it too).
        Raises what wasmtime raises, ``GuestFault``, ``CallEnded``, or ``WasmdError``."""
        _arm(self.store, self.guard, deadline)
        if self.extism is not None:
            self.extism.deadline = deadline.at
        fuel = self.plugin.manifest.fuel
        if fuel:
            self.store.set_fuel(fuel)
        call_state.reset()
        call_state.deadline_at, call_state.cancellable = deadline.at, deadline.call
        try:
            return self.abi_call(self, export, args)
        except wasmtime.WasmtimeError:  # inline rather than _guarded: this is the hot path
            guard = self.guard
            if guard is not None and guard.ended is not None:
                raise CallEnded(guard.ended) from None
            raise
        finally:
            self.forward_output()

    def memory_size(self) -> int:
        """Bytes of linear memory now (0 without an exported memory)."""
        return 0 if self.memory is None else self.memory.data_len(self.store)

    def fuel_used(self) -> int:
        """Fuel the last call burnt (with metering on; a trap for lack of it: all of it)."""
        try:
            return self.plugin.manifest.fuel - self.store.get_fuel()
        except wasmtime.WasmtimeError:
            return 0

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
