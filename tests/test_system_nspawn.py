"""wasmd under a real systemd: systemd/install.sh run as a user runs it, in a container whose
PID 1 is systemd 252 (tests/nspawn.py boots it once for the module).

Checked there: socket activation on the first connection (Type=notify: active only after
READY=1), `systemctl reload`, `systemctl stop` with calls in flight (none lost, a clean exit),
the watchdog restarting a daemon that stopped answering; `systemd-analyze security` is recorded.
The tests run in file order and share the container, but each one brings the service into the
state it needs first.
"""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from wasmd import SyncClient, WasmdError
from wasmd.protocol import EOF, NEED_DATA, Connection, Notification, Response

from .nspawn import Container, NspawnUnavailable, booted, wait_until
from .toolchains import REPO, toolchain_missing
from .wat import WORK
from .wat_abi import MSGPACK_GUEST
from .wat_extism import extism_guest
from .wat_state import COUNTER

# Boots a container with a real systemd, once for the module: the system tier.
pytestmark = pytest.mark.system

SERVICE = "wasmd.service"
SOCKET = "/run/wasmd/wasmd.sock"
# install.sh's default prefix: the units are installed verbatim, ExecStart included.
PREFIX = "/opt/wasmd"
# For the stop test: WORK, a counting loop; 40 M steps take ~30 ms here, so 50 calls on two
# instances keep the daemon busy for most of a second. The timeout is generous because a
# deadline counts the time spent queued, and the point is that none of them fails.
BUSY_TOML = "[plugin]\ninstances = 2\nqueue = 100\ntimeout_ms = 60000\n"
BUSY_STEPS = 40_000_000
IN_FLIGHT = 50


@dataclass
class Installed:
    """The container with wasmd installed and wasmd.socket listening."""

    container: Container
    socket: Path  # the container's socket, reached from the host through its root

    def report(self) -> str:
        """The unit's status and the recent journal, for failure messages."""
        status = self.container.systemctl("status", "--no-pager", "--lines=0", SERVICE, check=False)
        # The whole journal's tail, not just --unit's: why a start failed before the exec
        # (217/USER, 203/EXEC...) is logged by the forked "(wasmd)", which --unit misses.
        journal = self.container.run("journalctl", "--quiet", "--lines=40", check=False).stdout
        return f"\n--- systemctl status {SERVICE}:\n{status}\n--- the journal:\n{journal}"

    def call(self, method: str, *params: Any) -> Any:
        """One call through the socket; a failure to get an answer says what systemd saw."""
        try:
            with SyncClient(self.socket, timeout=30) as client:
                return client.call(method, *params)
        except (OSError, WasmdError) as exc:
            raise AssertionError(f"{method}: {exc!r}{self.report()}") from None

    def show(self, *properties: str) -> dict[str, str]:
        return self.container.show(SERVICE, *properties)

    def wait_active(self) -> dict[str, str]:
        def probe() -> dict[str, str] | None:
            state = self.show("ActiveState", "SubState", "MainPID", "NRestarts")
            return state if state["ActiveState"] == "active" else None

        return wait_until(f"{SERVICE} to be active", probe, timeout=20)

    def activate(self) -> dict[str, str]:
        """Start the service the way clients do: by connecting.

        A failure in an earlier test may have left the units failed (start rate limit hit,
        socket closed): each test starts from a listening socket, reporting its own failure.
        """
        self.container.systemctl("reset-failed", SERVICE, "wasmd.socket")
        self.container.systemctl("start", "wasmd.socket")
        assert self.call("wasmd.ping") == "pong"
        return self.wait_active()


def _check_python() -> None:
    """install.sh makes the service's virtualenv with Debian's python3 (its default PYTHON):
    the unit's ProtectHome=yes hides an interpreter under /root (pyenv) with 203/EXEC."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("install.sh needs /usr/bin/python3 (Debian's python3) in the container")


# What of the checkout install.sh needs: the package and its metadata, the units, the docs.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "__pycache__", "build", ".*_cache", ".hypothesis", "examples"
)


def _install(container: Container) -> None:
    """Run systemd/install.sh itself in the container, from a copy of this checkout; pip
    there installs wasmd and its dependencies from PyPI into PREFIX, as for a user."""
    run = container.run
    shutil.copytree(REPO, container.path("/srv/wasmd"), ignore=_NOT_COPIED)
    # /usr is the host's, read-only here: the sysusers file goes to /etc instead, which
    # systemd-sysusers reads first (install.sh's SYSUSERS_DIR).
    installed = run(
        "env",
        "SYSUSERS_DIR=/etc/sysusers.d",
        "sh",
        "/srv/wasmd/systemd/install.sh",
        PREFIX,
        timeout=600,
    )
    assert "wasmd installed in /opt/wasmd" in installed.stdout, installed.stdout
    run(f"{PREFIX}/bin/wasmd", "--help")

    plugins = container.path("/etc/wasmd/plugins.d")  # made by install.sh, 0755
    for name in ("math.wat", "math.toml", "counter.wat"):
        shutil.copy(REPO / "plugins.d" / name, plugins / name)
    (plugins / "busy.wat").write_text(WORK)
    (plugins / "busy.toml").write_text(BUSY_TOML)
    for path in plugins.iterdir():
        path.chmod(0o644)  # the service's dynamic user reads them
    # install.sh enabled and started wasmd.socket: the service waits for a connection.


@pytest.fixture(scope="module")
def wasmd_unit() -> Iterator[Installed]:
    if shutil.which("systemd-nspawn") is None:
        toolchain_missing("systemd-nspawn (Debian's systemd-container) is not installed")
    _check_python()
    try:
        # Nothing of the host's but /usr: install.sh installs wasmd from a copy of the checkout.
        with booted([]) as container:
            _install(container)
            yield Installed(container, container.path(SOCKET))
    except NspawnUnavailable as exc:
        pytest.skip(f"cannot boot systemd in a container here: {exc}")


def test_socket_activation_on_first_connect(wasmd_unit: Installed) -> None:
    container = wasmd_unit.container
    assert container.systemctl("is-active", "wasmd.socket") == "active"
    group = container.run("getent", "group", "wasmd").stdout.split(":")
    listening = wasmd_unit.socket.stat()
    assert (listening.st_mode & 0o777, listening.st_gid) == (0o660, int(group[2]))
    assert wasmd_unit.show("ActiveState")["ActiveState"] == "inactive"

    assert wasmd_unit.call("math.add", 2, 3) == 5

    state = wasmd_unit.wait_active()
    details = wasmd_unit.show(
        "Type",
        "UID",
        "StatusText",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
    )
    assert details["Type"] == "notify"
    # Only READY=1 makes a notify service active: the daemon's start-up (imports, compiling
    # the plug-ins) lies between the exec and entering `active`. Type=simple would have
    # entered it at the exec.
    started = int(details["ExecMainStartTimestampMonotonic"])
    assert int(details["ActiveEnterTimestampMonotonic"]) - started > 10_000  # µs
    # From the daemon's STATUS=: math, counter and busy loaded.
    assert details["StatusText"].startswith("3 plug-ins (0 failed)"), details
    assert details["UID"] not in ("", "0", "[not set]"), details  # DynamicUser=yes
    assert state["NRestarts"] == "0"


def test_install_sh_installed_the_docs_the_unit_names(wasmd_unit: Installed) -> None:
    documentation = wasmd_unit.show("Documentation")["Documentation"].split()
    assert documentation == [
        f"file:{PREFIX}/share/doc/wasmd/{name}"
        for name in ("README.md", "operations.md", "DESIGN.md")
    ]
    for uri in documentation:
        assert wasmd_unit.container.path(uri.removeprefix("file:")).is_file(), uri


def test_reload_rescans_the_plugin_directories(wasmd_unit: Installed) -> None:
    container = wasmd_unit.container
    before = wasmd_unit.activate()
    cursor = container.journal_cursor()
    # Written under a hidden name and renamed, so the watcher never sees half a file.
    plugins = container.path("/etc/wasmd/plugins.d")
    shutil.copy(REPO / "plugins.d/math.wat", plugins / ".calc.wat.tmp")
    (plugins / ".calc.wat.tmp").chmod(0o644)
    (plugins / ".calc.wat.tmp").rename(plugins / "calc.wat")

    container.systemctl("reload", SERVICE)

    # The watcher may have loaded calc already; what matters is that the reload reached the
    # daemon and its rescan finished, in this order. Type=notify on 252 does not wait for
    # the rescan (notify-reload does, on >= 253), so the journal is where to see it.
    container.wait_for_journal(
        SERVICE, cursor, "received SIGHUP", "daemon.reloading", "wasmd: rescan:"
    )
    assert wasmd_unit.call("calc.add", 40, 2) == 42
    # RELOADING=1 was followed by READY=1: systemd is not left in `reloading`.
    after = wasmd_unit.wait_active()
    assert after["MainPID"] == before["MainPID"]  # a reload, not a restart


def test_stop_lets_calls_in_flight_finish(wasmd_unit: Installed) -> None:
    container = wasmd_unit.container
    wasmd_unit.activate()
    cursor = container.journal_cursor()
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(30)
    client.connect(str(wasmd_unit.socket))
    protocol = Connection()

    def next_message() -> Response | Notification | None:
        """The next response or notification; None at the end of the stream."""
        while True:
            event = protocol.next_event()
            if event is NEED_DATA:
                protocol.receive_data(client.recv(65536))
            elif event is EOF:
                return None
            elif isinstance(event, Response | Notification):
                return event

    with client:
        # Subscribed on the same connection, the daemon.stopping event lands in the stream
        # between the responses sent before the stop and those sent after it.
        client.sendall(msgpack.packb([0, IN_FLIGHT, "wasmd.subscribe", [["daemon."]]]))
        client.sendall(
            b"".join(msgpack.packb([0, i, "busy.work", [BUSY_STEPS]]) for i in range(IN_FLIGHT))
        )
        stream: list[Response | Notification] = []
        while not any(isinstance(m, Response) and m.msgid < IN_FLIGHT for m in stream):
            message = next_message()
            assert message is not None, wasmd_unit.report()
            stream.append(message)

        # Calls are running: stop the service under them. systemctl returns once the daemon
        # has exited; what it answered meanwhile waits in the socket's buffer.
        container.systemctl("stop", SERVICE)

        while (message := next_message()) is not None:
            stream.append(message)

    responses = [m for m in stream if isinstance(m, Response) and m.msgid < IN_FLIGHT]
    assert sorted(r.msgid for r in responses) == list(range(IN_FLIGHT))
    failed = [r for r in responses if r.error is not None or r.result != BUSY_STEPS]
    assert not failed, failed[:3]
    events = [m.params[0]["type"] for m in stream if isinstance(m, Notification) and m.params]
    assert "daemon.stopping" in events, events
    stopping = next(
        i
        for i, m in enumerate(stream)
        if isinstance(m, Notification) and m.params and m.params[0]["type"] == "daemon.stopping"
    )
    # Proof that the stop overtook calls: some answers came after the daemon began to stop.
    assert any(isinstance(m, Response) for m in stream[stopping + 1 :])

    result = wasmd_unit.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert result == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # CLD_EXITED: it exited, nothing killed it
        "ExecMainStatus": "0",
    }, f"{result}{wasmd_unit.report()}"
    container.wait_for_journal(SERVICE, cursor, "received SIGTERM", "calls in flight finish first")
    # The socket stays: the next client starts the service again.
    assert container.systemctl("is-active", "wasmd.socket") == "active"


def test_watchdog_restarts_a_daemon_that_stopped_answering(wasmd_unit: Installed) -> None:
    container = wasmd_unit.container
    # WatchdogSec=20s would make this test wait that long; a drop-in in the container only
    # shortens it. A restart picks it up (WATCHDOG_USEC is given at start).
    drop_in = container.path(f"/etc/systemd/system/{SERVICE}.d/test-watchdog.conf")
    drop_in.write_text("[Service]\nWatchdogSec=2s\n")
    try:
        container.systemctl("daemon-reload")
        container.systemctl("stop", SERVICE)
        before = wasmd_unit.activate()
        assert wasmd_unit.show("WatchdogUSec")["WatchdogUSec"] == "2s"
        cursor = container.journal_cursor()

        # A stopped process is a hung event loop as far as systemd can tell: no WATCHDOG=1.
        container.systemctl("kill", "--signal=SIGSTOP", SERVICE)

        def restarted() -> dict[str, str] | None:
            state = wasmd_unit.show("ActiveState", "MainPID", "NRestarts")
            new = state["MainPID"] not in ("0", before["MainPID"])
            more = int(state["NRestarts"]) > int(before["NRestarts"])
            return state if new and more and state["ActiveState"] == "active" else None

        # 2 s of silence, SIGABRT, RestartSec=1s, start-up: ~4 s here.
        wait_until("the watchdog to restart the daemon", restarted, timeout=30)
        container.wait_for_journal(SERVICE, cursor, "Watchdog timeout")
        assert wasmd_unit.call("math.add", 20, 22) == 42
    finally:
        drop_in.unlink()
        container.systemctl("daemon-reload")


@contextmanager
def drop_in(wasmd_unit: Installed, name: str, text: str) -> Iterator[None]:
    """The service with a drop-in ``name``, restarted to take it; without it again after."""
    container = wasmd_unit.container
    path = container.path(f"/etc/systemd/system/{SERVICE}.d/{name}")
    path.write_text(text)
    try:
        container.systemctl("daemon-reload")
        container.systemctl("stop", SERVICE)
        wasmd_unit.activate()
        yield
    finally:
        path.unlink()
        container.systemctl("daemon-reload")
        container.systemctl("stop", SERVICE)


def add_plugins(wasmd_unit: Installed, files: dict[str, str]) -> None:
    """Plug-ins the next start of the service loads (the service is stopped first)."""
    wasmd_unit.container.systemctl("stop", SERVICE)
    plugins = wasmd_unit.container.path("/etc/wasmd/plugins.d")
    for name, text in files.items():
        (plugins / name).write_text(text)
        (plugins / name).chmod(0o644)


@pytest.fixture
def local_http() -> Iterator[str]:
    """An HTTP server on the host's loopback, which the container shares (no --private-network):
    what the service reaches only with systemd/network.conf."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"served to the unit"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Polled every 10 ms, so that shutdown() returns at once.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_http_request_needs_the_network_drop_in(wasmd_unit: Installed, local_http: str) -> None:
    """The unit as shipped gives the daemon no network: an Extism plug-in's http_request to an
    allowed host fails. With systemd/network.conf it reaches the server."""
    manifest = '[plugin]\nabi = "extism"\n[extism]\nallowed_hosts = ["127.0.0.1"]\n'
    add_plugins(wasmd_unit, {"fetcher.wat": extism_guest(local_http), "fetcher.toml": manifest})
    wasmd_unit.activate()
    with pytest.raises(WasmdError) as refused, SyncClient(wasmd_unit.socket, timeout=30) as c:
        c.call("fetcher.fetch")
    # RestrictAddressFamilies=AF_UNIX: the socket cannot even be made (EAFNOSUPPORT).
    assert "Address family not supported" in refused.value.message
    network = (REPO / "systemd" / "network.conf").read_text()
    with drop_in(wasmd_unit, "network.conf", network):
        assert wasmd_unit.call("fetcher.fetch") == b"served to the unit"


def test_load_credential_reaches_a_plugin_and_nothing_else(wasmd_unit: Installed) -> None:
    """A real LoadCredential= line: systemd copies the file into the service's
    $CREDENTIALS_DIRECTORY, the manifest names it, the plug-in reads it; describe does not."""
    secret = "from-load-credential"
    source = wasmd_unit.container.path("/etc/wasmd/greeting.secret")
    source.write_text(secret)
    source.chmod(0o600)  # root's alone: the service's dynamic user reads systemd's copy
    manifest = '[config]\ngreeting = { credential = "greeting" }\n'
    add_plugins(wasmd_unit, {"greeter.wat": MSGPACK_GUEST, "greeter.toml": manifest})
    line = "[Service]\nLoadCredential=greeting:/etc/wasmd/greeting.secret\n"
    with drop_in(wasmd_unit, "credential.conf", line):
        assert wasmd_unit.call("greeter.greeting") == secret
        described = wasmd_unit.call("wasmd.describe", "greeter")
    assert described["manifest"]["config"]["greeting"] == {"credential": "greeting"}
    assert secret not in repr(described)


def test_security_exposure_is_recorded(
    wasmd_unit: Installed, capsys: pytest.CaptureFixture[str]
) -> None:
    analysis = wasmd_unit.container.run("systemd-analyze", "security", "--no-pager", SERVICE).stdout
    print(analysis)  # the whole table, shown with -rP or on failure
    overall = re.search(r"Overall exposure level for \S+: ([\d.]+ \w+)", analysis)
    assert overall is not None, analysis
    with capsys.disabled():  # the score itself goes to the terminal in every run
        print(f"\n{SERVICE} exposure under systemd in the container: {overall[1]}")


def test_state_lives_in_the_units_state_directory_across_restarts(wasmd_unit: Installed) -> None:
    """StateDirectory=wasmd, under DynamicUser: $STATE_DIRECTORY is the default state_dir, a
    plug-in's count survives `systemctl restart`, and the folder and file are the service's,
    0700 and 0600."""
    container = wasmd_unit.container
    wasmd_unit.activate()
    plugins = container.path("/etc/wasmd/plugins.d")
    (plugins / ".tally.wat.tmp").write_text(COUNTER)
    (plugins / ".tally.wat.tmp").chmod(0o644)
    (plugins / ".tally.wat.tmp").rename(plugins / "tally.wat")
    try:
        container.systemctl("reload", SERVICE)

        def loaded() -> bool | None:
            listed = {p["name"]: p for p in wasmd_unit.call("wasmd.list")}
            tally = listed.get("tally")
            assert tally is None or tally["state"] != "failed", tally.get("error")
            return True if tally is not None else None

        wait_until("tally to load", loaded, timeout=20)
        assert [wasmd_unit.call("tally.incr") for _ in range(2)] == [1, 2]
        container.systemctl("restart", SERVICE)
        wasmd_unit.wait_active()
        assert wasmd_unit.call("tally.incr") == 3
        folder = container.path("/var/lib/private/wasmd")
        database = (folder / "tally.sqlite3").stat()
        uid = int(wasmd_unit.show("UID")["UID"])
        assert (folder.stat().st_mode & 0o777, database.st_mode & 0o777) == (0o700, 0o600)
        assert database.st_uid == uid
    finally:
        (plugins / "tally.wat").unlink()
