"""``wasmd.load`` and ``wasmd.unload``: changing the running plug-in set on request.

Theory of operation (DESIGN.md section 1, "Loading and unloading on request"):

- ``wasmd.load [path]`` takes an absolute path to a plug-in file or folder. If it is the
  search path's own choice for its name, the name is simply reconciled again (this is how a
  plug-in unloaded on request comes back without a change on disk). Otherwise the plug-in is
  loaded *from the path*: it holds its name, whatever the search path holds, until
  ``wasmd.unload``; it is not watched, and loading the same path again replaces it with what
  the file holds now. A name already served from another file is refused (``invalid_params``,
  "unload it first"): a request never silently takes over a name other clients call.
- ``wasmd.unload [name]`` removes the plug-in; calls already running finish on it. The name
  stays empty until the search path's files for it change, or ``wasmd.load`` brings it back.
- Both are allowed only to the peers ``load_uids`` lists (by default root and the daemon's own
  uid): loading runs code of the caller's choosing in the daemon, and unloading takes a plug-in
  away from everyone else. Both emit ``plugin.loaded``/``plugin.reloaded``/``plugin.unloaded``
  with ``how`` ("load" or "unload") and the requesting ``uid``.

They change loop state (the registry, the loader's per-name locks), so they run on the loop
(``LOOP_BUILTINS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .discovery import PluginSource, name_problem, source_from_path
from .dispatch import Builtin
from .errors import ConfigError, ErrorCode, PluginLoadError, WasmdError
from .loader import Loader, off_loop, search_path_winners, take_snapshot
from .registry import Entry
from .server import Session


class LoadBuiltins:
    """The ``wasmd.load`` and ``wasmd.unload`` built-ins of one daemon."""

    def __init__(self, loader: Loader, load_uids: Collection[int]) -> None:
        self.loader = loader
        self.load_uids = frozenset(load_uids)

    def table(self) -> dict[str, Builtin]:
        return {"load": self.load, "unload": self.unload}

    def _check_peer(self, session: Session, method: str) -> int:
        uid = session.peer.uid
        if uid not in self.load_uids:
            raise WasmdError(
                ErrorCode.PERMISSION_DENIED,
                f"uid {uid} may not use wasmd.{method} (config load_uids)",
            )
        return uid

    def load(self, session: Session, params: list[Any]) -> Awaitable[dict[str, Any]]:
        uid = self._check_peer(session, "load")
        if len(params) != 1 or not isinstance(params[0], str) or "\0" in params[0]:
            raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.load takes [path]")
        path = Path(params[0])
        if not path.is_absolute():
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"wasmd.load takes an absolute path: {path}")
        return load_path(self.loader, path, uid)

    def unload(self, session: Session, params: list[Any]) -> Awaitable[dict[str, Any]]:
        uid = self._check_peer(session, "unload")
        if len(params) != 1 or not isinstance(params[0], str) or name_problem(params[0]):
            raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.unload takes [name]")
        return unload(self.loader, params[0], uid)


def _summary(entry: Entry, how: str) -> dict[str, Any]:
    summary = entry.summary()
    return {key: summary[key] for key in ("name", "version", "path", "abi", "exports")} | {
        "how": how
    }


async def load_path(loader: Loader, path: Path, uid: int) -> dict[str, Any]:
    """Load the plug-in at ``path`` (see the module docstring); its summary and ``how``."""
    try:
        source = await anyio.to_thread.run_sync(source_from_path, path)
    except ConfigError as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, str(exc)) from None
    name = source.name
    winners, _, _ = await anyio.to_thread.run_sync(search_path_winners, loader.dirs, [name])
    winner = winners[name]
    if winner is not None and winner.module_path == source.module_path:
        return await _from_search_path(loader, name)
    async with loader.lock_for(name):
        current = loader.registry.get(name)
        if current is not None and current.source.module_path != source.module_path:
            raise WasmdError(
                ErrorCode.INVALID_PARAMS,
                f"a plug-in named {name} is loaded already, from {current.source.module_path}; "
                f"`wasmd unload {name}` first",
            )
        entry = await _build(loader, source)
        loader.unloaded.pop(name, None)
        if current is not None and current.fingerprint == entry.fingerprint and current.pool:
            assert entry.pool is not None
            entry.pool.close()  # the very same bytes: keep the version already serving
            return _summary(current, "load")
        loader._install(entry, current, {"how": "load", "uid": uid})
        return _summary(entry, "load")


async def _from_search_path(loader: Loader, name: str) -> dict[str, Any]:
    loader.unloaded.pop(name, None)
    await loader.reconcile([name])
    entry = loader.registry.get(name)
    if entry is None or entry.pool is None:
        reason = entry.error if entry is not None else "it is not on the search path any more"
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"cannot load {name}: {reason}")
    return _summary(entry, "search_path")


async def _build(loader: Loader, source: PluginSource) -> Entry:
    try:
        # off_loop, not anyio's worker: an error there would keep the bytes read in a cycle.
        snapshot = await off_loop(take_snapshot, source, loader.max_module_size)
        pool = await loader.build(snapshot)
    except ConfigError as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"{source.name}: bad manifest: {exc}") from None
    except PluginLoadError as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"cannot load {exc}") from None
    return Entry(source.name, source, pool, fingerprint=snapshot.fingerprint)


async def unload(loader: Loader, name: str, uid: int) -> dict[str, Any]:
    """Remove NAME until the next change on disk or ``wasmd.load`` (module docstring)."""
    async with loader.lock_for(name):
        entry = loader.registry.get(name)
        if entry is None:
            raise WasmdError(ErrorCode.METHOD_NOT_FOUND, f"no plug-in named {name!r}")
        loader.unloaded[name] = await anyio.to_thread.run_sync(_disk_fingerprint, loader, name)
        loader._unload(entry, {"how": "unload", "uid": uid})
        summary = entry.summary()
        return {key: summary[key] for key in ("name", "version", "path")} | {"how": "unload"}


def _disk_fingerprint(loader: Loader, name: str) -> str | None:
    """The fingerprint of what the search path holds for NAME now (blocking); None if it
    holds nothing readable."""
    winners, _, _ = search_path_winners(loader.dirs, [name])
    source = winners[name]
    if source is None:
        return None
    try:
        return take_snapshot(source, loader.max_module_size).fingerprint
    except (PluginLoadError, ConfigError):
        return None
