"""``SyncClient``: a blocking connection to wasmd, for scripts and the CLI's client commands.

It drives the same sans-IO ``protocol.Connection`` as the async ``Client`` over a plain
``socket``, and imports neither anyio nor the daemon's modules: ``wasmd call`` in a shell
loop pays for the interpreter, argparse, msgpack and this, nothing more (bench/cli_startup.py;
tests/test_cli_startup.py keeps it so).
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ErrorCode, WasmdError
from .protocol import EOF, NEED_DATA, Connection, Notification, Request, Response
from .socket_path import default_socket_path

if TYPE_CHECKING:
    from .client_stream import SyncStream
    from .events import LifecycleEvent


class _TakesChunks(Protocol):
    def deliver(self, value: Any) -> None: ...


def route_chunk(streams: Mapping[int, _TakesChunks], params: Sequence[Any]) -> None:
    """Give a ``wasmd.chunk`` notification's value to the stream its msgid names (a stream
    left early, or an unknown msgid, takes nothing). Both clients route chunks with this."""
    if len(params) == 3 and type(params[0]) is int:
        stream = streams.get(params[0])
        if stream is not None:
            stream.deliver(params[2])


def resolve_socket(path: str | os.PathLike[str] | None) -> Path:
    """The socket to use: the one given, else $WASMD_SOCKET and the defaults of DESIGN.md 9."""
    return Path(path) if path else default_socket_path(os.environ, os.getuid())


def absolute_path(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute here: the daemon's working directory is not the caller's."""
    return os.path.abspath(os.fspath(path))


def connect_error(path: Path, exc: OSError) -> WasmdError:
    """No daemon answers at ``path``."""
    return WasmdError(ErrorCode.UNAVAILABLE, f"cannot connect to {path}: {exc.strerror or exc}")


def closed_error(detail: str) -> WasmdError:
    return WasmdError(ErrorCode.UNAVAILABLE, f"connection to wasmd closed: {detail}")


def notification_error(event: Notification) -> WasmdError:
    if event.params:
        return WasmdError.from_wire(event.params[0])
    return closed_error("the daemon reported an error")


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
            raise connect_error(self.path, exc) from None
        self._protocol = Connection()
        self._msgids = itertools.count()
        self._results: dict[int, Response] = {}
        self._events: list[LifecycleEvent] = []
        self._streams: dict[int, SyncStream] = {}
        self._abandoned: set[int] = set()  # streams left early: their answers are dropped
        self._subscribed = False

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
                raise closed_error(exc.strerror or str(exc)) from None
        while msgid not in self._results:
            self._pump()
        response = self._results.pop(msgid)
        if response.error is not None:
            raise WasmdError.from_wire(response.error)
        return response.result

    # The same methods as the async Client (tests/test_client.py keeps them so).

    def ping(self) -> str:
        return str(self.call("wasmd.ping"))

    def list(self) -> list[dict[str, Any]]:
        return list(self.call("wasmd.list"))

    def describe(self, name: str) -> dict[str, Any]:
        return dict(self.call("wasmd.describe", name))

    def stats(self) -> dict[str, Any]:
        return dict(self.call("wasmd.stats"))

    def load_path(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Have the daemon load the plug-in file or folder at ``path`` (``wasmd.load``)."""
        return dict(self.call("wasmd.load", absolute_path(path)))

    def unload(self, name: str) -> dict[str, Any]:
        """Have the daemon drain and remove plug-in NAME (``wasmd.unload``)."""
        return dict(self.call("wasmd.unload", name))

    # --- streaming calls (client_stream.py) ------------------------------------------------

    def stream(self, method: str, *params: Any, window: int | None = None) -> SyncStream:
        """``for chunk in client.stream("p.e", ...)``: a ``wasmd.stream`` call's chunks as they
        arrive, credit granted as they are taken; then its ``result``. Use it as a context
        manager (or ``close`` it) to cancel it when leaving early. ``window``: 32 unless
        given."""
        # Only a client that streams needs these (a client command imports what it uses).
        from .client_stream import DEFAULT_WINDOW, SyncStream, stream_request

        window = DEFAULT_WINDOW if window is None else window
        msgid = next(self._msgids) & 0xFFFFFFFF
        request = stream_request(msgid, method, params, window)
        self._sock.sendall(self._protocol.send(request))
        stream = SyncStream(
            msgid, window, self._pump, self._stream_outcome, self._notify, self._abandon_stream
        )
        self._streams[msgid] = stream
        return stream

    def _notify(self, event: Notification) -> None:
        self._sock.sendall(self._protocol.send(event))

    def _stream_outcome(self, msgid: int) -> tuple[WasmdError | None, Any] | None:
        response = self._results.pop(msgid, None)
        if response is None:
            return None
        error = None if response.error is None else WasmdError.from_wire(response.error)
        return error, response.result

    def _abandon_stream(self, msgid: int) -> None:
        stream = self._streams.pop(msgid, None)
        unanswered = stream is not None and stream.outcome is None
        if unanswered and self._results.pop(msgid, None) is None:
            self._abandoned.add(msgid)

    def subscribe(self, prefixes: Sequence[str] = ()) -> None:
        """Ask for lifecycle events whose type starts with one of ``prefixes`` (all if none)."""
        self.call("wasmd.subscribe", *([list(prefixes)] if prefixes else []))
        self._subscribed = True

    def events(self, prefixes: Sequence[str] = ()) -> Iterator[LifecycleEvent]:
        """Yield lifecycle events as they come, subscribing first unless ``subscribe`` was."""
        if not self._subscribed:
            self.subscribe(prefixes)
        while True:
            yield self.next_event()

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
            raise closed_error("end of stream")
        elif isinstance(event, Response):
            if event.msgid in self._abandoned:
                self._abandoned.discard(event.msgid)
            else:
                self._results[event.msgid] = event
        elif isinstance(event, Notification):
            if event.method == "wasmd.chunk":
                route_chunk(self._streams, event.params)
            elif event.method == "wasmd.error":
                raise notification_error(event)
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
