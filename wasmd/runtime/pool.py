"""A plug-in version's instances, lent for one call at a time to the thread that brings it.

Theory of operation. A call runs on the thread that decoded it: ``PluginPool.call`` takes a
free instance, calls the export, answers through ``respond`` on the same thread, then gives
the instance back. No hand-off between threads on the way, which is what a call used to
cost most. A Store is not thread-safe, but it may move between threads as long as one
thread uses it at a time: the pool's lock makes lending exclusive. ``instances`` in the
manifest is the number of instances (slots); the command ABI keeps none, and its slots only
bound how many of its calls run at once.

When no instance is free, the call joins the pool's run queue (first come, first served),
and who made it decides how it waits (``Ticket``):
- a *detached* call (the server's) does not wait at all: it is queued as a job and the
  caller goes on (the connection keeps reading). The thread that finishes a call takes the
  next job before it lets the instance go, runs it, and answers it through that job's own
  ``respond`` (to its own connection): combining, so no thread ever sleeps waiting for an
  instance and a busy instance passes from call to call without a wake-up;
- a call that is not detached (the in-process library's) waits on its own thread until a
  finishing thread hands it the instance; a plug-in's nested call refuses to wait
  (``before_wait``).
What a call counts against: if the same owner (the connection) already has a call running
or queued here, it queues without taking one of ``queue`` places (``backpressured``: the
owner's own ``max_in_flight`` bounds it); otherwise it takes a place, and past them the
answer is ``busy``: the capacity is taken by other owners' calls. A deadline covers waiting
too: a call still queued at its deadline is answered ``timeout`` without running (a call
queued behind its own owner's calls starts its deadline when it starts running, as it did
when its connection was not read meanwhile). A
cancelled queued call leaves the queue at once, answered ``cancelled`` (11); a cancelled
running call is ended at the next epoch tick by the instance's guard. Calls queued before
the pool closes (a reload) still run on it before it drains.

After any trap, and after every call in per-call mode, the instance is discarded and a fresh
one made *after* the answer went out and before the slot is lent again. A crash loop is
bounded by the manifest's failure policy (``breaker.py``): past it, calls are refused as
``unavailable`` and no instance is made until the quarantine ends.

Every call is counted in the plug-in's ``PluginAccount`` (``account.py``), whose lock is the
pool's, under the lock taken anyway to give the slot back. What calls cost is kept where
only the thread running the call writes it, so the hot path takes no lock for it: thread CPU
time (sampled) and fuel add up on the slot, payload bytes on the instance (the ABI counts
them). A reader adds those to the account's totals (``unfolded``); they are folded into the
account when an instance is discarded and when the pool has drained.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime

from ..calls import PoolClosed, Respond, Ticket
from ..errors import ErrorCode, PluginLoadError, WasmdError, echo
from .account import CPU_SAMPLE_EVERY, PluginAccount
from .breaker import NO_PEER, FaultPolicy
from .engine import Engines
from .instance import Deadline, Instance
from .plugin import CompiledPlugin
from .traps import CallEnded, call_error, cause_of, forget_traceback

log = logging.getLogger("wasmd.runtime")

# How long an instantiation (start functions, _initialize) may run, whatever the plug-in's
# timeout_ms: start code holds up a load, a reload or the daemon's start-up (config
# ``start_timeout_ms``).
DEFAULT_START_TIMEOUT_MS = 5000

# The error data's "kind" of a plug-in's call to another that its caller's deadline ended.
CALLERS_DEADLINE = "caller_deadline"


@dataclass(frozen=True, slots=True)
class PoolStats:
    calls: int
    errors: dict[str, int]
    latency_ms: dict[str, float]  # p50, p90, p99, max over the most recent calls
    in_flight: int
    instances: int


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """What a pool holds now (read at scrape time)."""

    instances_live: int
    memory_bytes: int  # linear memory of the live instances (as last seen for busy ones)
    in_flight: int  # calls running or waiting
    queued: int  # calls waiting for an instance
    retry_in: float | None  # seconds until a quarantine ends; None when not quarantined
    throttled: list[int]  # caller uids whose calls are refused now


class _Slot:
    """One instance place, and what the calls run in it have cost (written only by the
    thread the slot is lent to; read by anyone, folded into the account at the end)."""

    __slots__ = ("cpu_ns", "fuel", "instance", "memory_bytes")

    def __init__(self) -> None:
        self.instance: Instance | None = None
        self.memory_bytes = 0  # the instance's linear memory when last seen
        self.cpu_ns = 0  # estimated: see account.py
        self.fuel = 0

    def discard(self) -> Instance | None:
        """Close the instance and return it (for its counters), if there is one."""
        instance, self.instance = self.instance, None
        if instance is not None:
            instance.close()
        return instance


class _Waiter:
    """A call that is not detached, waiting on its own thread to be handed an instance."""

    __slots__ = ("slot", "ticket", "wakeup")

    def __init__(self, lock: threading.Lock, ticket: Ticket) -> None:
        self.wakeup = threading.Condition(lock)
        self.ticket = ticket
        self.slot: _Slot | None = None


class _Job:
    """A detached call in the run queue: run by the thread that frees an instance."""

    __slots__ = ("args", "deadline_at", "export", "probing", "respond", "ticket")

    def __init__(
        self,
        export: str,
        args: Any,
        ticket: Ticket,
        respond: Respond,
        deadline_at: float,
        probing: bool,
    ) -> None:
        self.export = export
        self.args = args
        self.ticket = ticket
        self.respond = respond
        self.deadline_at = deadline_at
        self.probing = probing


class PluginPool:
    """The running form of one ``CompiledPlugin``."""

    def __init__(
        self,
        plugin: CompiledPlugin,
        engines: Engines,
        account: PluginAccount | None = None,
        *,
        start_timeout_ms: int = DEFAULT_START_TIMEOUT_MS,
    ) -> None:
        self.plugin = plugin
        self._start_timeout_ms = start_timeout_ms
        self._engines = engines
        manifest = plugin.manifest
        self._timeout_s = manifest.timeout_ms / 1000
        self._calls_by_name = plugin.calls
        self._queue = manifest.queue
        # Most ABIs keep an instance per slot; one that does not (command) instantiates
        # afresh in every call.
        self._keeps_instance = plugin.abi.keeps_instance
        self._fresh_each_call = manifest.mode == "per-call"
        self._slots = [_Slot() for _ in range(manifest.instances)]
        self._free = list(self._slots)
        # The account's lock: the one a call takes anyway to give its slot back counts it too.
        self.account = account if account is not None else PluginAccount()
        self._lock = self.account.lock
        self._policy = FaultPolicy(manifest.failure)
        self._fuel = manifest.fuel
        # Calls until one has its CPU time measured, and how many calls that one stands for:
        # the first call, for itself; then one in CPU_SAMPLE_EVERY, for them all (account.py).
        self._cpu_countdown = 1
        self._cpu_weight = 1
        # Whether every call has costs to add (most plug-ins: only a sampled call does).
        self._costs_every_call = bool(manifest.fuel) or not self._keeps_instance
        with self._lock:
            self.account.pools.add(self)
        # The run queue: detached jobs and waiting threads, in arrival order.
        self._waiters: collections.deque[_Waiter | _Job] = collections.deque()
        self._queued = 0  # queued calls that take a queue place (not backpressured ones)
        self._owners: dict[object, int] = {}  # calls running or waiting, per owner
        self._pending = 0
        self._closing = False
        self._drained = threading.Event()

    # --- life cycle (blocking; run off the event loop) ---------------------------------

    def start(self) -> None:
        """Make every instance; raises ``PluginLoadError`` if one cannot be made."""
        for slot in self._slots:
            reason = self._instantiate(slot)
            if reason is not None:
                self.close()
                raise PluginLoadError(self.plugin.name, reason)

    def close(self) -> None:
        """Refuse new calls; calls already running finish, waiting ones get ``PoolClosed``."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            for waiter in self._waiters:
                if type(waiter) is _Waiter:  # it looks its plug-in up again; jobs still run
                    waiter.wakeup.notify()
            self._finish_closing()

    def _finish_closing(self) -> None:
        """Under the lock: once closing and every slot is back, let go of the instances."""
        if self._closing and len(self._free) == len(self._slots) and not self._drained.is_set():
            account = self.account
            for slot in self._slots:
                size = _memory_of(slot)
                self._fold(slot.discard(), size)
                account.cpu_ns += slot.cpu_ns
                account.fuel += slot.fuel
                slot.cpu_ns = slot.fuel = 0
            account.pools.discard(self)
            self._drained.set()

    def wait_closed(self, timeout: float | None) -> bool:
        return self._drained.wait(timeout)

    @property
    def closing(self) -> bool:
        return self._closing

    # --- calls (any thread) ----------------------------------------------------------------

    def call(self, export: str, params: Sequence[Any], ticket: Ticket, respond: Respond) -> None:
        """Run one call and answer it through ``respond``: on this thread when an instance
        is free (then this thread also runs calls queued meanwhile, before it lets the
        instance go); queued, and answered later by another thread, when none is and the
        ticket is detached; otherwise after waiting here for an instance.

        Raises ``WasmdError`` instead when the call cannot start: no such export, bad
        params, ``busy``, a deadline or a cancellation while waiting, ``PoolClosed``.
        """
        call = self._calls_by_name.get(export)
        if call is None:
            raise self.refuse(ticket, self._no_such_export(export))
        try:
            args = call.convert(params)
        except WasmdError as exc:
            self._finished(ticket, exc)  # every request to the plug-in counts
            raise
        probing = self._policy.watching
        if probing:
            self._refuse_if_refused(ticket)  # unless the refusal is over: probation
        deadline_at = ticket.started + self._timeout_s
        caller_deadline = ticket.caller_deadline
        if caller_deadline is not None and caller_deadline < deadline_at:
            deadline_at = caller_deadline
        owner = ticket.owner
        with self._lock:  # the common case, inline: a free instance and nobody waiting
            if self._free and not self._waiters and not self._closing:
                slot = self._free.pop()
                self._owners[owner] = self._owners.get(owner, 0) + 1
                self._pending += 1
            else:
                slot = None
        job = _Job(export, args, ticket, respond, deadline_at, probing)
        if slot is None:
            try:
                slot = self._acquire(job)
            except PoolClosed:
                raise
            except WasmdError as exc:
                self._finished(ticket, exc)
                raise
            if slot is None:
                return  # queued: whoever frees an instance runs and answers it
        self._serve(slot, job)

    def _serve(self, slot: _Slot, job: _Job | None) -> None:
        """Run ``job`` in ``slot``, then each job queued meanwhile, then give the slot back."""
        while job is not None:
            job = self._run_job(slot, job)

    def _run_job(self, slot: _Slot, job: _Job) -> _Job | None:
        """Run one call in ``slot`` and answer it; the next job to run in it, if any (else
        the slot has been given back)."""
        ticket, respond = job.ticket, job.respond
        owner = ticket.owner
        try:
            error, result, faulted = self._run(slot, job.export, job.args, ticket, job.deadline_at)
        except BaseException:
            # Not a guest's fault (those are answers): a bug, or the thread is ending.
            # Whatever is queued is answered, so no job waits for a slot nobody frees.
            self._release(slot, owner, take_job=False)
            raise
        if job.probing and not faulted:
            self._recovered(ticket)
        if faulted or self._fresh_each_call:
            # The answer goes first; then the slot gets its fresh instance and is lent again.
            self._finished(ticket, error)
            if faulted:
                assert error is not None
                self._report(job.export, error)  # after the stats count it: readers agree
                self._fault(error, ticket)
            try:
                _answer(respond, error, result)
            finally:
                following = self._release(slot, owner)
        else:
            following = self._release(slot, owner, ticket, error)  # stats and slot: one lock
            _answer(respond, error, result)
        return following

    def _acquire(self, job: _Job) -> _Slot | None:
        """A slot for the call, or None when it was queued as a detached job."""
        ticket = job.ticket
        owner = ticket.owner
        with self._lock:
            if self._closing:
                raise PoolClosed(ErrorCode.UNAVAILABLE, f"plug-in {self.plugin.name} is closing")
            own = self._owners.get(owner, 0)
            if self._free and not self._waiters:
                self._owners[owner] = own + 1
                self._pending += 1
                return self._free.pop()
            backpressured = own > 0 and owner is not None
            if not backpressured and self._queued >= self._queue:
                raise WasmdError(
                    ErrorCode.BUSY,
                    f"plug-in {self.plugin.name} has {self._pending} calls waiting or running "
                    f"(instances + queue = {len(self._slots) + self._queue})",
                )
            self._owners[owner] = own + 1
            self._pending += 1
            if not backpressured:
                self._queued += 1
            ticket.backpressured = backpressured
            if ticket.detached:
                # Behind its own owner's calls (backpressure), a call's deadline starts when
                # it does, as it did when such a request was not read until then; otherwise
                # it counts from the call's arrival.
                self._waiters.append(job)
                ticket.deadline_at = None if backpressured else job.deadline_at
                ticket._withdraw = functools.partial(self._withdraw, job)
                return None
            return self._wait(ticket, job.deadline_at, backpressured)

    def _withdraw(self, job: _Job, timed_out: bool) -> None:
        """``job`` leaves the queue at once: its caller cancelled it, or its deadline passed
        (``Ticket.cancel``, ``Ticket.expire``); it is answered so, on this thread."""
        with self._lock:
            if not self._unqueue(job):
                return  # a thread took it meanwhile: it runs, and ends at the next tick
        if timed_out:
            error = self._waited_too_long()
        else:
            error = WasmdError(ErrorCode.CANCELLED, "call cancelled while waiting for an instance")
        self._finished(job.ticket, error)
        _answer(job.respond, error, None)

    def _unqueue(self, job: _Job) -> bool:
        """Under the lock: take ``job`` out of the run queue; False if it is not there."""
        ticket = job.ticket
        if ticket._withdraw is None:
            return False
        self._waiters.remove(job)
        self._left_queue(ticket)
        self._forget(ticket.owner)
        self._finish_closing()
        return True

    def _left_queue(self, ticket: Ticket) -> None:
        """Under the lock: ``ticket``'s call is no longer in the run queue."""
        if not ticket.backpressured:
            self._queued -= 1
        ticket.backpressured = False
        ticket._withdraw = None
        ticket.deadline_at = None

    def _wait(self, ticket: Ticket, deadline_at: float, backpressured: bool) -> _Slot:
        """Under the lock: wait for a slot handed over by ``_release`` (not detached)."""
        waiter = _Waiter(self._lock, ticket)
        self._waiters.append(waiter)
        ticket._withdraw = functools.partial(self._wake, waiter)
        try:
            if ticket.before_wait is not None:
                self._lock.release()  # the waiter is registered: a slot can reach it meanwhile
                try:
                    ticket.before_wait()
                except Exception:
                    log.exception("%s: before_wait failed", self.plugin.name)
                finally:
                    self._lock.acquire()
            while waiter.slot is None:
                if self._closing:
                    raise PoolClosed(
                        ErrorCode.UNAVAILABLE, f"plug-in {self.plugin.name} is closing"
                    )
                if ticket.cancelled:
                    raise WasmdError(ErrorCode.CANCELLED, "call cancelled while waiting")
                remaining = deadline_at - time.monotonic()
                if remaining <= 0:
                    raise self._waited_too_long()
                waiter.wakeup.wait(remaining)
            return waiter.slot
        except BaseException:
            if waiter.slot is None:
                self._waiters.remove(waiter)
                self._left_queue(ticket)
            else:  # handed a slot just as it gave up: pass it on
                self._lock.release()
                try:
                    self._serve_queue(waiter.slot)
                finally:
                    self._lock.acquire()
            self._forget(ticket.owner)
            raise

    def _wake(self, waiter: _Waiter, _timed_out: bool) -> None:
        with self._lock:
            waiter.wakeup.notify()

    def _serve_queue(self, slot: _Slot) -> None:
        """``slot`` is ours but our call will not run in it: give it to the next in line."""
        with self._lock:
            job = self._hand_on(slot)
        self._serve(slot, job)

    def _callers_deadline_passed(self, ticket: Ticket, deadline_at: float) -> WasmdError:
        """The answer of a plug-in's call to this one that its caller's deadline ended."""
        allowed_ms = max(0, round((deadline_at - ticket.started) * 1000))
        return WasmdError(
            ErrorCode.TIMEOUT,
            f"the calling plug-in's deadline passed {allowed_ms} ms into the call "
            f"(before this plug-in's own timeout_ms of {self.plugin.manifest.timeout_ms})",
            {"kind": CALLERS_DEADLINE, "deadline_ms": allowed_ms},
        )

    def _waited_too_long(self) -> WasmdError:
        return WasmdError(
            ErrorCode.TIMEOUT,
            "call waited for an instance past its deadline of "
            f"{self.plugin.manifest.timeout_ms} ms",
        )

    def _forget(self, owner: object) -> None:
        """Under the lock: one call of ``owner`` no longer runs or waits here."""
        self._pending -= 1
        left = self._owners[owner] - 1
        if left:
            self._owners[owner] = left
        else:
            del self._owners[owner]

    def _release(
        self,
        slot: _Slot,
        owner: object,
        finished: Ticket | None = None,
        error: WasmdError | None = None,
        *,
        take_job: bool = True,
    ) -> _Job | None:
        """Done with ``slot`` (a fresh instance first, if it needs one); with ``finished``,
        count that call in the stats under the same lock. The next queued job, which the
        caller runs in the slot; or None, and the slot went to a waiting thread or back to
        the free list."""
        if self._keeps_instance and (self._fresh_each_call or slot.instance is None):
            if self._policy.quarantined:
                # Quarantined (or on probation): the instance is made when a call runs.
                self._retire(slot)
            else:
                reason = self._instantiate(slot)
                if reason is not None:
                    log.error("%s: %s", self.plugin.name, reason)
                    self._instance_failed(reason)
        elapsed = 0.0 if finished is None else time.monotonic() - finished.started
        with self._lock:
            if finished is not None:
                self.account.count(elapsed, _error_name(error))
            self._forget(owner)
            if take_job:
                return self._hand_on(slot)
            orphans = [job for job in self._waiters if type(job) is _Job]
            for job in orphans:
                self._unqueue(job)
            self._hand_on(slot)  # a thread waiting for it, else the free list
        for job in orphans:
            error = WasmdError(ErrorCode.UNAVAILABLE, f"plug-in {self.plugin.name} failed")
            self._finished(job.ticket, error)
            _answer(job.respond, error, None)
        return None

    def _hand_on(self, slot: _Slot) -> _Job | None:
        """Under the lock: the next job to run in ``slot``; or None, and ``slot`` went to
        the next waiting thread or back to the free list."""
        waiters = self._waiters
        for waiter in waiters:
            if isinstance(waiter, _Job):
                waiters.remove(waiter)
                if waiter.ticket.backpressured:
                    waiter.deadline_at = time.monotonic() + self._timeout_s
                self._left_queue(waiter.ticket)
                return waiter
            if self._closing:
                continue  # a waiting thread gets PoolClosed (and leaves); jobs still run
            waiters.remove(waiter)
            self._left_queue(waiter.ticket)
            waiter.slot = slot
            waiter.wakeup.notify()
            return None
        self._free.append(slot)
        self._finish_closing()
        return None

    def _instantiate(self, slot: _Slot) -> str | None:
        """Give ``slot`` a fresh instance; the reason on failure."""
        self._retire(slot)
        if not self._keeps_instance:
            return None
        plugin = self.plugin
        timeout_ms = self._start_timeout_ms
        deadline = Deadline(
            time.monotonic() + timeout_ms / 1000, self._engines.ticks_for(timeout_ms)
        )
        try:
            slot.instance = Instance(plugin, deadline)
            return None
        except Exception as exc:
            try:
                return _instantiation_failure(exc, plugin.name, timeout_ms)
            finally:
                forget_traceback(exc)  # it holds the failed instance and its Store

    def _run(
        self, slot: _Slot, export: str, args: Any, ticket: Ticket, deadline_at: float
    ) -> tuple[WasmdError | None, Any, bool]:
        """The outcome: error, result, and whether the guest faulted (then the instance
        was discarded and the fault is reported as an event)."""
        plugin = self.plugin
        manifest = plugin.manifest
        remaining_ms = (deadline_at - time.monotonic()) * 1000
        if remaining_ms <= 0:
            return self._waited_too_long(), None, False
        if ticket.cancelled:  # while it was queued: no need to start it
            return WasmdError(ErrorCode.CANCELLED, "call cancelled"), None, False
        instance = slot.instance
        if self._keeps_instance and instance is None:
            reason = self._instantiate(slot)
            if reason is not None:
                self._instance_failed(reason)
                return WasmdError(ErrorCode.UNAVAILABLE, f"{plugin.name}: {reason}"), None, False
            instance = slot.instance
        # Ticks matter only to a Store whose deadline traps (no EpochGuard): skip the sum.
        guarded = instance is not None and instance.guard is not None
        ticks = 1 if guarded else self._engines.ticks_for(remaining_ms)
        deadline = Deadline(deadline_at, ticks, ticket)
        # Unlocked: threads racing on the countdown only shift which calls are sampled.
        countdown = self._cpu_countdown - 1
        if countdown:
            self._cpu_countdown = countdown
            sampled, cpu_at = 0, 0
        else:
            self._cpu_countdown = CPU_SAMPLE_EVERY
            sampled, self._cpu_weight = self._cpu_weight, CPU_SAMPLE_EVERY
            cpu_at = time.thread_time_ns()
        try:
            if instance is None:  # the ABI keeps no instance: a bare one for this call alone
                instance = Instance(plugin, deadline)
            return None, instance.run(export, args, deadline), False
        except WasmdError as exc:
            forget_traceback(exc)  # its frames hold the call's params and instance
            return exc, None, False  # the guest's own error, or output over the limit
        except Exception as exc:
            forget_traceback(exc)  # the same, and wasmtime-py's traps hold them in a cycle
            if sampled:  # the guest's time, not what handling its fault takes
                slot.cpu_ns += (time.thread_time_ns() - cpu_at) * sampled
                sampled = 0
            at_limit = instance is not None and instance.memory_at_limit()
            self._retire(slot)  # its state is suspect after any fault
            error = call_error(exc, timeout_ms=manifest.timeout_ms, fuel=manifest.fuel)
            if error.code == ErrorCode.TIMEOUT and deadline_at == ticket.caller_deadline:
                error = self._callers_deadline_passed(ticket, deadline_at)
            if at_limit and (error.data or {}).get("trap_code") == "unreachable":
                # Guests abort (unreachable) when an allocation fails: at the ceiling, that
                # is the cause. Other traps there (out of bounds, say) are the guest's own.
                error = WasmdError(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    f"memory limit of {manifest.memory_max} bytes reached; then: {error.message}",
                    error.data,
                )
            return error, None, True
        finally:
            if sampled or self._costs_every_call:
                self._spent(slot, instance, sampled, cpu_at)

    def _spent(self, slot: _Slot, instance: Instance | None, sampled: int, cpu_at: int) -> None:
        """Add what the call that ran in ``slot`` cost (not on the common path: only for a
        sampled call, a metered plug-in, and an ABI that keeps no instance). ``sampled``: how
        many calls the measured one stands for (0: not measured)."""
        if sampled:
            slot.cpu_ns += (time.thread_time_ns() - cpu_at) * sampled
        if instance is None:
            return
        if self._fuel:
            slot.fuel += instance.fuel_used()
        if not self._keeps_instance:  # a bare instance, for this call alone
            with self._lock:
                self._fold(instance, 0)

    def refuse(self, ticket: Ticket, error: WasmdError) -> WasmdError:
        """Count a call refused before it ran (in the plug-in's account, as every request to
        it is) and return its error, to be raised. Raised at once rather than held in a
        local: its traceback will hold the frame (and the caller's, with the params)."""
        self._finished(ticket, error)
        return error

    def _finished(self, ticket: Ticket, error: WasmdError | None) -> None:
        elapsed = time.monotonic() - ticket.started
        with self._lock:
            self.account.count(elapsed, _error_name(error))

    def _retire(self, slot: _Slot) -> None:
        """Discard ``slot``'s instance, folding its counters into the account."""
        size = _memory_of(slot)
        instance = slot.discard()
        if instance is not None:
            with self._lock:
                self._fold(instance, size)
        slot.memory_bytes = 0

    def _fold(self, instance: Instance | None, memory_size: int) -> None:
        """Under the lock: a discarded instance's counters go to the account."""
        if instance is None:
            return
        account = self.account
        account.bytes_in += instance.bytes_in
        account.bytes_out += instance.bytes_out
        instance.bytes_in = instance.bytes_out = 0
        account.note_memory(memory_size)

    def unfolded(self) -> tuple[int, int, int, int]:
        """Under the lock: (CPU ns, fuel, bytes in, bytes out) not yet in the account."""
        cpu = fuel = bytes_in = bytes_out = 0
        for slot in self._slots:
            cpu += slot.cpu_ns
            fuel += slot.fuel
            instance = slot.instance
            if instance is not None:
                bytes_in += instance.bytes_in
                bytes_out += instance.bytes_out
        return cpu, fuel, bytes_in, bytes_out

    # --- the failure policy --------------------------------------------------------------

    def _refuse_if_refused(self, ticket: Ticket) -> None:
        """Refuse the call if the plug-in is quarantined or its caller's uid throttled."""
        uid = _uid_of(ticket)
        with self._lock:
            refusal = self._policy.refusal(time.monotonic(), uid)
        if refusal is None:
            return  # on probation: this call may run
        retry_ms = max(1, round(refusal.retry_in * 1000))
        data: dict[str, Any] = {
            "kind": refusal.kind,
            "reason": refusal.reason,
            "retry_in_ms": retry_ms,
        }
        if refusal.kind == "throttled":
            data["uid"] = uid
            why = f"refuses calls from uid {uid}, whose calls faulted too often"
        else:
            why = "is quarantined"
        message = (
            f"plug-in {self.plugin.name} {why} ({refusal.reason}); it is retried in {retry_ms} ms"
        )
        raise self.refuse(ticket, WasmdError(ErrorCode.UNAVAILABLE, message, data))

    def _fault(self, error: WasmdError, ticket: Ticket) -> None:
        """A call faulted and its instance was discarded: charge it to the caller's uid."""
        with self._lock:
            self.account.restarts += 1
        if not _callers_doing(error):
            reason = f"{ErrorCode(error.code).name.lower()}: {error.message}"
            self._instance_failed(reason, _uid_of(ticket))

    def _instance_failed(self, reason: str, uid: int | None = None) -> None:
        """Count a fault against the failure policy: a call's from ``uid``, or (None) one no
        caller caused, such as an instance that cannot be made."""
        manifest = self.plugin.manifest
        with self._lock:
            tripped = self._policy.fault(time.monotonic(), reason, uid)
            if tripped is None:
                return
            if tripped.kind == "quarantined":
                self.account.quarantines += 1
            else:
                self.account.throttles += 1
        fields: dict[str, Any] = {"uid": tripped.uid} if tripped.kind == "throttled" else {}
        self._emit(
            f"plugin.{tripped.kind}",
            **fields,
            reason=tripped.reason,
            max_faults=manifest.failure.max_faults,
            window_ms=manifest.failure.window_ms,
            retry_in_ms=round(tripped.backoff * 1000),
        )

    def _recovered(self, ticket: Ticket) -> None:
        with self._lock:
            out_for, _ = self._policy.success(time.monotonic(), _uid_of(ticket))
        if out_for is not None:
            self._emit("plugin.recovered", quarantined_ms=round(out_for * 1000))

    def _emit(self, event: str, **fields: Any) -> None:
        plugin = self.plugin
        try:
            plugin.on_event(
                event, {"plugin": plugin.name, "version": plugin.short_version, **fields}
            )
        except Exception:
            log.exception("%s: emitting %s failed", plugin.name, event)

    def _no_such_export(self, export: str) -> WasmdError:
        plugin = self.plugin
        signature, allowed = plugin.exports.get(export), plugin.manifest.exports
        if signature is None:
            why = "which does not exist"
        elif allowed and export not in allowed:
            why = "which its manifest does not allow"
        elif signature.callable:  # _start, _initialize, wasmd_alloc, or another ABI's shape
            why = f"which is not a method under the {plugin.abi.name} ABI"
        else:
            why = f"whose signature the {plugin.abi.name} ABI cannot call"
        known = ", ".join(sorted(plugin.calls)) or "none"
        return WasmdError(
            ErrorCode.METHOD_NOT_FOUND,
            f"plug-in {plugin.name} has no callable export {echo(export)} "
            f"({why}; callable: {known})",
        )

    def _report(self, export: str, error: WasmdError) -> None:
        plugin = self.plugin
        fields: dict[str, Any] = {"export": export}
        if error.code == ErrorCode.TIMEOUT:
            data = error.data or {}
            if data.get("kind") == CALLERS_DEADLINE:
                fields.update(timeout_ms=data["deadline_ms"], deadline_of="caller")
            else:
                fields["timeout_ms"] = plugin.manifest.timeout_ms
            event = "plugin.timeout"
        elif error.code == ErrorCode.CANCELLED:
            fields["instance_restarted"] = True
            event = "plugin.cancelled"
        else:
            fields.update(code=int(error.code), message=error.message, instance_restarted=True)
            event = "plugin.trapped"
        if error.code == ErrorCode.INTERNAL:
            log.error("%s.%s: %s", plugin.name, export, error.message)
        self._emit(event, **fields)

    def stats(self) -> PoolStats:
        """Counts and latencies since the plug-in's name was first loaded (across reloads)."""
        seen = self.account.snapshot()
        with self._lock:
            pending = self._pending
        latency = percentiles_ms(sorted(seen.recent_latencies))
        return PoolStats(seen.calls, seen.errors, latency, pending, len(self._slots))

    def usage(self) -> PoolUsage:
        """What the pool holds now. Instances not lent out are measured (under the lock,
        nobody runs them); a lent one counts as it was last seen."""
        with self._lock:
            live = memory = 0
            for slot in self._slots:
                if slot.instance is None:
                    continue
                live += 1
                if slot in self._free:
                    slot.memory_bytes = slot.instance.memory_size()
                    self.account.note_memory(slot.memory_bytes)
                memory += slot.memory_bytes
            now = time.monotonic()
            retry_in = self._policy.plugin.refusal(now)
            throttled = self._policy.throttled(now)
            return PoolUsage(live, memory, self._pending, len(self._waiters), retry_in, throttled)


def _uid_of(ticket: Ticket) -> int:
    """The uid a call's faults are charged to: its peer's, or ``NO_PEER`` in-process."""
    peer = ticket.peer
    return NO_PEER if peer is None else peer.uid


def _answer(respond: Respond, error: WasmdError | None, result: Any) -> None:
    """Answer a call; a failing ``respond`` (a bug of the caller's) never stops the thread
    running the calls queued behind it."""
    try:
        respond(error, result)
    except Exception:
        log.exception("answering a call failed")


def _callers_doing(error: WasmdError) -> bool:
    """Whether a call ended for its caller's sake, not the plug-in's: cancelled, or stopped
    by the deadline of the plug-in that called it. No fault of the plug-in's."""
    if error.code == ErrorCode.CANCELLED:
        return True
    return error.code == ErrorCode.TIMEOUT and (error.data or {}).get("kind") == CALLERS_DEADLINE


def _instantiation_failure(exc: Exception, name: str, timeout_ms: int) -> str:
    """Why an instantiation failed, for the load's error or the log."""
    if isinstance(exc, CallEnded) or (
        isinstance(exc, wasmtime.Trap) and exc.trap_code == wasmtime.TrapCode.INTERRUPT
    ):
        return f"start code ran past its {timeout_ms} ms deadline"
    if isinstance(exc, wasmtime.Trap | wasmtime.WasmtimeError):
        return f"cannot instantiate: {cause_of(exc)}"
    log.error("%s: instantiating failed unexpectedly", name, exc_info=exc)  # a bug of ours
    return f"cannot instantiate: internal error: {exc!r}"


def _error_name(error: WasmdError | None) -> str | None:
    return None if error is None else ErrorCode(error.code).name.lower()


def _memory_of(slot: _Slot) -> int:
    """The linear memory of ``slot``'s instance: the most it reached, since memory only grows
    (as last seen, if a trap left the Store unusable)."""
    size = slot.memory_bytes
    if slot.instance is not None:
        with contextlib.suppress(Exception):
            size = slot.instance.memory_size()
    return size


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
