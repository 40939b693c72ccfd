"""Streaming calls on the wire: ``wasmd.stream`` requests and the notifications around them.

A connection that gets ``[0, msgid, "wasmd.stream", [method, params, {"window": N}]]`` runs
``method`` as an ordinary call whose ticket carries a ``streams.CallStream``: each value the
guest sends is written at once as ``[2, "wasmd.chunk", [msgid, seq, value]]`` (the guest's
own msgpack bytes spliced in, not decoded and encoded again), and the call's response ends
the stream. The client's ``wasmd.credit [msgid, n]``, ``wasmd.push [msgid, value]`` and
``wasmd.push_end [msgid]`` reach the stream by msgid (``route``). A notification for a msgid
that is not a streaming call in flight, or with a bad shape, cannot be answered (it is a
notification): it is logged and dropped, and holds nothing.

The connection asks ``chunk_sink`` and ``open_stream`` for what it needs; everything here is
independent of how the connection reads and writes (a sans-IO session can call the same).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgpack

from .errors import ErrorCode, WasmdError
from .streams import MAX_CHUNK, CallStream, encode_push, parse_window

log = logging.getLogger("wasmd.stream")

STREAM_METHOD = "wasmd.stream"
CREDIT, PUSH, PUSH_END = "wasmd.credit", "wasmd.push", "wasmd.push_end"
NOTIFICATIONS = frozenset({CREDIT, PUSH, PUSH_END})
# [2, "wasmd.chunk", [ : the fixed start of every chunk notification
_CHUNK_HEAD = b"\x93\x02" + msgpack.packb("wasmd.chunk") + b"\x93"


def open_stream(
    msgid: int, params: list[Any], write: Callable[[bytes], None], ready: Callable[[], bool]
) -> tuple[str, list[Any], CallStream]:
    """The call a ``wasmd.stream`` request makes, and its stream, whose chunks go to
    ``write``; ``ready`` says whether the peer has room for more (see ``CallStream``).
    Raises ``WasmdError`` (invalid_params) for a malformed request."""
    if not 2 <= len(params) <= 3:
        raise WasmdError(
            ErrorCode.INVALID_PARAMS,
            f"wasmd.stream takes [method, params, options?], got {len(params)} item(s)",
        )
    method, call_params = params[0], params[1]
    if type(method) is not str or method.startswith("wasmd.") or "." not in method:
        raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.stream's method must be PLUGIN.EXPORT")
    if not isinstance(call_params, list):
        raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.stream's params must be an array")
    window = parse_window(params[2] if len(params) == 3 else None)
    head = _CHUNK_HEAD + msgpack.packb(msgid)

    def sink(seq: int, value: Any, raw: bytes) -> None:
        write(b"".join((head, msgpack.packb(seq), raw)))

    return method, call_params, CallStream(window, sink, ready)


def route(stream: CallStream | None, method: str, params: list[Any]) -> str | None:
    """Apply one credit/push/push_end notification to ``stream`` (the streaming call its
    msgid names, None if there is none). Returns why it was dropped, or None. A refused
    push (past the bound) sets ``stream.refusal``: the caller cancels the call."""
    if stream is None:
        return "not a streaming call in flight"
    if method == CREDIT:
        n = params[1] if len(params) == 2 else None
        if type(n) is not int or n < 0:
            return "credit must be [msgid, n] with n an integer >= 0"
        stream.credit(n)
    elif method == PUSH:
        if len(params) != 2:
            return "push must be [msgid, value]"
        try:
            raw = encode_push(params[1], MAX_CHUNK)
        except WasmdError as exc:
            return exc.message
        if not stream.push(raw):
            return stream.refusal.message if stream.refusal is not None else "refused"
    elif len(params) == 1:
        stream.push_end()
    else:
        return "push_end must be [msgid]"
    return None


def msgid_of(params: list[Any]) -> int | None:
    """The msgid a stream notification names (its first param), if it is one."""
    msgid = params[0] if params else None
    return msgid if type(msgid) is int else None
