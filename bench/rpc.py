"""A minimal blocking msgpack-rpc client: the bench's own, so that no client library's overhead
or behaviour is part of what is measured. Not thread-safe: one thread per ``RpcClient``."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack


class RpcError(Exception):
    """Raised when a call is answered with an error; ``code`` is its wire code."""

    def __init__(self, error: Any) -> None:
        self.code = error[0] if isinstance(error, list) and error else None
        super().__init__(str(error))


class RpcClient:
    def __init__(self, path: Path | str, timeout: float | None = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._unpacker = msgpack.Unpacker()
        self._pack = msgpack.Packer().pack
        self._next = 0
        self.notifications: list[list[Any]] = []

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, params: Sequence[Any] = ()) -> int:
        """Send one request; its msgid."""
        msgid = self._next
        self._next = (self._next + 1) & 0xFFFFFFFF
        self.sock.sendall(self._pack([0, msgid, method, list(params)]))
        return msgid

    def notify(self, method: str, params: Sequence[Any] = ()) -> None:
        """Send one notification."""
        self.sock.sendall(self._pack([2, method, list(params)]))

    def receive(self) -> list[Any]:
        """The next message: a response ``[1, msgid, error, result]`` or a notification."""
        while True:
            for message in self._unpacker:
                return list(message)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._unpacker.feed(data)

    def response(self) -> list[Any]:
        """The next response; notifications that arrive first are kept in ``notifications``."""
        while True:
            message = self.receive()
            if message[0] == 1:
                return message
            self.notifications.append(message)

    def call(self, method: str, *params: Any) -> Any:
        msgid = self.send(method, params)
        _, got, error, result = self.response()
        if got != msgid:
            raise RuntimeError(f"response to msgid {got}, expected {msgid}")
        if error is not None:
            raise RpcError(error)
        return result

    def next_event(self) -> dict[str, Any]:
        """The next ``wasmd.event`` notification's event (after ``wasmd.subscribe``)."""
        while True:
            message = self.notifications.pop(0) if self.notifications else self.receive()
            if message[0] == 2 and message[1] == "wasmd.event":
                event: dict[str, Any] = message[2][0]
                return event
