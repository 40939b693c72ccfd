"""The failure policy of one plug-in version: when a crash loop becomes a quarantine.

Theory of operation (a circuit breaker, with time passed in so tests need no clock):
- closed: every fault (a trap, a timeout, an instance that cannot be made) is remembered
  for ``window_ms``; the ``max_faults``-th within the window trips the breaker;
- quarantined until ``now + backoff``: calls are refused (``unavailable``) without running,
  and no instance is made;
- on probation once the backoff has passed: calls run again (the first makes a fresh
  instance). A call that ends without a fault closes the breaker ("recovered") and resets
  the backoff; a fault quarantines again at once, for twice as long (up to
  ``backoff_max_ms``).
``max_faults = 0`` turns the breaker off. Not thread-safe: the pool calls it under its lock.
"""

from __future__ import annotations

import collections

from ..manifest import FailurePolicy


class CircuitBreaker:
    __slots__ = ("_backoff", "_faults", "policy", "reason", "since", "tripped", "until")

    def __init__(self, policy: FailurePolicy) -> None:
        self.policy = policy
        self._faults: collections.deque[float] = collections.deque()
        self._backoff = policy.backoff_ms / 1000
        self.tripped = False  # quarantined, or on probation after it
        self.until = 0.0  # when the quarantine ends (monotonic seconds)
        self.since = 0.0  # when it began
        self.reason = ""

    def refusal(self, now: float) -> float | None:
        """Seconds until calls are let through again, or None if they are now."""
        if self.tripped and now < self.until:
            return self.until - now
        return None

    def fault(self, now: float, reason: str) -> float | None:
        """Count a fault; the quarantine's length in seconds if it trips the breaker."""
        policy = self.policy
        if policy.max_faults == 0:
            return None
        if self.tripped:
            if now < self.until:
                return None  # a call that was already running when the breaker tripped
            self._backoff = min(self._backoff * 2, policy.backoff_max_ms / 1000)
            return self._quarantine(now, reason)
        faults = self._faults
        faults.append(now)
        while faults[0] <= now - policy.window_ms / 1000:
            faults.popleft()
        if len(faults) < policy.max_faults:
            return None
        faults.clear()
        self.tripped = True
        self.since = now
        return self._quarantine(now, reason)

    def _quarantine(self, now: float, reason: str) -> float:
        self.until = now + self._backoff
        self.reason = reason
        return self._backoff

    def success(self, now: float) -> float | None:
        """A call ended without a fault; how long the plug-in was out, if this recovers it."""
        if not self.tripped or now < self.until:
            return None
        self.tripped = False
        self._backoff = self.policy.backoff_ms / 1000
        return now - self.since
