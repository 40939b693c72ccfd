"""READY does not wait for slow plug-ins: past ``ready_timeout_ms`` the daemon serves, the
plug-ins still loading answer ``unavailable`` (kind ``loading``), and ``plugin.loaded``
follows when they are done."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmd import ErrorCode, WasmdError

from .conftest import running_daemon
from .helpers import subscribe
from .wat import ARITH

# Start code that takes 1.5 s of wall-clock time whatever the machine's speed (WASI's
# monotonic clock): a load as slow as a big component's first compile, and as predictable.
SLOW_START = """(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $now (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func $elapsed (result i64)
    (drop (call $now (i32.const 1) (i64.const 1) (i32.const 8)))
    (i64.sub (i64.load (i32.const 8)) (i64.load (i32.const 0))))
  (func $wait
    (drop (call $now (i32.const 1) (i64.const 1) (i32.const 0)))
    (loop $spin (br_if $spin (i64.lt_u (call $elapsed) (i64.const 1500000000)))))
  (start $wait)
  (func (export "seven") (result i32) (i32.const 7)))"""


async def test_ready_comes_before_a_slow_plugin_has_loaded(short_tmp: Path) -> None:
    plugins = {"quick.wat": ARITH, "slow.wat": SLOW_START}
    async with (
        running_daemon(short_tmp, plugins, ready_timeout_ms=200) as daemon,
        daemon.client() as client,
    ):
        events = await subscribe(client, "plugin.loaded")
        assert await client.call("quick.add", 2, 3) == 5
        with pytest.raises(WasmdError) as loading:
            await client.call("slow.seven")
        with pytest.raises(WasmdError) as missing:
            await client.call("nothing.seven")
        loaded = await events.next(within=20)
        assert await client.call("slow.seven") == 7
    assert loading.value.code == ErrorCode.UNAVAILABLE
    assert loading.value.data == {"kind": "loading"}
    assert "still loading" in loading.value.message
    assert missing.value.code == ErrorCode.METHOD_NOT_FOUND  # a name no scan found
    assert loaded["plugin"] == "slow"


@pytest.mark.slow
async def test_within_the_bound_ready_waits_for_every_plugin(short_tmp: Path) -> None:
    plugins = {"quick.wat": ARITH, "slow.wat": SLOW_START}
    async with (
        running_daemon(short_tmp, plugins, ready_timeout_ms=60_000) as daemon,
        daemon.client() as client,
    ):
        assert await client.call("slow.seven") == 7  # loaded before READY
