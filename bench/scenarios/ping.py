"""Scenario 7: does wasmd stay prompt while guests spin until they are stopped?

7a. Another connection. A plug-in with ``instances = 2`` and ``timeout_ms = 500`` exports
    ``spin``, an endless loop. A background client keeps two ``spin`` calls in flight at all
    times (a new one the moment one times out), so both instances are busy the whole time,
    while the load generator measures ``wasmd.ping`` round trips on another connection, back
    to back. Rounds alternate between that and the same ping measurement with the spinning
    stopped: the baseline, an idle daemon.
7b. The same connection. One write carries ``[runaway.spin, wasmd.ping]`` (a plug-in with a
    10 s timeout): the ping is decoded behind a call that will not end by itself, and is
    answered only once the daemon hands the reading of that connection to another thread.
    The time to the ping's answer is measured; then ``wasmd.cancel`` stops the spin, whose
    answer (``cancelled``) is awaited before the next repetition. The baseline is the same
    client sending the ping alone, interleaved round by round.
7c. Another connection, while one client floods ``wasmd.describe`` of a plug-in with 2,000
    exports (200 requests per write, answers read and thrown away): built-ins run on the
    flooding connection's reader thread, in Python, so this is the GIL's share, not a
    guest's. The baseline is 7a's idle pings.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import msgpack

from .. import plugins, servers
from ..context import Context
from ..report import Row
from ..rpc import RpcClient
from ..stats import Spread, percentile

SPIN_IN_FLIGHT = 2
MANIFEST = "[plugin]\ninstances = 2\ntimeout_ms = 500\n"
TIMEOUT_CODE = 5
CANCELLED_CODE = 11
# 7b's runaway: one instance, a deadline far beyond a repetition, so only the cancel ends it.
RUNAWAY_MANIFEST = "[plugin]\ninstances = 1\ntimeout_ms = 10000\n"
SAME_CONN_TARGET_MS = 10.0
MANY_EXPORTS = "(module\n{}\n)".format(
    "\n".join(f'(func (export "f{i:05d}") (result i32) i32.const {i})' for i in range(2000))
)
FLOOD_BATCH = 200
OTHER_CONN_TARGET_MS = 5.0


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


class _DescribeFlood:
    """Writes ``wasmd.describe many`` in batches of ``FLOOD_BATCH`` and drains the answers
    unread, on two threads (both mostly in system calls), until stopped."""

    def __init__(self, sock: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(sock))
        self.stopping = threading.Event()
        batch = b"".join(
            msgpack.packb([0, i, "wasmd.describe", ["many"]]) for i in range(FLOOD_BATCH)
        )
        self.batch = batch
        self.received = 0
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._drain, daemon=True),
        ]

    def __enter__(self) -> _DescribeFlood:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(10)
        self.sock.close()

    def _send(self) -> None:
        while not self.stopping.is_set():
            try:
                self.sock.sendall(self.batch)
            except OSError:
                return

    def _drain(self) -> None:
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            self.received += len(data)


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
    files |= {"runaway.wat": plugins.SPIN, "runaway.toml": RUNAWAY_MANIFEST}
    files |= {"many.wat": MANY_EXPORTS}
    flooded: list[dict[str, Any]] = []
    flood_bytes: list[float] = []
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
        # After 7a: a flood's tail (requests still buffered when it stops) must not fall
        # into the other rows' measurements.
        for _ in range(rounds):
            with _DescribeFlood(daemon.socket) as flood:
                start = time.perf_counter()
                flooded.append(_pings(ctx, daemon.socket, seconds))
                flood_bytes.append(flood.received / (time.perf_counter() - start))
        same_conn = _same_connection(ctx, daemon.socket, rounds)

    w = Spread.of([r["p99_ns"] / 1e6 for r in loaded])
    b = Spread.of([r["p99_ns"] / 1e6 for r in idle])
    row = Row(
        "7a",
        "wasmd.ping p99, other conn, 2 guests spinning",
        "ms",
        w,
        b,
        "idle",
        w.median / b.median,
        "p99 with guests spinning / p99 idle",
        f"p99 <= {OTHER_CONN_TARGET_MS:.0f} ms",
        w.median <= OTHER_CONN_TARGET_MS,
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
    f = Spread.of([r["p99_ns"] / 1e6 for r in flooded])
    flood_row = Row(
        "7c",
        "wasmd.ping p99, other conn, describe flood",
        "ms",
        f,
        b,
        "idle",
        f.median / b.median,
        "p99 during a wasmd.describe flood / p99 idle",
        f"p99 <= {OTHER_CONN_TARGET_MS:.0f} ms",
        f.median <= OTHER_CONN_TARGET_MS,
    )
    rate = Spread.of([x / 2**20 for x in flood_bytes]).median
    p50_flooded = Spread.of([r["p50_ns"] / 1e3 for r in flooded]).median
    flood_row.notes.append(
        f"p50 {p50_flooded:.0f} us during the flood; the flooding client read {rate:.0f} MiB/s "
        f"of answers (describe of 2,000 exports, {FLOOD_BATCH} requests per write)"
    )
    flood_row.extra = {"flooded_rounds": flooded, "flood_bytes_per_s": flood_bytes}
    return [row, same_conn, flood_row]


class _Pipeliner:
    """One connection that sends several requests in one write and times the answers."""

    def __init__(self, sock: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(sock))
        self.unpacker = msgpack.Unpacker()
        self.pack = msgpack.Packer().pack
        self.next = 0
        self.answers: dict[int, list[Any]] = {}

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str) -> tuple[int, bytes]:
        self.next += 1
        return self.next, self.pack([0, self.next, method, []])

    def answer(self, msgid: int) -> list[Any]:
        """The response to ``msgid``, reading until it comes (others are kept)."""
        while msgid not in self.answers:
            for message in self.unpacker:
                if message[0] == 1:
                    self.answers[message[1]] = message
            if msgid in self.answers:
                break
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the daemon closed the connection")
            self.unpacker.feed(data)
        return self.answers.pop(msgid)

    def ping_alone(self) -> float:
        """Seconds from sending a ping to its answer."""
        ping, data = self.request("wasmd.ping")
        start = time.perf_counter()
        self.sock.sendall(data)
        _check(self.answer(ping), None)
        return time.perf_counter() - start

    def ping_behind_runaway(self) -> tuple[float, float]:
        """Seconds to the answer of a ping written together with a runaway call ahead of
        it, and seconds from cancelling the runaway to its answer."""
        spin, first = self.request("runaway.spin")
        ping, second = self.request("wasmd.ping")
        start = time.perf_counter()
        self.sock.sendall(first + second)
        _check(self.answer(ping), None)
        answered = time.perf_counter()
        self.sock.sendall(self.pack([2, "wasmd.cancel", [spin]]))
        _check(self.answer(spin), CANCELLED_CODE)
        return answered - start, time.perf_counter() - answered


def _check(response: list[Any], code: int | None) -> None:
    error = response[2]
    got = error[0] if isinstance(error, list) and error else error
    if got != code:
        raise RuntimeError(f"expected error {code}, got {error!r} (msgid {response[1]})")


def _same_connection(ctx: Context, sock: Path, rounds: int) -> Row:
    """Row 7b: ping pipelined behind a runaway guest on the same connection."""
    reps = ctx.pick(250, 60)
    ctx.say(f"7b: {rounds} rounds of {reps} x [runaway.spin, wasmd.ping] in one write, then alone")
    behind: list[list[float]] = []
    alone: list[list[float]] = []
    cancels: list[float] = []
    client = _Pipeliner(sock)
    try:
        for _ in range(10):  # warm-up: the first hand-offs start threads, import paths
            client.ping_behind_runaway()
        for _ in range(rounds):
            times = [client.ping_behind_runaway() for _ in range(reps)]
            behind.append(sorted(t[0] * 1000 for t in times))
            cancels += [t[1] * 1000 for t in times]
            alone.append(sorted(client.ping_alone() * 1000 for _ in range(reps)))
    finally:
        client.close()
    w = Spread.of([percentile(samples, 0.99) for samples in behind])
    b = Spread.of([percentile(samples, 0.99) for samples in alone])
    row = Row(
        "7b",
        "wasmd.ping p99, same conn, behind a runaway",
        "ms",
        w,
        b,
        "ping alone",
        w.median / b.median,
        "p99 behind a runaway / p99 of a ping alone, same client",
        f"p99 <= {SAME_CONN_TARGET_MS:.0f} ms",
        w.median <= SAME_CONN_TARGET_MS,
    )
    p50 = Spread.of([percentile(samples, 0.5) for samples in behind]).median
    worst = max(samples[-1] for samples in behind)
    cancel = sorted(cancels)
    row.notes.append(
        f"p50 {p50:.2f} ms, worst {worst:.1f} ms behind the runaway; {reps} repetitions per "
        f"round; wasmd.cancel -> the runaway's answer (code 11): p50 "
        f"{percentile(cancel, 0.5):.1f} ms, p99 {percentile(cancel, 0.99):.1f} ms"
    )
    row.extra = {"behind_ms": behind, "alone_ms": alone, "cancel_ms": cancels}
    return row
