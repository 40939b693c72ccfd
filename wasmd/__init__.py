"""wasmd: a daemon hosting hot-reloadable WebAssembly plug-ins behind a MessagePack-RPC socket,
and a library that loads the same plug-ins into a program (``Loader``, docs/embedding.md).

Every name but the errors is imported on first use: ``import wasmd`` pulls in nothing
Linux-specific (peer credentials, systemd, inotify), and a client never loads the runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ErrorCode, PluginLoadError, WasmdError

if TYPE_CHECKING:
    from .client import Client, open_client
    from .config import DaemonConfig
    from .daemon import Daemon, serve
    from .library import Export, Loader, Plugin
    from .runtime.embedder import HostFunction
    from .sync_client import SyncClient

__version__ = "0.1.0"

# name -> the module that defines it, imported when the name is first asked for.
_LAZY = {
    "Client": "client",
    "SyncClient": "sync_client",
    "open_client": "client",
    "DaemonConfig": "config",
    "Daemon": "daemon",
    "serve": "daemon",
    # The library loads the runtime (wasmtime): a client must not pay for it.
    "Export": "library",
    "HostFunction": "runtime.embedder",
    "Loader": "library",
    "Plugin": "library",
}

__all__ = [
    "Client",
    "ConfigError",
    "Daemon",
    "DaemonConfig",
    "ErrorCode",
    "Export",
    "HostFunction",
    "Loader",
    "Plugin",
    "PluginLoadError",
    "SyncClient",
    "WasmdError",
    "__version__",
    "open_client",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wasmd' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
