"""One client connection, served by the thread that reads it: read, decode, call, answer.

Theory of operation. Each connection has one *reader*: a thread that waits for bytes with
``poll`` (the GIL released), feeds the sans-IO ``protocol.Connection``, and hands each
request to ``dispatch`` on the same thread. A plug-in call therefore runs where it was
decoded (see ``runtime.pool``) and its answer is encoded and written by that thread too:
no hand-off between threads on the hot path. Answers to the requests decoded from one read
are collected and written together when the reader next needs data.

Why a thread per connection rather than a leader/followers pool over epoll: the thread
the kernel wakes is the one that runs the call, with no second wake-up; an idle connection
costs a blocked thread (a few tens of KiB of resident memory, the 4 MiB stack being
virtual); and the count is bounded by ``max_connections`` plus the calls running after a
hand-off (at most the plug-ins' instances and queue places).

A slow call never blocks its own connection. The server's ``HandoffWatcher`` sees a reader
that has been inside one request longer than the inline budget and makes another thread
the reader (``hand_off``); the old thread finishes its call, writes its answer, and ends.
A request waiting for an instance behind its own connection's calls is the exception: then
the connection is deliberately not read (backpressure).

Writes go straight to the non-blocking socket from whichever thread has an answer, under
the connection's lock; what the kernel does not take waits in the outbox, which a task on
the event loop flushes when the socket turns writable. The reader stops reading while
``max_in_flight`` requests are unanswered or the outbox is past ``OUTBOX_HIGH_WATER``.

The end. At EOF the reader tells a peer that hung up (``POLLHUP``: nobody will read the
answers, so its running calls are cancelled) from one that only shut its sending side (its
calls finish and are answered). Draining shuts the reading side: what had arrived is
answered, then the connection closes. The socket is closed on the event loop, after the
last answer, so the loop's writer never waits on a closed descriptor.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from .configure import ErrorEncoder
from .errors import ErrorCode, WasmdError
from .peers import Peer
from .protocol import (
    EOF,
    NEED_DATA,
    BadRequest,
    Connection,
    LocalProtocolError,
    Notification,
    RemoteProtocolError,
    Request,
    encode_notification,
    encode_response,
)
from .runtime import Respond, Ticket
from .stream_wire import NOTIFICATIONS as STREAM_NOTIFICATIONS
from .stream_wire import STREAM_METHOD, msgid_of, open_stream, route
from .streams import stream_outcome

if TYPE_CHECKING:
    from .server import RpcServer

log = logging.getLogger("wasmd.server")

OUTBOX_HIGH_WATER = 4 * 1024 * 1024
RECEIVE_SIZE = 256 * 1024
# The reader's held-back answers are written once they reach this much, batch or not.
BATCH_LIMIT = 64 * 1024
# A connection idle this long lets go of its decoder (~40 KiB) until its next bytes.
IDLE_SHED_MS = 500


class _Overdue(Exception):
    """The peer began a message and did not complete it within ``frame_timeout``."""


class ClientConnection:
    """A connection's state, shared by its reader and the threads finishing its calls."""

    def __init__(self, server: RpcServer, sock: socket.socket, peer: Peer) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.protocol = Connection(max_message_size=server.limits.max_message_size)
        self.max_in_flight = server.limits.max_in_flight
        self.requests = 0  # counted by the reader only
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # in flight or outbox went down
        self._sleepers = 0  # threads waiting on _changed: notify only then (it costs ~1 us)
        self._outbox = bytearray()
        self._writer_scheduled = False
        self._batch: list[bytes] = []  # the reader's answers not yet written
        self._batch_bytes = 0
        self._frame_deadline: float | None = None  # when the message begun must be complete
        self._held = 0  # bytes of an unfinished message counted in the server's budget
        self._reader_turn = 0  # bumped by each hand-off; a reader holds one turn
        self._reader_ident: int | None = None
        self._inline: Ticket | None = None  # the request the reader is inside, if any
        self._in_flight = 0
        self._tickets: dict[int, Ticket] = {}
        self._closed = False
        self._peer_gone = False  # a write failed: the peer closed its end
        self._close_callbacks: list[Callable[[], None]] = []
        self._drained_callback: Callable[[], None] | None = None
        # How errors are answered: wasmd's shape unless the client chose another with
        # wasmd.configure (see configure.py); only consulted when there is an error.
        self.encode_error: ErrorEncoder = WasmdError.to_wire

    # --- Session (what built-ins and the event pump see) ------------------------------------

    def notify(self, method: str, params: list[Any]) -> None:
        self._write(encode_notification(method, params))

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop when the connection has closed."""
        self._close_callbacks.append(callback)

    @property
    def outbox_bytes(self) -> int:
        """Bytes written for this peer that the kernel has not taken yet."""
        return len(self._outbox)

    def on_drained(self, callback: Callable[[], None] | None) -> None:
        """Run ``callback`` on the event loop each time the outbox has been flushed."""
        self._drained_callback = callback

    # --- life --------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        self._start_reader(self._reader_turn)

    def drain(self) -> None:
        """Read only what has already arrived, answer it, then close."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)  # wakes the reader; buffered bytes stay

    def abort(self) -> None:
        """Stop at once (the daemon is going away): cancel every call, wake every thread."""
        self._cancel_all()
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _start_reader(self, turn: int) -> None:
        thread = threading.Thread(
            target=self._read, args=(turn,), name=f"wasmd:conn-{self.peer.pid}", daemon=True
        )
        thread.start()

    def hand_off(self, now: float, budget: float) -> bool:
        """Called by the watcher: if the reader has been inside one request longer than
        ``budget`` (and is not held back on purpose), make a new thread the reader."""
        with self._lock:
            ticket = self._inline
            if ticket is None or ticket.backpressured or now - ticket.started < budget:
                return ticket is not None
            self._inline = None
            self._reader_ident = None
            self._reader_turn += 1
            turn = self._reader_turn
        self._start_reader(turn)
        return False

    # --- the reader ---------------------------------------------------------------------

    def _read(self, turn: int) -> None:
        with self._lock:
            if self._reader_turn != turn:
                return
            self._reader_ident = threading.get_ident()
        try:
            if self._read_events(turn):
                self._finish()
        except BaseException:
            log.exception("connection from pid %d failed", self.peer.pid)
            self._finish()

    def _read_events(self, turn: int) -> bool:
        """Serve requests until EOF (True) or until another thread became the reader."""
        protocol = self.protocol
        self._flush_batch()  # what the reader before this one left
        while True:
            try:
                event = protocol.next_event()
            except RemoteProtocolError as exc:
                self.server.counters.protocol_errors += 1
                log.warning("pid %d sent garbage, closing: %s", self.peer.pid, exc.message)
                self._flush_batch()
                self.notify("wasmd.error", [[int(ErrorCode.INVALID_REQUEST), exc.message]])
                return True
            if event is NEED_DATA:
                self._flush_batch()
                self._wait_for_room()
                refusal = self._hold_partial()
                if refusal is not None:
                    self._refuse(refusal)
                    return True
                try:
                    protocol.receive_data(self._receive())
                except _Overdue:
                    timeout = self.server.limits.frame_timeout
                    self._refuse(f"message not completed within {timeout * 1000:.0f} ms")
                    return True
            elif event is EOF:
                return True
            elif type(event) is Request:
                if self._peer_gone:
                    return True  # requests still buffered would be answered to nobody
                self._frame_deadline = None
                if self._outbox_full():
                    # A flood of requests in one read must not outrun a peer that does not
                    # read its answers: the outbox limit holds per request, not per read.
                    self._flush_batch()
                    self._wait_for_room()
                if not self._serve(event, turn):
                    return False
            elif type(event) is BadRequest:
                error = WasmdError(ErrorCode.INVALID_REQUEST, event.message)
                self._respond(event.msgid, self._begin(event.msgid), error, None)
            elif type(event) is Notification:
                self._notification(event)
            # Responses from a client are ignored (pynvim sends some, for one).

    def _serve(self, request: Request, turn: int) -> bool:
        """Run one request on this thread; False if meanwhile another thread became the
        reader (then this one only finishes the request)."""
        self.requests += 1
        ticket = self._begin(request.msgid)
        respond: Respond = functools.partial(self._respond, request.msgid, ticket)
        self._inline = ticket
        watcher = self.server.watcher
        watcher.enter(self)
        try:
            method, params = request.method, request.params
            if method == STREAM_METHOD:
                method, params, respond = self._open_stream(request.msgid, params, ticket, respond)
            self.server.dispatch(self, method, params, ticket, respond)
        except WasmdError as exc:
            respond(exc, None)
        except Exception as exc:
            log.exception("dispatching %s failed", request.method)
            respond(WasmdError(ErrorCode.INTERNAL, f"internal error: {exc!r}"), None)
        with self._lock:
            if self._reader_turn != turn:
                return False
            self._inline = None
        watcher.leave(self)
        return True

    def _begin(self, msgid: int) -> Ticket:
        ticket = Ticket(self, time.monotonic())
        ticket.before_wait = self._flush_batch
        with self._lock:
            self._in_flight += 1
            self._tickets[msgid] = ticket
        return ticket

    def _notification(self, event: Notification) -> None:
        if event.method == "wasmd.cancel":
            msgid = event.params[0] if len(event.params) == 1 else None
            ticket = self._tickets.get(msgid) if type(msgid) is int else None
            if ticket is not None:
                ticket.cancel()
            else:
                log.debug("pid %d cancelled %r, which is not in flight", self.peer.pid, msgid)
        elif event.method in STREAM_NOTIFICATIONS:
            self._stream_notification(event)
        # Other notifications from a client are ignored (pynvim sends nvim_set_client_info).

    # --- streaming calls (stream_wire.py): the connection's whole part in them -------------

    def _open_stream(
        self, msgid: int, params: list[Any], ticket: Ticket, respond: Respond
    ) -> tuple[str, list[Any], Respond]:
        """A ``wasmd.stream`` request: the call it makes, with its chunks written as the
        guest sends them (held back while the peer has too many bytes unread), and the
        respond that ends the stream."""
        method, params, stream = open_stream(
            msgid, params, self._write, lambda: len(self._outbox) < OUTBOX_HIGH_WATER
        )
        ticket.stream = stream

        def respond_stream(error: WasmdError | None, result: Any) -> None:
            stream.finish()  # pushes still queued, or arriving later, are dropped
            respond(stream_outcome(stream, error), result)

        return method, params, respond_stream

    def _stream_notification(self, event: Notification) -> None:
        """``wasmd.credit``/``push``/``push_end``: to the streaming call its msgid names."""
        msgid = msgid_of(event.params)
        ticket = self._tickets.get(msgid) if msgid is not None else None
        stream = ticket.stream if ticket is not None else None
        dropped = route(stream, event.method, event.params)
        if dropped is None:
            return
        if ticket is not None and stream is not None and stream.refusal is not None:
            ticket.cancel()  # a push past the bound: the call ends, answered busy
        log.debug(
            "pid %d: %s for msgid %r dropped: %s", self.peer.pid, event.method, msgid, dropped
        )

    def _hold_partial(self) -> str | None:
        """Account for the unfinished message the peer has begun; why to close, if so."""
        held = self.protocol.buffered
        if not held:
            self._frame_deadline = None
            if self._held:  # the server's lock only when there was something to let go of
                self.server.buffered(self, 0)
                self._held = 0
            return None
        if not self.server.buffered(self, held):
            limit = self.server.limits.max_buffered
            return f"the daemon holds its limit of {limit} bytes of unfinished messages"
        self._held = held
        if self._frame_deadline is None:
            self._frame_deadline = time.monotonic() + self.server.limits.frame_timeout
        return None

    def _refuse(self, reason: str) -> None:
        log.warning("closing pid %d's connection: %s", self.peer.pid, reason)
        self.notify("wasmd.error", [[int(ErrorCode.INVALID_REQUEST), reason]])

    def _receive(self) -> bytes:
        """The next bytes from the peer; ``b""`` at its end (or the end of a drain).
        Raises ``_Overdue`` when a begun message's deadline passes."""
        while True:
            try:
                return self.sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                if not self._wait_readable():
                    raise _Overdue from None
            except InterruptedError:
                continue
            except OSError:
                return b""

    def _wait_readable(self) -> bool:
        """Wait for bytes; False if a begun message's deadline passed first."""
        if self._frame_deadline is None:
            if not self._poll.poll(IDLE_SHED_MS):
                self.protocol.shed()  # idle: keep no decoder memory meanwhile
                self.server.on_loop(self.server.return_free_memory)
                self._poll.poll()
            return True
        left_ms = (self._frame_deadline - time.monotonic()) * 1000
        return left_ms > 0 and bool(self._poll.poll(max(1, int(left_ms) + 1)))

    def _outbox_full(self) -> bool:
        return len(self._outbox) >= OUTBOX_HIGH_WATER

    def _wait_for_room(self) -> None:
        """Backpressure: read no more while too much is in flight or unread by the peer."""
        with self._lock:
            while not self._closed and (
                self._in_flight >= self.max_in_flight or len(self._outbox) >= OUTBOX_HIGH_WATER
            ):
                self._sleep()

    def _finish(self) -> None:
        """The last reader's end: let calls finish (or cancel them if the peer hung up),
        then close on the event loop."""
        if self.peer_hung_up():
            self._cancel_all()
        self._flush_batch()
        give_up = time.monotonic() + self.server.limits.frame_timeout
        with self._lock:
            # Calls end by their deadlines; a peer that never reads its answers is given as
            # long as a message to finish (it may be gone, or hostile).
            while not self._closed and self._in_flight:
                self._sleep()
            while not self._closed and self._outbox and time.monotonic() < give_up:
                self._sleep(max(0.0, give_up - time.monotonic()))
            self._closed = True
        self.server.watcher.leave(self)
        self.server.on_loop(self._close_on_loop)

    def peer_hung_up(self) -> bool:
        """Whether the peer has closed its end (any thread: a poll object of its own)."""
        poll = select.poll()
        try:
            poll.register(self.sock, 0)  # POLLHUP is reported whatever is asked for
            return any(flags & select.POLLHUP for _, flags in poll.poll(0))
        except (OSError, ValueError):  # closed meanwhile (the daemon is going away)
            return True

    def _cancel_all(self) -> None:
        with self._lock:
            tickets = list(self._tickets.values())
        for ticket in tickets:
            ticket.cancel()

    def close_now(self) -> None:
        """On the loop: close without waiting for the reader (the server is going away)."""
        self._close_on_loop()

    def _close_on_loop(self) -> None:
        if self.sock.fileno() == -1:
            return  # closed already
        anyio.notify_closing(self.sock)
        self.sock.close()
        for callback in self._close_callbacks:
            try:
                callback()
            except Exception:
                log.exception("a close callback of pid %d's connection failed", self.peer.pid)
        self.server.connection_closed(self)

    # --- answers (any thread) ----------------------------------------------------------------

    def _respond(
        self, msgid: int, ticket: Ticket | None, error: WasmdError | None, result: Any
    ) -> None:
        try:
            data = encode_response(
                msgid, None if error is None else self.encode_error(error), result
            )
        except LocalProtocolError as exc:
            log.error("response to msgid %d cannot be encoded: %s", msgid, exc)
            data = encode_response(msgid, [int(ErrorCode.INTERNAL), str(exc)], None)
        with self._lock:
            self._in_flight -= 1
            if ticket is not None and self._tickets.get(msgid) is ticket:
                del self._tickets[msgid]
            if self._reader_ident == threading.get_ident() and self._batch_bytes < BATCH_LIMIT:
                self._batch.append(data)  # written with the rest when the reader next reads
                self._batch_bytes += len(data)
            else:
                self._flush_batch_locked()
                self._write_locked(data)
            if self._sleepers:
                self._changed.notify_all()

    def _sleep(self, timeout: float | None = None) -> None:
        """Wait on ``_changed``; under the lock."""
        self._sleepers += 1
        try:
            self._changed.wait(timeout)
        finally:
            self._sleepers -= 1

    def _flush_batch(self) -> None:
        if self._batch:
            with self._lock:
                self._flush_batch_locked()

    def _flush_batch_locked(self) -> None:
        if self._batch:
            data = b"".join(self._batch)
            self._batch.clear()
            self._batch_bytes = 0
            self._write_locked(data)

    def _write(self, data: bytes) -> None:
        with self._lock:
            self._write_locked(data)

    def _write_locked(self, data: bytes) -> None:
        """Send now what the kernel takes; leave the rest to the loop's writer. Under lock."""
        if self._closed:
            return
        if self._outbox:
            self._outbox += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = len(data)  # the peer is gone: nobody will read what is left to answer
            self._peer_gone = True
        if sent < len(data):
            self._outbox += memoryview(data)[sent:]
            if not self._writer_scheduled:
                self._writer_scheduled = True
                self.server.on_loop(self.server.spawn, self._flush_outbox)

    async def _flush_outbox(self) -> None:
        """On the event loop: write the outbox out as the peer reads it."""
        while True:
            try:
                await anyio.wait_writable(self.sock)
            except (anyio.ClosedResourceError, OSError):
                return
            with self._lock:
                if self._closed and not self._outbox:
                    self._writer_scheduled = False
                    return
                try:
                    sent = self.sock.send(self._outbox)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = len(self._outbox)  # the peer is gone
                del self._outbox[:sent]
                done = not self._outbox
                if done:
                    self._writer_scheduled = False
                self._changed.notify_all()
            if done:
                if self._drained_callback is not None:
                    self._drained_callback()
                return
