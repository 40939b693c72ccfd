"""How long a client command (``wasmd call``, ``wasmd list``) takes as a process, against a
running daemon (issue 28's target: within 40 ms of the bare interpreter's start).

    .venv/bin/python -m bench.cli_startup [--runs 20]

It starts ``wasmd serve`` on the example plug-ins (``plugins.d``), then times, one after
the other and ``--runs`` times each:

- the floor: ``python -c pass``, the interpreter alone;
- ``python -m wasmd call wasmd.ping``, ``python -m wasmd call math.add 2 3`` and
  ``python -m wasmd list``: what a user or a shell script pays per command.

Every process runs as an installed wasmd does, with its bytecode cached: the children write
and read ``.pyc`` files under a temporary ``PYTHONPYCACHEPREFIX`` (even where
``PYTHONDONTWRITEBYTECODE`` is set), and each command runs once untimed first. ``--cold``
measures without bytecode instead (every run compiles wasmd's modules from source).

It prints medians and the 90th percentiles, the time beyond the floor, and which modules
the client loaded that it should not (none: ``cli.py`` imports the daemon's inside ``serve``
and ``check``, and a client command uses ``sync_client``, not anyio).
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

DAEMON_MODULES = (
    "wasmtime",
    "watchfiles",
    "anyio",
    "wasmd.daemon",
    "wasmd.server",
    "wasmd.runtime",
    "wasmd.config",
)


def _child_env(pycache: Path | None) -> dict[str, str]:
    """The children's environment: bytecode cached under ``pycache``, or never (None)."""
    if pycache is None:
        return servers.child_env(PYTHONDONTWRITEBYTECODE="1")
    env = servers.child_env(PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _time_process(command: Sequence[str], runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)  # writes bytecode
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def _loaded_daemon_modules(sock: Path, env: dict[str, str]) -> list[str]:
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
        env=env,
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
    parser.add_argument("--cold", action="store_true", help="no cached bytecode")
    args = parser.parse_args(argv)
    plugins = {p.name: p.read_text() for p in (servers.REPO / "plugins.d").iterdir()}
    with (
        tempfile.TemporaryDirectory(prefix="wasmd-bench-") as tmp,
        servers.wasmd(Path(tmp), plugins) as daemon,
    ):
        env = _child_env(None if args.cold else Path(tmp) / "pycache")
        sock = str(daemon.socket)
        floor = _time_process([sys.executable, "-c", "pass"], args.runs, env)
        wasmd = [sys.executable, "-m", "wasmd"]
        rows = {
            name: _time_process([*wasmd, *command, "--socket", sock], args.runs, env)
            for name, command in (
                ("wasmd call wasmd.ping", ["call", "wasmd.ping"]),
                ("wasmd call math.add 2 3", ["call", "math.add", "2", "3"]),
                ("wasmd list", ["list"]),
            )
        }
        loaded = _loaded_daemon_modules(daemon.socket, env)
    base = statistics.median(floor)
    bytecode = "no bytecode" if args.cold else "bytecode cached"
    print(f"{'process':<34} {'median':>10} {'p90':>10}  {'beyond floor':>12}  ", end="")
    print(f"({args.runs} runs, {bytecode})")
    print(_row("python -c pass (floor)", floor, None))
    for name, times in rows.items():
        print(_row(name, times, base))
    print(f"daemon modules (and anyio) a client loads: {', '.join(loaded) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
