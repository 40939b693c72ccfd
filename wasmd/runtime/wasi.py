"""WASI for plug-ins: deny by default, grant exactly what the manifest lists.

A Store always gets a WASI context when its module imports WASI (without one, a WASI call
aborts the whole process); an empty one grants nothing. The manifest's ``[wasi]`` adds args,
environment variables and preopened directories.

Preopens (DESIGN.md section 2) are settled once, when the plug-in loads. A relative host path
is allowed only to a folder plug-in and must lead strictly inside its own ``NAME/`` folder: a
flat ``NAME.wasm`` shares its directory with every other plug-in, and the folder itself holds
the plug-in's module and manifest. An absolute path needs the daemon's
``allow_absolute_preopens``. No grant may be a plug-in directory, hold one, or (absolute) lie
inside one, whatever links lead there. Each granted directory is opened at load and the checks
are made on the path of what was opened; instances then preopen that descriptor through
``/proc/self/fd/N``, so a link swapped in for the folder later grants nothing new.

Standard streams are memfd files handed to wasmtime as ``/proc/self/fd/N`` (its custom-output
callbacks run on a foreign thread and abort the process at exit, DESIGN.md section 4).
wasmtime opens that path itself, with its own file offset. An output stream is then sealed at
a fixed size (``F_SEAL_GROW`` and ``F_SEAL_SHRINK`` over a sparse file): a guest's writes past
it fail inside the guest as they happen (the kernel refuses them with EPERM), so a guest
looping on ``fd_write`` cannot make the daemon hold more than that. How far the guest got is
wasmtime's offset, read with ``lseek`` on wasmtime's descriptor (found by the file's inode).
After a call the new bytes are read and their pages freed (a punched hole), while the offset
runs on; ``end()`` tells the owner when the file is spent and must be replaced.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from ..errors import PluginLoadError
from ..manifest import Manifest, Preopen
from .files import PluginFiles


@dataclass(frozen=True)
class Grant:
    """A preopen, resolved: the real directory and the path the guest sees."""

    host: Path
    guest: str
    writable: bool
    # The directory as opened at load (O_PATH); closed when the grant is garbage.
    fd: int | None = field(default=None, compare=False, repr=False)

    @property
    def preopen_path(self) -> str:
        """What an instance preopens: the directory checked at load, not whatever has the
        same name now."""
        return f"/proc/self/fd/{self.fd}" if self.fd is not None else str(self.host)


def resolve_preopens(
    files: PluginFiles, manifest: Manifest, *, allow_absolute: bool = False
) -> tuple[Grant, ...]:
    """The manifest's preopens, opened and checked; ``PluginLoadError`` names the first one
    that breaks a rule (see the module docstring)."""
    protected = frozenset(_resolved(d) for d in files.protected)
    return tuple(_grant(files, p, protected, allow_absolute) for p in manifest.preopens)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.normpath(path))


def _grant(
    files: PluginFiles, preopen: Preopen, protected: frozenset[Path], allow_absolute: bool
) -> Grant:
    name, host = files.name, Path(preopen.host)
    if host.is_absolute() and not allow_absolute:
        raise PluginLoadError(
            name,
            f"preopen {preopen.host!r} is an absolute path; only subfolders of a folder "
            f"plug-in's own folder may be granted (daemon config: allow_absolute_preopens)",
        )
    if not host.is_absolute() and not files.folder:
        raise PluginLoadError(
            name,
            f"preopen {preopen.host!r}: {files.module_path.name} shares {files.root} with "
            f"other plug-ins; only a folder plug-in (NAME/plugin.wasm) may preopen folders "
            f"inside its own",
        )
    try:
        fd = os.open(files.root / host, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise PluginLoadError(name, f"preopen {preopen.host!r} is not a directory") from None
    except OSError as exc:
        raise PluginLoadError(name, f"preopen {preopen.host!r}: {exc}") from None
    grant = Grant(Path(os.readlink(f"/proc/self/fd/{fd}")), preopen.guest, preopen.writable, fd)
    weakref.finalize(grant, os.close, fd)
    problem = _grant_problem(files, host, grant.host, protected)
    if problem is not None:
        raise PluginLoadError(name, f"preopen {preopen.host!r} {problem}")
    return grant


def _grant_problem(
    files: PluginFiles, host: Path, real: Path, protected: frozenset[Path]
) -> str | None:
    """Why the opened directory ``real`` may not be granted, or None."""
    if not host.is_absolute():
        # The folder's own name is not resolved: if it were a link, the grant leads elsewhere.
        own = _resolved(files.root.parent) / files.root.name
        if real == own:
            return f"is the plug-in's folder {own} itself, which holds its module and manifest"
        if not real.is_relative_to(own):
            return (
                f"resolves to {real}, outside the plug-in's folder {own} "
                "(through '..' or a symbolic link)"
            )
    for directory in sorted(protected):
        if directory.is_relative_to(real):
            return f"resolves to {real}, which is or holds the plug-in directory {directory}"
        if host.is_absolute() and real.is_relative_to(directory):
            return f"resolves to {real}, inside the plug-in directory {directory}"
    return None


PAGE = os.sysconf("SC_PAGE_SIZE")
_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)


class MemFile:
    """An in-memory file for one standard stream: input ``content``, or an output stream
    that holds at most ``capacity`` bytes (rounded up to whole pages) once ``seal``-ed."""

    def __init__(self, label: str, content: bytes = b"", *, capacity: int = 0) -> None:
        self.fd = os.memfd_create(f"wasmd-{label}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        if content:
            os.write(self.fd, content)
        self.capacity = -(-capacity // PAGE) * PAGE
        self._writer: int | None = None  # wasmtime's descriptor of this file
        self._consumed = 0

    @property
    def path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def seal(self) -> None:
        """Fix the size at ``capacity``, once wasmtime has opened ``path`` (and truncated it)."""
        self._writer = self._find_writer()
        os.ftruncate(self.fd, self.capacity)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK)

    def _find_writer(self) -> int:
        mine = os.fstat(self.fd)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd == self.fd:
                continue
            try:
                other = os.fstat(fd)
            except OSError:
                continue  # closed meanwhile, or the listing's own descriptor
            if (other.st_dev, other.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
        raise RuntimeError(f"wasmtime holds no descriptor of {self.path}")

    def end(self) -> int:
        """Where the guest's next write would land: all it wrote so far ends here."""
        if self._writer is None:
            return os.fstat(self.fd).st_size
        return os.lseek(self._writer, 0, os.SEEK_CUR)

    def take(self, limit: int) -> tuple[int, bytes | None]:
        """How many bytes were written since the last take, and those bytes (None if more
        than ``limit``); their memory is freed."""
        end = self.end()
        count = end - self._consumed
        data = None if count > limit else os.pread(self.fd, count, self._consumed)
        if count and _libc.fallocate(
            self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, self._consumed, count
        ):
            raise OSError(ctypes.get_errno(), "cannot free a stream's pages")
        self._consumed = end
        return count, data

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
    if manifest.wasi_env:  # credentials were read at load (Manifest.with_credentials)
        config.env = [[name, value] for name, value in manifest.wasi_env if isinstance(value, str)]
    for grant in grants:
        config.preopen_dir(grant.preopen_path, grant.guest, grant.writable)
    if stdin is not None:
        config.stdin_file = stdin.path
    for stream, name in ((stdout, "stdout_file"), (stderr, "stderr_file")):
        if stream is not None:
            setattr(config, name, stream.path)  # wasmtime opens (and truncates) it now
            stream.seal()
    return config
