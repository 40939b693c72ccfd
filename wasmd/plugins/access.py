"""Acting with a caller's rights: what ``wasmd.load`` may open for a peer (DESIGN.md section 8).

Theory of operation. The daemon usually runs as root, and a plug-in it loads reads its files
and its granted folders with the daemon's rights. A ``wasmd.load`` asked by another uid must
therefore reach nothing that uid could not reach itself: ``resolve_as`` walks a path one
component at a time, as the kernel would for ``Caller`` (search permission on every folder
crossed, symbolic links resolved, so every check is made on the real path), and says what
the path really is. ``Caller.may`` is the mode-bit check (owner, group, other; root may do
anything). POSIX ACLs are not read: an ACL that grants more than the mode bits is not
honoured, and one that denies less than them is the administrator's to avoid.

What the walk cannot see is answered the same way whether it is missing or hidden
(``Hidden``), so the answers are no oracle for folders the caller may not enter. Paths the
walk will not take (through ``/proc``, whose links point into the daemon's own process;
longer than ``PATH_MAX``; more than 40 links) are ``Refused`` with the reason.

The walk and the later open are two steps; whoever races them is caught by identity: the
loader compares the device and inode of what it opened with what the walk checked
(``Seen``), and refuses the load if they differ.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path

READ, WRITE, SEARCH = 4, 2, 1
PATH_MAX = 4096  # bytes, with the final NUL: Linux's limit for one path
NAME_MAX = 255  # bytes in one path component
MAX_LINKS = 40  # symbolic links followed in one walk, as the kernel's ELOOP limit


class Hidden(Exception):
    """The path does not exist, or the caller may not see that it does: one answer for both."""


class Refused(Exception):
    """The walk will not take this path; the message says why (it reveals nothing hidden)."""


@dataclass(frozen=True)
class Caller:
    """The peer a load acts for: its uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def may(self, st: os.stat_result, want: int) -> bool:
        """Whether the mode bits of ``st`` grant this caller every bit of ``want``
        (``READ | WRITE | SEARCH``): the owner's bits if it owns the file, else the group's
        if one of its groups does, else the others'. Root may do anything."""
        if self.is_root:
            return True
        if st.st_uid == self.uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid == self.gid or st.st_gid in self.groups:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        return bits & want == want


# The identity of a file the walk checked: (device, inode).
Seen = tuple[int, int]


def identity(st: os.stat_result) -> Seen:
    return (st.st_dev, st.st_ino)


_proc_dev: int | None = None


def _proc_device() -> int | None:
    """The device of ``/proc`` if it is procfs (its links lead into the daemon's process)."""
    global _proc_dev
    if _proc_dev is None:
        try:
            if os.path.exists("/proc/self/status"):
                _proc_dev = os.stat("/proc").st_dev
        except OSError:
            return None
    return _proc_dev


def resolve_as(caller: Caller, path: str) -> tuple[Path, os.stat_result]:
    """The real path of absolute ``path`` as ``caller`` would reach it, and its ``lstat``.

    Raises ``Hidden`` if it is missing or a folder on the way may not be searched by the
    caller (or is not a folder), ``Refused`` if the walk will not take it (module docstring).
    """
    if len(os.fsencode(path)) >= PATH_MAX:
        raise Refused(f"the path is longer than {PATH_MAX - 1} bytes (PATH_MAX)")
    todo = deque(part for part in path.split("/") if part)
    real: list[str] = []
    st = os.stat("/")
    links = 0
    proc = _proc_device()
    while todo:
        part = todo.popleft()
        if part == ".":
            continue
        if part == "..":
            if real:
                real.pop()
            st = os.stat(_joined(real))
            continue
        if not stat.S_ISDIR(st.st_mode) or not caller.may(st, SEARCH):
            raise Hidden
        if len(os.fsencode(part)) > NAME_MAX:
            raise Refused(f"a path component is longer than {NAME_MAX} bytes")
        here = _joined([*real, part])
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            raise Hidden from None
        except OSError as exc:
            raise Refused(exc.strerror or str(exc)) from None
        if proc is not None and st.st_dev == proc:
            raise Refused("paths through /proc are not followed")
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise Refused(f"more than {MAX_LINKS} symbolic links")
            target = os.readlink(here)
            if target.startswith("/"):
                real = []
            todo.extendleft(reversed([p for p in target.split("/") if p]))
            st = os.stat(_joined(real))
            continue
        real.append(part)
    return Path(_joined(real)), st


def _joined(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def writable_by_others(st: os.stat_result) -> bool:
    """Whether anyone but the owner may write to (create or replace entries in) this folder
    or file: group- or other-writable. The sticky bit does not help a plug-in folder: others
    may still add the files that are missing (a manifest, a signature)."""
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
