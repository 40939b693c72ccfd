"""Turning what the plug-in directories hold into running plug-ins, and keeping them in step.

Theory of operation. Every decision is made from what is on disk *now*, never from what a
file-system event claims happened: ``reconcile(names)`` finds each name's winning source on
the search path (first directory wins), takes a ``Snapshot`` of its bytes (module and
manifest, read together and fingerprinted), and compares it with the registry:

- no source, but an entry       -> unload: the entry leaves the registry, its pool drains;
- a source, no entry            -> load;
- a source whose fingerprint differs from the entry's -> reload: the new version is compiled
  and its instances started off the event loop, then swapped in by one registry assignment;
  calls already running finish on the old version, new calls reach the new one. If anything
  in the new version fails, the old version keeps serving and ``plugin.failed`` says why;
- the same fingerprint          -> nothing, and no event.

Two requests change this (wasmd/loading.py, through ``install``, ``unload_on_request`` and
``bring_back``): a plug-in loaded from a path (``wasmd.load``) holds its name until it is
unloaded, whatever the search path holds; a plug-in unloaded on request (``wasmd.unload``)
stays away while the search path's bytes for its name are the ones it was unloaded with
(``_unloaded``: name -> that fingerprint, None if there were none).

Every version, whoever asks for it, is built by ``build_pool`` (build.py): the one pipeline
of the plug-in set (snapshot -> folder rule -> trust check -> compile -> link -> pool), which
``wasmd.Loader`` (wasmd/library.py) and ``wasmd check`` (check.py) use too.

A name is reconciled by one task at a time (a lock per name), so racing batches cannot
interleave; each simply re-reads the disk. The blocking half (``build_pool``) runs in worker
threads, at most one per core, because compiling is CPU-bound; names are reconciled
independently, so one slow compile delays only its own plug-in. Those threads are daemon
threads the loop does not wait for when cancelled (``off_loop``): a SIGTERM during a long
compile stops the daemon at once. Instantiation (start functions, ``_initialize``) has its own
deadline, ``start_timeout_ms``.

A module file bigger than ``max_module_size`` fails to load without being read, and a
rescan does not read a file again whose stamp (device, inode, size, mtime, ctime) is that of
the last snapshot taken of it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from ..discovery import PluginSource, ScanProblem, Shadowed, printable, scan, scan_name
from ..errors import ConfigError, PluginLoadDeferred, PluginLoadError
from ..events import EventBus
from ..runtime import DEFAULT_START_TIMEOUT_MS, Engines, PluginPool
from ..runtime.account import Accounts
from .build import build_pool, off_loop
from .registry import Entry, Registry
from .snapshot import DEFAULT_MAX_MODULE_SIZE, ModuleTooBig, Snapshot, Stamp, take_snapshot
from .trust import TrustPolicy, TrustRefused

# The logger keeps the name operators filter the journal on.
log = logging.getLogger("wasmd.loader")


@dataclass
class ReloadReport:
    """What one reconcile changed; the result of ``wasmd.reload``."""

    loaded: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Unloaded on request (wasmd.unload) earlier, and its files have not changed since.
    still_unloaded: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {key: sorted(value) for key, value in vars(self).items()}


def search_path_winners(
    dirs: Sequence[Path], names: Iterable[str]
) -> tuple[dict[str, PluginSource | None], list[Shadowed], list[ScanProblem]]:
    """Each name's source on the search path now (blocking): first directory wins."""
    winners: dict[str, PluginSource | None] = {}
    shadowed: list[Shadowed] = []
    problems: list[ScanProblem] = []
    for name in names:
        winner = None
        for directory in dirs:
            source, found_problems = scan_name(directory, name)
            problems += found_problems
            if source is None:
                continue
            if winner is None:
                winner = source
            else:
                shadowed.append(Shadowed(name, winner.module_path, source.module_path))
        winners[name] = winner
    return winners, shadowed, problems


class Reconciler:
    """The daemon's plug-in set: reconciles the search path with the registry (module
    docstring). ``wasmd.Loader`` (library.py) is the in-process one; both build through
    ``build_pool``."""

    def __init__(
        self,
        *,
        engines: Engines,
        registry: Registry,
        bus: EventBus,
        dirs: Sequence[Path],
        allow_absolute_preopens: bool = False,
        max_module_size: int = DEFAULT_MAX_MODULE_SIZE,
        start_timeout_ms: int = DEFAULT_START_TIMEOUT_MS,
        trust: TrustPolicy | None = None,
    ) -> None:
        self.start_timeout_ms = start_timeout_ms
        self.trust = trust or TrustPolicy()
        # Per name served, kept across versions (wasmd.metrics reads them; account.py).
        self.accounts = Accounts()
        self.engines = engines
        self.max_module_size = max_module_size
        self.allow_absolute_preopens = allow_absolute_preopens
        self.registry = registry
        self.bus = bus
        self.dirs = tuple(dirs)
        self._compile_slots = anyio.CapacityLimiter(os.cpu_count() or 1)
        self._locks: dict[str, anyio.Lock] = {}
        self._rejected: dict[str, str] = {}  # name -> fingerprint of a version that failed
        # name -> (source, stamps, fingerprint) of its last snapshot read: unchanged files
        # are not read again
        self._seen: dict[str, tuple[PluginSource, tuple[Stamp, Stamp | None], str]] = {}
        self._shadowed: set[tuple[str, Path]] = set()
        self._problems: set[tuple[Path, str]] = set()
        self._unloaded: dict[str, str | None] = {}  # see the module docstring

    def lock_for(self, name: str) -> anyio.Lock:
        """The lock under which NAME is reconciled, loaded or unloaded."""
        return self._locks.setdefault(name, anyio.Lock())

    def busy(self) -> frozenset[str]:
        """The names being reconciled, loaded or unloaded now."""
        return frozenset(name for name, lock in self._locks.items() if lock.locked())

    async def initial_scan(self) -> ReloadReport:
        """Load every plug-in on the search path; returns when each has loaded or failed."""
        return await self.reconcile(None)

    async def reconcile(self, names: Iterable[str] | None) -> ReloadReport:
        """Bring ``names`` (all, if None) in step with the disk; see the module docstring."""
        if names is None:
            result = await anyio.to_thread.run_sync(scan, self.dirs)
            winners: dict[str, PluginSource | None] = dict(result.sources)
            for entry in self.registry:
                winners.setdefault(entry.name, None)
            shadowed, problems = list(result.shadowed), list(result.problems)
        else:
            winners, shadowed, problems = await anyio.to_thread.run_sync(
                search_path_winners, self.dirs, sorted(set(names))
            )
        self._report_scan(shadowed, problems)
        report = ReloadReport()
        async with anyio.create_task_group() as tg:
            for name, source in winners.items():
                tg.start_soon(self._reconcile_one, name, source, report)
        return report

    def _report_scan(self, shadowed: list[Shadowed], problems: list[ScanProblem]) -> None:
        # Each problem and each shadowed twin is reported once, not at every rescan.
        for problem in problems:
            if (problem.path, problem.reason) not in self._problems:
                self._problems.add((problem.path, problem.reason))
                log.warning("%s: %s", printable(problem.path), problem.reason)
        for twin in shadowed:
            if (twin.name, twin.loser) not in self._shadowed:
                self._shadowed.add((twin.name, twin.loser))
                self.bus.emit(
                    "plugin.shadowed",
                    {"plugin": twin.name, "path": str(twin.loser), "shadowed_by": str(twin.winner)},
                )

    async def _reconcile_one(
        self, name: str, source: PluginSource | None, report: ReloadReport
    ) -> None:
        lock = self.lock_for(name)
        waited = lock.locked()
        async with lock:
            if waited:
                # Another reconcile of this name ran meanwhile; the disk may have moved on.
                winners, _, _ = await anyio.to_thread.run_sync(
                    search_path_winners, self.dirs, [name]
                )
                source = winners[name]
            current = self.registry.get(name)
            if current is not None and current.source.search_dir is None:
                report.unchanged.append(name)  # loaded from a path: it holds the name
                return
            if source is None:
                self._unloaded.pop(name, None)  # gone from disk: its next file is a change
                if current is None:
                    return
                self.remove(current)
                report.unloaded.append(name)
                return
            try:
                snapshot = await self._snapshot(name, source, current)
            except ModuleTooBig as exc:
                if self._rejected.get(name) != exc.fingerprint:  # else reported already
                    self._failed(name, source, current, exc.reason, exc.fingerprint)
                report.failed.append(name)
                return
            except (PluginLoadError, ConfigError) as exc:
                reason = exc.reason if isinstance(exc, PluginLoadError) else f"bad manifest: {exc}"
                self._failed(name, source, current, reason, fingerprint=None)
                report.failed.append(name)
                return
            if name in self._unloaded and (
                snapshot is None or self._unloaded[name] == snapshot.fingerprint
            ):
                report.still_unloaded.append(name)  # on request, and the disk is as it was
                return
            if snapshot is None:
                report.unchanged.append(name)
                return
            self._unloaded.pop(name, None)
            try:
                pool = await self.build(snapshot)
            except TrustRefused as exc:
                # No fingerprint: after the trust file changes, a rescan checks again.
                self._failed(name, source, current, exc.reason, None, exc.digests())
                report.failed.append(name)
                return
            except PluginLoadError as exc:
                # Deferred (its state cannot be opened): no fingerprint, a rescan tries again.
                retry = isinstance(exc, PluginLoadDeferred)
                self._failed(
                    name, source, current, exc.reason, None if retry else snapshot.fingerprint
                )
                report.failed.append(name)
                return
            except Exception as exc:
                # A bug of ours must not take the daemon down with one plug-in's reload.
                log.exception("%s: loading failed unexpectedly", name)
                reason = f"internal error while loading: {exc!r}"
                self._failed(name, source, current, reason, snapshot.fingerprint)
                report.failed.append(name)
                return
            self._rejected.pop(name, None)
            self.install(Entry(name, source, pool, fingerprint=snapshot.fingerprint), current)
            (report.reloaded if current is not None and current.pool else report.loaded).append(
                name
            )

    async def _snapshot(
        self, name: str, source: PluginSource, current: Entry | None
    ) -> Snapshot | None:
        """A new snapshot of ``source``, or None if it is what ``name`` serves already or a
        version of it that failed already (then its files are not read again)."""
        settled = {self._rejected.get(name), current.fingerprint if current else None}
        seen = self._seen.get(name)
        known = seen[1:] if seen is not None and seen[0] == source else None
        try:
            snapshot = await off_loop(take_snapshot, source, self.max_module_size, known)
        except ModuleTooBig:
            self._seen.pop(name, None)
            raise
        if not snapshot.read:
            if snapshot.fingerprint in settled:
                return None
            snapshot = await off_loop(take_snapshot, source, self.max_module_size)
        if snapshot.stamps is not None:
            self._seen[name] = (source, snapshot.stamps, snapshot.fingerprint)
        return None if snapshot.fingerprint in settled else snapshot

    async def build(self, snapshot: Snapshot, *, loaded_by_path: bool = False) -> PluginPool:
        """``build_pool`` off the loop, at most one per core. Raises PluginLoadError
        (``TrustRefused`` before compiling: refused bytes never reach the compiler).
        ``loaded_by_path``: by ``wasmd.load``, so trusted by no callee's name
        (``Registry.pool_for_loaded_by_path``)."""
        name = snapshot.source.name
        resolve = self.registry.pool_for_loaded_by_path if loaded_by_path else self.registry.pool_of
        try:
            async with self._compile_slots:
                return await off_loop(
                    build_pool,
                    snapshot,
                    self.engines,
                    self.bus.emit_threadsafe,
                    self.allow_absolute_preopens,
                    self.dirs,
                    self.start_timeout_ms,
                    resolve,
                    self.accounts[name],
                    self.trust,
                )
        except BaseException:
            if self.registry.get(name) is None:
                self.accounts.retire(name)  # no version serves the name: no account for it
            raise

    def install(
        self, entry: Entry, previous: Entry | None, how: dict[str, Any] | None = None
    ) -> None:
        """``how``: fields that say how it came (``{"how": "load", "uid": ...}``); by default
        ``{"how": "search_path"}``."""
        self.registry.install(entry)
        assert entry.pool is not None
        plugin = entry.pool.plugin
        fields: dict[str, Any] = {"plugin": entry.name, "path": str(entry.source.module_path)}
        fields.update(how or {"how": "search_path"})
        if previous is not None and previous.pool is not None:
            old = previous.pool.plugin
            # Closing lets the calls already queued on the old version finish there.
            previous.pool.close()
            with entry.pool.account.lock:
                entry.pool.account.reloads += 1
            fields.update(old_version=old.short_version, new_version=plugin.short_version)
            self.bus.emit("plugin.reloaded", fields)
        else:
            fields.update(
                version=plugin.short_version, abi=plugin.abi.name, exports=sorted(plugin.calls)
            )
            self.bus.emit("plugin.loaded", fields)

    def _failed(
        self,
        name: str,
        source: PluginSource,
        current: Entry | None,
        reason: str,
        fingerprint: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        fields: dict[str, Any] = {"plugin": name, "path": str(source.module_path), "error": reason}
        fields.update(extra or {})
        account = self.accounts[name]
        with account.lock:
            account.load_failures += 1
        if fingerprint is not None:
            self._rejected[name] = fingerprint
        if current is not None and current.pool is not None:
            fields["kept_version"] = current.pool.plugin.short_version
        else:
            self.registry.install(Entry(name, source, None, reason, fingerprint=fingerprint))
        self.bus.emit("plugin.failed", fields)

    def bring_back(self, name: str) -> None:
        """Forget that NAME was unloaded on request (``wasmd.load`` brings it back)."""
        self._unloaded.pop(name, None)

    def unload_on_request(self, entry: Entry, disk_fingerprint: str | None, uid: int) -> None:
        """Remove ``entry`` (``wasmd.unload``); its name stays away while the search path holds
        the bytes of ``disk_fingerprint`` (``disk_fingerprint(name)``, read off the loop)."""
        self._unloaded[entry.name] = disk_fingerprint
        self.remove(entry, {"how": "unload", "uid": uid})

    def disk_fingerprint(self, name: str) -> str | None:
        """The fingerprint of what the search path holds for NAME now (blocking); None if it
        holds nothing readable."""
        winners, _, _ = search_path_winners(self.dirs, [name])
        source = winners[name]
        if source is None:
            return None
        try:
            return take_snapshot(source, self.max_module_size).fingerprint
        except (PluginLoadError, ConfigError):
            return None

    def remove(self, entry: Entry, how: dict[str, Any] | None = None) -> None:
        """Take ``entry`` out of the registry; its pool drains. ``how`` as for ``install``."""
        self.registry.remove(entry.name)
        self.accounts.retire(entry.name)  # its counts stay in the daemon-wide totals
        self._rejected.pop(entry.name, None)
        self._seen.pop(entry.name, None)
        fields: dict[str, Any] = {"plugin": entry.name, "path": str(entry.source.module_path)}
        fields.update(how or {"how": "search_path"})
        if entry.pool is not None:
            entry.pool.close()
            fields["version"] = entry.pool.plugin.short_version
        self.bus.emit("plugin.unloaded", fields)

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
