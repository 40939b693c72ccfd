"""A plug-in loaded by path for a peer (``wasmd.load``): what it may be made of.

Theory of operation (DESIGN.md section 8, "Loading with the caller's rights"). The daemon
reads a plug-in's files and opens its granted folders with its own rights, usually root's.
So before anything is read, ``check_as_caller`` walks the path as the caller would
(``access.resolve_as``) and settles the plug-in on the *real* path (a folder reached through
a symbolic link loads under the path it really has):

- a path the caller cannot see is answered as one that does not exist;
- the caller must be able to read the module and the manifest;
- the folder holding the plug-in's files (a folder plug-in's own folder, or the folder a
  ``NAME.wasm`` sits in) must be writable by its owner only: where group or others may write,
  anyone could add the manifest or signature the plug-in lacks (``/tmp``, ``/var/tmp`` and
  ``/dev/shm`` are refused for this reason, sticky bit or not);
- a folder plug-in may not be, nor hold, a plug-in directory (``folder_problem``).

After the files are read, ``same_files`` checks that what was read is what was checked
(device and inode), and ``preopens_as_caller`` checks each folder the manifest grants: for a
caller other than root it must be a folder the caller owns and may read (and write, if the
grant is writable), because the guest reaches everything below it with the daemon's rights.
``same_grants`` then checks that the folders the runtime opened are those.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..discovery import (
    SYMLINK_NOT_FOLLOWED,
    PluginSource,
    plugin_dir_problem,
    printable,
    source_from_path,
)
from ..errors import ConfigError, ErrorCode, WasmdError
from ..manifest import parse_manifest
from ..runtime.wasi import Grant
from .access import READ, SEARCH, WRITE, Caller, Hidden, Refused, Seen, identity, resolve_as
from .access import writable_by_others as others_may_write


@dataclass
class CheckedSource:
    """A plug-in source checked for ``caller``, and the identity of each file checked."""

    source: PluginSource
    caller: Caller
    seen: dict[Path, Seen]
    preopens: list[Seen] = field(default_factory=list)  # in the manifest's order

    def same_files(self, stamps: tuple[tuple[int, ...], tuple[int, ...] | None] | None) -> None:
        """Refuse the load if the module or manifest read is not the file checked."""
        module = self.source.module_path
        manifest = self.source.manifest_path
        read = [] if stamps is None else [(module, stamps[0])]
        if manifest is not None and stamps is not None and stamps[1] is not None:
            read.append((manifest, stamps[1]))
        for path, stamp in read:
            if self.seen.get(path) != (stamp[0], stamp[1]):
                raise _changed(path)

    def same_grants(self, grants: Sequence[Grant]) -> None:
        """Refuse the load if a folder the runtime granted is not the one checked."""
        if not self.preopens:
            return
        for grant, seen in zip(grants, self.preopens, strict=True):
            if grant.fd is None or identity(os.fstat(grant.fd)) != seen:
                raise _changed(grant.host)


def _changed(path: Path) -> WasmdError:
    return WasmdError(
        ErrorCode.INVALID_PARAMS, f"{printable(path)} changed while it was being loaded"
    )


SHOWN_PATH_MAX = 256  # characters of a caller's path quoted back in an error


def shown(path: str) -> str:
    """A path the caller sent, as an error quotes it: escaped, and cut past
    ``SHOWN_PATH_MAX`` characters (a path may be as long as a request)."""
    if len(path) <= SHOWN_PATH_MAX:
        return printable(path)
    return f"{printable(path[:SHOWN_PATH_MAX])}... ({len(path)} characters)"


def _hidden(path: str, caller: Caller) -> WasmdError:
    # One answer for "missing" and "not visible": no oracle for folders the caller may not enter.
    return WasmdError(
        ErrorCode.INVALID_PARAMS,
        f"{shown(path)}: no such file or folder (or uid {caller.uid} may not see it)",
    )


def _resolve(caller: Caller, path: str) -> tuple[Path, os.stat_result]:
    try:
        return resolve_as(caller, path)
    except Hidden:
        raise _hidden(path, caller) from None
    except Refused as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"{shown(path)}: {exc}") from None
    except OSError:  # a folder on the way vanished mid-walk
        raise _hidden(path, caller) from None


def _denied(caller: Caller, what: str) -> WasmdError:
    return WasmdError(ErrorCode.PERMISSION_DENIED, f"uid {caller.uid} may not {what}")


def check_as_caller(caller: Caller, path: str, plugin_dirs: Sequence[Path]) -> CheckedSource:
    """The plug-in at ``path`` as ``caller`` may load it (blocking); ``WasmdError`` says why
    not (module docstring)."""
    real, st = _resolve(caller, path)
    if os.path.islink(path.rstrip("/")):  # the walk saw it: the caller may see it too
        # As on the search path, a plug-in is never a link (its target may be anything).
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"{shown(path)}: {SYMLINK_NOT_FOLLOWED}")
    if stat.S_ISDIR(st.st_mode):
        if not caller.may(st, READ | SEARCH):
            raise _denied(caller, f"read the folder {printable(real)}")
        problem = plugin_dir_problem(real, plugin_dirs)
        if problem is not None:
            raise WasmdError(ErrorCode.INVALID_PARAMS, problem)
        holder, holder_st = real, st
    else:
        holder = real.parent
        holder_st = _resolve(caller, str(holder))[1]
    if others_may_write(holder_st):
        raise WasmdError(
            ErrorCode.INVALID_PARAMS,
            f"{printable(holder)} may be written by group or others (mode "
            f"{stat.S_IMODE(holder_st.st_mode):04o}): anyone could add files to the plug-in; "
            "a plug-in loaded by path must be in a folder only its owner may write",
        )
    try:
        source = source_from_path(real)
    except ConfigError as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, str(exc)) from None
    seen: dict[Path, Seen] = {}
    for file in (source.module_path, source.manifest_path):
        if file is None:
            continue
        _, file_st = _resolve(caller, str(file))
        if not caller.may(file_st, READ):
            raise _denied(caller, f"read {printable(file)}")
        seen[file] = identity(file_st)
    return CheckedSource(source, caller, seen)


def preopens_as_caller(checked: CheckedSource, manifest_text: str | None) -> list[Seen]:
    """The identity of each folder the manifest grants, checked for a caller other than root
    (module docstring); raises ``WasmdError`` or ``ConfigError`` (a bad manifest)."""
    caller, source = checked.caller, checked.source
    if caller.is_root or manifest_text is None:
        return []
    manifest = parse_manifest(manifest_text, source=str(source.manifest_path))
    seen = []
    for preopen in manifest.preopens:
        host = Path(preopen.host)
        path = host if host.is_absolute() else source.root / host
        real, st = _resolve(caller, str(path))
        want = READ | SEARCH | (WRITE if preopen.writable else 0)
        verb = "read and write" if preopen.writable else "read"
        if not stat.S_ISDIR(st.st_mode):
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"preopen {preopen.host!r} is not a folder")
        if not caller.may(st, want):
            raise _denied(caller, f"{verb} the folder {printable(real)} (preopen {preopen.host!r})")
        if st.st_uid != caller.uid:
            raise WasmdError(
                ErrorCode.PERMISSION_DENIED,
                f"preopen {preopen.host!r}: uid {caller.uid} does not own {printable(real)}; a "
                "plug-in loaded by path reaches what it is granted with the daemon's rights, so "
                "it may be granted only folders its loader owns",
            )
        seen.append(identity(st))
    return seen


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file now (a search directory may be a link)."""
    return a == b or os.path.realpath(a) == os.path.realpath(b)
