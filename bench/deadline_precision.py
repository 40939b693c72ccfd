"""How far past its deadline a runaway call ends, for several epoch tick sizes.

    .venv/bin/python -m bench.deadline_precision [--ticks 10,5,2] [--rounds 10]

For each tick size it starts ``wasmd serve`` with ``tick_ms`` set, serving an endless loop
three times over, with ``timeout_ms`` 100, 250 and 1000, and calls each ``--rounds`` times
(1000 ms: a third as often), one call at a time on an otherwise idle daemon. A call's
*overrun* is the time from sending it to its ``timeout`` answer, minus its ``timeout_ms``,
as a share of ``timeout_ms``. The deadline is checked at every tick against the wall
clock (``runtime.fastcall.EpochGuard``), so an overrun is at most one tick plus the
answer's way back on an idle machine; under load, add the time the ticker thread waits for
a CPU. docs/DESIGN.md section 4 names the tick default that keeps the overrun within 5%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from . import servers
from .rpc import RpcClient, RpcError

SPIN = '(module (func (export "spin") (loop $l (br $l))))'
TIMEOUTS_MS = (100, 250, 1000)
TIMEOUT_CODE = 5


def _plugins() -> dict[str, str]:
    plugins: dict[str, str] = {}
    for ms in TIMEOUTS_MS:
        plugins[f"spin{ms}.wat"] = SPIN
        plugins[f"spin{ms}.toml"] = f"[plugin]\ntimeout_ms = {ms}\n"
    return plugins


def _overruns(client: RpcClient, timeout_ms: int, rounds: int) -> list[float]:
    """Each call's overrun in ms."""
    overruns = []
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            client.call(f"spin{timeout_ms}.spin")
        except RpcError as exc:
            if exc.code != TIMEOUT_CODE:
                raise
        else:
            raise RuntimeError("an endless loop returned")
        overruns.append((time.perf_counter() - start) * 1000 - timeout_ms)
    return overruns


def measure(workdir: Path, tick_ms: int, rounds: int) -> dict[int, list[float]]:
    with servers.wasmd(workdir, _plugins(), f"tick{tick_ms}", config=f"tick_ms = {tick_ms}\n") as d:
        client = RpcClient(d.socket)
        try:
            return {
                ms: _overruns(client, ms, rounds if ms < 1000 else max(1, rounds // 3))
                for ms in TIMEOUTS_MS
            }
        finally:
            client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deadline_precision")
    parser.add_argument("--ticks", default="10,5,2", help="tick_ms values to try")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"{'tick_ms':>7} {'timeout_ms':>10} {'median overrun':>16} {'worst':>16}")
    with tempfile.TemporaryDirectory(prefix="wasmd-bench-") as tmp:
        for tick_ms in (int(t) for t in args.ticks.split(",")):
            for timeout_ms, overruns in measure(Path(tmp), tick_ms, args.rounds).items():
                median, worst = statistics.median(overruns), max(overruns)
                print(
                    f"{tick_ms:>7} {timeout_ms:>10} "
                    f"{median:7.1f} ms {median / timeout_ms:5.1%} "
                    f"{worst:7.1f} ms {worst / timeout_ms:5.1%}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
