"""Scenarios 1 and 2: wasmd against the floor server over the socket.

Both servers run side by side, each a child process: wasmd serving ``math.add(i32, i32)``, and
``bench.echo_server``, which answers any request with the sum of its params and does nothing
else. The same load generator sends the same bytes to both, one server after the other within
each round, the order swapped every round so that drift of a noisy VM hits both alike.

1. Sequential round trips on one connection: the latency of one call, client to client.
   ``wasmd.ping`` on the same daemon joins the rotation, for information: a built-in that
   calls no plug-in.
2. Pipelined throughput: 1 connection x 64 in flight, and 8 connections x 8 in flight. A
   third server joins the rotation here, for information: the floor writing each answer on
   its own (``--unbatched``), which shows how much of the floor's lead is write batching.

Each is measured twice: as the scheduler places the processes (rows 1, 2a, 2b), and with the
servers and the load generator all pinned to one CPU (rows 1p, 2ap, 2bp), where no wake-up
crosses CPUs. Placement alone moves these ratios by 2x on a 2-vCPU VM, so both are shown.
The pinned set starts its own servers, confined to that CPU from before their first thread.
"""

from __future__ import annotations

import contextlib
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


# Targets of issue 11, the same for the unpinned and the pinned rows.
ROUND_TRIP_MAX = 1.0  # wasmd p50 / floor p50
THROUGHPUT_MIN = {"2a": 0.25, "2b": 0.5}  # wasmd calls/s / floor calls/s
THROUGHPUT_STRETCH = {"2a": 0.5}
PINNED = " (all on 1 CPU)"


def run_latency(ctx: Context) -> list[Row]:
    return [_latency_row(ctx, None), _latency_row(ctx, ctx.pin_cpu)]


def _latency_row(ctx: Context, cpu: int | None) -> Row:
    warmup, calls = ctx.pick(1000, 300), ctx.pick(5000, 1500)
    suffix = "" if cpu is None else "p"
    workdir = ctx.subdir(f"roundtrip-latency{suffix}")
    with (
        servers.wasmd(workdir, {"math.wat": plugins.ADD}, cpu=cpu) as daemon,
        servers.echo_server(workdir, cpu=cpu) as floor,
    ):
        where = "unpinned" if cpu is None else f"all on CPU {cpu}"
        ctx.say(f"1{suffix}: {ctx.rounds} rounds x {calls} sequential calls, {where}")

        def measure(sock: Path, method: str = METHOD, params: tuple[int, ...] = PARAMS) -> Measure:
            return lambda: ctx.loadgen.latency(
                sock, method, params, warmup=warmup, calls=calls, cpu=cpu
            )

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
        f"1{suffix}",
        "round trip add(i32,i32), 1 conn, p50" + ("" if cpu is None else PINNED),
        "us",
        w,
        b,
        "floor",
        ratio,
        "wasmd p50 / floor p50 (medians over rounds)",
        f"<= {ROUND_TRIP_MAX}x",
        ratio <= ROUND_TRIP_MAX,
    )
    p99 = Spread.of([r["p99_ns"] / 1000 for r in wasmd]).median
    p99_floor = Spread.of([r["p99_ns"] / 1000 for r in base]).median
    pings = Spread.of([r["p50_ns"] / 1000 for r in ping])
    row.notes.append(
        f"wasmd.ping on the same daemon (no plug-in): p50 {pings.median:.1f} us "
        f"({pings.min:.1f}-{pings.max:.1f}); p99 wasmd {p99:.0f} us, floor {p99_floor:.0f} us; "
        f"{calls} calls per round after {warmup} unmeasured"
    )
    row.extra = {"cpu": cpu, "wasmd_rounds": wasmd, "floor_rounds": base, "ping_rounds": ping}
    return row


def run_throughput(ctx: Context) -> list[Row]:
    unpinned = _throughput_rows(ctx, None)
    pinned = _throughput_rows(ctx, ctx.pin_cpu)
    return [row for pair in zip(unpinned, pinned, strict=True) for row in pair]


def _throughput_rows(ctx: Context, cpu: int | None) -> list[Row]:
    """Rows 2a and 2b (or 2ap and 2bp when pinned to ``cpu``). The unbatched floor joins only
    the unpinned rounds: it is there to explain the floor, once is enough."""
    warmup_s, seconds = (0.2, 1.0) if ctx.quick else (0.5, 3.0)
    suffix = "" if cpu is None else "p"
    workdir = ctx.subdir(f"roundtrip-throughput{suffix}")
    rows = []
    with contextlib.ExitStack() as stack:
        daemon = stack.enter_context(servers.wasmd(workdir, {"math.wat": plugins.ADD}, cpu=cpu))
        floor = stack.enter_context(servers.echo_server(workdir, cpu=cpu))
        socks = [daemon.socket, floor.socket]
        if cpu is None:
            unbatched = servers.echo_server(workdir, "unbatched", batched=False)
            socks.append(stack.enter_context(unbatched).socket)
        for shape, conns, depth in (("2a", 1, 64), ("2b", 8, 8)):
            row_id = shape + suffix
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
                    cpu=cpu,
                )

            wasmd, base, *plain = _alternate(ctx, [measure(sock) for sock in socks])
            w = Spread.of([r["calls_per_s"] / 1000 for r in wasmd])
            b = Spread.of([r["calls_per_s"] / 1000 for r in base])
            ratio = w.median / b.median
            least = THROUGHPUT_MIN[shape]
            row = Row(
                row_id,
                f"throughput, {conns} conn x {depth} in flight" + ("" if cpu is None else PINNED),
                "k/s",
                w,
                b,
                "floor",
                ratio,
                "wasmd calls/s / floor calls/s",
                f">= {least}x",
                ratio >= least,
            )
            if shape in THROUGHPUT_STRETCH:
                stretch = THROUGHPUT_STRETCH[shape]
                met = "met" if ratio >= stretch else "not met"
                row.notes.append(f"stretch target >= {stretch}x: {met}")
            if plain:
                u = Spread.of([r["calls_per_s"] / 1000 for r in plain[0]])
                row.notes.append(
                    f"floor with one write per answer: {u.median:,.0f} k/s "
                    f"({u.min:,.0f}-{u.max:,.0f}; wasmd / it = {w.median / u.median:.2f}x)"
                )
            row.notes.append(f"{seconds} s per round after {warmup_s} s unmeasured")
            row.extra = {"cpu": cpu, "wasmd_rounds": wasmd, "floor_rounds": base}
            if plain:
                row.extra["unbatched_rounds"] = plain[0]
            rows.append(row)
    return rows
