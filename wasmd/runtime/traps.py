"""Translation of wasmtime's failures into wasmd's error codes, at the runtime's one boundary.

wasmtime reports a guest fault either as ``Trap`` (with a ``trap_code``) or, for faults
raised by the host side such as a call to an import linked as a trap, as ``WasmtimeError``.
Both carry a long text with a backtrace; the client gets the cause as the message and the
backtrace as data.
"""

from __future__ import annotations

import re

import wasmtime

from ..errors import ErrorCode, WasmdError

_CAUSE_NUMBER = re.compile(r"^\d+: ")


def cause_of(exc: BaseException) -> str:
    """The "Caused by" part of wasmtime's error text, on one line."""
    text = str(exc)
    _, marker, cause = text.partition("Caused by:")
    lines = [line.strip() for line in (cause if marker else text).splitlines() if line.strip()]
    # wasmtime numbers chained causes "0: ...", "1: ..."; keep them all, most general first
    # "wasm trap: " repeats what the error code says already.
    return "; ".join(_CAUSE_NUMBER.sub("", line).removeprefix("wasm trap: ") for line in lines)


def backtrace_of(exc: BaseException) -> list[str]:
    text = str(exc)
    head, marker, _ = text.partition("Caused by:")
    if not marker:
        return []
    return [line.strip() for line in head.splitlines()[1:] if line.strip()]


def forget_traceback(exc: BaseException) -> None:
    """Let go of the frames ``exc`` (and every exception it chains to) holds, once only its
    message and data are needed.

    Such frames hold what the call or build was working on: its params, the discarded
    instance and its Store, a module's bytes. And wasmtime-py's ``enter_wasm`` keeps the trap
    it raises in a local of a frame of that very traceback, a cycle only the cyclic collector
    frees: until it runs, every trap kept its call's memory (tests/test_memory.py).
    """
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += (current.__context__, current.__cause__)


class GuestFault(Exception):
    """Raised when a guest breaks its ABI (bad pointers, a bad result, a misused import)."""


class CallEnded(Exception):
    """Raised when wasmd's epoch guard ended a guest call: "timeout" or "cancelled"."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def call_error(exc: BaseException, *, timeout_ms: int, fuel: int) -> WasmdError:
    """The client-facing error for an exception raised by a guest call."""
    if isinstance(exc, CallEnded):
        if exc.why == "cancelled":
            return WasmdError(ErrorCode.CANCELLED, "call cancelled")
        return WasmdError(ErrorCode.TIMEOUT, f"call exceeded its deadline of {timeout_ms} ms")
    if isinstance(exc, GuestFault):
        return WasmdError(ErrorCode.TRAP, str(exc), {"kind": "abi_violation"})
    if isinstance(exc, wasmtime.ExitTrap):
        return WasmdError(
            ErrorCode.TRAP,
            f"the plug-in called proc_exit({exc.code}); a persistent instance must not exit",
            {"trap_code": "exit", "exit_code": exc.code},
        )
    if isinstance(exc, wasmtime.Trap):
        trap_code = exc.trap_code
        if trap_code == wasmtime.TrapCode.INTERRUPT:
            return WasmdError(ErrorCode.TIMEOUT, f"call exceeded its deadline of {timeout_ms} ms")
        if trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
            return WasmdError(ErrorCode.RESOURCE_EXHAUSTED, f"call used up its fuel ({fuel} units)")
        name = trap_code.name.lower() if trap_code is not None else "trap"
        return WasmdError(
            ErrorCode.TRAP, cause_of(exc), {"trap_code": name, "backtrace": backtrace_of(exc)}
        )
    if isinstance(exc, wasmtime.WasmtimeError):
        return WasmdError(
            ErrorCode.TRAP, cause_of(exc), {"trap_code": "host", "backtrace": backtrace_of(exc)}
        )
    return WasmdError(ErrorCode.INTERNAL, f"unexpected {type(exc).__name__}: {exc}")
