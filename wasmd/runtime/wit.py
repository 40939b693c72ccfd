"""msgpack values <-> WIT values, for calls of a component's functions (docs/abi.md, components).

A ``Codec`` is built once per WIT type when a component is compiled; on every call its
``lower`` turns a request's msgpack value into what wasmtime-py's component API takes, and
``lift`` turns what it returns into a msgpack value. The shapes:

==============================  ===============================================================
WIT                             msgpack
==============================  ===============================================================
bool                            bool (exactly: 1 is not true)
u8..u64, s8..s64                int, range-checked, never wrapped
f32, f64                        float (an int is taken too); f32 range-checked
char                            str of one Unicode scalar value
string                          str
list<u8>                        bin (an array of ints is taken too)
list<T>                         array
record                          map keyed by field name, every field, no others
tuple<...>                      array of exactly that length
variant                         map of one entry {case: payload}; nil payload for a case
                                without one (which may also be given as the bare string)
enum                            str
flags                           array of str, in declaration order
option<T>                       nil, or the value (nil is always the outermost none)
result<T, E>                    {"ok": value} or {"err": value}; as a function's result, ok is
                                the call's result and err the error
                                ``[4, message, {"kind": "guest_error", "err": value}]``
resources, futures, streams     refused: a function using one is not callable
==============================  ===============================================================

wasmtime-py itself checks only Python classes (it wraps an int too big for a u8), and tells
the cases of a variant, option or result apart by the class of the payload when they have
disjoint classes ("untagged") and with its ``Variant`` otherwise: ``_tagged()`` (a private
method of wasmtime-py 50, the version wasmd pins) decides which, once per type.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasmtime import component as wc

from ..errors import ErrorCode, WasmdError
from ..values import integral, show_value

_F32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]

_INT_RANGES: dict[type, tuple[str, int, int]] = {
    wc.U8: ("u8", 0, 2**8 - 1),
    wc.U16: ("u16", 0, 2**16 - 1),
    wc.U32: ("u32", 0, 2**32 - 1),
    wc.U64: ("u64", 0, 2**64 - 1),
    wc.S8: ("s8", -(2**7), 2**7 - 1),
    wc.S16: ("s16", -(2**15), 2**15 - 1),
    wc.S32: ("s32", -(2**31), 2**31 - 1),
    wc.S64: ("s64", -(2**63), 2**63 - 1),
}


class Unsupported(Exception):
    """Raised when a WIT type has no msgpack shape yet (resources, futures, streams)."""


def invalid(where: str, wit: str, value: Any, why: str) -> WasmdError:
    return WasmdError(ErrorCode.INVALID_PARAMS, f"{where} ({wit}): {why}, got {show_value(value)}")


@dataclass(frozen=True, slots=True)
class Codec:
    """One WIT type: its name as WIT writes it, and the two conversions."""

    wit: str
    lower: Callable[[Any, str], Any]  # (msgpack value, where) -> wasmtime-py value
    lift: Callable[[Any], Any]  # wasmtime-py value -> msgpack value


def _same(value: Any) -> Any:
    return value


def codec_for(ty: wc.ValType) -> Codec:
    """The codec of ``ty``; ``Unsupported`` names what has no msgpack shape."""
    kind = type(ty)
    if kind in _INT_RANGES:
        return _int_codec(*_INT_RANGES[kind])
    if isinstance(ty, wc.Bool):
        return Codec("bool", _lower_bool, _same)
    if isinstance(ty, wc.F32 | wc.F64):
        return _float_codec("f32" if isinstance(ty, wc.F32) else "f64")
    if isinstance(ty, wc.Char):
        return Codec("char", _lower_char, _same)
    if isinstance(ty, wc.String):
        return Codec("string", _lower_string, _same)
    if isinstance(ty, wc.ListType):
        return _list_codec(ty)
    if isinstance(ty, wc.RecordType):
        return _record_codec(ty)
    if isinstance(ty, wc.TupleType):
        return _tuple_codec(ty)
    if isinstance(ty, wc.EnumType):
        return _enum_codec(ty)
    if isinstance(ty, wc.FlagsType):
        return _flags_codec(ty)
    if isinstance(ty, wc.OptionType):
        return _option_codec(ty)
    if isinstance(ty, wc.VariantType | wc.ResultType):
        return _cases_codec(ty)
    if isinstance(ty, wc.OwnType | wc.BorrowType):
        raise Unsupported("resources are not supported yet")
    raise Unsupported(f"{kind.__name__} values are not supported yet")


def _int_codec(wit: str, low: int, high: int) -> Codec:
    def lower(value: Any, where: str) -> int:
        number = integral(value)  # an int (not a bool), or a float that is one exactly
        if number is None:
            raise invalid(where, wit, value, "expected an integer")
        if not low <= number <= high:
            raise invalid(where, wit, value, f"out of range {low}..{high}")
        return number

    return Codec(wit, lower, _same)


def _lower_bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise invalid(where, "bool", value, "expected true or false")
    return value


def _float_codec(wit: str) -> Codec:
    limit = _F32_MAX if wit == "f32" else None

    def lower(value: Any, where: str) -> float:
        if type(value) is not float and type(value) is not int:
            raise invalid(where, wit, value, "expected a number")
        number = float(value)
        if limit is not None and math.isfinite(number) and abs(number) > limit:
            raise invalid(where, wit, value, "out of range for f32")
        return number

    return Codec(wit, lower, _same)


def _lower_char(value: Any, where: str) -> str:
    if type(value) is not str or len(value) != 1:
        raise invalid(where, "char", value, "expected a string of one character")
    if 0xD800 <= ord(value) <= 0xDFFF:
        raise invalid(where, "char", value, "a surrogate is not a Unicode scalar value")
    return value


def _lower_string(value: Any, where: str) -> str:
    if type(value) is not str:
        raise invalid(where, "string", value, "expected a string")
    return value


def _list_codec(ty: wc.ListType) -> Codec:
    element = codec_for(ty.element)
    wit = f"list<{element.wit}>"
    if isinstance(ty.element, wc.U8):

        def lower_bytes(value: Any, where: str) -> bytes:
            if type(value) is bytes:
                return value
            if type(value) is list:
                return bytes(element.lower(v, f"{where}[{i}]") for i, v in enumerate(value))
            raise invalid(where, wit, value, "expected bin or an array of u8")

        return Codec(wit, lower_bytes, bytes)

    def lower(value: Any, where: str) -> list[Any]:
        if type(value) is not list:
            raise invalid(where, wit, value, "expected an array")
        return [element.lower(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def lift(value: Any) -> list[Any]:
        return [element.lift(v) for v in value]

    return Codec(wit, lower, lift)


def _record_codec(ty: wc.RecordType) -> Codec:
    fields = [(name, codec_for(field)) for name, field in ty.fields]
    names = {name for name, _ in fields}
    wit = "record {" + ", ".join(f"{n}: {c.wit}" for n, c in fields) + "}"

    def lower(value: Any, where: str) -> wc.Record:
        if type(value) is not dict:
            raise invalid(where, wit, value, "expected a map keyed by field name")
        missing = [name for name, _ in fields if name not in value]
        unknown = [key for key in value if key not in names]
        if missing or unknown:
            why = f"missing {', '.join(missing)}" if missing else ""
            why += "; " if missing and unknown else ""
            why += f"no field {', '.join(map(show_value, unknown))}" if unknown else ""
            raise invalid(where, wit, value, why)
        record = wc.Record()
        for name, codec in fields:
            setattr(record, name, codec.lower(value[name], f"{where}.{name}"))
        return record

    def lift(value: Any) -> dict[str, Any]:
        return {name: codec.lift(getattr(value, name)) for name, codec in fields}

    return Codec(wit, lower, lift)


def _tuple_codec(ty: wc.TupleType) -> Codec:
    elements = [codec_for(e) for e in ty.elements]
    wit = f"tuple<{', '.join(c.wit for c in elements)}>"

    def lower(value: Any, where: str) -> tuple[Any, ...]:
        if type(value) is not list or len(value) != len(elements):
            raise invalid(where, wit, value, f"expected an array of {len(elements)}")
        return tuple(
            c.lower(v, f"{where}[{i}]")
            for i, (c, v) in enumerate(zip(elements, value, strict=True))
        )

    def lift(value: Any) -> list[Any]:
        return [c.lift(v) for c, v in zip(elements, value, strict=True)]

    return Codec(wit, lower, lift)


def _enum_codec(ty: wc.EnumType) -> Codec:
    names = ty.names
    wit = "enum {" + ", ".join(names) + "}"

    def lower(value: Any, where: str) -> str:
        if type(value) is not str or value not in names:
            raise invalid(where, wit, value, f"expected one of {', '.join(names)}")
        return value

    return Codec(wit, lower, _same)


def _flags_codec(ty: wc.FlagsType) -> Codec:
    names = ty.names
    wit = "flags {" + ", ".join(names) + "}"

    def lower(value: Any, where: str) -> set[str]:
        if type(value) is not list or not all(type(v) is str and v in names for v in value):
            raise invalid(where, wit, value, f"expected an array of {', '.join(names)}")
        return set(value)

    def lift(value: Any) -> list[str]:
        return [name for name in names if name in value]

    return Codec(wit, lower, lift)


def _option_codec(ty: wc.OptionType) -> Codec:
    payload = codec_for(ty.payload)
    tagged = ty._tagged()
    wit = f"option<{payload.wit}>"

    def lower(value: Any, where: str) -> Any:
        if value is None:
            return wc.Variant("none") if tagged else None
        some = payload.lower(value, where)
        return wc.Variant("some", some) if tagged else some

    def lift(value: Any) -> Any:
        if tagged:
            return payload.lift(value.payload) if value.tag == "some" else None
        return None if value is None else payload.lift(value)

    return Codec(wit, lower, lift)


def _cases_codec(ty: wc.VariantType | wc.ResultType) -> Codec:
    """A variant, or a result (the cases ok and err)."""
    cases = {name: (None if t is None else codec_for(t)) for name, t in ty._cases()}
    tagged = ty._tagged()
    # Untagged, wasmtime-py gives a case's payload alone: its Python class tells the case.
    classes: dict[str, tuple[type, ...]] = {}
    for name, t in ty._cases():
        found: set[type] = set()
        if t is not None:
            t.add_classes(found)
        classes[name] = tuple(found)
    if not tagged and _overlapping(list(classes.values())):
        # e.g. u32 and bool: wasmtime-py would lower True as the u32 case
        raise Unsupported("wasmtime-py cannot tell this type's cases apart (bool and int)")
    if isinstance(ty, wc.ResultType):
        ok, err = cases["ok"], cases["err"]
        wit = f"result<{ok.wit if ok else '_'}, {err.wit if err else '_'}>"
    else:
        wit = "variant {" + ", ".join(n if c is None else f"{n}({c.wit})" for n, c in cases.items())
        wit += "}"

    def lower(value: Any, where: str) -> Any:
        if type(value) is str and value in cases and cases[value] is None:
            value = {value: None}
        if type(value) is not dict or len(value) != 1:
            raise invalid(where, wit, value, "expected a map of one entry {case: payload}")
        ((name, payload),) = value.items()
        if name not in cases:
            raise invalid(where, wit, value, f"no case {show_value(name)}")
        codec = cases[name]
        if codec is None:
            if payload is not None:
                raise invalid(where, wit, value, f"case {name} has no payload: give nil")
            lowered = None
        else:
            lowered = codec.lower(payload, f"{where}.{name}")
        return wc.Variant(name, lowered) if tagged else lowered

    def case_of(value: Any) -> tuple[str, Any]:
        if tagged:
            return value.tag, value.payload
        for name, codec in cases.items():
            if (codec is None and value is None) or (
                codec is not None and isinstance(value, classes[name])
            ):
                return name, value
        raise ValueError(f"wasmtime-py gave {type(value).__name__}, which no case of {wit} is")

    def lift(value: Any) -> dict[str, Any]:
        name, payload = case_of(value)
        codec = cases[name]
        return {name: None if codec is None else codec.lift(payload)}

    return Codec(wit, lower, lift)


def _overlapping(groups: list[tuple[type, ...]]) -> bool:
    return any(
        issubclass(a, b) or issubclass(b, a)
        for i, first in enumerate(groups)
        for second in groups[i + 1 :]
        for a in first
        for b in second
    )


def is_result(ty: wc.ValType | None) -> bool:
    return isinstance(ty, wc.ResultType)
