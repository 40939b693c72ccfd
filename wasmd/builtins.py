"""The built-in ``wasmd.*`` methods (DESIGN.md section 1): introspection and the event stream.

``builtin_methods`` is the one table of every built-in: its handler, whether it runs on
the event loop (``on_loop``: it touches the loop's state, such as subscriptions and the
plug-in set) or answers on the thread that read the request, and whether it is control
traffic (``control``: run even past a connection's in-flight limit, see session.py). The
dispatcher takes it as plain values (``dispatch_tables``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any

from .configure import configure
from .discovery import name_problem
from .dispatch import Builtin
from .errors import ErrorCode, WasmdError, echo
from .events import EventBus, Subscription
from .loading import LoadBuiltins
from .peers import supplementary_groups
from .plugins.reconciler import ReloadReport
from .plugins.registry import Registry
from .runtime import WASMTIME_VERSION
from .server import ServerCounters, Session
from .statestore import store_usage


@dataclass(frozen=True)
class Method:
    """One built-in: its handler, whether it must run on the event loop, and whether it is
    control traffic (False: it builds or drops plug-ins, and waits for room like a call)."""

    handler: Builtin
    on_loop: bool = False
    control: bool = True


def _no_params(method: str, params: list[Any]) -> None:
    if params:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"wasmd.{method} takes no params")


class Builtins:
    def __init__(
        self,
        registry: Registry,
        bus: EventBus,
        counters: ServerCounters,
        reload: Callable[[set[str] | None], Awaitable[ReloadReport]],
        cache_stats: Callable[[], dict[str, int] | None] = lambda: None,
        *,
        events_outbox_limit: int,
        metrics: Callable[[], str] = lambda: "",
        check_reload: Callable[[Session, str], object] = lambda session, method: None,
    ) -> None:
        self.registry = registry
        self.bus = bus
        self.counters = counters
        self._reload = reload
        # Who may rescan (wasmd.reload): a full rescan reads every plug-in directory, as
        # costly as a load, so the daemon asks load_uids (LoadBuiltins.check_peer).
        self._check_reload = check_reload
        self._cache_stats = cache_stats
        self._metrics = metrics
        self.started = time.time()
        self._subscriptions: dict[int, Subscription] = {}
        # Events yield to responses: once more than this waits unsent for a subscriber, its
        # events stay in its bounded subscription buffer (which drops the oldest) until the
        # peer reads again.
        self.events_outbox_limit = events_outbox_limit

    def ping(self, session: Session, params: list[Any]) -> str:
        _no_params("ping", params)
        return "pong"

    def version(self, session: Session, params: list[Any]) -> dict[str, str]:
        _no_params("version", params)
        return {
            "wasmd": version("wasmd"),
            "wasmtime": WASMTIME_VERSION,
            "python": platform.python_version(),
        }

    def list_plugins(self, session: Session, params: list[Any]) -> list[dict[str, Any]]:
        _no_params("list", params)
        return [entry.summary() for entry in self.registry]

    def describe(self, session: Session, params: list[Any]) -> dict[str, Any]:
        if len(params) != 1 or not isinstance(params[0], str):
            raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.describe takes [name]")
        entry = self.registry.get(params[0])
        if entry is None:
            raise WasmdError(ErrorCode.METHOD_NOT_FOUND, f"no plug-in named {echo(params[0])}")
        description = entry.summary()
        if entry.pool is not None:
            # Configuration values may be secrets: only a caller the plug-in admits sees them.
            peer = session.peer
            admitted = entry.pool.plugin.manifest.admits(
                peer.uid, peer.gid, lambda: supplementary_groups(peer.pid)
            )
            # A plug-in loaded by path: its manifest was checked readable for its loader
            # only, so only that uid and root see its values.
            if entry.loaded_by is not None and peer.uid not in (0, entry.loaded_by):
                admitted = False
            description.update(entry.pool.plugin.describe(with_values=admitted))
            description["stats"] = asdict(entry.pool.stats())
            plugin = entry.pool.plugin
            description["store"] = store_usage(plugin.state, plugin.manifest.state)
        return description

    def stats(self, session: Session, params: list[Any]) -> dict[str, Any]:
        _no_params("stats", params)
        counters = self.counters
        return {
            "daemon": {
                "uptime_s": round(time.time() - self.started, 3),
                "connections": counters.connections,
                "connections_total": counters.connections_total,
                "connections_refused": counters.refused,
                "requests": counters.requests,
                "protocol_errors": counters.protocol_errors,
                "plugins": len(self.registry),
                "subscribers": self.bus.subscribers,
                "events_dropped": self.bus.dropped,
                "compile_cache": self._cache_stats(),
            },
            "plugins": {
                entry.name: asdict(entry.pool.stats())
                | {"store": store_usage(entry.pool.plugin.state, entry.pool.plugin.manifest.state)}
                for entry in self.registry
                if entry.pool is not None
            },
        }

    def metrics(self, session: Session, params: list[Any]) -> str:
        """The Prometheus exposition text (wasmd.metrics; DESIGN.md section 1)."""
        _no_params("metrics", params)
        return self._metrics()

    def subscribe(self, session: Session, params: list[Any]) -> bool:
        prefixes: tuple[str, ...] = ()
        if params:
            if (
                len(params) != 1
                or not isinstance(params[0], list)
                or not all(isinstance(p, str) for p in params[0])
            ):
                raise WasmdError(
                    ErrorCode.INVALID_PARAMS, "wasmd.subscribe takes [] or [[type-prefix, ...]]"
                )
            prefixes = tuple(params[0])
        key = id(session)
        previous = self._subscriptions.pop(key, None)
        if previous is not None:
            self.bus.unsubscribe(previous)
        else:
            session.on_close(lambda: self._drop(key))

        def pump() -> None:
            # Only hand events to the connection while it keeps up; otherwise they wait in
            # the subscription's bounded buffer, which drops the oldest.
            if key not in self._subscriptions or session.outbox_bytes > self.events_outbox_limit:
                return
            for event in subscription.take():
                session.notify("wasmd.event", [event])

        subscription = self.bus.subscribe(prefixes, pump)
        self._subscriptions[key] = subscription
        session.on_drained(pump)
        return True

    def _drop(self, key: int) -> None:
        subscription = self._subscriptions.pop(key, None)
        if subscription is not None:
            self.bus.unsubscribe(subscription)

    def unsubscribe(self, session: Session, params: list[Any]) -> bool:
        _no_params("unsubscribe", params)
        self._drop(id(session))
        session.on_drained(None)
        return True

    def reload(self, session: Session, params: list[Any]) -> Awaitable[dict[str, list[str]]]:
        self._check_reload(session, "reload")
        names: set[str] | None = None
        if params:
            if len(params) != 1 or not isinstance(params[0], str) or name_problem(params[0]):
                raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.reload takes [] or [name]")
            names = {params[0]}

        async def rescan() -> dict[str, list[str]]:
            return (await self._reload(names)).to_dict()

        return rescan()


def builtin_methods(core: Builtins, loading: LoadBuiltins) -> dict[str, Method]:
    """Every ``wasmd.*`` method of one daemon: the one table (module docstring)."""
    return {
        "ping": Method(core.ping),
        "version": Method(core.version),
        "list": Method(core.list_plugins),
        "describe": Method(core.describe),
        "stats": Method(core.stats),
        "metrics": Method(core.metrics),
        "configure": Method(configure),
        "subscribe": Method(core.subscribe, on_loop=True),
        "unsubscribe": Method(core.unsubscribe, on_loop=True),
        "reload": Method(core.reload, on_loop=True, control=False),
        "load": Method(loading.load, on_loop=True, control=False),
        "unload": Method(loading.unload, on_loop=True, control=False),
    }


def dispatch_tables(
    methods: dict[str, Method],
) -> tuple[dict[str, Builtin], frozenset[str], frozenset[str]]:
    """The table as ``Dispatcher`` takes it: handlers by name, the names run on the loop, and
    the names that are control traffic."""
    handlers = {name: method.handler for name, method in methods.items()}
    on_loop = frozenset(name for name, method in methods.items() if method.on_loop)
    return handlers, on_loop, frozenset(name for name, method in methods.items() if method.control)
