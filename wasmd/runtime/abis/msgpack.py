"""The msgpack ABI: params and result cross guest memory as MessagePack.

The guest exports ``memory``, ``wasmd_alloc(len: i32) -> i32`` and methods of type
``(ptr: i32, len: i32) -> i64``. A call writes the msgpack encoding of the params array into
memory that ``wasmd_alloc`` returned, calls the method, and reads the result at the packed
``ptr << 32 | len`` it returns (0: nil). Pointers outside memory, or bytes that are not one
msgpack value, are a ``GuestFault``; the guest's own error comes through ``wasmd.error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgpack
import wasmtime

from ...errors import ErrorCode, WasmdError
from ..signatures import ExportSignature
from ..traps import GuestFault
from .base import PLUMBING, Method, instantiate_template, link_template, raise_host_outcome

if TYPE_CHECKING:
    from ..instance import Instance

name: Final = "msgpack"
keeps_instance: Final = True
link = link_template
instantiate = instantiate_template

SIGNATURE = (("i32", "i32"), ("i64",))
# What one result may be: its bytes, and its arrays and maps (each a Python object the
# reader thread builds while holding the GIL).
MAX_RESULT_BYTES = 4 * 1024 * 1024
MAX_RESULT_CONTAINERS = 65_536


def describe() -> str:
    return "params array in, any msgpack value out"


def detect(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> bool:
    return "wasmd_alloc" in functions


def problems(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> list[str]:
    found = []
    alloc = functions.get("wasmd_alloc")
    if alloc is None or (alloc.params, alloc.results) != (("i32",), ("i32",)):
        found.append("it must export wasmd_alloc(len: i32) -> i32")
    if not any(
        e.name == "memory" and isinstance(e.type, wasmtime.MemoryType) for e in module.exports
    ):
        found.append("it must export its memory as 'memory'")
    return found


def methods(exports: Mapping[str, ExportSignature], allowed: set[str] | None) -> dict[str, Method]:
    return {
        export: MsgpackMethod(sig)
        for export, sig in exports.items()
        if (sig.params, sig.results) == SIGNATURE
        and export not in PLUMBING
        and (allowed is None or export in allowed)
    }


@dataclass(frozen=True, slots=True)
class MsgpackMethod:
    """An export ``(ptr, len) -> i64`` that takes the msgpack encoding of the params array."""

    signature: ExportSignature

    def call_signature(self, method: str) -> str:
        return f"{method}(any...) -> any"

    def convert(self, params: Sequence[Any]) -> bytes:
        return bytes(msgpack.packb(list(params), use_bin_type=True))


def call(instance: Instance, export: str, payload: bytes) -> Any:
    store, memory, alloc = instance.store, instance.memory, instance.alloc
    assert memory is not None  # problems() checked both when compiling
    assert alloc is not None
    ptr = alloc(len(payload)) & 0xFFFFFFFF
    if ptr + len(payload) > memory.data_len(store):
        raise GuestFault(f"wasmd_alloc({len(payload)}) returned {ptr}, outside memory")
    if payload:
        memory.write(store, payload, ptr)
    instance.bytes_in += len(payload)
    packed = instance.callers[export](ptr, len(payload)) & 0xFFFFFFFFFFFFFFFF
    raise_host_outcome()
    if packed == 0:
        return None
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    if out_len > MAX_RESULT_BYTES:
        raise WasmdError(
            ErrorCode.RESOURCE_EXHAUSTED,
            f"{export} returned {out_len} bytes, over the limit of {MAX_RESULT_BYTES}",
        )
    instance.bytes_out += out_len
    if out_ptr + out_len > memory.data_len(store):
        raise GuestFault(f"{export} returned bytes {out_ptr}..{out_ptr + out_len}, outside memory")
    return _decode_result(export, bytes(memory.read(store, out_ptr, out_ptr + out_len)))


def _decode_result(export: str, raw: bytes) -> Any:
    """Decode with bounds: each array or map costs the host ~60 bytes and the GIL, however
    little it takes on the wire (16 MB of empty arrays decoded to 1.2 GiB in 8 s)."""
    containers = 0

    def count(container: Any) -> Any:
        nonlocal containers
        containers += 1
        if containers > MAX_RESULT_CONTAINERS:
            raise _TooManyContainers
        return container

    try:
        return msgpack.unpackb(raw, strict_map_key=False, list_hook=count, object_hook=count)
    except _TooManyContainers:
        raise WasmdError(
            ErrorCode.RESOURCE_EXHAUSTED,
            f"{export} returned more than {MAX_RESULT_CONTAINERS} arrays and maps",
        ) from None
    except Exception as exc:
        message = f"{export} returned bytes that are not one msgpack value: {exc}"
        raise GuestFault(message) from None


class _TooManyContainers(Exception):
    pass
