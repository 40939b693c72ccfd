"""Running Python as another uid (with setpriv), from wherever the checkout happens to be.

The checkout, its venv and the venv's site-packages often sit under a folder that only its
owner may enter (every ``mktemp -d``, ``/root``, a home folder), so another uid can neither
import wasmd nor msgpack from there, and may not even be able to run the venv's interpreter.
``run_python_as`` therefore runs from a fresh world-readable folder holding a copy of msgpack
and ``peer_client.py`` (a client that needs nothing else), with the first interpreter that the
other uid can actually run. If it can run none, the test is skipped saying so: where the
clone lives must never fail a test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest

SETPRIV = shutil.which("setpriv")
PEER_CLIENT = Path(__file__).with_name("peer_client.py")

needs_root_and_setpriv = pytest.mark.skipif(
    os.getuid() != 0 or SETPRIV is None, reason="needs root and setpriv"
)


async def run_python_as(
    uid: int, *args: str, groups: Sequence[int] = ()
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python ARGS`` as ``uid`` (and gid ``uid``), with ``groups`` as its only
    supplementary groups. It starts in a folder it can read, which is also on its
    ``sys.path``: ``import msgpack`` and ``peer_client.py`` work there. Not checked: the
    exit status is the caller's to judge."""
    with _readable_folder() as folder:
        python = await _interpreter_for(uid, folder)
        command = [*_setpriv(uid, groups), python, "-s", *args]
        return await anyio.run_process(command, check=False, cwd=folder, env=_env(folder))


async def call_as(
    uid: int, socket_path: Path, calls: Sequence[tuple[str, Sequence[Any]]], **kwargs: Any
) -> list[dict[str, Any]]:
    """Make ``calls`` ((method, params), on one connection) as ``uid``; their outcomes as
    ``peer_client.py`` prints them: ``{"result": ...}`` or ``{"error": [code, message]}``."""
    wire_calls = json.dumps([[method, list(params)] for method, params in calls])
    result = await run_python_as(uid, "peer_client.py", str(socket_path), wire_calls, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"the client as uid {uid} failed:\n{result.stderr.decode()}")
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def _setpriv(uid: int, groups: Sequence[int]) -> list[str]:
    assert SETPRIV is not None, "mark the test with needs_root_and_setpriv"
    group_flag = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return [SETPRIV, f"--reuid={uid}", f"--regid={uid}", group_flag]


def _env(folder: Path) -> dict[str, str]:
    # Nothing of the test run's own Python set-up (venv, PYTHONHOME) leaks into the child.
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}


@contextmanager
def _readable_folder() -> Iterator[Path]:
    """A temporary folder everyone may read, holding msgpack and peer_client.py."""
    with tempfile.TemporaryDirectory(prefix="wasmd-peer-") as name:
        folder = Path(name)
        package = Path(msgpack.__file__).parent
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(package, folder / "msgpack", ignore=ignore)
        shutil.copy(PEER_CLIENT, folder)
        for path in (folder, *folder.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder


_interpreters: dict[int, str] = {}


async def _interpreter_for(uid: int, folder: Path) -> str:
    """The first Python that ``uid`` can run and import msgpack with (found once per uid);
    else a skip that says why."""
    if uid in _interpreters:
        return _interpreters[uid]
    candidates = dict.fromkeys(
        [sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3"]
    )
    failures = []
    for python in candidates:
        probe = [*_setpriv(uid, ()), python, "-s", "-c", "import msgpack, socket"]
        result = await anyio.run_process(probe, check=False, cwd=folder, env=_env(folder))
        if result.returncode == 0:
            _interpreters[uid] = python
            return python
        last_line = (result.stderr.decode().strip().splitlines() or ["no output"])[-1]
        failures.append(f"{python}: {last_line}")
    pytest.skip(
        f"no Python that uid {uid} may run: the checkout's is out of its reach "
        f"(under a folder only its owner may enter?), and so is every other one tried "
        f"({'; '.join(failures)})"
    )


_wasmd_readers: dict[int, str | None] = {}


def require_wasmd_as(uid: int) -> None:
    """Skip unless ``uid`` can run this checkout's wasmd (``wasmd serve`` as that uid needs
    the venv and the checkout, not just msgpack: a copy would be the whole runtime)."""
    if uid not in _wasmd_readers:
        probe = [*_setpriv(uid, ()), sys.executable, "-c", "import wasmd.daemon"]
        result = subprocess.run(probe, check=False, capture_output=True)
        last = (result.stderr.decode().strip().splitlines() or ["no output"])[-1]
        _wasmd_readers[uid] = None if result.returncode == 0 else last
    reason = _wasmd_readers[uid]
    if reason is not None:
        pytest.skip(
            f"uid {uid} cannot run this checkout's wasmd (is it under a folder only its owner "
            f"may enter?): {reason}"
        )
