"""The NATS bridge's wire names, its allow-list and its payload codec (pure functions).

Subjects. A call to ``PLUGIN.EXPORT`` is a NATS request on ``wasmd.call.PLUGIN.EXPORT``; every
bridge subscribes in one queue group, so NATS hands each request to one bridge on one host. An
export name may hold dots (a component's ``IFACE.FUNC``): the method is everything after the
prefix. Lifecycle events go out on ``wasmd.events.HOST.TYPE`` (``TYPE`` keeps its dots, so
``wasmd.events.*.plugin.>`` follows every host's plug-in events).

Payloads are MessagePack: a request is the params array (an empty payload is ``[]``); a reply
is ``[error, result]``, with ``error`` nil or wasmd's ``[code, message(, data)]``.

The allow-list. Nothing is exposed unless listed: ``PLUGIN`` exposes every export of a
plug-in, ``PLUGIN.EXPORT`` one export, ``*`` every plug-in. The built-ins (``wasmd.*``:
``wasmd.load`` runs code of the caller's choosing) are never exposed. A bridge subscribes only
to the subjects its list names, so NATS routes a request only to bridges that expose it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from ..discovery import NAME_RE
from ..errors import ErrorCode, WasmdError

CALL_PREFIX = "wasmd.call."
EVENTS_PREFIX = "wasmd.events."
DEFAULT_QUEUE = "wasmd"
# The caller's patience in milliseconds, counted from the request's arrival at the bridge (a
# relative time: hosts' clocks need not agree). Past it the call is cancelled in the daemon.
TIMEOUT_HEADER = "Wasmd-Timeout-Ms"
# Set on a request a bridge hands back to the queue group because its daemon went away before
# the request reached it; a request carrying it is not handed on a second time.
FORWARDED_HEADER = "Wasmd-Forwarded-By"
EVERYTHING = "*"
BUILTINS = "wasmd"
# A request's params plus the MessagePack-RPC framing ([0, msgid, method, ...]) must fit the
# daemon's max_message_size; this much is kept for the framing besides the method's name.
FRAMING_BYTES = 16

_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_TOKEN_UNSAFE = re.compile(r"[\s*>.]")


class ExposureError(ValueError):
    """An allow-list entry that is not ``*``, ``PLUGIN`` or ``PLUGIN.EXPORT``."""


@dataclass(frozen=True)
class Exposure:
    """Which methods a bridge answers: whole plug-ins, single exports, or every plug-in."""

    everything: bool = False
    plugins: frozenset[str] = frozenset()
    exports: frozenset[str] = frozenset()  # "PLUGIN.EXPORT"

    @classmethod
    def parse(cls, patterns: Iterable[str]) -> Exposure:
        everything = False
        plugins: set[str] = set()
        exports: set[str] = set()
        for pattern in patterns:
            if pattern == EVERYTHING:
                everything = True
                continue
            plugin, dot, export = pattern.partition(".")
            if plugin == BUILTINS:
                raise ExposureError(
                    f"{pattern!r}: the built-ins (wasmd.*) are never exposed over NATS"
                )
            if not NAME_RE.fullmatch(plugin):
                raise ExposureError(
                    f"{pattern!r}: not *, PLUGIN or PLUGIN.EXPORT (a plug-in name matches "
                    f"{NAME_RE.pattern})"
                )
            if not dot:
                plugins.add(plugin)
            elif not export or _TOKEN_UNSAFE.search(export.replace(".", "")):
                raise ExposureError(f"{pattern!r}: not a NATS subject's tokens")
            else:
                exports.add(pattern)
        return cls(everything, frozenset(plugins), frozenset(exports))

    @property
    def empty(self) -> bool:
        return not (self.everything or self.plugins or self.exports)

    def allows(self, method: str) -> bool:
        plugin, dot, export = method.partition(".")
        if plugin == BUILTINS or not dot or not export:
            return False
        return self.everything or plugin in self.plugins or method in self.exports

    def allows_plugin(self, plugin: str) -> bool:
        """Whether any export of ``plugin`` is exposed (its events are republished then)."""
        if plugin == BUILTINS:
            return False
        return (
            self.everything
            or plugin in self.plugins
            or any(e.partition(".")[0] == plugin for e in self.exports)
        )

    def subjects(self) -> list[str]:
        """The subjects to subscribe to: each exposed method once, none twice."""
        if self.everything:
            return [f"{CALL_PREFIX}>"]
        covered = [f"{CALL_PREFIX}{p}.>" for p in sorted(self.plugins)]
        single = [
            f"{CALL_PREFIX}{e}"
            for e in sorted(self.exports)
            if e.partition(".")[0] not in self.plugins
        ]
        return covered + single

    def describe(self) -> str:
        if self.empty:
            return "nothing"
        if self.everything:
            return "every plug-in (*)"
        return ", ".join(sorted(self.plugins) + sorted(self.exports))


def method_of(subject: str) -> str | None:
    """``PLUGIN.EXPORT`` for ``wasmd.call.PLUGIN.EXPORT``; None for any other subject."""
    if not subject.startswith(CALL_PREFIX):
        return None
    return subject[len(CALL_PREFIX) :] or None


def host_token(name: str) -> str:
    """``name`` as one subject token: a host name's dots (and anything else) become ``_``."""
    return _HOST_UNSAFE.sub("_", name) or "_"


def event_subject(host: str, event_type: str) -> str:
    return f"{EVENTS_PREFIX}{host}.{event_type}"


def decode_params(payload: bytes, max_message_size: int, method: str) -> list[Any]:
    """A request payload's params; ``WasmdError`` when it is too large or not an array."""
    if len(payload) + len(method.encode()) + FRAMING_BYTES > max_message_size:
        raise WasmdError(
            ErrorCode.INVALID_REQUEST,
            f"request of {len(payload)} bytes is over the daemon's max_message_size "
            f"({max_message_size} bytes with the call's framing)",
        )
    if not payload:
        return []
    try:
        params = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise WasmdError(
            ErrorCode.INVALID_REQUEST, f"request payload is not MessagePack: {exc}"
        ) from None
    if not isinstance(params, list):
        raise WasmdError(
            ErrorCode.INVALID_REQUEST,
            f"request payload must be a MessagePack array of params, not {type(params).__name__}",
        )
    return params


def encode_reply(error: WasmdError | None, result: Any = None) -> bytes:
    """The reply payload ``[error, result]``."""
    if error is not None:
        return bytes(msgpack.packb([error.to_wire(), None], use_bin_type=True))
    return bytes(msgpack.packb([None, result], use_bin_type=True))


def timeout_of(headers: dict[str, str] | None) -> float | None:
    """The caller's patience in seconds from ``Wasmd-Timeout-Ms``; None if absent or bad."""
    if not headers:
        return None
    text = headers.get(TIMEOUT_HEADER)
    if text is None:
        return None
    try:
        milliseconds = float(text)
    except ValueError:
        return None
    return milliseconds / 1000 if milliseconds == milliseconds else None  # NaN: none


def probe_subject(reply: str, token: str) -> str | None:
    """Where to check that a caller still listens: a sibling of its reply subject.

    The official clients (nats.go, nats-py) answer requests through one wildcard subscription
    per connection, ``_INBOX.PREFIX.*``, and reply subjects ``_INBOX.PREFIX.TOKEN``. A request
    to ``_INBOX.PREFIX.<probe>`` reaches that subscription while the caller's connection lives
    (the client drops it: no request of its own has that token) and gets NATS's no-responders
    status once it is gone. Other reply subjects are not probed (a probe could be taken for
    the answer); their callers' give-up is known from ``Wasmd-Timeout-Ms`` only.
    """
    parts = reply.split(".")
    if len(parts) != 3 or parts[0] != "_INBOX" or not parts[1] or not parts[2]:
        return None
    return f"_INBOX.{parts[1]}.{token}"
