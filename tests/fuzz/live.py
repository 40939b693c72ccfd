"""Live fuzzing: random and mutated frames over many connections against a running daemon.

    .venv/bin/python -m tests.fuzz.live --frames 100000 --connections 50

Starts ``wasmd serve`` as a child process, then sends frames: valid requests, the same with
bytes flipped, cut short or repeated, random bytes, and headers that announce huge objects.
After every batch a control connection must still get ``pong`` from ``wasmd.ping``. At the
end the daemon's open file descriptors and resident memory are compared with the start:
the report says by how much they grew, and ``within_bounds`` whether that is within
``FD_GROWTH_BOUND`` and ``RSS_GROWTH_BOUND``. The test suite runs a small subset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import msgpack

from wasmd import SyncClient

from ..conftest import serve_command
from ..processes import copy_bundled_examples, reaped, resident_bytes

REPO = Path(__file__).resolve().parents[2]
FD_GROWTH_BOUND = 8  # a few for lazily created things (memfds, the cache), never per frame
RSS_GROWTH_BOUND = 64 * 1024 * 1024

VALID = [
    [0, 1, "math.add", [1, 2]],
    [0, 2, "math.div", [1, 0]],
    [0, 3, "counter.incr", []],
    [0, 4, "wasmd.list", []],
    [0, 5, "nope.nope", [b"\x00" * 10]],
    [2, "nvim_set_client_info", [{}]],
    [1, 6, None, 1],
]


def frame(rng: random.Random) -> bytes:
    choice = rng.random()
    base = bytes(msgpack.packb(rng.choice(VALID), use_bin_type=True))
    if choice < 0.3:
        return base
    if choice < 0.55:  # flip some bytes
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice < 0.7:  # cut short
        return base[: rng.randrange(1, len(base))]
    if choice < 0.85:  # random bytes
        return rng.randbytes(rng.randint(1, 64))
    # headers announcing huge arrays, maps, strings or nesting
    return rng.choice(
        [
            b"\xdd\xff\xff\xff\xff",
            b"\xdf\xff\xff\xff\xff",
            b"\xdb\x7f\xff\xff\xff",
            b"\x91" * rng.randint(10, 2000),
            b"\x94\x00\xce\xff\xff\xff\xff",
        ]
    )


@dataclass
class Report:
    frames: int
    connections: int
    pings: int
    seconds: float
    fds_start: int
    fds_end: int
    rss_start: int
    rss_end: int

    @property
    def within_bounds(self) -> bool:
        return (
            self.fds_end - self.fds_start <= FD_GROWTH_BOUND
            and self.rss_end - self.rss_start <= RSS_GROWTH_BOUND
        )


@contextlib.contextmanager
def spawned_daemon(plugins: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``wasmd serve`` as a child process, ready (by NOTIFY_SOCKET, as systemd learns it)."""
    with tempfile.TemporaryDirectory(prefix="wasmd-fuzz-") as tmp:
        sock, notify = Path(tmp) / "wasmd.sock", Path(tmp) / "notify"
        ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ready.bind(str(notify))
        ready.settimeout(60)
        command = serve_command(plugins, "--socket", str(sock), "--log-level", "error", *extra)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
        with reaped(command, stderr=subprocess.DEVNULL, env=env) as daemon:
            try:
                while b"READY=1" not in ready.recv(4096):  # bounded by the socket's timeout
                    pass
                yield daemon, sock
            finally:
                ready.close()


def usage(pid: int) -> tuple[int, int]:
    """(open file descriptors, resident bytes) of a process."""
    return len(os.listdir(f"/proc/{pid}/fd")), resident_bytes(pid)


def run(frames: int, connections: int, seed: int, per_connection: int = 20) -> Report:
    """Send ``frames`` frames, ``per_connection`` to a connection, ``connections`` at once."""
    rng = random.Random(seed)
    with (
        tempfile.TemporaryDirectory(prefix="wasmd-fuzz-plugins-") as plugins,
        spawned_daemon(copy_bundled_examples(Path(plugins))) as (daemon, sock),
        SyncClient(sock, timeout=10) as control,
    ):
        # Warm up what a first call creates lazily, so that growth means a leak.
        control.call("math.add", 1, 1)
        fds_start, rss_start = usage(daemon.pid)
        started, sent, pings = time.monotonic(), 0, 0
        while sent < frames:
            batch = []
            for _ in range(connections):
                peer = socket.socket(socket.AF_UNIX)
                peer.connect(str(sock))
                data = b"".join(frame(rng) for _ in range(per_connection))
                with contextlib.suppress(OSError):  # closed for garbage: as it should be
                    peer.sendall(data)
                batch.append(peer)
                sent += per_connection
            for peer in batch:
                peer.close()
            assert control.call("wasmd.ping") == "pong"
            pings += 1
        # Let the daemon finish with the closed connections before measuring.
        while control.call("wasmd.stats")["daemon"]["connections"] > 1:
            control.call("wasmd.ping")
        fds_end, rss_end = usage(daemon.pid)
        return Report(
            sent,
            connections,
            pings,
            time.monotonic() - started,
            fds_start,
            fds_end,
            rss_start,
            rss_end,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = run(args.frames, args.connections, args.seed)
    print(json.dumps({**asdict(report), "within_bounds": report.within_bounds}, indent=2))
    return 0 if report.within_bounds else 1


if __name__ == "__main__":
    sys.exit(main())
