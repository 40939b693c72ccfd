"""``wasmd::send`` through wasmtime's unchecked host-function API: the chunk path's cost.

A host function defined with wasmtime-py's ``Linker.define_func`` goes through its generic
trampoline on every call: a ``Caller`` object, each argument and the result converted
through ``Val`` objects and their types compared, the memory looked up through the public
API. For ``send``, called once per chunk, that was most of a chunk's cost (about 5x what
this raw callback costs, measured on 200,000 calls). Here the callback gets the raw
argument array, reads the guest's bytes straight from its memory, and writes the result in
place; everything after that (validation, the stream) is ``stream_imports.send_chunk``.

Like ``fastcall``, it leans on wasmtime-py's private ``_bindings``, so it is used only
where the fast call path is (``fastcall.ENABLED``); elsewhere ``send`` is defined through
the public API. It never raises into wasmtime: a failure is recorded as the call's fault
exactly as ``host.host_function`` records it, and the guest gets -1.
"""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime

from ..streams import MAX_CHUNK
from . import fastcall
from .host import HOST_DEFINERS, _fault
from .stream_imports import NOT_A_STREAM, send_chunk

if fastcall.SUPPORTED:
    from wasmtime import _bindings

    _MEMORY = b"memory"
    _EXTERN_MEMORY = 3  # WASMTIME_EXTERN_MEMORY
    _NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()


def _guest_bytes(caller: Any, ptr: int, length: int) -> bytes:
    """Guest bytes [ptr, ptr+length) of the calling instance's ``memory``, bounds-checked."""
    item = _bindings.wasmtime_extern_t()
    found = _bindings._wasmtime_caller_export_get(caller, _MEMORY, len(_MEMORY), ctypes.byref(item))
    if not found or int(item.kind) != _EXTERN_MEMORY:
        raise ValueError("the module exports no memory")
    if length > MAX_CHUNK:
        raise ValueError(f"{length} bytes is over the limit of {MAX_CHUNK}")
    context = _bindings._wasmtime_caller_context(caller)
    memory = ctypes.byref(item.of.memory)
    if ptr + length > _bindings._wasmtime_memory_data_size(context, memory):
        raise ValueError(f"bytes {ptr}..{ptr + length} are outside the guest's memory")
    data = _bindings._wasmtime_memory_data(context, memory)
    return ctypes.string_at(ctypes.addressof(data.contents) + ptr, length)


def _send(_env: Any, caller: Any, args: Any, _count: int) -> int:
    try:
        raw = _guest_bytes(caller, args[0].i32 & 0xFFFFFFFF, args[1].i32 & 0xFFFFFFFF)
        args[0].i32 = 0 if send_chunk(raw) else NOT_A_STREAM
    except BaseException as exc:  # anything, or it reaches wasmtime
        _fault("wasmd.send", exc)
        args[0].i32 = NOT_A_STREAM
    return 0  # no trap


_CALLBACK = _bindings.wasmtime_func_unchecked_callback_t(_send) if fastcall.SUPPORTED else None


def define_send(
    linker: wasmtime.Linker, module: str, name: str, ty: wasmtime.FuncType, _ctx: Any
) -> bool:
    """Define ``module::name`` as the raw ``send``; False where the public API must do it."""
    if not fastcall.ENABLED or _CALLBACK is None:
        return False
    module_bytes, name_bytes = module.encode(), name.encode()
    error = _bindings._wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        module_bytes,
        len(module_bytes),
        name_bytes,
        len(name_bytes),
        ty.ptr(),
        _CALLBACK,
        None,
        _NO_FINALIZER,
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return True


HOST_DEFINERS["send"] = define_send
