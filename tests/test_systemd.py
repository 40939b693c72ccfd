"""systemd's side of the daemon, as systemd would drive it: notify messages on a real datagram
socket, socket activation through `systemd-socket-activate`, the watchdog, graceful SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from wasmd import SyncClient
from wasmd.protocol import NEED_DATA, Connection, Response

from .conftest import serve_command
from .processes import reaped
from .wat import ARITH, COUNTER, WORK


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(20)  # a bound on waiting, not a nap: messages arrive at once

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    def until(self, key: str) -> dict[str, str]:
        while True:
            message = self.next()
            if key in message:
                return message


@pytest.fixture
def notify_socket(short_tmp: Path) -> Iterator[tuple[NotifySocket, str]]:
    # Abstract, the way systemd passes it ("@" for the leading NUL byte).
    name = f"wasmd-test-{os.getpid()}-{short_tmp.name}"
    listener = NotifySocket("\0" + name)
    yield listener, "@" + name
    listener.sock.close()


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


def test_notify_ready_reloading_watchdog_stopping(
    short_tmp: Path, notify_socket: tuple[NotifySocket, str]
) -> None:
    listener, address = notify_socket
    plugins = write(short_tmp / "plugins.d", {"arith.wat": ARITH})
    sock = short_tmp / "wasmd.sock"
    env = {
        **os.environ,
        "NOTIFY_SOCKET": address,
        "WATCHDOG_USEC": "400000",
        "JOURNAL_STREAM": "8:1234",
    }
    command = serve_command(plugins, "--socket", str(sock), "--no-watch")
    with reaped(command, env=env, stderr=subprocess.PIPE, text=True) as daemon:
        ready = listener.until("READY")
        assert ready["READY"] == "1"
        assert ready["STATUS"].startswith("1 plug-ins (0 failed), 0 calls")
        with SyncClient(sock, timeout=10) as client:  # READY means the socket answers
            assert client.call("arith.add", 1, 2) == 3
        watchdog = listener.until("WATCHDOG")
        assert watchdog["WATCHDOG"] == "1"
        assert "1 calls" in listener.until("WATCHDOG")["STATUS"]

        write(plugins, {"counter.wat": COUNTER})
        daemon.send_signal(signal.SIGHUP)
        reloading = listener.until("RELOADING")
        assert reloading["RELOADING"] == "1"
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert listener.until("READY")["STATUS"].startswith("2 plug-ins")

        daemon.send_signal(signal.SIGTERM)
        assert listener.until("STOPPING")["STOPPING"] == "1"
        assert daemon.wait(timeout=30) == 0
        assert daemon.stderr is not None
        log = daemon.stderr.read()
    # Under journald every line carries its syslog priority.
    lines = [line for line in log.splitlines() if line]
    assert lines
    assert all(line[:3] in ("<6>", "<4>", "<3>", "<7>") for line in lines), lines[:5]
    assert "<6>wasmd.events: daemon.ready" in log


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None,
    reason="systemd-socket-activate is not installed",
)
def test_socket_activation_with_no_socket_path_of_its_own(short_tmp: Path) -> None:
    plugins = write(short_tmp / "plugins.d", {"arith.wat": ARITH})
    sock = short_tmp / "activated.sock"
    # The daemon gets its socket from the activator; its own default path is elsewhere and
    # must stay unused.
    unused = short_tmp / "never.sock"
    command = [
        "systemd-socket-activate",
        "-l",
        str(sock),
        "--fdname=rpc",
        "-E",
        "PYTHONUNBUFFERED=1",
        *serve_command(plugins, "--socket", str(unused)),
    ]
    with reaped(command, stderr=subprocess.PIPE, text=True) as activator:
        assert activator.stderr is not None
        for line in activator.stderr:  # the activator says when it listens
            if "Listening on" in line:
                break
        # The daemon starts only now, on the first connection.
        with SyncClient(sock, timeout=30) as client:
            assert client.call("arith.add", 40, 2) == 42
            assert client.call("wasmd.ping") == "pong"
        assert not unused.exists()
        activator.send_signal(signal.SIGTERM)
        activator.wait(timeout=30)
        log = activator.stderr.read()
    # The ready line names the socket systemd passed (it said "on None").
    assert f"ready: 1 plug-ins (0 failed) on {sock} (passed by systemd);" in log, log


def test_sigterm_during_100_in_flight_calls_loses_none(short_tmp: Path) -> None:
    plugins = write(
        short_tmp / "plugins.d",
        {"slow.wat": WORK, "slow.toml": "[plugin]\ninstances = 2\nqueue = 200\n"},
    )
    sock = short_tmp / "wasmd.sock"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = serve_command(plugins, "--socket", str(sock), "--no-watch")
    with reaped(command, env=env, stderr=subprocess.PIPE, text=True) as daemon:
        assert daemon.stderr is not None
        for line in daemon.stderr:
            if "daemon.ready" in line:
                break
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(sock))
        client.settimeout(30)
        # ~10 ms of guest work per call: 100 calls on 2 instances take about half a second.
        client.sendall(
            b"".join(msgpack.packb([0, i, "slow.work", [3_000_000]]) for i in range(100))
        )
        protocol = Connection()
        responses: list[Response] = []

        def read_one() -> None:
            while True:
                event = protocol.next_event()
                if event is NEED_DATA:
                    protocol.receive_data(client.recv(65536))
                else:
                    assert isinstance(event, Response)
                    responses.append(event)
                    return

        read_one()  # calls are running: now stop the daemon under them
        daemon.send_signal(signal.SIGTERM)
        while len(responses) < 100:
            read_one()
        assert client.recv(1) == b""  # then the daemon closes the connection
        client.close()
        assert daemon.wait(timeout=30) == 0
        rest = daemon.stderr.read()
    assert sorted(r.msgid for r in responses) == list(range(100))
    assert all(r.error is None and r.result == 3_000_000 for r in responses)
    assert "calls in flight finish first" in rest


def test_stopping_a_watching_daemon_sends_no_reload(
    short_tmp: Path, notify_socket: tuple[NotifySocket, str]
) -> None:
    """The watcher's own shutdown must not look like a re-arm (it used to rescan, and tell
    systemd RELOADING=1, after STOPPING=1)."""
    listener, address = notify_socket
    plugins = write(short_tmp / "plugins.d", {"arith.wat": ARITH})
    env = {**os.environ, "NOTIFY_SOCKET": address}
    command = serve_command(plugins, "--socket", str(short_tmp / "wasmd.sock"))
    with reaped(command, env=env, stderr=subprocess.DEVNULL) as daemon:
        listener.until("READY")
        daemon.send_signal(signal.SIGTERM)
        listener.until("STOPPING")
        assert daemon.wait(timeout=30) == 0
    listener.sock.setblocking(False)
    rest = []
    while True:
        try:
            rest.append(listener.next())
        except BlockingIOError:
            break
    assert not any("RELOADING" in message for message in rest), rest
