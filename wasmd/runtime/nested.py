"""Plug-in-to-plug-in calls: the host import ``wasmd.call`` (docs/abi.md).

Theory of operation. A guest calls ``wasmd.call(name_ptr, name_len, args_ptr, args_len)``
with ``PLUGIN.EXPORT`` and a msgpack params array; the host finds the callee's current
version through the ``PluginResolver`` the loader gave the caller's ``HostContext`` (the
daemon's registry, or an embedding ``wasmd.Loader``'s), checks the callee manifest's
``[access] plugins`` against the *calling plug-in's* name, and runs the callee's export right
here, on the caller's thread, through ``PluginPool.call`` (the same path a request takes).

Three rules keep this from hanging or running away:

- **No waiting for an instance.** The caller holds one instance of its own plug-in while it
  waits for the callee; if the callee is the caller itself, or a plug-in whose instances are
  all taken (perhaps by someone waiting on the caller), waiting could deadlock. So the nested
  call never waits: the callee's pool asks ``Ticket.before_wait`` before it would, and the
  answer is to give up at once with ``busy`` (7), "no free instance".
- **The caller's deadline.** The callee runs until the earlier of its own ``timeout_ms`` and
  what is left of the caller's deadline; cancelling the caller's call cancels the callee too.
  Either way the callee was stopped for its caller's sake: the answer names the caller's
  deadline, and it is no fault of the callee's (its failure policy does not count it).
- **A depth limit**, ``host.MAX_CALL_DEPTH`` calls deep; past it, ``resource_exhausted`` (6).

The answer the guest gets is one msgpack value ``[error, result]``, as a response carries:
``[nil, result]`` or ``[[code, message], nil]``. Only a misuse of the import itself (bad
pointers, params that are not a msgpack array) is an ``abi_violation`` of the caller.

The thread-local ``call_state`` belongs to the call running on this thread; the callee's run
resets it, so the caller's is saved first and put back after.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..calls import PoolClosed, Ticket
from ..errors import ErrorCode, WasmdError
from ..values import show_value
from .host import PluginCalls
from .traps import forget_traceback

if TYPE_CHECKING:
    from .fastcall import Cancellable
    from .pool import PluginPool

# How deep plug-ins may call each other: A -> B -> C is depth 2.
# A reload may swap the callee between its look-up and its start this often in a row.
LOOKUP_ATTEMPTS = 3

# name -> the callee's running pool; raises WasmdError (method_not_found, unavailable).
PluginResolver = Callable[[str], "PluginPool"]


class NestedTicket(Ticket):
    """The ticket of a plug-in's call to another: it never waits for an instance, it is
    cancelled when the call it was made from is, and it ends by that call's deadline
    (``caller_deadline``) if that comes before the callee's own."""

    __slots__ = ("_own_cancel", "caller_deadline", "outer", "refused_wait")

    def __init__(
        self, started: float, outer: Cancellable | None, caller_deadline: float | None
    ) -> None:
        self.outer = outer
        self.caller_deadline = caller_deadline
        self._own_cancel = False
        self.refused_wait = False
        super().__init__(owner=self, started=started)
        self.before_wait = self._refuse_wait
        # The request this call is made for: its caller is charged and seen by the callee.
        self.peer = None if outer is None else outer.peer

    @property
    def cancelled(self) -> bool:
        outer = self.outer
        return self._own_cancel or (outer is not None and outer.cancelled)

    @cancelled.setter
    def cancelled(self, value: bool) -> None:
        self._own_cancel = value

    def _refuse_wait(self) -> None:
        self.refused_wait = True
        self.cancel()


def plugin_calls(resolve: PluginResolver) -> PluginCalls:
    """What a plug-in's ``wasmd.call`` reaches: the plug-ins ``resolve`` finds
    (``HostContext.plugins``)."""
    return functools.partial(call_plugin, resolve)


def call_plugin(
    resolve: PluginResolver,
    caller: str,
    method: str,
    params: list[Any],
    *,
    deadline_at: float | None,
    outer: Cancellable | None,
) -> tuple[WasmdError | None, Any]:
    """Call ``method`` (``PLUGIN.EXPORT``) for the plug-in ``caller``; (error, result)."""
    name, dot, export = method.partition(".")
    if not dot or not export:
        return WasmdError(
            ErrorCode.METHOD_NOT_FOUND, f"method must be PLUGIN.EXPORT, got {show_value(method)}"
        ), None
    try:
        for _ in range(LOOKUP_ATTEMPTS):
            pool = resolve(name)
            if not pool.plugin.manifest.admits_plugin(caller):
                raise WasmdError(
                    ErrorCode.PERMISSION_DENIED,
                    f"plug-in {caller} may not call plug-in {name} "
                    f"(its manifest's [access] plugins does not list it)",
                )
            try:
                return _call_pool(pool, export, params, deadline_at, outer)
            except PoolClosed:
                continue
        raise WasmdError(ErrorCode.UNAVAILABLE, f"plug-in {name} is being replaced; try again")
    except WasmdError as exc:
        # Returned, not raised: the caller's frame will hold it, and its traceback holds this
        # frame, whose f_back is the caller's: a cycle, unless the traceback goes.
        forget_traceback(exc)
        return exc, None


def _call_pool(
    pool: PluginPool,
    export: str,
    params: list[Any],
    deadline_at: float | None,
    outer: Cancellable | None,
) -> tuple[WasmdError | None, Any]:
    now = time.monotonic()
    if deadline_at is not None and deadline_at <= now:
        return WasmdError(ErrorCode.TIMEOUT, "the calling plug-in's deadline has passed"), None
    # The pool ends the call by the earlier of the callee's own deadline and the caller's;
    # the callee is not at fault when it is the caller's (PluginPool.call).
    ticket = NestedTicket(now, outer, deadline_at)
    outcome: list[Any] = [None, None]

    def respond(error: WasmdError | None, result: Any) -> None:
        outcome[0], outcome[1] = error, result

    try:
        pool.call(export, params, ticket, respond)
    except PoolClosed:
        raise
    except WasmdError as exc:
        forget_traceback(exc)  # returned: see call_plugin
        if ticket.refused_wait and not (outer is not None and outer.cancelled):
            return _no_free_instance(pool), None
        return exc, None
    return outcome[0], outcome[1]


def _no_free_instance(pool: PluginPool) -> WasmdError:
    name = pool.plugin.name
    return WasmdError(
        ErrorCode.BUSY,
        f"plug-in {name} has no free instance ({pool.plugin.manifest.instances} in all); "
        "a plug-in's call never waits for one, since its caller may hold the one it needs",
    )
