"""Scenario 8: what idle connections cost the daemon in memory and threads.

A daemon serving one plug-in is started afresh each round; its resident memory (``VmRSS`` in
``/proc/PID/status``) is read once it is ready, then 1,024 connections are opened, each
sends one ``wasmd.ping`` (so that the daemon has accepted it and its reader is waiting for
the next request, as an idle client's would be), and ``VmRSS`` and ``Threads`` are read
again once every ping is answered and the connections have then been idle for ``SETTLE_S``
(wasmd lets an idle connection's decoder go after 500 ms). The baseline is the floor server
(anyio, one task per connection) through the same steps: what an event-loop server pays for
the same clients.

The daemon's default ``max_connections`` is exactly 1,024, and the bench's own check that
every plug-in loaded uses a connection just before, so the bench's config raises the limit
by ``HEADROOM``: the row is about the cost of 1,024 connections, not about the limit.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack

from .. import plugins, servers
from ..context import Context
from ..report import Row, skipped
from ..stats import Spread

CONNECTIONS = 1024
HEADROOM = 64
TARGET_MIB = 64
KIB_PER_MIB = 1024
TITLE = f"RSS of {CONNECTIONS:,} idle connections"


def status(pid: int) -> dict[str, int]:
    """``VmRSS`` (KiB) and ``Threads`` of process ``pid``."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            values[key] = int(value.split()[0])
    return values


SETTLE_S = 1.0


@contextlib.contextmanager
def idle_clients(sock: Path, count: int) -> Iterator[None]:
    """``count`` connections, each answered one ping, held open (and idle) meanwhile."""
    ping = msgpack.packb([0, 1, "wasmd.ping", []])
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            clients.append(client)
            client.settimeout(30)
            client.connect(str(sock))
            client.sendall(ping)
        for client in clients:
            unpacker = msgpack.Unpacker()
            while True:
                data = client.recv(4096)
                if not data:
                    raise ConnectionError("the server closed an idle client's connection")
                unpacker.feed(data)
                answer = next(iter(unpacker), None)
                if answer is not None:
                    break
            if answer[0] != 1 or answer[2] is not None:
                raise RuntimeError(f"the ping was answered {answer!r}")
        yield
    finally:
        for client in clients:
            client.close()


def _room_for_sockets(needed: int) -> str | None:
    """Raise this process's open-file limit (its children inherit it) to ``needed`` if it is
    lower; the reason it cannot be, or None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        return f"the open-file limit is {hard}, {needed} are needed"
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return None


def _measure(server: servers.Server) -> dict[str, int]:
    pid = server.process.pid
    before = status(pid)
    with idle_clients(server.socket, CONNECTIONS):
        time.sleep(SETTLE_S)  # idle means idle: not the instant after the last answer
        during = status(pid)
    return {
        "rss_before_kib": before["VmRSS"],
        "rss_idle_kib": during["VmRSS"],
        "threads_before": before["Threads"],
        "threads_idle": during["Threads"],
    }


def run(ctx: Context) -> list[Row]:
    problem = _room_for_sockets(CONNECTIONS + 2 * HEADROOM)
    if problem is not None:
        return [skipped("8", TITLE, problem)]
    rounds = ctx.pick(3, 1)
    ctx.say(f"8: {rounds} rounds of {CONNECTIONS} idle connections, wasmd then floor")
    limit = f"max_connections = {CONNECTIONS + HEADROOM}\n"
    wasmd: list[dict[str, int]] = []
    floor: list[dict[str, int]] = []
    for round_ in range(rounds):
        workdir = ctx.subdir(f"idle-{round_}")
        with servers.wasmd(workdir, {"math.wat": plugins.ADD}, config=limit) as daemon:
            wasmd.append(_measure(daemon))
        with servers.echo_server(workdir) as echo:
            floor.append(_measure(echo))

    def grown(results: list[dict[str, int]]) -> Spread:
        kib = [r["rss_idle_kib"] - r["rss_before_kib"] for r in results]
        return Spread.of([k / KIB_PER_MIB for k in kib])

    w, b = grown(wasmd), grown(floor)
    row = Row(
        "8",
        TITLE,
        "MiB",
        w,
        b,
        "floor",
        w.median / b.median if b.median > 0 else None,
        "wasmd RSS growth / floor RSS growth, same clients",
        f"<= {TARGET_MIB} MiB",
        w.median <= TARGET_MIB,
    )

    def median(results: list[dict[str, int]], key: str) -> float:
        return Spread.of([r[key] for r in results]).median

    row.notes.append(
        f"wasmd: {w.median * KIB_PER_MIB / CONNECTIONS:.0f} KiB per connection, RSS "
        f"{median(wasmd, 'rss_before_kib') / KIB_PER_MIB:.0f} MiB before; threads "
        f"{median(wasmd, 'threads_before'):.0f} before, {median(wasmd, 'threads_idle'):.0f} "
        f"with the connections open; floor RSS "
        f"{median(floor, 'rss_before_kib') / KIB_PER_MIB:.0f} MiB before; a fresh server per "
        f"round; max_connections = {CONNECTIONS + HEADROOM}"
    )
    row.extra = {"wasmd_rounds": wasmd, "floor_rounds": floor}
    return [row]
