"""WASI for plug-ins: deny by default, grant exactly what the manifest lists.

A Store always gets a WASI context when its module imports WASI (without one, a WASI call
aborts the whole process); an empty one grants nothing. The manifest's ``[wasi]`` adds args,
environment variables and preopened directories. Preopen host paths are resolved against the
plug-in's folder when the plug-in loads, symlinks included, and refused if they lead outside
it — unless the daemon's config allows absolute roots, and then only for absolute paths.

Standard streams are memfd files handed to wasmtime as ``/proc/self/fd/N`` (its custom-output
callbacks run on a foreign thread and abort the process at exit, DESIGN.md section 4). After
a call the new bytes are read; truncating the file then frees them, while wasmtime's own
file offset runs on, so later writes land past a hole that costs no memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from ..errors import PluginLoadError
from ..manifest import Manifest


@dataclass(frozen=True)
class Grant:
    """A preopen, resolved: the real directory and the path the guest sees."""

    host: Path
    guest: str
    writable: bool


def resolve_preopens(
    name: str, manifest: Manifest, root: Path, *, allow_absolute: bool
) -> tuple[Grant, ...]:
    grants = []
    real_root = root.resolve()
    for preopen in manifest.preopens:
        host = Path(preopen.host)
        if host.is_absolute() and not allow_absolute:
            raise PluginLoadError(
                name,
                f"preopen {preopen.host!r} is an absolute path; only folders inside the "
                f"plug-in's folder {root} may be granted (daemon config: allow_absolute_preopens)",
            )
        try:
            real = (root / host).resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise PluginLoadError(name, f"preopen {preopen.host!r}: {exc}") from None
        if not host.is_absolute() and not real.is_relative_to(real_root):
            raise PluginLoadError(
                name,
                f"preopen {preopen.host!r} resolves to {real}, outside the plug-in's folder "
                f"{real_root} (through '..' or a symbolic link)",
            )
        if not real.is_dir():
            raise PluginLoadError(name, f"preopen {preopen.host!r} is not a directory")
        grants.append(Grant(real, preopen.guest, preopen.writable))
    return tuple(grants)


class MemFile:
    """An in-memory file for one standard stream."""

    def __init__(self, label: str, content: bytes = b"") -> None:
        self.fd = os.memfd_create(f"wasmd-{label}", os.MFD_CLOEXEC)
        if content:
            os.write(self.fd, content)
        self._consumed = 0

    @property
    def path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def take(self, limit: int) -> bytes | None:
        """The bytes written since the last take, or None if there are more than ``limit``."""
        end = self.size()
        count = end - self._consumed
        data = None if count > limit else os.pread(self.fd, count, self._consumed)
        self._consumed = end
        os.ftruncate(self.fd, 0)
        return data

    def close(self) -> None:
        os.close(self.fd)


def make_wasi_config(
    manifest: Manifest,
    grants: tuple[Grant, ...],
    *,
    argv: list[str],
    stdin: MemFile | None = None,
    stdout: MemFile | None = None,
    stderr: MemFile | None = None,
) -> wasmtime.WasiConfig:
    config = wasmtime.WasiConfig()
    if argv:
        config.argv = argv
    if manifest.wasi_env:
        config.env = [list(pair) for pair in manifest.wasi_env]
    for grant in grants:
        config.preopen_dir(str(grant.host), grant.guest, grant.writable)
    if stdin is not None:
        config.stdin_file = stdin.path
    if stdout is not None:
        config.stdout_file = stdout.path
    if stderr is not None:
        config.stderr_file = stderr.path
    return config
