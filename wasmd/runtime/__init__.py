"""The WebAssembly runtime: the only package of wasmd that imports wasmtime.

Everything the rest of the daemon needs from wasmtime passes through here: engines and
their epoch ticker, compiling a plug-in, and lending its instances to the threads that bring calls.
wasmtime's exceptions are translated into ``WasmdError`` / ``PluginLoadError`` at this
boundary.
"""

from __future__ import annotations

from importlib.metadata import version

from ..calls import PoolClosed, Respond, Ticket
from .cache import default_cache_dir
from .engine import Engines
from .files import PluginFiles
from .host import MAX_CALL_DEPTH, EventSink
from .nested import PluginResolver, plugin_calls
from .plugin import CompiledPlugin, compile_plugin, module_binary, read_module_bytes
from .pool import DEFAULT_START_TIMEOUT_MS, PluginPool, PoolStats, percentiles_ms

WASMTIME_VERSION = version("wasmtime")

__all__ = [
    "DEFAULT_START_TIMEOUT_MS",
    "WASMTIME_VERSION",
    "CompiledPlugin",
    "Engines",
    "EventSink",
    "MAX_CALL_DEPTH",
    "PluginFiles",
    "PluginPool",
    "PluginResolver",
    "plugin_calls",
    "PoolClosed",
    "PoolStats",
    "Respond",
    "Ticket",
    "compile_plugin",
    "default_cache_dir",
    "module_binary",
    "percentiles_ms",
    "read_module_bytes",
]
