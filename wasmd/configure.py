"""``wasmd.configure``: settings a client chooses for its own connection.

The one setting so far is the shape of error responses. wasmd's own shape is
``[code, message]`` or ``[code, message, data]`` (DESIGN.md section 1). Neovim's
``rpcrequest`` shows an error's message only when the error is ``[0 or 1, message]`` with
exactly two elements, and reports anything else as "unknown error"; a Neovim client that
sends ``wasmd.configure [{"errors": "neovim"}]`` gets ``[1, "timeout (5): message"]``
instead, so the reason (and the code, in the text) reaches the user.

A connection holds the encoder it chose (``ClientConnection.encode_error``); the default is
``WasmdError.to_wire`` itself, so a client that never configures pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .errors import ErrorCode, WasmdError, echo, error_name

ErrorEncoder = Callable[[WasmdError], list[Any]]


def neovim_error(error: WasmdError) -> list[Any]:
    """``[1, "name (code): message"]``: the one shape Neovim shows the message of."""
    return [1, f"{error_name(error.code)} ({int(error.code)}): {error.message}"]


ERROR_SHAPES: dict[str, ErrorEncoder] = {"wasmd": WasmdError.to_wire, "neovim": neovim_error}


class Configurable(Protocol):
    """A session whose error shape can be chosen (``connection.ClientConnection``)."""

    encode_error: ErrorEncoder


def configure(session: Any, params: list[Any]) -> dict[str, str]:
    """``wasmd.configure [{"errors": "neovim" | "wasmd"}]``; returns the settings now in force.

    Settings apply to the responses that follow (this one's included); an unknown key or
    value is ``invalid_params`` and changes nothing.
    """
    usage = 'wasmd.configure takes [{"errors": "wasmd" | "neovim"}]'
    if len(params) != 1 or not isinstance(params[0], dict):
        raise WasmdError(ErrorCode.INVALID_PARAMS, usage)
    settings: dict[Any, Any] = params[0]
    unknown = sorted(str(k) for k in settings if k != "errors")
    if unknown:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"unknown setting {echo(unknown[0])}; {usage}")
    shape = settings.get("errors")
    if shape is not None:
        encoder = ERROR_SHAPES.get(shape) if isinstance(shape, str) else None
        if encoder is None:
            raise WasmdError(
                ErrorCode.INVALID_PARAMS, f"unknown error shape {echo(shape)}; {usage}"
            )
        target: Configurable = session
        target.encode_error = encoder
    return {"errors": _shape_name(session)}


def _shape_name(session: Any) -> str:
    current = getattr(session, "encode_error", WasmdError.to_wire)
    return next((name for name, enc in ERROR_SHAPES.items() if enc == current), "wasmd")
