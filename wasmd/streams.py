"""The state of one streaming call (``wasmd.stream``), apart from any socket or runtime.

Theory of operation. A streaming call is an ordinary call whose guest may also ``send``
values out (each a chunk, ``[2, "wasmd.chunk", [msgid, seq, value]]`` on the wire) and
``recv`` values the client pushed in (``wasmd.push``, ended by ``wasmd.push_end``).
``CallStream`` owns what both sides share: the window and the credit granted so far, the
next chunk's ``seq``, and the bounded queue of pushed values. The guest's thread blocks in
``send`` while chunk ``seq`` would reach past ``window + credit`` (nothing is ever buffered
beyond the window: the guest waits instead), and in ``recv`` while no pushed value is
queued and the input has not ended. Whoever brings credit, a push, or the end wakes it.

A wait is a host-side wait: while a guest sits in a host function, wasmtime's epoch guard
does not run, so ``send`` and ``recv`` check the call's cancellation and deadline
themselves. They wait on the stream's condition in slices of ``WAKE_SLICE`` (one epoch
tick of the default engine), so a cancellation that only sets the ticket's flag, a hang-up
say, ends the wait within a tick; ``cancel`` ends it at once. Their outcome then says why
(``CANCELLED``, ``TIMEOUT``) and the runtime ends the call so.

Nothing here imports the runtime or the network layer: the runtime's host functions find
a call's ``CallStream`` on its ticket (``calls.Ticket.stream``), the connection's session
routes the peer's notifications to it (``session.CallStream`` is this interface), and the
unit tests drive it with threads.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgpack

from .errors import ErrorCode, WasmdError

log = logging.getLogger("wasmd.stream")

# How many chunks may be sent before the client grants more (``{"window": N}``).
DEFAULT_WINDOW = 32
MAX_WINDOW = 1024
# One chunk's encoding, at most (a guest's send over it is an abi_violation), and the maps
# and arrays in it (each costs the host some 60 bytes decoded for one byte of the guest's).
MAX_CHUNK = 1024 * 1024
MAX_CHUNK_CONTAINERS = 65_536
# Pushed values a stream keeps for its guest, at most, by count and by encoded bytes; a
# push past either ends the call with ``busy`` (a notification cannot be answered).
MAX_PUSHES = 64
MAX_PUSH_BYTES = 4 * 1024 * 1024
# How often a waiting guest looks at its cancellation flag (the default epoch tick).
WAKE_SLICE = 0.005

# Outcomes of a wait, besides a value.
SENT = "sent"
CANCELLED = "cancelled"
TIMEOUT = "timeout"
END = "end"


class Cancellable(Protocol):
    @property
    def cancelled(self) -> bool: ...


# sink(seq, value): deliver chunk ``seq`` (the connection's ``open_stream`` gives one that
# writes ``[2, "wasmd.chunk", [msgid, seq, value]]``; an in-process reader queues it).
ChunkSink = Callable[[int, Any], None]


class TooBig:
    """``recv``'s answer when the next value needs more room than the guest offered."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def parse_window(options: Any) -> int:
    """The window of a ``wasmd.stream`` request's options map (absent: the default)."""
    if options is None:
        return DEFAULT_WINDOW
    if not isinstance(options, dict):
        raise WasmdError(ErrorCode.INVALID_PARAMS, "the stream options must be a map")
    unknown = sorted(str(k) for k in options if k != "window")
    if unknown:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"unknown stream option(s) {', '.join(unknown)}")
    window = options.get("window", DEFAULT_WINDOW)
    if type(window) is not int or not 1 <= window <= MAX_WINDOW:
        raise WasmdError(
            ErrorCode.INVALID_PARAMS, f"window must be an integer 1..{MAX_WINDOW}, got {window!r}"
        )
    return window


class CallStream:
    """One streaming call's window, credit, chunk count and pushed input (thread-safe).

    The client's side is what a connection's session routes to a streaming call
    (``session.CallStream``): ``credit``, ``push``, ``push_end``, ``cancel``; the guest's
    side is ``send`` and ``recv``. ``sink`` takes the chunks (``attach`` sets it later, once
    the connection has opened the stream); ``ready`` (optional) is asked before each chunk
    too: the connection says no while its peer has too many unread bytes, so a chunk waits
    rather than piling up in the outbox. ``on_refuse`` ends the call when a push is refused
    (it cancels the call's ticket; the call is then answered ``refusal``, ``busy``).
    """

    def __init__(
        self,
        window: int,
        sink: ChunkSink | None = None,
        ready: Callable[[], bool] | None = None,
        on_refuse: Callable[[], None] | None = None,
    ) -> None:
        self.window = window
        self._sink = sink
        self._ready = ready
        self._on_refuse = on_refuse
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._granted = 0  # credit granted so far
        self.seq = 0  # the next chunk's number (chunks sent so far)
        self._pushes: collections.deque[bytes] = collections.deque()
        self._push_bytes = 0
        self._input_ended = False
        # Why the call must end though nobody cancelled its ticket (a push past the bound).
        self.refusal: WasmdError | None = None
        self._over = False  # the call has ended: nothing is held for it any more

    # --- the client's side (the connection, or an in-process reader) -----------------------

    def attach(self, sink: ChunkSink) -> None:
        self._sink = sink

    def credit(self, n: Any) -> None:
        """Allow ``n`` more chunks (an integer >= 0; anything else is dropped and logged:
        a notification cannot be answered)."""
        if type(n) is not int or n < 0:
            log.debug("wasmd.credit of %.40r dropped: not an integer >= 0", n)
            return
        with self._lock:
            self._granted += n
            self._changed.notify_all()

    def push(self, value: Any) -> None:
        """Queue ``value`` for the guest's ``recv`` (as its msgpack encoding). A value over
        ``MAX_CHUNK`` bytes, or past the bound, or after ``push_end``, is refused: the call
        ends ``busy`` (``refusal`` says why) and nothing is kept."""
        try:
            raw = encode_push(value, MAX_CHUNK)
        except WasmdError as exc:
            refused = self._push_raw(None, exc.message)
        else:
            refused = self._push_raw(raw, None)
        if refused and self._on_refuse is not None:
            self._on_refuse()

    def _push_raw(self, raw: bytes | None, problem: str | None) -> bool:
        """Queue ``raw`` unless it must be refused (``problem``, or the bounds); whether this
        push refused the call (only the first refusal does)."""
        with self._lock:
            if self._over or self.refusal is not None:
                return False  # the call is ending: nothing will read it, nothing is held
            if raw is None:
                self._refuse(problem or "the value cannot be encoded")
                return True
            if self._over:
                return True  # the call is finishing: nothing will read it, nothing is held
            if self.refusal is not None:
                return False  # refused already: the call is ending, nothing more is queued
            if self._input_ended:
                self._refuse("a value was pushed after wasmd.push_end")
                return True
            if len(self._pushes) >= MAX_PUSHES or self._push_bytes + len(raw) > MAX_PUSH_BYTES:
                self._refuse(
                    f"the guest has {len(self._pushes)} pushed values ({self._push_bytes} "
                    f"bytes) unread: at most {MAX_PUSHES} values and {MAX_PUSH_BYTES} bytes"
                )
                return True
            self._pushes.append(raw)
            self._push_bytes += len(raw)
            self._changed.notify_all()
            return False

    def push_end(self) -> None:
        """No more pushes: the guest's ``recv`` answers the end once the queue is empty."""
        with self._lock:
            self._input_ended = True
            self._changed.notify_all()

    def cancel(self) -> None:
        """The call was cancelled (its ticket says so): a waiting guest looks at once, not
        at the next slice."""
        with self._lock:
            self._changed.notify_all()

    def finish(self) -> None:
        """The call ended: drop what is queued; later pushes are dropped too."""
        with self._lock:
            self._over = True
            self._pushes.clear()
            self._push_bytes = 0
            self._changed.notify_all()

    @property
    def queued(self) -> int:
        return len(self._pushes)

    def _refuse(self, reason: str) -> None:
        """Under the lock: end the call with ``busy``; the waiting guest wakes."""
        if self.refusal is None:
            self.refusal = WasmdError(ErrorCode.BUSY, f"push refused: {reason}")
        self._pushes.clear()
        self._push_bytes = 0
        self._changed.notify_all()

    # --- the guest's side (the thread running the call) -------------------------------------

    def send(self, value: Any, deadline_at: float | None, call: Cancellable | None) -> str:
        """Send one chunk once the window allows: ``SENT``, or why the call is over."""
        seq = self.seq
        with self._lock:
            while True:
                why = self._stopped(deadline_at, call)
                if why is not None:
                    return why
                if seq < self.window + self._granted and (self._ready is None or self._ready()):
                    break
                self._wait(deadline_at)
        self.seq = seq + 1
        if self._sink is not None:
            self._sink(seq, value)  # outside the lock: the sink writes to a socket
        return SENT

    def recv(
        self, cap: int, deadline_at: float | None, call: Cancellable | None
    ) -> bytes | TooBig | str:
        """The next pushed value (taken off the queue), ``TooBig`` (left queued) when it is
        over ``cap`` bytes, ``END`` after ``push_end``, or why the call is over."""
        with self._lock:
            while True:
                why = self._stopped(deadline_at, call)
                if why is not None:
                    return why
                if self._pushes:
                    raw = self._pushes[0]
                    if len(raw) > cap:
                        return TooBig(len(raw))
                    self._pushes.popleft()
                    self._push_bytes -= len(raw)
                    return raw
                if self._input_ended:
                    return END
                self._wait(deadline_at)

    def _stopped(self, deadline_at: float | None, call: Cancellable | None) -> str | None:
        if self.refusal is not None or (call is not None and call.cancelled):
            return CANCELLED
        if deadline_at is not None and time.monotonic() >= deadline_at:
            return TIMEOUT
        return None

    def _wait(self, deadline_at: float | None) -> None:
        slice_ = WAKE_SLICE
        if deadline_at is not None:
            slice_ = max(0.0, min(slice_, deadline_at - time.monotonic()))
        self._changed.wait(slice_)


def stream_outcome(stream: CallStream, error: WasmdError | None) -> WasmdError | None:
    """The error a streaming call is answered with: a push refused past the bound ended it
    (through its ticket's cancellation), and is the reason, not ``cancelled``."""
    if error is not None and stream.refusal is not None and error.code == ErrorCode.CANCELLED:
        return stream.refusal
    return error


def encode_push(value: Any, limit: int) -> bytes:
    """A pushed value as the guest's ``recv`` gets it: one msgpack value, at most ``limit``
    bytes (else ``invalid_params``)."""
    try:
        raw = bytes(msgpack.packb(value, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise WasmdError(
            ErrorCode.INVALID_PARAMS, f"a pushed value cannot be encoded: {exc}"
        ) from None
    if len(raw) > limit:
        raise WasmdError(
            ErrorCode.INVALID_PARAMS, f"a pushed value of {len(raw)} bytes is over {limit}"
        )
    return raw
