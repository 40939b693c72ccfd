"""A fleet on one machine: N daemons, a bridge each, one nats-server (docs/operations.md,
"wasmd across many hosts"). What it prints is what the operations page quotes.

    .venv/bin/python -m bench.fleet [--hosts 4] [--seconds 3]

It measures (1) how NATS spreads requests over the hosts' bridges, (2) the memory each host's
pair costs (daemon and bridge RSS) and the nats-server's, (3) failover: a client keeps
``IN_FLIGHT`` requests going while host 0's daemon is killed (SIGKILL); it reports the
failures (calls in flight in the dying daemon are answered ``unavailable``) and when the last
failed answer came, counted from the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import msgpack
import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from . import servers
from .scenarios.nats import _free_port, _process, _until_answered

IN_FLIGHT = 8
SUBJECT = "wasmd.call.who.id"


def _who(n: int) -> str:
    return f'(module (func (export "id") (result i32) (i32.const {n})))'


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _varz(monitor: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/varz", timeout=10) as r:
        return dict(json.load(r))


async def _spread(nc: NatsClient, count: int) -> Counter[int]:
    seen: Counter[int] = Counter()
    for _ in range(count):
        reply = await nc.request(SUBJECT, b"", timeout=5)
        seen[msgpack.unpackb(reply.data)[1]] += 1
    return seen


async def _failover(nc: NatsClient, kill: Any, seconds: float) -> dict[str, Any]:
    outcomes: list[tuple[float, str]] = []
    stop = time.perf_counter() + seconds
    killed_at: list[float] = []

    async def caller() -> None:
        while time.perf_counter() < stop:
            try:
                reply = await nc.request(SUBJECT, b"", timeout=2)
                error = msgpack.unpackb(reply.data)[0]
                outcome = "ok" if error is None else f"error {error[0]}"
            except nats.errors.TimeoutError:
                outcome = "timeout"
            except nats.errors.NoRespondersError:
                outcome = "no responders"
            outcomes.append((time.perf_counter(), outcome))  # when the answer came

    async def killer() -> None:
        await asyncio.sleep(seconds / 3)
        killed_at.append(time.perf_counter())
        kill()

    await asyncio.gather(killer(), *(caller() for _ in range(IN_FLIGHT)))
    t0 = killed_at[0]
    failed = [(t, o) for t, o in outcomes if o != "ok"]
    return {
        "requests": len(outcomes),
        "failed": dict(Counter(o for _, o in failed)),
        "last_failure_after_kill_ms": round((max(t for t, _ in failed) - t0) * 1000, 1)
        if failed
        else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args(argv)
    binary = Path(sys.executable).parent / "nats-server"
    port, monitor = _free_port(), _free_port()
    url = f"nats://127.0.0.1:{port}"
    with TemporaryDirectory(prefix="wasmd-fleet-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        nats_proc = stack.enter_context(
            _process(
                [str(binary), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)],
                work / "nats.log",
            )
        )
        daemons, bridges = [], []
        for i in range(args.hosts):
            host = work / f"h{i}"
            host.mkdir()
            daemon = stack.enter_context(servers.wasmd(host, {"who.wat": _who(i)}))
            command = [sys.executable, "-m", "wasmd", "bridge", "nats", "--server", url]
            command += ["--socket", str(daemon.socket), "--expose", "who", "--host", f"h{i}"]
            bridge = stack.enter_context(_process(command, host / "bridge.log"))
            daemons.append(daemon)
            bridges.append(bridge)

        async def measure() -> dict[str, Any]:
            nc = await nats.connect(url)
            try:
                await _until_answered(nc, SUBJECT)
                deadline = time.monotonic() + 60
                while len(await _spread(nc, 20 * args.hosts)) < args.hosts:
                    if time.monotonic() > deadline:
                        raise TimeoutError("not every bridge joined within 60 s")
                spread = await _spread(nc, 100 * args.hosts)
                memory = {
                    "daemon_rss_mib": [round(_rss_mib(d.process.pid), 1) for d in daemons],
                    "bridge_rss_mib": [round(_rss_mib(b.pid), 1) for b in bridges],
                    "nats_server_rss_mib": round(_rss_mib(nats_proc.pid), 1),
                }
                varz = await asyncio.to_thread(_varz, monitor)
                failover = await _failover(nc, daemons[0].process.kill, args.seconds)
                return {
                    "hosts": args.hosts,
                    "spread": dict(sorted(spread.items())),
                    **memory,
                    "nats_connections": varz.get("connections"),
                    "nats_subscriptions": varz.get("subscriptions"),
                    "failover": failover,
                }
            finally:
                await nc.close()

        print(json.dumps(asyncio.run(measure()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
