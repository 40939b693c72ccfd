"""Sans-IO MessagePack-RPC: bytes in, events out; events in, bytes out (DESIGN.md section 1).

Theory of operation
-------------------
A ``Connection`` owns no socket. The I/O layer hands it whatever it read with
``receive_data(bytes)`` (``b""`` means the peer closed) and then drains ``next_event()``
until it returns ``NEED_DATA`` (read more) or ``EOF`` (the peer is gone and nothing is
left). Outgoing messages are turned into bytes by ``send()`` / ``send_response()`` and the
caller writes them. Server and client drive the same class.

Messages on the wire are msgpack arrays concatenated with no framing::

    [0, msgid, method, params]   Request
    [1, msgid, error, result]    Response
    [2, method, params]          Notification

Decoding uses one incremental ``msgpack.Unpacker`` per connection. It keeps the partial
state of an unfinished object between ``unpack()`` calls, so any split of the stream decodes
the same, and each byte is parsed once however it arrives.

Size limit. msgpack's own ``max_buffer_size`` only bounds the bytes *waiting* in its
buffer: an array of many small items is consumed as it arrives and could grow without
bound, and ``feed()`` refuses a large chunk of many small messages with ``BufferFull``
even though each message is fine. So the limit is kept here instead: we count the bytes
fed since the start of the message being decoded and never feed past
``max_message_size`` of them. Bytes beyond that wait in ``_pending`` until the current
message completes; if it is still incomplete with ``max_message_size`` bytes fed, it is
too large. msgpack's ``max_*_len`` limits default to the same number: an array or map
header announcing more items than that is refused as soon as it is read, before any
list is allocated; a str/bin/ext body is only materialised once all of it is in the
buffer, which never holds more than ``max_message_size`` bytes. (The buffer keeps
``max_buffer_size == max_message_size``, so it can always hold a whole message, and
``BufferFull`` cannot happen.) msgpack stops nesting at 1024 levels (``StackError``);
note that it reserves up to ~64 KiB per open array level, so a 5 KiB nesting bomb can
hold ~70 MiB until it fails or the connection is dropped.

Errors are split by who is at fault. Bytes that are not MessagePack-RPC raise
``RemoteProtocolError``: the stream cannot be resynchronised, so the connection is dead
and every later ``next_event()`` raises again. A request that decoded and carries a
usable msgid but has a bad shape becomes a ``BadRequest`` event instead: the server can
answer ``[1, message]`` to that msgid and keep the connection. Misuse of our own API
(an unencodable result, a bad msgid, data after EOF) raises ``LocalProtocolError``.

Speed matters (this is on every call's path): the common well-formed request is
recognised by one inline check before any of the slower shape analysis runs.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, Final, NamedTuple, NoReturn

import msgpack

from .errors import ErrorCode

__all__ = [
    "EOF",
    "NEED_DATA",
    "BadRequest",
    "Connection",
    "Event",
    "LocalProtocolError",
    "Notification",
    "RemoteProtocolError",
    "Request",
    "Response",
    "Sentinel",
    "encode_notification",
    "encode_response",
]

REQUEST: Final = 0
RESPONSE: Final = 1
NOTIFICATION: Final = 2
MAX_MSGID: Final = 2**32 - 1
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024

# The unpacker's buffer starts this small and grows on demand up to max_message_size:
# most connections only ever carry tiny messages, and there may be a thousand of them.
_INITIAL_BUFFER: Final = 64 * 1024


class Sentinel(enum.Enum):
    """The two non-event results of ``Connection.next_event()``."""

    NEED_DATA = "NEED_DATA"
    EOF = "EOF"

    def __repr__(self) -> str:
        return self.value


# Enum members so that ``if event is NEED_DATA`` narrows the type for mypy.
NEED_DATA: Final = Sentinel.NEED_DATA
EOF: Final = Sentinel.EOF


# The events are NamedTuples, not dataclasses: they are as immutable and as small, and
# ``dataclasses`` (with ``inspect``) costs a client command ~10 ms of start-up for nothing.


class Request(NamedTuple):
    msgid: int
    method: str
    params: list[Any]


class Response(NamedTuple):
    msgid: int
    error: Any  # None on success, else usually [code, message] or [code, message, data]
    result: Any


class Notification(NamedTuple):
    method: str
    params: list[Any]


class BadRequest(NamedTuple):
    """A request with a usable msgid but a bad shape; answer ``[1, message]`` and go on."""

    msgid: int
    message: str


Event = Request | Response | Notification | BadRequest


class RemoteProtocolError(Exception):
    """Raised when the peer sent bytes that are not MessagePack-RPC; the stream is dead."""

    code = ErrorCode.INVALID_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LocalProtocolError(Exception):
    """Raised when our own side sends what cannot be encoded, or misuses the connection."""

    code = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_WIRE_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "nil",
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    bytes: "binary",
    list: "array",
    dict: "map",
    msgpack.ExtType: "ext",
    msgpack.Timestamp: "timestamp",
}


def _wire_type(value: object) -> str:
    """Name a decoded value by its msgpack type, for messages a client author will read."""
    return _WIRE_TYPE_NAMES.get(type(value), type(value).__name__)


def _describe_msgid(value: object) -> str:
    # An int is shown as is (at most 20 digits); anything else only by its type, so a
    # hostile 10 MiB "msgid" does not come back in the error message.
    return str(value) if type(value) is int else _wire_type(value)


def _is_msgid(value: object) -> bool:
    # ``type(...) is int`` on purpose: msgpack decodes true/false as bool, a subclass of int.
    return type(value) is int and 0 <= value <= MAX_MSGID


HEADER_SCAN_ITEMS: Final = 64
HEADER_SCAN_BYTES: Final = 4096
# Bytes after the type byte: (length field size, fixed payload size) of each variable-length
# str/bin/ext header, and the whole size of each fixed-size scalar.
_LENGTH_FIELDS: Final = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
_EXT_LENGTH_FIELDS: Final = {0xC7: 1, 0xC8: 2, 0xC9: 4}
_FIXED_SIZES: Final = {
    **{code: 1 for code in (0xC0, 0xC2, 0xC3)},
    0xCA: 5,
    0xCB: 9,
    0xCC: 2,
    0xCD: 3,
    0xCE: 5,
    0xCF: 9,
    0xD0: 2,
    0xD1: 3,
    0xD2: 5,
    0xD3: 9,
    0xD4: 3,
    0xD5: 4,
    0xD6: 6,
    0xD7: 10,
    0xD8: 18,
}
_CONTAINERS: Final = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _largest_announced(data: memoryview) -> int:
    """The largest str/bin/ext length announced among the first items of ``data`` (the
    start of one msgpack value, perhaps incomplete); 0 if none."""
    largest, pos, expected, seen = 0, 0, 1, 0
    end = len(data)
    while expected > 0 and seen < HEADER_SCAN_ITEMS and pos < end:
        code = data[pos]
        expected -= 1
        seen += 1
        if code <= 0x7F or code >= 0xE0:
            pos += 1
        elif code <= 0x8F:
            expected += 2 * (code & 0x0F)
            pos += 1
        elif code <= 0x9F:
            expected += code & 0x0F
            pos += 1
        elif code <= 0xBF:
            pos += 1 + (code & 0x1F)
        elif code in _FIXED_SIZES:
            pos += _FIXED_SIZES[code]
        elif code in _CONTAINERS:
            width, per_item = _CONTAINERS[code]
            if pos + 1 + width > end:
                break
            expected += per_item * int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
            pos += 1 + width
        else:
            field = _LENGTH_FIELDS.get(code) or _EXT_LENGTH_FIELDS.get(code)
            if field is None or pos + 1 + field > end:
                break  # an unknown type byte (the decoder says so) or a header cut short
            length = int.from_bytes(data[pos + 1 : pos + 1 + field], "big")
            largest = max(largest, length)
            pos += 1 + field + (1 if code in _EXT_LENGTH_FIELDS else 0) + length
    return largest


class _ShedUnpacker:
    """Stands in for the Unpacker of a connection that shed it: empty, and nothing to feed."""

    @staticmethod
    def unpack() -> Any:
        raise msgpack.OutOfData

    @staticmethod
    def feed(data: bytes) -> None:
        raise AssertionError("receive_data makes a new Unpacker first")

    @staticmethod
    def tell() -> int:
        return 0


_SHED = _ShedUnpacker()


class Connection:
    """One MessagePack-RPC byte stream, in both directions, with no I/O of its own."""

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be positive, got {max_message_size}")
        self._max = max_message_size
        self._bind(self._new_unpacker())
        self._shed = False  # the unpacker was let go while idle (see ``shed``)
        # The partial message's first bytes, for the size check (``_check_announced_sizes``):
        # ``_head`` holds bytes from stream offset ``_head_at``; ``_last`` is the last chunk
        # fed, from offset ``_last_at``.
        self._head = bytearray()
        self._head_at = -1
        self._scanned = (-1, 0)  # (_head_at, len(_head)) at the last size check that passed
        self._last: bytes = b""
        self._last_at = 0
        self._fed = 0  # bytes handed to the unpacker so far
        self._start = 0  # stream offset where the message being decoded begins
        self._pending: deque[bytes] = deque()  # received but not yet fed (see docstring)
        self._closed = False
        self._error: str | None = None  # set once the stream is unusable

    def _new_unpacker(self) -> Any:
        return msgpack.Unpacker(
            read_size=min(_INITIAL_BUFFER, self._max),
            use_list=True,
            raw=False,
            strict_map_key=False,
            # max_str_len, max_bin_len, max_array_len, max_ext_len default to this and
            # max_map_len to half of it: keep them so, see the module docstring.
            max_buffer_size=self._max,
        )

    def shed(self) -> None:
        """Let go of the decoder's memory while nothing is half-received: an Unpacker holds
        about 40 KiB (its parse stack), which 1,024 idle connections would keep for nothing.
        The next ``receive_data`` makes a new one."""
        if self._error is None and self._fed == self._start and not self._pending:
            self._bind(_SHED)
            self._fed = self._start = 0
            self._head_at = -1  # offsets start again at 0: the head kept is not the next one's
            self._shed = True

    def _bind(self, unpacker: Any) -> None:
        # Bound methods looked up once: they run for every message.
        self._unpack = unpacker.unpack
        self._feed = unpacker.feed
        self._tell = unpacker.tell

    @property
    def buffered(self) -> int:
        """Bytes held of a message not complete yet (what a stalled peer makes us keep)."""
        held = self._fed - self._start
        if self._pending:
            held += sum(len(chunk) for chunk in self._pending)
        return held

    @property
    def held_memory(self) -> int:
        """What ``buffered`` may cost in memory: msgpack's Unpacker grows its buffer by
        doubling, so a message held half-received may take up to twice its bytes (255 MiB
        counted as held was 516 MiB of RSS). The daemon-wide ``max_buffered`` charges this."""
        return 2 * self.buffered

    @property
    def consumed(self) -> int:
        """Bytes of the stream taken by complete messages so far (a message's size is the
        difference across the ``next_event`` that returned it)."""
        return self._start

    @property
    def closed(self) -> bool:
        """True once the peer's EOF (``receive_data(b"")``) was seen."""
        return self._closed

    # -- receiving ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Hand over bytes read from the peer; ``b""`` means the peer closed its side."""
        if not data:
            self._closed = True  # a repeated EOF is harmless
            return
        if self._closed:
            raise LocalProtocolError("receive_data() called after EOF")
        if self._error is not None:
            return  # the stream is already dead; next_event() reports why
        if self._shed:
            self._bind(self._new_unpacker())
            self._shed = False
        room = self._max - (self._fed - self._start)
        if not self._pending and len(data) <= room:
            self._feed_chunk(data)
            return
        # Slow path: keep what does not fit for later, as bytes we own (``data`` may be a
        # bytearray the caller reuses). Order is preserved because once anything is
        # pending, everything after it queues behind it.
        if room > 0 and not self._pending:
            self._feed_chunk(data[:room])
            data = data[room:]
        self._pending.append(bytes(data))

    def next_event(self) -> Event | Sentinel:
        """Return the next complete event, or ``NEED_DATA`` / ``EOF``.

        Raises ``RemoteProtocolError`` if the peer sent something undecodable; it keeps
        raising it on every later call.
        """
        if self._error is not None:
            raise RemoteProtocolError(self._error)
        while True:
            try:
                msg = self._unpack()
            except msgpack.OutOfData:
                if self._fed - self._start >= self._max:
                    self._fail(f"message exceeds {self._max} bytes")
                if not self._pending:
                    if not self._closed:
                        if self._fed != self._start:
                            self._check_announced_sizes()
                        return NEED_DATA
                    if self._fed != self._start:
                        self._fail("connection closed mid-message")
                    return EOF
                self._feed_pending()
                continue
            except Exception as exc:  # msgpack's advice: unpacking may raise anything
                self._fail_decode(exc)
            break
        self._start = self._tell()
        # The fast path: a well-formed request, the message a server sees most.
        if type(msg) is list and len(msg) == 4:
            kind, msgid, method, params = msg
            if (
                kind == REQUEST
                and type(kind) is int
                and type(method) is str
                and type(params) is list
                and type(msgid) is int
                and 0 <= msgid <= MAX_MSGID
            ):
                return Request(msgid, method, params)
        return self._classify(msg)

    def _check_announced_sizes(self) -> None:
        """Refuse at once a partial message whose str/bin/ext header announces more than
        ``max_message_size`` (msgpack checks those lengths only once the bytes are there;
        arrays and maps it refuses at the header already). Looks at the partial message's
        first ``HEADER_SCAN_ITEMS`` items when it began in the last read: a peer that
        announces 4 GiB and stalls is told so now, not at ``frame_timeout``."""
        start = self._start
        if self._head_at != start:  # the message began in the last chunk
            self._head = bytearray(self._last[start - self._last_at :][:HEADER_SCAN_BYTES])
            self._head_at = start
            self._scanned = (-1, 0)
        # The same bytes as at the last check passed it again: a peer sending a message a
        # byte at a time costs one scan per byte of its first HEADER_SCAN_BYTES, not per byte.
        scanned = (start, len(self._head))
        if scanned == self._scanned:
            return
        announced = _largest_announced(memoryview(self._head))
        if announced > self._max:
            # The same words as the other size checks: which one sees it first must not show.
            self._fail(f"message exceeds {self._max} bytes")
        self._scanned = scanned

    def _feed_chunk(self, chunk: bytes | bytearray | memoryview) -> None:
        """Feed the unpacker, and keep what the size check needs of the partial message."""
        start, head = self._start, self._head
        whole_so_far = self._head_at + len(head) == self._fed
        if self._head_at == start and len(head) < HEADER_SCAN_BYTES and whole_so_far:
            head += chunk[: HEADER_SCAN_BYTES - len(head)]
        self._last, self._last_at = bytes(chunk) if type(chunk) is not bytes else chunk, self._fed
        self._feed(chunk)
        self._fed += len(chunk)

    def events(self) -> Iterator[Event]:
        """Yield every complete event; stop at ``NEED_DATA`` or ``EOF``."""
        while True:
            event = self.next_event()
            if event is NEED_DATA or event is EOF:
                return
            yield event

    def _feed_pending(self) -> None:
        # Only called when the current message has room left: feed up to that much.
        room = self._max - (self._fed - self._start)
        chunk = self._pending.popleft()
        if len(chunk) > room:
            self._pending.appendleft(chunk[room:])
            chunk = chunk[:room]
        self._feed_chunk(chunk)

    def _classify(self, msg: Any) -> Event:
        """Everything but a well-formed request: check the shape, with precise messages."""
        if type(msg) is not list:
            self._fail(f"message must be an array, got {_wire_type(msg)}")
        if not msg:
            self._fail("message is an empty array")
        kind = msg[0]
        if type(kind) is not int:
            self._fail(f"message type must be an integer, got {_wire_type(kind)}")
        if kind == REQUEST:
            return self._request(msg)
        if kind == RESPONSE:
            if len(msg) != 4:
                self._fail(f"response must have 4 elements, got {len(msg)}")
            if not _is_msgid(msg[1]):
                got = _describe_msgid(msg[1])
                self._fail(f"response msgid must be an integer in 0..2**32-1, got {got}")
            if msg[2] is not None and msg[3] is not None:
                # The spec: exactly one of error and result is nil. A peer that sets both
                # cannot be told apart from one that failed or succeeded.
                self._fail("response carries both an error and a result")
            return Response(msg[1], msg[2], msg[3])
        if kind == NOTIFICATION:
            if len(msg) != 3:
                self._fail(f"notification must have 3 elements, got {len(msg)}")
            method = self._method(msg[1])
            if method is None:
                if type(msg[1]) is bytes:
                    self._fail("notification method is not valid UTF-8")
                self._fail(f"notification method must be a string, got {_wire_type(msg[1])}")
            if type(msg[2]) is not list:
                self._fail(f"notification params must be an array, got {_wire_type(msg[2])}")
            return Notification(method, msg[2])
        self._fail(f"unknown message type {kind}")

    def _request(self, msg: list[Any]) -> Request | BadRequest:
        """A type-0 message the fast path did not take: a bin method, or a bad shape."""
        # With no valid msgid there is nobody to answer: that is fatal. With one, the
        # problem is this request's alone.
        if len(msg) < 2 or not _is_msgid(msg[1]):
            got = _describe_msgid(msg[1]) if len(msg) >= 2 else "nothing"
            self._fail(f"request msgid must be an integer in 0..2**32-1, got {got}")
        msgid: int = msg[1]
        if len(msg) != 4:
            return BadRequest(msgid, f"request must have 4 elements, got {len(msg)}")
        method = self._method(msg[2])
        if method is None:
            if type(msg[2]) is bytes:
                return BadRequest(msgid, "request method is not valid UTF-8")
            return BadRequest(msgid, f"request method must be a string, got {_wire_type(msg[2])}")
        if type(msg[3]) is not list:
            return BadRequest(msgid, f"request params must be an array, got {_wire_type(msg[3])}")
        return Request(msgid, method, msg[3])

    @staticmethod
    def _method(value: Any) -> str | None:
        """A method name as str: peers that pack raw strings as bin send bytes."""
        if type(value) is str:
            return value
        if type(value) is bytes:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None

    def _fail_decode(self, exc: Exception) -> NoReturn:
        if isinstance(exc, ValueError) and "exceeds max_" in str(exc):
            # msgpack's max_*_len limits derive from max_message_size and every item takes at
            # least a byte, so a header announcing more items or bytes than that means a
            # longer message. Same words as our own check: the wording must not depend on
            # which of the two saw it first.
            self._fail(f"message exceeds {self._max} bytes", exc)
        if isinstance(exc, msgpack.StackError):
            self._fail("message is nested too deeply", exc)
        if isinstance(exc, msgpack.FormatError):
            self._fail("invalid MessagePack data", exc)
        self._fail(f"invalid MessagePack data: {type(exc).__name__}: {exc}", exc)

    def _fail(self, message: str, cause: BaseException | None = None) -> NoReturn:
        """Mark the stream dead, let go of what it holds, and raise."""
        self._error = message
        self._pending.clear()
        # Dropping the unpacker frees any half-built object (a nested-array bomb can hold
        # tens of MiB). The stand-in is never used: every entry point checks _error first.
        self._bind(msgpack.Unpacker(max_buffer_size=1))
        raise RemoteProtocolError(message) from cause

    # -- sending ------------------------------------------------------------------------

    def send(self, event: Request | Response | Notification) -> bytes:
        """Encode one outgoing message."""
        if isinstance(event, Response):
            return self.send_response(event.msgid, event.error, event.result)
        if isinstance(event, Request):
            _check_msgid(event.msgid)
            _check_call(event.method, event.params)
            return _pack([REQUEST, event.msgid, event.method, event.params], "request")
        if isinstance(event, Notification):
            return encode_notification(event.method, event.params)
        raise LocalProtocolError(f"cannot send a {type(event).__name__}")

    def send_response(self, msgid: int, error: Any, result: Any) -> bytes:
        """Encode a response without building a ``Response`` first."""
        return encode_response(msgid, error, result)


def _check_msgid(msgid: object) -> None:
    if not _is_msgid(msgid):
        raise LocalProtocolError(f"msgid must be an integer in 0..2**32-1, got {msgid!r}")


def _check_call(method: object, params: object) -> None:
    if type(method) is not str:
        raise LocalProtocolError(f"method must be a str, got {type(method).__name__}")
    if not isinstance(params, list | tuple):
        raise LocalProtocolError(f"params must be a list, got {type(params).__name__}")


# -- encoders -----------------------------------------------------------------------------
# One packer per thread (a Packer is not thread-safe), so the thread that ran a call encodes
# its own response (the server answers on the thread that read); Connection.send uses them.

_packers = threading.local()


def _pack(message: list[Any], what: str) -> bytes:
    try:
        pack = _packers.pack
    except AttributeError:
        pack = _packers.pack = msgpack.Packer(use_bin_type=True).pack
    try:
        packed: bytes = pack(message)  # a failed pack leaves the packer reset, fit for reuse
    except Exception as exc:  # msgpack raises TypeError, ValueError, OverflowError...
        raise LocalProtocolError(f"cannot encode {what}: {exc}") from exc
    return packed


def encode_response(msgid: int, error: Any, result: Any) -> bytes:
    """Encode ``[1, msgid, error, result]`` from any thread: the one response encoder."""
    if type(msgid) is not int or not 0 <= msgid <= MAX_MSGID:
        _check_msgid(msgid)
    if error is not None and result is not None:
        raise LocalProtocolError("a response carries an error or a result, not both")
    return _pack([RESPONSE, msgid, error, result], "response")


def encode_notification(method: str, params: list[Any]) -> bytes:
    """Encode ``[2, method, params]`` from any thread."""
    _check_call(method, params)
    return _pack([NOTIFICATION, method, params], "notification")
