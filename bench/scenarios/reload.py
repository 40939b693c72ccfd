"""Scenario 4: from an atomic replace of a plug-in file to the first answer of the new version.

The daemon watches its plug-in folder. Each round writes ``v.wat`` returning a new number as a
temporary file and renames it over the old one (what ``mv``, editors and ``install`` do), then
waits for the ``plugin.reloaded`` event on a subscribed connection and calls ``v.which`` on a
second connection; the time runs from just before the write until that call returns the new
number. (Waiting on the event rather than calling in a busy loop keeps the client off the CPU
that the compile needs on a 2-core machine; the event comes after the new version is installed,
so the call that follows is the first that could see it.)

The baseline is the least any reload must do: reading the file and building the plug-in in
process (``take_snapshot`` + ``build_pool``: assemble, compile, link, start its instance).
"""

from __future__ import annotations

import time

from wasmd.discovery import PluginSource
from wasmd.plugins.build import build_pool
from wasmd.plugins.snapshot import take_snapshot
from wasmd.runtime import Engines

from .. import plugins, servers
from ..context import Context
from ..report import Row
from ..rpc import RpcClient
from ..stats import Spread, percentile

EVENT_TIMEOUT_S = 10.0


def _reloads(ctx: Context, count: int) -> list[float]:
    workdir = ctx.subdir("reload")
    with (
        servers.wasmd(workdir, {"v.wat": plugins.WHICH.format(version=0)}) as daemon,
        RpcClient(daemon.socket, timeout=EVENT_TIMEOUT_S) as events,
        RpcClient(daemon.socket) as client,
    ):
        assert daemon.plugins is not None
        path = daemon.plugins / "v.wat"
        events.call("wasmd.subscribe", ["plugin."])
        assert client.call("v.which") == 0
        samples = []
        for version in range(1, count + 1):
            text = plugins.WHICH.format(version=version)
            start = time.perf_counter()
            plugins.write_atomic(path, text)
            while True:
                event = events.next_event()
                if event.get("plugin") != "v":
                    continue
                if event["type"] in ("plugin.reloaded", "plugin.loaded"):
                    break
                raise RuntimeError(f"unexpected event during reload: {event}")
            value = client.call("v.which")
            samples.append((time.perf_counter() - start) * 1000)
            if value != version:
                raise RuntimeError(f"v.which returned {value} after reload {version}")
    return samples


def _in_process(ctx: Context, count: int) -> list[float]:
    folder = ctx.subdir("reload-floor")
    path = folder / "v.wat"
    source = PluginSource("v", path, None, folder, None)
    samples = []
    with Engines() as engines:
        for version in range(count):
            path.write_text(plugins.WHICH.format(version=1000 + version))
            start = time.perf_counter()
            pool = build_pool(take_snapshot(source), engines, lambda kind, fields: None)
            samples.append((time.perf_counter() - start) * 1000)
            pool.close()
            pool.wait_closed(10)
    return samples


def run(ctx: Context) -> list[Row]:
    count = ctx.pick(30, 8)
    ctx.say(f"4: {count} atomic replacements of a plug-in, and {count} in-process builds")
    wasmd = sorted(_reloads(ctx, count))
    floor = sorted(_in_process(ctx, count))
    spread = Spread.of(wasmd)
    p50, p90 = spread.median, percentile(wasmd, 0.9)
    row = Row(
        "4",
        f"reload: replace -> first new answer ({count}x)",
        "ms",
        spread,
        Spread.of(floor),
        "in-process build",
        p50 / Spread.of(floor).median,
        "wasmd reload p50 / in-process build p50",
        "p50 <= 50 ms",
        p50 <= 50,
    )
    row.notes.append(f"p50 {p50:.1f} ms, p90 {p90:.1f} ms over {count} reloads")
    row.extra = {"p50_ms": p50, "p90_ms": p90}
    return [row]
