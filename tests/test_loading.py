"""``wasmd.load`` and ``wasmd.unload`` over the socket (wasmd/loading.py), and their CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import running_daemon, write_plugins
from tests.other_uid import call_as, needs_root_and_setpriv
from wasmd.cli import main
from wasmd.client import Client
from wasmd.config import DaemonConfig, allowed_load_uids
from wasmd.errors import ErrorCode, WasmdError

ONE = '(module (func (export "who") (result i32) i32.const 1))'
TWO = '(module (func (export "who") (result i32) i32.const 2))'
THREE = '(module (func (export "who") (result i32) i32.const 3))'


async def next_event(client: Client, kind: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        async for event in client.events(["plugin."]):
            if event["type"] == kind:
                return event
    raise AssertionError("the event stream ended")


async def code_of(client: Client, method: str, *params: Any) -> int:
    with pytest.raises(WasmdError) as info:
        await client.call(method, *params)
    return int(info.value.code)


async def test_load_a_path_outside_the_search_path(short_tmp: Path) -> None:
    elsewhere = short_tmp / "elsewhere"
    write_plugins(elsewhere, {"extra.wat": TWO})
    async with (
        running_daemon(short_tmp, {"x.wat": ONE}) as daemon,
        daemon.client() as client,
        daemon.client() as watcher,
    ):
        await watcher.subscribe(["plugin."])
        loaded = await client.load_path(elsewhere / "extra.wat")
        assert loaded["name"] == "extra"
        assert loaded["how"] == "load"
        assert loaded["exports"] == ["who"]
        event = await next_event(watcher, "plugin.loaded")
        assert event["plugin"] == "extra"
        assert event["how"] == "load"
        assert event["uid"] == os.getuid()
        assert await client.call("extra.who") == 2
        # It is not watched: a rescan leaves it alone, and so does its file changing.
        (elsewhere / "extra.wat").write_text(THREE)
        report = await client.call("wasmd.reload")
        assert "extra" in report["unchanged"]
        assert await client.call("extra.who") == 2
        # Loading the same path again takes what the file holds now.
        await client.load_path(elsewhere / "extra.wat")
        event = await next_event(watcher, "plugin.reloaded")
        assert event["how"] == "load"
        assert await client.call("extra.who") == 3


async def test_bad_loads_are_refused_with_a_reason(short_tmp: Path) -> None:
    write_plugins(short_tmp / "elsewhere", {"broken.wat": "(module", "notes.txt": "hi"})
    async with running_daemon(short_tmp, {}) as daemon, daemon.client() as client:
        assert await code_of(client, "wasmd.load", "relative/x.wasm") == ErrorCode.INVALID_PARAMS
        assert await code_of(client, "wasmd.load") == ErrorCode.INVALID_PARAMS
        assert await code_of(client, "wasmd.load", 5) == ErrorCode.INVALID_PARAMS
        missing = str(short_tmp / "nope.wasm")
        assert await code_of(client, "wasmd.load", missing) == ErrorCode.INVALID_PARAMS
        notes = str(short_tmp / "elsewhere" / "notes.txt")
        assert await code_of(client, "wasmd.load", notes) == ErrorCode.INVALID_PARAMS
        broken = str(short_tmp / "elsewhere" / "broken.wat")
        with pytest.raises(WasmdError, match="invalid WAT"):
            await client.call("wasmd.load", broken)
        # A link is not followed, as on the search path (the target may be a root-only file).
        (short_tmp / "elsewhere" / "link.wat").symlink_to(short_tmp / "elsewhere" / "broken.wat")
        with pytest.raises(WasmdError, match="symbolic link") as info:
            await client.call("wasmd.load", str(short_tmp / "elsewhere" / "link.wat"))
        assert info.value.code == ErrorCode.INVALID_PARAMS
        assert await client.list() == []  # a failed load takes no name
        assert await client.ping() == "pong"


async def test_a_name_on_the_search_path_is_not_taken_over(short_tmp: Path) -> None:
    """Loading by path a plug-in whose name the search path serves is refused; after an
    unload, the path's version holds the name, whatever the search path then does, until
    it is unloaded in turn."""
    twin = short_tmp / "elsewhere" / "x.wat"
    write_plugins(twin.parent, {"x.wat": TWO})
    async with (
        running_daemon(short_tmp, {"x.wat": ONE}, watch=True) as daemon,
        daemon.client() as client,
    ):
        with pytest.raises(WasmdError, match="loaded already") as info:
            await client.load_path(twin)
        assert info.value.code == ErrorCode.INVALID_PARAMS
        assert await client.call("x.who") == 1
        await client.unload("x")
        assert (await client.load_path(twin))["how"] == "load"
        assert await client.call("x.who") == 2
        # The search path's file changes: the version loaded by path keeps the name.
        (daemon.plugins_dir / "x.wat").write_text(THREE)
        report = await client.call("wasmd.reload", "x")
        assert report["unchanged"] == ["x"]
        assert await client.call("x.who") == 2
        # Unloaded, the name stays empty until the search path changes again.
        await client.unload("x")
        assert (await client.call("wasmd.reload"))["loaded"] == []
        assert await code_of(client, "x.who") == ErrorCode.METHOD_NOT_FOUND


async def test_unload_until_the_next_change_on_disk(short_tmp: Path) -> None:
    async with (
        running_daemon(short_tmp, {"x.wat": ONE, "y.wat": ONE}, watch=True) as daemon,
        daemon.client() as client,
        daemon.client() as watcher,
    ):
        await watcher.subscribe(["plugin."])
        unloaded = await client.unload("x")
        assert unloaded == {
            "name": "x",
            "version": unloaded["version"],
            "path": unloaded["path"],
            "how": "unload",
        }
        event = await next_event(watcher, "plugin.unloaded")
        assert (event["plugin"], event["how"]) == ("x", "unload")
        assert await code_of(client, "x.who") == ErrorCode.METHOD_NOT_FOUND
        assert [p["name"] for p in await client.list()] == ["y"]
        # A rescan with nothing changed on disk does not bring it back...
        report = await client.call("wasmd.reload")
        # ...and says so: it is not "unchanged", which would mean loaded (issue 28).
        assert (report["still_unloaded"], report["unchanged"], report["loaded"]) == (
            ["x"],
            ["y"],
            [],
        )
        assert (await client.call("wasmd.reload", "x"))["still_unloaded"] == ["x"]
        assert await code_of(client, "x.who") == ErrorCode.METHOD_NOT_FOUND
        # ...a change on disk does (the watcher sees it).
        (daemon.plugins_dir / "x.wat").write_text(TWO)
        event = await next_event(watcher, "plugin.loaded")
        assert (event["plugin"], event["how"]) == ("x", "search_path")
        assert await client.call("x.who") == 2
        # So does wasmd.load of its own file on the search path.
        await client.unload("x")
        again = await client.load_path(daemon.plugins_dir / "x.wat")
        assert again["how"] == "search_path"
        assert await client.call("x.who") == 2
        assert await code_of(client, "wasmd.unload", "nobody") == ErrorCode.METHOD_NOT_FOUND
        assert await code_of(client, "wasmd.unload", "../x") == ErrorCode.INVALID_PARAMS


async def test_unload_drains_calls_in_flight(short_tmp: Path) -> None:
    slow = """(module
      (func (export "wait_then") (param i32) (result i32)
        (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
        (i32.const 7)))"""
    files = {"slow.wat": slow, "slow.toml": "[plugin]\ntimeout_ms = 30000\n"}
    async with running_daemon(short_tmp, files) as daemon:
        async with daemon.client() as caller, daemon.client() as admin:
            results: list[int] = []

            async def call() -> None:
                results.append(await caller.call("slow.wait_then", 1_000_000_000))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(10):
                    while (await admin.stats())["plugins"]["slow"]["in_flight"] == 0:
                        await anyio.wait_all_tasks_blocked()
                await admin.unload("slow")
                assert results == []  # unloaded while the call ran...
                assert await code_of(admin, "slow.wait_then", 1) == ErrorCode.METHOD_NOT_FOUND
            assert results == [7]  # ...which finished on the unloaded version


async def test_load_uids_decides_who_may(short_tmp: Path) -> None:
    write_plugins(short_tmp / "elsewhere", {"extra.wat": TWO})
    async with running_daemon(short_tmp, {"x.wat": ONE}, load_uids=(4242,)) as daemon:
        async with daemon.client() as client:
            path = str(short_tmp / "elsewhere" / "extra.wat")
            with pytest.raises(WasmdError, match="load_uids") as info:
                await client.call("wasmd.load", path)
            assert info.value.code == ErrorCode.PERMISSION_DENIED
            assert await code_of(client, "wasmd.unload", "x") == ErrorCode.PERMISSION_DENIED
            assert await client.call("x.who") == 1


def test_default_load_uids() -> None:
    assert allowed_load_uids(DaemonConfig(), 1000) == {0, 1000}
    assert allowed_load_uids(DaemonConfig(load_uids=()), 1000) == set()  # an empty list: nobody
    assert allowed_load_uids(DaemonConfig(load_uids=(4242,)), 1000) == {4242}


@needs_root_and_setpriv
async def test_by_default_another_uid_may_not_load_or_unload(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    write_plugins(short_tmp / "elsewhere", {"extra.wat": TWO})
    async with running_daemon(
        short_tmp, {"x.wat": ONE}, socket_mode=0o666, allow_uids=(4343,)
    ) as daemon:
        path = str(short_tmp / "elsewhere" / "extra.wat")
        calls = [("wasmd.load", [path]), ("wasmd.unload", ["x"]), ("x.who", [])]
        load, unload, who = await call_as(4343, daemon.socket, calls)
    assert load["error"][0] == ErrorCode.PERMISSION_DENIED
    assert unload["error"][0] == ErrorCode.PERMISSION_DENIED
    assert who == {"result": 1}


async def test_cli_load_and_unload(
    short_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugins(short_tmp / "elsewhere", {"extra.wat": TWO})
    async with running_daemon(short_tmp, {}) as daemon, daemon.client() as client:
        monkeypatch.chdir(short_tmp / "elsewhere")
        socket = str(daemon.socket)
        code = await anyio.to_thread.run_sync(main, ["load", "--socket", socket, "extra.wat"])
        assert code == 0
        assert '"how": "load"' in capsys.readouterr().out
        assert await client.call("extra.who") == 2
        code = await anyio.to_thread.run_sync(main, ["unload", "--socket", socket, "extra"])
        assert code == 0
        assert await client.list() == []
        code = await anyio.to_thread.run_sync(main, ["unload", "--socket", socket, "extra"])
        assert code == 1
        assert "no plug-in named 'extra'" in capsys.readouterr().err
