"""How a request reaches an export: ABI detection and the core ABI's typed conversions.

The core ABI maps a request's params positionally onto an export's numeric params. Ints
are range-checked for their type and never wrapped (an i32 accepts -2**31..2**32-1, the
union of its signed and unsigned readings); bools are refused even though Python counts
them as ints; floats are accepted for f32/f64 only. Results come back as nil for none, the
value for one, and an array for several. The other ABIs (DESIGN.md section 3) are
detected here so that `wasmd check` and `wasmd.describe` can name them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import wasmtime

from ..errors import ErrorCode, WasmdError

NUMERIC_TYPES = ("i32", "i64", "f32", "f64")
EXTISM_MODULE = "extism:host/env"

_F32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]


@dataclass(frozen=True, slots=True)
class ExportSignature:
    """An exported function: its wasm types, and whether the core ABI can call it."""

    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]

    @property
    def callable(self) -> bool:
        return all(t in NUMERIC_TYPES for t in (*self.params, *self.results))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": list(self.params),
            "results": list(self.results),
            "callable": self.callable,
        }


@dataclass(frozen=True, slots=True)
class ImportInfo:
    module: str
    name: str
    kind: str  # func | memory | table | global

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "name": self.name, "kind": self.kind}


def _kind(extern_type: object) -> str:
    return {
        "FuncType": "func",
        "MemoryType": "memory",
        "TableType": "table",
        "GlobalType": "global",
    }.get(type(extern_type).__name__, "other")


def function_exports(module: wasmtime.Module) -> dict[str, ExportSignature]:
    exports = {}
    for export in module.exports:
        ty = export.type
        if isinstance(ty, wasmtime.FuncType):
            exports[export.name] = ExportSignature(
                export.name,
                tuple(str(p) for p in ty.params),
                tuple(str(r) for r in ty.results),
            )
    return exports


def module_imports(module: wasmtime.Module) -> tuple[ImportInfo, ...]:
    return tuple(ImportInfo(i.module, i.name or "", _kind(i.type)) for i in module.imports)


def detect_abi(module: wasmtime.Module, functions: dict[str, ExportSignature]) -> str:
    """DESIGN.md section 3's order: extism imports, then wasmd_alloc, then a lone _start.

    ``functions`` is ``function_exports(module)``, computed once per load by the caller:
    walking the exports costs milliseconds for a module with thousands of them.
    """
    if any(i.module == EXTISM_MODULE for i in module.imports):
        return "extism"
    if "wasmd_alloc" in functions:
        return "msgpack"
    if set(functions) == {"_start"}:
        return "command"
    return "core"


# --- core ABI parameter conversion -------------------------------------------------------

Converter = Callable[[Any, int], Any]


def _bad(position: int, type_name: str, value: Any, why: str) -> WasmdError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return WasmdError(
        ErrorCode.INVALID_PARAMS, f"param {position} ({type_name}): {why}, got {shown}"
    )


def _int_converter(bits: int) -> Converter:
    low, high = -(1 << (bits - 1)), (1 << bits) - 1
    wrap, signed_max = 1 << bits, (1 << (bits - 1)) - 1
    type_name = f"i{bits}"

    def convert(value: Any, position: int) -> int:
        if type(value) is not int:  # exact type: bool is an int subclass and must be refused
            raise _bad(position, type_name, value, "expected an integer")
        if not low <= value <= high:
            raise _bad(position, type_name, value, f"out of range {low}..{high}")
        # wasmtime takes the signed reading; the unsigned upper half maps onto it bit for bit
        return value - wrap if value > signed_max else value

    return convert


def _float_converter(type_name: str, limit: float | None) -> Converter:
    def convert(value: Any, position: int) -> float:
        kind = type(value)
        if kind is not float and kind is not int:
            raise _bad(position, type_name, value, "expected a number")
        number = float(value)
        if limit is not None and math.isfinite(number) and abs(number) > limit:
            raise _bad(position, type_name, value, "out of range for f32")
        return number

    return convert


CONVERTERS: dict[str, Converter] = {
    "i32": _int_converter(32),
    "i64": _int_converter(64),
    "f32": _float_converter("f32", _F32_MAX),
    "f64": _float_converter("f64", None),
}


@dataclass(frozen=True, slots=True)
class CoreCall:
    """The prepared conversions of one export, built once per plug-in version."""

    signature: ExportSignature
    converters: tuple[Converter, ...]

    @classmethod
    def for_export(cls, signature: ExportSignature) -> CoreCall:
        return cls(signature, tuple(CONVERTERS[t] for t in signature.params))

    def convert(self, params: Sequence[Any]) -> list[Any]:
        converters = self.converters
        if len(params) != len(converters):
            sig = self.signature
            raise WasmdError(
                ErrorCode.INVALID_PARAMS,
                f"{sig.name} takes {len(converters)} param(s) "
                f"({', '.join(sig.params) or 'none'}), got {len(params)}",
            )
        return [
            convert(value, i)
            for i, (convert, value) in enumerate(zip(converters, params, strict=True))
        ]


# --- msgpack ABI -------------------------------------------------------------------------

MSGPACK_SIGNATURE = (("i32", "i32"), ("i64",))
# Exports that are part of an ABI's plumbing, never callable as methods.
PLUMBING = frozenset({"wasmd_alloc", "_initialize", "_start"})


@dataclass(frozen=True, slots=True)
class MsgpackCall:
    """An export ``(ptr, len) -> i64`` that takes the msgpack encoding of the params array."""

    signature: ExportSignature

    def convert(self, params: Sequence[Any]) -> bytes:
        return bytes(msgpack.packb(list(params), use_bin_type=True))


def msgpack_problems(module: wasmtime.Module, functions: dict[str, ExportSignature]) -> list[str]:
    """Why ``module`` cannot use the msgpack ABI (empty if it can)."""
    problems = []
    alloc = functions.get("wasmd_alloc")
    if alloc is None or (alloc.params, alloc.results) != (("i32",), ("i32",)):
        problems.append("it must export wasmd_alloc(len: i32) -> i32")
    if not any(
        e.name == "memory" and isinstance(e.type, wasmtime.MemoryType) for e in module.exports
    ):
        problems.append("it must export its memory as 'memory'")
    return problems


def is_msgpack_export(signature: ExportSignature) -> bool:
    return (signature.params, signature.results) == MSGPACK_SIGNATURE and (
        signature.name not in PLUMBING
    )


# --- command ABI -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandCall:
    """``NAME.run [stdin: bin|str, args: [str...]]`` for a WASI command."""

    signature: ExportSignature

    def convert(self, params: Sequence[Any]) -> tuple[bytes, list[str]]:
        usage = "run takes [stdin: bin|str, args: array of str (optional)]"
        if not 1 <= len(params) <= 2:
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"{usage}, got {len(params)} params")
        stdin = params[0]
        if isinstance(stdin, str):
            stdin = stdin.encode()
        elif not isinstance(stdin, bytes):
            kind = type(stdin).__name__
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"{usage}: stdin is a {kind}")
        args = params[1] if len(params) == 2 else []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"{usage}: args must be strings")
        return stdin, list(args)


def command_problems(module: wasmtime.Module, functions: dict[str, ExportSignature]) -> list[str]:
    """Why ``module`` cannot use the command ABI (empty if it can)."""
    start = functions.get("_start")
    if start is None or (start.params, start.results) != ((), ()):
        return ["a command must export _start() with no params and no results"]
    return []


# --- extism ABI --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtismCall:
    """An Extism plug-in function ``() -> i32``: ``[input: bin|str]`` in, output bytes out."""

    signature: ExportSignature

    def convert(self, params: Sequence[Any]) -> bytes:
        if not params:
            return b""
        if len(params) == 1 and isinstance(params[0], str):
            return params[0].encode()
        if len(params) == 1 and isinstance(params[0], bytes):
            return params[0]
        raise WasmdError(
            ErrorCode.INVALID_PARAMS,
            f"{self.signature.name} takes [input: bin|str], got {len(params)} params",
        )


def is_extism_export(signature: ExportSignature) -> bool:
    return (signature.params, signature.results) == ((), ("i32",)) and (
        signature.name not in PLUMBING
    )


AnyCall = CoreCall | MsgpackCall | CommandCall | ExtismCall


def calls_for(
    abi: str, exports: dict[str, ExportSignature], allowed: set[str] | None
) -> dict[str, AnyCall]:
    """The methods a request may call, by export name, for a module of ``abi``."""

    def permitted(name: str) -> bool:
        return allowed is None or name in allowed

    if abi == "command":
        return {"run": CommandCall(exports["_start"])}
    if abi == "msgpack":
        return {
            name: MsgpackCall(sig)
            for name, sig in exports.items()
            if is_msgpack_export(sig) and permitted(name)
        }
    if abi == "extism":
        return {
            name: ExtismCall(sig)
            for name, sig in exports.items()
            if is_extism_export(sig) and permitted(name)
        }
    return {
        name: CoreCall.for_export(sig)
        for name, sig in exports.items()
        if sig.callable and permitted(name) and name not in PLUMBING
    }
