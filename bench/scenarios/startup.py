"""Scenario 5: from spawning ``wasmd serve`` to its ``READY=1`` on ``$NOTIFY_SOCKET``.

READY=1 is what systemd waits for, and wasmd sends it only once every plug-in has loaded (or
failed) and the socket listens, so this is the time until the full plug-in set answers.

- 100 small plug-ins (generated WAT), no compile cache: the target.
- 10 large modules (generated binaries of thousands of functions, so Cranelift takes a
  noticeable time for each), cold: an empty ``cache_dir`` (the first start of a machine,
  compiling and storing each module).
- the same 10, cached: a second start with that ``cache_dir`` (deserializing).
- the floor: ``python -c "import wasmd"``, the interpreter and the package, no work.

Each round runs all four, one after the other; the cold cache is made anew every round.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from .. import plugins, servers
from ..context import Context
from ..report import Row
from ..stats import Spread

SMALL_PLUGINS = 100
LARGE_MODULES = 10


def _import_floor() -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import wasmd"],
        check=True,
        env=servers.child_env(),
        cwd=servers.REPO,
    )
    return (time.perf_counter() - start) * 1000


def _ready_ms(
    folder: Path, workdir: Path, name: str, cache_dir: Path | None, expected: int
) -> float:
    sock = workdir / f"{name}.sock"
    config = servers.write_config(workdir / f"{name}.toml", cache_dir)
    command = servers.wasmd_command(folder, sock, config, cache=cache_dir is not None)
    server = servers.spawn_ready(command, sock, workdir / f"{name}.log")
    try:
        servers.check_loaded(sock, expected)
    finally:
        servers.stop(server.process)
    return server.ready_s * 1000


def run(ctx: Context) -> list[Row]:
    workdir = ctx.subdir("startup")
    small = workdir / "small"
    small.mkdir()
    for index in range(SMALL_PLUGINS):
        (small / f"p{index:03}.wat").write_text(plugins.small(index))
    functions = ctx.pick(3000, 1500)
    ctx.say(f"5: generating {LARGE_MODULES} modules of {functions} functions")
    large = workdir / "large"
    large.mkdir()
    for index in range(LARGE_MODULES):
        (large / f"big{index}.wasm").write_bytes(plugins.large(index, functions))

    rounds = ctx.pick(5, 1)
    ctx.say(f"5: {rounds} rounds of: import floor, 100 small, 10 large cold, 10 large cached")
    samples: dict[str, list[float]] = {"floor": [], "small": [], "cold": [], "cached": []}
    cache = workdir / "cache"
    for _ in range(rounds):
        samples["floor"].append(_import_floor())
        samples["small"].append(_ready_ms(small, workdir, "small", None, SMALL_PLUGINS))
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        samples["cold"].append(_ready_ms(large, workdir, "cold", cache, LARGE_MODULES))
        samples["cached"].append(_ready_ms(large, workdir, "cached", cache, LARGE_MODULES))

    s = {key: Spread.of(values) for key, values in samples.items()}
    floor = s["floor"]
    small_row = Row(
        "5a",
        f"start-up to READY, {SMALL_PLUGINS} small plug-ins",
        "ms",
        s["small"],
        floor,
        "import wasmd",
        s["small"].median / floor.median,
        "wasmd READY / bare `python -c 'import wasmd'`",
        "<= 1000 ms",
        s["small"].median <= 1000,
    )
    cold = Row(
        "5b",
        f"start-up, {LARGE_MODULES} large modules, cold cache",
        "ms",
        s["cold"],
        floor,
        "import wasmd",
        s["cold"].median / floor.median,
        "wasmd READY / bare import",
    )
    cold.notes.append(f"{functions} functions per module, compiled and stored in the cache")
    cached = Row(
        "5c",
        f"start-up, {LARGE_MODULES} large modules, cached",
        "ms",
        s["cached"],
        s["cold"],
        "cold",
        s["cached"].median / s["cold"].median,
        "cached READY / cold READY",
    )
    return [small_row, cold, cached]
