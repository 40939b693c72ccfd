"""Streaming calls through the real daemon on a real socket: ``wasmd.stream``, chunks,
credit, push, cancel, hang-up, and notifications for msgids that are no stream."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import msgpack
import pytest

from wasmd import ErrorCode, SyncClient, WasmdError
from wasmd.runtime import fastcall
from wasmd.streams import MAX_PUSHES

from .conftest import RunningDaemon, running_daemon
from .helpers import subscribe
from .processes import resident_bytes
from .wat_stream import STREAMER

needs_guard = pytest.mark.skipif(
    not fastcall.ENABLED, reason="interrupting a running call needs the epoch-deadline callback"
)

SHORT = "[plugin]\ntimeout_ms = 400\n"  # a deadline the tests wait out on purpose
LONG = "[plugin]\ntimeout_ms = 20000\n"  # a deadline no passing test reaches


@asynccontextmanager
async def streamer(root: Path, manifest: str = LONG) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(
        root, {"streamer.wat": STREAMER, "streamer.toml": manifest}
    ) as daemon:
        yield daemon


class Peer:
    """A raw MessagePack-RPC peer: what it sends is exactly what the test says."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)

    async def send(self, *message: Any) -> None:
        await self.stream.send(msgpack.packb(list(message), use_bin_type=True))

    async def next(self, within: float = 10) -> list[Any]:
        with anyio.fail_after(within):
            while True:
                for message in self.unpacker:
                    return list(message)
                self.unpacker.feed(await self.stream.receive())

    async def until_response(self, msgid: int) -> tuple[list[list[Any]], list[Any]]:
        """The chunks of ``msgid`` before its response, and the response."""
        chunks: list[list[Any]] = []
        while True:
            message = await self.next()
            if message[0] == 1 and message[1] == msgid:
                return chunks, message
            if message[:2] == [2, "wasmd.chunk"] and message[2][0] == msgid:
                chunks.append(message[2])


@asynccontextmanager
async def peer(daemon: RunningDaemon) -> AsyncIterator[Peer]:
    async with await anyio.connect_unix(daemon.socket) as stream:
        yield Peer(stream)


async def test_chunks_arrive_in_order_then_the_response(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as client:
        stream = client.stream("streamer.count", 200, window=4)
        assert [chunk async for chunk in stream] == list(range(200))
        assert stream.result == 200


async def test_wire_shape_of_a_stream(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, peer(daemon) as p:
        await p.send(0, 7, "wasmd.stream", ["streamer.count", [3], {"window": 8}])
        chunks, response = await p.until_response(7)
        assert chunks == [[7, 0, 0], [7, 1, 1], [7, 2, 2]]
        assert response == [1, 7, None, 3]


async def test_a_plain_call_of_a_streaming_export(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as client:
        assert await client.call("streamer.count", 3) == 0  # send answered -1 each time
        assert await client.call("streamer.echo") == 0  # recv answered the end


async def test_no_chunk_past_the_window_and_the_deadline_while_waiting(short_tmp: Path) -> None:
    async with streamer(short_tmp, SHORT) as daemon, peer(daemon) as p:
        await p.send(0, 1, "wasmd.stream", ["streamer.count", [50], {"window": 3}])
        chunks, response = await p.until_response(1)
        assert [seq for _, seq, _ in chunks] == [0, 1, 2]
        assert response[2][0] == ErrorCode.TIMEOUT


async def test_credit_lets_exactly_that_many_more_chunks_out(short_tmp: Path) -> None:
    async with streamer(short_tmp, SHORT) as daemon, peer(daemon) as p:
        await p.send(0, 1, "wasmd.stream", ["streamer.count", [50], {"window": 2}])
        assert (await p.next())[2][:2] == [1, 0]
        await p.send(2, "wasmd.credit", [1, 3])
        chunks, response = await p.until_response(1)
        assert [seq for _, seq, _ in chunks] == [1, 2, 3, 4]  # seq < window 2 + credit 3
        assert response[2][0] == ErrorCode.TIMEOUT


async def test_cancel_while_waiting_for_credit(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, peer(daemon) as p:
        await p.send(0, 1, "wasmd.stream", ["streamer.count", [50], {"window": 1}])
        assert (await p.next())[2] == [1, 0, 0]
        await p.send(2, "wasmd.cancel", [1])
        _, response = await p.until_response(1)
        assert response[2][0] == ErrorCode.CANCELLED


@needs_guard
async def test_cancel_while_the_guest_runs(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, peer(daemon) as p:
        await p.send(0, 1, "wasmd.stream", ["streamer.spin", []])
        assert (await p.next())[2] == [1, 0, 0]
        await p.send(2, "wasmd.cancel", [1])
        _, response = await p.until_response(1)
        assert response[2][0] == ErrorCode.CANCELLED


async def test_a_hang_up_mid_stream_cancels_the_call(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as watcher:
        events = await subscribe(watcher, "plugin.cancelled")
        async with peer(daemon) as p:
            await p.send(0, 1, "wasmd.stream", ["streamer.count", [50], {"window": 1}])
            assert (await p.next())[2] == [1, 0, 0]
        event = await events.next()  # within the bound, long before the 20 s deadline
        assert event["plugin"] == "streamer"
        assert event["export"] == "count"


async def test_pushes_reach_recv_in_order(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as client:
        values = [1, "two", [3, {"four": b"4"}], None]
        async with client.stream("streamer.echo") as stream:
            for value in values:
                await stream.push(value)
            await stream.push_end()
            assert [chunk async for chunk in stream] == values
        assert stream.result == len(values)


async def test_a_value_over_cap_stays_queued(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as client:
        async with client.stream("streamer.sizes", 2) as stream:
            await stream.push("hello")
            await stream.push_end()
            assert [chunk async for chunk in stream] == ["hello"]
        assert stream.result == -2


async def test_a_push_past_the_bound_ends_the_call_busy(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, peer(daemon) as p:
        await p.send(0, 1, "wasmd.stream", ["streamer.count", [50], {"window": 1}])
        assert (await p.next())[2] == [1, 0, 0]  # the guest now waits for credit
        for _ in range(MAX_PUSHES + 1):
            await p.send(2, "wasmd.push", [1, "x"])
        _, response = await p.until_response(1)
        assert response[2][0] == ErrorCode.BUSY
        assert "push refused" in response[2][1]


async def test_notifications_for_msgids_that_are_no_stream_hold_nothing(
    short_tmp: Path,
) -> None:
    async with streamer(short_tmp) as daemon, peer(daemon) as p:
        flood = b"".join(
            msgpack.packb(message, use_bin_type=True)
            for i in range(3000)
            for message in (
                [2, "wasmd.credit", [i, 1_000_000]],
                [2, "wasmd.push", [i, b"x" * 1000]],
                [2, "wasmd.push_end", [i]],
                [2, "wasmd.credit", ["no msgid"]],
                [2, "wasmd.push", []],
            )
        )
        await p.stream.send(flood)
        await p.send(0, 5, "wasmd.ping", [])
        assert await p.next() == [1, 5, None, "pong"]  # nothing answered the flood
        # The credit sent for msgid 9 before it was a stream gives it nothing now.
        await p.send(0, 9, "wasmd.stream", ["streamer.count", [5], {"window": 2}])
        assert [(await p.next())[2][1] for _ in range(2)] == [0, 1]
        await p.send(2, "wasmd.cancel", [9])
        _, response = await p.until_response(9)
        assert response[2][0] == ErrorCode.CANCELLED


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        (["streamer.count"], "takes [method, params, options?]"),
        (["wasmd.ping", []], "PLUGIN.EXPORT"),
        (["streamer.count", 3], "params must be an array"),
        (["streamer.count", [3], {"window": 0}], "window must be"),
        (["streamer.count", [3], {"window": 5000}], "window must be"),
        (["streamer.count", [3], {"speed": 1}], "unknown stream option"),
    ],
)
async def test_malformed_stream_requests(short_tmp: Path, params: list[Any], fragment: str) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as client:
        with pytest.raises(WasmdError) as caught:
            await client.call("wasmd.stream", *params)
        assert caught.value.code == ErrorCode.INVALID_PARAMS
        assert fragment in caught.value.message


async def test_errors_of_the_call_end_the_stream(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as client:
        with pytest.raises(WasmdError) as caught:
            [chunk async for chunk in client.stream("streamer.nope")]
        assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
        with pytest.raises(WasmdError) as bad:
            [chunk async for chunk in client.stream("streamer.bad")]
        assert bad.value.data == {"kind": "abi_violation"}


async def test_leaving_an_async_stream_early_cancels_it(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.cancelled")
        async with client.stream("streamer.count", 1000, window=2) as stream:
            async for chunk in stream:
                if chunk == 3:
                    break
        assert (await events.next())["export"] == "count"
        assert await client.call("streamer.count", 1) == 0  # the connection goes on


async def test_sync_client_stream(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon:

        def run() -> tuple[list[Any], Any, list[Any]]:
            with SyncClient(daemon.socket, timeout=10) as client:
                stream = client.stream("streamer.count", 100, window=3)
                chunks = list(stream)
                with client.stream("streamer.count", 1000, window=2) as early:
                    first = [next(early), next(early)]
                # Its chunks and answer still arriving are dropped; the connection goes on.
                return chunks, stream.result, [*first, client.call("streamer.count", 2)]

        chunks, result, rest = await anyio.to_thread.run_sync(run)
        assert chunks == list(range(100))
        assert result == 100
        assert rest == [0, 1, 0]


def cli(socket: Path, *argv: str) -> list[str]:
    return [sys.executable, "-m", "wasmd", "--socket", str(socket), *argv]


async def test_cli_prints_one_chunk_per_line_then_the_result(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon:
        with anyio.fail_after(30):
            done = await anyio.run_process(
                cli(daemon.socket, "call", "--stream", "--window", "2", "streamer.count", "4")
            )
            assert done.stdout.decode().splitlines() == ["0", "1", "2", "3", "4"]
            done = await anyio.run_process(
                cli(daemon.socket, "--json", "call", "--stream", "streamer.count", "2")
            )
            lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
            assert lines == [{"chunk": 0}, {"chunk": 1}, {"result": 2}]


@needs_guard
async def test_cli_ctrl_c_cancels_the_stream(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, daemon.client() as watcher:
        events = await subscribe(watcher, "plugin.cancelled")
        # A job started in the background by a non-interactive shell (as CI may start this
        # suite) inherits SIGINT ignored, and so would the CLI: give it Ctrl-C as a terminal
        # would. A handler, unlike SIG_IGN, is reset to the default across exec.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            command = cli(daemon.socket, "call", "--stream", "streamer.spin")
            process = await anyio.open_process(command)
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            assert process.stdout is not None
            with anyio.fail_after(30):
                out = b""
                while not out.endswith(b"\n"):
                    out += await process.stdout.receive()
                assert out == b"0\n"  # chunk 0 arrived; the guest spins
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 130
            assert (await events.next())["export"] == "spin"
        finally:
            if process.returncode is None:
                process.kill()
            await process.aclose()


# A client of its own (another process), so the RSS measured is the daemon's (this process).
_COUNT_CHUNKS = """
import sys
from wasmd import SyncClient
with SyncClient(sys.argv[1], timeout=60) as client:
    stream = client.stream("streamer.ones", int(sys.argv[2]), window=256)
    print(sum(1 for _ in stream), stream.result)
"""


@pytest.mark.slow
async def test_a_million_one_byte_chunks_stream_with_flat_rss(short_tmp: Path) -> None:
    manifest = "[plugin]\ntimeout_ms = 600000\n"
    async with streamer(short_tmp, manifest) as daemon:

        async def stream(n: int) -> None:
            with anyio.fail_after(600):
                done = await anyio.run_process(
                    [sys.executable, "-c", _COUNT_CHUNKS, str(daemon.socket), str(n)]
                )
            assert done.stdout.split() == [str(n).encode(), str(n).encode()]

        await stream(50_000)  # warm: the instance, the fast callers, the allocator's pools
        before = resident_bytes()
        await stream(1_000_000)
        grown = resident_bytes() - before
        assert grown < 16 * 1024 * 1024, f"RSS grew {grown} bytes over a million chunks"


async def test_a_component_streams_over_the_socket(short_tmp: Path) -> None:
    component = (Path(__file__).parent / "components" / "streamer.component.wat").read_text()
    async with running_daemon(short_tmp, {"cstream.wat": component}) as daemon:
        async with daemon.client() as client:
            stream = client.stream("cstream.count", 50, window=3)
            assert [n async for n in stream] == list(range(50))
            assert stream.result == 50
            async with client.stream("cstream.echo") as echo:
                await echo.push({"a": [1, 2]})
                await echo.push_end()
                assert [value async for value in echo] == [{"a": [1, 2]}]
            assert echo.result == 1


@pytest.mark.slow
async def test_a_client_that_never_reads_holds_little_whatever_its_window(
    short_tmp: Path,
) -> None:
    # 400 chunks of 256 KiB (100 MiB) are allowed by the window, but the peer reads nothing:
    # past 4 MiB of unread answers the guest waits instead of the daemon buffering.
    async with streamer(short_tmp) as daemon, peer(daemon) as p:
        before = resident_bytes()
        await p.send(0, 1, "wasmd.stream", ["streamer.big", [400], {"window": 1024}])
        grown = 0
        with anyio.move_on_after(2):  # long enough for 100 MiB to pile up if it could
            while grown < 48 * 1024 * 1024:
                await anyio.sleep(0.02)
                grown = max(grown, resident_bytes() - before)
        assert grown < 48 * 1024 * 1024, f"the daemon grew {grown} bytes"
        chunks, response = await p.until_response(1)  # now read: every chunk, in order
        assert [seq for _, seq, _ in chunks] == list(range(400))
        assert response[2:] == [None, 400]


async def test_recv_waits_under_cancellation_and_the_deadline(short_tmp: Path) -> None:
    async with streamer(short_tmp) as daemon, peer(daemon) as p:
        await p.send(0, 1, "wasmd.stream", ["streamer.echo", []])
        await p.send(2, "wasmd.push", [1, "a"])
        assert (await p.next())[2] == [1, 0, "a"]  # echoed: the guest now waits in recv
        await p.send(2, "wasmd.cancel", [1])
        _, response = await p.until_response(1)
        assert response[2][0] == ErrorCode.CANCELLED
    async with streamer(short_tmp / "short", SHORT) as daemon, peer(daemon) as p:
        await p.send(0, 2, "wasmd.stream", ["streamer.echo", []])
        _, response = await p.until_response(2)  # nothing pushed, no end: the deadline
        assert response[2][0] == ErrorCode.TIMEOUT


async def test_more_streams_than_max_in_flight_on_one_connection(short_tmp: Path) -> None:
    # Past max_in_flight a request waits undispatched, but the connection is still read:
    # the credit of the streams running reaches them, they end, and the rest run.
    plugins = {
        "streamer.wat": STREAMER,
        "streamer.toml": "[plugin]\ntimeout_ms = 20000\ninstances = 4\n",
    }
    async with running_daemon(short_tmp, plugins, max_in_flight=2) as daemon:
        async with daemon.client() as client:
            results: dict[int, list[Any]] = {}

            async def consume(i: int) -> None:
                results[i] = [n async for n in client.stream("streamer.count", 20, window=1)]

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for i in range(5):
                        tg.start_soon(consume, i)
    assert results == {i: list(range(20)) for i in range(5)}
