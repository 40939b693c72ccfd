"""Scenario 9: calls from another machine, through NATS and one ``wasmd bridge nats``.

A nats-server on loopback, a daemon serving ``math.add``, one bridge exposing ``math``; the
client is nats-py in the bench's process. The baseline is a bare nats-py responder that echoes
each request's payload (bench/nats_echo.py, its own process like the bridge): the same NATS
hops, none of the bridge's work (MessagePack in and out, the call over the daemon's socket,
the daemon's own work).

9a. Round trip: one request at a time, ``wasmd.call.math.add [2, 3]`` against the echo of the
    same payload; p50 per round, rounds interleaved.
9b. Throughput: ``IN_FLIGHT`` requests kept in flight from one client for a few seconds;
    requests per second through the bridge against through the echo.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from .. import servers
from ..context import Context
from ..report import Row, skipped
from ..stats import Spread, percentile

ADD = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
IN_FLIGHT = 32
BRIDGE_SUBJECT = "wasmd.call.math.add"
ECHO_SUBJECT = "bench.echo"
PAYLOAD = msgpack.packb([2, 3])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _process(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        servers.stop(process)


async def _until_answered(nc: NatsClient, subject: str) -> None:
    """Until someone answers ``subject`` (the bridge joined, the echo subscribed): 60 s."""
    deadline = time.monotonic() + 60
    while True:
        try:
            await nc.request(subject, PAYLOAD, timeout=5)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _latency(nc: NatsClient, subject: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        await nc.request(subject, PAYLOAD, timeout=10)
        samples.append((time.perf_counter_ns() - start) / 1e3)
    samples.sort()
    return samples


async def _throughput(nc: NatsClient, subject: str, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await nc.request(subject, PAYLOAD, timeout=10)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return done / (time.perf_counter() - start)


async def _measure(url: str, rounds: int, count: int, seconds: float) -> dict[str, list[float]]:
    nc = await nats.connect(url)
    out: dict[str, list[float]] = {"rt": [], "rt_echo": [], "tp": [], "tp_echo": []}
    try:
        await _until_answered(nc, BRIDGE_SUBJECT)
        await _until_answered(nc, ECHO_SUBJECT)
        await _latency(nc, BRIDGE_SUBJECT, count // 4)  # warm-up
        await _latency(nc, ECHO_SUBJECT, count // 4)
        for _ in range(rounds):
            out["rt"].append(percentile(await _latency(nc, BRIDGE_SUBJECT, count), 0.5))
            out["rt_echo"].append(percentile(await _latency(nc, ECHO_SUBJECT, count), 0.5))
            out["tp"].append(await _throughput(nc, BRIDGE_SUBJECT, seconds))
            out["tp_echo"].append(await _throughput(nc, ECHO_SUBJECT, seconds))
    finally:
        await nc.close()
    return out


def run(ctx: Context) -> list[Row]:
    title = "NATS bridge"
    beside = Path(sys.executable).parent / "nats-server"
    binary = str(beside) if beside.exists() else shutil.which("nats-server")
    if binary is None:
        return [skipped("9", title, "nats-server is not installed (tests/setup_toolchains.py)")]
    workdir = ctx.subdir("nats")
    port = _free_port()
    url = f"nats://127.0.0.1:{port}"
    rounds, count, seconds = ctx.pick(5, 2), ctx.pick(2000, 300), ctx.pick(3, 1)
    bridge = [sys.executable, "-m", "wasmd", "bridge", "nats", "--server", url]
    echo = [sys.executable, "-m", "bench.nats_echo", url, ECHO_SUBJECT]
    ctx.say(f"9: {rounds} rounds of {count} round trips and {seconds} s of {IN_FLIGHT} in flight")
    with (
        _process([binary, "-a", "127.0.0.1", "-p", str(port)], workdir / "nats.log"),
        servers.wasmd(workdir, {"math.wat": ADD}) as daemon,
        _process(
            [*bridge, "--socket", str(daemon.socket), "--expose", "math", "--log-level", "warning"],
            workdir / "bridge.log",
        ),
        _process(echo, workdir / "echo.log"),
    ):
        got = asyncio.run(_measure(url, rounds, count, seconds))
    rt, rt_echo = Spread.of(got["rt"]), Spread.of(got["rt_echo"])
    tp, tp_echo = Spread.of(got["tp"]), Spread.of(got["tp_echo"])
    return [
        Row(
            "9a",
            "NATS round trip through one bridge (p50)",
            "us",
            rt,
            rt_echo,
            "bare nats-py echo",
            rt.median / rt_echo.median,
            "bridge p50 / echo p50",
        ),
        Row(
            "9b",
            f"NATS throughput through one bridge ({IN_FLIGHT} in flight)",
            "req/s",
            tp,
            tp_echo,
            "bare nats-py echo",
            tp.median / tp_echo.median,
            "bridge / echo",
        ),
    ]
