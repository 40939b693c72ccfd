"""Callers: a plug-in learns who calls it (``wasmd.caller_uid``/``gid``/``pid``), and a
caller's faults are charged to its uid: one uid flooding a plug-in with traps is throttled
while another uid's calls keep running."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import running_daemon, write_plugins
from tests.helpers import subscribe
from tests.other_uid import call_as, needs_root_and_setpriv
from tests.wat import ARITH
from tests.wat_abi import relay_guest
from wasmd import Client, ErrorCode, Loader, WasmdError

OTHER_UID = 4343

WHO = """(module
  (import "wasmd" "caller_uid" (func $uid (result i64)))
  (import "wasmd" "caller_gid" (func $gid (result i64)))
  (import "wasmd" "caller_pid" (func $pid (result i64)))
  (func (export "uid") (result i64) (call $uid))
  (func (export "gid") (result i64) (call $gid))
  (func (export "pid") (result i64) (call $pid)))"""

# An Extism plug-in declares user host functions (module extism:host/user, as PDKs'
# ``host_fn`` does): wasmd provides the ones named and typed like its own imports.
EXTISM_WHO = """(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "caller_uid" (func $uid (result i64)))
  (memory (export "memory") 1)
  (func (export "uid") (result i32) (local $offs i64)
    (local.set $offs (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $offs) (call $uid))
    (call $output_set (local.get $offs) (i64.const 8))
    (i32.const 0)))"""

RELAY = relay_guest({"to_uid": "who.uid", "to_pid": "who.pid", "to_div": "math.div"})
CALLABLE = '[access]\nplugins = ["relay"]\n'
FILES = {
    "who.wat": WHO,
    "who.toml": CALLABLE,
    "relay.wat": RELAY,
    "math.wat": ARITH,
    "math.toml": CALLABLE,
}


async def test_a_plugin_sees_who_calls_it_even_through_another(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, FILES) as daemon, daemon.client() as client:
        assert await client.call("who.uid") == os.getuid()
        assert await client.call("who.gid") == os.getgid()
        assert await client.call("who.pid") == os.getpid()
        # A nested call sees the request's caller, not the calling plug-in.
        assert await client.call("relay.to_uid") == [None, os.getuid()]
        assert await client.call("relay.to_pid") == [None, os.getpid()]


async def test_an_extism_plugin_gets_the_caller_as_a_host_function(short_tmp: Path) -> None:
    plugins = {"ex.wat": EXTISM_WHO, "ex.toml": '[plugin]\nabi = "extism"\n'}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert await client.call("ex.uid") == struct.pack("<q", os.getuid())


def test_in_process_calls_have_no_caller(tmp_path: Path) -> None:
    write_plugins(tmp_path, FILES)
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        who = loader.load("who")
        loader.load("relay")
        assert [who.call("uid"), who.call("gid"), who.call("pid")] == [-1, -1, -1]
        assert loader.load("relay").call("to_uid") == [None, -1]


@needs_root_and_setpriv
async def test_another_uid_is_told_apart(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    config: dict[str, Any] = {"socket_mode": 0o666, "allow_uids": (OTHER_UID,)}
    async with running_daemon(short_tmp, FILES, **config) as daemon:
        uid, nested = await call_as(
            OTHER_UID, daemon.socket, [("who.uid", []), ("relay.to_uid", [])]
        )
    assert uid == {"result": OTHER_UID}
    assert nested == {"result": [None, OTHER_UID]}


async def flood(client: Client, method: str, *params: Any) -> dict[str, Any]:
    """Call ``method`` until the answer is a refusal; that refusal's data."""
    with anyio.fail_after(20):
        while True:
            with pytest.raises(WasmdError) as failed:
                await client.call(method, *params)
            if failed.value.code != ErrorCode.TRAP:
                break
    assert failed.value.code == ErrorCode.UNAVAILABLE
    assert failed.value.data is not None
    return failed.value.data


@needs_root_and_setpriv
async def test_a_uid_flooding_traps_leaves_another_uids_calls_running(short_tmp: Path) -> None:
    """Root floods math with ``math.div 1 0`` while uid 4343 calls ``math.add``: root is
    throttled, every one of 4343's calls answers (before: the whole plug-in was quarantined
    after ten traps, and 4343's calls were refused)."""
    short_tmp.chmod(0o755)
    config: dict[str, Any] = {"socket_mode": 0o666, "allow_uids": (OTHER_UID,)}
    adds = [("math.add", [2, 3])] * 200
    # Root stays throttled while the other uid's client starts and calls.
    slow_retry = "[failure]\nbackoff_ms = 60000\nbackoff_max_ms = 60000\n"
    files = {**FILES, "math.toml": CALLABLE + slow_retry}
    async with (
        running_daemon(short_tmp, files, **config) as daemon,
        daemon.client() as client,
        daemon.client() as watcher,
    ):
        events = await subscribe(watcher, "plugin.throttled", "plugin.quarantined")
        other: list[dict[str, Any]] = []

        async def other_uid_calls() -> None:
            other.extend(await call_as(OTHER_UID, daemon.socket, [*adds, ("math.div", [1, 0])]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(other_uid_calls)
            refusal = await flood(client, "math.div", 1, 0)
            # Still throttled while the other uid runs: root stays refused, add or div.
            with pytest.raises(WasmdError) as refused:
                await client.call("math.add", 2, 3)
            assert refused.value.data is not None
            assert refused.value.data["kind"] == "throttled"
        throttled = await events.next()
        metrics = await client.call("wasmd.metrics")
    assert refusal["kind"] == "throttled"
    assert refusal["uid"] == os.getuid()
    assert "divide by zero" in refusal["reason"]
    assert other[:-1] == [{"result": 5}] * len(adds)
    assert other[-1]["error"][0] == ErrorCode.TRAP  # its own first fault: not refused
    assert throttled["type"] == "plugin.throttled"
    assert (throttled["plugin"], throttled["uid"]) == ("math", os.getuid())
    assert f'wasmd_plugin_throttled{{plugin="math",uid="{os.getuid()}"}} 1.0' in metrics
    assert 'wasmd_plugin_throttles_total{plugin="math"} 1.0' in metrics
    assert 'wasmd_plugin_quarantined{plugin="math"} 0.0' in metrics


async def test_a_nested_calls_fault_is_charged_to_the_original_caller(short_tmp: Path) -> None:
    async with (
        running_daemon(short_tmp, FILES) as daemon,
        daemon.client() as client,
        daemon.client() as watcher,
    ):
        events = await subscribe(watcher, "plugin.throttled")
        with anyio.fail_after(20):
            while True:
                error, _ = await client.call("relay.to_div", 1, 0)
                if error[0] == ErrorCode.UNAVAILABLE:
                    break
                assert error[0] == ErrorCode.TRAP
        throttled = await events.next()
    assert error[2]["kind"] == "throttled"
    assert (throttled["plugin"], throttled["uid"]) == ("math", os.getuid())


def test_in_process_calls_are_charged_as_one_caller(tmp_path: Path) -> None:
    write_plugins(tmp_path, {"math.wat": ARITH})
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        math = loader.load("math")
        for _ in range(10):
            with pytest.raises(WasmdError) as trapped:
                math.call("div", 1, 0)
            assert trapped.value.code == ErrorCode.TRAP
        with pytest.raises(WasmdError) as refused:
            math.call("add", 2, 3)
    assert refused.value.data is not None
    assert (refused.value.data["kind"], refused.value.data["uid"]) == ("throttled", -1)


@needs_root_and_setpriv
async def test_faults_of_several_uids_quarantine_the_plugin(short_tmp: Path) -> None:
    """Three uids fault twice each (their share of max_faults = 6): broken for everyone, so
    the plug-in is quarantined for every caller, root included."""
    short_tmp.chmod(0o755)
    policy = "[failure]\nmax_faults = 6\nwindow_ms = 60000\nbackoff_ms = 60000\n"
    policy += "backoff_max_ms = 60000\nquarantine_uids = 3\n"
    files = {**FILES, "math.toml": CALLABLE + policy}
    config: dict[str, Any] = {"socket_mode": 0o666, "allow_uids": (OTHER_UID, OTHER_UID + 1)}
    divs = [("math.div", [1, 0])] * 2
    async with (
        running_daemon(short_tmp, files, **config) as daemon,
        daemon.client() as client,
    ):
        events = await subscribe(client, "plugin.quarantined")
        first = await call_as(OTHER_UID, daemon.socket, divs)
        second = await call_as(OTHER_UID + 1, daemon.socket, divs)
        for _ in range(2):
            with pytest.raises(WasmdError) as trapped:
                await client.call("math.div", 1, 0)
            assert trapped.value.code == ErrorCode.TRAP
        quarantined = await events.next()
        with pytest.raises(WasmdError) as refused:
            await client.call("math.add", 2, 3)
    assert [o["error"][0] for o in first + second] == [ErrorCode.TRAP] * 4
    assert "faults of 3 uids" in quarantined["reason"]
    assert refused.value.data is not None
    assert refused.value.data["kind"] == "quarantined"
