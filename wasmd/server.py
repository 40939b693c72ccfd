"""The MessagePack-RPC server on a Unix stream socket: accepting, limits, draining.

Theory of operation. The event loop accepts connections, checks each peer (SO_PEERCRED)
against the allow list and ``max_connections``, and gives every admitted connection to a
reader thread (``connection.ClientConnection``), which reads, decodes and runs its requests
where they arrive. The loop keeps the control plane: built-ins that touch loop state
(``on_loop``), the writers of outboxes the kernel would not take at once (``spawn``), and
the bookkeeping of connections that ended. ``HandoffWatcher`` makes sure a slow call does
not stop its own connection from being read.

Threads are bounded: one reader per connection (at most ``max_connections``), plus one per
call still running after its reader was handed on (at most the plug-ins' instances). A
thread that cannot be started costs a connection (refused ``resource_exhausted``) or a
hand-off (tried again at the next scan), never the server or the watcher.

The server changes no interpreter-wide setting: an embedding program keeps its own. The
CLI's ``serve`` sets two for the daemon's process (``tune_interpreter``): ``THREAD_STACK``
bytes of stack for each new thread (room for wasmtime's 512 KiB wasm stack and the host
frames; some C libraries' default is far smaller) and a 1 ms GIL switch interval.
"""

from __future__ import annotations

import asyncio  # call_soon_threadsafe: a reader thread wakes the loop without waiting
import collections
import contextlib
import logging
import os
import select
import socket
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from .connection import ClientConnection, Dispatch, ServerLimits, Session
from .errors import ErrorCode, WasmdError
from .handoff import HandoffWatcher
from .memory import release_free_memory
from .peers import Peer, admits, peer_credentials
from .protocol import encode_notification

__all__ = [
    "ClientConnection",
    "Dispatch",
    "RpcServer",
    "ServerCounters",
    "ServerLimits",
    "Session",
    "tune_interpreter",
]

log = logging.getLogger("wasmd.server")

THREAD_STACK = 4 * 1024 * 1024


def tune_interpreter() -> None:
    """For the daemon's own process only (the CLI's ``serve``): a stack for every thread
    started from now on that wasmtime fits in, and a GIL switch interval short enough for a
    ping to stay prompt behind a flood of built-ins. Never called by library code: both
    settings are the whole interpreter's, and an embedding program keeps its own."""
    threading.stack_size(THREAD_STACK)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


# How long a thread may keep the GIL while another waits for it (Python's default: 5 ms).
# Built-ins run in Python on their connection's reader: with 5 ms, a ping on another
# connection waited up to that per turn behind a flood of wasmd.describe (bench 7c p99
# 7.0 ms; 4.6 ms with 1 ms), at no cost to throughput that stood out (bench 2a, 2b).
GIL_SWITCH_INTERVAL = 0.001
# A request longer than this hands its connection's reading to another thread; checked
# every HANDOFF_PERIOD, so a request pipelined behind a slow one waits at most about both.
HANDOFF_BUDGET = 0.002
HANDOFF_PERIOD = 0.002
# Freed decoder memory goes back to the system at most this often (see return_free_memory).
TRIM_INTERVAL = 0.1
# How long an aborted connection's reader may take to finish before its socket is closed
# under it (a running call ends at the next epoch tick; a host function may take longer).
ABORT_WAIT = 1.0


# Places of max_connections that only root and the daemon's own uid may take, so a flood of
# connections from one user never locks out the administrator.
CONNECTION_RESERVE = 16


@dataclass
class ServerCounters:
    connections_total: int = 0
    refused: int = 0
    protocol_errors: int = 0
    requests_of_closed: int = 0
    open: set[ClientConnection] = field(default_factory=set)

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self.open)

    @property
    def requests(self) -> int:
        # Each reader counts its own requests: no lock on the hot path.
        return self.requests_of_closed + sum(c.requests for c in list(self.open))


class RpcServer:
    def __init__(
        self,
        dispatch: Dispatch,
        *,
        limits: ServerLimits,
        is_control: Callable[[str], bool] | None = None,
        allow_uids: frozenset[int],
        allow_gids: frozenset[int],
        counters: ServerCounters | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.limits = limits
        # Requests dispatched past a connection's in-flight limit (see session.py).
        self.is_control: Callable[[str], bool] = is_control or _no_control
        self.allow_uids = allow_uids
        self.allow_gids = allow_gids
        self.counters = counters or ServerCounters()
        self.watcher = HandoffWatcher(budget=HANDOFF_BUDGET, period=HANDOFF_PERIOD)
        self._accepting = anyio.CancelScope()
        self._none_open = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._own_uid = os.getuid()
        self._per_uid: collections.Counter[int] = collections.Counter()
        self._buffered = _Budget(limits.max_buffered)
        self._unread = _Budget(limits.max_unread)
        self._counters_lock = threading.Lock()
        self._trim_scheduled = False
        # Every open connection's socket, asked only for POLLHUP (which poll reports whatever
        # is asked): at the limit, one poll(0) tells how many peers have hung up, instead of
        # a scan of every connection per refused connect (issue 22, item 8). Loop-owned.
        self._hangups = select.poll()

    async def serve(self, listen_sock: socket.socket) -> None:
        """Accept connections until cancelled; a cancelled ``serve`` aborts the open ones."""
        self._loop = asyncio.get_running_loop()
        listen_sock.setblocking(False)
        self.watcher.start()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                with self._accepting:
                    while True:
                        await anyio.wait_readable(listen_sock)
                        try:
                            sock, _ = listen_sock.accept()
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError as exc:  # EMFILE and friends: keep serving the rest
                            log.error("accept failed: %s", exc)
                            await anyio.sleep(0.05)
                            continue
                        self._admit(sock)
                await anyio.sleep_forever()  # the outbox writers run in this task group
        finally:
            with anyio.CancelScope(shield=True):
                await self._abort_all()
            self.watcher.stop()

    async def _abort_all(self) -> None:
        """Cancel every call and close every connection; their readers end within a tick."""
        for connection in list(self.counters.open):
            connection.abort()
        if self.counters.open:
            with anyio.move_on_after(ABORT_WAIT):
                await self._none_open.wait()
        for connection in list(self.counters.open):  # a reader stuck in a host function
            connection.close_now()

    async def drain(self) -> None:
        """Stop accepting; every connection answers what its peer has sent, then closes.

        Returns when the last connection has closed; bound it with a timeout.
        """
        self._accepting.cancel()
        for connection in list(self.counters.open):
            connection.drain()
        if self.counters.open:
            await self._none_open.wait()

    @property
    def in_flight(self) -> int:
        return sum(connection.in_flight for connection in list(self.counters.open))

    # --- for connections ------------------------------------------------------------------

    def on_loop(self, func: Callable[..., object], *args: Any) -> None:
        """Run ``func(*args)`` on the event loop, from any thread."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to do
            loop.call_soon_threadsafe(func, *args)

    def spawn(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start a task in the server's task group (on the loop)."""
        if self._tg is not None:
            self._tg.start_soon(func)

    def return_free_memory(self) -> None:
        """On the loop: give memory that idle connections let go back to the system, at most
        every ``TRIM_INTERVAL`` (one trim serves every connection that went idle before it)."""
        if self._trim_scheduled or self._loop is None:
            return
        self._trim_scheduled = True

        def trim() -> None:
            self._trim_scheduled = False
            release_free_memory()

        self._loop.call_later(TRIM_INTERVAL, trim)

    def buffered(self, connection: ClientConnection, size: int) -> bool:
        """Any thread: ``connection`` now holds ``size`` bytes of an unfinished message;
        False if that would take the daemon past ``max_buffered`` (then it is not counted)."""
        return self._buffered.hold(connection, size)

    def unread(self, connection: ClientConnection, size: int) -> bool:
        """Any thread: ``connection``'s peer has ``size`` bytes of answers it has not read;
        False if that would take the daemon past ``max_unread`` (then it is not counted)."""
        return self._unread.hold(connection, size)

    @property
    def buffered_bytes(self) -> int:
        """Memory charged for unfinished messages, over all connections (``max_buffered``)."""
        return self._buffered.total

    @property
    def unread_bytes(self) -> int:
        """Answers written for peers that have not read them, over all connections."""
        return self._unread.total

    def note_protocol_error(self) -> None:
        """Any thread: a peer broke the protocol."""
        with self._counters_lock:
            self.counters.protocol_errors += 1

    def connection_closed(self, connection: ClientConnection) -> None:
        """On the loop: ``connection`` has closed its socket."""
        counters = self.counters
        self.buffered(connection, 0)
        self.unread(connection, 0)
        self.return_free_memory()  # what its buffers held goes back to the system
        if connection in counters.open:
            counters.open.discard(connection)
            # Its descriptor number is closed and not yet reused: both happen on the loop.
            self._hangups.unregister(connection.fileno)
            counters.requests_of_closed += connection.requests
            self._per_uid[connection.peer.uid] -= 1
            if not self._per_uid[connection.peer.uid]:
                del self._per_uid[connection.peer.uid]
        if not counters.open:
            self._none_open.set()

    # --- accepting --------------------------------------------------------------------------

    def _admit(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        peer = peer_credentials(sock)
        refusal = self._refusal(peer)
        if refusal is not None:
            self.counters.refused += 1
            log.warning("refused connection from pid %d: %s", peer.pid, refusal.message)
            with contextlib.suppress(OSError):
                sock.send(encode_notification("wasmd.error", [refusal.to_wire()]))
            sock.close()
            return
        connection = ClientConnection(self, sock, peer)
        self.counters.connections_total += 1
        self.counters.open.add(connection)
        self._hangups.register(connection.fileno, 0)
        self._per_uid[peer.uid] += 1
        self._none_open = anyio.Event() if self._none_open.is_set() else self._none_open
        try:
            connection.start()
        except RuntimeError as exc:  # can't start new thread: this peer is refused, no more
            self.counters.connections_total -= 1
            self.counters.refused += 1
            log.error("refused connection from pid %d: no reader thread: %s", peer.pid, exc)
            error = WasmdError(ErrorCode.RESOURCE_EXHAUSTED, f"cannot serve a connection: {exc}")
            with contextlib.suppress(OSError):
                sock.send(encode_notification("wasmd.error", [error.to_wire()]))
            connection.close_now()
            return
        if self._accepting.cancel_called:
            connection.drain()  # accepted just as draining began

    def _live(self) -> int:
        """Open connections whose peers have not hung up: a client that closed and at once
        reconnects must not find its old connection, not yet reaped, holding the place.
        One system call whatever the number of connections (``_hangups``)."""
        return len(self.counters.open) - len(self._hangups.poll(0))

    def _refusal(self, peer: Peer) -> WasmdError | None:
        if not admits(peer, self.allow_uids, self.allow_gids):
            return WasmdError(
                ErrorCode.PERMISSION_DENIED, f"uid {peer.uid} (gid {peer.gid}) may not connect"
            )
        limits = self.limits
        privileged = peer.uid in (0, self._own_uid)
        limit = limits.max_connections
        if not privileged:
            limit = max(1, limit - CONNECTION_RESERVE)
        if self.counters.connections >= limit and self._live() >= limit:
            return WasmdError(
                ErrorCode.BUSY, f"too many connections (limit {limits.max_connections})"
            )
        if not privileged and self._per_uid[peer.uid] >= limits.max_connections_per_uid:
            return WasmdError(
                ErrorCode.BUSY,
                f"too many connections from uid {peer.uid} "
                f"(limit {limits.max_connections_per_uid} per uid)",
            )
        return None


class _Budget:
    """Bytes the connections hold of one kind, bounded across the daemon (any thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._held: dict[ClientConnection, int] = {}
        self._lock = threading.Lock()

    def hold(self, connection: ClientConnection, size: int) -> bool:
        """``connection`` now holds ``size`` bytes; False if that would take the total past
        the limit (then it is not counted)."""
        with self._lock:
            total = self.total - self._held.get(connection, 0) + size
            if size and total > self.limit:
                return False
            self.total = total
            if size:
                self._held[connection] = size
            else:
                self._held.pop(connection, None)
            return True


def _no_control(method: str) -> bool:
    return False
