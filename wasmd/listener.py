"""Claiming the daemon's socket path and listening on it.

Theory of operation: a socket path is a name in a folder, and whoever can write to that folder
can put something else under the name. Before binding, the daemon therefore decides what is
already there, and removes only what is certainly its own leftover:

- nothing: bind;
- a socket file owned by our uid on which ``connect()`` is refused (``ECONNREFUSED``): the
  listener died and the name is stale, so it is removed;
- anything else is refused: a socket that answers (another daemon serves it), a socket owned by
  another uid (not ours to remove), a probe failing otherwise (``EACCES`` means someone listens
  whom we may not reach; it is no proof of death), or a file that is not a socket.

The fallback folder ``/tmp/wasmd-UID`` (config.py) sits in a folder everyone can write to, so
another user may have created it first: it is created 0700 and used only if it is a folder we
own that neither group nor others can write.

Every refusal is a ``SocketPathError`` naming the path and the reason in one line; the CLI
prints it as it is.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

from .config import fallback_socket_folder
from .errors import SocketPathError

# sun_path in Linux's struct sockaddr_un: a longer path cannot be bound at all.
MAX_SOCKET_PATH = 108
# The probe must never hang start-up: a listener with a full backlog answers EAGAIN at once,
# and whatever has not answered within this long counts as alive.
PROBE_TIMEOUT = 1.0


def open_listener(path: Path, mode: int, backlog: int) -> socket.socket:
    """Listen on ``path`` with file mode ``mode``; raises ``SocketPathError`` if it may not."""
    _check_length(path)
    if path.parent == fallback_socket_folder(os.getuid()):
        _prepare_private_folder(path)
    else:
        _prepare_folder(path)
    _claim_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise SocketPathError(path, _reason(exc)) from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _check_length(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        reason = f"the path is {size} bytes long; a Unix socket's may be {MAX_SOCKET_PATH} at most"
        raise SocketPathError(path, reason)


def _prepare_folder(path: Path) -> None:
    """Create the socket's folder if it is missing (DESIGN.md section 8)."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise SocketPathError(path, f"{folder} is not a folder") from exc
    except OSError as exc:
        raise SocketPathError(path, f"cannot create its folder {folder}: {_reason(exc)}") from exc


def _prepare_private_folder(path: Path) -> None:
    """Create the fallback folder 0700, or accept an existing one only if it is private."""
    folder = path.parent
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SocketPathError(path, f"cannot create its folder {folder}: {_reason(exc)}") from exc
    try:
        info = folder.lstat()
    except OSError as exc:
        raise SocketPathError(path, f"cannot inspect its folder {folder}: {_reason(exc)}") from exc
    if not stat.S_ISDIR(info.st_mode):  # lstat: a symbolic link is refused too
        raise SocketPathError(path, f"{folder} is not a folder")
    if info.st_uid != os.geteuid():
        reason = f"its folder {folder} is owned by uid {info.st_uid}, not by us ({os.geteuid()})"
        raise SocketPathError(path, reason)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        reason = f"its folder {folder} is writable by group or others (mode {mode:04o})"
        raise SocketPathError(path, reason)


def _claim_socket_path(path: Path) -> None:
    """Remove a stale socket of ours at ``path``; refuse anything else that is there."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SocketPathError(path, _reason(exc)) from exc
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(path, "something that is not a socket is there")
    if info.st_uid != os.geteuid():
        reason = f"a socket owned by uid {info.st_uid} is there, not ours to replace"
        raise SocketPathError(path, reason)
    if not _refuses_connections(path):
        raise SocketPathError(path, "another daemon is listening on it")
    try:
        path.unlink()  # nobody listens: left over from a daemon that died
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SocketPathError(path, f"cannot remove the stale socket: {_reason(exc)}") from exc


def _refuses_connections(path: Path) -> bool:
    """True only if connecting is refused outright: nobody listens. Any other failure
    (``EACCES``, ``EAGAIN`` from a full backlog, a timeout) may hide a live listener."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # removed meanwhile: nothing left to claim
            return True
        reason = f"a socket is there that we cannot probe: {_reason(exc)}"
        raise SocketPathError(path, reason) from exc
    finally:
        probe.close()
    return False


def _reason(exc: OSError) -> str:
    """An OSError's words without its repr: "Permission denied", not "[Errno 13] ..."."""
    return exc.strerror or str(exc)
