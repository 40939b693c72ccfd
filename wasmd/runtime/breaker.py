"""The failure policy of one plug-in version: faults are charged to the caller who caused them.

Theory of operation (circuit breakers, with time passed in so tests need no clock).

One ``CircuitBreaker`` is one crash-loop bound:
- closed: every fault (a trap, a timeout, an instance that cannot be made) is remembered
  for ``window_ms``; the ``max_faults``-th within the window trips the breaker;
- refusing until ``now + backoff``: calls are refused (``unavailable``) without running;
- on probation once the backoff has passed: calls run again. A call that ends without a
  fault closes the breaker ("recovered") and resets the backoff; a fault trips it again at
  once, for twice as long (up to ``backoff_max_ms``).

``FaultPolicy`` keeps one breaker per caller uid and one for the plug-in as a whole:
- a fault in a caller's call is charged to that caller's uid (a nested ``wasmd.call`` to
  the uid of the request it was made for; in-process ``Loader`` calls all to ``NO_PEER``).
  A uid past ``max_faults`` is *throttled*: its calls are refused, everybody else's run;
- the plug-in as a whole is *quarantined* (every call refused, no instance made) for faults
  no caller's call caused (instantiating fails: start code after a load, a reload or a
  fault), and when ``quarantine_uids`` distinct uids share the faults of one window:
  ``max_faults`` faults within ``window_ms``, each uid counting for at most its share
  (``max_faults / quarantine_uids``, rounded up), so a single uid, or one with a few
  bystanders who faulted once, never takes the plug-in away from the rest.
The per-uid table holds at most ``MAX_CALLERS`` uids (the least recently faulting one is
forgotten first; uids are bounded anyway by who may connect: the allow list), and a uid
whose throttle ended ``backoff_max_ms`` ago without a call is forgotten (its backoff too).
``max_faults = 0`` turns the policy off. Not thread-safe: the pool calls it under its lock.
"""

from __future__ import annotations

import collections
import math
from typing import NamedTuple

from ..manifest import FailurePolicy

# The uid charged for calls with no socket peer (in-process Loader calls): one caller.
NO_PEER = -1
# Caller uids remembered per plug-in version; past it the least recently faulting goes.
MAX_CALLERS = 1024
# How often (seconds) the table is swept for uids whose throttle is long over.
SWEEP_EVERY = 1.0


class CircuitBreaker:
    __slots__ = ("_backoff", "_faults", "policy", "reason", "since", "tripped", "until")

    def __init__(self, policy: FailurePolicy) -> None:
        self.policy = policy
        self._faults: collections.deque[float] = collections.deque()
        self._backoff = policy.backoff_ms / 1000
        self.tripped = False  # refusing, or on probation after it
        self.until = 0.0  # when the refusal ends (monotonic seconds)
        self.since = 0.0  # when it began
        self.reason = ""

    def refusal(self, now: float) -> float | None:
        """Seconds until calls are let through again, or None if they are now."""
        if self.tripped and now < self.until:
            return self.until - now
        return None

    def fault(self, now: float, reason: str) -> float | None:
        """Count a fault; the refusal's length in seconds if it trips the breaker."""
        if self.policy.max_faults == 0:
            return None
        if not self.tripped and self.recent(now, add=True) < self.policy.max_faults:
            return None
        return self.trip(now, reason)

    def recent(self, now: float, *, add: bool = False) -> int:
        """Faults within the window (counting one more at ``now`` with ``add``)."""
        faults = self._faults
        if add:
            faults.append(now)
        while faults and faults[0] <= now - self.policy.window_ms / 1000:
            faults.popleft()
        return len(faults)

    def trip(self, now: float, reason: str) -> float | None:
        """Refuse calls now; the refusal's length, or None if it was refusing already."""
        if self.tripped:
            if now < self.until:
                return None  # a call that was already running when the breaker tripped
            self._backoff = min(self._backoff * 2, self.policy.backoff_max_ms / 1000)
        else:
            self._faults.clear()
            self.tripped = True
            self.since = now
        self.until = now + self._backoff
        self.reason = reason
        return self._backoff

    def success(self, now: float) -> float | None:
        """A call ended without a fault; how long calls were refused, if this recovers it."""
        if not self.tripped or now < self.until:
            return None
        self.tripped = False
        self._backoff = self.policy.backoff_ms / 1000
        return now - self.since


class Refusal(NamedTuple):
    kind: str  # "quarantined" (the plug-in) or "throttled" (the caller's uid)
    reason: str  # the fault that tripped it
    retry_in: float  # seconds


class Tripped(NamedTuple):
    kind: str  # "quarantined" or "throttled"
    uid: int | None  # the throttled uid
    backoff: float  # seconds
    reason: str


class FaultPolicy:
    """The plug-in's breaker and its callers' (see the module docstring)."""

    __slots__ = ("_callers", "_next_sweep", "_share", "plugin", "policy", "watching")

    def __init__(self, policy: FailurePolicy) -> None:
        self.policy = policy
        self.plugin = CircuitBreaker(policy)
        self._callers: collections.OrderedDict[int, CircuitBreaker] = collections.OrderedDict()
        self._share = math.ceil(policy.max_faults / policy.quarantine_uids)
        self._next_sweep = 0.0
        # True while any breaker is tripped: only then must a call look its caller up (the
        # pool reads it without the lock, as a hint; the look-up itself is under the lock).
        self.watching = False

    def refusal(self, now: float, uid: int) -> Refusal | None:
        """Why a call from ``uid`` is refused now, or None if it may run."""
        if now >= self._next_sweep:
            self._sweep(now)
        retry_in = self.plugin.refusal(now)
        if retry_in is not None:
            return Refusal("quarantined", self.plugin.reason, retry_in)
        caller = self._callers.get(uid)
        if caller is None:
            return None
        retry_in = caller.refusal(now)
        return None if retry_in is None else Refusal("throttled", caller.reason, retry_in)

    def fault(self, now: float, reason: str, uid: int | None) -> Tripped | None:
        """Count a fault of a call from ``uid``, or one no caller caused (``uid`` None)."""
        if self.policy.max_faults == 0:
            return None
        if uid is None:
            return self._tripped("quarantined", None, self.plugin.fault(now, reason), reason)
        caller = self._callers.get(uid)
        if caller is None:
            caller = self._callers[uid] = CircuitBreaker(self.policy)
            if len(self._callers) > MAX_CALLERS:
                self._callers.popitem(last=False)
        else:
            self._callers.move_to_end(uid)
        throttled = caller.fault(now, reason)
        uids = self._uids_sharing_the_faults(now)
        if uids:
            shared = f"{reason} (and faults of {uids} uids)"
            quarantined = self.plugin.trip(now, shared)
            if quarantined is not None:
                return self._tripped("quarantined", None, quarantined, shared)
        return self._tripped("throttled", uid, throttled, reason)

    def _tripped(
        self, kind: str, uid: int | None, backoff: float | None, reason: str
    ) -> Tripped | None:
        if backoff is None:
            return None
        self.watching = True
        return Tripped(kind, uid, backoff, reason)

    def _uids_sharing_the_faults(self, now: float) -> int:
        """How many uids share the window's faults if they are enough to quarantine the
        plug-in (module docstring), else 0."""
        policy = self.policy
        window_start = now - policy.window_ms / 1000
        uids = total = 0
        for caller in self._callers.values():
            count = caller.recent(now)
            if caller.tripped and caller.since > window_start:
                count = policy.max_faults  # throttled within this window: it faulted enough
            if count:
                uids += 1
                total += min(count, self._share)
        return uids if uids >= policy.quarantine_uids and total >= policy.max_faults else 0

    def success(self, now: float, uid: int) -> tuple[float | None, float | None]:
        """A call from ``uid`` ended without a fault: how long (seconds) the plug-in was
        quarantined, and the uid throttled, if this ends either."""
        recovered = self.plugin.success(now)
        caller = self._callers.get(uid)
        forgiven = None if caller is None else caller.success(now)
        if forgiven is not None:
            del self._callers[uid]
        if recovered is not None or forgiven is not None:
            self._update_watching()
        return recovered, forgiven

    def _sweep(self, now: float) -> None:
        """Forget uids whose throttle ended over ``backoff_max_ms`` ago, and untripped ones
        with no fault in the window: a uid that went away does not keep every call slow."""
        self._next_sweep = now + SWEEP_EVERY
        grace = self.policy.backoff_max_ms / 1000
        for uid, caller in list(self._callers.items()):
            if caller.tripped:
                if now >= caller.until + grace:
                    del self._callers[uid]
            elif not caller.recent(now):
                del self._callers[uid]
        self._update_watching()

    def _update_watching(self) -> None:
        self.watching = self.plugin.tripped or any(c.tripped for c in self._callers.values())

    def throttled(self, now: float) -> list[int]:
        """The uids refused now."""
        return sorted(uid for uid, c in self._callers.items() if c.refusal(now) is not None)

    @property
    def quarantined(self) -> bool:
        """The plug-in as a whole is quarantined or on probation: make no instance ahead."""
        return self.plugin.tripped
