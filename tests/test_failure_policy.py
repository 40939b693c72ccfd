"""The failure policy: the circuit breakers on their own (time passed in), then a real daemon
whose plug-in traps until its caller's uid is throttled (or the plug-in quarantined), and
recovers; and two uids calling one plug-in while one of them floods it with traps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from wasmd import Client, ErrorCode, WasmdError
from wasmd.errors import ConfigError
from wasmd.manifest import FailurePolicy, parse_manifest
from wasmd.runtime.breaker import MAX_CALLERS, NO_PEER, CircuitBreaker, FaultPolicy

from .conftest import running_daemon
from .helpers import subscribe
from .wat import COUNTER

POLICY = FailurePolicy(max_faults=3, window_ms=1000, backoff_ms=100, backoff_max_ms=400)


def test_faults_spread_wider_than_the_window_never_trip() -> None:
    breaker = CircuitBreaker(POLICY)
    for second in range(10):
        assert breaker.fault(second * 0.6, "trap") is None
        assert breaker.refusal(second * 0.6) is None


def test_the_nth_fault_in_the_window_quarantines_with_growing_backoff() -> None:
    # Times are multiples of 1/8 s and the backoff 1/4 s: exact in binary floating point.
    policy = FailurePolicy(max_faults=3, window_ms=1000, backoff_ms=250, backoff_max_ms=750)
    breaker = CircuitBreaker(policy)
    assert breaker.fault(0.0, "a") is None
    assert breaker.fault(0.125, "b") is None
    assert breaker.fault(0.25, "c") == 0.25
    assert breaker.refusal(0.375) == 0.125
    assert breaker.reason == "c"
    assert breaker.fault(0.375, "late") is None  # a call that was running meanwhile
    assert breaker.refusal(0.5) is None  # on probation
    assert breaker.fault(0.5, "again") == 0.5  # doubled at once
    assert breaker.refusal(0.875) == 0.125
    assert breaker.fault(1.0, "again") == 0.75  # capped at backoff_max_ms
    assert breaker.success(1.5) is None  # still quarantined: not a recovery
    assert breaker.success(1.75) == 1.5  # out since 0.25
    assert not breaker.tripped
    # Recovered: the count starts afresh, and so does the backoff.
    assert breaker.fault(2.0, "x") is None
    assert breaker.fault(2.125, "y") is None
    assert breaker.fault(2.25, "z") == 0.25


def test_max_faults_zero_turns_the_policy_off() -> None:
    breaker = CircuitBreaker(FailurePolicy(max_faults=0))
    assert all(breaker.fault(i * 1e-6, "trap") is None for i in range(1000))
    assert not breaker.tripped


def test_one_uids_faults_throttle_that_uid_alone() -> None:
    policy = FaultPolicy(FailurePolicy(max_faults=3, window_ms=1000, backoff_ms=250))
    assert policy.fault(0.0, "a", 1000) is None
    assert policy.fault(0.125, "b", 1000) is None
    assert policy.fault(0.25, "c", 1000) == ("throttled", 1000, 0.25, "c")
    assert policy.watching
    assert policy.refusal(0.375, 1000) == ("throttled", "c", 0.125)
    assert policy.refusal(0.375, 2000) is None  # another uid's calls run
    assert policy.refusal(0.375, NO_PEER) is None
    assert not policy.quarantined  # instances are still made for everyone else
    assert policy.throttled(0.375) == [1000]
    # Probation: a fault doubles the throttle at once; a success forgives the uid.
    assert policy.fault(0.5, "d", 1000) == ("throttled", 1000, 0.5, "d")
    assert policy.success(1.0, 1000) == (None, 0.75)
    assert not policy.watching
    assert policy.fault(1.125, "e", 1000) is None  # counted afresh


def test_faults_no_caller_caused_quarantine_the_plugin() -> None:
    policy = FaultPolicy(FailurePolicy(max_faults=2, window_ms=1000, backoff_ms=250))
    assert policy.fault(0.0, "cannot instantiate", None) is None
    assert policy.fault(0.125, "cannot instantiate", None) == (
        "quarantined",
        None,
        0.25,
        "cannot instantiate",
    )
    assert policy.quarantined
    assert policy.refusal(0.25, 1000) == ("quarantined", "cannot instantiate", 0.125)
    assert policy.success(0.5, 1000) == (0.375, None)  # quarantined since 0.125
    assert not policy.quarantined


def test_faults_shared_by_several_uids_quarantine_the_plugin() -> None:
    policy = FaultPolicy(FailurePolicy(max_faults=6, window_ms=1000, quarantine_uids=3))
    tripped = [policy.fault(i / 64, "trap", uid) for i, uid in enumerate([1, 2, 3, 1, 2, 3])]
    assert tripped[:5] == [None] * 5
    assert tripped[5] is not None
    assert tripped[5].kind == "quarantined"
    assert policy.refusal(0.1, 4)[0] == "quarantined"  # type: ignore[index]


def test_one_flooding_uid_and_bystanders_do_not_quarantine_the_plugin() -> None:
    """A uid's share of the window is max_faults / quarantine_uids: 9 faults of one uid and
    one each of two others count as 4 + 1 + 1, under max_faults."""
    policy = FaultPolicy(FailurePolicy(max_faults=10, window_ms=1000, quarantine_uids=3))
    for i in range(9):
        assert policy.fault(i / 64, "trap", 666) is None
    assert policy.fault(0.2, "trap", 1) is None
    assert policy.fault(0.3, "trap", 2) is None
    throttled = policy.fault(0.4, "trap", 666)
    assert throttled is not None
    assert throttled.kind == "throttled"
    assert policy.refusal(0.45, 1) is None
    assert policy.refusal(0.45, 666) is not None
    # Two uids flooding in one window are short of three: they do not take it away either.
    for i in range(10):
        policy.fault(1.35 + i / 64, "trap", 777)
    assert not policy.quarantined
    assert policy.refusal(1.375, 1) is None


def test_the_uid_table_is_bounded_and_forgets() -> None:
    # A window of 8 ms and one fault every 1/64 s: never more than one uid in a window.
    policy = FaultPolicy(FailurePolicy(max_faults=2, window_ms=8, backoff_max_ms=2000))
    uids = MAX_CALLERS + 50
    for uid in range(uids):
        assert policy.fault(uid / 64, "trap", uid) is None
    assert len(policy._callers) == MAX_CALLERS
    assert 0 not in policy._callers  # the least recently faulting went first
    last = uids - 1
    end = last / 64
    assert policy.fault(end, "trap", last) == (
        "throttled",
        last,
        0.1,
        "trap",
    )  # a recent one is kept
    assert not policy.quarantined
    assert policy.refusal(end + 0.5, 1) is None  # the sweep forgets uids with no recent fault
    assert list(policy._callers) == [last]  # but not a throttled one, until
    assert policy.refusal(end + 2.5, 1) is None  # backoff_max_ms after its throttle ended
    assert not policy._callers
    assert not policy.watching  # calls no longer look their caller up


def test_manifest_failure_section() -> None:
    manifest = parse_manifest(
        "[failure]\nmax_faults = 5\nwindow_ms = 10000\nbackoff_ms = 100\nbackoff_max_ms = 60000\n",
        source="p.toml",
    )
    assert manifest.failure == FailurePolicy(5, 10_000, 100, 60_000)
    assert (
        parse_manifest("[failure]\nquarantine_uids = 1\n", source="p").failure.quarantine_uids == 1
    )
    with pytest.raises(ConfigError, match=r"failure\.quarantine_uids"):
        parse_manifest("[failure]\nquarantine_uids = 0\n", source="p.toml")
    assert parse_manifest("", source="p.toml").failure == FailurePolicy()
    with pytest.raises(ConfigError, match=r"failure\.backoff_max_ms: must be at least"):
        parse_manifest("[failure]\nbackoff_ms = 500\nbackoff_max_ms = 100\n", source="p.toml")
    with pytest.raises(ConfigError, match=r"failure\.retries: unknown key"):
        parse_manifest("[failure]\nretries = 5\n", source="p.toml")


async def trap(client: Client, times: int) -> None:
    for _ in range(times):
        with pytest.raises(WasmdError) as trapped:
            await client.call("counter.fail")
        assert trapped.value.code == ErrorCode.TRAP


async def test_a_throttled_uid_is_refused_every_export_saying_why(short_tmp: Path) -> None:
    manifest = (
        "[failure]\nmax_faults = 3\nwindow_ms = 60000\nbackoff_ms = 60000\nbackoff_max_ms = 60000\n"
    )
    plugins = {"counter.wat": COUNTER, "counter.toml": manifest}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.throttled", "plugin.quarantined")
        assert await client.call("counter.incr") == 1
        await trap(client, 3)
        throttled = await events.next()
        assert throttled["type"] == "plugin.throttled"
        assert throttled["plugin"] == "counter"
        assert throttled["uid"] == os.getuid()
        assert throttled["retry_in_ms"] == 60000
        assert throttled["max_faults"] == 3
        assert "unreachable" in throttled["reason"]

        with pytest.raises(WasmdError) as refused:
            await client.call("counter.incr")
        error = refused.value
        assert error.code == ErrorCode.UNAVAILABLE
        assert f"refuses calls from uid {os.getuid()}" in error.message
        assert "unreachable" in error.message
        assert error.data is not None
        assert error.data["kind"] == "throttled"
        assert error.data["uid"] == os.getuid()
        assert 0 < error.data["retry_in_ms"] <= 60000
        stats = await client.stats()
        metrics = await client.call("wasmd.metrics")
    assert stats["plugins"]["counter"]["errors"] == {"trap": 3, "unavailable": 1}
    assert 'wasmd_plugin_throttles_total{plugin="counter"} 1.0' in metrics
    assert f'wasmd_plugin_throttled{{plugin="counter",uid="{os.getuid()}"}} 1.0' in metrics
    assert 'wasmd_plugin_quarantines_total{plugin="counter"} 0.0' in metrics
    assert 'wasmd_plugin_quarantined{plugin="counter"} 0.0' in metrics
    assert 'wasmd_plugin_restarts_total{plugin="counter"} 3.0' in metrics
    # Only the uid is refused: the plug-in keeps its instance for every other caller.
    assert 'wasmd_plugin_instances{plugin="counter"} 1.0' in metrics


async def test_with_quarantine_uids_1_one_uid_quarantines_the_plugin(short_tmp: Path) -> None:
    manifest = (
        "[failure]\nmax_faults = 3\nwindow_ms = 60000\nbackoff_ms = 60000\n"
        "backoff_max_ms = 60000\nquarantine_uids = 1\n"
    )
    plugins = {"counter.wat": COUNTER, "counter.toml": manifest}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.throttled", "plugin.quarantined")
        await trap(client, 3)
        quarantined = await events.next()
        with pytest.raises(WasmdError) as refused:
            await client.call("counter.incr")
        metrics = await client.call("wasmd.metrics")
    assert quarantined["type"] == "plugin.quarantined"
    assert refused.value.data is not None
    assert refused.value.data["kind"] == "quarantined"
    assert 'wasmd_plugin_quarantined{plugin="counter"} 1.0' in metrics
    assert 'wasmd_plugin_instances{plugin="counter"} 0.0' in metrics  # none made meanwhile


@pytest.mark.slow
async def test_after_the_backoff_a_fault_doubles_it_and_a_success_forgives(
    short_tmp: Path,
) -> None:
    manifest = (
        "[failure]\nmax_faults = 3\nwindow_ms = 60000\nbackoff_ms = 300\nbackoff_max_ms = 600\n"
    )
    plugins = {"counter.wat": COUNTER, "counter.toml": manifest}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.throttled")
        assert await client.call("counter.incr") == 1
        await trap(client, 3)
        assert (await events.next())["retry_in_ms"] == 300

        # When the throttle ends, a fault throttles again at once, for twice as long.
        with pytest.raises(WasmdError) as probed:
            await call_after_quarantine(client, "counter.fail")
        assert probed.value.code == ErrorCode.TRAP
        assert (await events.next())["retry_in_ms"] == 600

        # A call that ends well after the backoff forgives the uid: faults count afresh.
        assert await call_after_quarantine(client, "counter.incr") == 1
        await trap(client, 2)
        assert await client.call("counter.incr") == 1
        metrics = await client.call("wasmd.metrics")
    assert 'wasmd_plugin_throttles_total{plugin="counter"} 2.0' in metrics
    assert 'wasmd_plugin_throttled{plugin="counter"' not in metrics
    assert 'wasmd_plugin_restarts_total{plugin="counter"} 6.0' in metrics


async def call_after_quarantine(client: Client, method: str) -> Any:
    """Call ``method`` once the refusal has ended: while the answer is that the plug-in is
    quarantined or the uid throttled, wait the time the answer names and ask again."""
    with anyio.fail_after(10):
        while True:
            try:
                return await client.call(method)
            except WasmdError as exc:
                if exc.data is None or exc.data.get("kind") not in ("quarantined", "throttled"):
                    raise
                await anyio.sleep(exc.data["retry_in_ms"] / 1000)


async def test_by_default_a_tight_crash_loop_is_capped(short_tmp: Path) -> None:
    """No [failure] section: ten faults within a second throttle the caller's uid; before the
    policy, every one of those calls trapped and made a new instance."""
    async with running_daemon(short_tmp, {"counter.wat": COUNTER}) as daemon:
        async with daemon.client() as client:
            codes = []
            for _ in range(11):
                try:
                    await client.call("counter.fail")
                except WasmdError as exc:
                    codes.append(exc.code)
    assert codes[:10] == [ErrorCode.TRAP] * 10
    assert codes[10] == ErrorCode.UNAVAILABLE
