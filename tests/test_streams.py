"""The stream core (``wasmd.streams.CallStream``) alone: window, credit, pushes, and the waits
that end at credit, push, cancellation or the deadline. Threads, no socket, no runtime."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from wasmd import ErrorCode, WasmdError
from wasmd.streams import (
    CANCELLED,
    DEFAULT_WINDOW,
    END,
    MAX_CHUNK,
    MAX_PUSHES,
    MAX_WINDOW,
    SENT,
    TIMEOUT,
    CallStream,
    TooBig,
    parse_window,
)

LONG = 10.0  # a bound no passing test comes near


class Flag:
    def __init__(self) -> None:
        self.cancelled = False


def far() -> float:
    return time.monotonic() + LONG


def collecting() -> tuple[list[tuple[int, Any]], Callable[[int, Any], None]]:
    chunks: list[tuple[int, Any]] = []
    return chunks, lambda seq, value: chunks.append((seq, value))


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def test_chunks_are_numbered_in_order_within_the_window() -> None:
    chunks, sink = collecting()
    stream = CallStream(3, sink)
    for value in "abc":
        assert stream.send(value, far(), None) == SENT
    assert chunks == [(0, "a"), (1, "b"), (2, "c")]


def test_the_chunk_past_the_window_waits_for_credit() -> None:
    chunks, sink = collecting()
    stream = CallStream(2, sink)
    stream.send(0, far(), None)
    stream.send(1, far(), None)
    thread, out = in_thread(lambda: stream.send(2, far(), None))
    thread.join(0.05)
    assert thread.is_alive()
    assert len(chunks) == 2
    stream.credit(1)
    thread.join(LONG)
    assert out == [SENT]
    assert chunks[-1] == (2, 2)
    # Credit is cumulative: 1 granted, so chunk 3 waits again.
    thread, out = in_thread(lambda: stream.send(3, far(), None))
    thread.join(0.05)
    assert thread.is_alive()
    stream.credit(5)
    thread.join(LONG)
    assert out == [SENT]


def test_zero_or_negative_credit_grants_nothing() -> None:
    stream = CallStream(1)
    stream.send(0, far(), None)
    stream.credit(0)
    stream.credit(-5)
    assert stream.send(1, time.monotonic() + 0.02, None) == TIMEOUT


def test_cancel_ends_a_send_waiting_for_credit_within_a_tick() -> None:
    stream = CallStream(1)
    stream.send(0, far(), None)
    flag = Flag()
    thread, out = in_thread(lambda: stream.send(1, far(), flag))
    thread.join(0.02)
    assert thread.is_alive()
    flag.cancelled = True  # the flag alone, as a hang-up sets it: seen at the next slice
    thread.join(LONG)
    assert out == [CANCELLED]


def test_cancel_ends_a_cancelled_wait_at_once() -> None:
    stream = CallStream(1)
    stream.send(0, far(), None)
    flag = Flag()
    thread, out = in_thread(lambda: stream.recv(16, far(), flag))
    thread.join(0.02)
    flag.cancelled = True
    stream.cancel()
    thread.join(LONG)
    assert out == [CANCELLED]


def test_the_deadline_ends_a_send_waiting_for_credit() -> None:
    stream = CallStream(1)
    stream.send(0, far(), None)
    started = time.monotonic()
    assert stream.send(1, started + 0.03, Flag()) == TIMEOUT
    assert time.monotonic() - started >= 0.03


def test_a_sink_that_is_not_ready_holds_the_chunk_back() -> None:
    chunks, sink = collecting()
    ready = [False]
    stream = CallStream(8, sink, ready=lambda: ready[0])
    thread, out = in_thread(lambda: stream.send("x", far(), None))
    thread.join(0.03)
    assert thread.is_alive()
    assert not chunks
    ready[0] = True
    thread.join(LONG)
    assert out == [SENT]
    assert chunks == [(0, "x")]


def test_pushes_are_received_in_order_then_the_end() -> None:
    stream = CallStream(1)
    stream.push(1)
    stream.push("hi")
    stream.push_end()
    assert stream.recv(16, far(), None) == b"\x01"  # each as its msgpack encoding
    assert stream.recv(16, far(), None) == b"\xa2hi"
    assert stream.recv(16, far(), None) == END
    assert stream.recv(16, far(), None) == END


def test_a_value_over_cap_stays_queued() -> None:
    stream = CallStream(1)
    stream.push("hello")
    answer = stream.recv(3, far(), None)
    assert isinstance(answer, TooBig)
    assert answer.size == 6
    assert stream.recv(6, far(), None) == b"\xa5hello"


def test_recv_waits_for_a_push() -> None:
    stream = CallStream(1)
    thread, out = in_thread(lambda: stream.recv(16, far(), None))
    thread.join(0.02)
    assert thread.is_alive()
    stream.push(7)
    thread.join(LONG)
    assert out == [b"\x07"]


def test_recv_ends_at_the_deadline_and_at_cancel() -> None:
    stream = CallStream(1)
    assert stream.recv(16, time.monotonic() + 0.02, None) == TIMEOUT
    flag = Flag()
    flag.cancelled = True
    assert stream.recv(16, far(), flag) == CANCELLED


def refusing() -> tuple[CallStream, list[bool]]:
    refused: list[bool] = []
    return CallStream(1, on_refuse=lambda: refused.append(True)), refused


def test_a_push_past_the_bound_ends_the_call_busy_and_holds_nothing() -> None:
    stream, refused = refusing()
    for _ in range(MAX_PUSHES):
        stream.push(0)
    assert not refused
    stream.push(0)
    assert refused == [True]  # the call's ticket is cancelled: it ends, answered busy
    assert stream.refusal is not None
    assert stream.refusal.code == ErrorCode.BUSY
    assert stream.queued == 0
    assert stream.recv(16, far(), None) == CANCELLED  # the guest's wait ends at once
    stream.push(0)  # nor is anything queued after the refusal, nor refused twice
    assert stream.queued == 0
    assert refused == [True]


def test_a_push_after_the_end_is_refused() -> None:
    stream, refused = refusing()
    stream.push_end()
    stream.push(0)
    assert refused == [True]
    assert stream.refusal is not None
    assert "push_end" in stream.refusal.message


def test_a_push_over_the_chunk_limit_is_refused() -> None:
    stream, refused = refusing()
    stream.push(b"x" * MAX_CHUNK)
    assert refused == [True]
    assert stream.refusal is not None
    assert "over" in stream.refusal.message
    assert stream.queued == 0


def test_pushes_after_the_call_finished_are_dropped() -> None:
    stream, refused = refusing()
    stream.push(0)
    stream.finish()
    assert stream.queued == 0
    stream.push(1)
    assert stream.queued == 0
    assert not refused
    assert stream.refusal is None


@pytest.mark.parametrize("n", [-1, "5", 1.5, None, True])
def test_credit_that_is_not_a_count_is_dropped(n: Any) -> None:
    stream = CallStream(1)
    stream.send(0, far(), None)
    stream.credit(n)
    assert stream.send(1, time.monotonic() + 0.02, None) == TIMEOUT


@pytest.mark.parametrize(
    ("options", "window"),
    [
        (None, DEFAULT_WINDOW),
        ({}, DEFAULT_WINDOW),
        ({"window": 1}, 1),
        ({"window": MAX_WINDOW}, MAX_WINDOW),
    ],
)
def test_parse_window(options: Any, window: int) -> None:
    assert parse_window(options) == window


@pytest.mark.parametrize(
    "options",
    [
        {"window": 0},
        {"window": MAX_WINDOW + 1},
        {"window": "8"},
        {"window": True},
        {"other": 1},
        [8],
    ],
)
def test_parse_window_refuses(options: Any) -> None:
    with pytest.raises(WasmdError) as caught:
        parse_window(options)
    assert caught.value.code == ErrorCode.INVALID_PARAMS
