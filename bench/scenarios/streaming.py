"""Scenario 12: streaming calls. How many chunks a second does one ``wasmd.stream`` call
deliver, against how many plain calls a second the same connection makes?

A plug-in's ``ones(n)`` sends n one-byte chunks. One client (the bench's raw ``RpcClient``,
so no client library's cost is measured) starts ``wasmd.stream`` with a window of 256 and
grants 128 chunks of credit for every 128 it reads, as ``Client.stream`` does; the rate is
chunks over the time to the final response. The baseline, interleaved round by round on
the same connection, is plain calls of ``quick()`` back to back (one round trip each): what
a client that wanted n results without streaming would do. The ratio says how much cheaper
one chunk is than one call; no target.
"""

from __future__ import annotations

import time

from .. import plugins, servers
from ..context import Context
from ..report import Row
from ..rpc import RpcClient
from ..stats import Spread

WINDOW = 256
MANIFEST = "[plugin]\ntimeout_ms = 600000\n"


def _chunks_per_second(client: RpcClient, n: int) -> float:
    started = time.perf_counter()
    msgid = client.send("wasmd.stream", ["bench.ones", [n], {"window": WINDOW}])
    taken = 0
    while True:
        message = client.receive()
        if message[0] == 2 and message[1] == "wasmd.chunk":
            taken += 1
            if taken % (WINDOW // 2) == 0:
                client.notify("wasmd.credit", [msgid, WINDOW // 2])
        elif message[0] == 1 and message[1] == msgid:
            if message[2] is not None or taken != n:
                raise RuntimeError(f"stream ended with {message[2]!r} after {taken} chunks")
            return n / (time.perf_counter() - started)


def _calls_per_second(client: RpcClient, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        client.call("bench.quick")
    return n / (time.perf_counter() - started)


def run(ctx: Context) -> list[Row]:
    chunks = ctx.pick(200_000, 20_000)
    calls = ctx.pick(20_000, 2_000)
    streamed: list[float] = []
    plain: list[float] = []
    with servers.wasmd(
        ctx.subdir("streaming"), {"bench.wat": plugins.STREAMER, "bench.toml": MANIFEST}
    ) as server:
        with RpcClient(server.socket, timeout=60) as client:
            ctx.say(f"12: {ctx.rounds} rounds x {chunks} chunks / {calls} plain calls")
            for _ in range(ctx.rounds):
                streamed.append(_chunks_per_second(client, chunks))
                plain.append(_calls_per_second(client, calls))
    w, b = Spread.of(streamed), Spread.of(plain)
    row = Row(
        "12",
        "streamed chunks/s vs plain calls/s",
        "per s",
        w,
        b,
        "plain calls, one round trip each",
        w.median / b.median,
        "chunks per second / plain calls per second",
    )
    row.notes.append(f"one-byte chunks, window {WINDOW}, credit {WINDOW // 2} at a time")
    return [row]
