"""wasmd.protocol: tables of (bytes, event) fed whole, byte by byte and with trailing data."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasmd.errors import ErrorCode
from wasmd.protocol import (
    EOF,
    NEED_DATA,
    BadRequest,
    Connection,
    Event,
    LocalProtocolError,
    Notification,
    RemoteProtocolError,
    Request,
    Response,
)

DEFAULT_MAX = 16 * 1024 * 1024


def pack(obj: Any) -> bytes:
    """Encode like a modern client: str as str, bytes as bin."""
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


# Every kind of value a param can hold: bin, unicode, both ends of the int range, ext,
# timestamp, a map with non-str keys, and empties.
RICH_PARAMS = [
    b"\x00\xff",
    "héllo ☃ 🎉",
    2**64 - 1,
    -(2**63),
    msgpack.ExtType(5, b"xyz"),
    msgpack.Timestamp(1, 2),
    {1: "int key", b"k": "bin key"},
    "",
    b"",
]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = sorted({p for p in points if 0 < p < len(data)})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def decode(
    chunks: Iterable[bytes], *, eof: bool = True, max_message_size: int = DEFAULT_MAX
) -> list[Event]:
    """Feed chunks one at a time, draining events after each; optionally end with EOF."""
    conn = Connection(max_message_size=max_message_size)
    events: list[Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events.extend(conn.events())
        assert conn.next_event() is NEED_DATA
    if eof:
        conn.receive_data(b"")
        events.extend(conn.events())
        assert conn.next_event() is EOF
        assert conn.closed
    return events


def outcome(
    chunks: Iterable[bytes], *, max_message_size: int = DEFAULT_MAX
) -> tuple[list[Event], str | None]:
    """Events up to the first RemoteProtocolError (then EOF), and that error's message."""
    conn = Connection(max_message_size=max_message_size)
    events: list[Event] = []
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            events.extend(conn.events())
    except RemoteProtocolError as exc:
        error = exc.message
    else:
        assert conn.next_event() is EOF
        return events, None
    # The stream is dead for good: every later call says so again, and later bytes are
    # dropped without complaint.
    if not conn.closed:
        conn.receive_data(PING)
    with pytest.raises(RemoteProtocolError) as again:
        conn.next_event()
    assert again.value.message == error
    return events, error


PING = pack([0, 99, "wasmd.ping", []])
PING_EVENT = Request(99, "wasmd.ping", [])

# (id, wire bytes, the event they decode to)
CASES: list[tuple[str, bytes, Event]] = [
    (
        "request-literal-bytes",
        b"\x94\x00\x01\xa8math.add\x92\x01\x02",
        Request(1, "math.add", [1, 2]),
    ),
    ("request-bin-method", b"\x94\x00\x02\xc4\x08math.add\x90", Request(2, "math.add", [])),
    ("request-bin-method-utf8", pack([0, 3, "ünï.☃".encode(), []]), Request(3, "ünï.☃", [])),
    (
        "request-unicode-method",
        pack([0, 4, "плагин.экспорт", []]),
        Request(4, "плагин.экспорт", []),
    ),
    ("request-msgid-0", pack([0, 0, "a.b", []]), Request(0, "a.b", [])),
    ("request-msgid-max", pack([0, 2**32 - 1, "a.b", []]), Request(2**32 - 1, "a.b", [])),
    (
        "request-nested-params",
        pack([0, 5, "a.b", [[1, [2, [3, []]]], {"a": {"b": [None, True, False, 1.5]}}]]),
        Request(5, "a.b", [[1, [2, [3, []]]], {"a": {"b": [None, True, False, 1.5]}}]),
    ),
    (
        "request-rich-params",
        pack(
            [
                0,
                6,
                "a.b",
                RICH_PARAMS,
            ]
        ),
        Request(
            6,
            "a.b",
            RICH_PARAMS,
        ),
    ),
    ("request-float32", b"\x94\x00\x07\xa3a.b\x91\xca\x3f\xc0\x00\x00", Request(7, "a.b", [1.5])),
    ("response-result", pack([1, 7, None, 42]), Response(7, None, 42)),
    ("response-nil-nil", pack([1, 8, None, None]), Response(8, None, None)),
    (
        "response-error",
        pack([1, 9, [2, "no such method"], None]),
        Response(9, [2, "no such method"], None),
    ),
    (
        "response-error-data",
        pack([1, 10, [3, "bad params", {"index": 0}], None]),
        Response(10, [3, "bad params", {"index": 0}], None),
    ),
    (
        "response-big-result",
        pack([1, 11, None, {"stdout": b"x" * 70_000, "exit_code": 0}]),
        Response(11, None, {"stdout": b"x" * 70_000, "exit_code": 0}),
    ),
    (
        "notification",
        pack([2, "wasmd.event", [{"type": "plugin.loaded", "seq": 1}]]),
        Notification("wasmd.event", [{"type": "plugin.loaded", "seq": 1}]),
    ),
    (
        "notification-bin-method",
        b"\x93\x02\xc4\x14nvim_set_client_info\x90",
        Notification("nvim_set_client_info", []),
    ),
]
CASE_IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("name", "data", "event"), CASES, ids=CASE_IDS)
def test_decode_whole(name: str, data: bytes, event: Event) -> None:
    assert decode([data]) == [event]


@pytest.mark.parametrize(("name", "data", "event"), CASES, ids=CASE_IDS)
def test_decode_one_byte_at_a_time(name: str, data: bytes, event: Event) -> None:
    assert decode(bytewise(data)) == [event]


@pytest.mark.parametrize(("name", "data", "event"), CASES, ids=CASE_IDS)
def test_decode_with_next_message_behind(name: str, data: bytes, event: Event) -> None:
    assert decode([data + PING]) == [event, PING_EVENT]
    assert decode(bytewise(data + PING)) == [event, PING_EVENT]


@pytest.mark.parametrize(("name", "data", "event"), CASES, ids=CASE_IDS)
def test_decode_with_partial_message_behind(name: str, data: bytes, event: Event) -> None:
    conn = Connection()
    conn.receive_data(data + PING[:-1])
    assert conn.next_event() == event
    assert conn.next_event() is NEED_DATA
    assert conn.next_event() is NEED_DATA
    conn.receive_data(PING[-1:])
    assert conn.next_event() == PING_EVENT
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize(("name", "data", "event"), CASES, ids=CASE_IDS)
def test_send_round_trip(name: str, data: bytes, event: Event) -> None:
    # Both directions drive the same class: what one side sends, the other decodes.
    assert not isinstance(event, BadRequest)
    sender, receiver = Connection(), Connection()
    wire = sender.send(event)
    assert decode([wire]) == [event]
    receiver.receive_data(wire)
    assert receiver.next_event() == event
    # A str method is sent as str, whatever the peer used.
    if isinstance(event, Request | Notification):
        assert msgpack.unpackb(wire, raw=True, strict_map_key=False)[-2] == event.method.encode()


def test_send_response_matches_send() -> None:
    conn = Connection()
    assert conn.send_response(5, None, [1, 2]) == conn.send(Response(5, None, [1, 2]))
    assert conn.send_response(6, [4, "trap"], None) == pack([1, 6, [4, "trap"], None])
    assert conn.send_response(7, [ErrorCode.TIMEOUT, "late"], None) == pack(
        [1, 7, [5, "late"], None]
    )
    assert decode([conn.send_response(8, None, b"\x00")]) == [Response(8, None, b"\x00")]


def test_send_accepts_tuple_params() -> None:
    wire = Connection().send(Request(1, "a.b", (1, 2)))  # type: ignore[arg-type]
    assert wire == pack([0, 1, "a.b", [1, 2]])


def requests(n: int) -> tuple[bytes, list[Event]]:
    events: list[Event] = [Request(i, "math.add", [i, 2]) for i in range(n)]
    conn = Connection()
    return b"".join(conn.send(e) for e in events), events  # type: ignore[arg-type]


def test_pipelined_requests_decode_in_order() -> None:
    data, events = requests(1000)
    assert decode([data]) == events


@pytest.mark.parametrize("seed", range(5))
def test_pipelined_random_split_decodes_the_same(seed: int) -> None:
    data, events = requests(1000)
    rng = random.Random(seed)
    points = [rng.randrange(len(data)) for _ in range(rng.randrange(1, 2000))]
    assert decode(split_at(data, points)) == events


def test_many_small_messages_in_a_chunk_larger_than_the_limit() -> None:
    # The limit is per message: a big read of many small messages is fine.
    data, events = requests(1000)
    assert len(data) > 100 * 64
    assert decode([data], max_message_size=64) == events
    assert decode(split_at(data, range(0, len(data), 1000)), max_message_size=64) == events


BAD_REQUESTS: list[tuple[str, bytes, BadRequest]] = [
    ("too-short", pack([0, 1, "a.b"]), BadRequest(1, "request must have 4 elements, got 3")),
    ("msgid-only", pack([0, 1]), BadRequest(1, "request must have 4 elements, got 2")),
    ("too-long", pack([0, 2, "a.b", [], 5]), BadRequest(2, "request must have 4 elements, got 5")),
    (
        "method-int",
        pack([0, 3, 42, []]),
        BadRequest(3, "request method must be a string, got integer"),
    ),
    (
        "method-nil",
        pack([0, 4, None, []]),
        BadRequest(4, "request method must be a string, got nil"),
    ),
    (
        "method-array",
        pack([0, 5, ["a"], []]),
        BadRequest(5, "request method must be a string, got array"),
    ),
    (
        "method-bad-utf8",
        pack([0, 6, b"\xff\xfe", []]),
        BadRequest(6, "request method is not valid UTF-8"),
    ),
    (
        "params-map",
        pack([0, 7, "a.b", {"x": 1}]),
        BadRequest(7, "request params must be an array, got map"),
    ),
    (
        "params-nil",
        pack([0, 8, "a.b", None]),
        BadRequest(8, "request params must be an array, got nil"),
    ),
    (
        "params-str",
        pack([0, 9, "a.b", "x"]),
        BadRequest(9, "request params must be an array, got string"),
    ),
]


@pytest.mark.parametrize(("name", "data", "event"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_not_fatal(name: str, data: bytes, event: BadRequest) -> None:
    assert decode([data + PING]) == [event, PING_EVENT]
    assert decode(bytewise(data + PING)) == [event, PING_EVENT]


def test_bad_request_cannot_be_sent() -> None:
    with pytest.raises(LocalProtocolError, match="cannot send"):
        Connection().send(BadRequest(1, "x"))  # type: ignore[arg-type]


FATAL: list[tuple[str, bytes, str]] = [
    ("never-used-byte", b"\xc1", "invalid MessagePack data"),
    ("top-level-int", b"\x2a", "message must be an array, got integer"),
    ("top-level-map", pack({"a": 1}), "message must be an array, got map"),
    ("top-level-str", pack("hello"), "message must be an array, got string"),
    ("top-level-nil", pack(None), "message must be an array, got nil"),
    ("empty-array", pack([]), "message is an empty array"),
    ("unknown-type-7", pack([7, 1, "a.b", []]), "unknown message type 7"),
    ("unknown-type-negative", pack([-1, 1, "a.b", []]), "unknown message type -1"),
    ("type-str", pack(["0", 1, "a.b", []]), "message type must be an integer, got string"),
    ("type-bool", pack([False, 1, "a.b", []]), "message type must be an integer, got boolean"),
    ("request-no-msgid", pack([0]), "request msgid must be an integer in 0..2**32-1, got nothing"),
    (
        "request-msgid-neg",
        pack([0, -1, "a.b", []]),
        "request msgid must be an integer in 0..2**32-1, got -1",
    ),
    ("request-msgid-2**32", pack([0, 2**32, "a.b", []]), "got 4294967296"),
    ("request-msgid-str", pack([0, "x", "a.b", []]), "got string"),
    ("request-msgid-long-str", pack([0, "x" * 10_000, "a.b", []]), "got string"),
    ("request-msgid-bool", pack([0, True, "a.b", []]), "got boolean"),
    ("request-msgid-float", pack([0, 1.0, "a.b", []]), "got float"),
    ("request-msgid-nil-short", pack([0, None]), "got nil"),
    ("response-short", pack([1, 1, None]), "response must have 4 elements, got 3"),
    ("response-long", pack([1, 1, None, 1, 2]), "response must have 4 elements, got 5"),
    (
        "response-msgid-neg",
        pack([1, -1, None, 1]),
        "response msgid must be an integer in 0..2**32-1, got -1",
    ),
    ("response-msgid-2**32", pack([1, 2**32, None, 1]), "response msgid must be an integer"),
    ("notification-short", pack([2, "a.b"]), "notification must have 3 elements, got 2"),
    ("notification-long", pack([2, "a.b", [], 1]), "notification must have 3 elements, got 4"),
    (
        "notification-method-int",
        pack([2, 5, []]),
        "notification method must be a string, got integer",
    ),
    ("notification-method-utf8", pack([2, b"\xff", []]), "notification method is not valid UTF-8"),
    (
        "notification-params-map",
        pack([2, "a.b", {}]),
        "notification params must be an array, got map",
    ),
    (
        "str-bad-utf8",
        b"\x94\x00\x01\xa2\xff\xfe\x90",
        "invalid MessagePack data: UnicodeDecodeError",
    ),
    (
        "unhashable-map-key",
        b"\x94\x00\x01\xa1m\x91\x81\x90\x01",
        "invalid MessagePack data: TypeError",
    ),
    (
        "bad-timestamp",
        b"\x94\x00\x01\xa1m\x91\xd5\xff\x00\x00",
        "invalid MessagePack data: ValueError",
    ),
    ("array-bomb", b"\x91" * 100_000, "message is nested too deeply"),
    ("array32-bomb", b"\xdd\x00\xff\xff\xff" * 2000, "message is nested too deeply"),
    ("huge-array-header", b"\xdd\x7f\xff\xff\xff", f"message exceeds {DEFAULT_MAX} bytes"),
    ("huge-map-header", b"\xdf\x7f\xff\xff\xff", f"message exceeds {DEFAULT_MAX} bytes"),
]


@pytest.mark.parametrize(("name", "data", "message"), FATAL, ids=[c[0] for c in FATAL])
def test_fatal(name: str, data: bytes, message: str) -> None:
    for chunks in ([PING + data + PING], bytewise(PING + data + PING)):
        events, error = outcome(chunks)
        assert events == [PING_EVENT]  # what came before is still delivered
        assert error is not None
        assert message in error
        assert len(error) < 200  # never echoes the peer's bytes back at length


def test_huge_header_is_refused_before_its_body_arrives() -> None:
    # Only the 5-byte header was sent: refused at once, nothing allocated for 2 GiB.
    conn = Connection()
    conn.receive_data(b"\xdd\x7f\xff\xff\xff")
    with pytest.raises(RemoteProtocolError, match="message exceeds"):
        conn.next_event()


def test_remote_protocol_error_carries_the_wire_code() -> None:
    conn = Connection()
    conn.receive_data(b"\xc1")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert int(info.value.code) == 1
    assert info.value.message == str(info.value) == "invalid MessagePack data"
    assert isinstance(info.value.__cause__, msgpack.FormatError)
    # Later bytes are ignored, and the error stays.
    conn.receive_data(PING)
    with pytest.raises(RemoteProtocolError, match="invalid MessagePack data"):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        list(conn.events())


def sized_request(size: int) -> bytes:
    """A request encoding to exactly ``size`` bytes (a bin8 param sized to fit)."""
    data = pack([0, 1, "a.b", [b"x" * (size - 10)]])
    assert len(data) == size, len(data)
    return data


@pytest.mark.parametrize("step", [1, 7, 64, 1000])
def test_message_at_the_limit_is_accepted(step: int) -> None:
    data = sized_request(64)
    chunks = split_at(data + PING, range(0, len(data) + len(PING), step))
    assert decode(chunks, max_message_size=64) == [Request(1, "a.b", [b"x" * 54]), PING_EVENT]


@pytest.mark.parametrize("step", [1, 7, 64, 1000])
def test_message_over_the_limit_is_fatal(step: int) -> None:
    data = PING + sized_request(65) + PING
    events, error = outcome(split_at(data, range(0, len(data), step)), max_message_size=64)
    assert events == [PING_EVENT]
    assert error == "message exceeds 64 bytes"


def test_big_bin_over_the_limit_is_fatal() -> None:
    data = pack([0, 1, "a.b", [b"x" * 100_000]])
    for chunks in ([data], split_at(data, range(0, len(data), 4096))):
        assert outcome(chunks, max_message_size=1024) == ([], "message exceeds 1024 bytes")


@pytest.mark.parametrize("header", [b"\xdb", b"\xc6"], ids=["str32", "bin32"])
def test_huge_str_or_bin_is_refused_at_the_limit(header: bytes) -> None:
    # msgpack checks a str/bin length only once the body is in; the body never gets past
    # max_message_size bytes of buffer, so that is where it stops.
    data = header + b"\x7f\xff\xff\xff" + b"x" * 2000
    for chunks in ([data], split_at(data, range(0, len(data), 100))):
        assert outcome(chunks, max_message_size=1024) == ([], "message exceeds 1024 bytes")


def test_limit_holds_for_arrays_of_small_items() -> None:
    # msgpack consumes such an array as it arrives, so its buffer limit alone would never
    # trip; the connection counts the message's bytes itself.
    data = pack([0, 1, "a.b", [0] * 1000])
    for chunks in ([data], bytewise(data), split_at(data, range(0, len(data), 10))):
        assert outcome(chunks, max_message_size=100) == ([], "message exceeds 100 bytes")


def test_max_message_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Connection(max_message_size=0)


def test_eof_on_an_empty_stream() -> None:
    conn = Connection()
    assert not conn.closed
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert conn.closed
    assert conn.next_event() is EOF
    assert conn.next_event() is EOF
    assert list(conn.events()) == []
    conn.receive_data(b"")  # a second EOF is harmless
    assert conn.next_event() is EOF


def test_eof_after_complete_messages() -> None:
    conn = Connection()
    conn.receive_data(PING + PING)
    conn.receive_data(b"")
    assert list(conn.events()) == [PING_EVENT, PING_EVENT]
    assert conn.next_event() is EOF


@pytest.mark.parametrize("cut", range(1, len(PING)))
def test_eof_mid_message_is_fatal(cut: int) -> None:
    assert outcome([PING + PING[:cut]]) == ([PING_EVENT], "connection closed mid-message")
    assert outcome(bytewise(PING + PING[:cut])) == ([PING_EVENT], "connection closed mid-message")


def test_receive_data_after_eof_is_a_local_error() -> None:
    conn = Connection()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(PING)


def test_sentinels() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert repr(EOF) == "EOF"


SEND_ERRORS: list[tuple[str, Any, str]] = [
    ("unencodable-param", Request(1, "a.b", [object()]), "cannot encode request"),
    ("int-too-big", Request(1, "a.b", [2**64]), "cannot encode request"),
    ("unencodable-notification", Notification("a.b", [{1, 2}]), "cannot encode notification"),
    ("unencodable-result", Response(1, None, object()), "cannot encode response"),
    ("msgid-negative", Request(-1, "a.b", []), "msgid must be"),
    ("msgid-2**32", Request(2**32, "a.b", []), "msgid must be"),
    ("msgid-str", Request("1", "a.b", []), "msgid must be"),  # type: ignore[arg-type]
    ("msgid-bool", Request(True, "a.b", []), "msgid must be"),
    ("response-msgid", Response(2**32, None, 1), "msgid must be"),
    ("method-bytes", Request(1, b"a.b", []), "method must be a str"),  # type: ignore[arg-type]
    ("method-none", Notification(None, []), "method must be a str"),  # type: ignore[arg-type]
    ("params-map", Request(1, "a.b", {}), "params must be a list"),  # type: ignore[arg-type]
    ("error-and-result", Response(1, [1, "x"], 2), "not both"),
    ("not-an-event", "hello", "cannot send"),
]


@pytest.mark.parametrize(("name", "event", "message"), SEND_ERRORS, ids=[c[0] for c in SEND_ERRORS])
def test_send_refuses(name: str, event: Any, message: str) -> None:
    conn = Connection()
    with pytest.raises(LocalProtocolError, match=message):
        conn.send(event)
    # The packer is left clean: the next message encodes normally.
    assert conn.send(PING_EVENT) == PING


def test_send_response_refuses() -> None:
    conn = Connection()
    with pytest.raises(LocalProtocolError, match="msgid must be"):
        conn.send_response(-1, None, 1)
    with pytest.raises(LocalProtocolError, match="cannot encode response") as info:
        conn.send_response(1, None, object())
    assert isinstance(info.value.__cause__, TypeError)
    assert conn.send_response(1, None, 1) == pack([1, 1, None, 1])


# -- property tests ------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text() | st.integers(-(2**63), 2**64 - 1), inner, max_size=4)
    ),
    max_leaves=12,
)
msgids = st.integers(0, 2**32 - 1)
events = st.one_of(
    st.builds(Request, msgids, st.text(), st.lists(values, max_size=4)),
    st.builds(Response, msgids, st.none(), values),
    st.builds(Response, msgids, values.filter(lambda v: v is not None), st.none()),
    st.builds(Notification, st.text(), st.lists(values, max_size=4)),
)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, database=None)


def splits(data: bytes, points: Sequence[int]) -> list[bytes]:
    return split_at(data, [p % (len(data) + 1) for p in points])


# slow: 3.0 s measured (hypothesis examples)
@pytest.mark.slow
@PROPERTY_SETTINGS
@given(st.lists(events, max_size=8), st.lists(st.integers(0, 10_000), max_size=20))
def test_any_stream_of_events_round_trips_under_any_split(
    sent: list[Request | Response | Notification], points: list[int]
) -> None:
    conn = Connection()
    data = b"".join(conn.send(e) for e in sent)
    assert decode(split_at(data, [])) == sent
    assert decode(splits(data, points)) == sent


# Garbage alone, and garbage mixed with real messages so the decoder gets past byte one.
streams = st.binary(max_size=300) | st.lists(
    st.binary(max_size=12) | values.map(pack) | events.map(lambda e: Connection().send(e)),
    max_size=6,
).map(b"".join)


# slow: 1.1 s measured (hypothesis examples)
@pytest.mark.slow
@PROPERTY_SETTINGS
@given(
    streams,
    st.lists(st.integers(0, 10_000), max_size=20),
    st.sampled_from([8, 64, DEFAULT_MAX]),
)
def test_any_bytes_under_any_split_decode_the_same_or_fail_remotely(
    data: bytes, points: list[int], max_message_size: int
) -> None:
    # outcome() lets only RemoteProtocolError through; anything else fails the test.
    whole = outcome([data], max_message_size=max_message_size)
    assert outcome(splits(data, points), max_message_size=max_message_size) == whole


def test_an_idle_connection_sheds_its_decoder_and_decodes_on() -> None:
    conn = Connection()
    first = msgpack.packb([0, 1, "a.b", [1]])
    second = msgpack.packb([0, 2, "a.b", ["x" * 100]])
    conn.receive_data(first)
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() is NEED_DATA
    conn.shed()
    assert conn.next_event() is NEED_DATA  # nothing was lost, nothing is half-received
    conn.receive_data(second[:7])
    assert conn.next_event() is NEED_DATA
    conn.shed()  # half a message: kept
    conn.receive_data(second[7:])
    event = conn.next_event()
    assert isinstance(event, Request)
    assert (event.msgid, event.params) == (2, ["x" * 100])
    conn.shed()
    conn.receive_data(b"")
    assert conn.next_event() is EOF


def test_a_header_announcing_too_much_is_refused_at_once_after_the_decoder_was_shed() -> None:
    """Shedding starts the stream offsets again at 0: the size check must not take the first
    bytes of a message seen before (which began at offset 0 too) for the new one's."""
    conn = Connection()
    earlier = msgpack.packb([0, 1, "wasmd.ping", []])
    conn.receive_data(earlier[:3])  # begun in one read, ended in the next: its head is kept
    assert conn.next_event() is NEED_DATA
    conn.receive_data(earlier[3:])
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() is NEED_DATA
    conn.shed()
    # A request whose bin32 param announces 4 GiB, then nothing more.
    conn.receive_data(b"\x94\x00\x01\xa9arith.add\x91\xc6\xff\xff\xff\xff" + b"x" * 10)
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    assert caught.value.message == f"message exceeds {DEFAULT_MAX} bytes"
