"""systemd integration without libsystemd: sd_notify, socket activation, journald priorities.

- ``Notifier`` speaks the notify protocol: datagrams of ``KEY=VALUE`` lines to
  ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``).
- ``watchdog_interval`` reads ``$WATCHDOG_USEC`` (for this process only, per ``$WATCHDOG_PID``);
  the daemon pings at half of it from the event loop, so a hung loop misses its pings and
  systemd restarts it.
- ``activated_socket`` takes a listening socket passed by the service manager
  (``$LISTEN_PID``, ``$LISTEN_FDS``, ``$LISTEN_FDNAMES``; fds start at 3), preferring the one
  named ``rpc``, and removes those variables so that nothing started later inherits them.
- ``JournalFormatter`` prefixes each log line with ``<N>``, its syslog priority, which
  journald reads from a stream when ``$JOURNAL_STREAM`` is set.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, MutableMapping

SD_LISTEN_FDS_START = 3


class Notifier:
    """Sends sd_notify messages; every failure is logged, never raised (systemd is optional)."""

    def __init__(self, address: str) -> None:
        # An abstract socket's name starts with a NUL byte; systemd writes it with "@".
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier | None:
        address = environ.get("NOTIFY_SOCKET")
        return cls(address) if address else None

    def notify(self, **fields: str | int) -> None:
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:
            logging.getLogger("wasmd.systemd").warning("sd_notify %r failed: %s", message, exc)

    def ready(self, status: str) -> None:
        self.notify(ready=1, status=status)

    def reloading(self) -> None:
        # systemd >= 253 (Type=notify-reload) matches RELOADING=1 by its timestamp.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify(reloading=1, monotonic_usec=usec)

    def close(self) -> None:
        self._sock.close()


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between watchdog pings (half of WATCHDOG_USEC), or None if not asked for."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec), 1) / 2 / 1_000_000
    except ValueError:
        return None


def activated_socket(environ: MutableMapping[str, str]) -> socket.socket | None:
    """The listening socket systemd passed us, if any (and forget the variables)."""
    pid, count = environ.get("LISTEN_PID"), environ.get("LISTEN_FDS")
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(key, None)
    if not pid or not count or pid != str(os.getpid()):
        return None
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)))
    chosen = fds[names.index("rpc")] if "rpc" in names[: len(fds)] else fds[0]
    for fd in fds:
        if fd != chosen:
            os.close(fd)
    os.set_inheritable(chosen, False)
    return socket.socket(fileno=chosen)


_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """``<priority>name: message`` lines; journald adds the time and the unit."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITIES.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())
