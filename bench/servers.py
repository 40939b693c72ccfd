"""Starting the servers under test as child processes, ready the way systemd knows it.

Each server is spawned with ``$NOTIFY_SOCKET`` pointing at a datagram socket the bench binds,
and is ready when it sends ``READY=1`` there (wasmd does once every plug-in has loaded or
failed and its socket listens). It is stopped with SIGTERM, as ``systemctl stop`` would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .rpc import RpcClient

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
# Variables that would point a daemon at anything but what the bench gives it.
_SCRUBBED = ("WASMD_SOCKET", "WASMD_CONFIG", "WASMD_PLUGIN_PATH", "LISTEN_PID", "LISTEN_FDS")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    socket: Path
    ready_s: float  # from spawn to READY=1
    log: Path
    plugins: Path | None = None  # wasmd's plug-in directory


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def wasmd_command(
    plugins: Path, sock: Path, config: Path, *, cache: bool = False, watch: bool = True
) -> list[str]:
    command = [sys.executable, "-m", "wasmd", "serve", "--plugins", str(plugins)]
    command += ["--socket", str(sock), "--config", str(config), "--no-default-dirs"]
    command += ["--log-level", "warning"]
    if not cache:
        command.append("--no-cache")
    if not watch:
        command.append("--no-watch")
    return command


def write_config(path: Path, cache_dir: Path | None = None, extra: str = "") -> Path:
    """A config file of the bench's own, so that no /etc/wasmd/wasmd.toml leaks in;
    ``extra`` is more TOML (``key = value`` lines)."""
    path.write_text(("" if cache_dir is None else f'cache_dir = "{cache_dir}"\n') + extra)
    return path


# Sets the CPU affinity, then execs the command: every thread the command ever starts
# inherits it (``taskset -c CPU``, without depending on util-linux).
_PIN = (
    "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """``command`` confined to CPU ``cpu`` (the process keeps its pid); as is for None."""
    if cpu is None:
        return list(command)
    return [sys.executable, "-c", _PIN, str(cpu), *command]


def spawn_ready(command: Sequence[str], sock: Path, log: Path) -> Server:
    """Spawn ``command`` and wait for its ``READY=1``; raises if it exits or stays silent."""
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        address = str(Path(tmp) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            notify.settimeout(0.05)
            with log.open("ab") as log_file:
                start = time.perf_counter()
                process = subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=child_env(NOTIFY_SOCKET=address),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            deadline = start + READY_TIMEOUT_S
            while True:
                try:
                    message = notify.recv(4096)
                except TimeoutError:
                    message = b""
                now = time.perf_counter()
                if b"READY=1" in message.split(b"\n"):
                    return Server(process, sock, now - start, log)
                if process.poll() is not None or now > deadline:
                    stop(process)
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{command[:4]} did not become ready:\n{tail}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def check_loaded(sock: Path, expected: int) -> None:
    """Raise unless the daemon on ``sock`` serves ``expected`` plug-ins, none failed."""
    with RpcClient(sock) as client:
        listing = client.call("wasmd.list")
    failed = [f"{p['name']}: {p.get('error')}" for p in listing if p["state"] == "failed"]
    if failed or len(listing) != expected:
        raise RuntimeError(f"{len(listing)} plug-ins, expected {expected}; failed: {failed}")


@contextlib.contextmanager
def running(command: Sequence[str], sock: Path, log: Path) -> Iterator[Server]:
    server = spawn_ready(command, sock, log)
    try:
        yield server
    finally:
        stop(server.process)


@contextlib.contextmanager
def wasmd(
    workdir: Path,
    plugins: Mapping[str, str | bytes],
    name: str = "wasmd",
    *,
    cpu: int | None = None,
    config: str = "",
) -> Iterator[Server]:
    """A daemon serving ``plugins`` (file name -> WAT text, TOML text, or wasm bytes), on
    CPU ``cpu`` only if given, with ``config`` (TOML lines) in its config file."""
    folder = workdir / f"{name}-plugins"
    folder.mkdir()
    for filename, content in plugins.items():
        path = folder / filename
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    sock = workdir / f"{name}.sock"
    config_file = write_config(workdir / f"{name}.toml", extra=config)
    modules = [f for f in plugins if f.endswith((".wat", ".wasm"))]
    command = pinned(wasmd_command(folder, sock, config_file), cpu)
    with running(command, sock, workdir / f"{name}.log") as server:
        server.plugins = folder
        check_loaded(sock, len(modules))
        yield server


@contextlib.contextmanager
def echo_server(
    workdir: Path, name: str = "floor", *, batched: bool = True, cpu: int | None = None
) -> Iterator[Server]:
    sock = workdir / f"{name}.sock"
    command = [sys.executable, "-m", "bench.echo_server", str(sock)]
    if not batched:
        command.insert(3, "--unbatched")
    with running(pinned(command, cpu), sock, workdir / f"{name}.log") as server:
        yield server
