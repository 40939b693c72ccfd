"""Streaming calls on the wire: a ``wasmd.stream`` request becomes a call with a stream.

``[0, msgid, "wasmd.stream", [method, params, {"window": N}]]`` runs ``method`` as an
ordinary call (the dispatcher's plug-in path) whose ticket carries a ``streams.CallStream``.
``start_stream`` opens the stream on the request's connection first
(``Session.open_stream``, session.py): the connection then routes the peer's
``wasmd.credit``, ``wasmd.push`` and ``wasmd.push_end`` for that msgid to the stream, cancels
it with the call, and hands back the chunk sink, which writes each value the guest sends
as ``[2, "wasmd.chunk", [msgid, seq, value]]``. The response, the call's own, ends the
stream. A chunk also waits while the peer has the session's ``OUTBOX_LIMIT`` of answers
unread, so a peer that reads nothing holds the daemon to that whatever its window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .calls import Respond, Ticket
from .errors import ErrorCode, WasmdError
from .session import OUTBOX_LIMIT
from .streams import CallStream, parse_window, stream_outcome

if TYPE_CHECKING:
    from .server import Session

STREAM_METHOD = "wasmd.stream"


def parse_stream_request(params: list[Any]) -> tuple[str, list[Any], int]:
    """(method, params, window) of a ``wasmd.stream`` request; ``WasmdError``
    (invalid_params) for a malformed one."""
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
    return method, call_params, parse_window(params[2] if len(params) == 3 else None)


def start_stream(
    session: Session, params: list[Any], ticket: Ticket, respond: Respond
) -> tuple[str, list[Any], Respond]:
    """The call a ``wasmd.stream`` request makes, its stream opened on ``session`` and set
    on ``ticket``, and the respond that ends the stream."""
    method, call_params, window = parse_stream_request(params)
    stream = CallStream(
        window, ready=lambda: session.outbox_bytes < OUTBOX_LIMIT, on_refuse=ticket.cancel
    )
    stream.attach(session.open_stream(ticket, stream))
    ticket.stream = stream

    def respond_stream(error: WasmdError | None, result: Any) -> None:
        stream.finish()  # pushes still queued, or arriving later, are dropped
        respond(stream_outcome(stream, error), result)

    return method, call_params, respond_stream
