"""Scenarios 1 and 2: wasmd against the floor server over the socket.

Both servers run side by side, each a child process: wasmd serving ``math.add(i32, i32)``, and
``bench.echo_server``, which answers any request with the sum of its params and does nothing
else. The same load generator sends the same bytes to both, one server after the other within
each round, the order swapped every round so that drift of a noisy VM hits both alike.

1. Sequential round trips on one connection: the latency of one call, client to client.
   ``wasmd.ping`` on the same daemon joins the rotation, for information: a built-in answered
   on the event loop, it is wasmd's path without the hop to a worker thread and back.
2. Pipelined throughput: 1 connection x 64 in flight, and 8 connections x 8 in flight. A
   third server joins the rotation here, for information: the floor writing each answer on
   its own (``--unbatched``), which shows how much of the floor's lead is write batching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import plugins, servers
from ..context import Context
from ..report import Row
from ..stats import Spread

METHOD = "math.add"
PARAMS = (2, 3)

Measure = Callable[[], dict[str, Any]]


def _alternate(ctx: Context, measures: Sequence[Measure]) -> list[list[dict[str, Any]]]:
    """Run every measurement ``ctx.rounds`` times, interleaved: each round in another order
    (rotated, and reversed every other round)."""
    results: list[list[dict[str, Any]]] = [[] for _ in measures]
    for round_ in range(ctx.rounds):
        order = list(range(len(measures)))
        shift = (round_ // 2) % len(order)
        order = order[shift:] + order[:shift]
        for which in order if round_ % 2 == 0 else order[::-1]:
            result = measures[which]()
            if result["errors"]:
                raise RuntimeError(f"{result['errors']} calls failed (measurement {which})")
            results[which].append(result)
    return results


def run_latency(ctx: Context) -> list[Row]:
    warmup, calls = ctx.pick(1000, 300), ctx.pick(5000, 1500)
    workdir = ctx.subdir("roundtrip-latency")
    with (
        servers.wasmd(workdir, {"math.wat": plugins.ADD}) as daemon,
        servers.echo_server(workdir) as floor,
    ):
        ctx.say(f"1: {ctx.rounds} rounds x {calls} sequential calls, wasmd and floor")

        def measure(sock: Path, method: str = METHOD, params: tuple[int, ...] = PARAMS) -> Measure:
            return lambda: ctx.loadgen.latency(sock, method, params, warmup=warmup, calls=calls)

        wasmd, base, ping = _alternate(
            ctx,
            (
                measure(daemon.socket),
                measure(floor.socket),
                measure(daemon.socket, "wasmd.ping", ()),
            ),
        )
    w = Spread.of([r["p50_ns"] / 1000 for r in wasmd])
    b = Spread.of([r["p50_ns"] / 1000 for r in base])
    ratio = w.median / b.median
    row = Row(
        "1",
        "round trip add(i32,i32), 1 conn, p50",
        "us",
        w,
        b,
        "floor",
        ratio,
        "wasmd p50 / floor p50 (medians over rounds)",
        "<= 1.5x",
        ratio <= 1.5,
    )
    p99 = Spread.of([r["p99_ns"] / 1000 for r in wasmd]).median
    p99_floor = Spread.of([r["p99_ns"] / 1000 for r in base]).median
    pings = Spread.of([r["p50_ns"] / 1000 for r in ping])
    row.notes.append(
        f"wasmd.ping on the same daemon (no worker hop): p50 {pings.median:.1f} us "
        f"({pings.min:.1f}-{pings.max:.1f}); p99 wasmd {p99:.0f} us, floor {p99_floor:.0f} us; "
        f"{calls} calls per round after {warmup} unmeasured"
    )
    row.extra = {"wasmd_rounds": wasmd, "floor_rounds": base, "ping_rounds": ping}
    return [row]


def run_throughput(ctx: Context) -> list[Row]:
    warmup_s, seconds = (0.2, 1.0) if ctx.quick else (0.5, 3.0)
    workdir = ctx.subdir("roundtrip-throughput")
    rows = []
    with (
        servers.wasmd(workdir, {"math.wat": plugins.ADD}) as daemon,
        servers.echo_server(workdir) as floor,
        servers.echo_server(workdir, "unbatched", batched=False) as unbatched,
    ):
        socks = (daemon.socket, floor.socket, unbatched.socket)
        for row_id, conns, depth in (("2a", 1, 64), ("2b", 8, 8)):
            ctx.say(f"{row_id}: {ctx.rounds} rounds x {seconds} s, {conns} conn x {depth} deep")

            def measure(sock: Path, conns: int = conns, depth: int = depth) -> Measure:
                return lambda: ctx.loadgen.throughput(
                    sock,
                    METHOD,
                    PARAMS,
                    conns=conns,
                    depth=depth,
                    warmup_s=warmup_s,
                    seconds=seconds,
                )

            wasmd, base, plain = _alternate(ctx, [measure(sock) for sock in socks])
            w = Spread.of([r["calls_per_s"] / 1000 for r in wasmd])
            b = Spread.of([r["calls_per_s"] / 1000 for r in base])
            u = Spread.of([r["calls_per_s"] / 1000 for r in plain])
            ratio = w.median / b.median
            row = Row(
                row_id,
                f"throughput, {conns} conn x {depth} in flight",
                "k/s",
                w,
                b,
                "floor",
                ratio,
                "wasmd calls/s / floor calls/s",
                ">= 0.5x",
                ratio >= 0.5,
            )
            row.notes.append(
                f"floor with one write per answer: {u.median:,.0f} k/s "
                f"({u.min:,.0f}-{u.max:,.0f}; wasmd / it = {w.median / u.median:.2f}x); "
                f"{seconds} s per round after {warmup_s} s unmeasured"
            )
            row.extra = {"wasmd_rounds": wasmd, "floor_rounds": base, "unbatched_rounds": plain}
            rows.append(row)
    return rows
