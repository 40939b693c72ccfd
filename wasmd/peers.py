"""Who is at the other end of a Unix socket, and whether an allow list admits them.

The one place that reads peer credentials: the server checks a connection against the
daemon's allow list with ``admits``, and dispatch checks a call against a plug-in's
``[access]`` with the same function.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Collection, Iterable
from typing import NamedTuple

_UCRED = struct.Struct("3i")


class Peer(NamedTuple):
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> Peer:
    return Peer(*_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)))


def supplementary_groups(pid: int) -> frozenset[int]:
    """The peer's supplementary groups: SO_PEERCRED carries only the primary gid, and a
    user is usually in the socket's group as a supplementary one."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


def admits(peer: Peer, uids: Collection[int], gids: Collection[int]) -> bool:
    """Root, a listed uid, or a listed group (primary or supplementary)."""
    return allowed(peer.uid, peer.gid, uids, gids, lambda: supplementary_groups(peer.pid))


def allowed(
    uid: int,
    gid: int,
    uids: Collection[int],
    gids: Collection[int],
    groups: Callable[[], Iterable[int]],
) -> bool:
    """The one allow rule: root, a listed uid, or a listed gid as the primary group or one of
    ``groups()`` (read only when the cheap checks said no and a group could still admit)."""
    if uid == 0 or uid in uids or gid in gids:
        return True
    return bool(gids) and not set(gids).isdisjoint(groups())
