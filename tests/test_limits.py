"""Deadlines, memory limits and backpressure, enforced on real guests in the real daemon."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from wasmd import ErrorCode, WasmdError

from .conftest import ONE_CALL_PATH, running_daemon
from .wat import ARITH, BIG_MEMORY, MEMORY, RECURSE, SPIN, START_SPINS, START_TRAPS

pytestmark = pytest.mark.usefixtures("call_path")


async def test_runaway_loop_is_interrupted_near_its_deadline_while_ping_answers(
    short_tmp: Path,
) -> None:
    plugins = {"spin.wat": SPIN, "spin.toml": "[plugin]\ntimeout_ms = 400\n"}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as spinner, daemon.client() as pinger:
            outcome: dict[str, object] = {}
            spin_started = anyio.Event()

            async def spin() -> None:
                spin_started.set()
                started = time.monotonic()
                try:
                    await spinner.call("spin.spin")
                except WasmdError as exc:
                    outcome["error"] = exc
                outcome["elapsed"] = time.monotonic() - started

            ping_times: list[float] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(spin)
                await spin_started.wait()
                while "elapsed" not in outcome:
                    started = time.monotonic()
                    assert await pinger.ping() == "pong"
                    ping_times.append(time.monotonic() - started)

            error = outcome["error"]
            assert isinstance(error, WasmdError)
            assert error.code == ErrorCode.TIMEOUT
            assert "400 ms" in error.message
            elapsed = outcome["elapsed"]
            assert isinstance(elapsed, float)
            # Correctness of the deadline, not speed: never early, and not far past it.
            assert 0.4 <= elapsed < 0.4 + 1.0
            # The loop stayed free: pings kept being answered throughout the spin.
            assert len(ping_times) >= 10
            # The interrupted instance was replaced; the plug-in serves again.
            assert await spinner.call("spin.quick") == 7


async def test_memory_grow_past_the_limit_fails_inside_the_guest(short_tmp: Path) -> None:
    plugins = {"mem.wat": MEMORY, "mem.toml": '[plugin]\nmemory_max = "256 KiB"\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("mem.grow", 3) == 1  # 1 -> 4 pages = 256 KiB: allowed
            assert await client.call("mem.grow", 1) == -1  # 5 pages would pass the limit
            assert await client.call("mem.pages") == 4
            assert await client.call("mem.poke", 4 * 65536 - 4) == 42
            with pytest.raises(WasmdError) as caught:
                await client.call("mem.poke", 4 * 65536)
            assert caught.value.code == ErrorCode.TRAP
            assert caught.value.data is not None
            assert caught.value.data["trap_code"] == "memory_out_of_bounds"


@ONE_CALL_PATH
async def test_initial_memory_over_the_limit_fails_to_load(short_tmp: Path) -> None:
    plugins = {"big.wat": BIG_MEMORY, "big.toml": '[plugin]\nmemory_max = "1 MiB"\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("big.f")
            assert caught.value.code == ErrorCode.UNAVAILABLE
            assert "exceeds memory limits" in caught.value.message


async def test_deep_recursion_is_a_trap_not_a_crash(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"deep.wat": RECURSE}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("deep.recurse", 0)
            assert caught.value.code == ErrorCode.TRAP
            assert caught.value.data is not None
            assert caught.value.data["trap_code"] == "stack_overflow"
            assert await client.ping() == "pong"


async def test_start_functions_that_trap_or_spin_fail_the_load(short_tmp: Path) -> None:
    """Start code has the daemon's start_timeout_ms, not the manifest's timeout_ms: a start
    function spinning under timeout_ms = 20000 kept the socket absent for 20 s (issue 13)."""
    plugins = {
        "boom.wat": START_TRAPS,
        "hang.wat": START_SPINS,
        "hang.toml": "[plugin]\ntimeout_ms = 20000\n",
    }
    started = time.monotonic()
    async with running_daemon(short_tmp, plugins, start_timeout_ms=100) as daemon:
        assert time.monotonic() - started < 10  # ready long before the call deadline
        async with daemon.client() as client:
            listing = {item["name"]: item for item in await client.list()}
            assert listing["boom"]["state"] == "failed"
            assert "unreachable" in listing["boom"]["error"]
            assert listing["hang"]["state"] == "failed"
            assert "start code ran past its 100 ms deadline" in listing["hang"]["error"]


async def test_full_queue_answers_busy_to_other_connections(short_tmp: Path) -> None:
    plugins = {"spin.wat": SPIN, "spin.toml": "[plugin]\ntimeout_ms = 300\nqueue = 2\n"}
    async with running_daemon(short_tmp, plugins) as daemon:
        results: list[int] = []

        async def call() -> None:
            async with daemon.client() as client:
                try:
                    results.append(await client.call("spin.spin"))
                except WasmdError as exc:
                    results.append(exc.code)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
        # 1 instance + 2 queued are admitted (and time out); the other 2 are refused.
        assert sorted(results) == [ErrorCode.TIMEOUT] * 3 + [ErrorCode.BUSY] * 2


async def test_one_connection_past_capacity_gets_backpressure_not_busy(short_tmp: Path) -> None:
    # One instance, no queue: a connection's own pipelined calls wait their turn.
    plugins = {"arith.wat": ARITH, "arith.toml": "[plugin]\ninstances = 1\nqueue = 0\n"}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            async with anyio.create_task_group() as tg:
                results: dict[int, object] = {}

                async def call(i: int) -> None:
                    results[i] = await client.call("arith.add", i, 3)

                for i in range(1000):
                    tg.start_soon(call, i)
            assert results == {i: i + 3 for i in range(1000)}


@pytest.mark.slow  # over 2 s alone (pytest --durations)
async def test_many_exports_instantiate_in_linear_time(short_tmp: Path) -> None:
    """Issue 13: listing an instance's exports was quadratic in wasmtime (20,000 exports took
    15 s per instantiation, paid after every trap and per call in per-call mode)."""
    funcs = "".join(f'(func (export "f{i}") (result i32) (i32.const {i}))' for i in range(20_000))
    plugins = {"many.wat": f"(module {funcs})", "many.toml": '[plugin]\nmode = "per-call"\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("many.f7") == 7  # a fresh instance is made after it
            started = time.monotonic()
            assert await client.call("many.f19999") == 19_999  # waits for that instance
            assert await client.call("many.f1") == 1
            # Callers made on first use: milliseconds; quadratic it was 30 s.
            assert time.monotonic() - started < 5
