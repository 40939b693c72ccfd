"""Values from the wire as other languages see them: named in errors as msgpack/JSON would
name them, and floats that stand for integers.

A client in JavaScript, Go or Lua reads ``got true``, ``got null`` or ``got {"x": 0}``, not
Python's ``True``, ``None`` or ``{'x': 0}``; a name is at most ``SHOWN_LIMIT`` characters,
however big or deep the value (it is built token by token and stops there).

JavaScript's msgpack libraries encode every number above 2**31 or so as a float64 (a JS
number is one), so an i64 param of 2**53 arrives as ``9007199254740992.0``: ``integral``
gives the integer such a float stands for exactly, and nothing for 1.5, NaN or infinity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

# How many characters of a value an error message shows.
SHOWN_LIMIT = 60


def show_value(value: Any, limit: int = SHOWN_LIMIT) -> str:
    """``value`` written as msgpack/JSON names it, cut to ``limit`` characters."""
    parts: list[str] = []
    size = 0
    for token in _tokens(value, limit):
        parts.append(token)
        size += len(token)
        if size > limit:
            return "".join(parts)[: limit - 3] + "..."
    return "".join(parts)


def integral(value: Any) -> int | None:
    """The integer a wire value stands for, or None: an ``int`` (exactly: a bool is refused,
    though Python counts it an int), or a float that is an integer exactly (JavaScript sends
    2**53 as float64); not a fraction, NaN, an infinity or anything else."""
    kind = type(value)
    if kind is int:
        whole: int = value
        return whole
    if kind is float:
        number: float = value
        return int(number) if number.is_integer() else None
    return None


def _tokens(value: Any, limit: int) -> Iterator[str]:
    # Exact types first: bool is an int subclass, and a str subclass is still a string.
    if value is None:
        yield "null"
    elif value is True or value is False:
        yield "true" if value else "false"
    elif isinstance(value, int):
        yield str(value)
    elif isinstance(value, float):
        yield json.dumps(value)  # 1.5, 9007199254740992.0, NaN, Infinity
    elif isinstance(value, str):
        # Only what can be shown is escaped: a 1 MiB string costs no more than a short one.
        yield json.dumps(value[: limit + 1], ensure_ascii=False)
    elif isinstance(value, bytes | bytearray | memoryview):
        yield f"bin({len(value)} bytes)"
    elif isinstance(value, list | tuple):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ", "
            yield from _tokens(item, limit)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            if index:
                yield ", "
            yield from _tokens(key, limit)
            yield ": "
            yield from _tokens(item, limit)
        yield "}"
    else:  # a msgpack ext value, or something no client sent
        yield f"<{type(value).__name__}>"
