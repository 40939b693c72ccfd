"""The guest's side of streaming calls: the imports ``wasmd::send`` and ``wasmd::recv``.

``send(ptr, len) -> i32`` takes one msgpack-encoded value from guest memory and sends it as
the call's next chunk (``wasmd.streams``): 0 when it was sent, -1 when the call is not a
stream (the value is dropped) or has ended meanwhile. ``recv(ptr, cap) -> i32`` writes the
next value the client pushed at ``ptr``: its length, -1 at the end of the input (at once
when the call is not a stream), -2 when it needs more than ``cap`` bytes (it stays queued).
Both wait when they must (for credit, for a push) under the call's deadline and
cancellation; a wait that ends so ends the call as ``timeout`` or ``cancelled``, as the
epoch guard would (``call_state.ended``).

The running call's stream is its ticket's (``Ticket.stream``), found through
``call_state.cancellable``: a plug-in-to-plug-in call (``wasmd.call``) has a ticket of its
own without one, so only the export the client called streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import wasmtime

from ..streams import END as INPUT_ENDED
from ..streams import MAX_CHUNK, MAX_CHUNK_CONTAINERS, SENT, CallStream, TooBig
from .host import HOST_IMPORTS, _decode_bounded, _read, call_state, host_function
from .signatures import ImportInfo

_I32 = wasmtime.ValType.i32()

NOT_A_STREAM = -1
END = -1
TOO_BIG = -2
# The names a module imports (from ``wasmd``) to stream: ``describe`` marks it so.
STREAM_IMPORT_NAMES = ("send", "recv")
# A component's streaming interface (sdk/wit/).
STREAM_INTERFACE = "wasmd:host/stream"


def stream_imports_used(imports: Iterable[ImportInfo]) -> list[str]:
    """Which of ``send`` and ``recv`` a plug-in imports (a component: its
    ``wasmd:host/stream`` interface, both): ``describe`` and ``check`` mark it a streamer."""
    used: set[str] = set()
    for item in imports:
        if item.module.partition("@")[0] == STREAM_INTERFACE:
            used.update(STREAM_IMPORT_NAMES)
        elif item.module in ("wasmd", "extism:host/user") and item.name in STREAM_IMPORT_NAMES:
            used.add(item.name)
    return sorted(used)


def current_stream() -> CallStream | None:
    """The stream of the call running on this thread, if it is a streaming call."""
    stream = getattr(call_state.cancellable, "stream", None)
    return stream if isinstance(stream, CallStream) else None


def decode_chunk(raw: bytes) -> Any:
    """The value of one chunk a guest sends: one msgpack value, bounded; else ValueError."""
    if len(raw) > MAX_CHUNK:
        raise ValueError(f"a chunk of {len(raw)} bytes is over the limit of {MAX_CHUNK}")
    if len(raw) > MAX_CHUNK_CONTAINERS:
        return _decode_bounded(raw, MAX_CHUNK_CONTAINERS, "the chunk")
    # Each map or array takes a byte at least: this many bytes cannot hold more of them
    # than the bound, and the hooks that count them cost a small chunk half its time.
    try:
        return msgpack.unpackb(raw, strict_map_key=False)
    except Exception as exc:
        raise ValueError(f"the chunk is not one msgpack value ({type(exc).__name__})") from None


def send_chunk(raw: bytes) -> bool:
    """Send ``raw`` (validated first) as the running call's next chunk; False when the call
    is not a stream or has ended (then ``call_state.ended`` says why)."""
    value = decode_chunk(raw)
    stream = current_stream()
    if stream is None:
        return False
    outcome = stream.send(value, call_state.deadline_at, call_state.cancellable)
    if outcome == SENT:
        return True
    call_state.ended = outcome
    return False


def receive_value(cap: int) -> bytes | TooBig | None:
    """The next pushed value (None at the end, or when the call is not a stream or ended)."""
    stream = current_stream()
    if stream is None:
        return None
    outcome = stream.recv(cap, call_state.deadline_at, call_state.cancellable)
    if isinstance(outcome, bytes | TooBig):
        return outcome
    if outcome != INPUT_ENDED:
        call_state.ended = outcome
    return None


def _send(_ctx: Any) -> Callable[..., int]:
    @host_function("wasmd.send", fallback=NOT_A_STREAM)
    def send(caller: wasmtime.Caller, ptr: int, length: int) -> int:
        return 0 if send_chunk(_read(caller, ptr, length, MAX_CHUNK)) else NOT_A_STREAM

    return send


def _recv(_ctx: Any) -> Callable[..., int]:
    @host_function("wasmd.recv", fallback=END)
    def recv(caller: wasmtime.Caller, ptr: int, cap: int) -> int:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise ValueError("the module exports no memory")
        ptr &= 0xFFFFFFFF
        cap &= 0xFFFFFFFF
        if ptr + cap > memory.data_len(caller):
            raise ValueError(f"bytes {ptr}..{ptr + cap} are outside the guest's memory")
        value = receive_value(cap)
        if value is None:
            return END
        if isinstance(value, TooBig):
            return TOO_BIG
        memory.write(caller, value, ptr)
        return len(value)

    return recv


# Registered with the other ``wasmd`` imports (host.py's table), kept apart from them here.
HOST_IMPORTS.update(
    {
        "send": ([_I32, _I32], [_I32], _send),
        "recv": ([_I32, _I32], [_I32], _recv),
    }
)
