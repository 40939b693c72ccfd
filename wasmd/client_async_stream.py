"""``Client.stream``: a ``wasmd.stream`` call's chunks for anyio code, ``async for chunk in
client.stream(...)``, with credit managed for the caller (client_stream.py says how)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import anyio

from .client_stream import StreamChunks, stream_request
from .errors import WasmdError
from .protocol import Notification, Request
from .streams import DEFAULT_WINDOW, parse_window

Send = Callable[[Request | Notification], Awaitable[None]]


class ClientStream(StreamChunks):
    """``async for chunk in client.stream(...)``; afterwards ``result``."""

    def __init__(
        self,
        register: Callable[[ClientStream], int],
        unregister: Callable[[int], None],
        send: Send,
        method: str,
        params: Sequence[Any],
        window: int | None,
    ) -> None:
        window = DEFAULT_WINDOW if window is None else window
        parse_window({"window": window})
        super().__init__(window)
        self._register, self._unregister, self._send = register, unregister, send
        self._method, self._params = method, params
        self.msgid: int | None = None
        self._changed = anyio.Event()

    # the client's receive loop
    def deliver(self, value: Any) -> None:
        super().deliver(value)
        self._changed.set()

    def finish(self, error: WasmdError | None, result: Any) -> None:
        self.outcome = (error, result)
        self._changed.set()

    # the caller
    async def _started(self) -> int:
        if self.msgid is None:
            self.msgid = self._register(self)
            await self._send(stream_request(self.msgid, self._method, self._params, self.window))
        return self.msgid

    def __aiter__(self) -> ClientStream:
        return self

    async def __anext__(self) -> Any:
        if self.done:
            raise StopAsyncIteration
        msgid = await self._started()
        try:
            while not self.chunks and self.outcome is None:
                self._changed = anyio.Event()
                await self._changed.wait()
        except BaseException:
            await self.aclose()
            raise
        if self.chunks:
            value, grant = self.take()
            if grant and self.outcome is None:
                await self._send(Notification("wasmd.credit", [msgid, grant]))
            return value
        self._unregister(msgid)
        self.end()
        raise StopAsyncIteration

    async def push(self, value: Any) -> None:
        """One value for the guest's ``recv``."""
        msgid = await self._started()
        await self._send(Notification("wasmd.push", [msgid, value]))

    async def push_end(self) -> None:
        """No more values: the guest's ``recv`` answers the end once it has read them."""
        msgid = await self._started()
        await self._send(Notification("wasmd.push_end", [msgid]))

    async def aclose(self) -> None:
        """Stop the call if it is still running (``wasmd.cancel``); drop what comes later."""
        if self.done:
            return
        self.done = True
        if self.msgid is not None:
            self._unregister(self.msgid)
            if self.outcome is None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    await self._send(Notification("wasmd.cancel", [self.msgid]))

    async def __aenter__(self) -> ClientStream:
        await self._started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
