"""The data plane: calls run on the thread that read them, and a slow call never blocks its
own connection; cancellation by notification and by hanging up."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import anyio.abc
import msgpack
import pytest

from wasmd.protocol import NEED_DATA, Connection, Response
from wasmd.runtime import fastcall

from .conftest import running_daemon
from .wat import ARITH, SPIN

# A minute's deadline: within a test, a spin ends only by cancellation or by the test's end.
SPINNER = {"spin.wat": SPIN, "spin.toml": "[plugin]\ntimeout_ms = 60000\n", "arith.wat": ARITH}

needs_guard = pytest.mark.skipif(
    not fastcall.ENABLED, reason="interrupting a running call needs the epoch-deadline callback"
)


def _request(msgid: int, method: str, *params: object) -> bytes:
    return bytes(msgpack.packb([0, msgid, method, list(params)]))


def _notification(method: str, *params: object) -> bytes:
    return bytes(msgpack.packb([2, method, list(params)]))


async def _next_response(stream: anyio.abc.ByteStream, protocol: Connection) -> Response:
    while True:
        event = protocol.next_event()
        if event is NEED_DATA:
            protocol.receive_data(await stream.receive())
        elif isinstance(event, Response):
            return event


async def test_ping_behind_a_runaway_call_on_the_same_connection_is_answered(
    short_tmp: Path,
) -> None:
    async with running_daemon(short_tmp, SPINNER) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            protocol = Connection()
            # One write: the spin is decoded first and runs on the reader's thread.
            await stream.send(_request(1, "spin.spin") + _request(2, "wasmd.ping"))
            with anyio.fail_after(10):
                first = await _next_response(stream, protocol)
            assert (first.msgid, first.result) == (2, "pong")
            # And a call to another plug-in, read after the hand-off, runs at once too.
            await stream.send(_request(3, "arith.add", 2, 3))
            with anyio.fail_after(10):
                second = await _next_response(stream, protocol)
            assert (second.msgid, second.result) == (3, 5)


@needs_guard
async def test_cancel_notification_interrupts_a_running_call(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, SPINNER) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            protocol = Connection()
            started = time.monotonic()
            await stream.send(_request(7, "spin.spin"))
            await stream.send(_notification("wasmd.cancel", 7))
            with anyio.fail_after(10):
                response = await _next_response(stream, protocol)
            assert response.msgid == 7
            assert response.error is not None
            assert response.error[0] == 11  # the wire's code for cancelled (DESIGN.md)
            assert time.monotonic() - started < 30  # not the minute's deadline
            # The instance was replaced; the plug-in serves on.
            await stream.send(_request(8, "spin.quick"))
            with anyio.fail_after(10):
                after = await _next_response(stream, protocol)
            assert (after.msgid, after.result) == (8, 7)
        async with daemon.client() as client:
            stats = await client.stats()
            assert stats["plugins"]["spin"]["errors"] == {"cancelled": 1}


async def test_cancelling_a_call_not_in_flight_is_ignored(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, SPINNER) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            protocol = Connection()
            await stream.send(
                _notification("wasmd.cancel", 99)
                + _notification("wasmd.cancel", "nonsense")
                + _notification("wasmd.cancel")
                + _request(1, "arith.add", 1, 1)
            )
            with anyio.fail_after(10):
                response = await _next_response(stream, protocol)
            assert (response.msgid, response.result) == (1, 2)


@needs_guard
async def test_client_cancelling_its_call_cancels_it_in_the_daemon(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, SPINNER) as daemon:
        async with daemon.client() as client, daemon.client() as observer:
            await observer.subscribe(["plugin.cancelled"])
            events = observer.events()
            with anyio.move_on_after(0.2):
                await client.call("spin.spin")
            with anyio.fail_after(10):
                event = await anext(events)
            assert (event["plugin"], event["export"]) == ("spin", "spin")
            assert (await observer.stats())["plugins"]["spin"]["errors"] == {"cancelled": 1}
            assert await client.call("spin.quick") == 7
