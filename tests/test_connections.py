"""Many connections, pipelining, garbage, and who may connect — over the real socket."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest

from wasmd import Client, ErrorCode, WasmdError
from wasmd.protocol import NEED_DATA, Connection, Notification, Response

from .conftest import running_daemon
from .other_uid import call_as, needs_root_and_setpriv
from .wat import ARITH, SPIN


def _pack_request(msgid: int, method: str, params: list[object]) -> bytes:
    return bytes(msgpack.packb([0, msgid, method, params]))


async def _read_responses(stream: anyio.abc.ByteStream, count: int) -> list[Response]:
    protocol = Connection()
    responses: list[Response] = []
    while len(responses) < count:
        event = protocol.next_event()
        if event is NEED_DATA:
            protocol.receive_data(await stream.receive())
        elif isinstance(event, Response):
            responses.append(event)
    return responses


# Room for every call a connection may have in flight (128), so none is refused as busy.
ROOMY_ARITH = {"arith.wat": ARITH, "arith.toml": "[plugin]\nqueue = 1024\n"}


async def test_1000_pipelined_calls_on_one_connection(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, ROOMY_ARITH) as daemon:
        rng = random.Random(1)
        pairs = [(rng.randrange(-(2**20), 2**20), rng.randrange(2**20)) for _ in range(1000)]
        # Odd msgids, in a shuffled order, to prove matching is by msgid and not position.
        msgids = [2 * i + 1 for i in range(1000)]
        rng.shuffle(msgids)
        calls = zip(msgids, pairs, strict=True)
        payload = b"".join(_pack_request(msgid, "arith.add", list(pair)) for msgid, pair in calls)
        async with await anyio.connect_unix(daemon.socket) as stream:
            await stream.send(payload)
            responses = await _read_responses(stream, 1000)
        expected = {msgid: a + b for msgid, (a, b) in zip(msgids, pairs, strict=True)}
        assert {r.msgid: r.result for r in responses} == expected
        assert all(r.error is None for r in responses)


async def test_50_concurrent_connections(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, ROOMY_ARITH) as daemon:
        failures: list[str] = []

        async def one_connection(index: int) -> None:
            async with daemon.client() as client:
                results: dict[int, int] = {}

                async def call(i: int) -> None:
                    results[i] = await client.call("arith.add", index, i)

                async with anyio.create_task_group() as tg:
                    for i in range(20):
                        tg.start_soon(call, i)
                if results != {i: index + i for i in range(20)}:
                    failures.append(f"connection {index}: {results}")

        async with anyio.create_task_group() as tg:
            for index in range(50):
                tg.start_soon(one_connection, index)
        assert failures == []
        async with daemon.client() as client:
            stats = await client.stats()
        assert stats["plugins"]["arith"]["calls"] == 1000
        assert stats["daemon"]["connections_total"] >= 51


@pytest.mark.parametrize(
    "garbage",
    [b"\xc1", b"\x07", b"\x93\x07\x01\x02", b"\x94\x00\xff\xa1x\x90"],
    ids=["never-used-byte", "not-an-array", "unknown-type", "negative-msgid"],
)
async def test_garbage_closes_only_that_connection(short_tmp: Path, garbage: bytes) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with daemon.client() as bystander:
            async with await anyio.connect_unix(daemon.socket) as stream:
                await stream.send(garbage)
                protocol = Connection()
                events = []
                while True:
                    try:
                        protocol.receive_data(await stream.receive())
                    except anyio.EndOfStream:
                        protocol.receive_data(b"")
                        break
                    events.extend(protocol.events())
                events.extend(protocol.events())
            assert len(events) == 1
            (note,) = events
            assert isinstance(note, Notification)
            assert note.method == "wasmd.error"
            assert note.params[0][0] == ErrorCode.INVALID_REQUEST
            assert await bystander.call("arith.add", 2, 2) == 4


async def test_bad_request_shape_is_answered_and_the_connection_lives(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            await stream.send(bytes(msgpack.packb([0, 5, 42, []])))  # method is not a string
            await stream.send(_pack_request(6, "arith.add", [1, 2]))
            first, second = await _read_responses(stream, 2)
        assert (first.msgid, first.error[0]) == (5, ErrorCode.INVALID_REQUEST)
        assert (second.msgid, second.result) == (6, 3)


async def test_method_as_bin_and_unknown_notifications(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            await stream.send(bytes(msgpack.packb([2, "nvim_set_client_info", [{}]])))
            await stream.send(bytes(msgpack.packb([0, 1, b"arith.add", [4, 5]])))
            (response,) = await _read_responses(stream, 1)
        assert (response.msgid, response.error, response.result) == (1, None, 9)


async def test_client_that_closes_mid_call_does_not_disturb_others(short_tmp: Path) -> None:
    plugins = {"spin.wat": SPIN, "spin.toml": "[plugin]\ntimeout_ms = 200\n", "arith.wat": ARITH}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as watcher:
            await watcher.subscribe(["plugin.timeout"])
            events = watcher.events()
            async with await anyio.connect_unix(daemon.socket) as stream:
                await stream.send(_pack_request(1, "spin.spin", []))
                await _wait_for_call_to_start(watcher, "spin")
            # The caller is gone; its call runs on to its deadline and is then dropped.
            assert await watcher.call("arith.add", 1, 2) == 3
            with anyio.fail_after(5):
                event = await anext(events)
            assert (event["plugin"], event["export"]) == ("spin", "spin")
            assert await watcher.call("spin.quick") == 7
            stats = await watcher.stats()
            assert stats["plugins"]["spin"]["errors"] == {"timeout": 1}
            assert stats["daemon"]["connections"] == 1


async def _wait_for_call_to_start(client: Client, plugin: str) -> None:
    """Until the daemon counts a call in flight for ``plugin`` (bounded, not a fixed nap)."""
    with anyio.fail_after(5):
        while (await client.stats())["plugins"][plugin]["in_flight"] == 0:
            await anyio.wait_all_tasks_blocked()


async def test_in_flight_limit_is_backpressure_not_errors(short_tmp: Path) -> None:
    plugins = {"arith.wat": ARITH, "arith.toml": "[plugin]\nqueue = 1000\n"}
    async with running_daemon(short_tmp, plugins, max_in_flight=4) as daemon:
        payload = b"".join(_pack_request(i, "arith.add", [i, 1]) for i in range(200))
        async with await anyio.connect_unix(daemon.socket) as stream:
            await stream.send(payload)
            responses = await _read_responses(stream, 200)
        assert sorted(r.result for r in responses) == [i + 1 for i in range(200)]


def test_socket_mode_is_0660_by_default(short_tmp: Path) -> None:
    async def check() -> int:
        async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
            return daemon.socket.stat().st_mode & 0o777

    assert anyio.run(check) == 0o660


REFUSED = ErrorCode.PERMISSION_DENIED


@needs_root_and_setpriv
async def test_peer_outside_the_allow_list_is_refused(short_tmp: Path) -> None:
    """A client running as another uid connects (the socket is 0666) and is refused."""
    plugins = {
        "arith.wat": ARITH,
        "private.wat": ARITH,
        "private.toml": "[access]\nuids = [4242]\n",
    }
    short_tmp.chmod(0o755)
    async with running_daemon(short_tmp, plugins, socket_mode=0o666, allow_uids=(4242,)) as daemon:
        (refused,) = await call_as(4343, daemon.socket, [("arith.add", [1, 2])])
        assert refused["error"][0] == REFUSED
        assert refused["error"][1].startswith("uid 4343")
        allowed = [("arith.add", [1, 2]), ("private.add", [1, 2])]
        assert await call_as(4242, daemon.socket, allowed) == [{"result": 3}, {"result": 3}]
        async with daemon.client() as client:  # root is always allowed
            assert await client.call("private.add", 1, 2) == 3
            stats = await client.stats()
        assert stats["daemon"]["connections_refused"] == 1


@needs_root_and_setpriv
async def test_manifest_access_narrows_who_may_call(short_tmp: Path) -> None:
    plugins = {"private.wat": ARITH, "private.toml": "[access]\nuids = [4242]\n"}
    short_tmp.chmod(0o755)
    async with running_daemon(
        short_tmp, plugins, socket_mode=0o666, allow_uids=(4242, 4343)
    ) as daemon:
        calls = [("private.add", [1, 2]), ("wasmd.ping", [])]
        refused, pinged = await call_as(4343, daemon.socket, calls)
    assert refused["error"][0] == REFUSED
    assert refused["error"][1].startswith("uid 4343")
    assert "may not call plug-in private" in refused["error"][1]
    assert pinged == {"result": "pong"}  # the same connection serves on


async def test_half_closed_client_still_gets_every_response(short_tmp: Path) -> None:
    """`printf ... | nc -U` style: send, shut the write side, read until the daemon closes."""
    async with running_daemon(short_tmp, ROOMY_ARITH) as daemon:
        async with await anyio.connect_unix(daemon.socket) as stream:
            await stream.send(b"".join(_pack_request(i, "arith.add", [i, i]) for i in range(100)))
            await stream.send_eof()
            received = b""
            with anyio.fail_after(10):
                while True:
                    try:
                        received += await stream.receive()
                    except anyio.EndOfStream:
                        break
        protocol = Connection()
        protocol.receive_data(received)
        protocol.receive_data(b"")
        results = {event.msgid: event.result for event in protocol.events()}  # type: ignore[union-attr]
        assert results == {i: 2 * i for i in range(100)}


async def test_connections_past_the_limit_are_refused_as_busy(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}, max_connections=2) as daemon:
        async with daemon.client() as first, daemon.client() as second:
            assert await first.ping() == await second.ping() == "pong"
            with pytest.raises(WasmdError) as caught:
                async with daemon.client() as third:
                    await third.ping()
            assert caught.value.code == ErrorCode.BUSY
            assert "too many connections (limit 2)" in caught.value.message
        async with daemon.client() as again:  # a slot is free again
            assert await again.ping() == "pong"


async def test_oversized_message_closes_the_connection(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}, max_message_size=4096) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("arith.add", b"x" * 10_000, 1)
            assert caught.value.code == ErrorCode.INVALID_REQUEST
            assert "exceeds 4096 bytes" in caught.value.message
        async with daemon.client() as client:
            assert await client.call("arith.add", 1, 2) == 3


async def _add_as_uid_4343(socket_path: Path, method: str, groups: Sequence[int]) -> Any:
    """Call ``method`` (1, 2) as uid 4343 with ``groups``: the result, or the error code."""
    (outcome,) = await call_as(4343, socket_path, [(method, [1, 2])], groups=groups)
    return outcome["result"] if "result" in outcome else outcome["error"][0]


@needs_root_and_setpriv
async def test_supplementary_group_is_enough_to_connect(short_tmp: Path) -> None:
    """SO_PEERCRED shows only the primary gid; membership as a supplementary group counts."""
    short_tmp.chmod(0o755)
    async with running_daemon(
        short_tmp, {"arith.wat": ARITH}, socket_mode=0o666, allow_gids=(5555,)
    ) as daemon:
        assert await _add_as_uid_4343(daemon.socket, "arith.add", [5555]) == 3
        assert await _add_as_uid_4343(daemon.socket, "arith.add", []) == REFUSED


async def test_pulley_interpreter_engine(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}, engine="pulley") as daemon:
        async with daemon.client() as client:
            assert await client.call("arith.add", 20, 22) == 42
            with pytest.raises(WasmdError) as caught:
                await client.call("arith.div", 1, 0)
            assert caught.value.code == ErrorCode.TRAP


@needs_root_and_setpriv
async def test_manifest_access_counts_supplementary_groups(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    plugins = {"private.wat": ARITH, "private.toml": "[access]\ngids = [5555]\n"}
    async with running_daemon(short_tmp, plugins, socket_mode=0o666, allow_uids=(4343,)) as daemon:
        assert await _add_as_uid_4343(daemon.socket, "private.add", [5555]) == 3
        assert await _add_as_uid_4343(daemon.socket, "private.add", []) == REFUSED
