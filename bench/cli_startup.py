"""How long ``wasmd call`` takes as a process, against a running daemon (issue 18's target:
under 100 ms of its own time, i.e. beyond the bare interpreter's start).

    .venv/bin/python -m bench.cli_startup [--runs 20]

It starts ``wasmd serve`` on the example plug-ins (``plugins.d``), then times, one after
the other and ``--runs`` times each:

- the floor: ``python -c pass``, the interpreter alone;
- ``python -m wasmd call wasmd.ping`` and ``python -m wasmd call math.add 2 3``: what a user
  or a shell script pays per call.

It prints medians and the 90th percentiles, the time beyond the floor, and which daemon-side
modules the client loaded (none: ``cli.py`` imports them inside ``serve`` and ``check``).
Wall-clock process times: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from . import servers

DAEMON_MODULES = ("wasmtime", "watchfiles", "wasmd.daemon", "wasmd.server", "wasmd.runtime")


def _time_process(command: Sequence[str], runs: int) -> list[float]:
    env = servers.child_env()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def _loaded_daemon_modules(sock: Path) -> list[str]:
    script = (
        "import sys\nfrom wasmd.cli import main\n"
        f"main(['call', '--socket', {str(sock)!r}, 'wasmd.ping'])\n"
        f"print(' '.join(m for m in {DAEMON_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        env=servers.child_env(),
    ).stdout
    return out.splitlines()[-1].split()


def _row(name: str, times: list[float], floor: float | None) -> str:
    median = statistics.median(times) * 1000
    p90 = statistics.quantiles(times, n=10)[-1] * 1000 if len(times) > 1 else median
    own = f"{median - floor * 1000:7.1f} ms" if floor is not None else "      -   "
    return f"{name:<34} {median:7.1f} ms {p90:7.1f} ms  {own}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    plugins = {p.name: p.read_text() for p in (servers.REPO / "plugins.d").iterdir()}
    with (
        tempfile.TemporaryDirectory(prefix="wasmd-bench-") as tmp,
        servers.wasmd(Path(tmp), plugins) as daemon,
    ):
        sock = str(daemon.socket)
        floor = _time_process([sys.executable, "-c", "pass"], args.runs)
        wasmd = [sys.executable, "-m", "wasmd"]
        ping = _time_process([*wasmd, "call", "--socket", sock, "wasmd.ping"], args.runs)
        add = _time_process([*wasmd, "call", "--socket", sock, "math.add", "2", "3"], args.runs)
        loaded = _loaded_daemon_modules(daemon.socket)
    base = statistics.median(floor)
    print(f"{'process':<34} {'median':>10} {'p90':>10}  {'beyond floor':>12}  ({args.runs} runs)")
    print(_row("python -c pass (floor)", floor, None))
    print(_row("wasmd call wasmd.ping", ping, base))
    print(_row("wasmd call math.add 2 3", add, base))
    print(f"daemon modules a client loads: {', '.join(loaded) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
