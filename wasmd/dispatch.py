"""Routing a request to a plug-in export or to a built-in ``wasmd.*`` method.

``Dispatcher`` is the ``dispatch`` callable the server is given, and runs on the reader
thread of the connection the request came on: ``PLUGIN.EXPORT`` is split at the first dot,
the plug-in's current version is looked up, the caller is checked against the manifest's
``[access]``, and the export is called right there, on that thread (``PluginPool.call``).
Built-ins that only read answer on the same thread too; those that touch the event loop's
state (``loop_builtins``: subscriptions, reloads) run on the loop.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .calls import PoolClosed, Respond, Ticket
from .errors import ErrorCode, WasmdError, echo
from .peers import supplementary_groups
from .plugins.registry import Registry
from .server import Session
from .stream_wire import STREAM_METHOD, start_stream
from .values import show_value

log = logging.getLogger("wasmd.dispatch")


def _not_a_method(method: str) -> str:
    """Why ``method`` names no plug-in export; a Neovim API call (``pynvim.attach`` asks
    ``nvim_get_api_info`` first) learns what works instead (docs/neovim.md)."""
    why = f"method must be PLUGIN.EXPORT, got {show_value(method)}"
    if method.startswith("nvim_"):
        why += (
            " (wasmd is not Neovim and has no Neovim API: from pynvim, connect with "
            "pynvim.msgpack_rpc.socket_session(path), not pynvim.attach)"
        )
    return why


# A built-in answers at once, or returns an awaitable that a background task awaits.
Builtin = Callable[[Session, list[Any]], Any]
Spawn = Callable[..., object]
OnLoop = Callable[..., None]


# A reload swaps a version in between a call's look-up and its start at most this often in a
# row before the call gives up with ``unavailable``.
LOOKUP_ATTEMPTS = 3


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        builtins: dict[str, Builtin],
        *,
        loop_builtins: frozenset[str] = frozenset(),
        control: frozenset[str] = frozenset(),
        on_loop: OnLoop | None = None,
        spawn: Spawn | None = None,
    ) -> None:
        self.registry = registry
        self.builtins = builtins
        self.loop_builtins = loop_builtins
        self.control = control
        self.on_loop = on_loop
        self.spawn = spawn

    def is_control(self, method: str) -> bool:
        """Whether ``method`` is control traffic: a built-in run even past a connection's
        in-flight limit (see session.py)."""
        return method.startswith("wasmd.") and method[6:] in self.control

    def __call__(
        self, session: Session, method: str, params: list[Any], ticket: Ticket, respond: Respond
    ) -> None:
        if method == STREAM_METHOD:  # a plug-in call with a stream (stream_wire.py)
            method, params, respond = start_stream(session, params, ticket, respond)
        name, dot, export = method.partition(".")
        if name == "wasmd":
            self._builtin(session, export, params, respond)
            return
        if not dot or not export:
            raise WasmdError(ErrorCode.METHOD_NOT_FOUND, _not_a_method(method))
        peer = session.peer
        for _ in range(LOOKUP_ATTEMPTS):
            entry = self.registry.get(name)
            if entry is None:
                raise self.registry.missing(name)
            pool = entry.pool
            if pool is None:
                raise WasmdError(
                    ErrorCode.UNAVAILABLE, f"plug-in {name} failed to load: {entry.error}"
                )
            manifest = pool.plugin.manifest
            if (manifest.access_uids or manifest.access_gids) and not manifest.admits(
                peer.uid, peer.gid, lambda: supplementary_groups(peer.pid)
            ):
                message = f"uid {peer.uid} (gid {peer.gid}) may not call plug-in {name}"
                raise pool.refuse(ticket, WasmdError(ErrorCode.PERMISSION_DENIED, message))
            ticket.peer = peer  # whose faults these are, and who the guest is told calls
            try:
                pool.call(export, params, ticket, respond)
                return
            except PoolClosed:
                continue  # a reload replaced this version just now: call the new one
        raise WasmdError(ErrorCode.UNAVAILABLE, f"plug-in {name} is being replaced; try again")

    def _builtin(self, session: Session, name: str, params: list[Any], respond: Respond) -> None:
        builtin = self.builtins.get(name)
        if builtin is None:
            known = ", ".join(f"wasmd.{b}" for b in sorted(self.builtins))
            raise WasmdError(
                ErrorCode.METHOD_NOT_FOUND,
                f"no built-in {echo('wasmd.' + name)} (built-ins: {known})",
            )
        if name in self.loop_builtins:
            if self.on_loop is None:
                raise WasmdError(ErrorCode.INTERNAL, f"wasmd.{name} needs the event loop")
            self.on_loop(self._on_loop, builtin, session, params, respond, name)
        else:
            respond(None, builtin(session, params))

    def _on_loop(
        self, builtin: Builtin, session: Session, params: list[Any], respond: Respond, name: str
    ) -> None:
        try:
            result = builtin(session, params)
        except WasmdError as exc:
            respond(exc, None)
            return
        except Exception as exc:
            log.exception("wasmd.%s failed", name)
            respond(WasmdError(ErrorCode.INTERNAL, f"wasmd.{name} failed: {exc!r}"), None)
            return
        if not inspect.isawaitable(result):
            respond(None, result)
        elif self.spawn is None:
            respond(WasmdError(ErrorCode.INTERNAL, f"wasmd.{name} needs a task group"), None)
        else:
            self.spawn(_answer_later, result, respond, f"wasmd.{name}")


async def _answer_later(result: Awaitable[Any], respond: Respond, method: str) -> None:
    try:
        value = await result
    except WasmdError as exc:
        respond(exc, None)
    except Exception as exc:
        log.exception("%s failed", method)
        respond(WasmdError(ErrorCode.INTERNAL, f"{method} failed: {exc!r}"), None)
    else:
        respond(None, value)
