"""The MessagePack-RPC server on a Unix stream socket.

Theory of operation. Each connection has one reader task on the event loop: it feeds the
sans-IO ``protocol.Connection`` and hands every request to the injected ``dispatch``
callable with a ``respond`` callback. ``respond`` may be called from any thread — plug-in
calls finish on their worker threads — and writes the encoded response straight to the
non-blocking socket under the connection's lock; only what the kernel does not take at once
is buffered for the connection's writer task to flush when the socket is writable. So a
plug-in call costs one thread handoff (loop -> worker) and no task per request.

Limits. At most ``max_in_flight`` requests of one connection run at a time: past it the
reader stops reading (backpressure, not errors) until responses go out; a peer that does
not read its responses stops being read once ``OUTBOX_HIGH_WATER`` bytes wait for it.
Bytes that are not MessagePack-RPC get a ``wasmd.error`` notification and close that
connection only. Peers are identified with SO_PEERCRED and checked against the allow list
before anything is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import anyio
import anyio.abc

from .backlog import backlog
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
    encode_notification,
    encode_response,
)

log = logging.getLogger("wasmd.server")

OUTBOX_HIGH_WATER = 4 * 1024 * 1024
RECEIVE_SIZE = 256 * 1024
_UCRED = struct.Struct("3i")


class Peer(NamedTuple):
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> Peer:
    return Peer(*_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)))


def supplementary_groups(pid: int) -> frozenset[int]:
    """The peer's supplementary groups: SO_PEERCRED carries only the primary gid, and a
    user is usually in the socket's group as a supplementary one."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


Respond = Callable[[WasmdError | None, Any], None]


class Session(Protocol):
    """What a method handler may know and do about the connection a request came on."""

    peer: Peer

    def notify(self, method: str, params: list[Any]) -> None: ...

    def on_close(self, callback: Callable[[], None]) -> None: ...

    @property
    def outbox_bytes(self) -> int: ...

    def on_drained(self, callback: Callable[[], None] | None) -> None: ...


Dispatch = Callable[[Session, str, list[Any], Respond], None]


@dataclass(frozen=True)
class ServerLimits:
    max_message_size: int = 16 * 1024 * 1024
    max_in_flight: int = 128
    max_connections: int = 1024


@dataclass
class ServerCounters:
    connections: int = 0
    connections_total: int = 0
    refused: int = 0
    requests: int = 0
    protocol_errors: int = 0


class RpcServer:
    def __init__(
        self,
        dispatch: Dispatch,
        *,
        limits: ServerLimits,
        allow_uids: frozenset[int],
        allow_gids: frozenset[int],
        counters: ServerCounters | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.limits = limits
        self.allow_uids = allow_uids
        self.allow_gids = allow_gids
        self.counters = counters or ServerCounters()
        self._connections: set[_ServerConnection] = set()
        self._accepting = anyio.CancelScope()
        self._finished = anyio.Event()

    async def serve(self, listener: anyio.abc.SocketListener) -> None:
        """Accept connections until cancelled, or until ``drain`` has let them all finish."""
        try:
            async with anyio.create_task_group() as tg:
                with self._accepting:
                    while True:
                        stream = await listener.accept()
                        tg.start_soon(self._handle, stream)
        finally:
            self._finished.set()

    async def drain(self) -> None:
        """Stop accepting; every connection answers what its peer has sent, then closes.

        Returns when the last connection has closed; bound it with a timeout.
        """
        self._accepting.cancel()
        for connection in tuple(self._connections):
            connection.drain()
        await self._finished.wait()

    @property
    def in_flight(self) -> int:
        return sum(connection.in_flight for connection in self._connections)

    def _refusal(self, peer: Peer) -> WasmdError | None:
        if self.counters.connections >= self.limits.max_connections:
            limit = self.limits.max_connections
            return WasmdError(ErrorCode.BUSY, f"too many connections (limit {limit})")
        if peer.uid == 0 or peer.uid in self.allow_uids or peer.gid in self.allow_gids:
            return None
        if self.allow_gids & supplementary_groups(peer.pid):
            return None
        return WasmdError(
            ErrorCode.PERMISSION_DENIED, f"uid {peer.uid} (gid {peer.gid}) may not connect"
        )

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        peer = peer_credentials(sock)
        refusal = self._refusal(peer)
        if refusal is not None:
            self.counters.refused += 1
            log.warning("refused connection from pid %d: %s", peer.pid, refusal.message)
            with contextlib.suppress(OSError):
                sock.send(encode_notification("wasmd.error", [refusal.to_wire()]))
            await stream.aclose()
            return
        self.counters.connections += 1
        self.counters.connections_total += 1
        connection = _ServerConnection(self, stream, sock, peer)
        self._connections.add(connection)
        if self._accepting.cancel_called:
            connection.drain()  # accepted just as draining began
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self.counters.connections -= 1


class _ServerConnection:
    def __init__(
        self, server: RpcServer, stream: anyio.abc.SocketStream, sock: socket.socket, peer: Peer
    ) -> None:
        self.server = server
        self.stream = stream
        self.sock = sock
        self.peer = peer
        self.protocol = Connection(max_message_size=server.limits.max_message_size)
        self.max_in_flight = server.limits.max_in_flight
        self._loop_thread = threading.get_ident()
        # anyio runs on asyncio here; call_soon_threadsafe is the cheapest wake-up from a
        # worker thread (anyio.from_thread would block the worker until the loop ran it).
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._outbox = bytearray()
        self._closed = False
        self._in_flight = 0
        self._reader_waiting = False
        self._reader_wakeup = anyio.Event()
        self._writer_wakeup = anyio.Event()
        self._idle = anyio.Event()  # set when nothing is in flight and the outbox is empty
        self._close_callbacks: list[Callable[[], None]] = []
        self._drained_callback: Callable[[], None] | None = None
        self._draining = False
        self._read_wait: anyio.CancelScope | None = None
        self._idle_waiting = False
        self._writer_scheduled = False  # a wake-up of the writer task is on its way

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def drain(self) -> None:
        """Read only what has already arrived, answer it, then close."""
        self._draining = True
        if self._read_wait is not None:
            self._read_wait.cancel()

    # --- Session ---------------------------------------------------------------------------

    def notify(self, method: str, params: list[Any]) -> None:
        self._write(encode_notification(method, params))

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close_callbacks.append(callback)

    @property
    def outbox_bytes(self) -> int:
        """Bytes written for this peer that the kernel has not taken yet."""
        return len(self._outbox)

    def on_drained(self, callback: Callable[[], None] | None) -> None:
        self._drained_callback = callback

    # --- life --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer)
                await self._reader()
                await self._wait_idle()
                tg.cancel_scope.cancel()
        finally:
            with self._lock:
                self._closed = True
            for callback in self._close_callbacks:
                callback()
            await self.stream.aclose()

    async def _wait_idle(self) -> None:
        while True:
            with self._lock:
                if self._closed or (self._in_flight == 0 and not self._outbox):
                    return
                self._idle = anyio.Event()
                self._idle_waiting = True  # only now is waking the loop for it worth it
                idle = self._idle
            await idle.wait()

    async def _reader(self) -> None:
        protocol = self.protocol
        server = self.server
        dispatch = server.dispatch
        counters = server.counters
        while True:
            try:
                event = protocol.next_event()
            except RemoteProtocolError as exc:
                counters.protocol_errors += 1
                log.warning("pid %d sent garbage, closing: %s", self.peer.pid, exc.message)
                self.notify("wasmd.error", [[int(ErrorCode.INVALID_REQUEST), exc.message]])
                return
            if event is NEED_DATA:
                await self._throttle()
                protocol.receive_data(await self._receive())
            elif event is EOF:
                return
            elif type(event) is Request:
                counters.requests += 1
                with self._lock:
                    self._in_flight += 1
                respond = functools.partial(self._respond, event.msgid)
                try:
                    dispatch(self, event.method, event.params, respond)
                except WasmdError as exc:
                    respond(exc, None)
                except Exception as exc:
                    log.exception("dispatching %s failed", event.method)
                    respond(WasmdError(ErrorCode.INTERNAL, f"internal error: {exc!r}"), None)
            elif type(event) is BadRequest:
                with self._lock:
                    self._in_flight += 1
                self._respond(
                    event.msgid, WasmdError(ErrorCode.INVALID_REQUEST, event.message), None
                )
            # Responses and notifications from a client are ignored (pynvim sends
            # nvim_set_client_info, for one).
            elif not isinstance(event, Notification):
                log.debug("ignoring %r from pid %d", event, self.peer.pid)

    async def _receive(self) -> bytes:
        """The next bytes from the peer; ``b""`` at its end, or once draining has read all
        that had arrived."""
        while True:
            try:
                return self.sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                if self._draining:
                    return b""
                with anyio.CancelScope() as self._read_wait:
                    await anyio.wait_readable(self.sock)
                self._read_wait = None
            except OSError:
                return b""

    async def _throttle(self) -> None:
        """Stop reading while the peer has too much in flight or unread (backpressure)."""
        while True:
            with self._lock:
                if self._in_flight < self.max_in_flight and len(self._outbox) < OUTBOX_HIGH_WATER:
                    self._reader_waiting = False
                    return
                self._reader_waiting = True
                self._reader_wakeup = anyio.Event()
                wakeup = self._reader_wakeup
            await wakeup.wait()

    # --- responses (any thread) ------------------------------------------------------------

    def _respond(self, msgid: int, error: WasmdError | None, result: Any) -> None:
        try:
            data = encode_response(msgid, None if error is None else error.to_wire(), result)
        except LocalProtocolError as exc:
            log.error("response to msgid %d cannot be encoded: %s", msgid, exc)
            data = encode_response(msgid, [int(ErrorCode.INTERNAL), str(exc)], None)
        self._write(data, finished=True)

    def _write(self, data: bytes, *, finished: bool = False) -> None:
        with self._lock:
            if finished:
                self._in_flight -= 1
            if not self._closed:
                if self._outbox or backlog.more_queued:
                    # Behind what waits already, or more answers are on their way from this
                    # worker: the loop's writer sends them together, in one system call.
                    self._outbox += data
                else:
                    self._send(data)
            wakes = self._wakes()
        self._notify(wakes)

    def _send(self, data: bytes) -> None:
        """Send now what the kernel takes; buffer the rest for the writer task. Under lock."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = len(data)  # the peer is gone; the reader will see it
        if sent < len(data):
            self._outbox += memoryview(data)[sent:]

    def _wakes(self) -> tuple[bool, bool, bool]:
        """Which loop-side waiters need waking now; each is woken once. Under lock."""
        writer = bool(self._outbox) and not self._writer_scheduled
        if writer:
            self._writer_scheduled = True
        reader = (
            self._reader_waiting
            and self._in_flight < self.max_in_flight
            and len(self._outbox) < OUTBOX_HIGH_WATER
        )
        if reader:
            self._reader_waiting = False
        idle = self._idle_waiting and self._in_flight == 0 and not self._outbox
        if idle:
            self._idle_waiting = False
        return writer, reader, idle

    def _notify(self, wakes: tuple[bool, bool, bool]) -> None:
        # Waking the loop from a worker thread costs syscalls on both sides: only on need.
        if any(wakes):
            self._on_loop(self._wake, *wakes)

    def _on_loop(self, func: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            func(*args)
        else:
            self._loop.call_soon_threadsafe(func, *args)

    def _wake(self, writer: bool, reader: bool, idle: bool) -> None:
        if writer:
            self._writer_wakeup.set()
        if reader:
            self._reader_wakeup.set()
        if idle:
            self._idle.set()

    async def _writer(self) -> None:
        while True:
            await self._writer_wakeup.wait()
            self._writer_wakeup = anyio.Event()
            while True:
                with self._lock:
                    if self._closed:
                        return
                    if self._outbox:
                        try:
                            sent = self.sock.send(self._outbox)
                        except BlockingIOError:
                            sent = 0
                        except OSError:
                            sent = len(self._outbox)
                        del self._outbox[:sent]
                    left = len(self._outbox)
                    if not left:
                        self._writer_scheduled = False
                    wakes = self._wakes()
                self._wake(False, wakes[1], wakes[2])
                if not left:
                    if self._drained_callback is not None:
                        self._drained_callback()
                    break
                await anyio.wait_writable(self.sock)
