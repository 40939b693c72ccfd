"""The operators' built-ins for plug-ins' durable state: ``wasmd.state``, ``wasmd.state_export``,
``wasmd.state_import`` and ``wasmd.state_clear`` (``wasmd state`` on the command line).

Keys and values may be anything a plug-in keeps (tokens, users' data), so every one of them
is allowed only to the peers ``load_uids`` lists, as ``wasmd.load`` is. A name's state is
there whether or not a plug-in of that name is loaded: removing a plug-in keeps it until
``wasmd.state_clear``. Each request takes the namespace's lock as a call does (a running
call finishes first; past ``OPERATOR_WAIT_S`` the answer is ``busy``), so what an export
sees is what calls committed, and an import is one transaction: all of it, or, past the
plug-in's quota, none (``resource_exhausted``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .builtins import Method
from .discovery import name_problem
from .errors import ErrorCode, WasmdError
from .manifest import StatePolicy
from .plugins.registry import Registry
from .server import Session
from .statestore import MAX_KEY, MAX_VALUE, SUFFIX, StateError, StateStores


class StateBuiltins:
    """The state built-ins of one daemon (``stores`` None: no state directory);
    ``check_peer(session, method)`` refuses a peer ``load_uids`` does not list."""

    def __init__(
        self,
        stores: StateStores | None,
        registry: Registry,
        check_peer: Callable[[Session, str], int],
    ) -> None:
        self.stores = stores
        self.registry = registry
        self._check_peer = check_peer

    def methods(self) -> dict[str, Method]:
        """Their entries in the built-ins' table (builtins.py): off the loop, and not control
        traffic: each may wait for a running call and read or write a whole database."""
        return {
            "state": Method(self.listing, control=False),
            "state_export": Method(self.export, control=False),
            "state_import": Method(self.import_, control=False),
            "state_clear": Method(self.clear, control=False),
        }

    def listing(self, session: Session, params: list[Any]) -> dict[str, Any]:
        """``[]``: the names with state; ``[name]``: its keys and their value sizes."""
        stores = self._allowed(session, "state")
        if not params:
            names = sorted(
                p.name.removesuffix(SUFFIX)
                for p in _entries(stores)
                if p.name.endswith(SUFFIX) and not name_problem(p.name.removesuffix(SUFFIX))
            )
            return {"directory": str(stores.directory), "names": names}
        name = self._name(params, "wasmd.state takes [] or [name]")
        if not stores.exists(name):
            return {"name": name, "keys": 0, "bytes": 0, "entries": []}
        with stores.open(name).operating() as held:
            sizes = held.sizes()
            usage = held.usage()
        return {"name": name, **usage, "entries": [[k, n] for k, n in sizes]}

    def export(self, session: Session, params: list[Any]) -> dict[str, Any]:
        stores = self._allowed(session, "state_export")
        name = self._name(params, "wasmd.state_export takes [name]")
        if not stores.exists(name):
            return {"name": name, "items": []}
        with stores.open(name).operating() as held:
            items = held.items()
        return {"name": name, "items": [[k, v] for k, v in items]}

    def import_(self, session: Session, params: list[Any]) -> dict[str, Any]:
        """``[name, [[key, value], ...], replace]``: set those keys (after deleting every
        key first, with ``replace``), within the plug-in's quota, in one transaction."""
        stores = self._allowed(session, "state_import")
        usage = "wasmd.state_import takes [name, [[key, value], ...], replace]"
        if len(params) != 3 or not isinstance(params[1], list) or type(params[2]) is not bool:
            raise WasmdError(ErrorCode.INVALID_PARAMS, usage)
        name = self._name(params[:1], usage)
        items = [_item(i, item) for i, item in enumerate(params[1])]
        quota = self._quota(name)
        with stores.open(name).operating() as held:
            if params[2]:
                held.clear()
            for key, value in items:
                if not held.put(key, value, quota):
                    raise WasmdError(
                        ErrorCode.RESOURCE_EXHAUSTED,
                        f"the import is over {name}'s quota ({quota.max_bytes} bytes, "
                        f"{quota.max_keys} keys): nothing was imported",
                    )
            return {"name": name, **held.usage()}

    def clear(self, session: Session, params: list[Any]) -> dict[str, Any]:
        """Delete every key; the files too when no plug-in of that name is loaded."""
        stores = self._allowed(session, "state_clear")
        name = self._name(params, "wasmd.state_clear takes [name]")
        if not stores.exists(name):
            return {"name": name, "cleared": 0}
        entry = self.registry.get(name)
        if entry is None or entry.pool is None or entry.pool.plugin.state is None:
            # Nothing uses the file: it goes, even one that cannot be opened (corrupt).
            cleared: int | None = None
            try:
                with stores.open(name).operating() as held:
                    cleared = held.keys
            except StateError:
                pass
            stores.remove(name)
            return {"name": name, "cleared": cleared}
        with stores.open(name).operating() as held:
            cleared = held.keys
            held.clear()
        return {"name": name, "cleared": cleared}

    # --- shared ---------------------------------------------------------------------------

    def _allowed(self, session: Session, method: str) -> StateStores:
        self._check_peer(session, method)
        if self.stores is None:
            raise WasmdError(ErrorCode.UNAVAILABLE, "this daemon keeps no state")
        return self.stores

    @staticmethod
    def _name(params: list[Any], usage: str) -> str:
        if len(params) != 1 or not isinstance(params[0], str) or name_problem(params[0]):
            raise WasmdError(ErrorCode.INVALID_PARAMS, usage)
        return params[0]

    def _quota(self, name: str) -> StatePolicy:
        entry = self.registry.get(name)
        if entry is None or entry.pool is None:
            return StatePolicy()
        return entry.pool.plugin.manifest.state


def _entries(stores: StateStores) -> list[Any]:
    try:
        return list(stores.directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise WasmdError(ErrorCode.UNAVAILABLE, f"{stores.directory}: {exc.strerror}") from None


def _item(position: int, item: Any) -> tuple[bytes, bytes]:
    check: Callable[[Any, int], bool] = lambda v, n: isinstance(v, bytes) and len(v) <= n  # noqa: E731
    if not (
        isinstance(item, list)
        and len(item) == 2
        and check(item[0], MAX_KEY)
        and check(item[1], MAX_VALUE)
    ):
        raise WasmdError(
            ErrorCode.INVALID_PARAMS,
            f"item {position} must be [key, value]: bin of at most {MAX_KEY} and {MAX_VALUE} bytes",
        )
    return item[0], item[1]
