"""The host imports every plug-in may use, module ``wasmd``: log, emit, error, config_get, call,
caller_uid, caller_gid, caller_pid.

Hazard (DESIGN.md section 4): wasmtime-py passes a host function's exception back through one
module-level global (``wasmtime._func.LAST_EXCEPTION``), so with several worker threads the
wrong exception could surface in the wrong call, and one left there surfaces in the next
call that traps. Every host function wasmd defines is therefore wrapped by ``host_function``,
which catches everything (``BaseException`` too) and returns a fallback value instead. What a
call needs to know afterwards — the guest's own error message, or a misuse of an import such
as a pointer out of bounds — goes into ``CallState``, a thread-local: a guest and the host
functions it calls run on the same worker thread, and the worker reads the state once the
call returns.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgpack
import wasmtime

from ..errors import ErrorCode, PluginLoadError, WasmdError
from ..peers import Peer

# Generous for a log line or an error message, small enough that a guest cannot make the
# daemon copy its whole memory per call.
MAX_TEXT = 64 * 1024
# A custom event is kept, decoded, in every subscriber's buffer until read: small, with few
# containers (16 KiB of empty arrays would decode to 16,384 lists, about 1 MiB).
MAX_EVENT = 16 * 1024
MAX_EVENT_CONTAINERS = 256
# Log lines and custom events per plug-in per second (with a burst of as many).
LOG_LINES_PER_SECOND = 200

EventSink = Callable[[str, dict[str, Any]], None]

HostFunction = TypeVar("HostFunction", bound=Callable[..., Any])
log = logging.getLogger("wasmd.runtime")

_LOG_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
_I32, _I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()


class CallState(threading.local):
    """What the host functions learned during the current call on this thread."""

    guest_error: str | None = None
    fault: str | None = None
    # "timeout" or "cancelled": a host function found the call over (wasmd.call, when the
    # callee used up the caller's time); the call ends so, as if the epoch guard had ended it.
    ended: str | None = None
    # The running call's deadline and its cancellation (``Instance.run`` sets them), and how
    # many plug-in-to-plug-in calls deep it is: what ``wasmd.call`` hands on (nested.py).
    deadline_at: float | None = None
    cancellable: Any = None
    depth: int = 0
    # What a call back into the guest raised (config_get's wasmd_alloc): a trap there, or
    # the deadline ending the call there, is the call's outcome, not a misused import.
    guest_trap: BaseException | None = None

    def reset(self) -> None:
        self.guest_error = None
        self.fault = None
        self.ended = None
        self.guest_trap = None

    def save(self) -> tuple[Any, ...]:
        return (
            self.guest_error,
            self.fault,
            self.ended,
            self.guest_trap,
            self.deadline_at,
            self.cancellable,
            self.depth,
        )

    def restore(self, saved: tuple[Any, ...]) -> None:
        (
            self.guest_error,
            self.fault,
            self.ended,
            self.guest_trap,
            self.deadline_at,
            self.cancellable,
            self.depth,
        ) = saved

    def over(self) -> str | None:
        """Whether the running call is over: "cancelled", "timeout", or None."""
        if self.cancellable is not None and self.cancellable.cancelled:
            return "cancelled"
        if self.deadline_at is not None and time.monotonic() >= self.deadline_at:
            return "timeout"
        return None


call_state = CallState()


class Imports(Protocol):
    """More imports for a plug-in, beside wasmd's (an embedder's: embedder.py)."""

    def provides(self, module: str, name: str) -> bool: ...

    def define(self, linker: wasmtime.Linker, module: wasmtime.Module, plugin: str) -> None: ...


@dataclass
class HostContext:
    """Per plug-in version: what its host functions need. ``plugins`` finds the callee of a
    ``wasmd.call`` (None: the import answers ``unavailable``)."""

    plugin: str
    config: dict[str, str]
    on_event: EventSink | None = None
    plugins: PluginCalls | None = None  # nested.plugin_calls of the registry it is in
    # An embedder's own host functions (embedder.HostFunctionTable; wasmd.Loader's only).
    host_functions: Imports | None = None
    log: logging.Logger = field(init=False)
    budget: RateLimit = field(init=False)

    def __post_init__(self) -> None:
        self.log = logging.getLogger(f"wasmd.plugin.{self.plugin}")
        self.budget = RateLimit(LOG_LINES_PER_SECOND)


class RateLimit:
    """A token bucket shared by a plug-in's instances: a guest that logs or emits in a
    tight loop gets its first lines through, then a count of what was dropped."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.tokens = float(per_second)
        self.stamp = time.monotonic()
        self.dropped = 0
        self.reported = 0.0
        self.lock = threading.Lock()

    def take(self) -> tuple[bool, int]:
        """(allowed, lines dropped to report now): drops are reported at most once a second."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.per_second, self.tokens + (now - self.stamp) * self.per_second)
            self.stamp = now
            allowed = self.tokens >= 1
            if allowed:
                self.tokens -= 1
            else:
                self.dropped += 1
            report = 0
            if self.dropped and now - self.reported >= 1:
                report, self.dropped, self.reported = self.dropped, 0, now
            return allowed, report


def _read_text(caller: wasmtime.Caller, ptr: int, length: int) -> str:
    """A guest's UTF-8 message, cut to MAX_TEXT bytes (a long message is still a message)."""
    cut = (length & 0xFFFFFFFF) > MAX_TEXT
    data = _read(caller, ptr, MAX_TEXT if cut else length, MAX_TEXT)
    text = data.decode("utf-8", errors="replace")
    return text + f"... ({length & 0xFFFFFFFF} bytes, cut to {MAX_TEXT})" if cut else text


def _read(caller: wasmtime.Caller, ptr: int, length: int, limit: int) -> bytes:
    """Guest bytes [ptr, ptr+length), bounds-checked (Memory.read would clamp silently)."""
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise ValueError("the module exports no memory")
    ptr &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if length > limit:
        raise ValueError(f"{length} bytes is over the limit of {limit}")
    if ptr + length > memory.data_len(caller):
        raise ValueError(f"bytes {ptr}..{ptr + length} are outside the guest's memory")
    return bytes(memory.read(caller, ptr, ptr + length))


def host_function(name: str, fallback: Any = None) -> Callable[[HostFunction], HostFunction]:
    """Make ``func`` safe to hand to wasmtime as the host import ``name``.

    Nothing it raises reaches wasmtime-py (see the module docstring): the first failure of
    a call is recorded in ``call_state.fault`` (the call is answered as an ``abi_violation``
    trap, and the instance replaced) and logged; the guest gets ``fallback`` back.
    """

    def wrap(func: HostFunction) -> HostFunction:
        @functools.wraps(func)
        def guarded(*args: Any) -> Any:
            try:
                return func(*args)
            except BaseException as exc:  # anything, or it reaches wasmtime-py
                _fault(name, exc)
                return fallback

        return guarded  # type: ignore[return-value]

    return wrap


def _fault(name: str, exc: BaseException) -> None:
    if isinstance(exc, wasmtime.Trap | wasmtime.WasmtimeError) and call_state.guest_trap is None:
        call_state.guest_trap = exc
    if call_state.fault is not None:
        return  # only the first fault of a call: a guest looping on a misuse logs once
    if isinstance(exc, Exception):
        call_state.fault = f"host import {name} was misused: {exc}"
        log.debug("%s", call_state.fault)
    else:  # not a misuse a guest can cause: a bug of ours, worth a traceback
        call_state.fault = f"host import {name} failed: {exc!r}"
        log.error("host import %s raised %r", name, exc, exc_info=exc)


def _log(ctx: HostContext) -> Callable[..., None]:
    @host_function("wasmd.log")
    def log(caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
        log_line(ctx, _LOG_LEVELS.get(level, logging.INFO), _read_text(caller, ptr, length))

    return log


def log_line(ctx: HostContext, level: int, text: str) -> None:
    """A guest's log line at ``level`` (a ``logging`` level), within the plug-in's budget."""
    allowed, dropped = ctx.budget.take()
    if dropped:
        ctx.log.warning(
            "(%d log lines or events dropped: over %d a second)",
            dropped,
            LOG_LINES_PER_SECOND,
        )
    if allowed:
        ctx.log.log(level, "%s", text.rstrip("\n"))


def _emit(ctx: HostContext) -> Callable[..., None]:
    @host_function("wasmd.emit")
    def emit(caller: wasmtime.Caller, ptr: int, length: int) -> None:
        emit_event(ctx, _read(caller, ptr, length, MAX_EVENT))

    return emit


def emit_event(ctx: HostContext, raw: bytes) -> None:
    """A guest's custom event (one msgpack map, at most MAX_EVENT bytes), within its budget."""
    if len(raw) > MAX_EVENT:
        raise ValueError(f"{len(raw)} bytes is over the limit of {MAX_EVENT}")
    data = _decode_event(raw)
    allowed, _ = ctx.budget.take()
    if allowed and ctx.on_event is not None:
        ctx.on_event("plugin.custom", {"plugin": ctx.plugin, "data": data})


def _decode_event(raw: bytes) -> dict[Any, Any]:
    data = _decode_bounded(raw, MAX_EVENT_CONTAINERS, "the event")
    if not isinstance(data, dict):
        raise ValueError(f"the event must be a msgpack map, got {type(data).__name__}")
    return data


def _decode_bounded(raw: bytes, max_containers: int, what: str) -> Any:
    """One msgpack value holding at most ``max_containers`` maps and arrays: each costs the
    host some 60 bytes or more for one byte of the guest's."""
    containers = 0

    def count(container: Any) -> Any:
        nonlocal containers
        containers += 1
        if containers > max_containers:
            raise ValueError(f"{what} has more than {max_containers} maps and arrays")
        return container

    try:
        return msgpack.unpackb(raw, strict_map_key=False, list_hook=count, object_hook=count)
    except ValueError as exc:
        if "maps and arrays" in str(exc):
            raise
        raise ValueError(f"{what} is not one msgpack value ({type(exc).__name__})") from None
    except Exception as exc:
        raise ValueError(f"{what} is not one msgpack value ({type(exc).__name__})") from None


def _error(ctx: HostContext) -> Callable[..., None]:
    @host_function("wasmd.error")
    def error(caller: wasmtime.Caller, ptr: int, length: int) -> None:
        text = _read_text(caller, ptr, length)
        call_state.guest_error = text or "the plug-in reported an error"

    return error


def _config_get(ctx: HostContext) -> Callable[..., int]:
    @host_function("wasmd.config_get", fallback=-1)
    def config_get(caller: wasmtime.Caller, kptr: int, klen: int) -> int:
        key = _read(caller, kptr, klen, MAX_TEXT).decode("utf-8")
        value = ctx.config.get(key)
        if value is None:
            return -1
        return write_guest_bytes(caller, value.encode())

    return config_get


# wasmd.call nests at most this deep; past it, resource_exhausted (runtime/nested.py).
MAX_CALL_DEPTH = 8


class PluginCalls(Protocol):
    """What a plug-in's ``wasmd.call`` reaches (``nested.plugin_calls``): injected, so that
    this module, which the pool's modules import, imports nothing of the pool's."""

    def __call__(
        self, caller: str, method: str, params: list[Any], *, deadline_at: float | None, outer: Any
    ) -> tuple[WasmdError | None, Any]: ...


# A wasmd.call's params, encoded, at most, and the maps and arrays in them: what the guest
# can make the host hold decoded stays within a few tens of MiB.
MAX_CALL_ARGS = 1024 * 1024
MAX_CALL_CONTAINERS = 65_536
# Its answer, encoded, at most (a request's default message size).
MAX_CALL_ANSWER = 16 * 1024 * 1024


def _call(ctx: HostContext) -> Callable[..., int]:
    @host_function("wasmd.call", fallback=0)
    def call(caller: wasmtime.Caller, nptr: int, nlen: int, aptr: int, alen: int) -> int:
        method = _read(caller, nptr, nlen, MAX_TEXT).decode("utf-8")
        params = _decode_params(_read(caller, aptr, alen, MAX_CALL_ARGS))
        error: WasmdError | None
        if ctx.plugins is None:
            error, result = WasmdError(ErrorCode.UNAVAILABLE, "no plug-ins to call here"), None
        elif call_state.depth >= MAX_CALL_DEPTH:
            error = WasmdError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"plug-in calls nested more than {MAX_CALL_DEPTH} deep",
            )
            result = None
        else:
            saved = call_state.save()
            call_state.depth += 1
            try:
                error, result = ctx.plugins(
                    ctx.plugin,
                    method,
                    params,
                    deadline_at=call_state.deadline_at,
                    outer=call_state.cancellable,
                )
            finally:
                call_state.restore(saved)
        answer = [None if error is None else error.to_wire(), result]
        encoded = msgpack.packb(answer, use_bin_type=True)
        if len(encoded) > MAX_CALL_ANSWER:
            raise ValueError(f"the answer is over the limit of {MAX_CALL_ANSWER} bytes")
        try:
            if call_state.over() is None:
                return write_guest_bytes(caller, encoded)
        except Exception:
            if call_state.over() is None:
                raise
        # The callee used up the caller's time (or the caller was cancelled meanwhile): the
        # caller's wasmd_alloc would be ended by the epoch guard; the caller's call ends.
        call_state.ended = call_state.over()
        return 0

    return call


def caller_peer() -> Peer | None:
    """The socket peer of the request the running call serves (a nested call's: the request
    its chain began with); None in-process (a ``Loader``) and in start code."""
    call = call_state.cancellable
    return None if call is None else call.peer


def _caller_field(field: str) -> Callable[[HostContext], Callable[..., int]]:
    def factory(ctx: HostContext) -> Callable[..., int]:
        @host_function(f"wasmd.caller_{field}", fallback=-1)
        def caller_id(caller: wasmtime.Caller) -> int:
            peer = caller_peer()
            return -1 if peer is None else int(getattr(peer, field))

        return caller_id

    return factory


def _decode_params(raw: bytes) -> list[Any]:
    params = _decode_bounded(raw, MAX_CALL_CONTAINERS, "the params")
    if not isinstance(params, list):
        raise ValueError(f"the params must be a msgpack array, got {type(params).__name__}")
    return params


def write_guest_bytes(caller: wasmtime.Caller, data: bytes) -> int:
    """Place ``data`` in guest memory through its ``wasmd_alloc``; ``ptr << 32 | len``.
    Empty data is ``0`` (no allocation: ``wasmd_alloc(0)`` need not be supported)."""
    if not data:
        return 0
    alloc, memory = caller.get("wasmd_alloc"), caller.get("memory")
    if not isinstance(alloc, wasmtime.Func) or not isinstance(memory, wasmtime.Memory):
        raise ValueError("the module must export wasmd_alloc and memory")
    ptr = int(alloc(caller, len(data))) & 0xFFFFFFFF
    memory.write(caller, data, ptr)
    return (ptr << 32) | len(data)


# One import: (params, results, factory)
ImportSpec = tuple[
    list[wasmtime.ValType], list[wasmtime.ValType], Callable[[HostContext], Callable[..., Any]]
]
# name -> its ImportSpec
HOST_IMPORTS: dict[str, ImportSpec] = {
    "log": ([_I32, _I32, _I32], [], _log),
    "emit": ([_I32, _I32], [], _emit),
    "error": ([_I32, _I32], [], _error),
    "config_get": ([_I32, _I32], [_I64], _config_get),
    "call": ([_I32, _I32, _I32, _I32], [_I64], _call),
    # Who made the request this call serves (-1 without a socket peer): docs/abi.md.
    "caller_uid": ([], [_I64], _caller_field("uid")),
    "caller_gid": ([], [_I64], _caller_field("gid")),
    "caller_pid": ([], [_I64], _caller_field("pid")),
}


# name -> a definer that links that import its own way (fast_send.py); it answers False to
# leave it to ``Linker.define_func`` with the factory of HOST_IMPORTS.
HOST_DEFINERS: dict[
    str, Callable[[wasmtime.Linker, str, str, wasmtime.FuncType, HostContext], bool]
] = {}


def define_host_imports(
    linker: wasmtime.Linker,
    module: wasmtime.Module,
    ctx: HostContext,
    table: dict[str, ImportSpec] = HOST_IMPORTS,
) -> None:
    """Define the ``wasmd`` imports of ``table`` that ``module`` uses; a wrong signature fails
    the load. (The state imports have their own table, in kv.py.)"""
    for item in module.imports:
        # Extism plug-ins' own host functions come from extism:host/user: where a name
        # agrees with one of ours (and its type too), it gets ours; else a trapping stub.
        if item.module not in ("wasmd", "extism:host/user") or item.name not in table:
            continue
        params, results, factory = table[item.name]
        expected = wasmtime.FuncType(params, results)
        actual = item.type
        matches = isinstance(actual, wasmtime.FuncType) and (
            [str(p) for p in actual.params],
            [str(r) for r in actual.results],
        ) == ([str(p) for p in params], [str(r) for r in results])
        if not matches and item.module != "wasmd":
            continue  # a user host function that only shares a name: left to trap
        if not matches:
            raise PluginLoadError(
                ctx.plugin,
                f"import wasmd::{item.name} must be a function "
                f"({', '.join(map(str, params))}) -> ({', '.join(map(str, results))})",
            )
        definer = HOST_DEFINERS.get(item.name) if table is HOST_IMPORTS else None
        if definer is not None and definer(linker, item.module, item.name, expected, ctx):
            continue
        linker.define_func(item.module, item.name, expected, factory(ctx), access_caller=True)
