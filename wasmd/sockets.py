"""Non-blocking socket I/O on the event loop, for the async client.

It reads the raw socket and waits with ``anyio.wait_readable`` / ``wait_writable`` rather
than through anyio's ``UNIXSocketStream`` (the server's reader does the same, with a drain
mode of its own): its receive registers ``Future.set_result`` as the
reader callback, and a cancellation that races with the socket turning readable makes the
loop report ``InvalidStateError``; ``wait_readable`` guards its callback against exactly that.
"""

from __future__ import annotations

import socket

import anyio


async def receive_some(sock: socket.socket, max_bytes: int) -> bytes:
    """The next bytes from ``sock``; ``b""`` once the peer has closed or the socket failed."""
    while True:
        try:
            return sock.recv(max_bytes)
        except BlockingIOError:
            await anyio.wait_readable(sock)
        except OSError:
            return b""


async def send_all(sock: socket.socket, data: bytes) -> None:
    """Write all of ``data``; raises ``OSError`` if the peer is gone."""
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await anyio.wait_writable(sock)
        else:
            view = view[sent:]
