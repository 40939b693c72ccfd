"""Boot a real systemd as PID 1 of a throw-away `systemd-nspawn` container, and drive it.

What boots systemd 252 on these machines: a root folder with empty top-level folders, `bin lib
lib64 sbin` pointing into `usr/`, a copy of the host's /etc, an empty machine-id, os-release;
the host's /usr and whatever else the caller needs bound read-only; `--register=no
--keep-unit` because the host's PID 1 is not systemd. The container's init is the `systemd`
child of `systemd-nspawn`; commands run in it through `nsenter`. Anything that keeps it from
booting raises `NspawnUnavailable` with the reason, for the test to turn into a visible skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Commands in the container get a plain environment, not the test runner's (its PATH points
# into /root, its TERM would make systemctl colour and page its output).
_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_PAGER": "",
}
# Host services enabled in the copied /etc (a database here) have nothing to do with the test
# and only slow the boot down or fail in a container; so do a getty and time sync. D-Bus is not
# needed (systemctl talks to PID 1 over its private socket) and its start hung for the whole
# 90 s job timeout on this machine, taking systemd-logind with it.
_MASKED = (
    "getty@tty1.service",
    "console-getty.service",
    "systemd-timesyncd.service",
    "dbus.service",
    "dbus.socket",
    "systemd-logind.service",
)


class NspawnUnavailable(Exception):
    """This machine cannot boot the container; the message says why."""


def wait_until(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Poll ``probe`` until it returns something other than None; fail after ``timeout`` s.

    The short pause between probes is a polling interval, not a guess at how long anything
    takes: the deadline is the only bound, and a probe that succeeds at once returns at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Container:
    """A booted container: run commands in it, query its systemd, reach its files."""

    def __init__(self, root: Path, nspawn: subprocess.Popen[bytes], init_pid: int) -> None:
        self.root = root
        self.nspawn = nspawn
        self.init_pid = init_pid
        # A pidfd names the init process itself, so a late SIGKILL cannot hit a reused pid.
        self._init_fd = os.pidfd_open(init_pid)

    def path(self, inside: str) -> Path:
        """The host's path to a file in the container, through its init's root directory.

        Unlike ``self.root`` this sees the container's mounts too (/run, the bound folders).
        """
        return Path(f"/proc/{self.init_pid}/root") / inside.lstrip("/")

    def run(
        self, *command: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in all the container's namespaces; stdout and stderr captured."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-a", *command],
            env=_ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def systemctl(self, *args: str, check: bool = True) -> str:
        return self.run("systemctl", *args, check=check).stdout.strip()

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show -p ...` as a dict."""
        output = self.systemctl("show", f"--property={','.join(properties)}", unit)
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def journal_cursor(self) -> str:
        """A cursor at the end of the journal now: later reads see only what comes after."""
        output = self.run("journalctl", "--quiet", "--lines=0", "--show-cursor").stdout
        return output.strip().removeprefix("-- cursor: ")

    def journal(self, unit: str, after: str) -> str:
        """The unit's messages after the cursor ``after``."""
        return self.run(
            "journalctl", "--quiet", "--output=cat", f"--unit={unit}", f"--after-cursor={after}"
        ).stdout

    def wait_for_journal(self, unit: str, after: str, *texts: str, timeout: float = 20) -> str:
        """Wait until ``texts`` appear, in this order, in the unit's messages after ``after``."""

        def probe() -> str | None:
            messages = self.journal(unit, after)
            position = 0
            for text in texts:
                found = messages.find(text, position)
                if found < 0:
                    return None
                position = found + len(text)
            return messages

        return wait_until(f"{texts} in the journal of {unit}", probe, timeout)

    def shutdown(self, timeout: float = 15) -> None:
        """Halt the container; SIGKILL its init if it takes longer than ``timeout`` s."""
        try:
            if self.nspawn.poll() is None:
                # nspawn forwards SIGTERM to init as SIGRTMIN+3: an orderly halt.
                self.nspawn.terminate()
                try:
                    self.nspawn.wait(timeout)
                except subprocess.TimeoutExpired:
                    # Halting can hang; killing the init ends the container and nspawn with it.
                    with suppress(ProcessLookupError):
                        signal.pidfd_send_signal(self._init_fd, signal.SIGKILL)
                    try:
                        self.nspawn.wait(timeout)
                    except subprocess.TimeoutExpired:
                        self.nspawn.kill()
                        self.nspawn.wait(timeout)
        finally:
            os.close(self._init_fd)


def _make_root(root: Path) -> None:
    # mkdtemp made it 0700: services running as other users (DynamicUser=) could not even
    # change into / (200/CHDIR) or reach the journal's socket.
    root.chmod(0o755)
    for name in ("usr", "etc", "var", "run", "tmp", "proc", "sys", "dev", "root", "home", "opt"):
        (root / name).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path("/", name).is_symlink():  # merged /usr, as Debian 12 has it
            (root / name).symlink_to(f"usr/{name}")
    subprocess.run(["cp", "-a", "/etc/.", str(root / "etc")], check=True)
    (root / "etc/machine-id").write_text("")  # systemd fills it in at boot
    (root / "etc/fstab").write_text("")
    # nspawn looks for os-release in the folder itself, before /usr is bound over it.
    (root / "usr/lib").mkdir(parents=True)
    shutil.copy2("/usr/lib/os-release", root / "usr/lib/os-release")
    units = root / "etc/systemd/system"
    for wants in units.glob("*.wants"):
        shutil.rmtree(wants)
    for unit in _MASKED:
        target = units / unit
        target.unlink(missing_ok=True)
        target.symlink_to("/dev/null")


def _find_init(nspawn: subprocess.Popen[bytes], console: Path, timeout: float) -> int:
    """The pid of the container's init: the child of nspawn named `systemd`."""
    children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children")

    def probe() -> int | None:
        if nspawn.poll() is not None:
            raise NspawnUnavailable(
                f"systemd-nspawn exited {nspawn.returncode}:\n{console.read_text()[-3000:]}"
            )
        with suppress(OSError):
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
        return None

    return wait_until("the container's init", probe, timeout)


def _wait_booted(container: Container, console: Path, timeout: float) -> None:
    """Until `systemctl is-system-running` says running or degraded.

    `--wait` blocks while systemd is starting; before its bus socket exists systemctl fails at
    once, and is simply asked again.
    """

    deadline = time.monotonic() + timeout

    def probe() -> str | None:
        if container.nspawn.poll() is not None:
            raise NspawnUnavailable(
                f"the container stopped while booting:\n{console.read_text()[-3000:]}"
            )
        left = max(deadline - time.monotonic(), 1)
        state = container.run(
            "systemctl", "is-system-running", "--wait", check=False, timeout=left
        ).stdout.strip()
        return state if state in ("running", "degraded") else None

    try:
        wait_until("systemd to finish booting", probe, timeout)
    except (TimeoutError, subprocess.TimeoutExpired) as exc:
        raise NspawnUnavailable(f"{exc}:\n{console.read_text()[-3000:]}") from None


def _unmounted(root: Path) -> bool:
    """Whether nothing is mounted at or under ``root`` in this mount namespace."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    prefix = str(root)
    return not any(
        line.split()[4] == prefix or line.split()[4].startswith(prefix + "/") for line in mounts
    )


@contextmanager
def booted(read_only: Sequence[Path], timeout: float = 60) -> Iterator[Container]:
    """Boot a container with the host's /usr and ``read_only`` folders bound at their paths.

    Always tears it down: halt, SIGKILL the init if that hangs, remove the root folder.
    """
    if shutil.which("systemd-nspawn") is None:
        raise NspawnUnavailable("systemd-nspawn is not installed")
    if os.geteuid() != 0:
        raise NspawnUnavailable("systemd-nspawn needs root")
    root = Path(tempfile.mkdtemp(prefix="wasmd-nspawn-", dir="/var/tmp"))
    console = root.with_name(root.name + ".console")
    try:
        _make_root(root)
        binds = [f"--bind-ro={path}" for path in ("/usr", *map(str, read_only))]
        with console.open("wb") as log:
            nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    f"--directory={root}",
                    *binds,
                    "--register=no",  # there is no systemd-machined on the host
                    "--keep-unit",  # nor a host systemd to make a scope unit
                    # nspawn copies the console to the log file; with `passive` nobody reads
                    # it and systemd blocks once the pty's buffer is full of boot status.
                    "--console=read-only",
                    "--boot",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        container: Container | None = None
        try:
            container = Container(root, nspawn, _find_init(nspawn, console, timeout))
            _wait_booted(container, console, timeout)
            yield container
        finally:
            if container is not None:
                container.shutdown()
            elif nspawn.poll() is None:
                nspawn.kill()
                nspawn.wait()
    finally:
        # The bound folders are mounted in the container's mount namespace only, which is
        # gone with it; checking costs nothing and a bound /usr must never be deleted.
        if _unmounted(root):
            shutil.rmtree(root, ignore_errors=True)
        console.unlink(missing_ok=True)
