"""Streaming calls from a client (``SyncClient.stream`` here, and what ``Client.stream``
shares, client_async_stream.py): the chunks of a ``wasmd.stream`` call as an iterator, with
credit managed for the caller. No anyio here: the CLI's client commands import this.

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
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

from .errors import WasmdError
from .protocol import Notification, Request
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


class StreamChunks:
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


# --- blocking -------------------------------------------------------------------------------


class SyncStream(StreamChunks, Iterator[Any]):
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
    "SyncStream",
    "stream_request",
]
