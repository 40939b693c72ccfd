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

They change loop state (the registry, the reconciler's per-name locks), so they run on the loop
(``on_loop`` in builtins.py's table).
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from typing import Any

import anyio
import anyio.to_thread

from .discovery import name_problem
from .errors import ConfigError, ErrorCode, PluginLoadError, WasmdError
from .peers import Peer, supplementary_groups
from .plugins.access import Caller
from .plugins.build import off_loop
from .plugins.by_path import CheckedSource, check_as_caller, preopens_as_caller, same_file, shown
from .plugins.reconciler import Reconciler, search_path_winners
from .plugins.registry import Entry
from .plugins.snapshot import take_snapshot
from .server import Session


class LoadBuiltins:
    """The ``wasmd.load`` and ``wasmd.unload`` built-ins of one daemon."""

    def __init__(self, loader: Reconciler, load_uids: Collection[int]) -> None:
        self.loader = loader
        self.load_uids = frozenset(load_uids)

    def check_peer(self, session: Session, method: str) -> int:
        """The peer's uid if ``load_uids`` lets it use ``wasmd.METHOD``; else
        ``permission_denied``. (``wasmd.reload`` asks the same: builtins.py.)"""
        uid = session.peer.uid
        if uid not in self.load_uids:
            raise WasmdError(
                ErrorCode.PERMISSION_DENIED,
                f"uid {uid} may not use wasmd.{method} (config load_uids)",
            )
        return uid

    def load(self, session: Session, params: list[Any]) -> Awaitable[dict[str, Any]]:
        self.check_peer(session, "load")
        if len(params) != 1 or not isinstance(params[0], str) or "\0" in params[0]:
            raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.load takes [path]")
        path = params[0]
        if not path.startswith("/"):
            raise WasmdError(
                ErrorCode.INVALID_PARAMS, f"wasmd.load takes an absolute path: {shown(path)}"
            )
        return _load_for(self.loader, path, session.peer)

    def unload(self, session: Session, params: list[Any]) -> Awaitable[dict[str, Any]]:
        uid = self.check_peer(session, "unload")
        if len(params) != 1 or not isinstance(params[0], str) or name_problem(params[0]):
            raise WasmdError(ErrorCode.INVALID_PARAMS, "wasmd.unload takes [name]")
        return unload(self.loader, params[0], uid)


def _summary(entry: Entry, how: str) -> dict[str, Any]:
    summary = entry.summary()
    return {key: summary[key] for key in ("name", "version", "path", "abi", "exports")} | {
        "how": how
    }


async def _load_for(loader: Reconciler, path: str, peer: Peer) -> dict[str, Any]:
    # The peer's groups are read from /proc: off the loop, with the rest of the checks.
    groups = await anyio.to_thread.run_sync(supplementary_groups, peer.pid)
    return await load_path(loader, path, Caller(peer.uid, peer.gid, groups))


async def load_path(loader: Reconciler, path: str, caller: Caller) -> dict[str, Any]:
    """Load the plug-in at ``path`` for ``caller`` (see the module docstring); its summary
    and ``how``."""
    checked = await anyio.to_thread.run_sync(check_as_caller, caller, path, loader.dirs)
    source = checked.source
    name = source.name
    winners, _, _ = await anyio.to_thread.run_sync(search_path_winners, loader.dirs, [name])
    winner = winners[name]
    if winner is not None and same_file(winner.module_path, source.module_path):
        return await _from_search_path(loader, name)
    async with loader.lock_for(name):
        current = loader.registry.get(name)
        if current is not None and not same_file(current.source.module_path, source.module_path):
            raise WasmdError(
                ErrorCode.INVALID_PARAMS,
                f"a plug-in named {name} is loaded already, from {current.source.module_path}; "
                f"`wasmd unload {name}` first",
            )
        entry = await _build(loader, checked)
        loader.bring_back(name)
        if current is not None and current.fingerprint == entry.fingerprint and current.pool:
            assert entry.pool is not None
            entry.pool.close()  # the very same bytes: keep the version already serving
            return _summary(current, "load")
        loader.install(entry, current, {"how": "load", "uid": caller.uid})
        return _summary(entry, "load")


async def _from_search_path(loader: Reconciler, name: str) -> dict[str, Any]:
    loader.bring_back(name)
    await loader.reconcile([name])
    entry = loader.registry.get(name)
    if entry is None or entry.pool is None:
        reason = entry.error if entry is not None else "it is not on the search path any more"
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"cannot load {name}: {reason}")
    return _summary(entry, "search_path")


async def _build(loader: Reconciler, checked: CheckedSource) -> Entry:
    source = checked.source
    try:
        # off_loop, not anyio's worker: an error there would keep the bytes read in a cycle.
        snapshot = await off_loop(take_snapshot, source, loader.max_module_size)
        checked.same_files(snapshot.stamps)
        checked.preopens = await off_loop(preopens_as_caller, checked, snapshot.manifest_text)
        pool = await loader.build(snapshot, loaded_by_path=True)
    except ConfigError as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"{source.name}: bad manifest: {exc}") from None
    except PluginLoadError as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"cannot load {exc}") from None
    try:
        checked.same_grants(pool.plugin.grants)
    except WasmdError:
        pool.close()
        raise
    return Entry(
        source.name, source, pool, fingerprint=snapshot.fingerprint, loaded_by=checked.caller.uid
    )


async def unload(loader: Reconciler, name: str, uid: int) -> dict[str, Any]:
    """Remove NAME until the next change on disk or ``wasmd.load`` (module docstring)."""
    async with loader.lock_for(name):
        entry = loader.registry.get(name)
        if entry is None:
            raise WasmdError(ErrorCode.METHOD_NOT_FOUND, f"no plug-in named {name!r}")
        fingerprint = await anyio.to_thread.run_sync(loader.disk_fingerprint, name)
        loader.unload_on_request(entry, fingerprint, uid)
        summary = entry.summary()
        return {key: summary[key] for key in ("name", "version", "path")} | {"how": "unload"}
