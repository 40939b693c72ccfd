"""One client connection's driver: the threads and the socket around its ``Session``.

Theory of operation. The decisions (what to dispatch, what waits, what to cancel, what to
batch, what the outbox holds) are the sans-IO ``session.RpcSession``'s; this module only moves
bytes and runs what it says, under the connection's lock (which guards the session and every
field here unless a comment says which thread owns it).

Each connection has one *reader*: a thread that waits for bytes with ``poll`` (the GIL
released), feeds the session, and runs each request it is told to dispatch on the same
thread. A plug-in call therefore runs where it was decoded when an instance is free (see
``runtime.pool``), and its answer is encoded and written by that thread too: no hand-off
between threads on the hot path. Answers to the requests decoded from one read are collected
and written together when the reader next needs data. A call that finds every instance busy
is queued in the plug-in's run queue and the reader goes on reading; the thread that frees an
instance runs it and writes its answer to this connection.

Why a thread per connection rather than a leader/followers pool over epoll: the thread
the kernel wakes is the one that runs the call, with no second wake-up; an idle connection
costs a blocked thread (a few tens of KiB of resident memory, the stack being virtual); and
the count is bounded by ``max_connections`` plus the threads finishing calls after a
hand-off (at most the plug-ins' instances).

A slow call never blocks its own connection. The server's ``HandoffWatcher`` sees a reader
that has been inside one request longer than the inline budget and makes another thread
the reader (``hand_off``); the old thread finishes its call (and the calls queued behind it
in that plug-in), writes the answers, and ends. The watcher also answers ``timeout`` to this
connection's calls that wait in a run queue past their deadline.

Backpressure stops dispatching, never reading (see ``session``): while the connection is at
its limits the reader waits at most ``CONTROL_TICK`` at a time for room, looking at the
socket in between, so a ``wasmd.cancel``, a ``wasmd.ping`` or a hang-up is seen within a tick.

Writes go straight to the non-blocking socket from whichever thread has an answer; what the
kernel does not take waits in the session's outbox, which a task on the event loop flushes
when the socket turns writable. Answers held for peers that do not read are bounded per
connection (the session's ``outbox_limit``) and across the daemon (``max_unread``: past it,
the connection whose answer would go over is closed, as ``max_buffered`` does for input).

The end. At EOF the reader tells a peer that hung up (``POLLHUP``: nobody will read the
answers, so its calls are cancelled, the queued ones at once) from one that only shut its
sending side (its calls finish and are answered). Draining shuts the reading side: what had
arrived is answered, then the connection closes. The socket is closed on the event loop,
after the last answer, so the loop's writer never waits on a closed descriptor.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from .calls import Respond, Ticket
from .configure import ErrorEncoder
from .errors import ErrorCode, WasmdError
from .handoff import HandoffWatcher
from .peers import Peer
from .protocol import NEED_DATA, encode_notification
from .session import END, WAIT, CallStream, Cancel, Refuse, Route, RpcSession, Run, route

log = logging.getLogger("wasmd.server")

RECEIVE_SIZE = 256 * 1024
# A connection idle this long lets go of its decoder (~40 KiB) until its next bytes.
IDLE_SHED_MS = 500
# While the connection may not dispatch, how long the reader waits for room before it looks
# at the socket again: control traffic and a hang-up are seen within this.
CONTROL_TICK = 0.002
# A peer whose unfinished message grew by less than DRIBBLE_BYTES in each of more than
# DRIBBLE_READS reads in a row is read more slowly each time (from DRIBBLE_PAUSE up to
# DRIBBLE_PAUSE_MAX): one byte every few milliseconds from many connections must not keep
# the daemon's CPUs busy waking readers. A message split in a few pieces is not slowed.
DRIBBLE_BYTES = 4096
DRIBBLE_READS = 3
DRIBBLE_PAUSE = 0.001
DRIBBLE_PAUSE_MAX = 0.064


@dataclass(frozen=True)
class ServerLimits:
    max_message_size: int = 16 * 1024 * 1024
    max_in_flight: int = 128
    max_connections: int = 1024
    max_connections_per_uid: int = 128
    frame_timeout: float = 10.0  # seconds for a started message to complete
    max_buffered: int = 256 * 1024 * 1024  # unfinished messages' bytes, all connections
    max_unread: int = 256 * 1024 * 1024  # answers written and not yet read, all connections


class Session(Protocol):
    """What a method handler may know and do about the connection a request came on."""

    peer: Peer

    def notify(self, method: str, params: list[Any]) -> None: ...

    def on_close(self, callback: Callable[[], None]) -> None: ...

    @property
    def outbox_bytes(self) -> int: ...

    def on_drained(self, callback: Callable[[], None] | None) -> None: ...

    def open_stream(self, ticket: Ticket, stream: CallStream) -> Callable[[int, Any], None]: ...


# Called on the connection's reader thread; answers through ``respond``, on any thread.
Dispatch = Callable[[Session, str, list[Any], Ticket, Respond], None]


class ServerSide(Protocol):
    """What a connection asks of its server (``server.RpcServer``)."""

    limits: ServerLimits
    watcher: HandoffWatcher
    dispatch: Dispatch

    def is_control(self, method: str) -> bool: ...

    def buffered(self, connection: ClientConnection, size: int) -> bool: ...

    def unread(self, connection: ClientConnection, size: int) -> bool: ...

    def note_protocol_error(self) -> None: ...

    def on_loop(self, func: Callable[..., object], *args: Any) -> None: ...

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None: ...

    def return_free_memory(self) -> None: ...

    def connection_closed(self, connection: ClientConnection) -> None: ...


class _Overdue(Exception):
    """The peer began a message and did not complete it within ``frame_timeout``."""


class ClientConnection:
    """A connection's session and the threads that drive it."""

    def __init__(self, server: ServerSide, sock: socket.socket, peer: Peer) -> None:
        self.server = server
        self.sock = sock
        self.fileno = sock.fileno()  # kept: the server unregisters it after the close
        self.peer = peer
        limits = server.limits
        self.session = RpcSession(
            max_message_size=limits.max_message_size,
            max_in_flight=limits.max_in_flight,
            is_control=server.is_control,
            clock=time.monotonic,
            owner=self,
        )
        self._poll = select.poll()  # the reader's own
        self._poll.register(sock, select.POLLIN)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # in flight or outbox went down
        self._sleepers = 0  # threads waiting on _changed: notify only then (it costs ~1 us)
        self._writer_scheduled = False
        self._frame_deadline: float | None = None  # reader's: when the begun message is due
        self._held = 0  # reader's: bytes of an unfinished message in the server's budget
        self._dribble = 0.0  # reader's: the pause before the next read of a dribbler
        self._small_reads = 0  # reader's: reads in a row that grew a begun message a little
        self._reader_turn = 0  # bumped by each hand-off; a reader holds one turn
        self._reader_ident: int | None = None
        self._inline: Ticket | None = None  # the request the reader is inside, if any
        self._watched = False  # in the watcher's set (inside a request, or calls queued)
        self._hand_off_failed = False  # the watcher's: the last hand-off had no thread
        self._closed = False
        self._unread = 0  # the outbox's size as counted in the server's max_unread
        self._close_callbacks: list[Callable[[], None]] = []
        self._drained_callback: Callable[[], None] | None = None

    # --- what built-ins and the event pump see -------------------------------------------

    @property
    def encode_error(self) -> ErrorEncoder:
        return self.session.encode_error

    @encode_error.setter
    def encode_error(self, encoder: ErrorEncoder) -> None:
        with self._lock:
            self.session.encode_error = encoder

    @property
    def requests(self) -> int:
        """Requests decoded so far (any thread)."""
        with self._lock:
            return self.session.requests

    def notify(self, method: str, params: list[Any]) -> None:
        self._write(encode_notification(method, params))

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop when the connection has closed."""
        self._close_callbacks.append(callback)

    @property
    def outbox_bytes(self) -> int:
        """Bytes written for this peer that the kernel has not taken yet (any thread)."""
        with self._lock:
            return len(self.session.outbox)

    def on_drained(self, callback: Callable[[], None] | None) -> None:
        """Run ``callback`` on the event loop each time the outbox has been flushed."""
        self._drained_callback = callback

    def open_stream(self, ticket: Ticket, stream: CallStream) -> Callable[[int, Any], None]:
        """Attach ``stream`` to ``ticket``'s call (see ``session``); the chunk sink
        ``sink(seq, value)``, callable from any thread."""
        with self._lock:
            msgid = self.session.open_stream(ticket, stream)

        def sink(seq: int, value: Any) -> None:
            if msgid is None:
                return
            with self._lock:
                batch = self._reader_ident == threading.get_ident()
                data = self.session.chunk(msgid, seq, value, batch=batch)
                if data is not None:
                    self._write_locked(data)

        return sink

    # --- life --------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests dispatched and not answered (any thread)."""
        with self._lock:
            return self.session.in_flight

    def start(self) -> None:
        """Start the reader; raises ``RuntimeError`` if no thread can be started."""
        self._new_thread(self._read, 0).start()

    def drain(self) -> None:
        """Read only what has already arrived, answer it, then close."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)  # wakes the reader; buffered bytes stay

    def abort(self) -> None:
        """Stop at once (the daemon is going away): cancel every call, wake every thread."""
        with self._lock:
            cancel = self.session.hang_up()
            self._closed = True
            self._changed.notify_all()
        self._cancel(cancel)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _new_thread(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        return threading.Thread(
            target=target, args=args, name=f"wasmd:conn-{self.peer.pid}", daemon=True
        )

    def hand_off(self, now: float, budget: float) -> bool:
        """Called by the watcher: if the reader has been inside one request longer than
        ``budget``, make a new thread the reader; answer ``timeout`` to calls queued past
        their deadlines. Whether the connection still needs watching."""
        with self._lock:
            ticket = self._inline
            queued = self.session.queued_tickets()
            stuck = ticket is not None and now - ticket.started >= budget
        for waiting in queued:
            waiting.expire(now)
        if stuck:
            self._hand_off(ticket)
        with self._lock:
            if self._inline is None and not self.session.queued_tickets():
                self._watched = False
                self.server.watcher.leave(self)
                return False
            return True

    def _hand_off(self, ticket: Ticket | None) -> None:
        """Make a new thread the reader. The thread is started first and told its turn
        after: if no thread can be started, the old reader simply stays the reader."""
        go = threading.Event()
        turn = [-1]  # the new reader's turn; -1: none, the old reader came back first
        thread = self._new_thread(self._read_after, go, turn)
        try:
            thread.start()
        except RuntimeError as exc:  # can't start new thread: try again at the next scan
            if not self._hand_off_failed:  # once, not at every scan
                self._hand_off_failed = True
                log.warning("pid %d: cannot hand reading to a new thread: %s", self.peer.pid, exc)
            return
        self._hand_off_failed = False
        with self._lock:
            if self._inline is ticket:
                self._inline = None
                self._reader_ident = None
                self._reader_turn += 1
                turn[0] = self._reader_turn
        go.set()

    def _read_after(self, go: threading.Event, turn: list[int]) -> None:
        go.wait()
        if turn[0] >= 0:
            self._read(turn[0])

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
        """Serve requests until the end (True) or until another thread became the reader."""
        session = self.session
        self._flush_batch()  # what the reader before this one left
        while True:
            with self._lock:
                # One lock for the end of the last request and the start of the next.
                if self._reader_turn != turn:
                    return False  # another thread became the reader during the last one
                action = session.next_action()
                if type(action) is Run:
                    self._inline = action.ticket
                    if not self._watched:
                        self._watched = True
                        self.server.watcher.enter(self)
                else:
                    self._inline = None
            kind = type(action)
            if kind is Run:
                assert isinstance(action, Run)
                self._serve(action)
            elif action is NEED_DATA:
                self._flush_batch()
                refusal = self._hold_partial()
                if refusal is not None:
                    self._refuse(refusal)
                    return True
                try:
                    data = self._receive()
                except _Overdue:
                    timeout = self.server.limits.frame_timeout
                    self._refuse(f"message not completed within {timeout * 1000:.0f} ms")
                    return True
                if data is not None:
                    with self._lock:
                        session.receive_data(data)
                    if not data and self.peer_hung_up():
                        self._hang_up()
            elif action is WAIT:
                self._flush_batch()
                self._wait_for_room()
            elif action is END:
                return True
            elif kind is Cancel:
                assert isinstance(action, Cancel)
                self._cancel(action)
            elif kind is Route:
                assert isinstance(action, Route)
                try:
                    route(action.stream, action.method, action.params)
                except Exception:
                    log.exception("pid %d: %s failed", self.peer.pid, action.method)
            elif kind is Refuse:
                assert isinstance(action, Refuse)
                self.server.note_protocol_error()
                log.warning("pid %d sent garbage, closing: %s", self.peer.pid, action.reason)
                self._flush_batch()
                self.notify("wasmd.error", [[int(ErrorCode.INVALID_REQUEST), action.reason]])
                return True

    def _serve(self, action: Run) -> None:
        """Run one request on this thread (meanwhile, another may become the reader)."""
        request, ticket = action.request, action.ticket
        respond = functools.partial(self._respond, request.msgid, ticket)
        try:
            self.server.dispatch(self, request.method, request.params, ticket, respond)
        except WasmdError as exc:
            respond(exc, None)
        except Exception as exc:
            log.exception("dispatching %s failed", request.method)
            respond(WasmdError(ErrorCode.INTERNAL, f"internal error: {exc!r}"), None)

    def _hold_partial(self) -> str | None:
        """Account for the unfinished message the peer has begun; why to close, if so."""
        held = self.session.protocol.buffered
        if not held:
            self._frame_deadline = None
            self._dribble = 0.0
            self._small_reads = 0
            if self._held:  # the server's lock only when there was something to let go of
                self.server.buffered(self, 0)
                self._held = 0
            return None
        if not self.server.buffered(self, self.session.protocol.held_memory):
            limit = self.server.limits.max_buffered
            return f"the daemon holds its limit of {limit} bytes of unfinished messages"
        if 0 <= held - self._held < DRIBBLE_BYTES:  # the last read brought little of it
            self._small_reads += 1
            if self._small_reads > DRIBBLE_READS:
                self._dribble = min(DRIBBLE_PAUSE_MAX, max(DRIBBLE_PAUSE, self._dribble * 2))
        else:
            self._small_reads = 0
            self._dribble = 0.0
        self._held = held
        if self._frame_deadline is None:
            self._frame_deadline = time.monotonic() + self.server.limits.frame_timeout
        return None

    def _refuse(self, reason: str) -> None:
        log.warning("closing pid %d's connection: %s", self.peer.pid, reason)
        self.notify("wasmd.error", [[int(ErrorCode.INVALID_REQUEST), reason]])

    def _receive(self) -> bytes | None:
        """The next bytes from the peer; ``b""`` at its end (or the end of a drain); None
        when requests wait for room and there is none yet (ask the session again).
        Raises ``_Overdue`` when a begun message's deadline passes."""
        while True:
            if self._requests_wait() and not self._wait_for_room(readable=True):
                return None
            try:
                return self.sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                if self._requests_wait():
                    return None
                if not self._wait_readable():
                    raise _Overdue from None
            except InterruptedError:
                continue
            except OSError:
                return b""

    def _requests_wait(self) -> bool:
        """Whether decoded requests wait for room (then reading never blocks for long)."""
        with self._lock:
            return self.session.waiting > 0

    def _wait_readable(self) -> bool:
        """Wait for bytes; False if a begun message's deadline passed first."""
        if self._frame_deadline is None:
            if not self._poll.poll(IDLE_SHED_MS):
                self.session.protocol.shed()  # idle: keep no decoder memory meanwhile
                self.server.on_loop(self.server.return_free_memory)
                self._poll.poll()
            return True
        if self._dribble:
            time.sleep(self._dribble)  # let a dribbler's bytes gather (see DRIBBLE_BYTES)
        left_ms = (self._frame_deadline - time.monotonic()) * 1000
        return left_ms > 0 and bool(self._poll.poll(max(1, int(left_ms) + 1)))

    def _wait_for_room(self, *, readable: bool = False) -> bool:
        """Wait up to a tick for room to dispatch (True: there is room, or the connection
        ended); then, with ``readable``, whether the socket has bytes (or its end) to read.
        Without it, a peer that hung up meanwhile is noticed."""
        with self._lock:
            if not self._closed and not self.session.has_room():
                self._sleep(CONTROL_TICK)
            if self._closed or self.session.has_room():
                return True
        if readable:
            return bool(self._poll.poll(0))
        if self.peer_hung_up():
            self._hang_up()
        return False

    def _hang_up(self) -> None:
        with self._lock:
            cancel = self.session.hang_up()
            self._account_unread()
        self._cancel(cancel)

    def _cancel(self, action: Cancel) -> None:
        for ticket in action.tickets:
            ticket.cancel()  # a queued call is answered here; a running one at its next tick
        for stream in action.streams:
            try:
                stream.cancel()
            except Exception:
                log.exception("pid %d: cancelling a stream failed", self.peer.pid)

    def _finish(self) -> None:
        """The last reader's end: let calls finish (or cancel them if the peer hung up),
        then close on the event loop."""
        if self.peer_hung_up():
            self._hang_up()
        self._flush_batch()
        give_up = time.monotonic() + self.server.limits.frame_timeout
        with self._lock:
            # Calls end by their deadlines; a peer that never reads its answers is given as
            # long as a message to finish (it may be gone, or hostile).
            while not self._closed and self.session.in_flight:
                self._sleep()
            while not self._closed and self.session.outbox and time.monotonic() < give_up:
                self._sleep(max(0.0, give_up - time.monotonic()))
            self._closed = True
            if self._watched:
                self._watched = False
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

    def close_now(self) -> None:
        """On the loop: close without waiting for the reader (the server is going away)."""
        self._close_on_loop()

    def _close_on_loop(self) -> None:
        if self.sock.fileno() == -1:
            return  # closed already
        anyio.notify_closing(self.sock)
        self.sock.close()
        with self._lock:
            self.session.hang_up()  # lets the outbox go
            self._account_unread()
        for callback in self._close_callbacks:
            try:
                callback()
            except Exception:
                log.exception("a close callback of pid %d's connection failed", self.peer.pid)
        self.server.connection_closed(self)

    # --- answers (any thread) ----------------------------------------------------------------

    def _respond(self, msgid: int, ticket: Ticket, error: WasmdError | None, result: Any) -> None:
        with self._lock:
            batch = self._reader_ident == threading.get_ident()
            data = self.session.answer(msgid, ticket, error, result, batch=batch)
            if data is not None:
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
        with self._lock:
            data = self.session.take_batch()
            if data:
                self._write_locked(data)

    def _write(self, data: bytes) -> None:
        with self._lock:
            self._write_locked(data)

    def _write_locked(self, data: bytes) -> None:
        """Send now what the kernel takes; leave the rest to the loop's writer. Under lock."""
        if self._closed:
            return
        session = self.session
        now = session.output(data)
        if now is None:
            self._account_unread()
            return
        try:
            sent = self.sock.send(now)
        except BlockingIOError:
            sent = 0
        except OSError:
            session.peer_gone = True  # nobody will read what is left to answer
            return
        if sent < len(now):
            if session.unsent(memoryview(now)[sent:]) and not self._writer_scheduled:
                self._writer_scheduled = True
                self.server.on_loop(self.server.spawn, self._flush_outbox)
            self._account_unread()

    def _account_unread(self) -> None:
        """Under the lock: tell the server the outbox's size; past the daemon's bound of
        unread answers, drop them and close (the reader sees the end and cancels)."""
        size = len(self.session.outbox)
        if size == self._unread:
            return
        if self.server.unread(self, size):
            self._unread = size
            return
        limit = self.server.limits.max_unread
        log.warning(
            "closing pid %d's connection: the daemon holds its limit of %d bytes of answers "
            "nobody has read",
            self.peer.pid,
            limit,
        )
        self.session.peer_gone = True
        self.session.outbox = bytearray()
        self.server.unread(self, 0)
        self._unread = 0
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    async def _flush_outbox(self) -> None:
        """On the event loop: write the outbox out as the peer reads it."""
        while True:
            try:
                await anyio.wait_writable(self.sock)
            except (anyio.ClosedResourceError, OSError, ValueError):
                # Closed meanwhile (ValueError: before the wait began; its descriptor may
                # already serve another connection). A writer must never fail the server's
                # task group: that would abort every connection.
                with self._lock:
                    self._writer_scheduled = False
                return
            with self._lock:
                outbox = self.session.outbox
                if self._closed and not outbox:
                    self._writer_scheduled = False
                    return
                try:
                    sent = self.sock.send(outbox)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = len(outbox)  # the peer is gone
                    self.session.peer_gone = True
                self.session.sent(sent)
                self._account_unread()
                done = not self.session.outbox
                if done:
                    self._writer_scheduled = False
                self._changed.notify_all()
            if done:
                if self._drained_callback is not None:
                    self._drained_callback()
                return
