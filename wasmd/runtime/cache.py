"""A disk cache of compiled modules, so a restart or a reload skips Cranelift.

Compiling a large module takes long; ``Module.serialize()`` turns the compiled module into
bytes that ``Module.deserialize`` loads back far faster (a 2000-function module: ~90 ms to
compile, ~2-3 ms to check and load its 1.2 MB entry). Those bytes are native code that
wasmtime trusts blindly, so an entry is checked before it is used; the checks (a SHA-256 of
the payload, and reading it into memory rather than letting wasmtime map the file) are most
of the cost of a hit, and they are what make a hit safe.

Key and name. An entry's key is ``sha256(engine_key + "\\0" + wasm)``; its file is
``<key hex>.cwasm`` in the cache directory. The effective engine key always starts with the
wasmtime version and the machine, added here so that no caller can forget them; the caller
adds the engine's own settings (``CompileCache.engine_key``). Two engines with different
settings can share one directory: their keys differ.

File format, all of it checked on load before ``Module.deserialize`` sees a byte::

    b"wasmd-cwasm-1\\n"                  magic; a new layout gets a new magic
    sha256(payload)                      32 bytes
    len(engine_key) engine_key           4-byte big-endian length, then UTF-8
    sha256(wasm)                         32 bytes
    payload                              module.serialize(), to the end of the file

What each check is for. The payload hash catches corruption: torn or truncated copies and
bit rot (wasmtime itself accepts a payload with a flipped byte). The engine key and source
hash inside the file catch an entry renamed or copied under another entry's name. None of
these stop an attacker, who could recompute the hash; what keeps other users out is that an
entry is used only if it is a regular file owned by our uid and not writable by group or
others. The directory is created 0o700; one that exists already (systemd's
``CacheDirectory=`` makes it 0o755) is used as it is: the per-entry checks do not depend on
it. Anyone who runs as our uid can already run code as us.

Failures. Any problem with an entry (missing is a plain miss; short, corrupt, mismatched,
insecure, unreadable, or refused by wasmtime is ``rejected``) means: compile, then store over
it. A corrupt entry we own is deleted first, so a failing store does not leave it to be
rejected again; an entry owned by someone else is not deleted but replaced by the store,
because the directory is ours. Storing never fails a load: an error is counted in
``store_errors`` and logged as a warning once per cache. Compile errors propagate.

Concurrency. ``load_or_compile`` runs on several worker threads at once. Every write goes to
a temporary file in the same directory and is renamed into place, so a reader sees a whole
entry or none; two threads compiling the same module both store it and the last rename wins.
Only the counters take a lock.

Size. With ``max_bytes``, each store evicts the least recently used entries (oldest mtime; a
hit refreshes it) until the directory's ``*.cwasm`` files fit. An entry larger than the cap
by itself is not stored at all. Temporary files left by a crash are not swept.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import logging
import os
import platform
import stat
import struct
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO, TypeVar

import wasmtime
from wasmtime import component as wc

__all__ = ["CacheStats", "CompileCache", "default_cache_dir"]

log = logging.getLogger("wasmd.cache")

MAGIC = b"wasmd-cwasm-1\n"
SUFFIX = ".cwasm"
_HASH_SIZE = 32
_KEY_LENGTH = struct.Struct(">I")
# Real keys are a few dozen bytes; a bigger length field means garbage, not a key to read.
_MAX_KEY_LENGTH = 4096

# What an entry holds: a module, or a component (same compile, serialize and deserialize).
Compiled = TypeVar("Compiled", wasmtime.Module, wc.Component)


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was created; ``hits + misses`` is the number of loads."""

    hits: int = 0
    misses: int = 0  # loads that compiled, ``rejected`` ones included
    rejected: int = 0  # entries found but not used: corrupt, mismatched, insecure, unreadable
    stores: int = 0
    store_errors: int = 0


class _Rejected(Exception):
    """Raised when an entry exists but must not be used; the message says why."""

    def __init__(self, reason: str, *, delete: bool) -> None:
        super().__init__(reason)
        self.delete = delete


class CompileCache:
    """Serialized modules on disk, keyed by content hash and engine settings."""

    def __init__(self, directory: Path, *, engine_key: str, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.directory = directory
        self.max_bytes = max_bytes
        version = importlib.metadata.version("wasmtime")
        self._engine_key = f"wasmtime={version};machine={platform.machine()};{engine_key}"
        self._engine_key_bytes = self._engine_key.encode("utf-8")
        self._lock = threading.Lock()
        self._counts = {f.name: 0 for f in fields(CacheStats)}
        self._warned = False

    @staticmethod
    def engine_key(*, fuel: bool, target: str | None) -> str:
        """The settings part of the key for an engine made by ``engine._make_engine``.

        Only settings that vary between wasmd's engines are named: the fixed ones (epoch
        interruption, opt level) are the same for every entry, and wasmtime itself refuses
        an artifact compiled with other settings, which would show as ``rejected``.
        """
        return f"fuel={int(fuel)};target={target or 'native'}"

    @property
    def full_engine_key(self) -> str:
        """The engine key as stored in entries: wasmtime version, machine, then settings."""
        return self._engine_key

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(**self._counts)

    def path_for(self, wasm: bytes) -> Path:
        key = hashlib.sha256(self._engine_key_bytes + b"\0" + wasm).hexdigest()
        return self.directory / (key + SUFFIX)

    def load_or_compile(self, engine: wasmtime.Engine, wasm: bytes) -> tuple[wasmtime.Module, bool]:
        """The module for ``wasm`` and whether it came from the cache.

        Raises ``wasmtime.WasmtimeError`` unchanged when ``wasm`` does not compile.
        """
        return self._load_or_compile(engine, wasm, wasmtime.Module)

    def load_or_compile_component(
        self, engine: wasmtime.Engine, wasm: bytes
    ) -> tuple[wc.Component, bool]:
        """``load_or_compile`` for a component binary."""
        return self._load_or_compile(engine, wasm, wc.Component)

    def _load_or_compile(
        self, engine: wasmtime.Engine, wasm: bytes, kind: type[Compiled]
    ) -> tuple[Compiled, bool]:
        path = self.path_for(wasm)
        source_hash = hashlib.sha256(wasm).digest()
        try:
            module = self._load(engine, path, source_hash, kind)
        except _Rejected as exc:
            self._count("rejected")
            log.warning("compile cache: ignoring %s: %s", path, exc)
        else:
            if module is not None:
                self._count("hits")
                return module, True
        self._count("misses")
        module = kind(engine, wasm)
        self._store(path, source_hash, module)
        return module, False

    def _load(
        self, engine: wasmtime.Engine, path: Path, source_hash: bytes, kind: type[Compiled]
    ) -> Compiled | None:
        """The cached module, None if there is no entry; ``_Rejected`` if it is unusable."""
        try:
            # O_NOFOLLOW and every check made on the open descriptor: what is checked is what
            # is read, even if the name is swapped meanwhile. O_NONBLOCK so that a FIFO in
            # the entry's place cannot hang the open; it changes nothing for a regular file.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None  # no entry, or no cache directory yet: a plain miss
            raise _Rejected(f"cannot open: {exc.strerror or exc}", delete=False) from None
        try:
            info = os.fstat(fd)
            _check_trusted(info)
            try:
                with open(fd, "rb", closefd=False) as file:
                    payload = self._read_checked(file, source_hash)
            except _Rejected as exc:
                if exc.delete:
                    _unlink_if_same(path, info)
                raise
        except OSError as exc:
            raise _Rejected(f"cannot read: {exc.strerror or exc}", delete=False) from None
        finally:
            os.close(fd)
        try:
            module = kind.deserialize(engine, payload)
        except wasmtime.WasmtimeError as exc:
            _unlink_if_same(path, info)
            first_line = str(exc).partition("\n")[0]
            raise _Rejected(f"wasmtime refused it: {first_line}", delete=True) from None
        # A hit makes the entry young again: max_bytes evicts the least recently used.
        with contextlib.suppress(OSError):
            os.utime(path, follow_symlinks=False)
        return module

    def _read_checked(self, file: BinaryIO, source_hash: bytes) -> bytes:
        if file.read(len(MAGIC)) != MAGIC:
            raise _Rejected("wrong magic", delete=True)
        payload_hash = _read_exact(file, _HASH_SIZE)
        (key_length,) = _KEY_LENGTH.unpack(_read_exact(file, _KEY_LENGTH.size))
        if key_length > _MAX_KEY_LENGTH:
            raise _Rejected("engine key too long", delete=True)
        if _read_exact(file, key_length) != self._engine_key_bytes:
            raise _Rejected("made for another engine", delete=True)
        if _read_exact(file, _HASH_SIZE) != source_hash:
            raise _Rejected("made from another module", delete=True)
        payload = file.read()
        if hashlib.sha256(payload).digest() != payload_hash:
            raise _Rejected("payload does not match its hash", delete=True)
        return payload

    def _store(
        self, path: Path, source_hash: bytes, module: wasmtime.Module | wc.Component
    ) -> None:
        try:
            payload = module.serialize()
        except wasmtime.WasmtimeError as exc:
            self._store_failed(path, f"cannot serialize: {exc}")
            return
        header = b"".join(
            (
                MAGIC,
                hashlib.sha256(payload).digest(),
                _KEY_LENGTH.pack(len(self._engine_key_bytes)),
                self._engine_key_bytes,
                source_hash,
            )
        )
        size = len(header) + len(payload)
        if self.max_bytes is not None and size > self.max_bytes:
            log.debug("compile cache: %s would take %d bytes, over max_bytes", path, size)
            return
        try:
            # mkdir's mode is for the last component only; the parents are ordinary dirs.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkstemp creates the file 0o600, and in the same directory so the rename is atomic.
            fd, temp_name = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        except OSError as exc:
            self._store_failed(path, exc.strerror or str(exc))
            return
        try:
            with open(fd, "wb") as file:
                file.write(header)
                file.write(payload)
            os.replace(temp_name, path)
        except OSError as exc:
            _unlink_quietly(temp_name)
            self._store_failed(path, exc.strerror or str(exc))
            return
        self._count("stores")
        if self.max_bytes is not None:
            self._evict(keep=path, max_bytes=self.max_bytes)

    def _store_failed(self, path: Path, reason: str) -> None:
        with self._lock:
            self._counts["store_errors"] += 1
            first, self._warned = not self._warned, True
        # A read-only or full disk fails every store the same way: say it once.
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "compile cache: cannot store %s: %s (modules still load, uncached)",
            path,
            reason,
        )

    def _evict(self, *, keep: Path, max_bytes: int) -> None:
        entries: list[tuple[float, int, str]] = []
        total = 0
        try:
            with os.scandir(self.directory) as scan:
                for entry in scan:
                    if not entry.name.endswith(SUFFIX):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # evicted by another thread meanwhile
                    total += info.st_size
                    if entry.name != keep.name:
                        entries.append((info.st_mtime, info.st_size, entry.path))
        except OSError as exc:
            log.debug("compile cache: cannot scan %s: %s", self.directory, exc)
            return
        entries.sort()
        for _, size, entry_path in entries:
            if total <= max_bytes:
                break
            _unlink_quietly(entry_path)
            total -= size

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


def _check_trusted(info: os.stat_result) -> None:
    """Only we may have written the entry: a regular file of our uid, writable by us only.

    Such an entry is not deleted (it may not be ours to delete); storing replaces it.
    """
    if not stat.S_ISREG(info.st_mode):
        raise _Rejected("not a regular file", delete=False)
    if info.st_uid != os.getuid():
        raise _Rejected(f"owned by uid {info.st_uid}", delete=False)
    if info.st_mode & 0o022:
        raise _Rejected(
            f"writable by group or others (mode {info.st_mode & 0o777:o})", delete=False
        )


def _read_exact(file: BinaryIO, size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise _Rejected("truncated", delete=True)
    return data


def _unlink_if_same(path: Path, info: os.stat_result) -> None:
    """Delete ``path`` unless another thread has already replaced what we read."""
    with contextlib.suppress(OSError):
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino):
            os.unlink(path)


def _unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.debug("compile cache: cannot delete %s: %s", path, exc)


def default_cache_dir(environ: Mapping[str, str], uid: int) -> Path | None:
    """Where the cache lives by default, or None when the environment names no usable place.

    In order: ``$CACHE_DIRECTORY`` (systemd's ``CacheDirectory=``, colon-separated when
    several; the first is ours), ``$XDG_CACHE_HOME/wasmd``, ``/var/cache/wasmd`` for root,
    ``$HOME/.cache/wasmd`` for anyone else. Relative paths are ignored, as the XDG spec asks:
    they would depend on the daemon's working directory.
    """
    systemd = environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if os.path.isabs(systemd):
        return Path(systemd)
    xdg = environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "wasmd"
    if uid == 0:
        return Path("/var/cache/wasmd")
    home = environ.get("HOME", "")
    if os.path.isabs(home):
        return Path(home) / ".cache" / "wasmd"
    return None
