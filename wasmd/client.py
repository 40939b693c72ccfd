"""Clients for the wasmd socket: ``Client`` (async, anyio) and ``SyncClient`` (blocking).

Both drive the same sans-IO ``protocol.Connection``. Calls are matched to responses by
msgid, so the async client pipelines freely: many ``call``s may be awaited at once on one
connection. A ``wasmd.error`` notification (the daemon refused or dropped the connection)
fails every pending call with its code; ``wasmd.event`` notifications feed ``events()``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .config import default_socket_path
from .errors import ErrorCode, WasmdError
from .events import LifecycleEvent
from .protocol import EOF, NEED_DATA, Connection, Notification, Request, Response
from .sockets import receive_some, send_all


def resolve_socket(path: str | os.PathLike[str] | None) -> Path:
    """The socket to use: the one given, else $WASMD_SOCKET and the defaults of DESIGN.md 9."""
    return Path(path) if path else default_socket_path(os.environ, os.getuid())


def _absolute(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute here: the daemon's working directory is not the caller's."""
    return os.path.abspath(os.fspath(path))


def _closed_error(detail: str) -> WasmdError:
    return WasmdError(ErrorCode.UNAVAILABLE, f"connection to wasmd closed: {detail}")


def _notification_error(event: Notification) -> WasmdError:
    if event.params:
        return WasmdError.from_wire(event.params[0])
    return _closed_error("the daemon reported an error")


class Client:
    """An async connection to wasmd; create with ``open_client``."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream
        self._sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        self._protocol = Connection()
        self._msgids = itertools.count()
        self._pending: dict[int, tuple[anyio.Event, list[Any]]] = {}
        self._failure: WasmdError | None = None
        self._closed = anyio.Event()
        self._subscribed = False
        self._send_lock = anyio.Lock()
        send, receive = anyio.create_memory_object_stream[LifecycleEvent](1024)
        self._event_send: MemoryObjectSendStream[LifecycleEvent] = send
        self._event_receive: MemoryObjectReceiveStream[LifecycleEvent] = receive

    async def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with ``params``; its result, or ``WasmdError``."""
        if self._failure is not None:
            raise self._failure
        msgid = next(self._msgids) & 0xFFFFFFFF
        done = anyio.Event()
        slot: list[Any] = []
        self._pending[msgid] = (done, slot)
        data = self._protocol.send(Request(msgid, method, list(params)))
        try:
            async with self._send_lock:
                try:
                    await send_all(self._sock, data)
                except OSError as exc:
                    # The daemon may have refused us and closed first: the receive loop is
                    # about to read its reason; give it a moment to arrive.
                    with anyio.move_on_after(1):
                        await self._closed.wait()
                    raise self._failure or _closed_error(exc.strerror or str(exc)) from None
            try:
                await done.wait()
            except BaseException:
                if not done.is_set():
                    await self._cancel_remote(msgid)
                raise
        finally:
            self._pending.pop(msgid, None)
        if slot[0] is not None:
            raise slot.pop(0)  # not through a local: its traceback will hold this frame
        return slot[1]

    async def _cancel_remote(self, msgid: int) -> None:
        """Tell the daemon to stop a call we no longer wait for (best effort, bounded)."""
        data = self._protocol.send(Notification("wasmd.cancel", [msgid]))
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            async with self._send_lock:
                with contextlib.suppress(OSError):
                    await send_all(self._sock, data)

    async def ping(self) -> str:
        return str(await self.call("wasmd.ping"))

    async def list(self) -> list[dict[str, Any]]:
        return list(await self.call("wasmd.list"))

    async def describe(self, name: str) -> dict[str, Any]:
        return dict(await self.call("wasmd.describe", name))

    async def stats(self) -> dict[str, Any]:
        return dict(await self.call("wasmd.stats"))

    async def load_path(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Have the daemon load the plug-in file or folder at ``path`` (``wasmd.load``)."""
        return dict(await self.call("wasmd.load", _absolute(path)))

    async def unload(self, name: str) -> dict[str, Any]:
        """Have the daemon drain and remove plug-in NAME (``wasmd.unload``)."""
        return dict(await self.call("wasmd.unload", name))

    async def subscribe(self, prefixes: Sequence[str] = ()) -> None:
        """Ask for lifecycle events whose type starts with one of ``prefixes`` (all if none)."""
        await self.call("wasmd.subscribe", *([list(prefixes)] if prefixes else []))
        self._subscribed = True

    async def events(self, prefixes: Sequence[str] = ()) -> AsyncIterator[LifecycleEvent]:
        """Yield lifecycle events as they come, subscribing first unless ``subscribe`` was."""
        if not self._subscribed:
            await self.subscribe(prefixes)
        async for event in self._event_receive:
            yield event

    async def _receive_loop(self) -> None:
        protocol = self._protocol
        try:
            while True:
                event = protocol.next_event()
                if event is NEED_DATA:
                    protocol.receive_data(await receive_some(self._sock, 256 * 1024))
                elif event is EOF:
                    self._fail(_closed_error("end of stream"))
                    return
                elif isinstance(event, Response):
                    waiter = self._pending.get(event.msgid)
                    if waiter is not None:
                        error = None if event.error is None else WasmdError.from_wire(event.error)
                        waiter[1][:] = [error, event.result]
                        waiter[0].set()
                elif isinstance(event, Notification):
                    if event.method == "wasmd.error":
                        self._fail(_notification_error(event))
                    elif event.method == "wasmd.event" and event.params:
                        # The daemon marks its own drops; a reader this slow loses the newest.
                        with contextlib.suppress(anyio.WouldBlock):
                            self._event_send.send_nowait(event.params[0])
        except Exception as exc:
            self._fail(_closed_error(str(exc)))

    def _fail(self, error: WasmdError) -> None:
        if self._failure is None:
            self._failure = error
        self._closed.set()
        for done, slot in self._pending.values():
            if not done.is_set():
                slot[:] = [error, None]
                done.set()
        self._event_send.close()


@asynccontextmanager
async def open_client(path: str | os.PathLike[str] | None = None) -> AsyncIterator[Client]:
    """Connect to the daemon's socket; the connection closes when the block ends."""
    socket_path = resolve_socket(path)
    try:
        stream = await anyio.connect_unix(socket_path)
    except OSError as exc:
        raise WasmdError(
            ErrorCode.UNAVAILABLE, f"cannot connect to {socket_path}: {exc.strerror or exc}"
        ) from None
    client = Client(stream)
    try:
        async with stream, anyio.create_task_group() as tg:
            tg.start_soon(client._receive_loop)
            try:
                yield client
            finally:
                tg.cancel_scope.cancel()
                client._event_send.close()
                client._event_receive.close()
    except BaseExceptionGroup as group:
        # The receive loop never raises, so a group holds the caller's own exception:
        # give it back as it was raised, not wrapped.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class SyncClient:
    """A blocking connection to wasmd, for scripts and the CLI; a context manager."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout: float | None = None):
        self.path = resolve_socket(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(self.path))
        except OSError as exc:
            self._sock.close()
            raise WasmdError(
                ErrorCode.UNAVAILABLE, f"cannot connect to {self.path}: {exc.strerror or exc}"
            ) from None
        self._protocol = Connection()
        self._msgids = itertools.count()
        self._results: dict[int, Response] = {}
        self._events: list[LifecycleEvent] = []

    def call(self, method: str, *params: Any) -> Any:
        msgid = next(self._msgids) & 0xFFFFFFFF
        try:
            self._sock.sendall(self._protocol.send(Request(msgid, method, list(params))))
        except OSError as exc:
            # The daemon may have refused us and closed first: its reason is in the stream.
            try:
                while True:
                    self._pump()  # ends by raising the daemon's wasmd.error, or end of stream
            except OSError:
                raise _closed_error(exc.strerror or str(exc)) from None
        while msgid not in self._results:
            self._pump()
        response = self._results.pop(msgid)
        if response.error is not None:
            raise WasmdError.from_wire(response.error)
        return response.result

    def load_path(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Have the daemon load the plug-in file or folder at ``path`` (``wasmd.load``)."""
        return dict(self.call("wasmd.load", _absolute(path)))

    def unload(self, name: str) -> dict[str, Any]:
        """Have the daemon drain and remove plug-in NAME (``wasmd.unload``)."""
        return dict(self.call("wasmd.unload", name))

    def next_event(self) -> LifecycleEvent:
        """Block until the next lifecycle event (after ``call("wasmd.subscribe")``)."""
        while not self._events:
            self._pump()
        return self._events.pop(0)

    def _pump(self) -> None:
        event = self._protocol.next_event()
        if event is NEED_DATA:
            self._protocol.receive_data(self._sock.recv(256 * 1024))
        elif event is EOF:
            raise _closed_error("end of stream")
        elif isinstance(event, Response):
            self._results[event.msgid] = event
        elif isinstance(event, Notification):
            if event.method == "wasmd.error":
                raise _notification_error(event)
            if event.method == "wasmd.event" and event.params:
                self._events.append(event.params[0])

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
