"""How wire values are named in errors (wasmd.values), and an error's one name: pure
functions, no daemon."""

from __future__ import annotations

from typing import Any

import pytest

from wasmd.cli import _error_json
from wasmd.configure import neovim_error
from wasmd.errors import ErrorCode, WasmdError, error_name
from wasmd.values import SHOWN_LIMIT, integral, show_value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-(2**63), "-9223372036854775808"),
        (1.5, "1.5"),
        (9007199254740992.0, "9007199254740992.0"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        ("x", '"x"'),
        ('a "quote"\n', '"a \\"quote\\"\\n"'),
        ("café", '"café"'),
        (b"\x00\x01", "bin(2 bytes)"),
        ([], "[]"),
        ([1, [True, None]], "[1, [true, null]]"),
        ({"x": 0}, '{"x": 0}'),
        ({1: "a", b"k": []}, '{1: "a", bin(1 bytes): []}'),
        (object(), "<object>"),
    ],
)
def test_values_are_named_as_msgpack_and_json_name_them(value: Any, shown: str) -> None:
    assert show_value(value) == shown


@pytest.mark.parametrize(
    "value",
    [
        "x" * 1_000_000,
        list(range(100_000)),
        {str(i): i for i in range(10_000)},
        b"\xff" * 100,
    ],
    ids=["long-string", "long-array", "big-map", "bin"],
)
def test_a_shown_value_is_bounded(value: Any) -> None:
    shown = show_value(value)
    assert len(shown) <= SHOWN_LIMIT
    assert shown.endswith("...") or len(shown) < SHOWN_LIMIT


def test_a_deep_value_is_shown_without_recursing_through_it() -> None:
    deep: list[Any] = []
    for _ in range(10_000):  # far past the interpreter's recursion limit
        deep = [deep]
    assert show_value(deep) == "[" * (SHOWN_LIMIT - 3) + "..."


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2.0, 2), (-0.0, 0), (2.0**53, 2**53), (2.0**64, 2**64), (1.5, None), (7, 7)],
)
def test_integral(value: float, expected: int | None) -> None:
    assert integral(value) == expected


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), True, False, "1", None, [1]]
)
def test_integral_refuses_what_is_no_number(value: object) -> None:
    assert integral(value) is None


@pytest.mark.parametrize("kind", ["guest_error", "abi_violation", None])
def test_one_error_has_one_name_in_every_shape(kind: str | None) -> None:
    """Issue 28: a guest error printed ``guest_error`` in the CLI, ``"name": "trap"`` with
    --json and ``trap (4)`` in the Neovim shape. DESIGN.md's table says ``trap``."""
    error = WasmdError(ErrorCode.TRAP, "as asked", {"kind": kind} if kind else None)
    assert str(error) == "trap: as asked"
    assert _error_json(error)["error"]["name"] == "trap"
    assert neovim_error(error) == [1, "trap (4): as asked"]


def test_an_unknown_code_has_one_name_too() -> None:
    error = WasmdError(99, "from a newer daemon")
    assert error_name(99) == "unknown"
    assert str(error) == "unknown: from a newer daemon"
    assert _error_json(error)["error"] == {
        "code": 99,
        "name": "unknown",
        "message": "from a newer daemon",
        "data": None,
    }
    assert neovim_error(error) == [1, "unknown (99): from a newer daemon"]
