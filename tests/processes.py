"""Child processes the tests start, and the bundled examples they serve.

Every process a test starts is reaped, pass or fail: ``subprocess.Popen`` used as a context
manager only *waits* on exit, so a failed assertion inside it left a daemon running for good
(or hung the test until pytest-timeout gave up on it, leaving the daemon behind).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# What `plugins.d` ships with. Tests serve a copy of these, never the folder itself: a
# newcomer who followed the README's walk-through has dropped more plug-ins there.
BUNDLED_EXAMPLES = ("counter.wat", "math.toml", "math.wat", "slow.toml", "slow.wat")
# How long a process that is still running at the end of a passing test may take to stop on
# SIGTERM before it is killed.
STOP_GRACE = 30.0


def copy_bundled_examples(into: Path) -> Path:
    """``into`` (created) holding a copy of the bundled examples only; returns ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for name in BUNDLED_EXAMPLES:
        shutil.copy2(REPO / "plugins.d" / name, into / name)
    return into


@contextmanager
def reaped(command: list[str], **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """``subprocess.Popen(command, **popen)`` that is gone when the block ends: killed at
    once if the block raised, stopped with SIGTERM (then killed after ``STOP_GRACE``) if the
    block left it running."""
    with subprocess.Popen(command, **popen) as process:
        try:
            yield process
        except BaseException:
            process.kill()
            raise
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    process.kill()


def until(
    predicate: Callable[[], bool], *, within: float = 30.0, what: str = "the condition"
) -> None:
    """Poll ``predicate`` (which does its own waiting, e.g. a round trip to the daemon) until
    it holds; fail the test after ``within`` seconds instead of waiting for ever."""
    give_up = time.monotonic() + within
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"{what} did not happen within {within:.0f} s")


def wait_ready(daemon: subprocess.Popen[str]) -> None:
    """Read a ``wasmd serve`` child's log (``stderr=PIPE, text=True``) until it announces
    ``daemon.ready``; fail with what it logged if it exits first. Readiness is announced on
    the log, not guessed."""
    assert daemon.stderr is not None
    seen = []
    for line in daemon.stderr:
        seen.append(line)
        if "daemon.ready" in line:
            return
    raise AssertionError("daemon exited before ready:\n" + "".join(seen))


def resident_bytes(pid: int | str = "self") -> int:
    """A process's resident memory (VmRSS), this one's by default."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
