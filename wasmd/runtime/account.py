"""What one plug-in (by name, across its versions) has cost and done: the counters behind
``wasmd.stats`` and the Prometheus metrics (``wasmd.metrics``).

Theory of operation. A ``PluginAccount`` is plain numbers, one per plug-in name, made by the
loader and kept across reloads, so counters only ever grow (Prometheus counters must). Its
``lock`` is also the lock of every ``PluginPool`` built for the name: a pool counts a call
under the lock it already holds to give its instance back, so the accounting adds no lock
to the hot path, and an old version still draining and the new one count into the same
numbers safely. Readers (the metrics collector, ``wasmd.stats``) take ``snapshot()`` under
that lock at scrape time; nobody keeps a second copy.

Accounts of names no longer served are dropped (``Accounts.retire``, when a name is unloaded
or a load of a new name fails): otherwise every name that ever built would be listed by
``wasmd.metrics`` forever. What they counted is kept in daemon-wide totals
(``Accounts.totals``), which only grow; a name that comes back starts from zero, a counter
reset Prometheus's ``rate()`` expects.

Thread CPU time costs a system call (``CLOCK_THREAD_CPUTIME_ID`` has no vDSO fast path;
~0.3-0.6 us here), twice per call, which is more than the rest of the accounting together.
So it is measured on one call in ``CPU_SAMPLE_EVERY`` and each measured call counts for
that many: an unbiased estimate of the total, and a counter that still only grows. The first
call of each version is measured too and counts once, so a plug-in called a few times does
not read 0. A workload whose expensive calls come exactly every ``CPU_SAMPLE_EVERY``-th call
would fool it; real traffic does not keep such step.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

# Upper bounds (seconds) of the call-latency histogram's buckets: 50 us to 10 s, which covers
# a fast call of a persistent instance and the longest sensible timeout_ms.
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# The most recent call durations kept for wasmd.stats's percentiles.
LATENCY_SAMPLES = 2048
# One call in this many has its thread CPU time measured (a power of two: a mask test).
CPU_SAMPLE_EVERY = 16


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """A consistent copy of one ``PluginAccount``."""

    ok: int
    errors: dict[str, int]  # error code name -> calls answered with it
    latency_buckets: tuple[int, ...]  # per bucket (not cumulative), the last one is +Inf
    latency_sum: float
    recent_latencies: tuple[float, ...]
    cpu_seconds: float
    fuel: int
    bytes_in: int
    bytes_out: int
    memory_peak: int
    restarts: int
    reloads: int
    load_failures: int
    quarantines: int
    throttles: int  # times a caller uid was throttled (its calls faulted past the policy)

    @property
    def calls(self) -> int:
        return self.ok + sum(self.errors.values())


class PluginAccount:
    """One plug-in's counters. Write them only while holding ``lock``."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "cpu_ns",
        "errors",
        "fuel",
        "latencies",
        "latency_buckets",
        "latency_sum",
        "load_failures",
        "lock",
        "memory_peak",
        "ok",
        "pools",
        "quarantines",
        "reloads",
        "restarts",
        "throttles",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        self.cpu_ns = 0  # estimated: see the module docstring
        self.fuel = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.memory_peak = 0  # the largest one instance's linear memory has been
        self.restarts = 0  # instances discarded after a fault and made afresh
        self.reloads = 0
        self.load_failures = 0
        self.quarantines = 0
        self.throttles = 0
        # The pools counting into this account that have not drained: they hold counts not
        # folded in yet (PluginPool.unfolded).
        self.pools: set[Any] = set()

    def count(self, seconds: float, error: str | None) -> None:
        """Under ``lock``: one call answered after ``seconds``, with ``error`` or not."""
        if error is None:
            self.ok += 1
        else:
            self.errors[error] += 1
        self.latencies.append(seconds)
        self.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def note_memory(self, size: int) -> None:
        """Under ``lock``: an instance's linear memory was seen at ``size`` bytes."""
        if size > self.memory_peak:
            self.memory_peak = size

    def snapshot(self) -> AccountSnapshot:
        with self.lock:
            cpu_ns, fuel, bytes_in, bytes_out = (
                self.cpu_ns,
                self.fuel,
                self.bytes_in,
                self.bytes_out,
            )
            for pool in self.pools:
                more = pool.unfolded()
                cpu_ns += more[0]
                fuel += more[1]
                bytes_in += more[2]
                bytes_out += more[3]
            return AccountSnapshot(
                ok=self.ok,
                errors=dict(self.errors),
                latency_buckets=tuple(self.latency_buckets),
                latency_sum=self.latency_sum,
                recent_latencies=tuple(self.latencies),
                cpu_seconds=cpu_ns / 1e9,
                fuel=fuel,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                memory_peak=self.memory_peak,
                restarts=self.restarts,
                reloads=self.reloads,
                load_failures=self.load_failures,
                quarantines=self.quarantines,
                throttles=self.throttles,
            )


@dataclass(slots=True)
class Totals:
    """What every plug-in has counted over the daemon's life, those gone since included."""

    ok: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    cpu_seconds: float = 0.0
    fuel: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    restarts: int = 0
    reloads: int = 0
    load_failures: int = 0
    quarantines: int = 0
    throttles: int = 0

    def add(self, seen: AccountSnapshot) -> None:
        self.ok += seen.ok
        self.errors.update(seen.errors)
        self.cpu_seconds += seen.cpu_seconds
        self.fuel += seen.fuel
        self.bytes_in += seen.bytes_in
        self.bytes_out += seen.bytes_out
        self.restarts += seen.restarts
        self.reloads += seen.reloads
        self.load_failures += seen.load_failures
        self.quarantines += seen.quarantines
        self.throttles += seen.throttles

    def copy(self) -> Totals:
        copied = dataclasses.replace(self)
        copied.errors = collections.Counter(self.errors)
        return copied


class Accounts:
    """Every plug-in name's account, made on first use and kept while the name is served (a
    plug-in reloaded continues its counters); see the module docstring for what is dropped."""

    def __init__(self) -> None:
        self._accounts: dict[str, PluginAccount] = {}
        self._lock = threading.Lock()
        # Dropped accounts whose pools still drain (their calls still count), then what
        # they counted, folded together.
        self._departing: list[PluginAccount] = []
        self._gone = Totals()

    def retire(self, name: str) -> None:
        """Drop ``name``'s account: its counts live on only in ``totals``."""
        with self._lock:
            account = self._accounts.pop(name, None)
            if account is not None:
                self._departing.append(account)
            self._fold_drained()

    def totals(self) -> Totals:
        """Daemon-wide counts: every account's, those dropped included."""
        with self._lock:
            self._fold_drained()
            total = self._gone.copy()
            accounts = [*self._accounts.values(), *self._departing]
        for account in accounts:
            total.add(account.snapshot())
        return total

    def _fold_drained(self) -> None:
        """Under ``_lock``: dropped accounts nothing counts into any more join ``_gone``."""
        departing = []
        for account in self._departing:
            with account.lock:
                drained = not account.pools
            if drained:
                self._gone.add(account.snapshot())
            else:
                departing.append(account)
        self._departing = departing

    def __getitem__(self, name: str) -> PluginAccount:
        account = self._accounts.get(name)
        if account is None:
            with self._lock:
                account = self._accounts.setdefault(name, PluginAccount())
        return account

    def items(self) -> list[tuple[str, PluginAccount]]:
        with self._lock:
            return sorted(self._accounts.items())
