"""The failure policy: the circuit breaker on its own (time passed in), then a real daemon
whose plug-in traps until it is quarantined, and recovers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from wasmd import Client, ErrorCode, WasmdError
from wasmd.errors import ConfigError
from wasmd.manifest import FailurePolicy, parse_manifest
from wasmd.runtime.breaker import CircuitBreaker

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


def test_manifest_failure_section() -> None:
    manifest = parse_manifest(
        "[failure]\nmax_faults = 5\nwindow_ms = 10000\nbackoff_ms = 100\nbackoff_max_ms = 60000\n",
        source="p.toml",
    )
    assert manifest.failure == FailurePolicy(5, 10_000, 100, 60_000)
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


async def test_a_quarantined_plugin_refuses_every_export_saying_why(short_tmp: Path) -> None:
    manifest = (
        "[failure]\nmax_faults = 3\nwindow_ms = 60000\nbackoff_ms = 60000\nbackoff_max_ms = 60000\n"
    )
    plugins = {"counter.wat": COUNTER, "counter.toml": manifest}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.quarantined")
        assert await client.call("counter.incr") == 1
        await trap(client, 3)
        quarantined = await events.next()
        assert quarantined["type"] == "plugin.quarantined"
        assert quarantined["plugin"] == "counter"
        assert quarantined["retry_in_ms"] == 60000
        assert quarantined["max_faults"] == 3
        assert "unreachable" in quarantined["reason"]

        with pytest.raises(WasmdError) as refused:
            await client.call("counter.incr")
        error = refused.value
        assert error.code == ErrorCode.UNAVAILABLE
        assert "quarantined" in error.message
        assert "unreachable" in error.message
        assert error.data is not None
        assert error.data["kind"] == "quarantined"
        assert 0 < error.data["retry_in_ms"] <= 60000
        stats = await client.stats()
        metrics = await client.call("wasmd.metrics")
    assert stats["plugins"]["counter"]["errors"] == {"trap": 3, "unavailable": 1}
    assert 'wasmd_plugin_quarantines_total{plugin="counter"} 1.0' in metrics
    assert 'wasmd_plugin_quarantined{plugin="counter"} 1.0' in metrics
    assert 'wasmd_plugin_restarts_total{plugin="counter"} 3.0' in metrics
    assert 'wasmd_plugin_instances{plugin="counter"} 0.0' in metrics  # none made meanwhile


@pytest.mark.slow
async def test_after_the_backoff_a_fault_doubles_it_and_a_success_recovers(
    short_tmp: Path,
) -> None:
    manifest = (
        "[failure]\nmax_faults = 3\nwindow_ms = 60000\nbackoff_ms = 300\nbackoff_max_ms = 600\n"
    )
    plugins = {"counter.wat": COUNTER, "counter.toml": manifest}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.quarantined", "plugin.recovered")
        assert await client.call("counter.incr") == 1
        await trap(client, 3)
        assert (await events.next())["retry_in_ms"] == 300

        # When the quarantine ends, a fault quarantines again at once, for twice as long.
        with pytest.raises(WasmdError) as probed:
            await call_after_quarantine(client, "counter.fail")
        assert probed.value.code == ErrorCode.TRAP
        again = await events.next()
        assert (again["type"], again["retry_in_ms"]) == ("plugin.quarantined", 600)

        # A call that ends well after the backoff recovers the plug-in, on a fresh instance.
        assert await call_after_quarantine(client, "counter.incr") == 1
        recovered = await events.next()
        assert recovered["type"] == "plugin.recovered"
        assert recovered["quarantined_ms"] >= 900
        assert await client.call("counter.incr") == 2
        metrics = await client.call("wasmd.metrics")
    assert 'wasmd_plugin_quarantines_total{plugin="counter"} 2.0' in metrics
    assert 'wasmd_plugin_quarantined{plugin="counter"} 0.0' in metrics
    assert 'wasmd_plugin_restarts_total{plugin="counter"} 4.0' in metrics


async def call_after_quarantine(client: Client, method: str) -> Any:
    """Call ``method`` once the plug-in's quarantine has ended: while the answer is that it is
    quarantined, wait the time the answer names and ask again."""
    with anyio.fail_after(10):
        while True:
            try:
                return await client.call(method)
            except WasmdError as exc:
                if exc.data is None or exc.data.get("kind") != "quarantined":
                    raise
                await anyio.sleep(exc.data["retry_in_ms"] / 1000)


async def test_by_default_a_tight_crash_loop_is_capped(short_tmp: Path) -> None:
    """No [failure] section: ten faults within a second quarantine the plug-in; before the
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
