"""The runtime below the socket: compiling, lending instances, deterministic deadlines."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wasmd import ErrorCode, WasmdError
from wasmd.manifest import Manifest
from wasmd.runtime import (
    Engines,
    PluginFiles,
    PluginPool,
    PoolClosed,
    Ticket,
    compile_plugin,
    fastcall,
    read_module_bytes,
)

from .processes import until
from .wat import ARITH, COUNTER, SPIN

pytestmark = pytest.mark.usefixtures("call_path")

# The ticker is started but ticks once a minute: only the test advances epochs.
FROZEN_TICK_MS = 60_000


@pytest.fixture
def engines() -> Iterator[Engines]:
    with Engines(tick_ms=FROZEN_TICK_MS) as engines:
        yield engines


def make_pool(
    engines: Engines, tmp_path: Path, wat: str, manifest: Manifest | None = None
) -> PluginPool:
    path = tmp_path / "p.wat"
    path.write_text(wat)
    events: list[tuple[str, dict[str, Any]]] = []
    compiled = compile_plugin(
        PluginFiles("p", path, None, tmp_path, folder=False, protected=(tmp_path,)),
        manifest or Manifest(),
        engines,
        read_module_bytes(path, "p"),
        on_event=lambda kind, fields: events.append((kind, fields)),
    )
    pool = PluginPool(compiled, engines)
    pool.events = events  # type: ignore[attr-defined]
    pool.start()
    return pool


def call(pool: PluginPool, export: str, *params: Any) -> Any:
    """Call on this thread, as a connection's reader does; the reply comes on it too."""
    replies: list[tuple[WasmdError | None, Any]] = []
    ticket = Ticket(owner=None, started=time.monotonic())
    pool.call(export, list(params), ticket, lambda error, result: replies.append((error, result)))
    ((error, result),) = replies
    if error is not None:
        raise error
    return result


def call_in_thread(pool: PluginPool, export: str, ticket: Ticket | None = None) -> queue.Queue[Any]:
    """Start a call on a thread of its own; its outcome (error or result) arrives in the queue."""
    outcomes: queue.Queue[Any] = queue.Queue()
    ticket = ticket or Ticket(owner=None, started=time.monotonic())

    def run() -> None:
        try:
            pool.call(export, [], ticket, lambda error, result: outcomes.put(error or result))
        except WasmdError as exc:
            outcomes.put(exc)

    threading.Thread(target=run, daemon=True).start()
    return outcomes


def tick_until(engines: Engines, outcomes: queue.Queue[Any]) -> Any:
    """Advance epochs until the call answers: it may not have armed its deadline yet."""
    for _ in range(1000):
        engines.increment_epoch()
        try:
            return outcomes.get(timeout=0.01)
        except queue.Empty:
            continue
    raise AssertionError("the call never ended")


def test_replies_arrive_on_the_calling_thread(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, ARITH)
    threads: list[int] = []
    ticket = Ticket(owner=None, started=time.monotonic())
    pool.call("add", [1, 2], ticket, lambda e, r: threads.append(threading.get_ident()))
    assert threads == [threading.get_ident()]
    pool.close()
    assert pool.wait_closed(10)


def test_deadline_needs_an_epoch_tick(engines: Engines, tmp_path: Path) -> None:
    # The ticker is frozen: whatever the wall clock says, only a tick can end the call.
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=50))
    outcomes = call_in_thread(pool, "spin")
    with pytest.raises(queue.Empty):
        outcomes.get(timeout=0.15)  # thrice the 50 ms deadline, still spinning: no tick came
    error = tick_until(engines, outcomes)
    assert isinstance(error, WasmdError)
    assert error.code == ErrorCode.TIMEOUT
    assert pool.events[0][0] == "plugin.timeout"  # type: ignore[attr-defined]
    assert call(pool, "quick") == 7  # on a fresh instance
    pool.close()
    assert pool.wait_closed(10)


def test_close_lets_running_calls_finish_and_refuses_new_ones(
    engines: Engines, tmp_path: Path
) -> None:
    pool = make_pool(engines, tmp_path, COUNTER)
    assert [call(pool, "incr") for _ in range(3)] == [1, 2, 3]
    pool.close()
    assert pool.wait_closed(10)
    with pytest.raises(PoolClosed) as caught:
        call(pool, "incr")
    assert caught.value.code == ErrorCode.UNAVAILABLE


def test_second_instance_serves_while_the_first_spins(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=200, instances=2))
    spun = call_in_thread(pool, "spin")
    # No tick comes, so the spin cannot end: this answer can only come from the other instance.
    assert call(pool, "quick") == 7
    assert spun.empty()
    error = tick_until(engines, spun)
    assert isinstance(error, WasmdError)
    assert error.code == ErrorCode.TIMEOUT
    pool.close()
    assert pool.wait_closed(10)


def test_one_owner_waits_behind_its_own_call_instead_of_busy(
    engines: Engines, tmp_path: Path
) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000, instances=1, queue=0))
    owner = object()
    spin = Ticket(owner, time.monotonic())
    spun = call_in_thread(pool, "spin", spin)
    while pool.stats().in_flight < 1:  # the spinner holds the one instance
        time.sleep(0.001)
    # Another owner: the capacity is taken and there is no queue: busy.
    with pytest.raises(WasmdError) as caught:
        call(pool, "quick")
    assert caught.value.code == ErrorCode.BUSY
    # The same owner: it waits (backpressure), and gets the instance once the spin ends.
    behind = Ticket(owner, time.monotonic())
    waited = call_in_thread(pool, "quick", behind)
    while not behind.backpressured:
        time.sleep(0.001)
    spin.cancel()
    error = tick_until(engines, spun)
    assert isinstance(error, WasmdError)
    assert error.code in (ErrorCode.CANCELLED, ErrorCode.TIMEOUT)  # TIMEOUT: no guard
    if fastcall.ENABLED:
        assert error.code == ErrorCode.CANCELLED
    assert waited.get(timeout=10) == 7
    pool.close()
    assert pool.wait_closed(10)


def test_a_cancelled_waiter_leaves_at_once(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000, instances=1, queue=1))
    spin = Ticket(None, time.monotonic())
    spun = call_in_thread(pool, "spin", spin)
    while pool.stats().in_flight < 1:
        time.sleep(0.001)
    waiting = Ticket(None, time.monotonic())
    waited = call_in_thread(pool, "quick", waiting)
    while pool.stats().in_flight < 2:
        time.sleep(0.001)
    waiting.cancel()
    error = waited.get(timeout=10)
    assert isinstance(error, WasmdError)
    assert error.code == ErrorCode.CANCELLED
    spin.cancel()
    tick_until(engines, spun)
    pool.close()
    assert pool.wait_closed(10)


# --- the run queue: detached calls (the server's) never wait on their caller's thread ----


def _answers() -> tuple[queue.Queue[Any], Any]:
    """A respond that records (error or result, the answering thread)."""
    answers: queue.Queue[Any] = queue.Queue()

    def respond(error: WasmdError | None, result: Any) -> None:
        answers.put((error or result, threading.get_ident()))

    return answers, respond


def _running(pool: PluginPool) -> bool:
    """Whether a call holds an instance (a short wait when not: a bounded poll's step)."""
    if pool.stats().in_flight >= 1:
        return True
    time.sleep(0.001)
    return False


def _spinning(engines: Engines, pool: PluginPool, owner: object) -> tuple[Ticket, Any]:
    spin = Ticket(owner, time.monotonic())
    spun = call_in_thread(pool, "spin", spin)
    until(lambda: _running(pool), within=10, what="the spinner's start")
    return spin, spun


def test_a_detached_call_is_queued_and_run_by_the_thread_that_frees_the_instance(
    engines: Engines, tmp_path: Path
) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000, instances=1, queue=4))
    spinner_thread: list[int] = []
    spin = Ticket(None, time.monotonic())

    def run_spin() -> None:
        spinner_thread.append(threading.get_ident())
        pool.call("spin", [], spin, lambda error, result: None)

    threading.Thread(target=run_spin, daemon=True).start()
    until(lambda: _running(pool), within=10, what="the spinner's start")
    answers, respond = _answers()
    queued = Ticket(object(), time.monotonic(), detached=True)
    pool.call("quick", [], queued, respond)  # returns at once: the caller goes on
    assert answers.empty()
    assert pool.usage().queued == 1
    spin.cancel()

    def answered() -> bool:
        engines.increment_epoch()  # the spin ends at a tick; then the queued call runs
        time.sleep(0.001)
        return not answers.empty()

    until(answered, within=10, what="the queued call's answer")
    result, thread = answers.get(timeout=10)
    assert result == 7
    assert thread == spinner_thread[0]  # combining: no hand-off to another thread
    pool.close()
    assert pool.wait_closed(10)


def test_a_queued_call_cancelled_is_answered_at_once(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000, instances=1, queue=1))
    spin, spun = _spinning(engines, pool, None)
    answers, respond = _answers()
    queued = Ticket(object(), time.monotonic(), detached=True)
    pool.call("quick", [], queued, respond)
    queued.cancel()
    error, thread = answers.get(timeout=0)  # answered by the cancel itself
    assert isinstance(error, WasmdError)
    assert error.code == ErrorCode.CANCELLED
    assert thread == threading.get_ident()
    assert pool.usage().queued == 0
    # Its queue place is free again.
    again = Ticket(object(), time.monotonic(), detached=True)
    pool.call("quick", [], again, respond)
    assert pool.usage().queued == 1
    spin.cancel()
    tick_until(engines, spun)
    assert answers.get(timeout=10)[0] == 7
    assert pool.account.snapshot().errors.get("cancelled", 0) >= 1
    pool.close()
    assert pool.wait_closed(10)


def test_a_queued_call_past_its_deadline_is_answered_timeout_without_running(
    engines: Engines, tmp_path: Path
) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=200, instances=1, queue=1))
    spin, spun = _spinning(engines, pool, None)
    answers, respond = _answers()
    queued = Ticket(object(), time.monotonic(), detached=True)
    pool.call("quick", [], queued, respond)
    assert queued.expire(time.monotonic()) is True  # not yet: still queued
    assert queued.expire(queued.started + 0.2) is False  # the watcher, at the deadline
    error, _ = answers.get(timeout=0)
    assert isinstance(error, WasmdError)
    assert error.code == ErrorCode.TIMEOUT
    assert pool.usage().queued == 0
    spin.cancel()
    tick_until(engines, spun)
    pool.close()
    assert pool.wait_closed(10)


def test_queue_places_count_other_owners_only(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000, instances=1, queue=1))
    owner = object()
    spin, spun = _spinning(engines, pool, owner)
    answers, respond = _answers()
    # The same owner queues without a place (its own in-flight limit bounds it) ...
    for _ in range(3):
        pool.call("quick", [], Ticket(owner, time.monotonic(), detached=True), respond)
    # ... another takes the one place, and a third owner is refused busy.
    pool.call("quick", [], Ticket(object(), time.monotonic(), detached=True), respond)
    with pytest.raises(WasmdError) as caught:
        pool.call("quick", [], Ticket(object(), time.monotonic(), detached=True), respond)
    assert caught.value.code == ErrorCode.BUSY
    assert pool.usage().queued == 4
    spin.cancel()
    tick_until(engines, spun)
    assert [answers.get(timeout=10)[0] for _ in range(4)] == [7, 7, 7, 7]
    pool.close()
    assert pool.wait_closed(10)


def test_calls_queued_before_a_close_still_run(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000, instances=1, queue=1))
    spin, spun = _spinning(engines, pool, None)
    answers, respond = _answers()
    pool.call("quick", [], Ticket(object(), time.monotonic(), detached=True), respond)
    pool.close()
    assert not pool.wait_closed(0)
    spin.cancel()
    tick_until(engines, spun)
    assert answers.get(timeout=10)[0] == 7
    assert pool.wait_closed(10)


def test_a_call_queued_behind_its_own_owners_calls_starts_its_deadline_when_it_runs(
    engines: Engines, tmp_path: Path
) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=200, instances=1, queue=0))
    owner = object()
    spin, spun = _spinning(engines, pool, owner)
    answers, respond = _answers()
    # Arrived a second ago: past its deadline, were it counted from arrival.
    behind = Ticket(owner, time.monotonic() - 1.0, detached=True)
    pool.call("quick", [], behind, respond)
    assert behind.backpressured
    assert behind.deadline_at is None  # nothing for the watcher to expire
    spin.cancel()
    tick_until(engines, spun)
    assert answers.get(timeout=10)[0] == 7
    pool.close()
    assert pool.wait_closed(10)
