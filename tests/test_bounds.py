"""Bounded under abuse: no client can make the daemon hold unbounded memory, hold a
connection forever with a message it never finishes, or lock other users out."""

from __future__ import annotations

import contextlib
import json
import struct
import textwrap
from pathlib import Path

import anyio
import anyio.abc
import msgpack
import pytest

from wasmd import Client, ErrorCode, WasmdError
from wasmd.errors import ECHO_LIMIT, MESSAGE_LIMIT, echo

from .conftest import running_daemon
from .other_uid import needs_root_and_setpriv, run_python_as
from .processes import resident_bytes
from .wat import ARITH


def _request(msgid: int, method: str, *params: object) -> bytes:
    return bytes(msgpack.packb([0, msgid, method, list(params)]))


async def _closing_notice(stream: anyio.abc.ByteStream) -> tuple[int, str]:
    """The ``wasmd.error`` notification the daemon sends before it closes the connection."""
    unpacker = msgpack.Unpacker(raw=False)
    while True:
        unpacker.feed(await stream.receive())
        for message in unpacker:
            if message[0] == 2 and message[1] == "wasmd.error":
                code, reason = message[2][0]
                return int(code), str(reason)


async def _until_the_reader_settles(client: Client) -> None:
    """Until the daemon has stopped taking requests (held back, or done with all of them)."""
    last, still, asked = -1, 0, 0
    with anyio.fail_after(60):
        while still < 20:
            asked += 1  # each look is a request itself
            others = (await client.stats())["daemon"]["requests"] - asked
            still = still + 1 if others == last else 0
            last = others
            await anyio.sleep(0.05)


async def _until_only_this_client_is_connected(client: Client) -> None:
    """Until the daemon has closed every other connection: a closed connection's count of
    requests is final."""
    with anyio.fail_after(60):
        while True:
            if (await client.stats())["daemon"]["connections"] == 1:
                return
            await anyio.sleep(0.01)  # a bounded poll: no event tells a client of this


MANY_EXPORTS = (
    "(module\n"
    + "\n".join(
        f'  (func (export "function_number_{i:05d}") (result i32) i32.const {i})'
        for i in range(2000)
    )
    + "\n)"
)


@pytest.mark.slow  # over 2 s alone (pytest --durations)
async def test_a_flood_of_builtins_from_a_peer_that_never_reads_is_held_back(
    short_tmp: Path,
) -> None:
    """Thousands of big answers in one write: the daemon stops reading that connection once
    its outbox is full (checked per request), and everyone else is served meanwhile."""
    plugins = {"many.wat": MANY_EXPORTS, "arith.wat": ARITH}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            one = len(msgpack.packb(await client.describe("many")))
            flood = b"".join(_request(i, "wasmd.describe", "many") for i in range(3000))
            before = resident_bytes()
            async with await anyio.connect_unix(daemon.socket) as greedy:
                await greedy.send(flood)  # and never read
                for _ in range(20):
                    with anyio.fail_after(5):
                        assert await client.ping() == "pong"
                    assert await client.call("arith.add", 1, 2) == 3
                await _until_the_reader_settles(client)
                grown = resident_bytes() - before
            # 3,000 answers would be 3000 * one bytes; the outbox holds a few MiB of them.
            assert one * 3000 > 300 * 2**20
            assert grown < 64 * 2**20, f"the daemon grew by {grown / 2**20:.0f} MiB"


async def test_requests_of_a_peer_that_hung_up_are_not_run(short_tmp: Path) -> None:
    """3,000 big answers asked for, then the peer closes: once a write fails, the rest of
    what it sent is dropped, not run and answered to nobody."""
    async with running_daemon(short_tmp, {"many.wat": MANY_EXPORTS}) as daemon:
        async with daemon.client() as client:
            flood = b"".join(_request(i, "wasmd.describe", "many") for i in range(3000))
            async with await anyio.connect_unix(daemon.socket) as gone:
                await gone.send(flood)
            await _until_only_this_client_is_connected(client)
            served = (await client.stats())["daemon"]["requests"]
            assert served < 1000, f"{served} requests run for a peer that had hung up"


async def test_a_header_announcing_too_much_is_refused_at_once(short_tmp: Path) -> None:
    # A minute's frame timeout: only the header check can close this within the test.
    async with running_daemon(short_tmp, {"arith.wat": ARITH}, frame_timeout_ms=60_000) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stalled:
            # A request whose bin32 param announces 4 GiB, then nothing more.
            header = b"\x94\x00\x01\xa9arith.add\x91\xc6" + struct.pack(">I", 2**32 - 1)
            await stalled.send(header + b"x" * 10)
            with anyio.fail_after(10):
                code, message = await _closing_notice(stalled)
        assert code == ErrorCode.INVALID_REQUEST
        assert message == "message exceeds 16777216 bytes"


async def test_a_message_begun_and_never_finished_is_refused_in_time(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}, frame_timeout_ms=100) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stalled:
            # A request cut in the middle of a small string, then nothing more.
            await stalled.send(b"\x94\x00\x01\xa9arith.a")
            with anyio.fail_after(10):
                code, message = await _closing_notice(stalled)
        assert code == ErrorCode.INVALID_REQUEST
        assert message == "message not completed within 100 ms"
        async with daemon.client() as client:
            assert await client.call("arith.add", 1, 2) == 3


async def test_unfinished_messages_across_connections_are_bounded(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}, max_buffered=1024 * 1024) as daemon:
        part = b"\x94\x00\x01\xa9arith.add\x91\xc6" + struct.pack(">I", 15 * 2**20)
        part += b"x" * (300 * 1024)  # charged twice its bytes: 600 KiB of the 1 MiB
        server = daemon.info.server
        assert server is not None
        async with await anyio.connect_unix(daemon.socket) as first:
            await first.send(part)
            with anyio.fail_after(10):
                # The first is held before the second begins (else the first is the one
                # refused): a counter that no event announces.
                while server.buffered_bytes < 2 * len(part):  # noqa: ASYNC110
                    await anyio.sleep(0.001)
            async with await anyio.connect_unix(daemon.socket) as second:
                with contextlib.suppress(anyio.BrokenResourceError):
                    await second.send(part)  # the daemon may close it while it sends
                with anyio.fail_after(10):
                    code, message = await _closing_notice(second)
            assert code == ErrorCode.INVALID_REQUEST
            assert "bytes of unfinished messages" in message
            async with daemon.client() as client:
                assert await client.call("arith.add", 1, 2) == 3


async def test_a_small_in_flight_limit_is_backpressure_not_busy(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}, max_in_flight=4) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            await stream.send(b"".join(_request(i, "arith.add", i, 1) for i in range(200)))
            unpacker = msgpack.Unpacker(raw=False)
            answers: dict[int, object] = {}
            with anyio.fail_after(10):
                while len(answers) < 200:
                    unpacker.feed(await stream.receive())
                    for _, msgid, error, result in unpacker:
                        answers[msgid] = error or result
        assert answers == {i: i + 1 for i in range(200)}


HOLD_CONNECTIONS = textwrap.dedent(
    """
    import json, socket, sys
    import msgpack
    outcomes, held = [], []
    for i in range(int(sys.argv[2])):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(sys.argv[1])
        held.append(sock)
        try:
            sock.sendall(msgpack.packb([0, 1, "wasmd.ping", []]))
        except OSError:
            pass
        unpacker = msgpack.Unpacker(raw=False)
        while True:
            data = sock.recv(65536)
            if not data:
                outcomes.append("closed")
                break
            unpacker.feed(data)
            message = next(iter(unpacker), None)
            if message is not None:
                outcomes.append(message[3] if message[0] == 1 else message[2][0])
                break
    print(json.dumps(outcomes))
    """
)


@needs_root_and_setpriv
async def test_one_uid_cannot_take_every_connection(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    async with running_daemon(
        short_tmp,
        {"arith.wat": ARITH},
        socket_mode=0o666,
        allow_uids=(4343,),
        max_connections_per_uid=3,
    ) as daemon:
        result = await run_python_as(4343, "-c", HOLD_CONNECTIONS, str(daemon.socket), "5")
        assert result.returncode == 0, result.stderr.decode()
        outcomes = json.loads(result.stdout)
        assert outcomes[:3] == ["pong"] * 3
        code, message = outcomes[3]
        assert code == ErrorCode.BUSY
        assert message == "too many connections from uid 4343 (limit 3 per uid)"


@needs_root_and_setpriv
async def test_root_keeps_a_reserve_of_connections(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    async with running_daemon(
        short_tmp, {"arith.wat": ARITH}, socket_mode=0o666, allow_uids=(4343,), max_connections=18
    ) as daemon:
        async with anyio.create_task_group() as tg:
            done = anyio.Event()
            outcomes: list[object] = []

            async def hold() -> None:
                result = await run_python_as(4343, "-c", HOLD_CONNECTIONS, str(daemon.socket), "3")
                outcomes.extend(json.loads(result.stdout))
                done.set()

            tg.start_soon(hold)
            with anyio.fail_after(30):
                await done.wait()
        # 18 places, 16 kept for root and the daemon's uid: another uid gets 2.
        assert outcomes[:2] == ["pong", "pong"]
        assert outcomes[2][0] == ErrorCode.BUSY  # type: ignore[index]
        async with daemon.client() as client:
            assert await client.ping() == "pong"


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_echo_quotes_at_most_a_bounded_part_of_client_input() -> None:
    assert echo("math.add") == "'math.add'"
    shown = echo("x" * (15 * 1024 * 1024))
    assert len(shown) < ECHO_LIMIT + 40
    assert shown.endswith(f"... ({15 * 1024 * 1024} in all)")
    assert len(echo(list(range(10_000)))) <= ECHO_LIMIT + 3


def test_an_error_message_is_bounded_whatever_went_into_it() -> None:
    message = WasmdError(ErrorCode.INVALID_PARAMS, "y" * (MESSAGE_LIMIT * 3)).message
    assert len(message) < MESSAGE_LIMIT + 64
    assert message.endswith(f"(cut: {MESSAGE_LIMIT * 3} characters in all)")


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("x" * (15 * 1024 * 1024), id="no-dot"),
        pytest.param("arith." + "y" * (15 * 1024 * 1024), id="no-such-export"),
        pytest.param("z" * (15 * 1024 * 1024) + ".add", id="no-such-plugin"),
        pytest.param("wasmd." + "w" * (15 * 1024 * 1024), id="no-such-builtin"),
    ],
)
async def test_a_huge_method_name_is_not_sent_back_whole(short_tmp: Path, method: str) -> None:
    """Issue 22 item 10: a 15 MiB method name came back whole inside the error message."""
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as refused:
                await client.call(method)
            assert await client.call("wasmd.ping") == "pong"
    assert refused.value.code == ErrorCode.METHOD_NOT_FOUND
    assert len(refused.value.message) < 2 * ECHO_LIMIT + 200, refused.value.message[:300]


async def test_answers_unread_across_connections_are_bounded(short_tmp: Path) -> None:
    """Peers that ask for big answers and never read them: the answers held for them stay
    under max_unread across all connections (each connection's own outbox limit is 4 MiB),
    the connection whose answer would go over is closed, and others are served."""
    limit = 2 * 2**20
    plugins = {"many.wat": MANY_EXPORTS, "arith.wat": ARITH}
    async with running_daemon(short_tmp, plugins, max_unread=limit) as daemon:
        server = daemon.info.server
        assert server is not None
        flood = b"".join(_request(i, "wasmd.describe", "many") for i in range(60))
        async with contextlib.AsyncExitStack() as stack:
            greedy = [
                await stack.enter_async_context(await anyio.connect_unix(daemon.socket))
                for _ in range(4)
            ]
            for stream in greedy:
                await stream.send(flood)  # 60 answers of over 100 KB each, never read
            async with daemon.client() as client:
                for _ in range(20):
                    assert await client.call("arith.add", 1, 2) == 3
                    assert server.unread_bytes <= limit
            closed = 0
            with anyio.fail_after(20):
                for stream in greedy:
                    try:
                        while await stream.receive():
                            pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        closed += 1
            assert closed == 4
        assert server.unread_bytes == 0
