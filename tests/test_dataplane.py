"""The data plane: calls run on the thread that read them, and a slow call never blocks its
own connection; cancellation by notification and by hanging up."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import anyio
import anyio.abc
import msgpack
import pytest

from wasmd import ErrorCode
from wasmd.config import DaemonConfig
from wasmd.daemon import serve
from wasmd.protocol import NEED_DATA, Connection, Response
from wasmd.runtime import fastcall

from .conftest import running_daemon, write_plugins
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


async def _responses_by_msgid(
    stream: anyio.abc.ByteStream, protocol: Connection, count: int
) -> dict[int, Response]:
    got: dict[int, Response] = {}
    while len(got) < count:
        response = await _next_response(stream, protocol)
        got[response.msgid] = response
    return got


@needs_guard
async def test_control_traffic_behind_a_queued_call_is_seen_at_once(short_tmp: Path) -> None:
    # Issue 21's first fault: one write carries a runaway call, a second call to the same
    # one-instance plug-in (queued behind it), a ping, a cancel of the first, and a call to
    # another plug-in. The reader used to park on the queued call: the ping, the cancel and
    # the other call were read only when the first call ended (here: after a minute).
    async with running_daemon(short_tmp, SPINNER) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            protocol = Connection()
            await stream.send(
                _request(1, "spin.spin")
                + _request(2, "spin.spin")
                + _request(3, "wasmd.ping")
                + _notification("wasmd.cancel", 1)
                + _request(4, "arith.add", 2, 3)
            )
            with anyio.fail_after(10):
                got = await _responses_by_msgid(stream, protocol, 3)
            assert got[3].result == "pong"
            assert got[4].result == 5
            assert got[1].error is not None
            assert got[1].error[0] == ErrorCode.CANCELLED
            # The queued call now runs; cancelling it ends it too.
            await stream.send(_notification("wasmd.cancel", 2))
            with anyio.fail_after(10):
                second = await _next_response(stream, protocol)
            assert second.msgid == 2
            assert second.error is not None
            assert second.error[0] == ErrorCode.CANCELLED


async def test_a_queued_call_cancelled_leaves_the_queue_at_once(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, SPINNER) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            protocol = Connection()
            await stream.send(_request(1, "spin.spin") + _request(2, "spin.quick"))
            await stream.send(_notification("wasmd.cancel", 2))
            with anyio.fail_after(10):
                queued = await _next_response(stream, protocol)
            assert queued.msgid == 2
            assert queued.error is not None
            assert queued.error[0] == ErrorCode.CANCELLED
            await stream.send(_notification("wasmd.cancel", 1))
            with anyio.fail_after(10):
                running = await _next_response(stream, protocol)
            assert running.msgid == 1


@needs_guard
async def test_a_hang_up_with_a_call_running_and_one_queued_frees_the_instance(
    short_tmp: Path,
) -> None:
    # The reader parked on the queued call did not see the hang-up: another connection
    # waited for the instance until the running call's deadline (here: a minute).
    async with running_daemon(short_tmp, SPINNER) as daemon:
        async with daemon.client() as other:
            async with await anyio.connect_unix(daemon.socket) as stream:
                await stream.send(_request(1, "spin.spin") + _request(2, "spin.spin"))
                with anyio.fail_after(5):
                    while (await other.stats())["plugins"]["spin"]["in_flight"] < 2:
                        await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(10):
                assert await other.call("spin.quick") == 7


@needs_guard
async def test_serve_stops_when_its_shutdown_trigger_returns(short_tmp: Path) -> None:
    write_plugins(short_tmp / "plugins.d", SPINNER)
    socket_path = short_tmp / "wasmd.sock"
    config = DaemonConfig(
        socket=socket_path,
        plugin_dirs=(short_tmp / "plugins.d",),
        watch=False,
        shutdown_timeout_ms=200,
    )
    trigger = anyio.Event()
    protocol = Connection()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(functools.partial(serve, config, shutdown_trigger=trigger.wait))
            async with await anyio.connect_unix(socket_path) as stream:
                await stream.send(_request(1, "spin.spin") + _request(2, "wasmd.ping"))
                assert (await _next_response(stream, protocol)).msgid == 2
                trigger.set()
                # The running call had shutdown_timeout_ms to finish; then it is cancelled
                # and the connection closed: the daemon is going away.
                with pytest.raises(anyio.EndOfStream):
                    await _next_response(stream, protocol)
        # serve returned on its own: nothing cancelled the task group.
    assert not socket_path.exists()


@needs_guard
async def test_past_the_in_flight_limit_requests_wait_and_pings_are_answered(
    short_tmp: Path,
) -> None:
    # Backpressure stops dispatching, not reading: with two calls in flight (the limit), a
    # third waits unstarted, and a ping behind it is answered at once. The reader used to
    # stop reading there, until a call ended (here: a minute).
    async with running_daemon(short_tmp, SPINNER, max_in_flight=2) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            protocol = Connection()
            await stream.send(
                _request(1, "spin.spin")
                + _request(2, "spin.spin")
                + _request(3, "spin.quick")
                + _request(4, "wasmd.ping")
            )
            with anyio.fail_after(10):
                ping = await _next_response(stream, protocol)
            assert (ping.msgid, ping.result) == (4, "pong")
            # Cancelling the waiting request answers it at once; it never ran.
            await stream.send(_notification("wasmd.cancel", 3))
            with anyio.fail_after(10):
                waiting = await _next_response(stream, protocol)
            assert waiting.msgid == 3
            assert waiting.error is not None
            assert waiting.error[0] == ErrorCode.CANCELLED
            await stream.send(_notification("wasmd.cancel", 1) + _notification("wasmd.cancel", 2))
            with anyio.fail_after(10):
                got = await _responses_by_msgid(stream, protocol, 2)
            assert sorted(got) == [1, 2]
