"""Plug-in-to-plug-in calls: the host import ``wasmd.call`` (wasmd/runtime/nested.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import running_daemon, write_plugins
from tests.helpers import subscribe
from tests.wat_abi import MSGPACK_GUEST, relay_guest
from wasmd import ErrorCode, Loader, WasmdError
from wasmd.runtime import MAX_CALL_DEPTH, fastcall

SPIN_MSGPACK = """(module
  (memory (export "memory") 1)
  (func (export "wasmd_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
)"""

# A callee that spins until stopped, or echoes its params array.
SPIN_OR_ECHO = """(module
  (memory (export "memory") 1)
  (func (export "wasmd_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
  (func (export "echo") (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
)"""

needs_guard = pytest.mark.skipif(
    not fastcall.ENABLED, reason="interrupting a running call needs the epoch-deadline callback"
)


def plugins(**manifests: str) -> dict[str, str]:
    files = {
        "relay.wat": relay_guest(
            {
                "to_echo": "callee.echo",
                "to_fail": "callee.fail",
                "to_missing": "nobody.echo",
                "to_no_export": "callee.nope",
                "to_private": "private.echo",
                "to_spin": "slow.spin",
                "to_self": "relay.to_self",
            }
        ),
        "callee.wat": MSGPACK_GUEST,
        "callee.toml": '[access]\nplugins = ["relay"]\n',
        "private.wat": MSGPACK_GUEST,
        "slow.wat": SPIN_MSGPACK,
        "slow.toml": '[plugin]\ntimeout_ms = 60000\n[access]\nplugins = ["*"]\n',
    }
    files.update({f"{name}.toml": text for name, text in manifests.items()})
    return files


@pytest.fixture
def loader(tmp_path: Path) -> Iterator[Loader]:
    write_plugins(
        tmp_path, plugins(relay='[plugin]\ntimeout_ms = 300\n[access]\nplugins = ["relay"]\n')
    )
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        for name in ("relay", "callee", "private", "slow"):
            loader.load(name)
        yield loader


def call(loader: Loader, export: str, *params: Any) -> Any:
    relay = loader.get("relay")
    assert relay is not None
    return relay.call(export, *params)


def error_code(answer: Any) -> int:
    assert answer[1] is None, answer
    return int(answer[0][0])


def test_a_plugin_calls_another(loader: Loader) -> None:
    assert call(loader, "to_echo", 1, "two", {"three": 3}) == [None, [1, "two", {"three": 3}]]
    callee = loader.get("callee")
    assert callee is not None
    assert callee.describe()["stats"]["calls"] == 1


def test_the_callees_errors_come_back_as_answers(loader: Loader) -> None:
    failed = call(loader, "to_fail")
    assert failed[0][:2] == [ErrorCode.TRAP, "echo refused on purpose"]
    assert error_code(call(loader, "to_missing")) == ErrorCode.METHOD_NOT_FOUND
    assert error_code(call(loader, "to_no_export")) == ErrorCode.METHOD_NOT_FOUND
    # The caller's own call still succeeds: the answer is its result.
    assert call(loader, "to_echo", 5) == [None, [5]]


def test_access_plugins_decides_who_may_call(loader: Loader) -> None:
    # private has no [access] plugins: no plug-in may call it.
    answer = call(loader, "to_private", 1)
    assert error_code(answer) == ErrorCode.PERMISSION_DENIED
    assert "relay may not call plug-in private" in answer[0][1]
    private = loader.get("private")
    assert private is not None
    assert private.describe()["stats"]["calls"] == 0


def test_calling_itself_with_one_instance_is_busy_not_a_deadlock(loader: Loader) -> None:
    started = time.monotonic()
    answer = call(loader, "to_self")
    assert error_code(answer) == ErrorCode.BUSY
    assert "no free instance" in answer[0][1]
    assert time.monotonic() - started < 0.25  # no wait for the caller's deadline (300 ms)


def test_depth_is_limited(tmp_path: Path) -> None:
    write_plugins(
        tmp_path,
        plugins(
            relay=f'[plugin]\ninstances = {MAX_CALL_DEPTH + 2}\n[access]\nplugins = ["relay"]\n'
        ),
    )
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        answer = loader.load("relay").call("to_self")
    depth = 0
    while answer[0] is None:
        answer = answer[1]
        depth += 1
    assert depth == MAX_CALL_DEPTH
    assert answer[0][0] == ErrorCode.RESOURCE_EXHAUSTED


def test_the_callee_inherits_the_callers_deadline(loader: Loader) -> None:
    started = time.monotonic()
    with pytest.raises(WasmdError) as info:
        call(loader, "to_spin")
    # slow's own timeout_ms is 60 s; relay's 300 ms ended both calls.
    assert info.value.code == ErrorCode.TIMEOUT
    assert time.monotonic() - started < 5
    slow = loader.get("slow")
    assert slow is not None
    assert slow.describe()["stats"]["errors"] == {"timeout": 1}


def test_a_misused_import_is_the_callers_abi_violation(tmp_path: Path) -> None:
    bad = """(module
      (import "wasmd" "call" (func $call (param i32 i32 i32 i32) (result i64)))
      (memory (export "memory") 2)
      (data (i32.const 16) "callee.echo")
      (data (i32.const 32) "\\c1")
      (data (i32.const 1024) "\\dd\\00\\01\\00\\01")  ;; an array of 65,537 ...
      (func (export "wasmd_alloc") (param i32) (result i32) (i32.const 200))
      (func (export "not_array") (param i32 i32) (result i64)
        (call $call (i32.const 16) (i32.const 11) (i32.const 16) (i32.const 1)))
      (func (export "out_of_bounds") (param i32 i32) (result i64)
        (call $call (i32.const 0xfffff000) (i32.const 11) (i32.const 32) (i32.const 1)))
      (func (export "container_bomb") (param i32 i32) (result i64)
        (memory.fill (i32.const 1029) (i32.const 0x90) (i32.const 65537))  ;; ... empty arrays
        (call $call (i32.const 16) (i32.const 11) (i32.const 1024) (i32.const 65542))))"""
    callee_toml = '[access]\nplugins = ["bad"]\n'
    write_plugins(
        tmp_path, {"bad.wat": bad, "callee.wat": MSGPACK_GUEST, "callee.toml": callee_toml}
    )
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        plugin = loader.load("bad")
        loader.load("callee")
        for export in ("not_array", "out_of_bounds", "container_bomb"):
            with pytest.raises(WasmdError) as info:
                plugin.call(export)
            assert info.value.data == {"kind": "abi_violation"}
            assert "wasmd.call" in str(info.value)


async def test_over_the_socket(short_tmp: Path) -> None:
    files = plugins(relay='[plugin]\ntimeout_ms = 300\n[access]\nplugins = ["relay"]\n')
    async with running_daemon(short_tmp, files) as daemon, daemon.client() as client:
        assert await client.call("relay.to_echo", "hi") == [None, ["hi"]]
        answer = await client.call("relay.to_self")
        assert answer[0][0] == ErrorCode.BUSY
        answer = await client.call("relay.to_private")
        assert answer[0][0] == ErrorCode.PERMISSION_DENIED


@needs_guard
async def test_cancelling_the_caller_cancels_the_callee(tmp_path: Path) -> None:
    write_plugins(tmp_path, plugins(relay="[plugin]\ntimeout_ms = 60000\n[access]\nplugins = []\n"))
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        relay, slow = loader.load("relay"), loader.load("slow")
        loader.load("callee")
        with anyio.move_on_after(0.2):
            await relay.acall("to_spin")
        # Both guests stopped at the next epoch tick, not at their 60 s deadlines.
        with anyio.fail_after(10):
            assert await relay.acall("to_echo", 1) == [None, [1]]
        assert slow.describe()["stats"]["errors"] == {"cancelled": 1}
        assert relay.describe()["stats"]["errors"] == {"cancelled": 1}


async def test_the_callers_deadline_is_no_fault_of_the_callee(
    short_tmp: Path, call_path: str
) -> None:
    """Issue 22 item 6: relay (50 ms) calls slow (60 s); relay's deadline stopping slow must
    not quarantine slow for everyone, and the answer names the deadline that applied."""
    files = plugins(relay='[plugin]\ntimeout_ms = 50\n[access]\nplugins = ["relay"]\n')
    files["slow.wat"] = SPIN_OR_ECHO
    files["slow.toml"] = (
        '[plugin]\ntimeout_ms = 60000\n[access]\nplugins = ["*"]\n'
        "[failure]\nmax_faults = 2\nwindow_ms = 60000\n"
    )
    async with running_daemon(short_tmp, files) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.")
        for _ in range(3):
            try:
                answer = await client.call("relay.to_spin")
            except WasmdError as exc:  # relay's own deadline stopped relay: relay's fault
                answer = [exc.to_wire(), None]
            else:  # relay returned slow's answer before its guard stopped it
                assert "the calling plug-in's deadline passed" in answer[0][1]
            assert answer[0][0] == ErrorCode.TIMEOUT, answer
        seen = [await events.next() for _ in range(6)]
        # slow is not quarantined: its other export answers.
        assert await client.call("slow.echo", 7) == [7]
        stats = (await client.stats())["plugins"]
    slow_timeouts = [e for e in seen if e["type"] == "plugin.timeout" and e["plugin"] == "slow"]
    assert len(slow_timeouts) == 3
    for event in slow_timeouts:
        assert event["deadline_of"] == "caller"
        assert event["timeout_ms"] <= 50  # relay's deadline, not slow's 60,000 ms
    assert not [e for e in seen if e["type"] == "plugin.quarantined" and e["plugin"] == "slow"]
    assert stats["slow"]["errors"] == {"timeout": 3}
