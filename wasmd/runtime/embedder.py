"""Host functions an embedding program gives its plug-ins: ``wasmd.Loader(host_functions=...)``.

The embedder registers Python callables under module names of its own; a plug-in loaded by
that ``Loader`` may import them, and the linker defines the ones it imports
(``HostFunctionTable.define``, which ``linker.make_linker`` calls through the plug-in's
``HostContext``: the runtime's linking does not import this module). Each is declared with its
types, in one of two shapes (docs/embedding.md):

- ``core``: wasm numbers in and out. The import is a function of those types
  (``params``/``results``: ``i32``, ``i64``, ``f32``, ``f64``); the callable gets Python
  numbers and returns ``None``, one number, or a sequence of them.
- ``msgpack``: msgpack values in and out, as the msgpack ABI's guests already use
  ``wasmd.call``. The import is ``(ptr: i32, len: i32) -> i64``: the guest passes a msgpack
  array of params, the callable gets them as positional arguments, and its result, encoded,
  is written into guest memory through the guest's ``wasmd_alloc``; the guest gets
  ``ptr << 32 | len`` back (0 for no bytes).

What the callable raises never reaches wasmtime-py (its ``LAST_EXCEPTION`` global is shared
by every thread, DESIGN.md section 4): the guard catches it, the guest gets 0 back (nothing
for no results), and when the guest returns the call is answered ``[4, "host function
MODULE.NAME raised TYPE: message", {"kind": "abi_violation"}]`` and the instance replaced,
as for a misused ``wasmd`` import. A result of the wrong type is reported the same way.

The module names wasmd links itself cannot be given (``check_host_functions`` refuses them
when the ``Loader`` is made): ``wasmd`` (log, emit, error, config_get, call), Extism's
``extism:host/env`` and ``extism:host/user``, and WASI's. Components cannot import them yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import wasmtime

from ..errors import PluginLoadError
from ..values import integral, show_value
from .host import (
    MAX_CALL_ANSWER,
    MAX_CALL_ARGS,
    _decode_params,
    _fault,
    _read,
    call_state,
    write_guest_bytes,
)
from .traps import forget_traceback

log = logging.getLogger("wasmd.runtime")

NUMBER_TYPES = ("i32", "i64", "f32", "f64")
SHAPES = ("core", "msgpack")
# Module names whose imports wasmd itself links: an embedder may not define (or shadow) them.
RESERVED_MODULES = ("wasmd", "extism:host/env", "extism:host/user")
RESERVED_PREFIXES = ("wasi_", "wasi:")

_VALTYPES = {
    "i32": wasmtime.ValType.i32(),
    "i64": wasmtime.ValType.i64(),
    "f32": wasmtime.ValType.f32(),
    "f64": wasmtime.ValType.f64(),
}
_ZERO = {"i32": 0, "i64": 0, "f32": 0.0, "f64": 0.0}


@dataclass(frozen=True)
class HostFunction:
    """A Python callable a plug-in may import, with its types.

    ``HostFunction(double, params=["i64"], results=["i64"])`` for wasm numbers;
    ``HostFunction(lookup, shape="msgpack")`` for msgpack values (the import's type is then
    fixed: ``(i32, i32) -> i64``).
    """

    func: Callable[..., Any]
    params: Sequence[str] = ()
    results: Sequence[str] = ()
    shape: str = "core"

    def functype(self) -> wasmtime.FuncType:
        if self.shape == "msgpack":
            return wasmtime.FuncType([_VALTYPES["i32"]] * 2, [_VALTYPES["i64"]])
        return wasmtime.FuncType(
            [_VALTYPES[t] for t in self.params], [_VALTYPES[t] for t in self.results]
        )

    def signature(self) -> str:
        if self.shape == "msgpack":
            return "(i32, i32) -> (i64)"
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


# module name -> import name -> what it calls
HostFunctions = Mapping[str, Mapping[str, HostFunction]]


class HostFunctionTable:
    """An embedder's checked host functions, as the linker asks for them (``host.Imports``:
    the runtime reaches them through ``HostContext``, without importing this module)."""

    def __init__(self, functions: dict[str, dict[str, HostFunction]]) -> None:
        self.functions = functions

    def provides(self, module: str, name: str) -> bool:
        return name in self.functions.get(module, {})

    def define(self, linker: wasmtime.Linker, module: wasmtime.Module, plugin: str) -> None:
        define_host_functions(linker, module, plugin, self.functions)


def check_host_functions(given: HostFunctions) -> HostFunctionTable:
    """``given``, checked and copied; ``ValueError`` names the first problem."""
    checked: dict[str, dict[str, HostFunction]] = {}
    for module, functions in given.items():
        if not isinstance(module, str) or not module:
            raise ValueError(
                f"host_functions: a module name must be a non-empty string, got {module!r}"
            )
        if module in RESERVED_MODULES or module.startswith(RESERVED_PREFIXES):
            raise ValueError(
                f"host_functions: module {module!r} is linked by wasmd itself (its own "
                "imports, Extism's or WASI's) and cannot be given or shadowed; choose "
                "another module name"
            )
        checked[module] = {}
        for name, function in functions.items():
            where = f"host_functions[{module!r}][{name!r}]"
            if not isinstance(name, str) or not name:
                raise ValueError(f"host_functions[{module!r}]: a name must be a non-empty string")
            if not isinstance(function, HostFunction):
                raise ValueError(
                    f"{where} must be a wasmd.HostFunction (the callable with its types), "
                    f"got {type(function).__name__}"
                )
            if not callable(function.func):
                raise ValueError(f"{where}: func is not callable")
            if function.shape not in SHAPES:
                raise ValueError(
                    f"{where}: shape must be 'core' or 'msgpack', got {function.shape!r}"
                )
            types = (*function.params, *function.results)
            if function.shape == "msgpack" and types:
                raise ValueError(f"{where}: a msgpack host function declares no params or results")
            wrong = [t for t in types if t not in NUMBER_TYPES]
            if wrong:
                raise ValueError(f"{where}: {wrong[0]!r} is not one of {', '.join(NUMBER_TYPES)}")
            checked[module][name] = HostFunction(
                function.func, tuple(function.params), tuple(function.results), function.shape
            )
    return HostFunctionTable(checked)


def define_host_functions(
    linker: wasmtime.Linker, module: wasmtime.Module, plugin: str, functions: HostFunctions
) -> None:
    """Define the embedder's functions that ``module`` imports; a wrong type fails the load
    (an import of a name not given is left to trap when called, as any unknown import)."""
    for item in module.imports:
        name = item.name or ""
        if name not in functions.get(item.module, {}):
            continue
        function = functions[item.module][name]
        expected = function.functype()
        actual = item.type
        if not isinstance(actual, wasmtime.FuncType) or (
            [str(p) for p in actual.params],
            [str(r) for r in actual.results],
        ) != ([str(p) for p in expected.params], [str(r) for r in expected.results]):
            raise PluginLoadError(
                plugin, f"import {item.module}::{name} must be a function {function.signature()}"
            )
        label = f"{item.module}.{name}"
        if function.shape == "msgpack":
            linker.define_func(
                item.module,
                name,
                expected,
                _msgpack_guard(label, function.func),
                access_caller=True,
            )
        else:
            linker.define_func(item.module, name, expected, _core_guard(label, function))


def _raised(label: str, exc: BaseException) -> None:
    """Record the embedder's exception as the call's fault (only the first of a call)."""
    if call_state.fault is None:
        call_state.fault = f"host function {label} raised {type(exc).__name__}: {exc}"
        log.debug("%s", call_state.fault, exc_info=exc)
    # The exception may outlive the call (an embedder's prepared instance, say): its frames
    # would keep the guest's instance and Store alive with it.
    forget_traceback(exc)


def _core_guard(label: str, function: HostFunction) -> Callable[..., Any]:
    func, results = function.func, tuple(function.results)
    zeros = tuple(_ZERO[t] for t in results)
    fallback: Any = zeros[0] if len(zeros) == 1 else zeros or None

    def guarded(*args: Any) -> Any:
        try:
            value = func(*args)
        except BaseException as exc:  # anything, or it reaches wasmtime-py
            _raised(label, exc)
            return fallback
        try:
            return _results(value, results)
        except ValueError as exc:
            if call_state.fault is None:
                call_state.fault = f"host function {label} returned {exc}"
            return fallback

    return guarded


def _results(value: Any, types: tuple[str, ...]) -> Any:
    """``value`` as wasmtime takes the results ``types``; ``ValueError`` says what is wrong."""
    if not types:
        if value is not None:
            raise ValueError(f"{show_value(value)} for no results")
        return None
    if len(types) == 1:
        return _number(value, types[0])
    if not isinstance(value, list | tuple) or len(value) != len(types):
        raise ValueError(f"{show_value(value)} for {len(types)} results ({', '.join(types)})")
    return tuple(_number(v, t) for v, t in zip(value, types, strict=True))


def _number(value: Any, wasm_type: str) -> int | float:
    kind = type(value)
    if wasm_type in ("f32", "f64"):
        if kind is int or kind is float:
            return float(value)
    else:
        whole = integral(value)
        bits = 32 if wasm_type == "i32" else 64
        if whole is not None and -(1 << (bits - 1)) <= whole < (1 << bits):
            # wasmtime takes the signed reading; the unsigned upper half maps onto it
            return whole - (1 << bits) if whole >= 1 << (bits - 1) else whole
    raise ValueError(f"{show_value(value)} for an {wasm_type} result")


def _msgpack_guard(label: str, func: Callable[..., Any]) -> Callable[..., int]:
    def guarded(caller: wasmtime.Caller, ptr: int, length: int) -> int:
        try:
            params = _decode_params(_read(caller, ptr, length, MAX_CALL_ARGS))
        except BaseException as exc:  # the guest's misuse: a bad pointer, not msgpack
            _fault(label, exc)
            return 0
        try:
            result = func(*params)
        except BaseException as exc:
            _raised(label, exc)
            return 0
        try:
            encoded = msgpack.packb(result, use_bin_type=True)
        except Exception as exc:
            if call_state.fault is None:
                call_state.fault = (
                    f"host function {label} returned what msgpack cannot encode: {exc}"
                )
            return 0
        if len(encoded) > MAX_CALL_ANSWER:
            if call_state.fault is None:
                call_state.fault = (
                    f"host function {label} returned {len(encoded)} bytes, over the limit of "
                    f"{MAX_CALL_ANSWER}"
                )
            return 0
        try:
            return write_guest_bytes(caller, encoded)
        except BaseException as exc:  # the guest's wasmd_alloc trapped, or is missing
            _fault(label, exc)
            return 0

    return guarded
