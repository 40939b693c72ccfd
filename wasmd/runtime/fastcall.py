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
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import wasmtime

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
        "_param_fields",
        "_params",
        "_result_fields",
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
        self._param_fields = tuple(_KINDS[kind][1] for kind in params)
        self._result_fields = tuple(_KINDS[kind][1] for kind in results)
        self._trap = _TRAP_PTR()
        self._trap_ref = ctypes.byref(self._trap)

    def __call__(self, *args: Any) -> Any:
        params = self._params
        for i, field in enumerate(self._param_fields):
            setattr(params[i].of, field, args[i])
        error = _func_call(
            self._ctx,
            self._func,
            params,
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
            trap = wasmtime.Trap._from_ptr(self._trap)  # takes ownership of the pointer
            self._trap = _TRAP_PTR()
            self._trap_ref = ctypes.byref(self._trap)
            raise trap
        fields = self._result_fields
        if not fields:
            return None
        results = self._results
        if len(fields) == 1:
            return getattr(results[0].of, fields[0])
        return [getattr(results[i].of, field) for i, field in enumerate(fields)]


def make_caller(
    store: wasmtime.Store, func: wasmtime.Func, params: Sequence[str], results: Sequence[str]
) -> Caller:
    """The fastest way this wasmtime-py allows to call ``func`` of ``store``."""
    if ENABLED:
        return FastCaller(store, func, params, results)
    return lambda *args: func(store, *args)


def set_deadline(store: wasmtime.Store, ticks: int) -> None:
    if ENABLED:
        _set_deadline(store._context(), ticks)
    else:
        store.set_epoch_deadline(ticks)
