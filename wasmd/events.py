"""Lifecycle events: numbered, timestamped, logged one line each, and fanned out to subscribers.

``emit`` runs on the event loop; ``emit_threadsafe`` is what worker threads call (a trap is
reported from the thread that ran the guest). Subscribers each get a bounded buffer: a slow
subscriber loses its oldest events, never slows the daemon, and learns how many it lost
through an ``events.dropped`` event.
"""

from __future__ import annotations

# asyncio, not anyio: emit_threadsafe hands an event to the loop without waiting (anyio's
# from_thread.run_sync waits for the result; a BlockingPortal would start a task per event).
import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("wasmd.events")

# One lifecycle event as subscribers get it: "type", "seq", "time" and the event's fields.
# (Not to be confused with protocol.Event, a decoded MessagePack-RPC message.)
LifecycleEvent = dict[str, Any]

_LEVELS = {
    "plugin.failed": logging.WARNING,
    "plugin.trapped": logging.WARNING,
    "plugin.timeout": logging.WARNING,
    "plugin.shadowed": logging.WARNING,
    "plugin.quarantined": logging.WARNING,
    "plugin.throttled": logging.WARNING,
}


# A log line shows this much of each field's value: events may carry guest data.
LOG_FIELD_LIMIT = 512


def format_event(event: LifecycleEvent) -> str:
    fields = " ".join(
        f"{key}={_shown(value)}"
        for key, value in event.items()
        if key not in ("type", "seq", "time")
    )
    return f"{event['type']} {fields}".rstrip()


def _shown(value: Any) -> str:
    text = repr(value)  # repr: a newline in a guest's string cannot split the log line
    if len(text) > LOG_FIELD_LIMIT:
        return f"{text[:LOG_FIELD_LIMIT]}... ({len(text)} characters)"
    return text


class Subscription:
    """One subscriber's filtered, bounded view of the stream."""

    def __init__(self, prefixes: tuple[str, ...], limit: int, wake: Callable[[], None]) -> None:
        self.prefixes = prefixes
        self.buffer: collections.deque[LifecycleEvent] = collections.deque()
        self.limit = limit
        self.dropped = 0
        self._wake = wake

    def wants(self, event_type: str) -> bool:
        return not self.prefixes or event_type.startswith(self.prefixes)

    def offer(self, event: LifecycleEvent) -> bool:
        """Buffer ``event``; False if the oldest had to be dropped to make room."""
        dropped = len(self.buffer) >= self.limit
        if dropped:
            self.buffer.popleft()
            self.dropped += 1
        self.buffer.append(event)
        self._wake()
        return not dropped

    def take(self) -> list[LifecycleEvent]:
        """Everything buffered, preceded by an ``events.dropped`` note if any were lost."""
        events = list(self.buffer)
        self.buffer.clear()
        if self.dropped:
            events.insert(0, {"type": "events.dropped", "count": self.dropped, "time": time.time()})
            self.dropped = 0
        return events


class EventBus:
    def __init__(self, *, buffer_limit: int) -> None:
        self._seq = itertools.count(1)
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.buffer_limit = buffer_limit
        self.dropped = 0  # events lost by slow subscribers, all time

    def bind(self) -> None:
        """Deliver ``emit_threadsafe``'s events on the running event loop (call it there)."""
        self._loop = asyncio.get_running_loop()

    def emit(self, event_type: str, fields: dict[str, Any] | None = None) -> LifecycleEvent:
        event: LifecycleEvent = {"type": event_type, "seq": next(self._seq), "time": time.time()}
        if fields:
            event.update(fields)
        log.log(_LEVELS.get(event_type, logging.INFO), "%s", format_event(event))
        for subscription in tuple(self._subscriptions):
            if subscription.wants(event_type) and not subscription.offer(event):
                self.dropped += 1
        return event

    def emit_threadsafe(self, event_type: str, fields: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            log.info("%s", format_event({"type": event_type, **fields}))
            return
        loop.call_soon_threadsafe(self.emit, event_type, fields)

    def subscribe(self, prefixes: tuple[str, ...], wake: Callable[[], None]) -> Subscription:
        subscription = Subscription(prefixes, self.buffer_limit, wake)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)
