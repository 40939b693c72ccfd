"""Hot reload through the real watcher: every step awaited as an event, never slept for."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest

from wasmd import Client, ErrorCode, WasmdError
from wasmd.client import open_client
from wasmd.config import DaemonConfig
from wasmd.daemon import Daemon, serve
from wasmd.plugins import watcher
from wasmd.protocol import Connection, Notification

from .conftest import running_daemon
from .helpers import Events, replace_atomically, subscribe
from .wat import ARITH, COUNTER, SPIN, START_LOGS_THEN_SPINS


def versioned(version: int) -> str:
    """A plug-in whose every answer names its version twice, from two places in the module."""
    return f"""(module
      (global $v i32 (i32.const {version}))
      (func (export "which") (result i32 i32) (global.get $v) (i32.const {version}))
      (func (export "add") (param i32 i32) (result i32)
        (i32.add (i32.add (local.get 0) (local.get 1)) (i32.const {version * 1000})))
    )"""


async def test_drop_in_replace_and_remove(short_tmp: Path) -> None:
    async with (
        running_daemon(short_tmp, {"arith.wat": ARITH}, watch=True) as daemon,
        daemon.client() as c,
    ):
        events = await subscribe(c)
        target = daemon.plugins_dir / "calc.wat"

        replace_atomically(target, versioned(1))
        loaded = await events.next()
        assert (loaded["type"], loaded["plugin"], loaded["path"]) == (
            "plugin.loaded",
            "calc",
            str(target),
        )
        assert await c.call("calc.which") == [1, 1]

        replace_atomically(target, versioned(2))
        reloaded = await events.next()
        assert (reloaded["type"], reloaded["plugin"]) == ("plugin.reloaded", "calc")
        assert reloaded["old_version"] == loaded["version"]
        assert reloaded["new_version"] != reloaded["old_version"]
        assert await c.call("calc.which") == [2, 2]

        target.unlink()
        unloaded = await events.next()
        assert (unloaded["type"], unloaded["plugin"]) == ("plugin.unloaded", "calc")
        assert unloaded["version"] == reloaded["new_version"]
        with pytest.raises(WasmdError) as caught:
            await c.call("calc.which")
        assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
        assert await c.call("arith.add", 1, 1) == 2  # the neighbour never noticed


async def test_same_bytes_make_no_event_and_a_manifest_edit_reloads(short_tmp: Path) -> None:
    plugins = {"calc.wat": versioned(1)}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        replace_atomically(daemon.plugins_dir / "calc.wat", versioned(1))  # same bytes
        (daemon.plugins_dir / "calc.toml").write_text("[plugin]\ntimeout_ms = 5000\n")
        # The first event is the manifest's: the rewrite of identical bytes made none.
        event = await events.next()
        assert (event["type"], event["plugin"]) == ("plugin.reloaded", "calc")
        description = await c.describe("calc")
        assert description["limits"]["timeout_ms"] == 5000
        assert description["version"] == event["new_version"]


async def test_broken_new_versions_leave_the_old_one_serving(short_tmp: Path) -> None:
    plugins = {"calc.wat": versioned(1)}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        good = (await c.describe("calc"))["version"]
        wat = daemon.plugins_dir / "calc.wat"
        manifest = daemon.plugins_dir / "calc.toml"
        breakages: list[tuple[Callable[[], object], str]] = [
            (lambda: replace_atomically(wat, "(module (func (export"), "invalid WAT"),
            (lambda: replace_atomically(wat, b"\x00asm\x01\x00\x00\x00\x7f"), "invalid module"),
            (lambda: manifest.write_text("[plugin]\ntimeout_ms = -1\n"), "plugin.timeout_ms"),
            (lambda: manifest.write_text('[plugin]\nexports = ["nope"]\n'), "nope"),
            (lambda: replace_atomically(wat, START_TRAPS), "unreachable"),
        ]
        for breakage, fragment in breakages:
            breakage()
            failed = await events.next()
            assert (failed["type"], failed["plugin"], failed["kept_version"]) == (
                "plugin.failed",
                "calc",
                good,
            )
            assert fragment in failed["error"]
            assert await c.call("calc.which") == [1, 1]
            # Back to exactly the files that are serving: nothing to do, and no event.
            manifest.unlink(missing_ok=True)
            replace_atomically(wat, versioned(1))
        replace_atomically(wat, versioned(2))
        # Events are ordered, so the restorations above would have come before this one.
        event = await events.next()
        assert (event["type"], event["old_version"]) == ("plugin.reloaded", good)


async def test_half_written_file_never_replaces_a_good_version(short_tmp: Path) -> None:
    plugins = {"calc.wat": versioned(1)}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        new = versioned(2).encode()
        path = daemon.plugins_dir / "calc.wat"
        with path.open("wb") as file:  # in place, the way a slow copy writes
            file.write(new[: len(new) // 2])
            file.flush()
            failed = await events.next()  # the batch with half the file has been handled
            assert (failed["type"], failed["kept_version"]) == (
                "plugin.failed",
                (await c.describe("calc"))["version"],
            )
            assert await c.call("calc.which") == [1, 1]
            file.write(new[len(new) // 2 :])
        reloaded = await events.next()
        assert reloaded["type"] == "plugin.reloaded"
        assert await c.call("calc.which") == [2, 2]


async def test_directory_deleted_and_recreated_keeps_being_watched(short_tmp: Path) -> None:
    plugins = {"calc.wat": versioned(1), "arith.wat": ARITH}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        shutil.rmtree(daemon.plugins_dir)
        gone = {(await events.next())["plugin"] for _ in range(2)}
        assert gone == {"calc", "arith"}
        assert await c.call("wasmd.list") == []

        daemon.plugins_dir.mkdir()
        replace_atomically(daemon.plugins_dir / "calc.wat", versioned(3))
        loaded = await events.next()
        assert (loaded["type"], loaded["plugin"]) == ("plugin.loaded", "calc")
        assert await c.call("calc.which") == [3, 3]
        # And the new directory is watched for further changes, not just scanned once.
        replace_atomically(daemon.plugins_dir / "counter.wat", COUNTER)
        loaded = await events.next()
        assert (loaded["type"], loaded["plugin"]) == ("plugin.loaded", "counter")


async def test_editor_temporary_files_are_ignored(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {}, watch=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        for name in (".calc.wat.swp", "calc.wat~", "calc.wat.tmp", ".hidden.wat", "x.part"):
            (daemon.plugins_dir / name).write_text(versioned(1))
        replace_atomically(daemon.plugins_dir / "real.wat", versioned(1))
        event = await events.next()
        assert (event["type"], event["plugin"]) == ("plugin.loaded", "real")
        assert [item["name"] for item in await c.list()] == ["real"]


async def test_reload_rpc_and_rescan_without_a_watcher(short_tmp: Path) -> None:
    plugins = {"calc.wat": versioned(1)}
    async with running_daemon(short_tmp, plugins, watch=False) as daemon, daemon.client() as c:
        replace_atomically(daemon.plugins_dir / "calc.wat", versioned(2))
        replace_atomically(daemon.plugins_dir / "arith.wat", ARITH)
        assert await c.call("calc.which") == [1, 1]  # nobody is watching
        assert await c.call("wasmd.reload", "calc") == {
            "loaded": [],
            "reloaded": ["calc"],
            "unloaded": [],
            "failed": [],
            "unchanged": [],
            "still_unloaded": [],
        }
        assert await c.call("calc.which") == [2, 2]
        report = await c.call("wasmd.reload")
        assert (report["loaded"], report["unchanged"]) == (["arith"], ["calc"])
        with pytest.raises(WasmdError) as caught:
            await c.call("wasmd.reload", "Not A Name")
        assert caught.value.code == ErrorCode.INVALID_PARAMS


async def test_calls_in_flight_finish_on_the_old_version(short_tmp: Path) -> None:
    slow_v1 = SPIN.replace("(i32.const 7)", "(i32.const 1)")
    plugins = {"s.wat": slow_v1, "s.toml": "[plugin]\ntimeout_ms = 300\n"}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        outcome: list[Any] = []

        async def spin_then_quick() -> None:
            try:
                await c.call("s.spin")
            except WasmdError as exc:
                outcome.append(exc.code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(spin_then_quick)
            with anyio.fail_after(5):
                while (await c.stats())["plugins"]["s"]["in_flight"] == 0:
                    await anyio.wait_all_tasks_blocked()
            replace_atomically(daemon.plugins_dir / "s.wat", SPIN)  # quick() -> 7 now
            assert (await events.next())["type"] == "plugin.reloaded"
            assert await c.call("s.quick") == 7  # new calls reach the new version at once
        # The spinning call ran to its own deadline on the old version: a timeout, not a
        # failure caused by the reload.
        assert outcome == [ErrorCode.TIMEOUT]


async def _call_until(
    client: Client, stop: anyio.Event, seen: set[tuple[int, int]], failures: list[str]
) -> int:
    calls = 0
    while not stop.is_set():
        try:
            seen.add(tuple(await client.call("v.which")))
        except WasmdError as exc:
            failures.append(str(exc))
        calls += 1
    return calls


# slow: 1.5 s measured (50 reloads under load)
@pytest.mark.slow
async def test_soak_50_replacements_under_load_zero_failed_calls(short_tmp: Path) -> None:
    plugins = {"v.wat": versioned(1), "v.toml": "[plugin]\ninstances = 2\nqueue = 16\n"}
    async with (
        running_daemon(short_tmp, plugins, watch=True) as daemon,
        daemon.client() as watcher,
    ):
        events = await subscribe(watcher, "plugin.")
        seen: set[tuple[int, int]] = set()
        failures: list[str] = []
        counts: list[int] = []
        stop = anyio.Event()

        async def caller() -> None:
            async with daemon.client() as client:
                counts.append(await _call_until(client, stop, seen, failures))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(caller)
            for round_ in range(50):
                replace_atomically(daemon.plugins_dir / "v.wat", versioned(2 - round_ % 2))
                event = await events.next()
                assert (event["type"], event["plugin"]) == ("plugin.reloaded", "v"), event
            stop.set()
        assert failures == []
        assert seen <= {(1, 1), (2, 2)}  # never a mix of two versions
        assert seen == {(1, 1), (2, 2)}
        assert sum(counts) > 50
        stats = await watcher.stats()
        assert stats["plugins"]["v"]["errors"] == {}


START_TRAPS = """(module (func $boom unreachable) (start $boom)
  (func (export "which") (result i32 i32) (i32.const 9) (i32.const 9)))"""


# A subscriber's events wait once anything is unsent to it, in a buffer of 8: a few hundred
# events (what the kernel's socket buffer holds, then 8) are enough to make it lose some.
SMALL_EVENT_LIMITS: dict[str, Any] = {"events_buffer": 8, "events_outbox_limit": 0}
# A plug-in that traps on every call without ever being quarantined: one event per call.
CRASH_LOOP = {"counter.wat": COUNTER, "counter.toml": "[failure]\nmax_faults = 0\n"}


async def _trap_until_events_are_dropped(client: Client) -> int:
    """Make trapping calls (each one an event) until the daemon has dropped some events for a
    subscriber that does not read; how many calls that took."""
    for calls in range(1, 5001):
        with pytest.raises(WasmdError):
            await client.call("counter.fail")
        if (await client.stats())["daemon"]["events_dropped"] > 0:
            return calls
    raise AssertionError("5,000 events and none dropped for a subscriber that does not read")


async def _wait_for_a_subscriber(client: Client) -> None:
    with anyio.fail_after(5):
        while (await client.stats())["daemon"]["subscribers"] == 0:
            await anyio.wait_all_tasks_blocked()


async def test_subscriber_that_never_reads_does_not_hold_anyone_up(short_tmp: Path) -> None:
    plugins = {"arith.wat": ARITH, **CRASH_LOOP}
    async with running_daemon(short_tmp, plugins, **SMALL_EVENT_LIMITS) as daemon:
        # A raw connection that subscribes to everything and then never reads a byte.
        async with await anyio.connect_unix(daemon.socket) as deaf:
            await deaf.send(bytes(msgpack.packb([0, 1, "wasmd.subscribe", []])))
            async with daemon.client() as client:
                await _wait_for_a_subscriber(client)
                traps = await _trap_until_events_are_dropped(client)
                assert await client.call("arith.add", 2, 2) == 4
                stats = await client.stats()
        assert stats["plugins"]["counter"]["errors"] == {"trap": traps}


async def test_restart_with_a_compile_cache_skips_compiling(short_tmp: Path) -> None:
    cache = short_tmp / "cache"
    plugins = {"calc.wat": versioned(1), "arith.wat": ARITH}
    async with running_daemon(short_tmp, plugins, cache_dir=cache) as daemon, daemon.client() as c:
        first = (await c.stats())["daemon"]["compile_cache"]
    assert (first["hits"], first["misses"], first["stores"]) == (0, 2, 2)
    async with running_daemon(short_tmp, {}, cache_dir=cache) as daemon, daemon.client() as c:
        second = (await c.stats())["daemon"]["compile_cache"]
        assert await c.call("calc.which") == [1, 1]
    assert (second["hits"], second["misses"]) == (2, 0)


async def test_polling_watcher_for_file_systems_without_inotify(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher, "POLL_INTERVAL", 0.02)  # a round every 20 ms, not 250
    async with running_daemon(short_tmp, {}, force_polling=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        replace_atomically(daemon.plugins_dir / "calc.wat", versioned(1))
        loaded = await events.next()
        assert (loaded["type"], loaded["plugin"]) == ("plugin.loaded", "calc")
        replace_atomically(daemon.plugins_dir / "calc.wat", versioned(2))
        assert (await events.next())["type"] == "plugin.reloaded"
        assert await c.call("calc.which") == [2, 2]


async def test_slow_subscriber_is_told_how_many_events_it_lost(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, CRASH_LOOP, **SMALL_EVENT_LIMITS) as daemon:
        async with await anyio.connect_unix(daemon.socket) as slow, daemon.client() as client:
            await slow.send(bytes(msgpack.packb([0, 1, "wasmd.subscribe", [["plugin."]]])))
            await _wait_for_a_subscriber(client)
            traps = await _trap_until_events_are_dropped(client)  # the slow one is not reading
            lost = (await client.stats())["daemon"]["events_dropped"]
            # Now it reads: every event either arrives or is counted in an events.dropped notice.
            protocol = Connection()
            received: list[str] = []
            dropped = 0
            with anyio.fail_after(20):
                while received.count("plugin.trapped") + dropped < traps:
                    protocol.receive_data(await slow.receive())
                    for message in protocol.events():
                        if isinstance(message, Notification):
                            event = message.params[0]
                            received.append(event["type"])
                            dropped += event.get("count", 0)
    assert received.count("events.dropped") == 1
    assert dropped == lost
    # The notice comes first with what the full buffer kept: the newest events_buffer events.
    after_the_notice = received[received.index("events.dropped") + 1 :]
    assert after_the_notice == ["plugin.trapped"] * SMALL_EVENT_LIMITS["events_buffer"]


TiB = 1 << 40


def sparse_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk space: what a hostile writer grows."""
    with open(path, "wb") as file:
        file.truncate(size)


def padded_module(payload: int) -> bytes:
    """A valid empty module carrying ``payload`` bytes in a custom section."""
    name = b"\x03pad"
    size, leb = len(name) + payload, bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        leb.append(byte | (0x80 if size else 0))
        if not size:
            break
    return b"\0asm\1\0\0\0" + b"\0" + bytes(leb) + name + bytes(payload)


def bytes_read() -> int:
    """Bytes this process (the daemon) has read through system calls so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


async def test_huge_module_at_start_up_fails_without_being_read(short_tmp: Path) -> None:
    """Issue 13: a 1 TiB sparse big.wasm killed the daemon (MemoryError) at start-up."""
    plugins_dir = short_tmp / "plugins.d"
    plugins_dir.mkdir()
    sparse_file(plugins_dir / "big.wasm", TiB)
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon, daemon.client() as c:
        listing = {item["name"]: item for item in await c.list()}
        assert listing["big"]["state"] == "failed"
        assert f"big.wasm is {TiB} bytes, over the limit of {256 << 20}" in listing["big"]["error"]
        assert await c.call("arith.add", 1, 2) == 3


async def test_huge_module_dropped_in_live_fails_and_is_reported_once(short_tmp: Path) -> None:
    async with (
        running_daemon(short_tmp, {"arith.wat": ARITH}, watch=True) as daemon,
        daemon.client() as c,
    ):
        events = await subscribe(c)
        temporary = daemon.plugins_dir / "big.wasm.part"
        sparse_file(temporary, TiB)
        temporary.rename(daemon.plugins_dir / "big.wasm")
        failed = await events.next()
        assert (failed["type"], failed["plugin"]) == ("plugin.failed", "big")
        assert "over the limit" in failed["error"]
        assert "max_module_size" in failed["error"]
        assert (await c.call("wasmd.reload"))["failed"] == [
            "big"
        ]  # still failed; not reported again
        (daemon.plugins_dir / "calc.wat").write_text(versioned(1))
        loaded = await events.next()
        assert (loaded["type"], loaded["plugin"]) == ("plugin.loaded", "calc")
        assert await c.call("arith.add", 1, 2) == 3


async def test_rescan_does_not_read_unchanged_modules_again(short_tmp: Path) -> None:
    plugins: dict[str, str | bytes] = {"padded.wasm": padded_module(32 << 20), "arith.wat": ARITH}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as c:
        before = bytes_read()
        for _ in range(3):
            assert (await c.call("wasmd.reload"))["unchanged"] == ["arith", "padded"]
        assert bytes_read() - before < 4 << 20  # three reads of padded.wasm would be 96 MiB
        # A change is still seen: same size, new bytes.
        replace_atomically(daemon.plugins_dir / "arith.wat", ARITH.replace("add", "sum", 1))
        assert "arith" in (await c.call("wasmd.reload"))["reloaded"]
        assert await c.call("arith.sum", 1, 2) == 3


NOT_UTF8 = os.fsdecode(b"y\xfe")


@pytest.mark.parametrize("kind", ["file", "folder"])
@pytest.mark.parametrize("when", ["at-start-up", "dropped-in-live"])
async def test_names_that_are_not_utf8_are_ignored_and_the_watch_goes_on(
    short_tmp: Path, kind: str, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: watchfiles raised WatchfilesRustInternalError on such a name, and the
    daemon exited."""
    plugins_dir = short_tmp / "plugins.d"
    plugins_dir.mkdir()

    def make_bad_name() -> None:
        bad = plugins_dir / (NOT_UTF8 + (".wat" if kind == "file" else ""))
        bad.write_text(ARITH) if kind == "file" else bad.mkdir()

    if when == "at-start-up":
        make_bad_name()
    async with (
        running_daemon(short_tmp, {"arith.wat": ARITH}, watch=True) as daemon,
        daemon.client() as c,
    ):
        events = await subscribe(c)
        if when == "dropped-in-live":
            make_bad_name()
        replace_atomically(daemon.plugins_dir / "calc.wat", versioned(1))
        loaded = await events.next()
        assert (loaded["type"], loaded["plugin"]) == ("plugin.loaded", "calc")
        assert [item["name"] for item in await c.list()] == ["arith", "calc"]
        assert await c.call("arith.add", 1, 2) == 3
    assert all(NOT_UTF8 not in record.getMessage() for record in caplog.records)


@pytest.mark.slow  # over 2 s alone (pytest --durations)
async def test_slow_plugin_does_not_hold_up_another_drop_in(short_tmp: Path) -> None:
    """Issue 13: the watcher awaited each batch in turn, so a new plug-in waited behind one
    whose loading was slow (start code here; a big compile alike)."""
    spinning = threading.Event()

    class SpinSeen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "start code spins" in record.getMessage():
                spinning.set()

    handler = SpinSeen()
    logging.getLogger("wasmd.plugin.slow").addHandler(handler)
    try:
        async with running_daemon(short_tmp, {"arith.wat": ARITH}, watch=True) as daemon:
            async with daemon.client() as c:
                events = await subscribe(c)
                replace_atomically(
                    daemon.plugins_dir / "slow.toml", "[plugin]\ntimeout_ms = 4000\n"
                )
                replace_atomically(daemon.plugins_dir / "slow.wat", START_LOGS_THEN_SPINS)
                assert await anyio.to_thread.run_sync(spinning.wait, 10)
                replace_atomically(daemon.plugins_dir / "small.wat", versioned(1))
                first = await events.next()
                assert (first["type"], first["plugin"]) == ("plugin.loaded", "small")
                failed = await events.next()
                assert (failed["type"], failed["plugin"]) == ("plugin.failed", "slow")
    finally:
        logging.getLogger("wasmd.plugin.slow").removeHandler(handler)


async def next_plugin_event(events: Events) -> tuple[str, str]:
    """The next plug-in event's type and plug-in, past the rescans of re-arms (a re-arm may
    happen more than once while folders come back)."""
    event = await events.next()
    while event["type"] == "daemon.reloading":
        event = await events.next()
    return event["type"], event["plugin"]


@pytest.mark.parametrize("rearmed_by", ["the-periodic-check", "a-rescan"])
async def test_watch_survives_its_parent_being_removed_and_recreated(
    short_tmp: Path, rearmed_by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: with the plug-in directory's parent removed and recreated, the watch was dead
    for good (a watch on a removed folder sees nothing of its successor), and SIGHUP did not
    re-arm it."""
    # The periodic check comes every 50 ms here rather than every second; a rescan must do
    # without it.
    interval = 3600.0 if rearmed_by == "a-rescan" else 0.05
    monkeypatch.setattr(watcher, "MOVED_CHECK_INTERVAL", interval)
    parent = short_tmp / "p"
    plugins_dir = parent / "plugins.d"
    plugins_dir.mkdir(parents=True)
    (plugins_dir / "arith.wat").write_text(ARITH)
    config = DaemonConfig(socket=short_tmp / "wasmd.sock", plugin_dirs=(plugins_dir,))
    async with anyio.create_task_group() as tg:
        info = await tg.start(lambda task_status: serve(config, task_status=task_status))
        assert isinstance(info, Daemon)
        async with open_client(short_tmp / "wasmd.sock") as c:
            events = await subscribe(c, "plugin.", "daemon.reloading")
            shutil.rmtree(parent)
            # The watcher re-arms over what exists now (nothing) and rescans: wait for both.
            seen: set[str] = set()
            while seen != {"plugin.unloaded", "daemon.reloading"}:
                seen.add((await events.next())["type"])
            plugins_dir.mkdir(parents=True)
            replace_atomically(plugins_dir / "calc.wat", versioned(1))
            if rearmed_by == "a-rescan":
                await c.call("wasmd.reload")  # what SIGHUP does
            assert await next_plugin_event(events) == ("plugin.loaded", "calc")
            # And the new watch follows changes, not just the rescan after re-arming.
            replace_atomically(plugins_dir / "calc.wat", versioned(2))
            assert await next_plugin_event(events) == ("plugin.reloaded", "calc")
        tg.cancel_scope.cancel()
