"""The runtime below the socket: compiling, the pool's worker threads, deterministic deadlines."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wasmd import ErrorCode, PluginLoadError, WasmdError
from wasmd.discovery import PluginSource
from wasmd.manifest import Manifest
from wasmd.runtime import Engines, PluginPool, compile_plugin, read_module_bytes
from wasmd.runtime.abi import CONVERTERS

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
    source = PluginSource("p", path, None, tmp_path, tmp_path)
    compiled = compile_plugin(source, manifest or Manifest(), engines, read_module_bytes(path, "p"))
    events: list[tuple[str, dict[str, Any]]] = []
    pool = PluginPool(compiled, engines, lambda kind, fields: events.append((kind, fields)))
    pool.events = events  # type: ignore[attr-defined]
    pool.start()
    return pool


def call(pool: PluginPool, export: str, *params: Any) -> Any:
    """Submit and block for the reply (the reply arrives on a worker thread)."""
    replies: queue.SimpleQueue[tuple[WasmdError | None, Any]] = queue.SimpleQueue()
    pool.submit(export, list(params), lambda error, result: replies.put((error, result)))
    error, result = replies.get(timeout=10)
    if error is not None:
        raise error
    return result


def test_replies_arrive_on_the_worker_thread(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, ARITH)
    threads: queue.SimpleQueue[str] = queue.SimpleQueue()
    pool.submit("add", [1, 2], lambda e, r: threads.put(threading.current_thread().name))
    assert threads.get(timeout=10) == "wasmd:p#0"
    pool.close()
    assert pool.wait_closed(10)


def test_deadline_is_enforced_by_epochs_not_wall_time(engines: Engines, tmp_path: Path) -> None:
    # timeout 60 s at one tick a minute = 2 ticks; the test supplies them.
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000))
    replies: queue.SimpleQueue[tuple[WasmdError | None, Any]] = queue.SimpleQueue()
    pool.submit("spin", [], lambda error, result: replies.put((error, result)))
    with pytest.raises(queue.Empty):
        replies.get(timeout=0.2)  # still spinning: no tick has come
    engines.increment_epoch()
    engines.increment_epoch()
    error, _ = replies.get(timeout=10)
    assert error is not None
    assert error.code == ErrorCode.TIMEOUT
    assert pool.events[0][0] == "plugin.timeout"  # type: ignore[attr-defined]
    assert call(pool, "quick") == 7  # on a fresh instance
    pool.close()
    assert pool.wait_closed(10)


def test_ticks_cover_the_whole_timeout() -> None:
    engines = Engines(tick_ms=10)
    assert engines.ticks_for(1000) == 101
    assert engines.ticks_for(5) == 2
    assert engines.ticks_for(0.1) == 2


def test_close_drains_queued_calls(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, COUNTER)
    replies: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for _ in range(20):
        pool.submit("incr", [], lambda error, result: replies.put(result))
    pool.close()
    assert pool.wait_closed(10)
    assert sorted(replies.get_nowait() for _ in range(20)) == list(range(1, 21))
    with pytest.raises(WasmdError) as caught:
        pool.submit("incr", [], lambda error, result: None)
    assert caught.value.code == ErrorCode.UNAVAILABLE


def test_second_instance_serves_while_the_first_spins(engines: Engines, tmp_path: Path) -> None:
    pool = make_pool(engines, tmp_path, SPIN, Manifest(timeout_ms=60_000, instances=2))
    spun: queue.SimpleQueue[WasmdError | None] = queue.SimpleQueue()
    pool.submit("spin", [], lambda error, result: spun.put(error))
    # No tick comes, so the spin cannot end: this answer can only come from the other instance.
    assert call(pool, "quick") == 7
    assert spun.empty()
    engines.increment_epoch()
    engines.increment_epoch()
    error = spun.get(timeout=10)
    assert error is not None
    assert error.code == ErrorCode.TIMEOUT
    pool.close()
    assert pool.wait_closed(10)


def test_compile_errors_name_the_plugin(engines: Engines, tmp_path: Path) -> None:
    path = tmp_path / "p.wasm"
    path.write_bytes(b"\x00asm\x01\x00\x00\x00\x01")
    source = PluginSource("p", path, None, tmp_path, tmp_path)
    with pytest.raises(PluginLoadError) as caught:
        compile_plugin(source, Manifest(), engines, path.read_bytes())
    assert caught.value.name == "p"
    assert "invalid module" in caught.value.reason


@pytest.mark.parametrize(
    ("type_name", "value", "converted"),
    [
        ("i32", 2**31, -(2**31)),
        ("i32", 2**32 - 1, -1),
        ("i32", -5, -5),
        ("i64", 2**63, -(2**63)),
        ("f32", 3, 3.0),
        ("f64", float("inf"), float("inf")),
        ("f32", float("-inf"), float("-inf")),
    ],
)
def test_converters_accept(type_name: str, value: Any, converted: Any) -> None:
    assert CONVERTERS[type_name](value, 0) == converted


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("i32", 2**32),
        ("i32", -(2**31) - 1),
        ("i32", True),
        ("i32", 1.0),
        ("i32", "1"),
        ("i64", None),
        ("f64", "1.0"),
        ("f64", False),
        ("f32", 3.5e38),
        ("i32", [1]),
    ],
)
def test_converters_refuse(type_name: str, value: Any) -> None:
    with pytest.raises(WasmdError) as caught:
        CONVERTERS[type_name](value, 3)
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    assert caught.value.message.startswith(f"param 3 ({type_name})")
