"""What a call is, as its caller and whoever runs it share it: ``Ticket`` and ``Respond``.

A neutral room: the network layer (``connection``, ``server``, ``dispatch``) makes tickets
and the runtime (``runtime.pool``) runs them, and neither needs the other's module for that.
It imports only ``errors``, so ``import wasmd.server`` loads no wasmtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import WasmdError

if TYPE_CHECKING:
    from .peers import Peer

# How a call's outcome goes back to whoever made it: (error, None) or (None, result).
Respond = Callable[[WasmdError | None, Any], None]


class PoolClosed(WasmdError):
    """Raised by ``PluginPool.call`` when the pool closed before the call got an instance:
    a reload swapped in a new version meanwhile, and the caller should look its plug-in up
    again."""


class Ticket:
    """One call in progress, as its caller holds it.

    ``owner`` is who made the call (backpressure is per owner); ``started`` is when the
    call's deadline began; ``cancel`` ends the call wherever it is; ``stream`` is a
    streaming call's ``streams.CallStream``.

    ``detached`` says how the caller waits for an instance when none is free: a detached
    call (the server's) is queued in the plug-in's run queue and the caller goes on at once;
    the thread that frees an instance runs it and answers through ``respond`` (see
    ``runtime.pool``). A call that is not detached (the in-process library's) waits on its
    own thread. ``before_wait`` runs before a call that is not detached would wait (a
    plug-in's nested call refuses to). ``backpressured`` is true while the call waits
    behind its own owner's calls without taking a ``queue`` place. ``peer`` is the socket
    peer the call came from (None in-process): its faults are charged to its uid, and the
    guest may ask who it is (``wasmd.caller_uid``).

    Which thread writes what: ``cancelled`` is set by anyone (a flag read at epoch ticks);
    ``deadline_at`` and ``_withdraw`` are written by the pool under its lock only.
    """

    __slots__ = (
        "_withdraw",
        "backpressured",
        "before_wait",
        "cancelled",
        "deadline_at",
        "detached",
        "owner",
        "peer",
        "started",
        "stream",
    )

    # A plug-in's call to another (runtime/nested.py) ends by its caller's deadline, if that
    # is the earlier: monotonic seconds, or None.
    caller_deadline: float | None = None

    def __init__(self, owner: object, started: float, *, detached: bool = False) -> None:
        self.owner = owner
        self.started = started
        self.detached = detached
        self.cancelled = False
        self.backpressured = False
        self.before_wait: Callable[[], None] | None = None
        self.peer: Peer | None = None
        # While the call waits in a run queue: its deadline (None: it starts when the call
        # does), and the pool's way to take it out (answering it ``timeout`` if the argument
        # is true, else ``cancelled``).
        self.deadline_at: float | None = None
        self._withdraw: Callable[[bool], object] | None = None
        # A streaming call's ``streams.CallStream``: the guest's send and recv find it here
        # (through the running call's cancellable, runtime/stream_imports.py).
        self.stream: Any = None

    def cancel(self) -> None:
        """End the call: a queued one leaves its queue at once and is answered ``cancelled``
        (on this thread), a running one ends at the next epoch tick."""
        self.cancelled = True
        stream = self.stream
        if stream is not None:
            stream.cancel()  # a guest waiting in send or recv looks at once
        withdraw = self._withdraw
        if withdraw is not None:
            withdraw(False)

    def expire(self, now: float) -> bool:
        """If the call waits in a run queue past its deadline, take it out and answer it
        ``timeout`` (on this thread). Whether it is still queued afterwards."""
        deadline_at = self.deadline_at
        if deadline_at is None:
            return False
        if now < deadline_at:
            return True
        withdraw = self._withdraw
        if withdraw is not None:
            withdraw(True)
        return False
