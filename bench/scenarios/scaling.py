"""Scenario 6: do two CPU-bound calls run in parallel on two cores?

A plug-in with ``instances = 2`` exports ``busy(n)``, a guest loop calibrated to take about
300 ms. Each round times one call alone, then two calls sent together on one connection (both
in flight at once) until both have answered; scaling = 2 * t_one / t_two, 2.0 being perfect.

The baseline is the same guest loop on two threads with two Stores straight through wasmtime-py
in the bench's own process: what the machine and wasmtime give at best, with no daemon.
"""

from __future__ import annotations

import threading
import time

import wasmtime

from .. import plugins, servers
from ..context import Context
from ..report import Row
from ..rpc import RpcClient, RpcError
from ..stats import Spread

TARGET_MS = 300.0
MANIFEST = "[plugin]\ninstances = 2\ntimeout_ms = 60000\n"


def _calibrate(client: RpcClient) -> int:
    n = 10_000_000
    for _ in range(3):
        start = time.perf_counter()
        client.call("cpu.busy", n)
        elapsed_ms = (time.perf_counter() - start) * 1000
        n = max(1, int(n * TARGET_MS / elapsed_ms))
    return n


def _two_at_once(client: RpcClient, n: int) -> float:
    start = time.perf_counter()
    sent = {client.send("cpu.busy", [n]), client.send("cpu.busy", [n])}
    for _ in range(2):
        _, msgid, error, _ = client.response()
        if error is not None:
            raise RpcError(error)
        sent.remove(msgid)
    return (time.perf_counter() - start) * 1000


def _one(client: RpcClient, n: int) -> float:
    start = time.perf_counter()
    client.call("cpu.busy", n)
    return (time.perf_counter() - start) * 1000


class _RawPair:
    """Two Stores, two threads, the same module, no daemon."""

    def __init__(self) -> None:
        config = wasmtime.Config()
        config.cranelift_opt_level = "speed"
        engine = wasmtime.Engine(config)
        module = wasmtime.Module(engine, plugins.BUSY)
        self.calls = []
        for _ in range(2):
            store = wasmtime.Store(engine)
            busy = wasmtime.Instance(store, module, []).exports(store)["busy"]
            assert isinstance(busy, wasmtime.Func)
            self.calls.append((store, busy))

    def one(self, n: int) -> float:
        store, busy = self.calls[0]
        start = time.perf_counter()
        busy(store, n)
        return (time.perf_counter() - start) * 1000

    def two(self, n: int) -> float:
        threads = [threading.Thread(target=busy, args=(store, n)) for store, busy in self.calls]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (time.perf_counter() - start) * 1000


def run(ctx: Context) -> list[Row]:
    workdir = ctx.subdir("scaling")
    rounds = ctx.pick(5, 1)
    files = {"cpu.wat": plugins.BUSY, "cpu.toml": MANIFEST}
    raw = _RawPair()
    scaling: dict[str, list[float]] = {"wasmd": [], "raw": []}
    times: dict[str, list[tuple[float, float]]] = {"wasmd": [], "raw": []}
    with servers.wasmd(workdir, files) as daemon, RpcClient(daemon.socket, timeout=60) as client:
        n = _calibrate(client)
        ctx.say(f"6: {rounds} rounds of one call alone, then two at once (busy({n}))")
        for round_ in range(rounds):
            for name in ("wasmd", "raw") if round_ % 2 == 0 else ("raw", "wasmd"):
                if name == "wasmd":
                    t_one, t_two = _one(client, n), _two_at_once(client, n)
                else:
                    t_one, t_two = raw.one(n), raw.two(n)
                times[name].append((t_one, t_two))
                scaling[name].append(2 * t_one / t_two)
    w, b = Spread.of(scaling["wasmd"]), Spread.of(scaling["raw"])
    row = Row(
        "6",
        "2 CPU-bound calls on 2 cores, scaling",
        "x",
        w,
        b,
        "raw wasmtime",
        w.median / b.median,
        "wasmd scaling / raw wasmtime scaling (scaling = 2 * t_one / t_two)",
        ">= 1.8x scaling",
        w.median >= 1.8,
    )
    t_one = Spread.of([one for one, _ in times["wasmd"]]).median
    t_two = Spread.of([two for _, two in times["wasmd"]]).median
    row.notes.append(f"wasmd: one call {t_one:.0f} ms, two at once {t_two:.0f} ms")
    row.extra = {"n": n, "times_ms": times}
    return [row]
