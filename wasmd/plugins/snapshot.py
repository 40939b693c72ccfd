"""A plug-in's files as read at one moment: what a version is built from (wasmd/plugins/build.py).

A ``Snapshot`` holds the module's bytes and the manifest's text, read together and
fingerprinted; the trust check (wasmd/plugins/trust.py) and the compile both take it, so what is
checked is what is compiled. Neither file is read through a symbolic link
(``discovery.open_plugin_file``), and a file whose stamp is that of the last snapshot is not
read again.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..discovery import PluginSource, open_plugin_file
from ..errors import ConfigError, PluginLoadError
from ..tomlcheck import read_toml_fd

# The largest module file read (config ``max_module_size``): a bigger one fails to load
# without being read, so a 1 TiB sparse file cannot take the daemon's memory.
DEFAULT_MAX_MODULE_SIZE = 256 * 1024 * 1024

# What says a file is unchanged without reading it: device, inode, size, mtime and ctime in ns
# (ctime cannot be set back by the writer, as mtime can).
Stamp = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Snapshot:
    """A plug-in's files as read at one moment: what a version is built from.

    ``stamps`` are the module's and manifest's ``Stamp`` at that moment. A snapshot taken
    with ``known`` stamps that still match is not read again: it has no bytes (``read`` is
    false) and carries the fingerprint of the snapshot it matched.
    """

    source: PluginSource
    module_bytes: bytes = field(repr=False)
    manifest_text: str | None = field(repr=False)
    fingerprint: str
    stamps: tuple[Stamp, Stamp | None] | None = None
    read: bool = True


class ModuleTooBig(PluginLoadError):
    """Raised when a module file is larger than ``max_module_size``; it was not read."""

    def __init__(self, name: str, reason: str, stamps: tuple[Stamp, Stamp | None]) -> None:
        super().__init__(name, reason)
        self.fingerprint = f"too big: {stamps}"


def _stamp(fd: int) -> Stamp:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def take_snapshot(
    source: PluginSource,
    max_module_size: int = DEFAULT_MAX_MODULE_SIZE,
    known: tuple[tuple[Stamp, Stamp | None], str] | None = None,
) -> Snapshot:
    """Read the module and manifest (blocking). Raises PluginLoadError or ConfigError.

    Neither is read through a symbolic link (``open_plugin_file``); a manifest that is there
    but cannot be read fails the version, it is never taken for "no manifest". ``known``:
    the stamps and fingerprint of this source's last snapshot; if the files still match
    them, nothing is read (a rescan does not read every module again).
    """
    path = source.module_path
    try:
        module_fd = open_plugin_file(source, path)
    except OSError as exc:
        raise PluginLoadError(source.name, f"cannot read {path}: {exc.strerror or exc}") from None
    with open(module_fd, "rb") as module_file:
        manifest_fd = None
        if source.manifest_path is not None:
            manifest_fd = _open_manifest(source, source.manifest_path)
        try:
            stamps = (_stamp(module_fd), None if manifest_fd is None else _stamp(manifest_fd))
        except BaseException:
            if manifest_fd is not None:
                os.close(manifest_fd)
            raise
        if known is not None and known[0] == stamps:
            if manifest_fd is not None:
                os.close(manifest_fd)
            return Snapshot(source, b"", None, known[1], stamps, read=False)
        try:
            module_bytes = _read_module(source, module_file, stamps, max_module_size)
        except BaseException:
            if manifest_fd is not None:
                os.close(manifest_fd)
            raise
    manifest_text = None
    if manifest_fd is not None:
        manifest_text = read_toml_fd(manifest_fd, source=str(source.manifest_path), kind="manifest")
    digest = hashlib.sha256()
    for part in (str(source.module_path), str(source.manifest_path)):
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(module_bytes).digest())
    digest.update(hashlib.sha256((manifest_text or "").encode()).digest())
    return Snapshot(source, module_bytes, manifest_text, digest.hexdigest(), stamps)


def _read_module(
    source: PluginSource, file: Any, stamps: tuple[Stamp, Stamp | None], limit: int
) -> bytes:
    """The module's bytes, if it is no bigger than ``limit``; the size is checked before
    reading, and the read stops past the limit (the file may grow meanwhile)."""
    size = stamps[0][2]
    data = b"" if size > limit else None
    if data is None:
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            reason = f"cannot read {source.module_path}: {exc.strerror or exc}"
            raise PluginLoadError(source.name, reason) from None
    size = max(size, len(data))
    if size > limit:
        reason = (
            f"{source.module_path.name} is {size} bytes, over the limit of {limit} "
            "(max_module_size): not read"
        )
        raise ModuleTooBig(source.name, reason, stamps)
    return data


def _open_manifest(source: PluginSource, path: Path) -> int:
    try:
        return open_plugin_file(source, path)
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read manifest: {exc.strerror}") from None
