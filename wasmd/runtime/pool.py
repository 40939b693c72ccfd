"""A plug-in version's instances, each owned by one worker thread, and the queue they share.

Theory of operation. A Store is not thread-safe and guest code must never run on the event
loop, so each instance lives on a dedicated worker thread for its whole life; ``instances``
in the manifest is the number of such workers. The loop calls ``submit``: it validates the
call (export, params, capacity) synchronously — so a bad request costs no thread hop — and
puts a job on a ``queue.SimpleQueue`` shared by the workers. The worker sets the Store's
epoch deadline from the job's wall-clock deadline, calls the export, and hands the outcome to
the job's ``reply`` callable *on the worker thread*: the caller decides how to get it back to
its client (the server writes the response straight to the socket), so a call needs one
thread handoff instead of two. After any trap, and after every call in per-call mode, the
instance is discarded and a fresh one is made at once, before the worker waits again, so the
next call does not pay for it.

Capacity is ``instances + queue`` calls; past it ``submit`` raises ``busy``. A deadline
covers the time a call waits in the queue too: a call that waited past it is answered
``timeout`` without running.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime

from ..backlog import backlog
from ..errors import ErrorCode, PluginLoadError, WasmdError
from .engine import Engines
from .fastcall import set_deadline
from .instance import Instance, run_command
from .plugin import CompiledPlugin
from .traps import call_error, cause_of

log = logging.getLogger("wasmd.runtime")

Reply = Callable[[WasmdError | None, Any], None]
EventSink = Callable[[str, dict[str, Any]], None]

LATENCY_SAMPLES = 2048


@dataclass(frozen=True, slots=True)
class PoolStats:
    calls: int
    errors: dict[str, int]
    latency_ms: dict[str, float]  # p50, p90, p99, max over the most recent calls
    in_flight: int
    instances: int


class _Job:
    __slots__ = ("args", "deadline", "export", "reply", "submitted")

    def __init__(
        self, export: str, args: Any, submitted: float, deadline: float, reply: Reply
    ) -> None:
        self.export = export
        self.args = args
        self.submitted = submitted
        self.deadline = deadline
        self.reply = reply


_STOP = object()


class PluginPool:
    """The running form of one ``CompiledPlugin``."""

    def __init__(self, plugin: CompiledPlugin, engines: Engines, on_event: EventSink) -> None:
        self.plugin = plugin
        self._engines = engines
        self._on_event = on_event
        plugin.host.on_event = on_event  # wasmd.emit reports through the same sink
        self._timeout_s = plugin.manifest.timeout_ms / 1000
        self._capacity = plugin.manifest.instances + plugin.manifest.queue
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._closing = False
        self._drained = threading.Event()
        self._workers = [_Worker(self, i) for i in range(plugin.manifest.instances)]
        self._calls = 0
        self._errors: collections.Counter[str] = collections.Counter()
        self._latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)

    # --- life cycle (blocking; run off the event loop) ---------------------------------

    def start(self) -> None:
        """Start every worker and wait until each holds a live instance."""
        for worker in self._workers:
            worker.thread.start()
        failures = []
        for worker in self._workers:
            worker.ready.wait()
            if worker.failure is not None:
                failures.append(worker.failure)
        if failures:
            self.close()
            self.wait_closed(timeout=None)
            raise PluginLoadError(self.plugin.name, failures[0])

    def close(self) -> None:
        """Refuse new calls; the workers finish the queued ones and exit."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            for _ in self._workers:
                self._jobs.put(_STOP)
            if not any(w.thread.is_alive() for w in self._workers):
                self._drained.set()

    def wait_closed(self, timeout: float | None) -> bool:
        return self._drained.wait(timeout)

    @property
    def closing(self) -> bool:
        return self._closing

    # --- calls (submit runs on the event loop) --------------------------------------------

    def submit(self, export: str, params: Sequence[Any], reply: Reply) -> None:
        call = self.plugin.calls.get(export)
        if call is None:
            raise self._no_such_export(export)
        args = call.convert(params)
        now = time.monotonic()
        job = _Job(export, args, now, now + self._timeout_s, reply)
        with self._lock:
            if self._closing:
                raise WasmdError(ErrorCode.UNAVAILABLE, f"plug-in {self.plugin.name} is closing")
            if self._pending >= self._capacity:
                self._errors["busy"] += 1
                raise WasmdError(
                    ErrorCode.BUSY,
                    f"plug-in {self.plugin.name} has {self._pending} calls waiting or running "
                    f"(instances + queue = {self._capacity})",
                )
            self._pending += 1
            self._jobs.put(job)

    def _no_such_export(self, export: str) -> WasmdError:
        plugin = self.plugin
        if export in plugin.exports and plugin.exports[export].callable:
            why = "which its manifest does not allow"
        elif export in plugin.exports:
            why = f"whose signature the {plugin.abi} ABI cannot call"
        else:
            why = "which does not exist"
        known = ", ".join(sorted(plugin.calls)) or "none"
        return WasmdError(
            ErrorCode.METHOD_NOT_FOUND,
            f"plug-in {plugin.name} has no callable export {export!r} ({why}; callable: {known})",
        )

    def _finished(self, job: _Job, error: WasmdError | None) -> None:
        elapsed = time.monotonic() - job.submitted
        with self._lock:
            self._pending -= 1
            self._calls += 1
            self._latencies.append(elapsed)
            if error is not None:
                self._errors[ErrorCode(error.code).name.lower()] += 1

    def stats(self) -> PoolStats:
        with self._lock:
            samples = sorted(self._latencies)
            calls, errors, pending = self._calls, dict(self._errors), self._pending
        return PoolStats(calls, errors, percentiles_ms(samples), pending, len(self._workers))


def percentiles_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of sorted durations in seconds."""
    if not samples:
        return {}
    last = len(samples) - 1
    marks = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
    latency = {
        label: round(samples[min(last, int(q * len(samples)))] * 1e3, 3)
        for label, q in marks.items()
    }
    latency["max"] = round(samples[-1] * 1e3, 3)
    return latency


class _Worker:
    """A thread that owns one instance at a time and runs the pool's jobs on it."""

    def __init__(self, pool: PluginPool, index: int) -> None:
        self.pool = pool
        self.ready = threading.Event()
        self.failure: str | None = None
        self.instance: Instance | None = None
        # A command is instantiated afresh by every call; the other ABIs keep one instance.
        self.keeps_instance = pool.plugin.abi != "command"
        self.thread = threading.Thread(
            target=self._run, name=f"wasmd:{pool.plugin.name}#{index}", daemon=True
        )

    def _instantiate(self) -> str | None:
        """Make a fresh instance; the reason on failure."""
        self._discard()
        if not self.keeps_instance:
            return None
        pool = self.pool
        try:
            ticks = pool._engines.ticks_for(pool.plugin.manifest.timeout_ms)
            self.instance = Instance(pool.plugin, ticks)
            return None
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            return f"cannot instantiate: {cause_of(exc)}"
        except Exception as exc:  # a bug of ours: report it, never leave start() waiting
            log.exception("%s: instantiating failed unexpectedly", pool.plugin.name)
            return f"cannot instantiate: internal error: {exc!r}"

    def _discard(self) -> None:
        if self.instance is not None:
            self.instance.close()
            self.instance = None

    def _run(self) -> None:
        pool = self.pool
        try:
            self.failure = self._instantiate()
            self.ready.set()
            if self.failure is None:
                self._serve()
        finally:
            if not self.ready.is_set():
                self.failure = self.failure or "the worker thread stopped unexpectedly"
                self.ready.set()
            self._discard()
            if not any(w.thread.is_alive() for w in pool._workers if w is not self):
                pool._drained.set()

    def _serve(self) -> None:
        pool = self.pool
        plugin = pool.plugin
        engines = pool._engines
        fresh_each_call = plugin.manifest.mode == "per-call"
        get_job = pool._jobs.get
        while True:
            job = get_job()
            if job is _STOP:
                return
            assert isinstance(job, _Job)
            try:
                error, result = self._call(job, plugin, engines)
            except Exception as exc:  # a bug of ours: answer, keep the thread alive
                log.exception("%s.%s failed unexpectedly", plugin.name, job.export)
                self._discard()
                error, result = WasmdError(ErrorCode.INTERNAL, f"internal error: {exc!r}"), None
            pool._finished(job, error)
            backlog.more_queued = not pool._jobs.empty()
            try:
                job.reply(error, result)
            except Exception:
                log.exception("%s: delivering a reply failed", plugin.name)
            if self.keeps_instance and (fresh_each_call or self.instance is None):
                reason = self._instantiate()
                if reason is not None:
                    log.error("%s: %s", plugin.name, reason)

    def _call(
        self, job: _Job, plugin: CompiledPlugin, engines: Engines
    ) -> tuple[WasmdError | None, Any]:
        manifest = plugin.manifest
        if self.keeps_instance and self.instance is None:
            reason = self._instantiate()
            if reason is not None:
                return WasmdError(ErrorCode.UNAVAILABLE, f"{plugin.name}: {reason}"), None
        remaining_ms = (job.deadline - time.monotonic()) * 1000
        if remaining_ms <= 0:
            return WasmdError(
                ErrorCode.TIMEOUT,
                f"call waited in the queue past its deadline of {manifest.timeout_ms} ms",
            ), None
        ticks = engines.ticks_for(remaining_ms)
        try:
            if self.instance is None:
                return None, run_command(plugin, job.args, ticks)
            store = self.instance.store
            set_deadline(store, ticks)
            if manifest.fuel:
                store.set_fuel(manifest.fuel)
            return None, self.instance.call(job.export, job.args)
        except WasmdError as exc:
            return exc, None  # the guest's own error, or output over the limit: no fault
        except Exception as exc:
            at_limit = self.instance is not None and self.instance.memory_at_limit()
            self._discard()  # its state is suspect after any fault
            error = call_error(exc, timeout_ms=manifest.timeout_ms, fuel=manifest.fuel)
            if at_limit and (error.data or {}).get("trap_code") == "unreachable":
                # Guests abort (unreachable) when an allocation fails: at the ceiling, that
                # is the cause. Other traps there (out of bounds, say) are the guest's own.
                error = WasmdError(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    f"memory limit of {manifest.memory_max} bytes reached; then: {error.message}",
                    error.data,
                )
            self._report(job, error)
            return error, None

    def _report(self, job: _Job, error: WasmdError) -> None:
        plugin = self.pool.plugin
        fields: dict[str, Any] = {
            "plugin": plugin.name,
            "version": plugin.short_version,
            "export": job.export,
        }
        if error.code == ErrorCode.TIMEOUT:
            fields["timeout_ms"] = plugin.manifest.timeout_ms
            event = "plugin.timeout"
        else:
            fields.update(code=int(error.code), message=error.message, instance_restarted=True)
            event = "plugin.trapped"
        if error.code == ErrorCode.INTERNAL:
            log.error("%s.%s: %s", plugin.name, job.export, error.message)
        try:
            self.pool._on_event(event, fields)
        except Exception:
            log.exception("%s: emitting %s failed", plugin.name, event)
