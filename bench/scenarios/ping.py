"""Scenario 7: does the event loop stay prompt while every guest spins until its deadline?

A plug-in with ``instances = 2`` and ``timeout_ms = 500`` exports ``spin``, an endless loop. A
background client keeps two ``spin`` calls in flight at all times (a new one the moment one
times out), so both instances are busy the whole time, while the load generator measures
``wasmd.ping`` round trips on another connection, back to back. Rounds alternate between that
and the same ping measurement with the spinning stopped: the baseline, an idle daemon.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import plugins, servers
from ..context import Context
from ..report import Row
from ..rpc import RpcClient
from ..stats import Spread

SPIN_IN_FLIGHT = 2
MANIFEST = "[plugin]\ninstances = 2\ntimeout_ms = 500\n"
TIMEOUT_CODE = 5


class _Spinner:
    """Keeps ``SPIN_IN_FLIGHT`` spin calls in flight until stopped; counts the timeouts and
    times each call (a deadline of 500 ms should answer in 500 ms plus a tick or two)."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client
        self.stopping = threading.Event()
        self.timeouts = 0
        self.durations_ms: list[float] = []
        self.other: list[Any] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Spinner:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.thread.join(10)

    def _run(self) -> None:
        sent: dict[int, float] = {}
        while len(sent) < SPIN_IN_FLIGHT:
            sent[self.client.send("spin.spin")] = time.perf_counter()
        while sent:
            _, msgid, error, _ = self.client.response()
            self.durations_ms.append((time.perf_counter() - sent.pop(msgid)) * 1000)
            if isinstance(error, list) and error and error[0] == TIMEOUT_CODE:
                self.timeouts += 1
            else:
                self.other.append(error)
            if not self.stopping.is_set():
                sent[self.client.send("spin.spin")] = time.perf_counter()


def _pings(ctx: Context, sock: Any, seconds: float) -> dict[str, Any]:
    """Back-to-back pings for ``seconds``: several spin cycles (a timeout, a fresh instance)
    must fall inside every measurement, or its p99 means nothing."""
    result = ctx.loadgen.latency(sock, "wasmd.ping", (), warmup=200, seconds=seconds)
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} pings failed")
    return result


def run(ctx: Context) -> list[Row]:
    workdir = ctx.subdir("ping")
    rounds, seconds = ctx.pick(3, 1), ctx.pick(3, 2)
    files = {"spin.wat": plugins.SPIN, "spin.toml": MANIFEST}
    loaded: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    spins: list[float] = []
    spin_ms: list[float] = []
    with servers.wasmd(workdir, files) as daemon, RpcClient(daemon.socket, timeout=10) as client:
        ctx.say(f"7: {rounds} rounds of {seconds} s of pings, guests spinning, then idle")
        for _ in range(rounds):
            with _Spinner(client) as spinner:
                # Both instances are busy once the first spin has timed out.
                while spinner.timeouts < 1 and spinner.thread.is_alive():
                    spinner.stopping.wait(0.05)
                before, start = spinner.timeouts, time.perf_counter()
                loaded.append(_pings(ctx, daemon.socket, seconds))
                elapsed = time.perf_counter() - start
                spins.append((spinner.timeouts - before) / elapsed)
                spin_ms += spinner.durations_ms[before:]
            if spinner.other:
                raise RuntimeError(f"spin answered other than timeout: {spinner.other[:3]}")
            idle.append(_pings(ctx, daemon.socket, seconds))

    w = Spread.of([r["p99_ns"] / 1e6 for r in loaded])
    b = Spread.of([r["p99_ns"] / 1e6 for r in idle])
    row = Row(
        "7",
        "wasmd.ping p99, both instances spinning",
        "ms",
        w,
        b,
        "idle",
        w.median / b.median,
        "p99 with guests spinning / p99 idle",
        "p99 <= 5 ms",
        w.median <= 5,
    )
    p50_loaded = Spread.of([r["p50_ns"] / 1e3 for r in loaded]).median
    p50_idle = Spread.of([r["p50_ns"] / 1e3 for r in idle]).median
    worst = max(r["max_ns"] for r in loaded) / 1e6
    p999 = Spread.of([r["p999_ns"] / 1e6 for r in loaded]).median
    spin = Spread.of(spin_ms) if spin_ms else None
    row.notes.append(
        f"p50 {p50_loaded:.0f} us spinning vs {p50_idle:.0f} us idle; "
        f"p99.9 {p999:.1f} ms, worst {worst:.1f} ms spinning"
        + (
            f"; each spin call answered after {spin.median:.0f} ms "
            f"({spin.min:.0f}-{spin.max:.0f}; timeout_ms = 500) during the pings"
            if spin
            else ""
        )
    )
    row.extra = {
        "spinning_rounds": loaded,
        "idle_rounds": idle,
        "spin_timeouts_per_s": spins,
        "spin_call_ms": spin_ms,
    }
    return [row]
