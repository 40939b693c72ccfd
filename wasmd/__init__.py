"""wasmd: a daemon that hosts hot-reloadable WebAssembly plug-ins behind a MessagePack-RPC socket."""

from __future__ import annotations

from .errors import ConfigError, ErrorCode, WasmdError

__version__ = "0.1.0"

__all__ = ["ConfigError", "ErrorCode", "WasmdError", "__version__"]
