"""wasmd: a daemon hosting hot-reloadable WebAssembly plug-ins behind a MessagePack-RPC socket."""

from __future__ import annotations

from .client import Client, SyncClient, open_client
from .config import DaemonConfig
from .daemon import Daemon, serve
from .errors import ConfigError, ErrorCode, PluginLoadError, WasmdError

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
