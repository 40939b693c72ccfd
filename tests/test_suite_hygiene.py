"""The suite's own rules, checked so they hold as it grows: no test serves the repository's
``plugins.d`` itself (a newcomer's walk-through drops plug-ins there), and every child
process is started through ``processes.reaped``, so none outlives a failed test."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .processes import BUNDLED_EXAMPLES, REPO

TESTS = Path(__file__).resolve().parent
# Processes whose lifetime their own module manages: a container's init, and the reaper.
OWN_LIFETIME = {"nspawn.py", "processes.py"}


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout"
)
def test_bundled_examples_are_what_plugins_d_ships() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "plugins.d"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(Path(name).name for name in tracked) == sorted(BUNDLED_EXAMPLES)


def test_every_child_process_is_reaped() -> None:
    unreaped = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in TESTS.rglob("*.py")
        if path.name not in OWN_LIFETIME
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bPopen\(", line)
    ]
    assert not unreaped, f"start processes with processes.reaped: {unreaped}"


def test_no_test_serves_the_repositorys_plugins_d() -> None:
    served = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in TESTS.rglob("test_*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r'REPO / "plugins\.d"\)', line) and "check" not in line
    ]
    assert not served, f"serve copy_bundled_examples(...) instead: {served}"
