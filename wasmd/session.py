"""One connection's state as a sans-IO session: bytes and outcomes in, actions out.

Theory of operation. ``protocol.Connection`` turns bytes into messages; an ``RpcSession`` decides
what a connection does with them, and owns no socket, thread or clock of its own. The driver
(``connection.ClientConnection``: a reader thread, the threads finishing calls, the event
loop's writer) feeds it events and carries out the actions it returns:

- bytes in: ``receive_data(data)`` (``b""``: the peer's end);
- the next thing to do: ``next_action()`` returns ``Run(request, ticket)`` (run this
  request: the driver calls the dispatcher), ``Cancel(tickets)`` (cancel these calls),
  ``NEED_DATA`` (read more), ``WAIT`` (read no more for now: wait until a call finishes or
  the outbox drains, then ask again), ``END`` (nothing is left to read or run) or
  ``Refuse(reason)`` (the peer broke the protocol: say why and close);
- a call finished: ``answer(msgid, ticket, error, result, batch=...)`` encodes its response
  and returns the bytes to write now, or keeps them in the batch (``batch=True``: the
  reader's own calls, written together when it next reads: ``take_batch``);
- writable: what the kernel took is reported with ``sent(n)``; ``output(data)`` says what
  to send at once and keeps the rest in the outbox (``unsent``);
- closed: ``hang_up()`` returns every call to cancel and drops what waits to run.

Backpressure stops dispatching, never reading. A request past ``max_in_flight`` unanswered
calls, or decoded while the outbox holds ``outbox_limit`` bytes the peer has not read, waits
in the session until there is room; meanwhile reading goes on, so control traffic is seen
at once: ``wasmd.cancel`` (a waiting request is answered ``cancelled`` and never runs) and
the stream notifications are acted on as they are decoded, and ``is_control`` requests
(the built-ins that answer at once: ping, describe, subscribe...) are dispatched past the
in-flight limit (not past the outbox's: a peer that does not read gets no more answers).
Decoding stops (``WAIT``) once ``max(max_in_flight, MIN_WAITING)`` requests wait, or
requests of ``max_message_size`` bytes in all, so what a connection holds stays bounded:
``max_in_flight`` calls running or queued, the requests waiting, the outbox.

Streaming (issue 24) plugs in here. The dispatcher starts a streaming call like any other,
and before the call can answer it opens the stream on its connection:
``ClientConnection.open_stream(ticket, stream)`` finds the in-flight entry of ``ticket``
(``RpcSession.open_stream``), attaches ``stream`` to it and returns a chunk sink,
``sink(seq, value)``, which writes ``[2, "wasmd.chunk", [msgid, seq, value]]`` through the
outbox with the same batching as answers (``RpcSession.chunk``), from whatever thread runs
the guest. The peer's ``wasmd.credit [msgid, n]``, ``wasmd.push [msgid, value]`` and
``wasmd.push_end [msgid]`` are then routed to it as a ``Route(stream, method, params)``
action, which the driver carries out with ``route`` (``stream.credit(n)``,
``stream.push(value)``, ``stream.push_end()``), outside its lock; a cancel or a hang-up
cancels the call's ticket as for any call and also calls ``stream.cancel()``. A peer that
reads no chunks fills the outbox, and its streams wait for credit it never gives. A
notification for a msgid that is not in flight, whose call does not stream, or whose
params have the wrong shape, is counted in ``unrouted``, logged at debug level and dropped:
nothing is held for it.

Who may touch a session: one thread at a time. The driver holds its connection's lock
around every call into it, and carries out the actions (dispatching, cancelling) outside it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

from .calls import Ticket
from .configure import ErrorEncoder
from .errors import ErrorCode, WasmdError
from .protocol import (
    EOF,
    NEED_DATA,
    BadRequest,
    Connection,
    LocalProtocolError,
    Notification,
    RemoteProtocolError,
    Request,
    Sentinel,
    encode_notification,
    encode_response,
)

log = logging.getLogger("wasmd.server")

# The reader's held-back answers are written once they reach this much, batch or not.
BATCH_LIMIT = 64 * 1024
OUTBOX_LIMIT = 4 * 1024 * 1024

# Requests that may wait for room when max_in_flight is smaller than this.
MIN_WAITING = 16

WAIT: Final = "wait"
END: Final = "end"

STREAM_NOTIFICATIONS = frozenset({"wasmd.credit", "wasmd.push", "wasmd.push_end"})


class CallStream(Protocol):
    """What a streaming call offers its session (issue 24): the peer's notifications."""

    def credit(self, n: Any) -> None: ...

    def push(self, value: Any) -> None: ...

    def push_end(self) -> None: ...

    def cancel(self) -> None: ...


class Run:
    """Run ``request``; its outcome goes to ``Session.answer`` with ``ticket``."""

    __slots__ = ("request", "ticket")

    def __init__(self, request: Request, ticket: Ticket) -> None:
        self.request = request
        self.ticket = ticket


class Cancel:
    """Cancel these calls (outside the driver's lock: a queued call is answered at once)."""

    __slots__ = ("streams", "tickets")

    def __init__(self, tickets: list[Ticket], streams: list[CallStream]) -> None:
        self.tickets = tickets
        self.streams = streams


class Route:
    """Hand a stream notification to its call (``route``)."""

    __slots__ = ("method", "params", "stream")

    def __init__(self, stream: CallStream, method: str, params: list[Any]) -> None:
        self.stream = stream
        self.method = method
        self.params = params


class Refuse:
    """The peer broke the protocol: tell it ``reason`` (``wasmd.error``) and close."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


Action = Run | Cancel | Route | Refuse | Sentinel | str


class _Entry:
    """A request in flight: dispatched and not yet answered."""

    __slots__ = ("stream", "ticket")

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket
        self.stream: CallStream | None = None


def route(stream: CallStream, method: str, params: list[Any]) -> None:
    """Carry out a ``Route`` action."""
    if method == "wasmd.credit":
        stream.credit(params[1])
    elif method == "wasmd.push":
        stream.push(params[1])
    else:
        stream.push_end()


def _never_control(method: str) -> bool:
    return False


class RpcSession:
    def __init__(
        self,
        *,
        max_message_size: int,
        max_in_flight: int,
        outbox_limit: int = OUTBOX_LIMIT,
        is_control: Callable[[str], bool] = _never_control,
        clock: Callable[[], float],
        owner: object = None,
    ) -> None:
        self.protocol = Connection(max_message_size=max_message_size)
        self.max_in_flight = max_in_flight
        self.max_waiting = max(max_in_flight, MIN_WAITING)
        self.max_waiting_bytes = max_message_size
        self.outbox_limit = outbox_limit
        self.is_control = is_control
        self.clock = clock
        self.owner = owner if owner is not None else self  # the tickets' owner
        self.requests = 0  # decoded requests, answered or not
        self.unrouted = 0  # notifications for calls not in flight (dropped)
        self.protocol_errors = 0
        # How errors are answered: wasmd's shape unless the client chose another with
        # wasmd.configure (see configure.py); only consulted when there is an error.
        self.encode_error: ErrorEncoder = WasmdError.to_wire
        self.outbox = bytearray()
        self.peer_gone = False  # a write failed, or the peer hung up: answer nobody
        self._calls: dict[int, _Entry] = {}
        self._ready: collections.deque[tuple[Request, int]] = collections.deque()
        self._ready_bytes = 0
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._eof = False

    # --- what the driver asks ---------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests dispatched and not answered."""
        return len(self._calls)

    @property
    def waiting(self) -> int:
        """Decoded requests waiting for room to be dispatched."""
        return len(self._ready)

    def queued_tickets(self) -> list[Ticket]:
        """Calls waiting in a plug-in's run queue (their deadlines need watching)."""
        return [e.ticket for e in self._calls.values() if e.ticket.deadline_at is not None]

    def has_room(self) -> bool:
        return len(self._calls) < self.max_in_flight and len(self.outbox) < self.outbox_limit

    def idle(self) -> bool:
        """Nothing in flight, nothing waiting, nothing unwritten."""
        return not self._calls and not self._ready and not self._batch and not self.outbox

    # --- bytes in ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._eof = True
        self.protocol.receive_data(data)

    def next_action(self) -> Action:
        """What to do next. Requests that may not be dispatched yet are kept, and decoding
        goes on past them until ``max_in_flight`` of them wait."""
        if self.peer_gone:
            self._ready.clear()  # nobody would read their answers
            self._ready_bytes = 0
            return END if not self._calls else WAIT
        ready = self._ready
        if ready and self.has_room():
            request, size = ready.popleft()
            self._ready_bytes -= size
            return self._dispatch(request)
        protocol = self.protocol
        while len(ready) < self.max_waiting and self._ready_bytes < self.max_waiting_bytes:
            began = protocol.consumed
            try:
                event = protocol.next_event()
            except RemoteProtocolError as exc:
                self.protocol_errors += 1
                return Refuse(exc.message)
            if event is NEED_DATA:
                return NEED_DATA
            if event is EOF:
                return END if not ready and not self._calls else WAIT
            kind = type(event)
            if kind is Request:
                assert isinstance(event, Request)
                if not ready and self.has_room():
                    return self._dispatch(event)
                if self.is_control(event.method) and len(self.outbox) < self.outbox_limit:
                    return self._dispatch(event)
                size = protocol.consumed - began
                ready.append((event, size))
                self._ready_bytes += size
            elif kind is Notification:
                assert isinstance(event, Notification)
                action = self._notification(event)
                if action is not None:
                    return action
            elif kind is BadRequest:
                assert isinstance(event, BadRequest)
                self.requests += 1
                error = WasmdError(ErrorCode.INVALID_REQUEST, event.message)
                data = encode_response(event.msgid, self.encode_error(error), None)
                self._add_to_batch(data)
            # Responses from a client are ignored (pynvim sends some, for one).
        return WAIT

    def _dispatch(self, request: Request) -> Run:
        self.requests += 1
        ticket = Ticket(self.owner, self.clock(), detached=True)
        self._calls[request.msgid] = _Entry(ticket)
        return Run(request, ticket)

    def _notification(self, event: Notification) -> Action | None:
        method, params = event.method, event.params
        if method == "wasmd.cancel":
            entry = self._entry(params, 1)
            if entry is not None:
                return Cancel([entry.ticket], [] if entry.stream is None else [entry.stream])
            if not self._cancel_waiting(params):
                log.debug("cancel of %r, which is not in flight", params[:1])
            return None
        if method in STREAM_NOTIFICATIONS:
            entry = self._entry(params, 1 if method == "wasmd.push_end" else 2)
            if entry is None or entry.stream is None:
                self.unrouted += 1
                log.debug("%s for %r, which is not a stream in flight", method, params[:1])
                return None
            return Route(entry.stream, method, params)
        return None  # other notifications from a client are ignored (nvim_set_client_info)

    def _cancel_waiting(self, params: list[Any]) -> bool:
        """A cancel of a request that waits for room: it is answered ``cancelled`` at once
        (batched) and never runs."""
        msgid = params[0] if len(params) == 1 else None
        for waiting in self._ready:
            request, size = waiting
            if request.msgid == msgid and type(msgid) is int:
                self._ready.remove(waiting)
                self._ready_bytes -= size
                self.requests += 1
                error = WasmdError(ErrorCode.CANCELLED, "call cancelled before it started")
                data = encode_response(msgid, self.encode_error(error), None)
                self._add_to_batch(data)
                return True
        return False

    def _entry(self, params: list[Any], size: int) -> _Entry | None:
        if len(params) != size:
            return None
        msgid = params[0]
        return self._calls.get(msgid) if type(msgid) is int else None

    def open_stream(self, ticket: Ticket, stream: CallStream) -> int | None:
        """Route the stream notifications of ``ticket``'s call to ``stream``; its msgid, or
        None if the call is not in flight (answered, or its peer gone)."""
        for msgid, entry in self._calls.items():
            if entry.ticket is ticket:
                entry.stream = stream
                return msgid
        return None

    def chunk(self, msgid: int, seq: int, value: Any, *, batch: bool) -> bytes | None:
        """A streaming call's chunk: the bytes to write now, or None (batched, or nobody to
        read it)."""
        if self.peer_gone:
            return None
        data = encode_notification("wasmd.chunk", [msgid, seq, value])
        if batch and self._batch_bytes < BATCH_LIMIT:
            self._add_to_batch(data)
            return None
        return self.take_batch() + data if self._batch else data

    # --- a call finished ---------------------------------------------------------------

    def answer(
        self, msgid: int, ticket: Ticket, error: WasmdError | None, result: Any, *, batch: bool
    ) -> bytes | None:
        """``msgid``'s call ended: the bytes to write now, or None (batched, or nobody to
        answer)."""
        entry = self._calls.get(msgid)
        if entry is not None and entry.ticket is ticket:
            del self._calls[msgid]
        if self.peer_gone:
            return None
        try:
            wire_error = None if error is None else self.encode_error(error)
            data = encode_response(msgid, wire_error, result)
        except LocalProtocolError as exc:
            log.error("response to msgid %d cannot be encoded: %s", msgid, exc)
            data = encode_response(msgid, [int(ErrorCode.INTERNAL), str(exc)], None)
        if batch and self._batch_bytes < BATCH_LIMIT:
            self._add_to_batch(data)
            return None
        return self.take_batch() + data if self._batch else data

    def _add_to_batch(self, data: bytes) -> None:
        self._batch.append(data)
        self._batch_bytes += len(data)

    def take_batch(self) -> bytes:
        """The answers held back for batching, to be written now."""
        if not self._batch:
            return b""
        data = b"".join(self._batch)
        self._batch.clear()
        self._batch_bytes = 0
        return data

    # --- bytes out ---------------------------------------------------------------------

    def output(self, data: bytes) -> bytes | None:
        """``data`` is to be written: what to send at once, or None if it waits behind the
        outbox (then it was added to it)."""
        if self.peer_gone:
            return None
        if self.outbox:
            self.outbox += data
            return None
        return data

    def unsent(self, tail: bytes | memoryview) -> bool:
        """The kernel did not take ``tail``: keep it. True if the outbox was empty (the driver
        then starts a writer)."""
        was_empty = not self.outbox
        self.outbox += tail
        return was_empty

    def sent(self, n: int) -> None:
        """The writer sent ``n`` bytes of the outbox."""
        del self.outbox[:n]

    # --- the end -----------------------------------------------------------------------

    def hang_up(self) -> Cancel:
        """The peer is gone: nobody will read an answer. Every call is to be cancelled,
        nothing waiting is dispatched, and the outbox is let go."""
        self.peer_gone = True
        self._ready.clear()
        self._ready_bytes = 0
        self._batch.clear()
        self._batch_bytes = 0
        self.outbox = bytearray()
        entries = list(self._calls.values())
        return Cancel(
            [e.ticket for e in entries], [e.stream for e in entries if e.stream is not None]
        )
