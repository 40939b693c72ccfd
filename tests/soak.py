"""Soak: minutes of mixed load against a daemon, with a reload every second and hostile calls.

    .venv/bin/python -m tests.soak --minutes 10

Four clients call a well-behaved plug-in in a loop; one of them targets a plug-in that is
replaced on disk every second (two versions in turn); another makes random hostile calls
(traps, timeouts, bad params, unknown methods) whose errors are expected. Prints calls made,
calls that failed although they should not have (must be 0), and the daemon's file
descriptors and resident memory at the start and at the end. Exit status 1 if anything that
should have succeeded failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from wasmd import SyncClient, WasmdError

from .fuzz.live import spawned_daemon, usage
from .hostile import DIVIDE, GROW_BOMB, UNREACHABLE
from .wat import ARITH, SPIN


def versioned(version: int) -> str:
    return f'(module (func (export "which") (result i32) (i32.const {version})))'


PLUGINS: dict[str, str] = {
    "arith.wat": ARITH,
    "swap.wat": versioned(1),
    "spin.wat": SPIN,
    "spin.toml": "[plugin]\ntimeout_ms = 100\n",
    "div.wat": DIVIDE,
    "boom.wat": UNREACHABLE,
    "bomb.wat": GROW_BOMB,
    "bomb.toml": '[plugin]\nmemory_max = "8 MiB"\n',
}
HOSTILE_CALLS: list[tuple[str, list[Any]]] = [
    ("spin.spin", []),
    ("div.div", [0]),
    ("boom.boom", []),
    ("bomb.bomb", []),
    ("arith.add", ["x", 1]),
    ("arith.nope", []),
    ("nope.nope", []),
    ("arith.add", [2**40, 1]),
]


def soak(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wasmd-soak-") as tmp:
        plugins = Path(tmp) / "plugins.d"
        plugins.mkdir()
        for name, text in PLUGINS.items():
            (plugins / name).write_text(text)
        with spawned_daemon(plugins) as (daemon, sock):
            stop = threading.Event()
            counts = {"calls": 0, "unexpected_failures": 0, "hostile_calls": 0, "reloads": 0}
            failures: list[str] = []
            lock = threading.Lock()

            def count(key: str, detail: str | None = None) -> None:
                with lock:
                    counts[key] += 1
                    if detail is not None and len(failures) < 20:
                        failures.append(detail)

            def caller(index: int) -> None:
                with SyncClient(sock, timeout=30) as client:
                    while not stop.is_set():
                        try:
                            if index == 0:
                                assert client.call("swap.which") in (1, 2)
                            else:
                                assert client.call("arith.add", index, 1) == index + 1
                            count("calls")
                        except (WasmdError, AssertionError) as exc:
                            count("calls")
                            count("unexpected_failures", repr(exc))

            def hostile() -> None:
                rng = random.Random(1)
                with SyncClient(sock, timeout=30) as client:
                    while not stop.is_set():
                        method, params = rng.choice(HOSTILE_CALLS)
                        with contextlib.suppress(WasmdError):  # expected: they are hostile
                            client.call(method, *params)
                        count("hostile_calls")

            def reloader() -> None:
                version = 1
                while not stop.wait(1.0):
                    version = 3 - version
                    temporary = plugins / "swap.wat.tmp"
                    temporary.write_text(versioned(version))
                    os.replace(temporary, plugins / "swap.wat")
                    count("reloads")

            with SyncClient(sock, timeout=30) as probe:
                probe.call("arith.add", 1, 1)
                fds_start, rss_start = usage(daemon.pid)
                threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
                threads += [threading.Thread(target=hostile), threading.Thread(target=reloader)]
                for thread in threads:
                    thread.start()
                stop.wait(seconds)
                stop.set()
                for thread in threads:
                    thread.join()
                fds_end, rss_end = usage(daemon.pid)
                stats = probe.call("wasmd.stats")["daemon"]
        return {
            **counts,
            "seconds": seconds,
            "fds": [fds_start, fds_end],
            "rss_mib": [round(rss_start / 2**20, 1), round(rss_end / 2**20, 1)],
            "requests_seen_by_daemon": stats["requests"],
            "first_failures": failures,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    args = parser.parse_args()
    report = soak(args.minutes * 60)
    print(json.dumps(report, indent=2))
    return 1 if report["unexpected_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
