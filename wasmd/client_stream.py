"""Streaming calls from a client (``Client.stream``, ``SyncClient.stream``): the chunks of a
``wasmd.stream`` call as an iterator, with credit managed for the caller.

Credit. The daemon sends chunk k only while k < window + credit granted. The iterator
grants credit for the chunks the caller has taken, half a window at a time, so at most a
window of chunks is ever held here unread, and a caller that stops reading stops the guest
(it waits for credit, under its deadline). When the chunks end, ``result`` is what the
export returned, or the iteration raises its ``WasmdError``. Leaving early (``aclose``/
``close``, the ``with`` block, or a cancelled task) sends ``wasmd.cancel``; whatever the
daemon still sends for that msgid is dropped.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio

from .errors import WasmdError
from .protocol import Notification, Request, Response
from .streams import DEFAULT_WINDOW, parse_window

STREAM_METHOD = "wasmd.stream"
CHUNK = "wasmd.chunk"


def stream_request(msgid: int, method: str, params: Sequence[Any], window: int) -> Request:
    parse_window({"window": window})
    return Request(msgid, STREAM_METHOD, [method, list(params), {"window": window}])


def credit_step(window: int) -> int:
    """How many taken chunks are credited at once: half a window (one round trip per half
    window keeps the guest sending while the client reads)."""
    return max(1, window // 2)


def route_chunk(streams: Mapping[int, _Chunks], params: Sequence[Any]) -> None:
    """Give a ``wasmd.chunk`` notification's value to the stream its msgid names (one left
    early, or an unknown msgid, takes nothing)."""
    if len(params) == 3 and type(params[0]) is int:
        stream = streams.get(params[0])
        if stream is not None:
            stream.deliver(params[2])


def outcome_of(response: Response) -> tuple[WasmdError | None, Any]:
    error = None if response.error is None else WasmdError.from_wire(response.error)
    return error, response.result


class _Chunks:
    """What both iterators share: the chunks taken off the wire, the outcome, the credit."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.chunks: collections.deque[Any] = collections.deque()
        self.outcome: tuple[WasmdError | None, Any] | None = None
        self.taken = 0  # chunks handed to the caller and not yet credited
        self.result: Any = None
        self.done = False

    def deliver(self, value: Any) -> None:
        self.chunks.append(value)

    def take(self) -> tuple[Any, int]:
        """The next chunk, and how much credit to grant now (0: none yet)."""
        value = self.chunks.popleft()
        self.taken += 1
        if self.taken >= credit_step(self.window):
            grant, self.taken = self.taken, 0
            return value, grant
        return value, 0

    def end(self) -> None:
        """Raise the stream's outcome (StopIteration-like via the caller)."""
        assert self.outcome is not None
        self.done = True
        error, self.result = self.outcome
        if error is not None:
            raise error


# --- async ---------------------------------------------------------------------------------

Send = Callable[[Request | Notification], Awaitable[None]]


class ClientStream(_Chunks):
    """``async for chunk in client.stream(...)``; afterwards ``result``."""

    def __init__(
        self,
        register: Callable[[ClientStream], int],
        unregister: Callable[[int], None],
        send: Send,
        method: str,
        params: Sequence[Any],
        window: int,
    ) -> None:
        super().__init__(window)
        parse_window({"window": window})
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


# --- blocking -------------------------------------------------------------------------------


class SyncStream(_Chunks, Iterator[Any]):
    """``for chunk in sync_client.stream(...)``; afterwards ``result``."""

    def __init__(
        self,
        msgid: int,
        window: int,
        pump: Callable[[], None],
        outcome: Callable[[int], tuple[WasmdError | None, Any] | None],
        send: Callable[[Notification], None],
        abandon: Callable[[int], None],
    ) -> None:
        super().__init__(window)
        self.msgid = msgid
        self._pump, self._outcome, self._send, self._abandon = pump, outcome, send, abandon

    def __next__(self) -> Any:
        if self.done:
            raise StopIteration
        try:
            while not self.chunks and self.outcome is None:
                self._pump()
                self.outcome = self._outcome(self.msgid)
        except BaseException:
            self.close()
            raise
        if self.chunks:
            value, grant = self.take()
            if grant and self.outcome is None:
                self._send(Notification("wasmd.credit", [self.msgid, grant]))
            return value
        self._abandon(self.msgid)
        self.end()
        raise StopIteration

    def push(self, value: Any) -> None:
        self._send(Notification("wasmd.push", [self.msgid, value]))

    def push_end(self) -> None:
        self._send(Notification("wasmd.push_end", [self.msgid]))

    def close(self) -> None:
        """Stop the call if it is still running (``wasmd.cancel``); drop what comes later."""
        if self.done:
            return
        self.done = True
        self._abandon(self.msgid)
        if self.outcome is None:
            with contextlib.suppress(OSError, WasmdError):  # gone: so is the call
                self._send(Notification("wasmd.cancel", [self.msgid]))

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "DEFAULT_WINDOW",
    "ClientStream",
    "SyncStream",
    "outcome_of",
    "route_chunk",
    "stream_request",
]
