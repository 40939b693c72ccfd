"""Durable per-plug-in state (issue 26) through the real daemon on a real socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
import wasmtime

from wasmd import ErrorCode, SyncClient, WasmdError, statestore
from wasmd.manifest import StatePolicy
from wasmd.runtime import kv
from wasmd.runtime.host import call_state
from wasmd.runtime.traps import CallEnded
from wasmd.statestore import Namespace, StateError, StateStores, default_state_dir

from .conftest import running_daemon, serve_command, write_plugins
from .helpers import replace_atomically, subscribe
from .processes import reaped, until, wait_ready
from .wat_state import COUNTER, PLAIN, SELF_CALLER

LIMITS = "[state]\nmax_bytes = 4096\nmax_keys = 4\n"


async def test_counting_survives_a_trap_and_a_reload(short_tmp: Path) -> None:
    state = short_tmp / "state"
    async with running_daemon(
        short_tmp, {"tally.wat": COUNTER}, state_dir=state, watch=True
    ) as daemon:
        async with daemon.client() as c:
            assert [await c.call("tally.incr") for _ in range(3)] == [1, 2, 3]
            with pytest.raises(WasmdError) as caught:
                await c.call("tally.incr_then_trap")
            assert caught.value.code == ErrorCode.TRAP
            assert await c.call("tally.get") == 3  # the trapped call's +1 was rolled back
            events = await subscribe(c)
            replace_atomically(daemon.plugins_dir / "tally.wat", COUNTER + "\n;; v2\n")
            assert (await events.next())["type"] == "plugin.reloaded"
            assert await c.call("tally.incr") == 4
    assert oct((state).stat().st_mode & 0o777) == "0o700"
    assert oct((state / "tally.sqlite3").stat().st_mode & 0o777) == "0o600"


async def test_a_timed_out_call_leaves_no_write(short_tmp: Path) -> None:
    plugins = {"tally.wat": COUNTER, "tally.toml": "[plugin]\ntimeout_ms = 100\n"}
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        async with daemon.client() as c:
            assert await c.call("tally.incr") == 1
            with pytest.raises(WasmdError) as caught:
                await c.call("tally.incr_then_spin")
            assert caught.value.code == ErrorCode.TIMEOUT
            assert await c.call("tally.get") == 1


async def test_the_quota_is_refused_without_a_trap(short_tmp: Path) -> None:
    plugins = {"tally.wat": COUNTER, "tally.toml": LIMITS}
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        async with daemon.client() as c:
            assert await c.call("tally.fill", 4000) == 0  # 3 + 4000 bytes: within 4096
            assert await c.call("tally.fill", 4094) == -2  # KV_QUOTA: 3 + 4094 > 4096
            assert await c.call("tally.fill", 100) == 0  # shrinking is always allowed
            assert await c.call("tally.incr") == 1  # 5 + 8 more bytes fit
            for k in range(2):
                assert await c.call("tally.set_key", k, 1) == 0  # keys 3 and 4 of 4
            assert await c.call("tally.set_key", 2, 1) == -2  # a fifth key: max_keys
            assert await c.call("tally.set_key", 0, 1) == 0  # replacing one is no new key
            assert await c.call("tally.fill", 2 * 1024 * 1024) == -4  # KV_TOO_LARGE
            description = await c.describe("tally")
            assert description["store"] == {
                "keys": 4,
                "bytes": 3 + 100 + 5 + 8 + 1 + 1,
                "max_bytes": 4096,
                "max_keys": 4,
            }
            stats = await c.call("wasmd.stats")
            assert stats["plugins"]["tally"]["store"]["keys"] == 4
            metrics = await c.call("wasmd.metrics")
            assert 'wasmd_plugin_state_keys{plugin="tally"} 4.0' in metrics
            assert 'wasmd_plugin_state_bytes{plugin="tally"} 118.0' in metrics
            assert 'wasmd_plugin_state_limit_bytes{plugin="tally"} 4096.0' in metrics
            assert 'wasmd_plugin_state_commits_total{plugin="tally"} 8.0' in metrics
            assert await c.call("tally.get") == 1  # no refusal trapped the instance


async def test_keys_are_listed_by_prefix(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"tally.wat": COUNTER}, state_dir=short_tmp / "s") as d:
        async with d.client() as c:
            for start, length in ((0, 1), (0, 2), (0, 3), (1, 2), (2, 1)):  # a ab abc bc c
                assert await c.call("tally.set_key", start, length) == 0
            assert await c.call("tally.count_prefix", 1) == 3  # a, ab, abc
            assert await c.call("tally.count_prefix", 2) == 2  # ab, abc
            assert await c.call("tally.count_prefix", 0) == 5  # every key
            assert await c.call("tally.drop") == 0  # no "count" yet
            assert await c.call("tally.incr") == 1
            assert await c.call("tally.drop") == 1


async def test_two_plugins_are_isolated(short_tmp: Path) -> None:
    plugins = {"one.wat": COUNTER, "two.wat": COUNTER}
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        async with daemon.client() as c:
            assert [await c.call("one.incr") for _ in range(3)] == [1, 2, 3]
            assert await c.call("two.incr") == 1
            assert await c.call("two.count_prefix", 0) == 1
            assert await c.call("one.get") == 3


async def test_concurrent_calls_lose_no_increment(short_tmp: Path) -> None:
    # A generous deadline: the test is about lost increments, on one loaded core too.
    manifest = "[plugin]\ninstances = 4\nqueue = 1000\ntimeout_ms = 30000\n"
    plugins = {"tally.wat": COUNTER, "tally.toml": manifest}
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        clients, calls = 8, 50

        async def count(n: int) -> None:
            async with daemon.client() as c:
                for _ in range(n):
                    await c.call("tally.incr")

        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(count, calls)
        async with daemon.client() as c:
            assert await c.call("tally.get") == clients * calls


async def test_disabled_state_refuses_without_a_trap(short_tmp: Path) -> None:
    plugins = {"tally.wat": COUNTER, "tally.toml": "[state]\nenabled = false\n"}
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        async with daemon.client() as c:
            assert await c.call("tally.get_code") == -3  # KV_UNAVAILABLE
            assert await c.call("tally.fill", 1) == -3
            assert (await c.describe("tally"))["store"] is None
    assert not (short_tmp / "s").exists()


async def test_a_plugin_calling_itself_is_told_its_state_is_busy(short_tmp: Path) -> None:
    plugins = {
        "selfish.wat": SELF_CALLER,
        "selfish.toml": '[plugin]\nabi = "core"\ninstances = 2\n[access]\nplugins = ["selfish"]\n',
    }
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        async with daemon.client() as c:
            # The outer call holds the state, then calls itself; the inner call's kv_set
            # answers KV_BUSY (-6) instead of waiting for its own caller.
            assert await c.call("selfish.outer") == -6


async def test_a_corrupt_database_fails_that_plugin_alone(short_tmp: Path) -> None:
    state = short_tmp / "s"
    state.mkdir(mode=0o700)
    (state / "bad.sqlite3").write_bytes(b"this is not a database" * 100)
    plugins = {"bad.wat": COUNTER, "good.wat": COUNTER}
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as c:
            listed = {p["name"]: p for p in await c.call("wasmd.list")}
            assert "corrupt" in listed["bad"]["error"]
            assert str(state / "bad.sqlite3") in listed["bad"]["error"]
            assert await c.call("good.incr") == 1
            # An operator clears it (the file goes, unread); the plug-in loads again.
            assert await c.call("wasmd.state_clear", "bad") == {"name": "bad", "cleared": None}
            assert (await c.call("wasmd.reload", "bad"))["loaded"] == ["bad"]
            assert await c.call("bad.incr") == 1


async def test_a_locked_database_fails_that_plugin_alone(short_tmp: Path) -> None:
    state = short_tmp / "s"
    state.mkdir(mode=0o700)
    other = sqlite3.connect(state / "held.sqlite3")
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("CREATE TABLE t (x)")  # another process's exclusive lock, held
    try:
        plugins = {"held.wat": COUNTER, "good.wat": COUNTER}
        async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
            async with daemon.client() as c:
                listed = {p["name"]: p for p in await c.call("wasmd.list")}
                assert "locked by another process" in listed["held"]["error"]
                assert await c.call("good.incr") == 1
                other.close()  # the other process lets go: a rescan loads it
                assert (await c.call("wasmd.reload", "held"))["loaded"] == ["held"]
                assert await c.call("held.incr") == 1
    finally:
        other.close()


async def test_a_planted_symlink_is_not_followed(short_tmp: Path) -> None:
    state = short_tmp / "s"
    state.mkdir(mode=0o700)
    target = short_tmp / "elsewhere"
    target.write_bytes(b"")
    (state / "link.sqlite3").symlink_to(target)
    (state / "wal.sqlite3-wal").symlink_to(target)
    plugins = {"link.wat": COUNTER, "wal.wat": COUNTER}
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as c:
            listed = {p["name"]: p for p in await c.call("wasmd.list")}
            assert "symbolic link (refused)" in listed["link"]["error"]
            assert "not a regular file (refused)" in listed["wal"]["error"]
    assert target.read_bytes() == b""


async def test_a_state_directory_linked_by_another_uid_is_refused(short_tmp: Path) -> None:
    """The state directory may be a link of root's or the daemon's own (systemd makes
    /var/lib/wasmd one for a DynamicUser); a link of another uid (planted in a shared folder,
    pointing at a folder of the daemon's) is refused."""
    real = short_tmp / "real"
    real.mkdir()
    (short_tmp / "ours").symlink_to(real)
    async with running_daemon(
        short_tmp, {"tally.wat": COUNTER}, state_dir=short_tmp / "ours"
    ) as daemon:
        async with daemon.client() as c:
            assert await c.call("tally.incr") == 1
    assert (real / "tally.sqlite3").is_file()
    if os.getuid() != 0:
        return  # only root can make a link another uid's
    (short_tmp / "planted").symlink_to(real)
    os.lchown(short_tmp / "planted", 1, 1)
    async with running_daemon(
        short_tmp, {"tally.wat": COUNTER}, state_dir=short_tmp / "planted"
    ) as daemon:
        async with daemon.client() as c:
            listed = {p["name"]: p for p in await c.call("wasmd.list")}
            assert "is a symbolic link of uid 1 (refused)" in listed["tally"]["error"]


# --- a daemon process: restart, kill -9 ---------------------------------------------------


@contextmanager
def _daemon_process(
    root: Path,
    *,
    wrapper: Sequence[str] = (),
    sync: str = "full",
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    sock = root / "wasmd.sock"
    config = root / "wasmd.toml"
    config.write_text(f'state_dir = "{root / "state"}"\nstate_sync = "{sync}"\n')
    command = serve_command(root / "plugins.d", "--socket", str(sock), "--config", str(config))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with reaped([*wrapper, *command], stderr=subprocess.PIPE, text=True, env=env) as p:
        wait_ready(p)
        yield p, sock


@pytest.mark.slow
@pytest.mark.parametrize("sync", ["full", "normal"])
def test_counting_survives_a_restart_and_kill_9(short_tmp: Path, sync: str) -> None:
    write_plugins(short_tmp / "plugins.d", {"tally.wat": COUNTER})
    with _daemon_process(short_tmp, sync=sync) as (daemon, sock):
        with SyncClient(sock, timeout=10) as client:
            assert [client.call("tally.incr") for _ in range(5)] == [1, 2, 3, 4, 5]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    with _daemon_process(short_tmp, sync=sync) as (daemon, sock):
        with SyncClient(sock, timeout=10) as client:
            assert client.call("tally.incr") == 6  # a restart
            answered = [client.call("tally.incr") for _ in range(20)]
        daemon.send_signal(signal.SIGKILL)  # right after the last answer
        assert daemon.wait(timeout=30) == -signal.SIGKILL
    assert answered[-1] == 26
    with _daemon_process(short_tmp) as (daemon, sock):
        with SyncClient(sock, timeout=10) as client:
            assert client.call("tally.get") == 26  # every answered write survived kill -9


def test_the_database_is_kept_by_a_sqlite_of_its_own(short_tmp: Path) -> None:
    """The file is plain SQLite in WAL mode: an operator's sqlite3 can read it offline."""
    stores = StateStores(short_tmp / "s")
    namespace = stores.open("x")
    assert namespace.acquire(lambda: None) is None
    assert namespace.put(b"k", b"v", StatePolicy())
    namespace.commit()
    stores.close()
    db = sqlite3.connect(short_tmp / "s" / "x.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT k, v FROM kv").fetchall() == [(b"k", b"v")]
    db.close()


# --- operators: wasmd state ----------------------------------------------------------------


async def test_operators_list_export_import_and_clear(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wasmd.cli import main

    plugins = {"tally.wat": COUNTER, "other.wat": COUNTER}
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s", watch=True) as daemon:

        async def cli(*argv: str) -> tuple[int, str, str]:
            def run() -> tuple[int, str, str]:
                code = main([argv[0], "--socket", str(daemon.socket), *argv[1:]])
                out, err = capsys.readouterr()
                return code, out, err

            return await anyio.to_thread.run_sync(run)

        async with daemon.client() as c:
            assert [await c.call("tally.incr") for _ in range(2)] == [1, 2]
            assert await c.call("tally.set_key", 0, 3) == 0
            assert await c.call("other.incr") == 1
        assert await cli("state") == (0, "other\ntally\n", "")
        assert await cli("state", "tally") == (
            0,
            "         0 abc\n         8 count\n2 keys, 16 bytes\n",
            "",
        )
        exported = short_tmp / "tally.state"
        assert (await cli("state", "tally", "--export", str(exported)))[0] == 0

        # Removing the plug-in keeps its state; a plug-in of that name gets it back.
        events_dir = daemon.plugins_dir
        (events_dir / "tally.wat").unlink()
        async with daemon.client() as c:
            events = await subscribe(c)
            assert (await events.next())["type"] == "plugin.unloaded"
            assert (await cli("state", "tally"))[1].endswith("2 keys, 16 bytes\n")
            code, out, _ = await cli("state", "tally", "--clear", "--json")
            assert (code, json.loads(out)) == (0, {"name": "tally", "cleared": 2})
            assert not (short_tmp / "s" / "tally.sqlite3").exists()
            assert await cli("state") == (0, "other\n", "")

            # An export imported under another name: how a rename keeps its state.
            code, out, _ = await cli("state", "renamed", "--import", str(exported), "--json")
            assert (code, json.loads(out)) == (0, {"name": "renamed", "keys": 2, "bytes": 16})
            (events_dir / "renamed.wat").write_text(COUNTER)
            assert (await events.next())["type"] == "plugin.loaded"
            assert await c.call("renamed.incr") == 3
            assert await c.call("other.get") == 1

            # An import over the loaded plug-in's quota changes nothing, its --replace
            # (deleting every key first) included: one transaction.
            (events_dir / "renamed.toml").write_text("[state]\nmax_keys = 1\n")
            assert (await events.next())["type"] == "plugin.reloaded"
            code, _, err = await cli("state", "renamed", "--import", str(exported), "--replace")
            assert code == 1
            assert "resource_exhausted" in err
            assert await c.call("renamed.get") == 3
            code, out, _ = await cli("state", "renamed", "--json")
            assert json.loads(out)["keys"] == 2


async def test_only_load_uids_may_see_state(short_tmp: Path, own_uid: int) -> None:
    async with running_daemon(
        short_tmp, {"tally.wat": COUNTER}, state_dir=short_tmp / "s", load_uids=(own_uid + 1,)
    ) as daemon:
        async with daemon.client() as c:
            for method, params in (
                ("wasmd.state", ["tally"]),
                ("wasmd.state_export", ["tally"]),
                ("wasmd.state_import", ["tally", [], False]),
                ("wasmd.state_clear", ["tally"]),
            ):
                with pytest.raises(WasmdError) as caught:
                    await c.call(method, *params)
                assert caught.value.code == ErrorCode.PERMISSION_DENIED


def _on_a_small_file_system(state: Path) -> list[str]:
    """A wrapper that runs the daemon with a 1 MiB tmpfs of its own mounted on ``state`` (a
    mount namespace: nothing outside sees it), or skips the test where that is not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux) for a small file system")
    flags = "-m" if os.getuid() == 0 else "-Urm"
    mount = 'mount -t tmpfs -o size=1m,mode=0700 wasmd-test "$0" && exec "$@"'
    probe = subprocess.run(
        [unshare, flags, "sh", "-c", mount, str(state), "true"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here: {probe.stderr!r}")
    return [unshare, flags, "sh", "-c", mount, str(state)]


def _fill_until_refused(client: SyncClient) -> None:
    for _ in range(20):  # 200 KB a value, 1 MiB of disk: full within 5
        assert client.call("tally.fill", 200_000) == 0


@pytest.mark.slow
def test_a_full_disk_is_resource_exhausted_and_loses_nothing_committed(short_tmp: Path) -> None:
    plugins = {"tally.wat": COUNTER, "tally.toml": '[state]\nmax_bytes = "64 MiB"\n'}
    write_plugins(short_tmp / "plugins.d", plugins)
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    with _daemon_process(short_tmp, wrapper=_on_a_small_file_system(state)) as (_, sock):
        with SyncClient(sock, timeout=10) as client:
            assert client.call("tally.incr") == 1
            with pytest.raises(WasmdError) as caught:
                _fill_until_refused(client)
            assert caught.value.code == ErrorCode.RESOURCE_EXHAUSTED
            assert caught.value.message == "state of tally not saved: the disk is full"
            assert client.call("tally.get") == 1  # committed before the disk filled
            assert client.call("tally.incr") == 2  # small writes still fit
            # The database, as committed, moves to a folder with room (the tmpfs goes
            # with the daemon's mount namespace).
            exported = client.call("wasmd.state_export", "tally")
    assert dict(map(tuple, exported["items"]))[b"count"] == (2).to_bytes(8, "little")
    with _daemon_process(short_tmp) as (_, sock):
        with SyncClient(sock, timeout=10) as client:
            client.call("wasmd.state_import", "tally", exported["items"], True)
            assert client.call("tally.incr") == 3


@pytest.mark.slow
def test_a_read_only_state_folder_fails_that_plugin_alone(short_tmp: Path) -> None:
    write_plugins(short_tmp / "plugins.d", {"tally.wat": COUNTER, "plain.wat": PLAIN})
    (short_tmp / "state").mkdir(mode=0o500)
    # Root writes anywhere: without CAP_DAC_OVERRIDE (and FOWNER), the mode binds it too.
    wrapper: list[str] = []
    if os.getuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv to run the daemon as root without CAP_DAC_OVERRIDE")
        wrapper = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
    with _daemon_process(short_tmp, wrapper=wrapper) as (_, sock):
        with SyncClient(sock, timeout=10) as client:
            listed = {p["name"]: p for p in client.call("wasmd.list")}
            assert "Permission denied" in listed["tally"]["error"]
            assert str(short_tmp / "state" / "tally.sqlite3") in listed["tally"]["error"]
            assert client.call("plain.answer") == 42


# --- components: wasi:keyvalue ----------------------------------------------------------------

KEYVALUE = (Path(__file__).parent / "components" / "counter.component.wat").read_text()


async def test_a_component_counts_through_wasi_keyvalue(short_tmp: Path) -> None:
    state = short_tmp / "s"
    plugins = {"kvc.wat": KEYVALUE, "kvc.toml": "[state]\nmax_keys = 3\n"}
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as c:
            assert [await c.call("kvc.bump") for _ in range(3)] == [1, 2, 3]  # atomics
            with pytest.raises(WasmdError) as caught:
                await c.call("kvc.bump-then-trap")
            assert caught.value.code == ErrorCode.TRAP
            assert await c.call("kvc.put", "k", b"hello") is True  # store
            assert await c.call("kvc.fetch", "k") == b"hello"
            assert await c.call("kvc.fetch", "absent") is None
            assert await c.call("kvc.has", "k") is True
            assert await c.call("kvc.keys") == ["count", "k"]
            assert await c.call("kvc.put", "x", b"") is True
            assert await c.call("kvc.put", "y", b"") is False  # a fourth key: error.other
            assert await c.call("kvc.forget", "x") is True
            assert await c.call("kvc.has", "x") is False
            assert await c.call("kvc.open-other") is False  # no-such-store
            assert (await c.describe("kvc"))["store"]["keys"] == 2
            # The same state through the operators' built-ins.
            listed = await c.call("wasmd.state", "kvc")
            assert listed["entries"] == [[b"count", 8], [b"k", 5]]
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as c:
            assert await c.call("kvc.bump") == 4  # the trapped call's +1 was rolled back


async def test_a_component_without_a_store_is_denied_its_bucket(short_tmp: Path) -> None:
    plugins = {"kvc.wat": KEYVALUE, "kvc.toml": "[state]\nenabled = false\n"}
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        async with daemon.client() as c:
            # open answers access-denied; this guest traps when it gets no bucket
            with pytest.raises(WasmdError) as caught:
                await c.call("kvc.bump")
            assert caught.value.code == ErrorCode.TRAP
            assert (await c.describe("kvc"))["store"] is None
    assert not (short_tmp / "s").exists()


# --- the store alone (no daemon) --------------------------------------------------------------


def test_the_default_state_directory() -> None:
    assert default_state_dir({"STATE_DIRECTORY": "/var/lib/wasmd:/x"}) == Path("/var/lib/wasmd")
    assert default_state_dir({"XDG_STATE_HOME": "/h/s", "HOME": "/h"}) == Path("/h/s/wasmd")
    # A relative XDG_STATE_HOME is invalid by the XDG spec: ignored.
    assert default_state_dir({"XDG_STATE_HOME": "s", "HOME": "/h"}) == Path("/h/.local/state/wasmd")


def test_wider_modes_are_narrowed_and_another_owner_refused(short_tmp: Path) -> None:
    folder = short_tmp / "s"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "x.sqlite3").touch(mode=0o644)
    (folder / "x.sqlite3").chmod(0o644)
    stores = StateStores(folder)
    stores.open("x")
    stores.close()
    assert (folder.stat().st_mode & 0o777, (folder / "x.sqlite3").stat().st_mode & 0o777) == (
        0o700,
        0o600,
    )
    if os.getuid() != 0:
        return  # only root can make a file another uid's
    os.chown(folder / "x.sqlite3", 1, 1)
    with pytest.raises(StateError) as caught:
        StateStores(folder).open("x")
    assert caught.value.message.endswith("x.sqlite3 belongs to uid 1, not us")


def test_keys_walk_in_byte_order_and_quota_counts_keys_and_values(short_tmp: Path) -> None:
    stores = StateStores(short_tmp / "s")
    namespace = stores.open("x")
    quota = StatePolicy(max_bytes=10, max_keys=3)
    assert namespace.acquire(lambda: None) is None
    for key in (b"b", b"a\xff", b"a", b"a\x00", b"c"):
        namespace.put(key, b"", StatePolicy())
    walked: list[bytes] = []
    while (found := namespace.next_key(b"a", walked[-1] if walked else b"")) is not None:
        walked.append(found)
    assert walked == [b"a", b"a\x00", b"a\xff"]
    assert namespace.next_key(b"", b"b") == b"c"
    namespace.clear()
    assert namespace.put(b"k", b"123456789", quota)  # 1 + 9 = 10 bytes: at the limit
    assert not namespace.put(b"k", b"1234567890", quota)  # 11: refused
    assert namespace.put(b"k", b"", quota)  # shrinking: allowed
    assert namespace.usage() == {"keys": 1, "bytes": 1}
    namespace.rollback()
    assert namespace.usage() == {"keys": 0, "bytes": 0}  # the counters roll back too
    stores.close()


def test_a_wait_that_would_deadlock_is_refused_at_once(short_tmp: Path) -> None:
    """Two calls on two threads, each holding one plug-in's state and wanting the other's
    (plug-ins calling each other): the wait that closes the cycle answers "deadlock" at once
    instead of both waiting until their deadlines."""
    stores = StateStores(short_tmp / "s")
    a, b = stores.open("a"), stores.open("b")
    held_b, outcome = threading.Event(), []

    def other_call() -> None:
        assert b.acquire(lambda: None) is None
        held_b.set()
        outcome.append(a.acquire(lambda: None))  # waits for a
        a.rollback()
        b.rollback()

    assert a.acquire(lambda: None) is None
    assert a.acquire(lambda: None) == "deadlock"  # this thread holds it already
    thread = threading.Thread(target=other_call)
    thread.start()
    try:
        assert held_b.wait(10)
        until(lambda: thread.ident in statestore._WAITS.waiting, within=10, what="the wait")
        assert b.acquire(lambda: None) == "deadlock"
    finally:
        a.rollback()  # the other call gets a, and finishes
        thread.join(10)
    assert outcome == [None]
    assert b.acquire(lambda: None) is None  # free again
    b.rollback()
    stores.close()


def test_a_call_waiting_for_the_state_ends_when_cancelled(short_tmp: Path) -> None:
    """A call that waits for the state while another holds it ends when it is cancelled, as
    "cancelled", whatever its guest then does with the refusal (here: traps)."""
    stores = StateStores(short_tmp / "s")
    namespace = stores.open("x")
    held, release = threading.Event(), threading.Event()

    def holding_call() -> None:
        assert namespace.acquire(lambda: None) is None
        held.set()
        release.wait(10)
        namespace.rollback()

    thread = threading.Thread(target=holding_call)
    thread.start()
    saved = call_state.save()
    try:
        assert held.wait(10)
        call_state.deadline_at, call_state.cancellable = None, _Cancelled()
        refusals: list[tuple[int, bytes | None]] = []
        with pytest.raises(CallEnded) as caught:
            _call_that_traps_on_a_refusal(namespace, refusals)
        assert caught.value.why == "cancelled"
        assert refusals == [(kv.KV_UNAVAILABLE, None)]
    finally:
        call_state.restore(saved)
        release.set()
        thread.join(10)
    stores.close()


class _Cancelled:
    cancelled = True


def _call_that_traps_on_a_refusal(
    namespace: Namespace, refusals: list[tuple[int, bytes | None]]
) -> None:
    with kv.transaction(namespace, StatePolicy()):
        refusals.append(kv.with_state(lambda held, _: held.get(b"k")))
        raise wasmtime.WasmtimeError("the guest trapped on the refusal")


def test_an_embedding_loader_keeps_state_in_its_state_dir(short_tmp: Path) -> None:
    from wasmd import Loader

    write_plugins(short_tmp / "plugins", {"tally.wat": COUNTER})
    for expected in ([1, 2], [3, 4]):  # a second Loader on the same folder: a restart
        with Loader(
            [short_tmp / "plugins"], environ={}, include_defaults=False, state_dir=short_tmp / "s"
        ) as loader:
            tally = loader.load("tally")
            assert [tally.call("incr"), tally.call("incr")] == expected
    with Loader([short_tmp / "plugins"], environ={}, include_defaults=False) as loader:
        assert loader.load("tally").call("get_code") == -3  # no state_dir: KV_UNAVAILABLE
