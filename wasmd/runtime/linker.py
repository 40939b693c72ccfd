"""Linking a plug-in's imports: WASI, the ``wasmd`` host imports, an embedder's host functions
(``wasmd.Loader(host_functions=...)``), Extism's kernel and host functions; whatever nobody
provides links as a trap that names it when called."""

from __future__ import annotations

import wasmtime

from . import fast_send, stream_imports  # noqa: F401  (register wasmd::send and wasmd::recv)
from .extism import ENV, KERNEL_EXPORTS, USER
from .extism import HOST_FUNCTIONS as EXTISM_HOST_FUNCTIONS
from .extism import define_host_functions as define_extism_host_functions
from .host import HOST_IMPORTS, HostContext, define_host_imports
from .kv import KV_IMPORTS
from .signatures import ImportInfo

WASI_MODULES = frozenset({"wasi_snapshot_preview1", "wasi_unstable"})


def make_linker(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    host: HostContext,
    uses_wasi: bool,
    extism: tuple[wasmtime.Store, wasmtime.Instance] | None = None,
) -> wasmtime.Linker:
    """A linker for ``module``: WASI, the wasmd imports, and for Extism plug-ins their
    kernel (``extism``: the store and the kernel instance in it) and host functions."""
    linker = wasmtime.Linker(engine)
    if uses_wasi:
        linker.define_wasi()
    define_host_imports(linker, module, host)
    define_host_imports(linker, module, host, KV_IMPORTS)
    if host.host_functions is not None:
        host.host_functions.define(linker, module, host.plugin)
    if extism is not None:
        store, kernel = extism
        define_extism_host_functions(linker)
        for name, item in kernel.exports(store).items():
            if name in KERNEL_EXPORTS:
                linker.define(store, ENV, name, item)
    # Anything nobody provides still links, and traps with a message naming it if called.
    linker.define_unknown_imports_as_traps(module)
    return linker


def is_provided(item: ImportInfo) -> bool:
    """Whether something links ``item`` (else it is a trap, see ``make_linker``)."""
    if item.module in WASI_MODULES:
        return True
    if item.module == ENV:
        return item.name in KERNEL_EXPORTS or item.name in EXTISM_HOST_FUNCTIONS
    known = item.name in HOST_IMPORTS or item.name in KV_IMPORTS
    return item.module in ("wasmd", USER) and known and item.kind == "func"
