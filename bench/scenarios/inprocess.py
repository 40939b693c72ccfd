"""Scenario 3: what one call of a trivial export costs inside a process, with no socket.

(a) wasmtime-py's public ``Func.__call__``: types looked up, values boxed, every call.
(b) the floor: wasmtime's C API through wasmtime-py's ctypes bindings,
    ``_ffi.wasmtime_func_call`` with the argument and result arrays allocated once.
(c) wasmd's per-call runtime cost once it holds an instance: the call's ``Deadline`` and
    ``Instance.run(export, args, deadline)`` — timed on a thread that
    is not the main one, as a connection's reader is.
(d) wasmd's pool: ``PluginPool.call(...)`` on the calling thread until its ``reply`` has run:
    what a reader does per call beyond (c) — the ``Ticket``, converting the params, taking and
    giving back an instance under the pool's lock, the stats.
(e) the Extism Python SDK calling an Extism-ABI module that does the same addition: the
    comparison the target is about, since Extism is what one would otherwise embed.
(f) for information, wasmd's ``Instance.call`` on that same Extism-ABI module (wasmd runs
    Extism plug-ins unchanged): both runtimes on identical guest code.
(g) wasmd's ``Instance.call`` on a WebAssembly component doing the same addition
    (``add: func(a: u32, b: u32) -> u32``), against (c), the core module: what the
    component ABI's WIT conversion and wasmtime-py's component call cost.

All five run in every round, in a rotated order; each is a mean over many calls (a call is a
microsecond or so, below what a single timing can resolve), and the rows report the median and
spread of those means over the rounds.
"""

from __future__ import annotations

import ctypes
import importlib.util
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from wasmd.discovery import PluginSource
from wasmd.plugins.build import build_pool
from wasmd.plugins.snapshot import take_snapshot
from wasmd.runtime import Engines, PluginPool, Ticket
from wasmd.runtime.instance import Deadline, Instance

from .. import plugins
from ..context import Context
from ..report import Row, skipped
from ..servers import REPO, child_env
from ..stats import Spread

Measure = Callable[[int], float]  # calls -> ns per call


def _func_call(store: wasmtime.Store, add: wasmtime.Func) -> Measure:
    def measure(calls: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            add(store, 2, 3)
        return (time.perf_counter_ns() - start) / calls

    assert add(store, 2, 3) == 5
    return measure


def _raw_call(store: wasmtime.Store, add: wasmtime.Func) -> Measure:
    params = (ffi.wasmtime_val_t * 2)()
    for slot, value in zip(params, (2, 3), strict=True):
        slot.kind = ffi.WASMTIME_I32.value
        slot.of.i32 = value
    results = (ffi.wasmtime_val_t * 1)()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    context, func, trap_ref = store._context(), ctypes.byref(add._func), ctypes.byref(trap)
    call = ffi.wasmtime_func_call

    def measure(calls: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            if call(context, func, params, 2, results, 1, trap_ref) or trap:
                raise RuntimeError("the raw call failed")
        return (time.perf_counter_ns() - start) / calls

    measure(1)
    assert results[0].of.i32 == 5
    return measure


def _instance_call(pool: PluginPool, engines: Engines, params: list[Any], expect: Any) -> Measure:
    plugin = pool.plugin
    timeout_ms = plugin.manifest.timeout_ms
    args = plugin.calls["add"].convert(params)

    def deadline() -> Deadline:
        """What the pool arms before every call: the deadline as a time and as ticks."""
        return Deadline(time.monotonic() + timeout_ms / 1000, engines.ticks_for(timeout_ms))

    def on_thread(calls: int, out: list[float]) -> None:
        instance = Instance(plugin, deadline())
        assert instance.run("add", args, deadline()) == expect
        start = time.perf_counter_ns()
        for _ in range(calls):
            instance.run("add", args, deadline())
        out.append((time.perf_counter_ns() - start) / calls)
        instance.close()

    def measure(calls: int) -> float:
        out: list[float] = []
        thread = threading.Thread(target=on_thread, args=(calls, out))
        thread.start()
        thread.join()
        if not out:
            raise RuntimeError("Instance.call failed on its thread")
        return out[0]

    return measure


def _pool_call(pool: PluginPool) -> Measure:
    """``PluginPool.call`` on this thread, as a connection's reader makes it: the reply runs
    before ``call`` returns."""
    answers: list[Any] = []

    def reply(error: Any, result: Any) -> None:
        answers.append((error, result))

    owner = object()  # one connection
    pool.call("add", [2, 3], Ticket(owner, time.monotonic()), reply)
    assert answers == [(None, 5)], answers

    def measure(calls: int) -> float:
        call, params, monotonic = pool.call, [2, 3], time.monotonic
        start = time.perf_counter_ns()
        for _ in range(calls):
            call("add", params, Ticket(owner, monotonic()), reply)
        elapsed = time.perf_counter_ns() - start
        if len(answers) != calls + 1 or answers[-1] != (None, 5):
            raise RuntimeError(f"PluginPool.call answered {answers[-1]!r}")
        answers.clear()
        answers.append((None, 5))
        return elapsed / calls

    return measure


class _Extism:
    """The Extism worker process, timed through a pipe."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.extism_worker"],
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        first = self.stdout.readline().strip()
        if not first.startswith("ready "):
            self.close()
            raise RuntimeError(first.removeprefix("error ") or "the Extism worker died")
        self.version = first.removeprefix("ready ")

    def measure(self, calls: int) -> float:
        self.stdin.write(f"{calls}\n")
        self.stdin.flush()
        return float(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(10)


def ensure_extism(ctx: Context) -> str | None:
    """Install the Extism SDK into this interpreter's environment if it is missing; the
    reason it cannot be used, or None."""
    if importlib.util.find_spec("extism") is not None:
        return None
    ctx.say("3: the Extism SDK is not installed; pip install extism")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "extism"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        return "pip install extism timed out"
    if done.returncode != 0:
        return f"pip install extism failed: {done.stderr.strip()[-300:]}"
    importlib.invalidate_caches()
    return None if importlib.util.find_spec("extism") else "extism is still not importable"


def _source(folder: Path, name: str, text: str) -> PluginSource:
    path = folder / f"{name}.wat"
    path.write_text(text)
    return PluginSource(name, path, None, folder, None)


def run(ctx: Context) -> list[Row]:
    folder = ctx.subdir("inprocess")
    source = _source(folder, "math", plugins.ADD)
    had_extism = importlib.util.find_spec("extism") is not None
    extism_problem = ensure_extism(ctx)
    extism: _Extism | None = None
    if extism_problem is None:
        try:
            extism = _Extism()
        except Exception as exc:
            extism_problem = f"the Extism SDK could not run the plug-in: {exc}"

    calls = ctx.pick(20000, 5000)
    wasmd_extism_problem = "not measured"
    component_problem = "not measured"
    with Engines() as engines:
        pool = build_pool(take_snapshot(source), engines, lambda kind, fields: None)
        extism_pool: PluginPool | None = None
        try:
            extism_source = _source(folder, "ext", plugins.EXTISM_ADD)
            extism_pool = build_pool(take_snapshot(extism_source), engines, lambda k, f: None)
        except Exception as exc:
            wasmd_extism_problem = f"wasmd cannot load the Extism-ABI module: {exc}"
        component_pool: PluginPool | None = None
        try:
            component_source = _source(folder, "comp", plugins.COMPONENT_ADD)
            component_pool = build_pool(take_snapshot(component_source), engines, lambda k, f: None)
        except Exception as exc:
            component_problem = f"wasmd cannot load the component: {exc}"
        try:
            store = wasmtime.Store(pool.plugin.engine)
            store.set_epoch_deadline(1 << 40)  # the ticker runs; a raw call sets no deadline
            module = pool.plugin.module
            assert module is not None  # a core module
            add = wasmtime.Instance(store, module, []).exports(store)["add"]
            assert isinstance(add, wasmtime.Func)
            measures: dict[str, tuple[Measure, int]] = {
                "a": (_func_call(store, add), calls),
                "b": (_raw_call(store, add), calls),
                "c": (_instance_call(pool, engines, [2, 3], 5), calls),
                "d": (_pool_call(pool), calls),
            }
            if extism is not None:
                measures["e"] = (extism.measure, calls)
            if extism_pool is not None:
                call = _instance_call(extism_pool, engines, [b"\x02\x03"], b"\x05")
                measures["f"] = (call, calls)
            if component_pool is not None:
                measures["g"] = (_instance_call(component_pool, engines, [2, 3], 5), calls)
            ctx.say(f"3: {ctx.rounds} rounds of {calls} calls of each of {', '.join(measures)}")
            samples: dict[str, list[float]] = {key: [] for key in measures}
            keys = list(measures)
            for round_ in range(ctx.rounds):
                shift = round_ % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    measure, n = measures[key]
                    samples[key].append(measure(n) / 1000)
        finally:
            for each in (pool, extism_pool, component_pool):
                if each is not None:
                    each.close()
                    each.wait_closed(10)
            if extism is not None:
                extism.close()
    rows = _rows({k: Spread.of(v) for k, v in samples.items()}, extism, extism_problem)
    if not had_extism and extism_problem is None:
        rows[-1].notes.append(f"the SDK was pip-installed into {sys.prefix} by this run")
    return [
        *rows,
        _wasmd_extism_row(samples, wasmd_extism_problem),
        _component_row(samples, component_problem),
    ]


def _component_row(samples: dict[str, list[float]], problem: str) -> Row:
    title = "wasmd Instance.call, same addition as a component"
    if "g" not in samples:
        return skipped("3g", title, problem)
    row = Row("3g", title, "us", Spread.of(samples["g"]))
    row.baseline, row.baseline_name = Spread.of(samples["c"]), "core module (3c)"
    row.ratio = row.wasmd.median / row.baseline.median if row.wasmd else None
    row.ratio_means = "component call / core-module call, same work, both through Instance.call"
    return row


def _rows(s: dict[str, Spread], extism: _Extism | None, problem: str | None) -> list[Row]:
    raw = s["b"]
    a = Row("3a", "Func.__call__ (wasmtime-py public API)", "us", s["a"], raw, "raw C API")
    a.ratio, a.ratio_means = s["a"].median / raw.median, "Func.__call__ / raw C API call"
    c = Row("3c", "wasmd Instance.call on a thread", "us", s["c"])
    d = Row("3d", "wasmd PluginPool.call on the calling thread", "us", s["d"])
    d.notes.append(
        "what a connection's reader spends per call: (c) plus the ticket, the params check, "
        "lending the instance under the pool's lock, the stats and the reply"
    )
    rows = [a, c, d]
    if "e" in s and extism is not None:
        ext = s["e"]
        for row in (c, d):
            row.baseline, row.baseline_name = ext, "Extism"
            row.ratio = row.wasmd.median / ext.median if row.wasmd else None
            row.ratio_means = "wasmd per-call time / Extism SDK per-call time"
        c.target, c.met = "<= 0.25x", c.ratio is not None and c.ratio <= 0.25
        e = Row("3e", f"Extism SDK Plugin.call ({extism.version})", "us", ext, raw, "raw C API")
        e.ratio, e.ratio_means = ext.median / raw.median, "Extism per-call / raw C API call"
        rows.append(e)
    else:
        for row in (c, d):
            row.baseline, row.baseline_name = raw, "raw C API"
            row.ratio = row.wasmd.median / raw.median if row.wasmd else None
            row.ratio_means = "wasmd per-call time / raw C API call"
        c.target = "<= 0.25x Extism"
        c.notes.append(f"target not evaluated: Extism skipped ({problem})")
        rows.append(skipped("3e", "Extism SDK Plugin.call", problem or "unknown"))
    c.notes.append(
        f"{c.wasmd.median / raw.median:.1f}x the raw C API call" if c.wasmd else "no sample"
    )
    return rows


def _wasmd_extism_row(samples: dict[str, list[float]], problem: str) -> Row:
    title = "wasmd Instance.call, same Extism-ABI module"
    if "f" not in samples:
        return skipped("3f", title, problem)
    row = Row("3f", title, "us", Spread.of(samples["f"]))
    if "e" in samples:
        row.baseline, row.baseline_name = Spread.of(samples["e"]), "Extism"
        row.ratio = row.wasmd.median / row.baseline.median if row.wasmd else None
        row.ratio_means = "wasmd per-call time / Extism SDK per-call time, identical guest"
    return row
