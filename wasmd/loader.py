"""Turning what the plug-in directories hold into running plug-ins.

The blocking half (``build_pool``: read the manifest and the bytes, compile, start the
instances) runs in worker threads, at most one per core at a time, because compiling is
CPU-bound; the event loop only installs the finished result in the registry. A plug-in that
fails to load is installed as a failed entry, so its calls answer ``unavailable`` with the
reason rather than ``method_not_found``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from .discovery import PluginSource, ScanResult, scan
from .errors import ConfigError, PluginLoadError
from .events import EventBus
from .manifest import load_manifest
from .registry import Entry, Registry
from .runtime import Engines, EventSink, PluginPool, compile_plugin, read_module_bytes

log = logging.getLogger("wasmd.loader")


def build_pool(source: PluginSource, engines: Engines, on_event: EventSink) -> PluginPool:
    """Compile ``source`` and start its instances (blocking). Raises PluginLoadError."""
    try:
        manifest = load_manifest(source.manifest_path)
    except ConfigError as exc:
        raise PluginLoadError(source.name, f"bad manifest: {exc}") from None
    wasm = read_module_bytes(source.module_path, source.name)
    pool = PluginPool(compile_plugin(source, manifest, engines, wasm), engines, on_event)
    pool.start()
    return pool


class Loader:
    def __init__(
        self, *, engines: Engines, registry: Registry, bus: EventBus, dirs: Sequence[Path]
    ) -> None:
        self.engines = engines
        self.registry = registry
        self.bus = bus
        self.dirs = tuple(dirs)
        self._compile_slots = anyio.CapacityLimiter(os.cpu_count() or 1)

    async def initial_scan(self) -> ScanResult:
        """Load every plug-in on the search path; returns when each has loaded or failed."""
        result = await anyio.to_thread.run_sync(scan, self.dirs)
        self._report_scan(result)
        async with anyio.create_task_group() as tg:
            for source in result.sources.values():
                tg.start_soon(self.load, source)
        return result

    def _report_scan(self, result: ScanResult) -> None:
        for missing in result.missing_dirs:
            log.debug("plug-in directory %s does not exist", missing)
        for problem in result.problems:
            log.warning("%s: %s", problem.path, problem.reason)
        for twin in result.shadowed:
            self.bus.emit(
                "plugin.shadowed",
                {"plugin": twin.name, "path": str(twin.loser), "shadowed_by": str(twin.winner)},
            )

    async def load(self, source: PluginSource) -> Entry:
        """Load ``source`` and make it current for its name."""
        try:
            pool = await anyio.to_thread.run_sync(
                build_pool,
                source,
                self.engines,
                self.bus.emit_threadsafe,
                limiter=self._compile_slots,
            )
        except PluginLoadError as exc:
            entry = Entry(source.name, source, None, exc.reason)
            self.registry.install(entry)
            self.bus.emit(
                "plugin.failed",
                {"plugin": source.name, "path": str(source.module_path), "error": exc.reason},
            )
            return entry
        entry = Entry(source.name, source, pool)
        self.registry.install(entry)
        plugin = pool.plugin
        self.bus.emit(
            "plugin.loaded",
            {
                "plugin": plugin.name,
                "version": plugin.short_version,
                "path": str(source.module_path),
                "abi": plugin.abi,
                "exports": sorted(plugin.calls),
            },
        )
        return entry

    async def aclose(self, grace: float) -> None:
        """Close every pool, letting in-flight calls finish for up to ``grace`` seconds."""
        pools = [entry.pool for entry in self.registry if entry.pool is not None]
        for pool in pools:
            pool.close()

        def wait_all() -> None:
            deadline = time.monotonic() + grace
            for pool in pools:
                pool.wait_closed(max(0.0, deadline - time.monotonic()))

        with anyio.move_on_after(grace):
            await anyio.to_thread.run_sync(wait_all, abandon_on_cancel=True)
