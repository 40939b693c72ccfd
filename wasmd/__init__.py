"""wasmd: a daemon hosting hot-reloadable WebAssembly plug-ins behind a MessagePack-RPC socket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import Client, SyncClient, open_client
from .config import DaemonConfig
from .errors import ConfigError, ErrorCode, PluginLoadError, WasmdError

if TYPE_CHECKING:
    from .daemon import Daemon, serve

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConfigError",
    "DaemonConfig",
    "Daemon",
    "ErrorCode",
    "PluginLoadError",
    "SyncClient",
    "WasmdError",
    "__version__",
    "open_client",
    "serve",
]


def __getattr__(name: str) -> Any:
    """``Daemon`` and ``serve`` load the daemon (wasmtime, watchfiles) on first use only, so
    that a client, and the CLI's client commands, start without it (bench/cli_startup.py)."""
    if name in ("Daemon", "serve"):
        from . import daemon

        return getattr(daemon, name)
    raise AttributeError(f"module 'wasmd' has no attribute {name!r}")
