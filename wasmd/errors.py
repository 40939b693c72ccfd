"""wasmd's error vocabulary: the wire codes of DESIGN.md section 1 and the exceptions carrying them.

Every failure that reaches a client is a ``WasmdError`` with one of the ``ErrorCode`` values;
on the wire it travels as ``[code, message]`` or ``[code, message, data]``.
"""

from __future__ import annotations

import os
from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    INVALID_REQUEST = 1
    METHOD_NOT_FOUND = 2
    INVALID_PARAMS = 3
    TRAP = 4
    TIMEOUT = 5
    RESOURCE_EXHAUSTED = 6
    BUSY = 7
    UNAVAILABLE = 8
    PERMISSION_DENIED = 9
    INTERNAL = 10
    CANCELLED = 11


# The longest error message sent (characters); a longer one is cut, saying how long it was.
MESSAGE_LIMIT = 64 * 1024
# The most of a client's own input (a method or plug-in name, a setting) a message quotes.
ECHO_LIMIT = 200


def echo(value: object) -> str:
    """``value``, from a client, as an error message quotes it: its ``repr``, of at most
    about ``ECHO_LIMIT`` characters (a 15 MiB method name is not sent back whole)."""
    if isinstance(value, str | bytes) and len(value) > ECHO_LIMIT:
        return f"{value[:ECHO_LIMIT]!r}... ({len(value)} in all)"
    shown = repr(value)
    return shown if len(shown) <= ECHO_LIMIT else f"{shown[:ECHO_LIMIT]}..."


def _bounded(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    return f"{message[:MESSAGE_LIMIT]}... (cut: {len(message)} characters in all)"


def error_name(code: int) -> str:
    """An error's one name, as DESIGN.md's table writes it (``trap``, ``timeout``): the CLI's
    text and JSON and the Neovim error shape all say this, never a ``data["kind"]``."""
    return ErrorCode(code).name.lower() if code in ErrorCode._value2member_map_ else "unknown"


class WasmdError(Exception):
    """Raised when a request fails; carries the wire error code, a message and optional data.
    The message is cut to ``MESSAGE_LIMIT`` characters, whatever went into it."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        message = _bounded(message)
        super().__init__(message)
        self.code = ErrorCode(code) if code in ErrorCode._value2member_map_ else code
        self.message = message
        self.data = data

    def to_wire(self) -> list[Any]:
        wire: list[Any] = [int(self.code), self.message]
        if self.data is not None:
            wire.append(self.data)
        return wire

    @classmethod
    def from_wire(cls, error: Any) -> WasmdError:
        """Build from a response's error field, tolerating peers that send other shapes."""
        if isinstance(error, list | tuple) and len(error) >= 2 and isinstance(error[0], int):
            data = error[2] if len(error) > 2 and isinstance(error[2], dict) else None
            return cls(error[0], str(error[1]), data)
        return cls(ErrorCode.INTERNAL, f"peer sent an error of unknown shape: {error!r}")

    def __str__(self) -> str:
        return f"{error_name(self.code)}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self.code)}, {self.message!r})"


class ConfigError(Exception):
    """Raised when a manifest or daemon config file is invalid; the message names file and key."""

    def __init__(self, source: str, key: str | None, reason: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


class PluginLoadError(Exception):
    """Raised when a plug-in cannot be loaded: bad bytes, bad manifest, failed link or start."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class PluginLoadDeferred(PluginLoadError):
    """A load that failed for a reason outside the plug-in's files (its state database is
    locked, corrupt or unreadable): a rescan tries the same files again, as after a fix."""


class SocketPathError(Exception):
    """Raised when the daemon may not listen on its socket path; names the path and the reason."""

    def __init__(self, path: os.PathLike[str] | str, reason: str) -> None:
        super().__init__(f"cannot listen on {os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason
