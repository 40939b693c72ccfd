"""The host side of the Extism ABI (issue 8): its kernel and host functions. How a request
calls an Extism plug-in is ``abis/extism.py``.

Theory of operation. An Extism plug-in imports its memory management and I/O from
``extism:host/env`` and addresses "Extism memory" with 64-bit offsets. wasmd implements that
memory as a small module of its own (``extism_kernel.wat``), instantiated in the same Store
beside each plug-in and linked to its imports, so the plug-in's loads and stores go from
wasm to wasm. Python provides only what needs the host: ``config_get``, ``var_get`` and
``var_set`` (vars live with the instance and survive its calls), the ``log_*`` functions,
``get_log_level``, and ``http_request`` — refused unless the URL's host is in the manifest's
``[extism] allowed_hosts``.

The Python functions read and write the kernel through ``extism_state``, a thread-local set
by the instance before each call (the plug-in and its host calls run on one worker thread).
Like all host functions here, they are wrapped by ``host_function`` and never raise into
wasmtime (see host.py): faults go to ``call_state``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.client import HTTPMessage
from importlib.resources import files
from typing import IO, Any

import wasmtime

from .host import HostContext, call_state, host_function

KERNEL_WAT = files("wasmd.runtime").joinpath("extism_kernel.wat").read_text()
ENV = "extism:host/env"
USER = "extism:host/user"
# What the kernel module provides to the plug-in, by the names Extism's PDKs import.
KERNEL_EXPORTS = frozenset(
    {
        "alloc",
        "free",
        "length",
        "length_unsafe",
        "load_u8",
        "load_u64",
        "store_u8",
        "store_u64",
        "input_length",
        "input_offset",
        "input_load_u8",
        "input_load_u64",
        "output_set",
        "error_set",
    }
)
MAX_VAR_BYTES = 1024 * 1024  # all of one instance's vars together, as Extism's default
MAX_HTTP_RESPONSE = 16 * 1024 * 1024
_LEVELS = {
    "log_trace": logging.DEBUG,
    "log_debug": logging.DEBUG,
    "log_info": logging.INFO,
    "log_warn": logging.WARNING,
    "log_error": logging.ERROR,
}
_I32, _I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()


@dataclass
class ExtismState:
    """One instance's view of its kernel, and what survives between its calls."""

    ctx: HostContext
    allowed_hosts: tuple[str, ...]
    memory: wasmtime.Memory | None = None
    alloc: wasmtime.Func | None = None
    length: wasmtime.Func | None = None
    vars: dict[str, bytes] = field(default_factory=dict)
    http_status: int = 0
    permission_denied: str | None = None
    # The current call's deadline (time.monotonic()), which http_request must keep.
    deadline: float = math.inf
    past_deadline: str | None = None  # what was still running when it passed


class _Local(threading.local):
    state: ExtismState | None = None


extism_state = _Local()


def _state() -> ExtismState:
    state = extism_state.state
    if state is None or state.memory is None:
        raise RuntimeError("no Extism kernel for this call")
    return state


def kernel_block(state: ExtismState, store: wasmtime.Store | wasmtime.Caller, offs: int) -> bytes:
    """The bytes of the kernel block at ``offs`` (b"" for offset 0)."""
    if offs == 0:
        return b""
    assert state.length is not None
    assert state.memory is not None
    # An offset that names no block has length 0, as in Extism: it reads as empty.
    size = int(state.length(store, offs))
    return bytes(state.memory.read(store, offs, offs + size))


def _read(caller: wasmtime.Caller, offs: int) -> bytes:
    return kernel_block(_state(), caller, offs)


def _write(caller: wasmtime.Caller, data: bytes) -> int:
    """A new kernel block holding ``data``; its offset."""
    state = _state()
    assert state.alloc is not None
    assert state.memory is not None
    offs = int(state.alloc(caller, len(data)))
    if offs == 0:
        raise MemoryError(f"Extism memory is full ({len(data)} bytes asked for)")
    if data:
        state.memory.write(caller, data, offs)
    return offs


@host_function(f"{ENV}.config_get", fallback=0)
def _config_get(caller: wasmtime.Caller, key_offs: int) -> int:
    value = _state().ctx.config.get(_read(caller, key_offs).decode())
    return 0 if value is None else _write(caller, value.encode())


@host_function(f"{ENV}.var_get", fallback=0)
def _var_get(caller: wasmtime.Caller, key_offs: int) -> int:
    value = _state().vars.get(_read(caller, key_offs).decode())
    return 0 if value is None else _write(caller, value)


@host_function(f"{ENV}.var_set")
def _var_set(caller: wasmtime.Caller, key_offs: int, value_offs: int) -> None:
    state = _state()
    key = _read(caller, key_offs).decode()
    if value_offs == 0:
        state.vars.pop(key, None)
        return
    value = _read(caller, value_offs)
    used = sum(len(k) + len(v) for k, v in state.vars.items() if k != key)
    if used + len(key) + len(value) > MAX_VAR_BYTES:
        raise ValueError(f"vars would pass their limit of {MAX_VAR_BYTES} bytes")
    state.vars[key] = value


def _logger(name: str) -> Any:
    level = _LEVELS[name]

    @host_function(f"{ENV}.{name}")
    def log(caller: wasmtime.Caller, offs: int) -> None:
        ctx = _state().ctx
        allowed, dropped = ctx.budget.take()
        if dropped:
            ctx.log.warning("(%d log lines dropped: too many a second)", dropped)
        if allowed:
            ctx.log.log(level, "%s", _read(caller, offs).decode("utf-8", "replace"))

    return log


@host_function(f"{ENV}.get_log_level", fallback=4)
def _get_log_level(caller: wasmtime.Caller) -> int:
    # Extism's numbering: 0 trace, 1 debug, 2 info, 3 warn, 4 error.
    state = extism_state.state
    effective = state.ctx.log.getEffectiveLevel() if state else logging.INFO
    return {logging.DEBUG: 1, logging.INFO: 2, logging.WARNING: 3}.get(effective, 4)


class _Refused(Exception):
    """Raised when an http_request, or a redirect it is sent, leaves what the manifest allows."""


class _PastDeadline(Exception):
    """Raised when the call's deadline passes before an http_request is done."""


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether ``host`` matches an ``[extism] allowed_hosts`` entry, as in Extism.

    An entry is a host name (case does not matter), ``*`` for any host, or ``*.NAME`` for
    every host below NAME (``a.NAME``, ``a.b.NAME``) — not NAME itself, as in Extism, where
    entries are glob patterns. No other wildcard is understood.
    """
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        entry = entry.lower().rstrip(".")
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
    return False


def _check(request: urllib.request.Request, allowed_hosts: Iterable[str]) -> None:
    """Refuse a request that is not plain http(s) to an allowed host.

    The host checked is the one urllib connects to (``Request.host``), not a second parse of
    the URL that might read it differently; user info (``http://a@b/``) is refused outright.
    """
    if request.type not in ("http", "https"):
        raise _Refused(
            f"http_request to a {request.type}: URL is not allowed (http and https only)"
        )
    if "@" in request.host:
        raise _Refused("http_request to a URL with user info (user@host) is not allowed")
    host = urllib.parse.urlsplit(f"//{request.host}").hostname or ""
    if not host_allowed(host, allowed_hosts):
        raise _Refused(
            f"http_request to {host or request.full_url!r} is not allowed "
            "(manifest: [extism] allowed_hosts)"
        )


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _PastDeadline
    return left


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an allowed http(s) host, within the call's deadline."""

    def __init__(self, allowed_hosts: Iterable[str], deadline: float) -> None:
        self.allowed_hosts = allowed_hosts
        self.deadline = deadline

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            _check(new, self.allowed_hosts)
            # urllib opens the next hop with the timeout of the request redirected.
            req.timeout = _remaining(self.deadline)
        return new


def _opener(allowed_hosts: Iterable[str], deadline: float) -> urllib.request.OpenerDirector:
    """An opener for http and https only: no file:, ftp: or data: handler, and no proxy
    taken from the environment."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        _CheckedRedirects(allowed_hosts, deadline),
    ):
        opener.add_handler(handler)
    return opener


def _outgoing(request: Any, body: bytes) -> urllib.request.Request:
    """The request an Extism PDK describes: ``{"url", "method"?, "headers"?}``."""
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise ValueError('the request must be a JSON object with a "url" string')
    method = request.get("method") or "GET"  # PDKs send "method": null for the default
    headers = request.get("headers") or {}
    if not isinstance(method, str) or not isinstance(headers, dict):
        raise ValueError('"method" must be a string and "headers" an object')
    if not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("header values must be strings")
    return urllib.request.Request(request["url"], data=body or None, method=method, headers=headers)


def _read_body(response: Any, deadline: float) -> bytes:
    """The response body, up to MAX_HTTP_RESPONSE bytes, read before the deadline.

    Each read waits at most the time that was left when the connection was made; the
    deadline is checked between reads, so a server that trickles cannot stretch the call.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        _remaining(deadline)
        chunk = response.read1(64 * 1024) if hasattr(response, "read1") else response.read()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_HTTP_RESPONSE:
            raise ValueError(f"the response is over {MAX_HTTP_RESPONSE} bytes")
        chunks.append(chunk)


def _fetch(state: ExtismState, outgoing: urllib.request.Request) -> bytes:
    """Send ``outgoing``; its body. Raises _Refused, _PastDeadline, or what urllib raises."""
    _check(outgoing, state.allowed_hosts)
    opener = _opener(state.allowed_hosts, state.deadline)
    try:
        try:
            with opener.open(outgoing, timeout=_remaining(state.deadline)) as response:
                state.http_status = response.status
                return _read_body(response, state.deadline)
        except urllib.error.HTTPError as exc:
            state.http_status = exc.code
            with exc:
                return _read_body(exc.fp if exc.fp is not None else exc, state.deadline)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (_Refused, TimeoutError)):
            raise exc.reason from None
        raise
    except TimeoutError:
        raise _PastDeadline from None


@host_function(f"{ENV}.http_request", fallback=0)
def _http_request(caller: wasmtime.Caller, req_offs: int, body_offs: int) -> int:
    state = _state()
    outgoing = _outgoing(json.loads(_read(caller, req_offs)), _read(caller, body_offs))
    try:
        body = _fetch(state, outgoing)
    except _Refused as exc:
        state.permission_denied = str(exc)
        call_state.fault = state.permission_denied  # if the guest carries on regardless
        return 0
    except (_PastDeadline, TimeoutError):
        state.past_deadline = f"http_request to {outgoing.host} was not done"
        return 0
    return _write(caller, body)


@host_function(f"{ENV}.http_status_code", fallback=0)
def _http_status_code(caller: wasmtime.Caller) -> int:
    state = extism_state.state
    return state.http_status if state else 0


@host_function(f"{ENV}.http_headers", fallback=0)
def _http_headers(caller: wasmtime.Caller) -> int:
    return 0  # response headers are not offered (Extism's default too)


HOST_FUNCTIONS: dict[str, tuple[list[wasmtime.ValType], list[wasmtime.ValType], Any]] = {
    "config_get": ([_I64], [_I64], _config_get),
    "var_get": ([_I64], [_I64], _var_get),
    "var_set": ([_I64, _I64], [], _var_set),
    "get_log_level": ([], [_I32], _get_log_level),
    "http_request": ([_I64, _I64], [_I64], _http_request),
    "http_status_code": ([], [_I32], _http_status_code),
    "http_headers": ([], [_I64], _http_headers),
    **{name: ([_I64], [], _logger(name)) for name in _LEVELS},
}


def define_host_functions(linker: wasmtime.Linker) -> None:
    """The Python half of ``extism:host/env`` (the kernel provides the rest per instance)."""
    for name, (params, results, func) in HOST_FUNCTIONS.items():
        linker.define_func(ENV, name, wasmtime.FuncType(params, results), func, access_caller=True)
