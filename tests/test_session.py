"""The connection's sans-IO session on its own: no socket, no thread, a fake clock."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from wasmd import ErrorCode, WasmdError
from wasmd.protocol import NEED_DATA, Connection, Notification, Response
from wasmd.session import (
    BATCH_LIMIT,
    END,
    MIN_WAITING,
    WAIT,
    Action,
    Cancel,
    Refuse,
    Route,
    RpcSession,
    Run,
)


def request(msgid: int, method: str, *params: object) -> bytes:
    return bytes(msgpack.packb([0, msgid, method, list(params)]))


def notification(method: str, *params: object) -> bytes:
    return bytes(msgpack.packb([2, method, list(params)]))


def session(max_in_flight: int = 4, outbox_limit: int = 1 << 20) -> RpcSession:
    return RpcSession(
        max_message_size=1 << 20,
        max_in_flight=max_in_flight,
        outbox_limit=outbox_limit,
        is_control=lambda method: method.startswith("wasmd."),
        clock=lambda: 100.0,
    )


def actions(s: RpcSession) -> list[Action]:
    """Every action up to the next read (NEED_DATA), wait or end."""
    out: list[Action] = []
    while True:
        action = s.next_action()
        out.append(action)
        if action is NEED_DATA or action is WAIT or action is END or type(action) is Refuse:
            return out


def runs(out: list[Action]) -> list[int]:
    return [a.request.msgid for a in out if isinstance(a, Run)]


def decode(data: bytes) -> list[Response | Notification]:
    protocol = Connection()
    protocol.receive_data(data)
    events: list[Response | Notification] = []
    while (event := protocol.next_event()) is not NEED_DATA:
        assert isinstance(event, Response | Notification)
        events.append(event)
    return events


def answer(s: RpcSession, run: Run, result: Any, *, batch: bool = False) -> bytes | None:
    return s.answer(run.request.msgid, run.ticket, None, result, batch=batch)


def test_a_ping_pipelined_behind_calls_that_wait_for_room_is_run_at_once() -> None:
    s = session(max_in_flight=2)
    s.receive_data(
        request(1, "spin.spin")
        + request(2, "spin.spin")
        + request(3, "spin.spin")
        + request(4, "wasmd.ping")
    )
    out = actions(s)
    # Two calls fill the limit; the third waits in the session; the ping (control traffic)
    # is run anyway, and reading goes on.
    assert runs(out) == [1, 2, 4]
    assert out[-1] is NEED_DATA
    assert (s.in_flight, s.waiting) == (3, 1)
    ping = next(a for a in out if isinstance(a, Run) and a.request.msgid == 4)
    assert decode(answer(s, ping, "pong") or b"")[0] == Response(4, None, "pong")
    first = next(a for a in out if isinstance(a, Run))
    answer(s, first, 1)
    # Room again: the waiting call is run before anything else is read.
    assert runs(actions(s)) == [3]


def test_backpressure_stops_dispatching_not_reading() -> None:
    s = session(max_in_flight=1)
    s.receive_data(request(1, "p.slow") + request(2, "p.slow"))
    out = actions(s)
    assert runs(out) == [1]
    assert s.waiting == 1
    # Still reading: a cancel arrives and is acted on while call 2 waits.
    s.receive_data(notification("wasmd.cancel", 1))
    out = actions(s)
    assert isinstance(out[0], Cancel)
    assert out[-1] is NEED_DATA


def test_decoding_stops_once_enough_requests_wait() -> None:
    s = session(max_in_flight=2)
    s.receive_data(b"".join(request(i, "p.e") for i in range(100)))
    out = actions(s)
    assert runs(out) == [0, 1]
    assert out[-1] is WAIT
    assert s.waiting == MIN_WAITING  # bounded: the rest stays undecoded in the protocol


def test_decoding_stops_once_waiting_requests_hold_a_message_size() -> None:
    s = session(max_in_flight=1)  # 1 MiB messages at most
    blob = b"x" * (400 * 1024)
    s.receive_data(b"".join(request(i, "p.e", blob) for i in range(6)))
    out = actions(s)
    assert runs(out) == [0]
    assert out[-1] is WAIT
    assert s.waiting == 3  # 1.2 MiB waiting: no more is decoded


def test_cancel_of_a_running_call_and_of_one_that_waits() -> None:
    s = session(max_in_flight=1)
    s.receive_data(request(1, "p.e") + request(2, "p.e"))
    (run1,) = [a for a in actions(s) if isinstance(a, Run)]
    s.receive_data(notification("wasmd.cancel", 1) + notification("wasmd.cancel", 2))
    out = actions(s)
    cancel = out[0]
    assert isinstance(cancel, Cancel)
    assert cancel.tickets == [run1.ticket]  # the running call: the driver cancels its ticket
    # The waiting one never runs: it is answered cancelled at once (with the next batch).
    assert s.waiting == 0
    (waited,) = decode(s.take_batch())
    assert isinstance(waited, Response)
    assert waited.msgid == 2
    assert waited.error[0] == ErrorCode.CANCELLED
    assert s.answer(1, run1.ticket, WasmdError(ErrorCode.CANCELLED, "x"), None, batch=False)
    assert runs(actions(s)) == []


def test_a_cancel_of_an_unknown_msgid_holds_nothing() -> None:
    s = session()
    s.receive_data(notification("wasmd.cancel", 99) + notification("wasmd.cancel", "x"))
    assert actions(s) == [NEED_DATA]
    assert s.idle()


def test_a_hang_up_cancels_running_calls_and_drops_waiting_ones() -> None:
    s = session(max_in_flight=2)
    s.receive_data(b"".join(request(i, "p.e") for i in range(4)))
    running = [a for a in actions(s) if isinstance(a, Run)]
    assert s.waiting == 2
    cancel = s.hang_up()
    assert cancel.tickets == [r.ticket for r in running]
    assert s.waiting == 0
    assert s.next_action() is WAIT  # until the running calls have answered
    for r in running:
        assert answer(s, r, 0) is None  # nobody to answer
    assert s.next_action() is END


def test_answers_of_one_read_are_batched() -> None:
    s = session()
    s.receive_data(request(1, "p.e") + request(2, "p.e"))
    run1, run2 = [a for a in actions(s) if isinstance(a, Run)]
    assert answer(s, run1, "a", batch=True) is None
    assert answer(s, run2, "b", batch=True) is None
    assert [r.result for r in decode(s.take_batch()) if isinstance(r, Response)] == ["a", "b"]
    assert s.take_batch() == b""


def test_an_answer_from_another_thread_carries_the_batch_with_it() -> None:
    s = session()
    s.receive_data(request(1, "p.e") + request(2, "p.e"))
    run1, run2 = [a for a in actions(s) if isinstance(a, Run)]
    answer(s, run1, "a", batch=True)
    data = answer(s, run2, "b", batch=False)
    assert [r.msgid for r in decode(data or b"") if isinstance(r, Response)] == [1, 2]


def test_a_full_batch_is_written_at_once() -> None:
    s = session()
    s.receive_data(request(1, "p.e") + request(2, "p.e"))
    run1, run2 = [a for a in actions(s) if isinstance(a, Run)]
    assert answer(s, run1, b"x" * BATCH_LIMIT, batch=True) is None
    assert answer(s, run2, "b", batch=True) is not None


def test_the_outbox_keeps_what_the_kernel_did_not_take_and_holds_back_requests() -> None:
    s = session(max_in_flight=8, outbox_limit=100)
    assert s.output(b"0123456789") == b"0123456789"  # empty outbox: send at once
    assert s.unsent(memoryview(b"0123456789")[4:]) is True  # start a writer
    assert s.output(b"abc") is None  # behind what waits
    assert bytes(s.outbox) == b"456789abc"
    s.sent(4)
    assert bytes(s.outbox) == b"89abc"
    s.unsent(b"y" * 200)  # past the limit: nothing more is dispatched, control included
    s.receive_data(request(1, "p.e") + request(2, "wasmd.ping"))
    assert runs(actions(s)) == []
    assert s.waiting == 2
    s.sent(len(s.outbox))
    assert runs(actions(s)) == [1, 2]


def test_stream_notifications_reach_their_call_and_unknown_ones_are_dropped() -> None:
    class Stream:
        def __init__(self) -> None:
            self.seen: list[object] = []

        def credit(self, n: Any) -> None:
            self.seen.append(("credit", n))

        def push(self, value: Any) -> None:
            self.seen.append(("push", value))

        def push_end(self) -> None:
            self.seen.append("end")

        def cancel(self) -> None:
            self.seen.append("cancel")

    s = session()
    s.receive_data(request(5, "p.stream"))
    (run,) = [a for a in actions(s) if isinstance(a, Run)]
    stream = Stream()
    assert s.open_stream(run.ticket, stream) == 5
    # Chunks go out like answers: batched on the reader's thread, else at once.
    assert s.chunk(5, 0, "a", batch=True) is None
    chunks = decode(s.chunk(5, 1, "b", batch=False) or b"")
    assert chunks == [
        Notification("wasmd.chunk", [5, 0, "a"]),
        Notification("wasmd.chunk", [5, 1, "b"]),
    ]
    s.receive_data(
        notification("wasmd.credit", 5, 3)
        + notification("wasmd.push", 5, "v")
        + notification("wasmd.push_end", 5)
        + notification("wasmd.credit", 6, 1)
        + notification("wasmd.push", 5)
    )
    routed = [a for a in actions(s) if isinstance(a, Route)]
    assert [(r.stream, r.method) for r in routed] == [
        (stream, "wasmd.credit"),
        (stream, "wasmd.push"),
        (stream, "wasmd.push_end"),
    ]
    assert s.unrouted == 2  # an unknown msgid, and a push without its value
    s.receive_data(notification("wasmd.cancel", 5))
    (cancel, _) = actions(s)
    assert isinstance(cancel, Cancel)
    assert cancel.tickets == [run.ticket]
    assert cancel.streams == [stream]


@pytest.mark.parametrize("garbage", [b"\xc1", bytes(msgpack.packb([7, 1, 2]))])
def test_garbage_is_refused(garbage: bytes) -> None:
    s = session()
    s.receive_data(garbage)
    assert isinstance(actions(s)[-1], Refuse)
    assert s.protocol_errors == 1


def test_a_half_closed_peer_has_its_waiting_requests_run_before_the_end() -> None:
    s = session(max_in_flight=1)
    s.receive_data(request(1, "p.e") + request(2, "p.e"))
    s.receive_data(b"")
    (run1,) = [a for a in actions(s) if isinstance(a, Run)]
    assert s.next_action() is WAIT
    answer(s, run1, 1)
    (run2,) = [a for a in actions(s) if isinstance(a, Run)]
    answer(s, run2, 2)
    assert s.next_action() is END
