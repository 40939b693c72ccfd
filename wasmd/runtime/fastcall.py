"""Calling exports through wasmtime's C API directly: about 1 µs instead of 18.

wasmtime-py's public ``Func.__call__`` looks up the function's type, converts every value
through ``Val`` objects and builds fresh ctypes arrays on every call. A ``FastCaller`` does
that work once per (instance, export): it keeps the store's context pointer, the function
handle, and argument and result arrays with their kinds already set, so a call only stores
the numbers, calls ``wasmtime_func_call`` and reads the results.

This leans on wasmtime-py's private ``_bindings`` module, so it is used only with the
wasmtime-py versions it was tested against (``TESTED``); with any other, ``make_caller``
returns the public API, and ``WASMD_FAST_CALLS=0`` forces that too. Type checks stay where
they were (the ABI's ``convert`` runs before either path), and traps are raised as the same
``wasmtime.Trap`` / ``WasmtimeError`` objects the public API raises: the test suite runs
through both paths to prove it.

A host function that raises leaves its exception in wasmtime-py's ``LAST_EXCEPTION`` global,
where the public API would raise it from the next call on any thread that traps. wasmd's host
functions never raise (host.py), and a fast call that ends in a trap clears the global all
the same, so nothing stale can outlive the call that left it.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any, Protocol

import wasmtime

from ..peers import Peer

TESTED = ("50.",)
SUPPORTED = version("wasmtime").startswith(TESTED)
# Read when an instance is made; the tests flip it to run every call both ways.
ENABLED = SUPPORTED and os.environ.get("WASMD_FAST_CALLS") != "0"

if SUPPORTED:
    from wasmtime import _bindings
    from wasmtime import _func as _wasmtime_func

    _func_call = _bindings._wasmtime_func_call
    _set_deadline = _bindings._wasmtime_context_set_epoch_deadline
    _VAL = _bindings.wasmtime_val_t
    _TRAP_PTR = ctypes.POINTER(_bindings.wasm_trap_t)
    _set_callback = _bindings._wasmtime_store_epoch_deadline_callback
    _export_get = _bindings._wasmtime_instance_export_get
    from wasmtime._extern import wrap_extern as _wrap_extern

    _error_new = _bindings._wasmtime_error_new
    _CALLBACK = ctypes.CFUNCTYPE(
        ctypes.c_size_t,
        ctypes.POINTER(_bindings.wasmtime_context_t),
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(_bindings.wasmtime_update_deadline_kind_t),
    )
    _NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a NULL function pointer

# wasmtime_valkind_t codes of the numeric types, and the union field each uses.
_KINDS = {"i32": (0, "i32"), "i64": (1, "i64"), "f32": (2, "f32"), "f64": (3, "f64")}

Caller = Callable[..., Any]


class FastCaller:
    """One export of one live instance, callable like ``func(store, *args)`` without store."""

    __slots__ = (
        "_ctx",
        "_func",
        "_nparams",
        "_nresults",
        "_param_slots",
        "_params",
        "_result_slots",
        "_results",
        "_trap",
        "_trap_ref",
    )

    def __init__(
        self,
        store: wasmtime.Store,
        func: wasmtime.Func,
        params: Sequence[str],
        results: Sequence[str],
    ) -> None:
        self._ctx = store._context()
        self._func = ctypes.byref(func._func)
        self._nparams, self._nresults = len(params), len(results)
        self._params = (_VAL * max(1, len(params)))()
        self._results = (_VAL * max(1, len(results)))()
        for i, kind in enumerate(params):
            self._params[i].kind = _KINDS[kind][0]  # type: ignore[assignment]  # ctypes converts
        # Each value's union, looked up once: indexing a ctypes array makes a new object
        # every time (0.27 us a value, against 0.10 us through a kept one).
        self._param_slots = tuple(
            (self._params[i].of, _KINDS[kind][1]) for i, kind in enumerate(params)
        )
        self._result_slots = tuple(
            (self._results[i].of, _KINDS[kind][1]) for i, kind in enumerate(results)
        )
        self._trap = _TRAP_PTR()
        self._trap_ref = ctypes.byref(self._trap)

    def __call__(self, *args: Any) -> Any:
        for (union, field), value in zip(self._param_slots, args, strict=True):
            setattr(union, field, value)
        error = _func_call(
            self._ctx,
            self._func,
            self._params,
            self._nparams,
            self._results,
            self._nresults,
            self._trap_ref,
        )
        if error:
            _wasmtime_func.LAST_EXCEPTION = None
            raise wasmtime.WasmtimeError._from_ptr(error)
        if self._trap:
            _wasmtime_func.LAST_EXCEPTION = None
            trapped, self._trap = self._trap, _TRAP_PTR()
            self._trap_ref = ctypes.byref(self._trap)
            # Takes ownership of the pointer. Raised without a local naming it: the trap's
            # traceback holds this frame, and would hold it in a cycle.
            raise wasmtime.Trap._from_ptr(trapped)
        slots = self._result_slots
        if len(slots) == 1:
            union, field = slots[0]
            return getattr(union, field)
        if not slots:
            return None
        return [getattr(union, field) for union, field in slots]


def make_caller(
    store: wasmtime.Store, func: wasmtime.Func, params: Sequence[str], results: Sequence[str]
) -> Caller:
    """The fastest way this wasmtime-py allows to call ``func`` of ``store``."""
    if ENABLED:
        return FastCaller(store, func, params, results)
    return lambda *args: func(store, *args)


def export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> Any:
    """``instance``'s export ``name`` (a Func, Memory, ...), or None.

    ``Instance.exports`` lists every export through ``wasmtime_instance_export_nth``, which
    costs time in proportion to the index: quadratic in all, 2.5 s for 10,000 exports, paid by
    every instantiation (after each trap, per call in per-call mode). A lookup by name is not.
    """
    if not SUPPORTED:
        return instance.exports(store).get(name)
    encoded = name.encode()
    item = _bindings.wasmtime_extern_t()
    found = _export_get(
        store._context(),
        ctypes.byref(instance._instance),
        encoded,
        len(encoded),
        ctypes.byref(item),
    )
    return _wrap_extern(item) if found else None


def set_deadline(store: wasmtime.Store, ticks: int) -> None:
    if ENABLED:
        _set_deadline(store._context(), ticks)
    else:
        store.set_epoch_deadline(ticks)


class Cancellable(Protocol):
    """What an ``EpochGuard`` asks of the call it watches (the pool's ``Ticket``); what a
    nested call takes from the call it is made from (its ``peer``, None in-process)."""

    @property
    def cancelled(self) -> bool: ...

    @property
    def peer(self) -> Peer | None: ...


class EpochGuard:
    """Decides at every epoch tick whether the guest call running in its Store goes on.

    With wasmtime's epoch-deadline callback a Store does not trap when its deadline
    passes: the callback runs, on the thread running the guest, and either grants more
    ticks or ends the call with an error. wasmd gives one tick at a time and ends the call
    when its wall-clock ``deadline`` has passed ("timeout") or its ``call`` was cancelled
    ("cancelled"); ``ended`` tells the caller which, since both surface as the same
    ``WasmtimeError``. That makes cancellation possible at all: a running Store's deadline
    cannot be changed from another thread. Only on the tested wasmtime-py versions
    (``install_guard`` returns None elsewhere, and the deadline traps as before).
    """

    __slots__ = ("_callback", "call", "deadline", "ended")

    def __init__(self) -> None:
        self.deadline = 0.0
        self.call: Cancellable | None = None
        self.ended: str | None = None
        self._callback = _CALLBACK(self._on_tick)  # kept alive as long as the Store

    def arm(self, store: wasmtime.Store, deadline: float, call: Cancellable | None) -> None:
        """Watch the next guest call (or instantiation) of ``store``."""
        self.deadline, self.call, self.ended = deadline, call, None
        _set_deadline(store._context(), 1)

    def _on_tick(self, _ctx: Any, _data: Any, delta: Any, kind: Any) -> int:
        try:
            call = self.call
            if call is not None and call.cancelled:
                return self._end("cancelled")
            if time.monotonic() >= self.deadline:
                return self._end("timeout")
        except BaseException:  # never raise into wasmtime; the next tick decides again
            pass
        delta[0] = 1
        kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
        return 0

    def _end(self, why: str) -> int:
        self.ended = why
        error = _error_new(ctypes.create_string_buffer(f"wasmd: call {why}".encode()))
        return ctypes.cast(error, ctypes.c_void_p).value or 0


def install_guard(store: wasmtime.Store) -> EpochGuard | None:
    """An ``EpochGuard`` deciding ``store``'s epoch deadlines, where this wasmtime-py allows."""
    if not ENABLED:
        return None
    guard = EpochGuard()
    _set_callback(store.ptr(), guard._callback, None, _NO_FINALIZER)
    return guard
