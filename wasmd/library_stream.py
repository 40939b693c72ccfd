"""``Plugin.stream``: a streaming call in this process, as an iterator of its chunks.

The call runs in a thread of its own, as it would on a connection's thread in the daemon,
with a ``streams.CallStream`` on its ticket. Each chunk the guest sends is put on a queue
the iterator reads; the iterator grants one chunk of credit for each it hands out, so the
queue never holds more than the window (the guest waits instead, as behind the socket).
When the chunks end, ``result`` holds what the export returned, or the iteration raises
the call's ``WasmdError``. ``close`` (or leaving the ``with`` block, or dropping the
iterator half-read) cancels the call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

from .errors import ErrorCode, WasmdError
from .runtime import Ticket
from .streams import CallStream, stream_outcome

# The call, run on the stream's thread: (export, params, ticket) -> the export's result.
Run = Callable[[str, Sequence[Any], Ticket], Any]


class PluginStream(Iterator[Any]):
    """The chunks of one streaming call, in order; then ``result``."""

    def __init__(self, run: Run, export: str, params: Sequence[Any], window: int) -> None:
        self.result: Any = None
        self._done = False
        items: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self._items = items
        self._ticket = Ticket(object(), time.monotonic())
        self._stream = CallStream(
            window, lambda seq, value: items.put((True, value)), on_refuse=self._ticket.cancel
        )
        self._ticket.stream = self._stream
        # The thread holds the queue, the ticket and the stream, not this iterator: an
        # iterator dropped half-read is collected, and cancels its call (``__del__``).
        self._thread = threading.Thread(
            target=_run,
            args=(run, export, params, self._ticket, items),
            name=f"wasmd:stream-{export}",
            daemon=True,
        )
        self._thread.start()

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        is_chunk, item = self._items.get()
        if is_chunk:
            self._stream.credit(1)
            return item
        self._done = True
        error, self.result = item
        if error is not None:
            raise error
        raise StopIteration

    def push(self, value: Any) -> None:
        """Give the guest one value for its ``recv``; ``WasmdError`` if the stream refused
        it (past the push bound: the call ends ``busy``)."""
        self._stream.push(value)
        if self._stream.refusal is not None:
            raise self._stream.refusal

    def push_end(self) -> None:
        """No more values: the guest's ``recv`` answers the end once it has read them."""
        self._stream.push_end()

    def close(self, timeout: float | None = None) -> None:
        """Cancel the call if it is still running, and wait for it to end."""
        if not self._done:
            self._ticket.cancel()
            self._thread.join(timeout)
            self._done = True

    def __enter__(self) -> PluginStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._done:
            self._ticket.cancel()


def _run(
    run: Run,
    export: str,
    params: Sequence[Any],
    ticket: Ticket,
    items: queue.SimpleQueue[tuple[bool, Any]],
) -> None:
    """The stream's thread: the call, then its outcome after the last chunk."""
    stream = ticket.stream
    try:
        outcome: tuple[WasmdError | None, Any] = (None, run(export, params, ticket))
    except WasmdError as exc:
        outcome = (stream_outcome(stream, exc), None)
    except BaseException as exc:  # reported to the reader, not lost in this thread
        outcome = (WasmdError(ErrorCode.INTERNAL, f"stream failed: {exc!r}"), None)
    stream.finish()
    items.put((False, outcome))
