"""The command ABI (a WASI command, CGI-style): every call runs ``_start`` in a fresh instance.

Method ``NAME.run``, params ``[stdin: bin|str, args: array of str (optional)]``. The call
instantiates the module in the bare Instance the pool made for it, with a WASI context of its
own (this request's stdin; argv is the plug-in's name, the manifest's ``[wasi] args``, then
the request's args), runs ``_start``, and returns ``{exit_code, stdout, stderr}``: a non-zero
exit is a result, not an error. Output past ``OUTPUT_LIMIT`` is ``resource_exhausted``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import wasmtime

from ...errors import ErrorCode, WasmdError
from ..instance import OUTPUT_LIMIT
from ..signatures import ExportSignature
from ..wasi import MemFile, make_wasi_config
from .base import Method, instantiate_template, link_template

if TYPE_CHECKING:
    from ..instance import Instance

name: Final = "command"
keeps_instance: Final = False
link = link_template
instantiate = instantiate_template

_USAGE = "run takes [stdin: bin|str, args: array of str (optional)]"


def describe() -> str:
    return "run [stdin, args] -> {exit_code, stdout, stderr}"


def detect(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> bool:
    return set(functions) == {"_start"}


def problems(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> list[str]:
    start = functions.get("_start")
    if start is None or (start.params, start.results) != ((), ()):
        return ["a command must export _start() with no params and no results"]
    return []


def methods(exports: Mapping[str, ExportSignature], allowed: set[str] | None) -> dict[str, Method]:
    return {"run": CommandMethod(exports["_start"])}


@dataclass(frozen=True, slots=True)
class CommandMethod:
    """``NAME.run [stdin: bin|str, args: [str...]]`` for a WASI command."""

    signature: ExportSignature

    def call_signature(self, method: str) -> str:
        return f"{method}(stdin: bin|str, args: [str]) -> {{exit_code, stdout, stderr}}"

    def convert(self, params: Sequence[Any]) -> tuple[bytes, list[str]]:
        if not 1 <= len(params) <= 2:
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"{_USAGE}, got {len(params)} params")
        stdin = params[0]
        if isinstance(stdin, str):
            stdin = stdin.encode()
        elif not isinstance(stdin, bytes):
            kind = type(stdin).__name__
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"{_USAGE}: stdin is a {kind}")
        args = params[1] if len(params) == 2 else []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise WasmdError(ErrorCode.INVALID_PARAMS, f"{_USAGE}: args must be strings")
        return stdin, list(args)


def call(instance: Instance, export: str, args: tuple[bytes, list[str]]) -> dict[str, Any]:
    plugin, store = instance.plugin, instance.store
    stdin_bytes, argv = args
    streams = (
        MemFile("stdin", stdin_bytes),
        MemFile("stdout", capacity=OUTPUT_LIMIT + 1),
        MemFile("stderr", capacity=OUTPUT_LIMIT + 1),
    )
    try:
        store.set_wasi(
            make_wasi_config(
                plugin.manifest,
                plugin.grants,
                argv=[plugin.name, *plugin.manifest.wasi_args, *argv],
                stdin=streams[0],
                stdout=streams[1],
                stderr=streams[2],
            )
        )
        exit_code = 0
        try:
            start = instantiate(instance, 0.0).exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        _, stdout = streams[1].take(OUTPUT_LIMIT)
        _, stderr = streams[2].take(OUTPUT_LIMIT)
        if stdout is None or stderr is None:
            which = "stdout" if stdout is None else "stderr"
            raise WasmdError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{plugin.name} wrote more than {OUTPUT_LIMIT} bytes to {which} "
                "(the writes past it failed)",
            )
        instance.bytes_in += len(stdin_bytes)
        instance.bytes_out += len(stdout) + len(stderr)
        return {"exit_code": exit_code, "stdout": stdout, "stderr": stderr}
    finally:
        for stream in streams:
            stream.close()
