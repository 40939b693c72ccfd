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

A name is reconciled by one task at a time (a lock per name), so racing batches cannot
interleave; each simply re-reads the disk. The blocking half (``build_pool``) runs in worker
threads, at most one per core, because compiling is CPU-bound.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .discovery import PluginSource, ScanProblem, Shadowed, open_plugin_file, scan, scan_name
from .errors import ConfigError, PluginLoadError
from .events import EventBus
from .manifest import DEFAULT_MANIFEST, parse_manifest
from .registry import Entry, Registry
from .runtime import Engines, EventSink, PluginFiles, PluginPool, compile_plugin, module_binary
from .runtime.account import Accounts, PluginAccount
from .tomlcheck import read_toml_fd
from .trust import TrustPolicy, TrustRefused, verify_snapshot

log = logging.getLogger("wasmd.loader")


@dataclass(frozen=True)
class Snapshot:
    """A plug-in's files as read at one moment: what a version is built from."""

    source: PluginSource
    module_bytes: bytes = field(repr=False)
    manifest_text: str | None = field(repr=False)
    fingerprint: str


def take_snapshot(source: PluginSource) -> Snapshot:
    """Read the module and manifest (blocking). Raises PluginLoadError or ConfigError.

    Neither is read through a symbolic link (``open_plugin_file``); a manifest that is there
    but cannot be read fails the version, it is never taken for "no manifest".
    """
    path = source.module_path
    try:
        with open(open_plugin_file(source, path), "rb") as module_file:
            module_bytes = module_file.read()
    except OSError as exc:
        raise PluginLoadError(source.name, f"cannot read {path}: {exc.strerror or exc}") from None
    manifest_text = None
    if source.manifest_path is not None:
        manifest_text = _read_manifest(source, source.manifest_path)
    digest = hashlib.sha256()
    for part in (str(source.module_path), str(source.manifest_path)):
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(module_bytes).digest())
    digest.update(hashlib.sha256((manifest_text or "").encode()).digest())
    return Snapshot(source, module_bytes, manifest_text, digest.hexdigest())


def _read_manifest(source: PluginSource, path: Path) -> str:
    try:
        fd = open_plugin_file(source, path)
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read manifest: {exc.strerror}") from None
    return read_toml_fd(fd, source=str(path), kind="manifest")


def build_pool(
    snapshot: Snapshot,
    engines: Engines,
    on_event: EventSink,
    allow_absolute_preopens: bool = False,
    plugin_dirs: Sequence[Path] = (),
    account: PluginAccount | None = None,
) -> PluginPool:
    """Compile a snapshot and start its instances (blocking). Raises PluginLoadError.

    ``plugin_dirs``: the search path, on which no preopen may grant anything.
    """
    source = snapshot.source
    manifest = DEFAULT_MANIFEST
    if snapshot.manifest_text is not None:
        try:
            manifest = parse_manifest(snapshot.manifest_text, source=str(source.manifest_path))
        except ConfigError as exc:
            raise PluginLoadError(source.name, f"bad manifest: {exc}") from None
    wasm = module_binary(source.module_path, snapshot.module_bytes, source.name)
    plugin = compile_plugin(
        plugin_files(source, plugin_dirs),
        manifest,
        engines,
        wasm,
        snapshot.manifest_text,
        on_event=on_event,
        allow_absolute_preopens=allow_absolute_preopens,
    )
    pool = PluginPool(plugin, engines, account)
    pool.start()
    return pool


def plugin_files(source: PluginSource, plugin_dirs: Sequence[Path] = ()) -> PluginFiles:
    """What the runtime needs to know of where ``source`` is. No preopen may grant a plug-in
    directory: those of the search path, and the one that holds this plug-in (which is not
    on the search path when it is loaded from a path)."""
    holder = source.root.parent if source.folder else source.root
    protected = (*plugin_dirs, holder, *([source.search_dir] if source.search_dir else []))
    return PluginFiles(
        source.name,
        source.module_path,
        source.manifest_path,
        source.root,
        source.folder,
        protected,
    )


def load_source(source: PluginSource, engines: Engines, on_event: EventSink) -> PluginPool:
    """Snapshot and build in one blocking step (``wasmd check``, tools)."""
    try:
        snapshot = take_snapshot(source)
    except ConfigError as exc:
        raise PluginLoadError(source.name, f"bad manifest: {exc}") from None
    return build_pool(snapshot, engines, on_event)


@dataclass
class ReloadReport:
    """What one reconcile changed; the result of ``wasmd.reload``."""

    loaded: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {key: sorted(value) for key, value in vars(self).items()}


def _winners(
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


class Loader:
    def __init__(
        self,
        *,
        engines: Engines,
        registry: Registry,
        bus: EventBus,
        dirs: Sequence[Path],
        allow_absolute_preopens: bool = False,
        trust: TrustPolicy | None = None,
    ) -> None:
        self.engines = engines
        self.trust = trust or TrustPolicy()
        self.accounts = Accounts()  # per name, kept across versions (wasmd.metrics reads them)
        self.allow_absolute_preopens = allow_absolute_preopens
        self.registry = registry
        self.bus = bus
        self.dirs = tuple(dirs)
        self._compile_slots = anyio.CapacityLimiter(os.cpu_count() or 1)
        self._locks: dict[str, anyio.Lock] = {}
        self._rejected: dict[str, str] = {}  # name -> fingerprint of a version that failed
        self._shadowed: set[tuple[str, Path]] = set()
        self._problems: set[tuple[Path, str]] = set()

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
                _winners, self.dirs, sorted(set(names))
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
                log.warning("%s: %s", problem.path, problem.reason)
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
        lock = self._locks.setdefault(name, anyio.Lock())
        waited = lock.locked()
        async with lock:
            if waited:
                # Another reconcile of this name ran meanwhile; the disk may have moved on.
                winners, _, _ = await anyio.to_thread.run_sync(_winners, self.dirs, [name])
                source = winners[name]
            current = self.registry.get(name)
            if source is None:
                if current is None:
                    return
                self._unload(current)
                report.unloaded.append(name)
                return
            try:
                snapshot = await anyio.to_thread.run_sync(take_snapshot, source)
            except (PluginLoadError, ConfigError) as exc:
                reason = exc.reason if isinstance(exc, PluginLoadError) else f"bad manifest: {exc}"
                self._failed(name, source, current, reason, fingerprint=None)
                report.failed.append(name)
                return
            if current is not None and current.fingerprint == snapshot.fingerprint:
                report.unchanged.append(name)
                return
            if self._rejected.get(name) == snapshot.fingerprint:
                report.unchanged.append(name)  # the same broken bytes: reported already
                return
            try:  # before compiling: refused bytes never reach the compiler
                await anyio.to_thread.run_sync(verify_snapshot, snapshot, self.trust)
            except PluginLoadError as exc:
                digests = {}
                if isinstance(exc, TrustRefused):
                    digests = {"expected_sha256": exc.expected, "actual_sha256": exc.actual}
                # No fingerprint: after the trust file changes, a rescan checks again.
                self._failed(name, source, current, exc.reason, None, digests)
                report.failed.append(name)
                return
            try:
                pool = await anyio.to_thread.run_sync(
                    build_pool,
                    snapshot,
                    self.engines,
                    self.bus.emit_threadsafe,
                    self.allow_absolute_preopens,
                    self.dirs,
                    self.accounts[name],
                    limiter=self._compile_slots,
                )
            except PluginLoadError as exc:
                self._failed(name, source, current, exc.reason, snapshot.fingerprint)
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
            self._install(Entry(name, source, pool, fingerprint=snapshot.fingerprint), current)
            (report.reloaded if current is not None and current.pool else report.loaded).append(
                name
            )

    def _install(self, entry: Entry, previous: Entry | None) -> None:
        self.registry.install(entry)
        assert entry.pool is not None
        plugin = entry.pool.plugin
        fields: dict[str, Any] = {"plugin": entry.name, "path": str(entry.source.module_path)}
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

    def _unload(self, entry: Entry) -> None:
        self.registry.remove(entry.name)
        self._rejected.pop(entry.name, None)
        fields: dict[str, Any] = {"plugin": entry.name, "path": str(entry.source.module_path)}
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
