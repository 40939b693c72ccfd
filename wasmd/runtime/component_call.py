"""Calling a component's function with its types looked up once, not on every call.

wasmtime-py's component ``Func.__call__`` asks wasmtime for the function's type, and builds a
Python wrapper for each param's type, on every call: about 80% of a small call's cost. A
``ComponentCaller`` does that once per (instance, function) and then makes the same calls
into wasmtime's C API that ``Func.__call__`` makes: lower each param with its type's
``convert_to_c``, ``wasmtime_component_func_call`` through wasmtime-py's ``enter_wasm`` (which
raises the error, or an exception a host function left in its ``LAST_EXCEPTION``), lift the
result, free the lowered params. Like fastcall.py, it leans on wasmtime-py's private modules
and is used only where fastcall is (``fastcall.ENABLED``); elsewhere the public API is.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import component as wc

from . import fastcall

if fastcall.SUPPORTED:
    from wasmtime import _ffi as ffi
    from wasmtime.component._enter import enter_wasm


class ComponentCaller:
    """One function of one component instance, callable as ``caller(*args)``."""

    __slots__ = ("_func", "_params", "_result", "_store")

    def __init__(self, store: wasmtime.Store, func: wc.Func) -> None:
        func_type = func.type(store)
        self._store = store
        self._func = ctypes.byref(func._func)
        self._params = tuple(ty for _, ty in func_type.params)
        self._result = func_type.result

    def __call__(self, *args: Any) -> Any:
        store, params = self._store, self._params
        if len(args) != len(params):
            raise TypeError(f"{len(args)} params given, {len(params)} expected")
        lowered = (ffi.wasmtime_component_val_t * max(1, len(params)))()
        count = 0
        try:
            for ty, value in zip(params, args, strict=True):
                ty.convert_to_c(store, value, ctypes.pointer(lowered[count]))
                count += 1
            result_type = self._result
            result = ffi.wasmtime_component_val_t()
            result_ref = None if result_type is None else ctypes.byref(result)
            call, func, context = ffi.wasmtime_component_func_call, self._func, store._context()

            def run() -> Any:
                return call(func, context, lowered, count, result_ref, int(result_ref is not None))

            enter_wasm(run)
            return None if result_type is None else result_type.convert_from_c(result)
        finally:
            for i in range(count):
                ffi.wasmtime_component_val_delete(ctypes.byref(lowered[i]))


def make_component_caller(store: wasmtime.Store, func: wc.Func) -> Callable[..., Any]:
    """The fastest way this wasmtime-py allows to call ``func`` of ``store``."""
    if fastcall.ENABLED:
        return ComponentCaller(store, func)
    return lambda *args: func(store, *args)
