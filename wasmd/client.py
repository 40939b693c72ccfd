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
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import WasmdError
from .protocol import EOF, NEED_DATA, Connection, Notification, Request, Response
from .sockets import receive_some, send_all

# SyncClient and resolve_socket live in sync_client.py, which imports no anyio: the CLI's
# client commands use it alone and start quickly (bench/cli_startup.py).
from .sync_client import (
    SyncClient,
    absolute_path,
    closed_error,
    connect_error,
    notification_error,
    resolve_socket,
    route_chunk,
)

# How long one message's write may wait for the daemon to take it (see ``Client._send``).
WRITE_TIMEOUT = 30.0

if TYPE_CHECKING:
    from .client_async_stream import ClientStream
    from .events import LifecycleEvent

__all__ = ["Client", "SyncClient", "open_client", "resolve_socket"]


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
        send, receive = anyio.create_memory_object_stream["LifecycleEvent"](1024)
        self._event_send: MemoryObjectSendStream[LifecycleEvent] = send
        self._event_receive: MemoryObjectReceiveStream[LifecycleEvent] = receive
        self._streams: dict[int, ClientStream] = {}

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
            await self._send(data)
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

    async def _send(self, data: bytes) -> None:
        """Write one whole message. Cancelling the caller never leaves half of it on the
        wire (the stream would be garbage from there on): the write is shielded, and one
        that the daemon does not take within ``WRITE_TIMEOUT`` fails the connection."""
        with anyio.CancelScope(shield=True):
            async with self._send_lock:
                if self._failure is not None:
                    raise self._failure
                try:
                    with anyio.fail_after(WRITE_TIMEOUT):
                        await send_all(self._sock, data)
                except TimeoutError:
                    self._fail(closed_error("the daemon took no bytes for a whole write"))
                    raise self._failure or closed_error("write timed out") from None
                except OSError as exc:
                    # The daemon may have refused us and closed first: the receive loop is
                    # about to read its reason; give it a moment to arrive.
                    with anyio.move_on_after(1):
                        await self._closed.wait()
                    raise self._failure or closed_error(exc.strerror or str(exc)) from None

    async def _cancel_remote(self, msgid: int) -> None:
        """Tell the daemon to stop a call we no longer wait for (best effort, bounded)."""
        data = self._protocol.send(Notification("wasmd.cancel", [msgid]))
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            with contextlib.suppress(OSError, WasmdError):
                await self._send(data)

    async def ping(self) -> str:
        return str(await self.call("wasmd.ping"))

    # --- streaming calls (client_async_stream.py) ------------------------------------------

    def stream(self, method: str, *params: Any, window: int | None = None) -> ClientStream:
        """``async for chunk in client.stream("p.e", ...)``: a ``wasmd.stream`` call's chunks,
        credit granted as they are taken; then its ``result``. ``async with`` it (or
        ``aclose``) to cancel it when leaving early. ``window``: 32 unless given."""
        from .client_async_stream import ClientStream  # only a client that streams needs it

        return ClientStream(
            self._register_stream, self._unregister_stream, self._send_event, method, params, window
        )

    def _register_stream(self, stream: ClientStream) -> int:
        if self._failure is not None:
            raise self._failure
        msgid = next(self._msgids) & 0xFFFFFFFF
        self._streams[msgid] = stream
        return msgid

    def _unregister_stream(self, msgid: int) -> None:
        self._streams.pop(msgid, None)

    async def _send_event(self, event: Request | Notification) -> None:
        if self._failure is not None:
            raise self._failure
        data = self._protocol.send(event)
        async with self._send_lock:
            try:
                await send_all(self._sock, data)
            except OSError as exc:
                raise self._failure or closed_error(exc.strerror or str(exc)) from None

    async def list(self) -> list[dict[str, Any]]:
        return list(await self.call("wasmd.list"))

    async def describe(self, name: str) -> dict[str, Any]:
        return dict(await self.call("wasmd.describe", name))

    async def stats(self) -> dict[str, Any]:
        return dict(await self.call("wasmd.stats"))

    async def load_path(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Have the daemon load the plug-in file or folder at ``path`` (``wasmd.load``)."""
        return dict(await self.call("wasmd.load", absolute_path(path)))

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

    async def next_event(self) -> LifecycleEvent:
        """The next lifecycle event (after ``subscribe``)."""
        try:
            return await self._event_receive.receive()
        except anyio.EndOfStream:
            raise self._failure or closed_error("end of stream") from None

    async def _receive_loop(self) -> None:
        protocol = self._protocol
        try:
            while True:
                event = protocol.next_event()
                if event is NEED_DATA:
                    protocol.receive_data(await receive_some(self._sock, 256 * 1024))
                elif event is EOF:
                    self._fail(closed_error("end of stream"))
                    return
                elif isinstance(event, Response):
                    waiter = self._pending.get(event.msgid)
                    stream = self._streams.get(event.msgid)
                    error = None if event.error is None else WasmdError.from_wire(event.error)
                    if stream is not None:
                        stream.finish(error, event.result)
                    elif waiter is not None:
                        waiter[1][:] = [error, event.result]
                        waiter[0].set()
                elif isinstance(event, Notification):
                    if event.method == "wasmd.chunk":
                        route_chunk(self._streams, event.params)
                    elif event.method == "wasmd.error":
                        self._fail(notification_error(event))
                    elif event.method == "wasmd.event" and event.params:
                        # The daemon marks its own drops; a reader this slow loses the newest.
                        with contextlib.suppress(anyio.WouldBlock):
                            self._event_send.send_nowait(event.params[0])
        except Exception as exc:
            self._fail(closed_error(str(exc)))

    def _fail(self, error: WasmdError) -> None:
        if self._failure is None:
            self._failure = error
        self._closed.set()
        for stream in self._streams.values():
            stream.finish(error, None)
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
        raise connect_error(socket_path, exc) from None
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
