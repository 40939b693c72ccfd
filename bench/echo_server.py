"""The floor: the least a Python anyio msgpack-rpc server can do per request.

``python -m bench.echo_server SOCKET`` listens on a Unix socket with anyio (asyncio backend,
as wasmd), feeds what it reads into a msgpack ``Unpacker`` and answers every request
``[0, msgid, method, params]`` with ``[1, msgid, nil, sum(params)]`` — for ``add(a, b)`` that
is ``a + b``; for a call without params, 0. The answers to everything one read brought are
sent with one write, as any reasonable server would (``--unbatched``: one write per answer, the
most literal server, for comparison). No validation, no dispatch, no threads:
whatever wasmd spends beyond this is the price of being a real daemon. Readiness is reported
as wasmd reports it: ``READY=1`` to ``$NOTIFY_SOCKET`` once listening.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import anyio
import anyio.abc
import msgpack


async def handle(stream: anyio.abc.SocketStream) -> None:
    unpacker = msgpack.Unpacker()
    pack = msgpack.Packer().pack
    async with stream:
        async for chunk in stream:
            unpacker.feed(chunk)
            out = [pack([1, msg[1], None, sum(msg[3])]) for msg in unpacker if msg[0] == 0]
            if out:
                await stream.send(b"".join(out))


async def handle_unbatched(stream: anyio.abc.SocketStream) -> None:
    unpacker = msgpack.Unpacker()
    pack = msgpack.Packer().pack
    async with stream:
        async for chunk in stream:
            unpacker.feed(chunk)
            for msg in unpacker:
                if msg[0] == 0:
                    await stream.send(pack([1, msg[1], None, sum(msg[3])]))


def notify_ready() -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if address:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"READY=1", address)


async def main(path: Path, batched: bool) -> None:
    listener = await anyio.create_unix_listener(path)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg, listener:
            tg.start_soon(listener.serve, handle if batched else handle_unbatched)
            notify_ready()
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


if __name__ == "__main__":
    args = sys.argv[1:]
    unbatched = "--unbatched" in args
    if unbatched:
        args.remove("--unbatched")
    if len(args) != 1:
        sys.exit("usage: python -m bench.echo_server [--unbatched] SOCKET")
    socket_path = Path(args[0])
    socket_path.unlink(missing_ok=True)
    try:
        anyio.run(main, socket_path, not unbatched)
    finally:
        socket_path.unlink(missing_ok=True)
