"""Where the daemon's socket is when nothing names one (DESIGN.md section 9).

A module of its own, importing nothing of wasmd: every client computes this path, and a
client command must not load the config file's checker, the trust policy and the manifest
parser to do it (``wasmd.config`` re-exports both names for the daemon's side).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_socket_path(environ: Mapping[str, str], uid: int) -> Path:
    """Where the socket lives when neither ``--socket`` nor the config names it."""
    if environ.get("WASMD_SOCKET"):
        return Path(environ["WASMD_SOCKET"])
    if uid == 0:
        return Path("/run/wasmd/wasmd.sock")
    runtime_dir = environ.get("XDG_RUNTIME_DIR", "")
    # The XDG spec says a relative value must be ignored.
    if os.path.isabs(runtime_dir):
        return Path(runtime_dir) / "wasmd.sock"
    return fallback_socket_folder(uid) / "wasmd.sock"


def fallback_socket_folder(uid: int) -> Path:
    """The socket's folder when nothing else names one: per user, not /tmp itself. The daemon
    creates it 0700 and refuses one that another uid owns or others can write (listener.py),
    so nobody else can pre-create or replace the socket path."""
    return Path(f"/tmp/wasmd-{uid}")
