"""Scenario 11: what durable state costs a call (issue 26).

Each row is ``PluginPool.call`` on the calling thread, as in 3d, of an export that reads a
counter, adds one and writes it back:
(a) kept in the instance's memory: the same call without state (the baseline);
(b) kept through ``kv_get`` + ``kv_set`` with ``state_sync = "normal"``: each call one
    SQLite transaction in WAL mode, written to the OS but not synced (survives ``kill -9``);
(c) the same with ``state_sync = "full"`` (the default): each commit synced to disk (survives
    a power loss too); its reciprocal is the commits per second one plug-in can make;
(d) the module of (b) and (c) in a process with no state directory: both imports answer
    ``KV_UNAVAILABLE`` at once, so this is what crossing into the host twice costs, without
    SQLite (the rest of (b) is SQLite's transaction).
All run in every round, in a rotated order; each sample is the mean over many calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wasmd.discovery import PluginSource
from wasmd.plugins.build import build_pool
from wasmd.plugins.snapshot import take_snapshot
from wasmd.runtime import Engines, PluginPool, Ticket
from wasmd.statestore import StateStores

from ..context import Context
from ..report import Row
from ..stats import Spread

IN_MEMORY = """(module
  (memory (export "memory") 1)
  (func (export "bump") (result i64)
    (i64.store (i32.const 16) (i64.add (i64.load (i32.const 16)) (i64.const 1)))
    (i64.load (i32.const 16))))"""

KV = """(module
  (import "wasmd" "kv_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "wasmd" "kv_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "count")
  (func (export "bump") (result i64)
    (if (i32.lt_s (call $get (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8))
                  (i32.const 0))
      (then (i64.store (i32.const 16) (i64.const 0))))
    (i64.store (i32.const 16) (i64.add (i64.load (i32.const 16)) (i64.const 1)))
    (drop (call $set (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8)))
    (i64.load (i32.const 16))))"""

Measure = Callable[[int], float]  # calls -> us per call


def _pool(engines: Engines, folder: Path, name: str, text: str) -> PluginPool:
    path = folder / f"{name}.wat"
    path.write_text(text)
    source = PluginSource(name, path, None, folder, None)
    return build_pool(take_snapshot(source), engines, lambda kind, fields: None)


def _calls(pool: PluginPool) -> Measure:
    answers: list[Any] = []

    def reply(error: Any, result: Any) -> None:
        if error is not None:
            raise RuntimeError(f"bump answered {error!r}")
        answers.append(result)

    owner = object()

    def measure(calls: int) -> float:
        call, monotonic = pool.call, time.monotonic
        start = time.perf_counter_ns()
        for _ in range(calls):
            call("bump", [], Ticket(owner, monotonic()), reply)
        elapsed = time.perf_counter_ns() - start
        answers.clear()
        return elapsed / calls / 1000

    return measure


def run(ctx: Context) -> list[Row]:
    folder = ctx.subdir("state")
    pools: list[PluginPool] = []
    with Engines() as engines:
        try:
            pools.append(_pool(engines, folder, "memory", IN_MEMORY))
            for sync in ("normal", "full"):
                engines.states = StateStores(folder / sync, sync=sync)
                pools.append(_pool(engines, folder, f"kv_{sync}", KV))
            engines.states = None
            pools.append(_pool(engines, folder, "kv_none", KV))
            calls = {
                "a": ctx.pick(20000, 5000),
                "b": ctx.pick(5000, 1000),
                "c": ctx.pick(500, 100),
                "d": ctx.pick(5000, 1000),
            }
            measures = dict(zip("abcd", map(_calls, pools), strict=True))
            ctx.say(f"11: {ctx.rounds} rounds of {calls} calls")
            samples: dict[str, list[float]] = {key: [] for key in measures}
            keys = list(measures)
            for round_ in range(ctx.rounds):
                shift = round_ % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    samples[key].append(measures[key](calls[key]))
        finally:
            for pool in pools:
                pool.close()
                pool.wait_closed(10)
                if pool.plugin.state is not None:
                    pool.plugin.state.close()
    s = {key: Spread.of(values) for key, values in samples.items()}
    base = s["a"]
    rows = [Row("11a", "counter in instance memory (no state)", "us", base)]
    for key, sync, survives in (("b", "normal", "kill -9"), ("c", "full", "power loss")):
        row = Row(f"11{key}", f"kv_get + kv_set, state_sync = {sync}", "us", s[key], base)
        row.baseline_name = "no state (11a)"
        row.ratio = s[key].median / base.median
        row.ratio_means = "per-call time with a committed kv_get + kv_set / without state"
        row.notes.append(
            f"{1e6 / s[key].median:,.0f} commits/s on one thread; an answer survives {survives}"
        )
        rows.append(row)
    crossing = Row("11d", "the same imports, no store (answer at once)", "us", s["d"], base)
    crossing.baseline_name = "no state (11a)"
    crossing.ratio = s["d"].median / base.median
    crossing.ratio_means = "per-call time with two host imports that answer at once / none"
    crossing.notes.append("the host-import crossing alone: the rest of 11b is SQLite")
    rows.append(crossing)
    return rows
