"""The Python clients on their own: cancel-safety of ``Client.call`` and the parity of
``Client`` and ``SyncClient``. The peer is a real Unix socket the test reads itself."""

from __future__ import annotations

import inspect
import socket
from pathlib import Path

import anyio

from wasmd import Client, SyncClient
from wasmd.client import open_client
from wasmd.protocol import NEED_DATA, Connection, Request


async def test_a_call_cancelled_mid_write_leaves_no_half_message(short_tmp: Path) -> None:
    path = short_tmp / "peer.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.setblocking(False)
    big = b"x" * (8 * 1024 * 1024)  # far more than the socket buffers hold
    try:
        async with open_client(path) as client:
            await anyio.wait_readable(listener)
            peer, _ = listener.accept()
            peer.setblocking(False)
            with peer:
                protocol = Connection(max_message_size=64 * 1024 * 1024)
                requests: list[Request] = []

                async def read_until(count: int) -> None:
                    while len(requests) < count:
                        event = protocol.next_event()
                        if event is NEED_DATA:
                            await anyio.wait_readable(peer)
                            protocol.receive_data(peer.recv(1024 * 1024))
                        elif isinstance(event, Request):
                            requests.append(event)

                async with anyio.create_task_group() as tg:
                    call_scope = anyio.CancelScope()

                    async def big_call() -> None:
                        with call_scope:
                            await client.call("echo.bytes", big)

                    tg.start_soon(big_call)
                    # The write has begun, and blocks with the socket buffers full: the caller
                    # gives up part way through the message.
                    with anyio.fail_after(10):
                        await anyio.wait_readable(peer)
                    call_scope.cancel()
                    with anyio.fail_after(20):
                        await read_until(1)
                # The whole request went out; the next call's message starts cleanly.
                assert requests[0].method == "echo.bytes"
                assert requests[0].params == [big]
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.call, "wasmd.ping")
                    with anyio.fail_after(20):
                        await read_until(2)
                    assert requests[-1].method == "wasmd.ping"
                    tg.cancel_scope.cancel()
    finally:
        listener.close()


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def test_client_and_sync_client_offer_the_same_methods() -> None:
    lifecycle = {"close"}  # the blocking client's; the async one closes with its block
    assert _public_methods(Client) == _public_methods(SyncClient) - lifecycle
