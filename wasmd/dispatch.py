"""Routing a request to a plug-in export or to a built-in ``wasmd.*`` method.

``Dispatcher`` is the ``dispatch`` callable the server is given: ``PLUGIN.EXPORT`` is split
at the first dot, the plug-in's current version is looked up once, the caller's uid/gid is
checked against the manifest's ``[access]``, and the call is submitted to the version's
pool, which answers through ``respond`` from its worker thread. Built-ins answer at once on
the event loop.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ErrorCode, WasmdError
from .registry import Registry
from .server import Respond, Session, supplementary_groups

log = logging.getLogger("wasmd.dispatch")

# A built-in answers at once, or returns an awaitable that a background task awaits.
Builtin = Callable[[Session, list[Any]], Any]
Spawn = Callable[..., object]


class Dispatcher:
    def __init__(
        self, registry: Registry, builtins: dict[str, Builtin], spawn: Spawn | None = None
    ) -> None:
        self.registry = registry
        self.builtins = builtins
        self.spawn = spawn

    def __call__(self, session: Session, method: str, params: list[Any], respond: Respond) -> None:
        name, dot, export = method.partition(".")
        if name == "wasmd":
            builtin = self.builtins.get(export)
            if builtin is None:
                known = ", ".join(f"wasmd.{b}" for b in sorted(self.builtins))
                raise WasmdError(
                    ErrorCode.METHOD_NOT_FOUND, f"no built-in {method!r} (built-ins: {known})"
                )
            result = builtin(session, params)
            if inspect.isawaitable(result):
                if self.spawn is None:
                    raise WasmdError(ErrorCode.INTERNAL, f"{method} needs a task group")
                self.spawn(_answer_later, result, respond, method)
            else:
                respond(None, result)
            return
        if not dot or not export:
            raise WasmdError(
                ErrorCode.METHOD_NOT_FOUND, f"method must be PLUGIN.EXPORT, got {method!r}"
            )
        entry = self.registry.get(name)
        if entry is None:
            raise WasmdError(ErrorCode.METHOD_NOT_FOUND, f"no plug-in named {name!r}")
        pool = entry.pool
        if pool is None:
            raise WasmdError(ErrorCode.UNAVAILABLE, f"plug-in {name} failed to load: {entry.error}")
        manifest = pool.plugin.manifest
        if manifest.access_uids or manifest.access_gids:
            peer = session.peer
            allowed = peer.uid == 0 or peer.uid in manifest.access_uids
            allowed = allowed or peer.gid in manifest.access_gids
            # Supplementary groups count too (read only when the cheap checks said no).
            if not allowed and manifest.access_gids:
                allowed = bool(set(manifest.access_gids) & supplementary_groups(peer.pid))
            if not allowed:
                raise WasmdError(
                    ErrorCode.PERMISSION_DENIED,
                    f"uid {peer.uid} (gid {peer.gid}) may not call plug-in {name}",
                )
        pool.submit(export, params, respond)


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
