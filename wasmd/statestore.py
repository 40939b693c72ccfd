"""Durable per-plug-in key-value state: one SQLite database per plug-in name (issue 26).

Theory of operation. ``StateStores`` owns the state directory (config ``state_dir``) and
opens one ``Namespace`` per plug-in name on first use: the file ``NAME.sqlite3`` there,
in WAL mode with ``locking_mode=EXCLUSIVE`` (this daemon is its only user: a second process
opening it, another daemon on the same folder, finds it locked and that plug-in fails to
load, precisely). A namespace outlives versions: reloads share it, and removing the plug-in
leaves it on disk until an operator clears it.

Atomic calls (DESIGN.md section 11). A call's first ``kv_*`` import takes the namespace's
lock (``Namespace.acquire``) and opens a SQLite transaction; the lock is held until the
call ends, when the transaction commits (the call answered a result) or rolls back (an
error, a trap, a timeout, a cancellation). So every call that touches state runs alone on
that state, in the order the lock was taken: strict two-phase locking with one lock,
serializable. A reader sees what the calls before it committed, and its own writes. Calls
that touch no state do not take the lock and run side by side. The commit happens before
the answer is sent; with ``synchronous=FULL`` (the default, ``state_sync``) it is on disk
then, and survives a power loss; ``normal`` survives ``kill -9`` of the daemon but not of
the machine.

Nothing here imports wasmtime: the guest imports are ``wasmd.runtime.kv``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .errors import ErrorCode, WasmdError
from .manifest import StatePolicy
from .tomlcheck import MiB

# Keys and values are bytes. A key is at most MAX_KEY bytes, a value at most MAX_VALUE
# (so a length always fits the i32 the imports answer, with room to spare).
MAX_KEY = 1024
MAX_VALUE = 1 * MiB
SYNC_MODES = ("full", "normal")
SUFFIX = ".sqlite3"
# How long opening waits for another process's lock before reporting it.
OPEN_BUSY_TIMEOUT_S = 0.2
# How long an operator's request (list, export, import, clear) waits for a running call.
OPERATOR_WAIT_S = 5.0
# How long closing waits for a call that still holds a namespace.
CLOSE_WAIT_S = 1.0

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"


class StateError(WasmdError):
    """The state of a plug-in cannot be used: ``code`` says why (``resource_exhausted`` for a
    full disk, ``unavailable`` for a locked, corrupt or unreadable database)."""


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$STATE_DIRECTORY`` (systemd's StateDirectory=; its first entry), else
    ``$XDG_STATE_HOME/wasmd``, else ``~/.local/state/wasmd``."""
    systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "wasmd"
    return Path(environ.get("HOME") or os.path.expanduser("~")) / ".local" / "state" / "wasmd"


class _Corrupt(sqlite3.DatabaseError):
    sqlite_errorname = "SQLITE_CORRUPT"


def describe_sqlite(exc: sqlite3.Error) -> tuple[ErrorCode, str]:
    """The wire code and the words for what SQLite reported."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL"):
        return ErrorCode.RESOURCE_EXHAUSTED, "the disk is full"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return ErrorCode.UNAVAILABLE, "it is locked by another process"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return ErrorCode.UNAVAILABLE, f"it is corrupt ({exc})"
    if name.startswith("SQLITE_READONLY"):
        return ErrorCode.UNAVAILABLE, f"it is read-only ({exc})"
    return ErrorCode.UNAVAILABLE, f"{exc} ({name or type(exc).__name__})"


class StateStores:
    """The state directory of one daemon and the namespaces opened in it."""

    def __init__(self, directory: Path, *, sync: str = "full") -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}")
        self.directory = directory
        self.sync = sync
        self._lock = threading.Lock()
        self._open: dict[str, Namespace] = {}

    def open(self, name: str) -> Namespace:
        """NAME's namespace, opened on first use (blocking). Raises ``StateError``."""
        with self._lock:
            namespace = self._open.get(name)
            if namespace is None:
                namespace = self._open[name] = Namespace(name, self._prepare(name), self.sync)
            return namespace

    def opened(self) -> list[Namespace]:
        with self._lock:
            return list(self._open.values())

    def exists(self, name: str) -> bool:
        with self._lock:
            if name in self._open:
                return True
        try:
            return stat.S_ISREG(os.lstat(self.directory / f"{name}{SUFFIX}").st_mode)
        except OSError:
            return False

    def remove(self, name: str) -> None:
        """Delete NAME's database files (its namespace is closed first)."""
        with self._lock:
            namespace = self._open.pop(name, None)
        if namespace is not None:
            namespace.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / f"{name}{SUFFIX}{suffix}")

    def close(self) -> None:
        with self._lock:
            namespaces, self._open = list(self._open.values()), {}
        for namespace in namespaces:
            namespace.close()

    def _prepare(self, name: str) -> Path:
        """The database's path, after checking the folder and the files (docs/security.md:
        0700, ours, no symbolic link anywhere SQLite will open)."""
        try:
            directory = _trusted_folder(self.directory)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            # O_NOFOLLOW on a symbolic link to a folder fails as "not a directory".
            link = self.directory.is_symlink()
            why = "is a symbolic link that changed (refused)" if link else _os_reason(exc)
            raise _refused(name, f"state directory {self.directory}: {why}") from None
        except _ForeignLink as exc:
            raise _refused(name, f"state directory {self.directory}: {exc}") from None
        try:
            folder = _Folder(fd, directory, name)
            folder.check_ours(os.fstat(fd), "")
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o700)  # ours: nobody else reads plug-ins' state
            database = f"{name}{SUFFIX}"
            for suffix in ("-wal", "-shm", "-journal"):
                folder.check_beside(database + suffix)
            folder.create(database)
        finally:
            os.close(fd)
        return directory / database  # the folder as resolved: SQLite opens no link


class _ForeignLink(Exception):
    pass


def _trusted_folder(directory: Path) -> Path:
    """``directory``, or where it links to if the link is root's or the daemon's own: systemd
    makes ``/var/lib/wasmd`` a link to ``/var/lib/private/wasmd`` for a DynamicUser, and an
    operator may link it elsewhere. A link of another uid is refused (one planted in a
    shared folder such as /tmp, pointing at a folder of the daemon's)."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return directory
    if not stat.S_ISLNK(info.st_mode):
        return directory
    if info.st_uid not in (0, os.geteuid()):
        raise _ForeignLink(f"is a symbolic link of uid {info.st_uid} (refused)")
    return Path(os.path.realpath(directory))


def _refused(name: str, reason: str) -> StateError:
    return StateError(ErrorCode.UNAVAILABLE, f"state of {name}: {reason}")


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symbolic link (refused)"
    return exc.strerror or str(exc)


class _Folder:
    """The state directory, opened without following links: checks on one plug-in's files
    in it, by descriptor (``dir_fd``), so that nothing is resolved through a link."""

    def __init__(self, fd: int, directory: Path, name: str) -> None:
        self.fd, self.directory, self.name = fd, directory, name

    def refused(self, filename: str, reason: str) -> StateError:
        where = self.directory / filename if filename else f"state directory {self.directory}"
        return _refused(self.name, f"{where}{reason}")

    def check_ours(self, info: os.stat_result, filename: str) -> None:
        """A folder, or a regular file, of the daemon's uid."""
        if filename and not stat.S_ISREG(info.st_mode):
            raise self.refused(filename, " is not a regular file (refused)")
        if info.st_uid != os.geteuid():
            raise self.refused(filename, f" belongs to uid {info.st_uid}, not us")

    def check_beside(self, filename: str) -> None:
        """A file SQLite may open beside the database: absent, or a regular file of ours."""
        try:
            info = os.lstat(filename, dir_fd=self.fd)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self.refused(filename, f": {_os_reason(exc)}") from None
        self.check_ours(info, filename)

    def create(self, filename: str) -> None:
        """Create the database file 0600 (or open the one there), never through a link."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(filename, flags, 0o600, dir_fd=self.fd)
        except OSError as exc:
            raise self.refused(filename, f": {_os_reason(exc)}") from None
        try:
            info = os.fstat(fd)
            self.check_ours(info, filename)
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


class _WaitsFor:
    """Which thread waits for which namespace (with ``Namespace.holder``, the wait-for graph):
    a new wait that would close a cycle is refused instead of waiting until the deadlines.
    Edges are added under one lock, so the wait that closes a cycle always sees it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: dict[int, Namespace] = {}

    def would_deadlock(self, wanted: Namespace, me: int) -> bool:
        holder, seen = wanted.holder, set()
        while holder is not None and holder not in seen:
            if holder == me:
                return True
            seen.add(holder)
            awaited = self.waiting.get(holder)
            holder = awaited.holder if awaited is not None else None
        return False


_WAITS = _WaitsFor()


class Namespace:
    """One plug-in's keys and values, and the lock a call holds while it uses them."""

    def __init__(self, name: str, path: Path, sync: str) -> None:
        self.name = name
        self.path = path
        self._lock = threading.Lock()
        self.holder: int | None = None  # the thread that holds the lock
        self._saved = (0, 0)
        try:
            self._db = _connect(path, sync)
            self.keys, self.bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(length(k) + length(v)), 0) FROM kv"
            ).fetchone()
        except sqlite3.Error as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            code, why = describe_sqlite(exc)
            raise StateError(code, f"state of {name}: database {path}: {why}") from None
        self.commits = 0

    # --- the lock a call holds (wasmd.runtime.kv) ------------------------------------

    def acquire(self, over: Callable[[], str | None]) -> str | None:
        """Take the lock and begin a transaction; wait while ``over()`` is None (it says
        why the waiting call ended: "timeout" or "cancelled", returned then). "deadlock"
        at once, without waiting, if the holder waits (through others, perhaps) for a lock
        this thread holds: plug-ins calling each other while both hold their state, or a
        plug-in calling itself."""
        me = threading.get_ident()
        if not self._lock.acquire(blocking=False):
            with _WAITS.lock:
                if _WAITS.would_deadlock(self, me):
                    return "deadlock"
                _WAITS.waiting[me] = self
            try:
                while not self._lock.acquire(timeout=0.005):
                    ended = over()
                    if ended is not None:
                        return ended
            finally:
                with _WAITS.lock:
                    del _WAITS.waiting[me]
        self.holder = me
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.holder = None
            self._lock.release()
            raise
        self._saved = (self.keys, self.bytes)
        return None

    def commit(self) -> None:
        """End the transaction, keeping its writes; release the lock. Raises ``StateError``
        (a full disk: ``resource_exhausted``) after rolling back."""
        try:
            self._db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            self._rollback()
            code, why = describe_sqlite(exc)
            raise StateError(code, f"state of {self.name} not saved: {why}") from None
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            self._rollback()
        finally:
            self._release()

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # nothing begun (a failed BEGIN): nothing to undo
            self._db.execute("ROLLBACK")
        self.keys, self.bytes = self._saved

    def _release(self) -> None:
        self.holder = None
        self._lock.release()

    # --- under the lock ------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, key: bytes, value: bytes, quota: StatePolicy) -> bool:
        """Set ``key``; False (nothing changed) if the quota would be exceeded."""
        row = self._db.execute("SELECT length(v) FROM kv WHERE k = ?", (key,)).fetchone()
        keys = self.keys + (row is None)
        size = self.bytes + len(value) + (len(key) if row is None else -row[0])
        growing = keys > self.keys or size > self.bytes
        if growing and (keys > quota.max_keys or size > quota.max_bytes):
            return False
        self._db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
        self.keys, self.bytes = keys, size
        return True

    def delete(self, key: bytes) -> bool:
        row = self._db.execute("DELETE FROM kv WHERE k = ? RETURNING length(v)", (key,)).fetchone()
        if row is None:
            return False
        self.keys -= 1
        self.bytes -= len(key) + row[0]
        return True

    def next_key(self, prefix: bytes, after: bytes) -> bytes | None:
        """The first key that starts with ``prefix`` and sorts (bytewise) after ``after``."""
        start = max(prefix, after)
        op = ">" if start == after and after else ">="
        row = self._db.execute(
            f"SELECT k FROM kv WHERE k {op} ? AND substr(k, 1, ?) = ? ORDER BY k LIMIT 1",
            (start, len(prefix), prefix),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def keys_page(self, offset: int, limit: int) -> list[bytes]:
        """At most ``limit`` keys in byte order, after the first ``offset``."""
        rows = self._db.execute(
            "SELECT k FROM kv ORDER BY k LIMIT ? OFFSET ?", (limit, min(offset, 2**62))
        )
        return [bytes(k) for (k,) in rows]

    # --- operators (wasmd state) -------------------------------------------------------

    @contextlib.contextmanager
    def operating(self, timeout: float = OPERATOR_WAIT_S) -> Iterator[Namespace]:
        """The lock and a transaction for an operator's request: committed if it ends
        without an exception. Waits at most ``timeout`` for a running call."""
        until = time.monotonic() + timeout
        ended = self.acquire(lambda: "timeout" if time.monotonic() >= until else None)
        if ended is not None:
            raise StateError(
                ErrorCode.BUSY, f"state of {self.name} is held by a call for over {timeout} s"
            )
        try:
            yield self
        except sqlite3.Error as exc:
            self.rollback()
            code, why = describe_sqlite(exc)
            raise StateError(code, f"state of {self.name}: {why}") from None
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def items(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self._db.execute("SELECT k, v FROM kv ORDER BY k")]

    def sizes(self) -> list[tuple[bytes, int]]:
        return [
            (bytes(k), n) for k, n in self._db.execute("SELECT k, length(v) FROM kv ORDER BY k")
        ]

    def clear(self) -> None:
        self._db.execute("DELETE FROM kv")
        self.keys = self.bytes = 0

    def usage(self) -> dict[str, int]:
        return {"keys": self.keys, "bytes": self.bytes}

    def close(self) -> None:
        """Close the database, unless a call still holds it after ``CLOSE_WAIT_S`` (a call
        abandoned at shutdown): what it committed is on disk already; the rest is lost."""
        if not self._lock.acquire(timeout=CLOSE_WAIT_S):
            return
        try:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        finally:
            self._lock.release()


def _connect(path: Path, sync: str) -> sqlite3.Connection:
    # nofollow: SQLite itself refuses a database path that is a symbolic link too.
    db = sqlite3.connect(
        f"file:{path}?nofollow=1",
        uri=True,
        isolation_level=None,  # transactions are ours: BEGIN IMMEDIATE ... COMMIT
        check_same_thread=False,  # used by one thread at a time, under Namespace._lock
        timeout=OPEN_BUSY_TIMEOUT_S,
    )
    try:
        # Exclusive before the first access: no shared-memory index (-shm) is made, and the
        # lock is held for the daemon's life once taken.
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL mode (journal_mode is {mode})")
        db.execute(f"PRAGMA synchronous = {sync.upper()}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise _Corrupt(f"quick_check found: {check}")
        db.execute("BEGIN EXCLUSIVE")  # takes the lock now, not at the first call
        db.execute(_SCHEMA)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


def store_usage(namespace: Namespace | None, quota: StatePolicy) -> dict[str, int] | None:
    """What ``describe`` and ``stats`` show of a plug-in's state: keys and bytes now, and
    its quota (None: it has no store)."""
    if namespace is None:
        return None
    return namespace.usage() | {"max_bytes": quota.max_bytes, "max_keys": quota.max_keys}
