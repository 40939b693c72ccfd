"""The Extism ABI: modules built with an Extism PDK run unchanged (the host side, kernel and
host functions, is ``wasmd.runtime.extism``).

Each instance links the plug-in against its own kernel instance in the same Store, so there
is no template. A call (``NAME.EXPORT [input: bin|str]``) resets the kernel, writes the input
into it, runs the export (``() -> i32``) and returns the output bytes; a non-zero return or
``error_set`` is a guest error, a refused ``http_request`` is ``permission_denied``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import wasmtime

from ...errors import ErrorCode, WasmdError
from ..extism import ENV, ExtismState, extism_state, kernel_block
from ..fastcall import make_caller
from ..host import HostContext, call_state
from ..linker import make_linker
from ..signatures import ExportSignature
from ..traps import GuestFault
from .base import PLUMBING, Linked, Method, raise_host_outcome

if TYPE_CHECKING:
    from ..engine import Engines
    from ..instance import Instance

name: Final = "extism"
keeps_instance: Final = True

# The kernel's exports a call drives, with their signatures.
_KERNEL_CALLS = (
    ("wasmd_begin", ("i64",), ("i64",)),
    ("wasmd_output_offset", (), ("i64",)),
    ("wasmd_output_length", (), ("i64",)),
    ("wasmd_error", (), ("i64",)),
)


def describe() -> str:
    return "[input: bin|str] in, output bytes out"


def detect(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> bool:
    return any(i.module == ENV for i in module.imports)


def problems(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> list[str]:
    return []


def methods(exports: Mapping[str, ExportSignature], allowed: set[str] | None) -> dict[str, Method]:
    return {
        export: ExtismMethod(sig)
        for export, sig in exports.items()
        if (sig.params, sig.results) == ((), ("i32",))
        and export not in PLUMBING
        and (allowed is None or export in allowed)
    }


@dataclass(frozen=True, slots=True)
class ExtismMethod:
    """An Extism plug-in function ``() -> i32``: ``[input: bin|str]`` in, output bytes out."""

    signature: ExportSignature

    def call_signature(self, method: str) -> str:
        return f"{method}(input: bin|str) -> bin"

    def convert(self, params: Sequence[Any]) -> bytes:
        if not params:
            return b""
        if len(params) == 1 and isinstance(params[0], str):
            return params[0].encode()
        if len(params) == 1 and isinstance(params[0], bytes):
            return params[0]
        raise WasmdError(
            ErrorCode.INVALID_PARAMS,
            f"{self.signature.name} takes [input: bin|str], got {len(params)} params",
        )


def link(
    engines: Engines,
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    host: HostContext,
    uses_wasi: bool,
) -> Linked:
    return None, engines.extism_kernel(engine)


def instantiate(instance: Instance, deadline_at: float) -> wasmtime.Instance:
    """The kernel first, in the instance's Store, then the plug-in linked against it."""
    plugin, store = instance.plugin, instance.store
    assert plugin.kernel is not None  # link made it
    kernel = wasmtime.Instance(store, plugin.kernel, [])
    k = kernel.exports(store)
    memory, alloc, length = k["memory"], k["alloc"], k["length"]
    assert isinstance(memory, wasmtime.Memory)
    assert isinstance(alloc, wasmtime.Func)
    assert isinstance(length, wasmtime.Func)
    state = ExtismState(plugin.host, plugin.manifest.extism_allowed_hosts, memory, alloc, length)
    state.deadline = deadline_at  # start code may make requests
    instance.extism = state
    for export, params, results in _KERNEL_CALLS:
        func = k[export]
        assert isinstance(func, wasmtime.Func)
        instance.kernel_calls[export] = make_caller(store, func, params, results)
    extism_state.state = state  # start code may already use the host functions
    module = plugin.module
    assert module is not None  # an Extism plug-in is a core module
    linker = make_linker(plugin.engine, module, plugin.host, plugin.uses_wasi, (store, kernel))
    return linker.instantiate(store, module)


def call(instance: Instance, export: str, payload: bytes) -> bytes:
    state, store, calls = instance.extism, instance.store, instance.kernel_calls
    assert state is not None
    assert state.memory is not None
    extism_state.state = state
    offs = int(calls["wasmd_begin"](len(payload)))
    if offs == 0:
        raise WasmdError(
            ErrorCode.RESOURCE_EXHAUSTED,
            f"no room for a {len(payload)}-byte input in Extism memory",
        )
    if payload:
        state.memory.write(store, payload, offs)
    instance.bytes_in += len(payload)
    state.permission_denied = state.past_deadline = None
    status = instance.callers[export]()
    if state.permission_denied is not None:
        message, state.permission_denied = state.permission_denied, None
        call_state.fault = None
        raise WasmdError(ErrorCode.PERMISSION_DENIED, message)
    if state.past_deadline is not None:
        raise WasmdError(
            ErrorCode.TIMEOUT,
            f"call exceeded its deadline of {instance.plugin.manifest.timeout_ms} ms "
            f"({state.past_deadline})",
        )
    raise_host_outcome()
    error = int(calls["wasmd_error"]())
    if error or status != 0:
        message = kernel_block(state, store, error).decode("utf-8", "replace")
        raise WasmdError(
            ErrorCode.TRAP,
            message or f"{export} returned {status}",
            {"kind": "guest_error", "status": status},
        )
    out, size = int(calls["wasmd_output_offset"]()), int(calls["wasmd_output_length"]())
    instance.bytes_out += size
    if out + size > state.memory.data_len(store):
        raise GuestFault(f"{export} set output outside Extism memory")
    return bytes(state.memory.read(store, out, out + size)) if size else b""
