"""The load generator: ``loadgen.c`` built with the machine's ``cc``, or a Python stand-in.

The C client is built at run time into the bench's temporary folder. Without a C compiler the
bench falls back to ``bench/pyloadgen.py`` (same command line, same JSON) and says so in its
output, because a Python client is slower than the servers it measures and caps what the
throughput scenarios can show.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .servers import REPO, child_env, pinned

SOURCE = Path(__file__).with_name("loadgen.c")


@dataclass(frozen=True)
class LoadGen:
    kind: str  # "c" or "python"
    command: tuple[str, ...]
    note: str

    def latency(
        self,
        sock: Path,
        method: str,
        params: tuple[int, ...],
        *,
        warmup: int,
        calls: int = 0,
        seconds: float = 0.0,
        cpu: int | None = None,
    ) -> dict[str, Any]:
        """One connection, one call at a time, ``calls`` of them or for ``seconds``, on CPU
        ``cpu`` only if given:
        {calls, errors, mean_ns, min_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns}."""
        count = f"{seconds}s" if seconds > 0 else str(calls)
        args = ("latency", str(sock), method, str(warmup), count, *map(str, params))
        return self._run(args, cpu)

    def throughput(
        self,
        sock: Path,
        method: str,
        params: tuple[int, ...],
        *,
        conns: int,
        depth: int,
        warmup_s: float,
        seconds: float,
        cpu: int | None = None,
    ) -> dict[str, Any]:
        """``conns`` connections with ``depth`` calls in flight each, on CPU ``cpu`` only if
        given: {calls_per_s, errors, ...}."""
        shape = (str(conns), str(depth), str(warmup_s), str(seconds))
        return self._run(("throughput", str(sock), method, *shape, *map(str, params)), cpu)

    def _run(self, args: tuple[str, ...], cpu: int | None) -> dict[str, Any]:
        command = pinned([*self.command, *args], cpu)
        done = subprocess.run(command, capture_output=True, text=True, env=child_env(), cwd=REPO)
        if done.returncode != 0:
            raise RuntimeError(f"loadgen {args[0]} failed: {done.stderr.strip()}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def build(workdir: Path) -> LoadGen:
    compiler = shutil.which("cc")
    if compiler is not None:
        binary = workdir / "loadgen"
        done = subprocess.run(
            [compiler, "-O2", "-o", str(binary), str(SOURCE)], capture_output=True, text=True
        )
        if done.returncode == 0:
            return LoadGen("c", (str(binary),), f"C load generator built with {compiler}")
        reason = f"cc failed: {done.stderr.strip()[:300]}"
    else:
        reason = "no cc on PATH"
    command = (sys.executable, "-m", "bench.pyloadgen")
    note = f"PYTHON load generator ({reason}): throughput is capped by the client"
    return LoadGen("python", command, note)
