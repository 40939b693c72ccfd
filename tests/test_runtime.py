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
