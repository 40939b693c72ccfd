"""wasmd as a library: load plug-ins into this process and call them (docs/embedding.md).

Theory of operation. A ``Loader`` owns the wasmtime engines (and their epoch ticker) and a
registry of loaded plug-ins; ``load(name)`` finds NAME on the daemon's search path (the
directories given, then ``$WASMD_PLUGIN_PATH``, then the defaults) and ``load_path(path)``
takes one file or folder. Both go through the daemon's own steps:
``plugins.snapshot.take_snapshot`` (no symbolic links followed, the manifest read strictly)
and ``plugins.build.build_pool`` (the trust check of pins and signatures, then the runtime's
compile, link, sandbox, limits and instance pool), so a plug-in behaves here as it does
behind the socket. A ``Plugin`` handle calls an export on the calling thread through
``PluginPool.call``, as the daemon's connection threads do; ``acall`` does the same in a
worker thread for anyio code, and cancelling the awaiting task cancels the guest.

The registry is a ``plugins.registry.PluginTable`` (the daemon's registry shape, and its
resolver for ``wasmd.call``), written under one ``threading.Lock``; a name being loaded has
its own lock, so two threads (or two anyio tasks, through ``aload``) asking for one name
compile it once and get the same handle. Loading is blocking (compiling is CPU work): async
code uses ``aload``/``aload_path``, which run it in a worker thread.

Plug-ins loaded by one ``Loader`` may call each other (``wasmd.call``, docs/abi.md) under
the callee manifest's ``[access] plugins``.

Nothing here imports the daemon's Linux-specific parts (peer credentials, systemd, the
file watcher); see docs/embedding.md for what runs where.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .discovery import PluginSource, name_problem, scan_name, search_path, source_from_path
from .errors import ConfigError, ErrorCode, PluginLoadError, WasmdError
from .library_stream import PluginStream
from .plugins.build import build_pool
from .plugins.registry import PluginTable
from .plugins.snapshot import DEFAULT_MAX_MODULE_SIZE, take_snapshot
from .plugins.trust import TrustPolicy
from .runtime import DEFAULT_START_TIMEOUT_MS, Engines, PluginPool, PoolClosed, Ticket
from .runtime.embedder import HostFunctions, check_host_functions
from .statestore import StateStores
from .streams import DEFAULT_WINDOW, parse_window

log = logging.getLogger("wasmd.library")

EventCallback = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Export:
    """One callable method of a plug-in: its wasm signature and the ABI that calls it."""

    name: str
    params: tuple[str, ...]  # wasm value types, e.g. ("i32", "i32")
    results: tuple[str, ...]
    abi: str  # core | msgpack | command | extism: how params and results are mapped


def _log_event(kind: str, fields: dict[str, Any]) -> None:
    log.info("%s %s", kind, fields)


class Loader:
    """Loads plug-ins into this process; a registry of them, safe across threads and tasks.

    ``dirs`` come first on the search path, then ``$WASMD_PLUGIN_PATH`` (from ``environ``,
    by default the process's), then ``/etc/wasmd/plugins.d`` and ``/usr/lib/wasmd/plugins.d``
    unless ``include_defaults`` is false: the daemon's order (DESIGN.md section 2).
    ``on_event`` receives the lifecycle events the daemon would publish (``plugin.trapped``,
    ``plugin.custom``, ...), on the thread where they happen; by default they are logged.
    ``host_functions`` (module name -> import name -> ``HostFunction``) are Python callables
    its plug-ins may import besides wasmd's own (docs/embedding.md).
    """

    def __init__(
        self,
        dirs: Sequence[str | os.PathLike[str]] = (),
        *,
        environ: Mapping[str, str] | None = None,
        include_defaults: bool = True,
        tick_ms: int = 10,
        engine: str = "cranelift",
        cache_dir: str | os.PathLike[str] | None = None,
        allow_absolute_preopens: bool = False,
        max_module_size: int = DEFAULT_MAX_MODULE_SIZE,
        start_timeout_ms: int = DEFAULT_START_TIMEOUT_MS,
        on_event: EventCallback = _log_event,
        trust: TrustPolicy | None = None,
        host_functions: HostFunctions | None = None,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if engine not in ("cranelift", "pulley"):
            raise ValueError(f"engine must be 'cranelift' or 'pulley', got {engine!r}")
        # The embedder's own imports for its plug-ins (runtime/embedder.py), checked now:
        # a reserved module name (wasmd's own) is refused before anything is loaded.
        self.host_functions = check_host_functions(host_functions or {})
        self.search_path: tuple[Path, ...] = search_path(
            [Path(d) for d in dirs],
            os.environ if environ is None else environ,
            (),
            include_defaults=include_defaults,
        )
        self.allow_absolute_preopens = allow_absolute_preopens
        self.max_module_size = max_module_size
        self.start_timeout_ms = start_timeout_ms
        self._on_event = on_event
        # Pins and signatures, checked as the daemon checks them (default: the manifest's pin).
        self.trust = trust or TrustPolicy()
        self._engines = Engines(
            tick_ms=tick_ms,
            target="pulley64" if engine == "pulley" else None,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
        )
        if state_dir is not None:  # plug-ins' durable state (none by default: KV_UNAVAILABLE)
            self._engines.states = StateStores(Path(state_dir))
        self._engines.start()
        self._lock = threading.Lock()
        self._plugins: PluginTable[Plugin] = PluginTable()
        self._loading: dict[str, threading.Lock] = {}
        self._closed = False

    # --- loading --------------------------------------------------------------------------

    def load(self, name: str) -> Plugin:
        """The plug-in NAME from the search path (first directory wins); the handle already
        loaded under that name, if any. Raises ``PluginLoadError``."""
        problem = name_problem(name)
        if problem is not None:
            raise PluginLoadError(name, problem)
        return self._load(name, lambda: self._find(name))

    def load_path(self, path: str | os.PathLike[str]) -> Plugin:
        """The plug-in in one file (``NAME.wasm``/``NAME.wat``, with ``NAME.toml`` beside it)
        or folder (``NAME/plugin.wasm``), wherever it is. If NAME is loaded already from the
        same file, that handle; from another file, ``PluginLoadError`` (close it first)."""
        try:
            source = source_from_path(Path(path))
        except ConfigError as exc:
            raise PluginLoadError(Path(path).name, str(exc)) from None
        return self._load(source.name, lambda: source)

    async def aload(self, name: str) -> Plugin:
        """``load`` for anyio code: compiles in a worker thread."""
        return await _in_worker(self.load, name)

    async def aload_path(self, path: str | os.PathLike[str]) -> Plugin:
        """``load_path`` for anyio code: compiles in a worker thread."""
        return await _in_worker(self.load_path, path)

    def _find(self, name: str) -> PluginSource:
        for directory in self.search_path:
            source, _problems = scan_name(directory, name)
            if source is not None:
                return source
        where = ", ".join(map(str, self.search_path)) or "(empty)"
        raise PluginLoadError(name, f"not found on the search path: {where}")

    def _load(self, name: str, locate: Callable[[], PluginSource]) -> Plugin:
        with self._lock:
            self._check_open()
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # one compile per name at a time; the others then see its handle
            source = locate()
            with self._lock:
                self._check_open()
                existing = self._plugins.get(name)
            if existing is not None:
                if existing.path != source.module_path:
                    raise PluginLoadError(
                        name, f"a plug-in named {name} is loaded already, from {existing.path}"
                    )
                return existing
            plugin = Plugin(self, self._build(source))
            with self._lock:
                if self._closed:
                    plugin._pool.close()
                    self._check_open()
                self._plugins.install(plugin)
            return plugin

    def _build(self, source: PluginSource) -> PluginPool:
        try:
            snapshot = take_snapshot(source, self.max_module_size)
        except ConfigError as exc:
            raise PluginLoadError(source.name, f"bad manifest: {exc}") from None
        return build_pool(
            snapshot,
            self._engines,
            self._on_event,
            self.allow_absolute_preopens,
            self.search_path,
            self.start_timeout_ms,
            plugins=self._plugins.pool_of,  # the daemon's resolver, on this table
            trust=self.trust,
            host_functions=self.host_functions,
        )

    # --- the registry -----------------------------------------------------------------------

    def get(self, name: str) -> Plugin | None:
        """The loaded plug-in NAME, or None."""
        with self._lock:
            return self._plugins.get(name)

    def plugins(self) -> list[Plugin]:
        """The loaded plug-ins, by name."""
        with self._lock:
            return list(self._plugins)

    def __iter__(self) -> Iterator[Plugin]:
        return iter(self.plugins())

    def __len__(self) -> int:
        with self._lock:
            return len(self._plugins)

    def _forget(self, plugin: Plugin) -> None:
        with self._lock:
            if self._plugins.get(plugin.name) is plugin:
                self._plugins.remove(plugin.name)

    def _check_open(self) -> None:
        if self._closed:
            raise PluginLoadError("(loader)", "the loader is closed")

    # --- life cycle -------------------------------------------------------------------------

    def close(self, grace: float = 10.0) -> None:
        """Close every plug-in (calls in flight finish, for up to ``grace`` seconds in all),
        then stop the engines' ticker. Loading afterwards raises ``PluginLoadError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            plugins = list(self._plugins)
            for plugin in plugins:
                self._plugins.remove(plugin.name)
        for plugin in plugins:
            plugin._pool.close()
        give_up = time.monotonic() + grace
        for plugin in plugins:
            plugin._pool.wait_closed(max(0.0, give_up - time.monotonic()))
        self._engines.stop()

    def __enter__(self) -> Loader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Plugin:
    """One loaded plug-in version. Made by ``Loader.load``/``load_path``; ``close`` it (or use
    it as a context manager) to take it out of its loader."""

    def __init__(self, loader: Loader, pool: PluginPool) -> None:
        self._loader = loader
        self._pool = pool
        compiled = pool.plugin
        self.name: str = compiled.name
        self.path: Path = compiled.files.module_path
        self.version: str = compiled.short_version  # sha256 of module and manifest, 12 digits
        self.abi: str = compiled.abi.name
        self.exports: Mapping[str, Export] = {
            name: Export(name, method.signature.params, method.signature.results, self.abi)
            for name, method in sorted(compiled.calls.items())
        }

    error: str | None = None  # a handle is made only for a version that loaded

    @property
    def pool(self) -> PluginPool:
        """The running version (the runtime's pool) behind this handle."""
        return self._pool

    def __repr__(self) -> str:
        return f"<wasmd.Plugin {self.name} {self.version} ({self.abi}) from {self.path}>"

    @property
    def closed(self) -> bool:
        return self._pool.closing

    def call(self, export: str, *params: Any) -> Any:
        """Call ``export`` with ``params`` on this thread, under the manifest's deadline and
        limits; the result, or ``WasmdError`` with the code a socket client would get."""
        return self._call(export, params, Ticket(object(), time.monotonic()))

    async def acall(self, export: str, *params: Any) -> Any:
        """``call`` for anyio code, in a worker thread; cancelling the task cancels the call
        (a running guest ends at the next epoch tick)."""
        ticket = Ticket(object(), time.monotonic())
        try:
            return await _in_worker(self._call, export, params, ticket, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            ticket.cancel()
            raise

    def stream(self, export: str, *params: Any, window: int = DEFAULT_WINDOW) -> PluginStream:
        """Call ``export`` as a stream (docs/abi.md, "Streaming"): iterate over the chunks
        it sends; afterwards ``result`` is what it returned. ``push``/``push_end`` feed its
        ``recv``; ``close`` (or leaving a ``with`` block) cancels it."""
        parse_window({"window": window})
        return PluginStream(self._call, export, params, window)

    def _call(self, export: str, params: Sequence[Any], ticket: Ticket) -> Any:
        outcome: list[Any] = [None, None]

        def respond(error: WasmdError | None, result: Any) -> None:
            outcome[0], outcome[1] = error, result

        try:
            self._pool.call(export, list(params), ticket, respond)
        except PoolClosed:
            raise WasmdError(ErrorCode.UNAVAILABLE, f"plug-in {self.name} is closed") from None
        if outcome[0] is not None:
            raise outcome.pop(0)  # not kept in a local: its traceback will hold this frame
        return outcome[1]

    def describe(self) -> dict[str, Any]:
        """Everything ``wasmd describe NAME`` shows: exports, imports, manifest, limits, and
        the call statistics."""
        description = self._pool.plugin.describe()
        description["stats"] = asdict(self._pool.stats())  # wasmd.describe's shape
        return description

    def close(self, grace: float | None = None) -> None:
        """Take the plug-in out of its loader and refuse new calls; calls in flight finish.
        Waits for them up to ``grace`` seconds (default: the manifest's ``timeout_ms``)."""
        self._loader._forget(self)
        self._pool.close()
        if grace is None:
            grace = self._pool.plugin.manifest.timeout_ms / 1000
        self._pool.wait_closed(grace)

    def __enter__(self) -> Plugin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


T = TypeVar("T")


async def _in_worker(func: Callable[..., T], *args: Any, abandon_on_cancel: bool = False) -> T:
    """``anyio.to_thread.run_sync``, but an error comes back without the worker's frames:
    anyio hands it over through a future that a frame of its traceback holds, a cycle that
    kept what the call worked on (a module's bytes, the params) until the cyclic collector
    ran. Its message and data are what matter."""
    try:
        return await anyio.to_thread.run_sync(func, *args, abandon_on_cancel=abandon_on_cancel)
    except Exception as exc:
        raise exc.with_traceback(None)  # noqa: B904  (the very error, not a new one)
