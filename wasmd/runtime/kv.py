"""The state imports, module ``wasmd``: kv_get, kv_set, kv_delete, kv_next (docs/abi.md), and
the per-call transaction they run in.

Theory of operation. An ``Instance`` of a plug-in that has state makes its ABI's call
``atomic``: every call runs in ``transaction``, a frame pushed on this thread's stack for the
call's length. The imports use the top frame: the first one takes the namespace's lock and
begins a transaction (``Namespace.acquire``, waiting no longer than the call's deadline or
cancellation); when
the call answers a result the frame commits, before the answer is sent; any exception (the
guest's error, a trap, a timeout, a cancellation) rolls it back. A stack, because a call
may call another plug-in (``wasmd.call``) on the same thread: each call has its own frame.
A plug-in calling itself that way while holding its state would wait for itself, and two
plug-ins that call each other while each holds its own state would wait for each other: the
import whose wait would close such a cycle answers ``KV_BUSY`` at once instead.

A refusal never traps: the guest gets a negative code (below). Pointers outside the guest's
memory are a misuse, as for every import (``abi_violation``). A store failure during the
call (a full disk) answers ``KV_FAILED`` to the guest and fails the call as
``resource_exhausted`` (or ``unavailable``), whatever the guest then returns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import wasmtime

from ..manifest import StatePolicy
from ..statestore import MAX_KEY, MAX_VALUE, Namespace, StateError, describe_sqlite
from .host import HostContext, ImportSpec, _read, call_state, host_function
from .signatures import ImportInfo
from .traps import CallEnded

# What the imports answer besides a length or a count (docs/abi.md, "State").
KV_ABSENT = -1  # kv_get, kv_next: no such key
KV_QUOTA = -2  # kv_set: the plug-in's [state] max_bytes or max_keys would be exceeded
KV_UNAVAILABLE = -3  # no store: [state] enabled = false, no state_dir, or outside a call
KV_TOO_LARGE = -4  # a key over MAX_KEY or a value over MAX_VALUE bytes
KV_FAILED = -5  # the store failed (a full disk): the call is answered with that error
KV_BUSY = -6  # waiting would deadlock: held by a call that waits for this one (wasmd.call)

_I32 = wasmtime.ValType.i32()
T = TypeVar("T")


class _Frame:
    """One call's hold on its namespace."""

    __slots__ = ("ended", "failure", "holding", "namespace", "quota")

    def __init__(self, namespace: Namespace | None, quota: StatePolicy) -> None:
        self.namespace = namespace
        self.quota = quota
        self.holding = False
        self.failure: StateError | None = None
        self.ended: str | None = None  # "timeout"/"cancelled" while waiting for the state


class _Frames(threading.local):
    def __init__(self) -> None:
        self.stack: list[_Frame] = []


_frames = _Frames()


@contextmanager
def transaction(namespace: Namespace | None, quota: StatePolicy) -> Iterator[None]:
    """Run one call atomically on ``namespace`` (module docstring): commit if the body ends
    without an exception, else roll back. Raises ``StateError`` if the commit fails."""
    frame = _Frame(namespace, quota)
    stack = _frames.stack
    stack.append(frame)
    try:
        yield
    except BaseException:
        stack.pop()
        if frame.holding:
            assert namespace is not None
            namespace.rollback()
        if frame.ended is not None:
            # The call ended while it waited for the state; whatever the guest did with
            # the refusal after that (a trap, most likely) is not the call's outcome.
            raise CallEnded(frame.ended) from None
        raise
    stack.pop()
    if frame.failure is not None:  # the store failed during the call: nothing is kept
        if frame.holding:
            assert namespace is not None
            namespace.rollback()
        raise frame.failure
    if frame.holding:
        assert namespace is not None
        namespace.commit()


def atomic(
    call: Callable[[Any, str, Any], Any], namespace: Namespace | None, quota: StatePolicy
) -> Callable[[Any, str, Any], Any]:
    """``call`` (an ABI's ``call(instance, export, args)``) run as one ``transaction``."""

    def call_atomically(instance: Any, export: str, args: Any) -> Any:
        with transaction(namespace, quota):
            return call(instance, export, args)

    return call_atomically


def _namespace() -> tuple[_Frame | None, int]:
    """The running call's frame holding its namespace's lock, or (None, a refusal code)."""
    stack = _frames.stack
    if not stack:
        return None, KV_UNAVAILABLE  # start code: no call, no transaction
    frame = stack[-1]
    namespace = frame.namespace
    if namespace is None:
        return None, KV_UNAVAILABLE
    if frame.failure is not None:
        return None, KV_FAILED
    if frame.holding:
        return frame, 0
    try:
        ended = namespace.acquire(call_state.over)  # releases the lock if BEGIN fails
    except sqlite3.Error as exc:
        return None, _store_failed(frame, exc)
    if ended == "deadlock":
        return None, KV_BUSY
    if ended is not None:
        call_state.ended = frame.ended = ended  # the epoch guard ends the guest; the call so
        return None, KV_UNAVAILABLE
    frame.holding = True
    return frame, 0


def _store_failed(frame: _Frame, exc: sqlite3.Error) -> int:
    code, why = describe_sqlite(exc)
    assert frame.namespace is not None
    frame.failure = StateError(code, f"state of {frame.namespace.name} not saved: {why}")
    return KV_FAILED


def _key(caller: wasmtime.Caller, ptr: int, length: int) -> bytes | None:
    if length & 0xFFFFFFFF > MAX_KEY:
        return None
    return _read(caller, ptr, length, MAX_KEY)


def _answer_bytes(
    caller: wasmtime.Caller, ptr: int, capacity: int, refused: int, data: bytes | None
) -> int:
    """What kv_get and kv_next answer: the refusal, KV_ABSENT, or the length of ``data``, of
    which at most ``capacity`` bytes are copied to ``ptr``."""
    if refused:
        return refused
    if data is None:
        return KV_ABSENT
    _write(caller, ptr, capacity, data)
    return len(data)


def _write(caller: wasmtime.Caller, ptr: int, capacity: int, data: bytes) -> None:
    """Copy at most ``capacity`` bytes of ``data`` to guest memory at ``ptr``."""
    count = min(len(data), capacity & 0xFFFFFFFF)
    if not count:
        return
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise ValueError("the module exports no memory")
    ptr &= 0xFFFFFFFF
    if ptr + count > memory.data_len(caller):
        raise ValueError(f"bytes {ptr}..{ptr + count} are outside the guest's memory")
    memory.write(caller, data[:count], ptr)


def with_state(operation: Callable[[Namespace, StatePolicy], T]) -> tuple[int, T | None]:
    """``operation`` on the running call's namespace, under its lock: (0, what it answered),
    or (a refusal code, None). A store failure is recorded on the call (module docstring)."""
    frame, refused = _namespace()
    if frame is None:
        return refused, None
    assert frame.namespace is not None
    try:
        return 0, operation(frame.namespace, frame.quota)
    except sqlite3.Error as exc:
        return _store_failed(frame, exc), None


def _kv_get(ctx: HostContext) -> Callable[..., int]:
    @host_function("wasmd.kv_get", fallback=KV_FAILED)
    def kv_get(caller: wasmtime.Caller, kptr: int, klen: int, vptr: int, vcap: int) -> int:
        key = _key(caller, kptr, klen)
        if key is None:
            return KV_TOO_LARGE
        refused, value = with_state(lambda namespace, _: namespace.get(key))
        return _answer_bytes(caller, vptr, vcap, refused, value)

    return kv_get


def _kv_set(ctx: HostContext) -> Callable[..., int]:
    @host_function("wasmd.kv_set", fallback=KV_FAILED)
    def kv_set(caller: wasmtime.Caller, kptr: int, klen: int, vptr: int, vlen: int) -> int:
        key = _key(caller, kptr, klen)
        if key is None or vlen & 0xFFFFFFFF > MAX_VALUE:
            return KV_TOO_LARGE
        value = _read(caller, vptr, vlen, MAX_VALUE)
        refused, stored = with_state(lambda namespace, quota: namespace.put(key, value, quota))
        return refused or (0 if stored else KV_QUOTA)

    return kv_set


def _kv_delete(ctx: HostContext) -> Callable[..., int]:
    @host_function("wasmd.kv_delete", fallback=KV_FAILED)
    def kv_delete(caller: wasmtime.Caller, kptr: int, klen: int) -> int:
        key = _key(caller, kptr, klen)
        if key is None:
            return KV_TOO_LARGE
        refused, deleted = with_state(lambda namespace, _: namespace.delete(key))
        return refused or int(bool(deleted))

    return kv_delete


def _kv_next(ctx: HostContext) -> Callable[..., int]:
    @host_function("wasmd.kv_next", fallback=KV_FAILED)
    def kv_next(
        caller: wasmtime.Caller,
        pptr: int,
        plen: int,
        aptr: int,
        alen: int,
        kptr: int,
        kcap: int,
    ) -> int:
        prefix, after = _key(caller, pptr, plen), _key(caller, aptr, alen)
        if prefix is None or after is None:
            return KV_TOO_LARGE
        refused, key = with_state(lambda namespace, _: namespace.next_key(prefix, after))
        return _answer_bytes(caller, kptr, kcap, refused, key)

    return kv_next


# name -> (params, results, factory), as host.HOST_IMPORTS
KV_IMPORTS: dict[str, ImportSpec] = {
    "kv_get": ([_I32] * 4, [_I32], _kv_get),
    "kv_set": ([_I32] * 4, [_I32], _kv_set),
    "kv_delete": ([_I32] * 2, [_I32], _kv_delete),
    "kv_next": ([_I32] * 6, [_I32], _kv_next),
}


def uses_state(imports: Iterable[ImportInfo]) -> bool:
    """Whether a module imports any of the state imports (only such a plug-in gets a store).
    An Extism plug-in's user host functions of the same names and types are ours too
    (host.define_host_imports)."""
    return any(i.module in ("wasmd", "extism:host/user") and i.name in KV_IMPORTS for i in imports)
