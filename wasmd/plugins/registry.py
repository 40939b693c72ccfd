"""The registry: which plug-in version answers for each name right now.

Entries are replaced whole, on the event loop, by one dict assignment: a request looks up
its plug-in once and keeps that version for the rest of its life, so swapping in a new
version never disturbs a call already under way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ..discovery import PluginSource
from ..errors import ErrorCode, WasmdError, echo
from ..runtime import PluginPool


@dataclass(frozen=True, eq=False)
class Entry:
    """A name's current state: a running pool, or the reason it failed to load."""

    name: str
    source: PluginSource
    pool: PluginPool | None
    error: str | None = None
    fingerprint: str | None = None  # of the files this entry was built from (see loader)
    loaded_by: int | None = None  # the uid whose wasmd.load brought it (None: search path)
    loaded_at: float = field(default_factory=time.time)

    @property
    def state(self) -> str:
        if self.pool is None:
            return "failed"
        return "closing" if self.pool.closing else "ready"

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "name": self.name,
            "path": str(self.source.module_path),
            "state": self.state,
            "loaded_at": self.loaded_at,
        }
        if self.pool is None:
            summary.update(version=None, abi=None, exports=[], calls=0, errors=0, error=self.error)
            return summary
        plugin = self.pool.plugin
        stats = self.pool.stats()
        summary.update(
            version=plugin.short_version,
            abi=plugin.abi.name,
            exports=sorted(plugin.calls),
            calls=stats.calls,
            errors=sum(stats.errors.values()),
        )
        return summary


class Served(Protocol):
    """What a registry holds per name: a running pool, or why there is none."""

    @property
    def name(self) -> str: ...

    @property
    def pool(self) -> PluginPool | None: ...

    @property
    def error(self) -> str | None: ...


S = TypeVar("S", bound=Served)


class PluginTable(Generic[S]):
    """Which version answers for each name, and the one resolver of a plug-in's
    ``wasmd.call`` (``pool_of``): the daemon's ``Registry`` of ``Entry`` and
    ``wasmd.Loader``'s table of ``Plugin`` handles are both one."""

    def __init__(self) -> None:
        self._entries: dict[str, S] = {}
        # Names of the initial scan still compiling after READY (daemon.py); replaced whole.
        self.loading: frozenset[str] = frozenset()

    def get(self, name: str) -> S | None:
        return self._entries.get(name)

    def missing(self, name: str) -> WasmdError:
        """The answer to a call of a name with no entry: still loading, or no such plug-in."""
        if name in self.loading:
            return WasmdError(
                ErrorCode.UNAVAILABLE,
                f"plug-in {name} is still loading (compiling); try again shortly",
                {"kind": "loading"},
            )
        return WasmdError(ErrorCode.METHOD_NOT_FOUND, f"no plug-in named {echo(name)}")

    def pool_of(self, name: str) -> PluginPool:
        """NAME's running version, for a plug-in's ``wasmd.call`` (runtime/nested.py); raises
        ``WasmdError`` as a request for it would be answered."""
        entry = self._entries.get(name)
        if entry is None:
            raise self.missing(name)
        pool = entry.pool
        if pool is None:
            raise WasmdError(ErrorCode.UNAVAILABLE, f"plug-in {name} failed to load: {entry.error}")
        return pool

    def install(self, entry: S) -> S | None:
        """Make ``entry`` current for its name; the entry it replaced, if any."""
        previous = self._entries.get(entry.name)
        self._entries[entry.name] = entry
        return previous

    def remove(self, name: str) -> S | None:
        return self._entries.pop(name, None)

    def __iter__(self) -> Iterator[S]:
        # list() first: readers on other threads iterate while the loop installs entries.
        return iter(sorted(list(self._entries.values()), key=lambda entry: entry.name))

    def __len__(self) -> int:
        return len(self._entries)


class Registry(PluginTable[Entry]):
    """The daemon's registry: entries replaced whole, on the event loop (module docstring)."""

    def pool_for_loaded_by_path(self, name: str) -> PluginPool:
        """``pool_of`` for a plug-in loaded by path (``wasmd.load``): a name in a callee's
        ``[access] plugins`` trusts the plug-in of that name from the plug-in directories,
        so such a caller reaches only callees whose list holds ``"*"`` (DESIGN.md section 8)."""
        pool = self.pool_of(name)
        if "*" not in pool.plugin.manifest.access_plugins:
            raise WasmdError(
                ErrorCode.PERMISSION_DENIED,
                f"plug-in {name} trusts callers by name, and only those of the plug-in "
                "directories: a plug-in loaded by path reaches it only if its [access] plugins "
                'holds "*"',
            )
        return pool
