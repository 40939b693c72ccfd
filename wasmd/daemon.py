"""Wiring the daemon together: engines, registry, loader, server, and readiness.

``serve`` reports readiness through ``task_status.started(info)`` once the socket listens and
the initial scan has loaded (or failed) every plug-in, or ``ready_timeout_ms`` has passed:
plug-ins still compiling then finish in the background, answering ``unavailable`` (kind
``loading``) meanwhile, so a slow compile does not hold up the rest. It runs until cancelled
(abrupt), until ``Daemon.stop()``, or until the awaitable ``shutdown_trigger`` returns (both
graceful), as hypercorn's ``serve`` does for embedders.

Stopping has one budget (``stop_budget``): calls in flight may finish within
``shutdown_timeout_ms``; then whatever still runs is cancelled, and ends within
``ABORT_WAIT`` (a running guest at its next epoch tick). The plug-ins are closed within
what is left of that, so the whole stop fits inside systemd's ``TimeoutStopSec`` (20 s in
systemd/wasmd.service, against 11 s by default) with margin.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from prometheus_client.registry import CollectorRegistry

from .builtins import Builtins, builtin_methods, dispatch_tables
from .config import DaemonConfig, allowed_gids, allowed_load_uids, allowed_uids, trust_policy
from .discovery import is_utf8, printable
from .dispatch import Dispatcher
from .events import EventBus
from .listener import open_listener
from .loading import LoadBuiltins
from .metrics import (
    WasmdCollector,
    collector_registry,
    render_answer,
    write_textfile_forever,
)
from .plugins.reconciler import Reconciler, ReloadReport
from .plugins.registry import Registry
from .plugins.watcher import DirectoryWatcher
from .runtime import Engines
from .server import ABORT_WAIT, RpcServer, ServerCounters, ServerLimits
from .statecontrol import StateBuiltins
from .statemetrics import StateCollector
from .statestore import StateStores, default_state_dir
from .systemd import Notifier

log = logging.getLogger("wasmd")


class Daemon:
    """A running daemon, handed out by ``serve`` through ``task_status`` once it is ready."""

    def __init__(
        self, registry: Registry, bus: EventBus, loader: Reconciler, notifier: Notifier | None
    ) -> None:
        self.registry = registry
        self.bus = bus
        self.loader = loader
        self.notifier = notifier
        self.socket_path: Path | None = None
        self.server: RpcServer | None = None
        self.watcher: DirectoryWatcher | None = None
        self._stop = anyio.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop gracefully: no new connections, in-flight calls finish, then ``serve`` returns."""
        self._stop.set()

    def status(self) -> str:
        """One line for systemd's STATUS=."""
        calls = sum(e.pool.stats().calls for e in self.registry if e.pool is not None)
        connections = self.server.counters.connections if self.server else 0
        return (
            f"{self.plugins} plug-ins ({self.failed} failed), {calls} calls, "
            f"{connections} connections"
        )

    @property
    def plugins(self) -> int:
        return len(self.registry)

    @property
    def failed(self) -> int:
        return sum(1 for entry in self.registry if entry.pool is None)

    async def reload(self, names: set[str] | None = None) -> ReloadReport:
        """Rescan ``names`` (everything if None) and bring them in step with the disk."""
        if names is None:
            if self.watcher is not None:
                self.watcher.rearm_if_moved()  # a dead watch is re-armed (it rescans too)
            self.bus.emit("daemon.reloading", {})
            if self.notifier is not None:
                self.notifier.reloading()
        report = await self.loader.reconcile(names)
        if names is None and self.notifier is not None:
            self.notifier.ready(self.status())
        quiet = ("unchanged", "still_unloaded")  # nothing happened to these
        changed = {k: v for k, v in report.to_dict().items() if v and k not in quiet}
        if names is None or changed:
            log.info("rescan: %s", changed or "nothing changed")
        return report


def stop_budget(config: DaemonConfig) -> float:
    """The most a graceful stop takes, in seconds: calls finish within the shutdown timeout,
    then the rest are cancelled and end within ``ABORT_WAIT``."""
    return config.shutdown_timeout_ms / 1000 + ABORT_WAIT


async def serve(
    config: DaemonConfig,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    listen_socket: socket.socket | None = None,
    notifier: Notifier | None = None,
    watchdog_interval: float | None = None,
    task_status: anyio.abc.TaskStatus[Daemon] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``config.plugin_dirs`` until cancelled (abrupt), or until ``Daemon.stop()`` or
    ``await shutdown_trigger()`` returns (graceful: the socket stops accepting, calls in
    flight finish within ``shutdown_timeout_ms``; the whole stop within ``stop_budget``).
    Changes no interpreter-wide setting (see ``server.tune_interpreter``).

    The steps: engines and loader; the watcher, armed before the initial scan so nothing
    written meanwhile is missed; the scan; the server and its socket; ready; serve until
    stopped; drain; close the plug-ins.
    """
    plugin_dirs = _utf8_dirs(config.plugin_dirs)
    bus = EventBus(buffer_limit=config.events_buffer)
    bus.bind()
    with _engines(config) as engines:
        loader = _loader(config, engines, bus, plugin_dirs)
        daemon = Daemon(loader.registry, bus, loader, notifier)
        stop_by: float | None = None  # when a graceful stop must be over
        try:
            async with anyio.create_task_group() as tg:
                if shutdown_trigger is not None:
                    tg.start_soon(_stop_when, shutdown_trigger, daemon)
                if config.watch:
                    daemon.watcher = DirectoryWatcher(
                        plugin_dirs, daemon.reload, force_polling=config.poll
                    )
                    await tg.start(daemon.watcher.run)
                await _initial_scan(loader, tg, config.ready_timeout_ms / 1000)
                metrics = _metrics(config, daemon, tg)
                daemon.server = _server(config, daemon, engines, tg, metrics)
                with _listener(config, daemon, listen_socket) as listener:
                    _announce_ready(daemon, notifier)
                    if notifier is not None and watchdog_interval:
                        tg.start_soon(_watchdog, notifier, daemon, watchdog_interval)
                    task_status.started(daemon)
                    try:
                        tg.start_soon(daemon.server.serve, listener)
                        await daemon._stop.wait()
                        stop_by = time.monotonic() + stop_budget(config)
                        _stopping(bus, notifier)
                        with anyio.move_on_after(config.shutdown_timeout_ms / 1000):
                            await daemon.server.drain()
                        tg.cancel_scope.cancel()
                    finally:
                        if daemon.socket_path is not None:
                            daemon.socket_path.unlink(missing_ok=True)
        finally:
            with anyio.CancelScope(shield=True):
                if not daemon._stop.is_set():
                    _stopping(bus, notifier)
                # Calls were cancelled when the server stopped: what is left of the budget
                # (an abrupt stop: as long as a cancelled call takes to end).
                left = ABORT_WAIT if stop_by is None else stop_by - time.monotonic()
                await loader.aclose(max(0.0, left))


async def _stop_when(trigger: Callable[[], Awaitable[object]], daemon: Daemon) -> None:
    await trigger()
    daemon.stop()


async def _initial_scan(loader: Reconciler, tg: anyio.abc.TaskGroup, bound: float) -> None:
    """Run the initial scan; return when it is done, or after ``bound`` seconds with the
    plug-ins still compiling (a big component's first compile takes tens of seconds) left to
    finish in the background: READY does not wait for them, calls to them are answered
    ``unavailable`` with kind ``loading`` meanwhile, and ``plugin.loaded`` follows."""
    done = anyio.Event()

    async def scan() -> None:
        try:
            await loader.initial_scan()
        finally:
            loader.registry.loading = frozenset()
            done.set()

    tg.start_soon(scan)
    with anyio.move_on_after(bound):
        await done.wait()
    if not done.is_set():
        # Each name of the scan holds its lock until it has loaded or failed.
        loader.registry.loading = pending = loader.busy()
        log.info(
            "ready before %d plug-ins finished loading (over ready_timeout_ms): %s",
            len(pending),
            ", ".join(sorted(pending)),
        )


def _engines(config: DaemonConfig) -> Engines:
    engines = Engines(
        tick_ms=config.tick_ms,
        target="pulley64" if config.engine == "pulley" else None,
        cache_dir=config.cache_dir,
        cache_max_bytes=config.cache_max_size,
    )
    # Plug-ins' durable state: the folder is made when the first plug-in that uses it loads.
    state_dir = config.state_dir or default_state_dir(os.environ)
    engines.states = StateStores(state_dir, sync=config.state_sync)
    return engines


def _loader(config: DaemonConfig, engines: Engines, bus: EventBus, dirs: list[Path]) -> Reconciler:
    return Reconciler(
        engines=engines,
        registry=Registry(),
        bus=bus,
        dirs=dirs,
        allow_absolute_preopens=config.allow_absolute_preopens,
        max_module_size=config.max_module_size,
        start_timeout_ms=config.start_timeout_ms,
        trust=trust_policy(config),
    )


def _metrics(config: DaemonConfig, daemon: Daemon, tg: anyio.abc.TaskGroup) -> CollectorRegistry:
    """What wasmd.metrics renders; also written to ``metrics_textfile`` if the config names
    one, by a task that rewrites it every ``metrics_interval_ms``."""
    collector = WasmdCollector(
        daemon.registry, daemon.loader.accounts, lambda: _daemon_readings(daemon), time.time()
    )
    metrics = collector_registry(collector)
    metrics.register(StateCollector(daemon.registry))
    if config.metrics_textfile is not None:
        interval = config.metrics_interval_ms / 1000
        tg.start_soon(write_textfile_forever, config.metrics_textfile, metrics, interval)
    return metrics


def _daemon_readings(daemon: Daemon) -> dict[str, float]:
    """The daemon-wide numbers wasmd.metrics exposes (metrics.DAEMON_METRICS)."""
    readings: dict[str, float] = {
        "plugins": daemon.plugins,
        "event_subscribers": daemon.bus.subscribers,
        "events_dropped_total": daemon.bus.dropped,
    }
    if daemon.server is not None:
        counters = daemon.server.counters
        readings.update(
            connections=counters.connections,
            connections_total=counters.connections_total,
            connections_refused_total=counters.refused,
            requests_total=counters.requests,
            protocol_errors_total=counters.protocol_errors,
        )
    return readings


def _server(
    config: DaemonConfig,
    daemon: Daemon,
    engines: Engines,
    tg: anyio.abc.TaskGroup,
    metrics: CollectorRegistry,
) -> RpcServer:
    """The RPC server: built-ins, dispatch to plug-ins, and the connection limits."""
    counters = ServerCounters()
    loading = LoadBuiltins(daemon.loader, allowed_load_uids(config, os.getuid()))
    builtins = Builtins(
        daemon.registry,
        daemon.bus,
        counters,
        daemon.reload,
        engines.cache_stats,
        events_outbox_limit=config.events_outbox_limit,
        metrics=lambda: render_answer(metrics, config.max_message_size),
        check_reload=loading.check_peer,
    )
    server: RpcServer

    def on_loop(func: Callable[..., object], *args: Any) -> None:
        server.on_loop(func, *args)

    # wasmd.state and its kin (statecontrol.py): for the peers wasmd.load is for.
    states = StateBuiltins(engines.states, daemon.registry, loading.check_peer)
    methods = builtin_methods(builtins, loading) | states.methods()
    handlers, on_loop_names, control = dispatch_tables(methods)
    dispatcher = Dispatcher(
        daemon.registry,
        handlers,
        loop_builtins=on_loop_names,
        control=control,
        on_loop=on_loop,
        spawn=tg.start_soon,
    )
    server = RpcServer(
        dispatcher,
        counters=counters,
        limits=ServerLimits(
            max_message_size=config.max_message_size,
            max_in_flight=config.max_in_flight,
            max_connections=config.max_connections,
            max_connections_per_uid=config.max_connections_per_uid,
            frame_timeout=config.frame_timeout_ms / 1000,
            max_buffered=config.max_buffered,
            max_unread=config.max_unread,
        ),
        is_control=dispatcher.is_control,
        allow_uids=allowed_uids(config, os.getuid()),
        allow_gids=allowed_gids(config),
    )
    return server


def _listener(
    config: DaemonConfig, daemon: Daemon, inherited: socket.socket | None
) -> socket.socket:
    """The listening socket: systemd's (socket activation), or one bound at the config's
    path (recorded on ``daemon``, to be removed when it stops)."""
    if inherited is not None:
        return inherited
    daemon.socket_path = config.socket_path(os.environ, os.getuid())
    return open_listener(daemon.socket_path, config.socket_mode, min(config.max_connections, 4096))


def _announce_ready(daemon: Daemon, notifier: Notifier | None) -> None:
    daemon.bus.emit(
        "daemon.ready",
        {
            "socket": str(daemon.socket_path or "(inherited)"),
            "plugins": daemon.plugins,
            "failed": daemon.failed,
            "loading": len(daemon.registry.loading),  # still compiling past ready_timeout_ms
        },
    )
    if notifier is not None:
        notifier.ready(daemon.status())


def _utf8_dirs(dirs: Sequence[Path]) -> list[Path]:
    """The search path without directories whose path is not UTF-8 (each reported once):
    the paths of their plug-ins could be neither fingerprinted nor sent to clients."""
    usable = []
    for directory in dirs:
        if is_utf8(str(directory)):
            usable.append(directory)
        else:
            log.warning(
                "%s: ignored: the plug-in directory's path is not UTF-8", printable(directory)
            )
    return usable


def _stopping(bus: EventBus, notifier: Notifier | None) -> None:
    bus.emit("daemon.stopping", {})
    if notifier is not None:
        notifier.notify(stopping=1)


async def _watchdog(notifier: Notifier, daemon: Daemon, interval: float) -> None:
    """Ping from the event loop itself: if the loop hangs, the pings stop and systemd acts."""
    while True:
        notifier.notify(watchdog=1, status=daemon.status())
        await anyio.sleep(interval)
