"""Many connections, pipelining, garbage, and who may connect — over the real socket."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest

from wasmd import Client, ErrorCode, SyncClient, WasmdError
from wasmd.protocol import NEED_DATA, Connection, Event, Notification, Response
from wasmd.runtime import fastcall

from .conftest import running_daemon, serve_command, write_plugins
from .helpers import subscribe
from .other_uid import SETPRIV, call_as, needs_root_and_setpriv, require_wasmd_as
from .processes import reaped
from .wat import ARITH, SPIN, WORK


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


REFUSED = ErrorCode.PERMISSION_DENIED

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
                events: list[Event] = []
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


async def test_client_that_closes_mid_call_has_its_call_cancelled(short_tmp: Path) -> None:
    # A minute's deadline: only the cancellation can end the spin within the test.
    plugins = {"spin.wat": SPIN, "spin.toml": "[plugin]\ntimeout_ms = 60000\n", "arith.wat": ARITH}
    if not fastcall.ENABLED:
        pytest.skip("cancelling a running call needs the epoch-deadline callback")
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as watcher:
            await watcher.subscribe(["plugin.cancelled"])
            events = watcher.events()
            async with await anyio.connect_unix(daemon.socket) as stream:
                await stream.send(_pack_request(1, "spin.spin", []))
                await _wait_for_call_to_start(watcher, "spin")
            # The caller is gone: its call stops at the next epoch tick, nobody is answered.
            assert await watcher.call("arith.add", 1, 2) == 3
            with anyio.fail_after(10):
                event = await anext(events)
            assert (event["plugin"], event["export"]) == ("spin", "spin")
            assert await watcher.call("spin.quick") == 7  # on a fresh instance
            stats = await watcher.stats()
            assert stats["plugins"]["spin"]["errors"] == {"cancelled": 1}
            # The hung-up connection is reaped once its cancelled call has answered.
            for _ in range(1000):
                if (await watcher.stats())["daemon"]["connections"] == 1:
                    break
                await anyio.sleep(0.01)
            assert (await watcher.stats())["daemon"]["connections"] == 1


async def _wait_for_call_to_start(client: Client, plugin: str) -> None:
    """Until the daemon counts a call in flight for ``plugin`` (bounded, not a fixed nap)."""
    with anyio.fail_after(5):
        while (await client.stats())["plugins"][plugin]["in_flight"] == 0:
            await anyio.wait_all_tasks_blocked()


async def test_in_flight_limit_is_backpressure_not_errors(short_tmp: Path) -> None:
    """Past ``max_in_flight`` a connection's requests wait unstarted in its session: never
    more than 4 run or queue in the pool at once, though its 8 instances could take 8, and
    every request is answered, none refused. (The test once passed with the limit ignored.)"""
    plugins = {"work.wat": WORK, "work.toml": "[plugin]\ninstances = 8\nqueue = 1000\n"}
    steps = 30_000_000  # ~20 ms a call: hand-offs (every 2 ms) overlap them; 0.3 s in all
    async with running_daemon(short_tmp, plugins, max_in_flight=4) as daemon:
        payload = b"".join(_pack_request(i, "work.work", [steps]) for i in range(40))
        peak = 0
        async with await anyio.connect_unix(daemon.socket) as stream, daemon.client() as watcher:
            await stream.send(payload)
            async with anyio.create_task_group() as tg:

                async def sample() -> None:
                    nonlocal peak
                    while True:
                        stats = await watcher.stats()
                        peak = max(peak, stats["plugins"]["work"]["in_flight"])

                tg.start_soon(sample)
                with anyio.fail_after(60):
                    responses = await _read_responses(stream, 40)
                tg.cancel_scope.cancel()
        assert [(r.error, r.result) for r in responses] == [(None, steps)] * 40
        assert 1 <= peak <= 4


def test_socket_mode_is_0660_by_default(short_tmp: Path) -> None:
    async def check() -> int:
        async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
            return daemon.socket.stat().st_mode & 0o777

    assert anyio.run(check) == 0o660


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


async def test_stale_socket_of_ours_is_replaced(short_tmp: Path) -> None:
    """A socket file nobody listens on (its daemon died) is ours to remove: connect is refused."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(short_tmp / "wasmd.sock"))
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with daemon.client() as client:
            assert await client.call("arith.add", 2, 3) == 5


AS_ROOT_WITH_SETPRIV = pytest.mark.skipif(
    os.getuid() != 0 or SETPRIV is None, reason="needs root and setpriv to act as other uids"
)
# Daemon uids of the tests below, used by no other test.
UID_A, UID_B = 4545, 4646


@dataclass
class Started:
    process: subprocess.Popen[str]
    log: str  # stderr up to "daemon.ready", or all of it if the daemon exited before
    ready: bool


@contextmanager
def serving_as(uid: int, plugins: Path, *flags: str, env: dict[str, str]) -> Iterator[Started]:
    """`wasmd serve` as ``uid``, returning once it is ready or has exited; stopped on exit."""
    assert SETPRIV is not None
    require_wasmd_as(uid)
    command = [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    command += serve_command(plugins, *flags)
    env = {**env, "PYTHONUNBUFFERED": "1"}
    with reaped(command, stderr=subprocess.PIPE, text=True, env=env) as process:
        assert process.stderr is not None
        lines, ready = [], False
        for line in process.stderr:  # readiness is announced on the log, not guessed
            lines.append(line)
            if "daemon.ready" in line:
                ready = True
                break
        else:
            process.wait(timeout=30)  # its stderr is closed: it is exiting
        started = Started(process, "".join(lines), ready)
        try:
            yield started
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)


@AS_ROOT_WITH_SETPRIV
@pytest.mark.parametrize(
    ("folder_owner", "folder_mode"),
    [(UID_B, 0o1777), (0, 0o777)],
    ids=["sticky-folder-of-the-intruder", "folder-anyone-may-write"],
)
def test_second_daemon_as_another_uid_cannot_take_over_a_live_socket(
    short_tmp: Path, folder_owner: int, folder_mode: int
) -> None:
    """uid A serves in a shared folder; uid B's `wasmd serve` on the same path cannot reach A's
    socket (EACCES: it is 0660) and may unlink in that folder: B must fail, A keeps serving."""
    short_tmp.chmod(0o755)
    write_plugins(short_tmp / "a-plugins", {"arith.wat": ARITH})
    (short_tmp / "b-plugins").mkdir()
    shared = short_tmp / "shared"
    shared.mkdir()
    os.chown(shared, folder_owner, folder_owner)
    shared.chmod(folder_mode)
    sock = shared / "wasmd.sock"
    env = dict(os.environ)
    with serving_as(UID_A, short_tmp / "a-plugins", "--socket", str(sock), env=env) as first:
        assert first.ready, first.log
        with serving_as(UID_B, short_tmp / "b-plugins", "--socket", str(sock), env=env) as second:
            assert not second.ready, "the second daemon took the socket over"
            assert second.process.returncode == 1
            assert "Traceback" not in second.log
            reason = f"a socket owned by uid {UID_A} is there, not ours to replace"
            assert second.log.splitlines()[-1] == f"wasmd: cannot listen on {sock}: {reason}"
        assert sock.lstat().st_uid == UID_A
        with SyncClient(sock, timeout=10) as client:  # root may connect; only A serves arith
            assert client.call("wasmd.ping") == "pong"
            assert client.call("arith.add", 2, 3) == 5


@contextmanager
def fallback_folder_of(uid: int) -> Iterator[Path]:
    """``/tmp/wasmd-UID``, absent before and removed after (only test uids are used)."""
    folder = Path(f"/tmp/wasmd-{uid}")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _env_for_the_fallback_socket() -> dict[str, str]:
    unset = ("WASMD_SOCKET", "WASMD_CONFIG", "XDG_RUNTIME_DIR")
    return {k: v for k, v in os.environ.items() if k not in unset}


@AS_ROOT_WITH_SETPRIV
@pytest.mark.parametrize(
    ("owner", "mode", "reason"),
    [
        (UID_A, 0o700, f"is owned by uid {UID_A}, not by us ({UID_B})"),
        (UID_A, 0o777, f"is owned by uid {UID_A}, not by us ({UID_B})"),
        (UID_B, 0o777, "is writable by group or others (mode 0777)"),
        (UID_B, 0o770, "is writable by group or others (mode 0770)"),
    ],
    ids=["foreign", "foreign-0777", "own-0777", "own-group-writable"],
)
def test_fallback_folder_that_others_control_is_refused(
    short_tmp: Path, owner: int, mode: int, reason: str
) -> None:
    """Anyone may create /tmp/wasmd-UID before the daemon of UID first starts: a folder it
    does not own, or one others can write, would let them replace its socket."""
    short_tmp.chmod(0o755)
    with fallback_folder_of(UID_B) as folder:
        folder.mkdir()
        os.chown(folder, owner, owner)
        folder.chmod(mode)
        env = _env_for_the_fallback_socket()
        with serving_as(UID_B, short_tmp, env=env) as started:
            assert not started.ready, "the daemon served in a folder others control"
            assert started.process.returncode == 1
            assert "Traceback" not in started.log
            sock = folder / "wasmd.sock"
            expected = f"wasmd: cannot listen on {sock}: its folder {folder} {reason}"
            assert started.log.splitlines()[-1] == expected
        assert not (folder / "wasmd.sock").exists()


@AS_ROOT_WITH_SETPRIV
def test_fallback_folder_is_created_private(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    write_plugins(short_tmp / "plugins", {"arith.wat": ARITH})
    with fallback_folder_of(UID_B) as folder:
        env = _env_for_the_fallback_socket()
        with serving_as(UID_B, short_tmp / "plugins", env=env) as started:
            assert started.ready, started.log
            info = folder.lstat()
            assert (info.st_uid, oct(info.st_mode & 0o7777)) == (UID_B, oct(0o700))
            with SyncClient(folder / "wasmd.sock", timeout=10) as client:
                assert client.call("arith.add", 2, 3) == 5
            started.process.terminate()
            assert started.process.wait(timeout=30) == 0


SECRETS = {
    "private.wat": ARITH,
    "private.toml": (
        '[wasi]\nargs = ["--token=hunter2-arg"]\nenv = { DB_PASSWORD = "hunter2-env" }\n'
        '[config]\nDB_PASSWORD = "hunter2-config"\n[access]\nuids = [4242]\n'
    ),
}


async def _introspect_as(uid: int, socket_path: Path) -> str:
    """``wasmd.describe private`` and ``wasmd.list`` as ``uid``, as JSON text."""
    calls = [("wasmd.describe", ["private"]), ("wasmd.list", [])]
    outcomes = await call_as(uid, socket_path, calls)
    return json.dumps([outcome["result"] for outcome in outcomes], default=str)


@needs_root_and_setpriv
async def test_describe_shows_values_only_to_callers_the_plugin_admits(short_tmp: Path) -> None:
    """A uid that may connect but not call still learns what the plug-in is, never its
    secrets: configuration and environment values and args are hidden, names are not."""
    short_tmp.chmod(0o755)
    async with running_daemon(
        short_tmp, SECRETS, socket_mode=0o666, allow_uids=(4242, 4343)
    ) as daemon:
        denied_text = await _introspect_as(4343, daemon.socket)
        admitted_text = await _introspect_as(4242, daemon.socket)
        async with daemon.client() as client:  # root is always admitted
            as_root = await client.describe("private")
    assert "hunter2" not in denied_text
    denied = json.loads(denied_text)[0]
    assert denied["manifest"]["config"] == {"DB_PASSWORD": "<hidden>"}
    assert denied["manifest"]["wasi"]["env"] == {"DB_PASSWORD": "<hidden>"}
    assert denied["manifest"]["wasi"]["args"] == ["<hidden>"]
    assert denied["capabilities"]["env"] == ["DB_PASSWORD"]
    assert denied["manifest"]["access"]["uids"] == [4242]
    for seen in (json.loads(admitted_text)[0], as_root):
        assert seen["manifest"]["config"] == {"DB_PASSWORD": "hunter2-config"}
        assert seen["manifest"]["wasi"]["env"] == {"DB_PASSWORD": "hunter2-env"}
        assert seen["capabilities"]["args"] == ["--token=hunter2-arg"]


@needs_root_and_setpriv
async def test_manifest_replaced_by_a_dangling_link_keeps_its_access_list(
    short_tmp: Path,
) -> None:
    """A manifest that is there but cannot be read fails the new version: it is never taken
    for "no manifest", which would drop ``[access]`` and let everyone call."""
    short_tmp.chmod(0o755)
    plugins = {"private.wat": ARITH, "private.toml": "[access]\nuids = [4242]\n"}
    async with running_daemon(
        short_tmp, plugins, socket_mode=0o666, allow_uids=(4343,), watch=True
    ) as daemon:
        assert await _add_as_uid_4343(daemon.socket, "private.add", []) == REFUSED
        async with daemon.client() as client:
            events = await subscribe(client, "plugin.")
            link = daemon.plugins_dir / "private.toml.tmp"
            link.symlink_to(daemon.plugins_dir / "nowhere.toml")
            os.replace(link, daemon.plugins_dir / "private.toml")
            event = await events.next()
        assert (event["type"], event["plugin"]) == ("plugin.failed", "private"), event
        assert "cannot read manifest: symbolic link" in event["error"]
        assert "kept_version" in event
        assert await _add_as_uid_4343(daemon.socket, "private.add", []) == REFUSED
