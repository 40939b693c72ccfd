"""wasmd's host functions for components: the WIT interface ``wasmd:host/api`` (sdk/wit/).

The same functions as the core ABI's ``wasmd`` imports (host.py), in WIT's types: ``log``
takes a ``level`` enum and a string, ``emit`` a msgpack map as ``list<u8>``, ``config-get``
answers ``option<string>``, ``caller`` a ``peer`` record (uid, gid, pid; -1 each without a
socket peer, as the core imports ``caller_uid``... answer). A component reports an error by
returning a WIT ``result``, so there is no ``error`` function. Each is wrapped by
``host_function``: nothing it raises reaches wasmtime-py, and a misuse (an event that is not a
msgpack map) fails the call as an ``abi_violation``, as it does for modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wasmtime import component as wc

from ..streams import MAX_CHUNK
from .host import MAX_TEXT, HostContext, caller_peer, emit_event, host_function, log_line
from .stream_imports import STREAM_INTERFACE, receive_value, send_chunk

HOST_INTERFACE = "wasmd:host/api"
__all__ = ["HOST_INTERFACE", "STREAM_INTERFACE", "define_host_interface", "define_stream_interface"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def define_host_interface(linker: wc.Linker, imported_as: str, ctx: HostContext) -> None:
    """Define ``wasmd:host/api`` under the name (and version) the component imports it by."""
    with linker.root() as root, root.add_instance(imported_as) as api:
        for func_name, make in _FUNCTIONS.items():
            api.add_func(func_name, make(ctx))


def _log(ctx: HostContext) -> Callable[..., None]:
    @host_function("wasmd:host/api.log")
    def log(_store: Any, level: str, message: str) -> None:
        if len(message) > MAX_TEXT:
            message = f"{message[:MAX_TEXT]}... ({len(message)} characters, cut to {MAX_TEXT})"
        log_line(ctx, _LEVELS.get(level, logging.INFO), message)

    return log


def _emit(ctx: HostContext) -> Callable[..., None]:
    @host_function("wasmd:host/api.emit")
    def emit(_store: Any, event: bytes) -> None:
        emit_event(ctx, bytes(event))

    return emit


def _config_get(ctx: HostContext) -> Callable[..., str | None]:
    @host_function("wasmd:host/api.config-get")
    def config_get(_store: Any, key: str) -> str | None:
        return ctx.config.get(key)

    return config_get


def _caller(ctx: HostContext) -> Callable[..., wc.Record]:
    @host_function("wasmd:host/api.caller")
    def caller(_store: Any) -> wc.Record:
        peer = caller_peer()
        ids = (-1, -1, -1) if peer is None else (peer.uid, peer.gid, peer.pid)
        record = wc.Record()  # wasmtime reads a record's fields as attributes, by name
        record.__dict__.update(zip(("uid", "gid", "pid"), ids, strict=True))
        return record

    return caller


def define_stream_interface(linker: wc.Linker, imported_as: str) -> None:
    """Define ``wasmd:host/stream`` (send and recv, stream_imports.py) under the name (and
    version) the component imports it by."""
    with linker.root() as root, root.add_instance(imported_as) as stream:
        stream.add_func("send", _stream_send)
        stream.add_func("recv", _stream_recv)


@host_function("wasmd:host/stream.send", fallback=wc.Variant("err"))
def _stream_send(_store: Any, value: bytes) -> wc.Variant:
    return wc.Variant("ok" if send_chunk(bytes(value)) else "err")


@host_function("wasmd:host/stream.recv")
def _stream_recv(_store: Any) -> bytes | None:
    value = receive_value(MAX_CHUNK)  # a pushed value is never larger
    return value if isinstance(value, bytes) else None


_FUNCTIONS: dict[str, Callable[[HostContext], Callable[..., Any]]] = {
    "log": _log,
    "emit": _emit,
    "config-get": _config_get,
    "caller": _caller,
}
