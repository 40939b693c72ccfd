"""The Python stand-in for ``loadgen.c`` when there is no C compiler: same arguments, same JSON.

    python -m bench.pyloadgen latency    SOCKET METHOD WARMUP N|SECONDSs    [PARAM...]
    python -m bench.pyloadgen throughput SOCKET METHOD CONNS DEPTH WARMUP_S SECONDS [PARAM...]

Throughput mode drives every connection from one ``selectors`` loop. It is much slower than
the C client, so its numbers say more about itself than about the server.
"""

from __future__ import annotations

import itertools
import json
import selectors
import socket
import sys
import time
from typing import Any

import msgpack

from .rpc import RpcClient
from .stats import percentile


def latency(
    path: str, method: str, params: list[int], warmup: int, calls: int, seconds: float
) -> dict[str, Any]:
    """``calls`` timed calls, or (``seconds`` > 0) as many as fit in that time."""
    samples: list[int] = []
    errors = 0
    until = 0.0
    with RpcClient(path) as client:
        for i in range(warmup + calls) if seconds <= 0 else itertools.count():
            if seconds > 0 and i == warmup:
                until = time.perf_counter() + seconds
            if until and time.perf_counter() >= until:
                break
            start = time.perf_counter_ns()
            msgid = client.send(method, params)
            _, got, error, _ = client.response()
            elapsed = time.perf_counter_ns() - start
            if got != msgid:
                raise SystemExit(f"pyloadgen: response to msgid {got}, expected {msgid}")
            if i >= warmup:
                samples.append(elapsed)
                errors += error is not None
    if not samples:
        raise SystemExit("pyloadgen: no call finished in the time given")
    samples.sort()
    result: dict[str, Any] = {"mode": "latency", "calls": len(samples), "errors": errors}
    result["mean_ns"] = sum(samples) / len(samples)
    result["min_ns"], result["max_ns"] = samples[0], samples[-1]
    for label, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        result[f"{label}_ns"] = percentile(samples, q)
    return result


class _Conn:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.setblocking(False)
        self.unpacker = msgpack.Unpacker()
        self.in_flight: set[int] = set()
        self.next_id = 0
        self.out = b""


def throughput(
    path: str,
    method: str,
    params: list[int],
    conns: int,
    depth: int,
    warmup_s: float,
    seconds: float,
) -> dict[str, Any]:
    pack = msgpack.Packer().pack
    selector = selectors.DefaultSelector()
    connections = [_Conn(path) for _ in range(conns)]
    for conn in connections:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    start = time.perf_counter()
    measure_from, measure_to = start + warmup_s, start + warmup_s + seconds
    calls = errors = drained = drained_errors = 0

    def fill(conn: _Conn) -> None:
        while len(conn.in_flight) < depth:
            conn.in_flight.add(conn.next_id)
            conn.out += pack([0, conn.next_id, method, params])
            conn.next_id = (conn.next_id + 1) & 0xFFFFFFFF
        flush(conn)

    def flush(conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out) if conn.out else 0
        except BlockingIOError:
            sent = 0
        conn.out = conn.out[sent:]

    for conn in connections:
        fill(conn)
    while True:
        now = time.perf_counter()
        sending = now < measure_to
        if not sending and not any(c.in_flight for c in connections):
            break
        if now > measure_to + 5:
            raise SystemExit("pyloadgen: responses still missing 5 s after the run")
        for conn in connections:
            if conn.out:
                flush(conn)
        for key, _ in selector.select(0.05):
            conn = key.data
            data = conn.sock.recv(1 << 20)
            if not data:
                raise SystemExit("pyloadgen: the server closed a connection")
            conn.unpacker.feed(data)
            now = time.perf_counter()
            for message in conn.unpacker:
                if message[0] != 1:
                    continue
                if message[1] not in conn.in_flight:
                    raise SystemExit(f"pyloadgen: response to msgid {message[1]}, not in flight")
                conn.in_flight.discard(message[1])
                failed = message[2] is not None
                if measure_from <= now < measure_to:
                    calls += not failed
                    errors += failed
                elif now >= measure_to:
                    drained += 1
                    drained_errors += failed
            if sending:
                fill(conn)
    for conn in connections:
        conn.sock.close()
    return {
        "mode": "throughput",
        "conns": conns,
        "depth": depth,
        "seconds": seconds,
        "calls": calls,
        "errors": errors,
        "calls_per_s": calls / seconds,
        "drained": drained,
        "drained_errors": drained_errors,
    }


def main(argv: list[str]) -> int:
    try:
        mode, path, method, *rest = argv
        if mode == "latency":
            warmup = int(rest[0])
            seconds = float(rest[1][:-1]) if rest[1].endswith("s") else 0.0
            calls = 0 if seconds else int(rest[1])
            params = [int(p) for p in rest[2:]]
            result = latency(path, method, params, warmup, calls, seconds)
        elif mode == "throughput":
            conns, depth = int(rest[0]), int(rest[1])
            warmup_s, seconds = float(rest[2]), float(rest[3])
            params = [int(p) for p in rest[4:]]
            result = throughput(path, method, params, conns, depth, warmup_s, seconds)
        else:
            raise ValueError(mode)
    except (ValueError, IndexError):
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
