"""The watcher that keeps a slow call from blocking its own connection.

A connection's reader runs each request on its own thread (see ``connection``); while it
does, nobody reads that connection. This thread looks, every ``period``, at the readers
that are inside a request and hands the reading of each one that has been inside longer
than ``budget`` to a new thread (``ClientConnection.hand_off``), so a ``wasmd.ping``
pipelined behind a runaway guest is answered within a few milliseconds.

It also answers ``timeout`` to calls that wait in a plug-in's run queue past their
deadline (the connection's ``hand_off`` does both), and sleeps while no connection is inside
a request or has calls queued: the first ``enter`` after a quiet spell wakes it (one futex
wake, and only then), and it goes back to sleep after ``IDLE_SCANS`` scans that found nobody.

A failure in one connection's ``hand_off`` (a thread that cannot start is handled there) is
logged and never ends the watcher: it serves every connection.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("wasmd.server")

IDLE_SCANS = 50


class Reader(Protocol):
    def hand_off(self, now: float, budget: float) -> bool:
        """Hand off if stuck; whether the reader is still inside its request afterwards."""
        ...


class HandoffWatcher:
    def __init__(self, *, budget: float, period: float) -> None:
        self.budget = budget
        self.period = period
        self._inside: set[Reader] = set()
        self._inside_lock = threading.Lock()
        self._armed = False
        self._wake = threading.Event()
        self._stop = threading.Event()  # set by stop(), from another thread
        self._thread: threading.Thread | None = None

    def enter(self, reader: Reader) -> None:
        """``reader`` starts a request or queued a call (any thread)."""
        with self._inside_lock:
            self._inside.add(reader)
            wake = not self._armed
            self._armed = True
        if wake:
            self._wake.set()

    def leave(self, reader: Reader) -> None:
        with self._inside_lock:
            self._inside.discard(reader)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wasmd-handoff", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        quiet = 0
        while not self._stop.is_set():
            if not self._armed:
                self._wake.wait()
                self._wake.clear()
                with self._inside_lock:
                    self._armed = True
                quiet = 0
            time.sleep(self.period)
            if self._scan():
                quiet = 0
                continue
            quiet += 1
            if quiet >= IDLE_SCANS:
                # Disarm, then look once more: an enter() that saw the flag still set
                # happened before this scan, so nothing is missed.
                with self._inside_lock:
                    self._armed = False
                if self._scan():
                    with self._inside_lock:
                        self._armed = True
                    quiet = 0

    def _scan(self) -> bool:
        """Hand off stuck readers; whether any reader is still inside a request."""
        now = time.monotonic()
        busy = False
        with self._inside_lock:
            readers = list(self._inside)
        for reader in readers:
            try:
                busy = reader.hand_off(now, self.budget) or busy
            except Exception:
                log.exception("handing off a connection's reading failed")
                busy = True
        return busy
