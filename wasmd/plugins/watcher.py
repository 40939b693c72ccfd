"""Watching the plug-in directories: file-system events in, plug-in names to reconcile out.

Theory of operation. One ``watchfiles.awatch`` follows every existing plug-in directory
recursively; each batch of changes is mapped to the plug-in names it touches (``NAME.wasm``,
``NAME.toml``, anything under ``NAME/``) and handed to ``on_change``, which decides from what is
on disk, so the unordered, coalesced nature of a batch (an atomic replace shows as added +
deleted) does not matter.

A watch on a directory that is then deleted dies silently, and a directory that does not
exist yet cannot be watched. So a second, non-recursive ``awatch`` follows the *parents* of
the plug-in directories; when one of the plug-in directories appears or disappears there, the
first watch is re-armed over the directories that exist now and everything is rescanned
(``on_change(None)``), which also catches files written before the new watch was in place.

Readiness: ``awatch`` sets up its inotify watches synchronously on its first step, so by the
time ``run`` reports ``task_status.started()`` and the caller resumes, both watches are armed.

Polling (``force_polling``, for file systems without inotify) is wasmd's own: every
``POLL_INTERVAL`` it stats each entry of each directory and compares (inode, mtime in ns,
size) with the previous round. watchfiles' poll watcher compares times too coarsely to see a
same-size file replaced within the same second.

Stopping: ``awatch`` waits for changes in a worker thread that cancellation cannot interrupt;
it only returns when its ``stop_event`` is set (checked every step) or its timeout of seconds
passes. So every watch gets a stop event, and a sentinel task sets them all the moment the
watcher's scope is cancelled; re-arming likewise stops the current watch through its event.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from watchfiles import Change, awatch
from watchfiles._rust_notify import WatchfilesRustInternalError

from ..discovery import entry_name, printable

log = logging.getLogger("wasmd.plugins.watcher")
# watchfiles logs every batch at INFO. With the daemon's log file in a watched folder's
# parent, each of those lines would itself be a change: a loop. wasmd logs what matters.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

OnChange = Callable[[set[str] | None], Coroutine[Any, Any, object]]

# Batches are handed over once the file system has been quiet for STEP_MS, and at least every
# DEBOUNCE_MS while it keeps changing; short, because a dropped-in plug-in should be callable
# within milliseconds (the half-written case is handled by deciding from the disk, not here).
STEP_MS = 10
DEBOUNCE_MS = 200
POLL_INTERVAL = 0.25  # seconds between rounds of --poll
# Seconds between checks that each plug-in directory and its parent are still the ones
# watched (device and inode): a stat per directory.
MOVED_CHECK_INTERVAL = 1.0


class DirectoryWatcher:
    def __init__(
        self, dirs: Sequence[Path], on_change: OnChange, *, force_polling: bool = False
    ) -> None:
        self.dirs = tuple(dirs)
        self.on_change = on_change
        self.force_polling = force_polling
        self._stops: set[anyio.Event] = set()  # one per live awatch
        self._current = anyio.Event()  # the stop event of the recursive watch
        self._closing = False
        self._polling = False  # watchfiles failed: wasmd's own poller took over
        self._armed: tuple[tuple[int, int] | None, ...] = ()
        self._changes: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        if self.force_polling:
            await self._poll(task_status)
            return
        async with anyio.create_task_group() as tg:
            self._changes = tg  # batches are reconciled side by side, not one after another
            tg.start_soon(self._stop_all_on_cancel)
            report_started: anyio.abc.TaskStatus[None] | None = task_status
            while True:
                self._current = stop = anyio.Event()
                self._armed = _identities(self.dirs)
                existing = [d for d in self.dirs if d.is_dir()]
                async with anyio.create_task_group() as round_tasks:
                    await round_tasks.start(self._watch_parents, stop)
                    round_tasks.start_soon(self._rearm_when_moved, stop)
                    if report_started is None:
                        tg.start_soon(self.on_change, None)  # re-armed: catch up with the disk
                    else:
                        # started() does not suspend this task, and the first step of the
                        # async for below arms the watch before it first waits: by the time
                        # the caller resumes, the watch is in place.
                        report_started.started()
                        report_started = None
                    try:
                        await self._follow(existing, stop)
                    finally:
                        stop.set()  # ends this round's parents watch and mover check
                if self._closing:
                    return  # the watch ended because the watcher is stopping, not to re-arm
                if self._polling:
                    tg.start_soon(self.on_change, None)  # what changed before the poller ran
                    await self._poll(anyio.TASK_STATUS_IGNORED)
                    return

    async def _follow(self, existing: list[Path], stop: anyio.Event) -> None:
        """The recursive watch over ``existing`` until ``stop``; changes go to ``on_change``."""
        if not existing:
            await stop.wait()
            return
        try:
            async for batch in self._watching(existing, recursive=True, stop=stop):
                assert self._changes is not None
                self._changes.start_soon(self.on_change, self._names(existing, batch))
        except* WatchfilesRustInternalError as group:  # awatch raises it in a group
            # watchfiles gives up on a path that is not UTF-8 (a file named b"y\xfe"), and
            # would again after a re-arm: wasmd's own poller, which ignores such names, takes
            # over.
            log.warning(
                "watchfiles cannot follow the plug-in directories (%s); polling them every "
                "%s s instead",
                printable(str(group.exceptions[0])),
                POLL_INTERVAL,
            )
            self._polling = True

    async def _watching(
        self,
        paths: Sequence[Path],
        *,
        recursive: bool,
        stop: anyio.Event,
        only: frozenset[str] | None = None,
    ) -> AsyncGenerator[set[tuple[Change, str]], None]:
        """``awatch`` over ``paths``, stoppable through ``stop`` (see the module docstring)."""
        self._stops.add(stop)
        changes = awatch(
            *paths,
            stop_event=stop,
            # wasmd's own ignore rules apply later, in entry_name; ``only`` keeps the
            # parents' watch to the plug-in directories themselves.
            watch_filter=None if only is None else (lambda _change, path: path in only),
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            recursive=recursive,
            ignore_permission_denied=True,
        )
        try:
            async for batch in changes:
                yield batch
        finally:
            self._stops.discard(stop)

    async def _stop_all_on_cancel(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self._closing = True
            for stop in tuple(self._stops):
                stop.set()

    def rearm(self) -> None:
        """Stop the current watch; ``run`` arms a new one over the directories that exist."""
        self._current.set()

    def rearm_if_moved(self) -> bool:
        """Re-arm if a plug-in directory or its parent is not the one watched (deleted,
        recreated, or appeared): a rescan (SIGHUP) calls this. Whether it re-armed."""
        if self.force_polling or _identities(self.dirs) == self._armed:
            return False
        log.info("a plug-in directory or its parent changed; re-arming the watch")
        self.rearm()
        return True

    async def _rearm_when_moved(self, stop: anyio.Event) -> None:
        """Every ``MOVED_CHECK_INTERVAL``, re-arm if a directory moved: a watch on a parent
        that is removed and recreated dies silently, so nothing else would notice."""
        while not stop.is_set():
            with anyio.move_on_after(MOVED_CHECK_INTERVAL):
                await stop.wait()
            if not stop.is_set():
                identities = await anyio.to_thread.run_sync(_identities, self.dirs)
                if identities != self._armed and not stop.is_set():
                    log.info("a plug-in directory or its parent changed; re-arming the watch")
                    self.rearm()

    async def _watch_parents(
        self,
        stop: anyio.Event,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        parents = sorted({d.parent for d in self.dirs if d.parent.is_dir()})
        task_status.started()  # see run(): the watch is armed before this task waits
        if not parents:
            return
        only = frozenset(str(d) for d in self.dirs)
        try:
            async for _batch in self._watching(parents, recursive=False, stop=stop, only=only):
                log.info("a plug-in directory appeared or vanished; re-arming the watch")
                self.rearm()
        except* WatchfilesRustInternalError as group:  # awatch raises it in a group
            # A name that is not UTF-8 beside a plug-in directory: the check every
            # MOVED_CHECK_INTERVAL still sees the directories come and go.
            log.warning(
                "cannot watch the plug-in directories' parents: %s",
                printable(str(group.exceptions[0])),
            )

    async def _poll(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        previous = await anyio.to_thread.run_sync(_snapshot, self.dirs)
        task_status.started()
        while True:
            await anyio.sleep(POLL_INTERVAL)
            current = await anyio.to_thread.run_sync(_snapshot, self.dirs)
            changed = {
                name
                for key in previous.keys() | current.keys()
                if previous.get(key) != current.get(key)
                and (name := entry_name(key[0], key[1])) is not None
            }
            previous = current
            if changed:
                await self.on_change(changed)

    @staticmethod
    def _names(dirs: Sequence[Path], batch: set[tuple[Change, str]]) -> set[str]:
        names = set()
        for _, raw_path in batch:
            path = Path(raw_path)
            for directory in dirs:
                try:
                    relative = path.relative_to(directory)
                except ValueError:
                    continue
                if relative.parts:
                    name = entry_name(directory, relative.parts[0])
                    if name is not None:
                        names.add(name)
                break
        return names


def _snapshot(dirs: Sequence[Path]) -> dict[tuple[Path, str], tuple[int, int, int]]:
    """(directory, top-level entry) -> (inode, mtime_ns, size) of it, or of the files in it
    for a folder plug-in: what a change to any plug-in file changes."""
    state: dict[tuple[Path, str], tuple[int, int, int]] = {}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except OSError:
            continue  # missing or unreadable: its plug-ins are gone, which the diff shows
        for name in names:
            path = directory / name
            try:
                paths = [path, *path.iterdir()] if path.is_dir() else [path]
                stats = [p.stat() for p in paths]
            except OSError:
                continue  # vanished mid-round: the next round sees it gone
            state[(directory, name)] = (
                hash(tuple(s.st_ino for s in stats)),
                max(s.st_mtime_ns for s in stats),
                sum(s.st_size for s in stats),
            )
    return state


def _identities(dirs: Sequence[Path]) -> tuple[tuple[int, int] | None, ...]:
    """(device, inode) of each directory and of its parent, None where missing: what a watch
    armed now would follow."""
    identities: list[tuple[int, int] | None] = []
    for path in (p for d in dirs for p in (d, d.parent)):
        try:
            st = os.stat(path)
        except OSError:
            identities.append(None)
        else:
            identities.append((st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None)
    return tuple(identities)
