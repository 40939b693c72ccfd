"""The core ABI: a request's params map positionally onto an export's numeric params.

Ints are range-checked for their type and never wrapped (an i32 accepts -2**31..2**32-1, the
union of its signed and unsigned readings); bools are refused even though Python counts them
as ints; a float is accepted for an integer param only if it is an integer exactly (what
JavaScript's msgpack sends for 2**53), and any number for f32/f64. Results come back as nil
for none, the value for one, and an array for several (wasmtime-py's own shapes, which the
encoder sends as is).
Every module that fits no other ABI is a core-ABI module.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import wasmtime

from ...errors import ErrorCode, WasmdError
from ...values import integral, show_value
from ..signatures import ExportSignature
from .base import PLUMBING, Method, instantiate_template, link_template, raise_host_outcome

if TYPE_CHECKING:
    from ..instance import Instance

name: Final = "core"
keeps_instance: Final = True
link = link_template
instantiate = instantiate_template

_F32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]

Converter = Callable[[Any, int], Any]


def describe() -> str:
    return "typed numeric params, range-checked"


def detect(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> bool:
    return True  # last in the detection order: what nothing else claims


def problems(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> list[str]:
    return []  # exports it cannot call are simply not methods


def methods(exports: Mapping[str, ExportSignature], allowed: set[str] | None) -> dict[str, Method]:
    return {
        export: CoreMethod.for_export(sig)
        for export, sig in exports.items()
        if sig.callable and (allowed is None or export in allowed) and export not in PLUMBING
    }


def call(instance: Instance, export: str, args: list[Any]) -> Any:
    # The hot path: one dictionary look-up and the FastCaller, nothing more.
    result = instance.callers[export](*args)
    raise_host_outcome()
    return result


def _bad(position: int, type_name: str, value: Any, why: str) -> WasmdError:
    return WasmdError(
        ErrorCode.INVALID_PARAMS, f"param {position} ({type_name}): {why}, got {show_value(value)}"
    )


def _int_converter(bits: int) -> Converter:
    low, high = -(1 << (bits - 1)), (1 << bits) - 1
    wrap, signed_max = 1 << bits, (1 << (bits - 1)) - 1
    type_name = f"i{bits}"

    def convert(value: Any, position: int) -> int:
        number = integral(value)  # an int (not a bool), or a float that is one exactly
        if number is None:
            raise _bad(position, type_name, value, "expected an integer")
        if not low <= number <= high:
            raise _bad(position, type_name, value, f"out of range {low}..{high}")
        # wasmtime takes the signed reading; the unsigned upper half maps onto it bit for bit
        return number - wrap if number > signed_max else number

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
class CoreMethod:
    """The prepared conversions of one export, built once per plug-in version."""

    signature: ExportSignature
    converters: tuple[Converter, ...]

    @classmethod
    def for_export(cls, signature: ExportSignature) -> CoreMethod:
        return cls(signature, tuple(CONVERTERS[t] for t in signature.params))

    def call_signature(self, method: str) -> str:
        results = self.signature.results
        shown = results[0] if len(results) == 1 else f"[{', '.join(results)}]" if results else "nil"
        return f"{method}({', '.join(self.signature.params)}) -> {shown}"

    def convert(self, params: Sequence[Any]) -> list[Any]:
        converters = self.converters
        if len(params) != len(converters):
            sig = self.signature
            raise WasmdError(
                ErrorCode.INVALID_PARAMS,
                f"{sig.name} takes {len(converters)} param(s) "
                f"({', '.join(sig.params) or 'none'}), got {len(params)}",
            )
        if len(converters) == 2:  # the common shapes, without a comprehension's frame
            first, second = converters
            return [first(params[0], 0), second(params[1], 1)]
        if len(converters) == 1:
            return [converters[0](params[0], 0)]
        return [
            convert(value, i)
            for i, (convert, value) in enumerate(zip(converters, params, strict=True))
        ]
