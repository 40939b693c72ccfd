"""Compiling one plug-in version: bytes -> validated module -> a ready-to-instantiate template.

A ``CompiledPlugin`` is immutable and shared by every instance of one version: the module,
its detected ABI, its export signatures, and an ``InstancePre`` (imports already resolved),
so that making a fresh instance after a trap, or for each call in per-call mode, costs only
the instantiation itself. Compiling is slow and runs off the event loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

from ..discovery import PluginSource
from ..errors import PluginLoadError
from ..manifest import Manifest
from .abi import CoreCall, ExportSignature, ImportInfo, detect_abi, function_exports, module_imports
from .engine import Engines
from .traps import cause_of

WASI_MODULES = frozenset({"wasi_snapshot_preview1", "wasi_unstable"})
SUPPORTED_ABIS = frozenset({"core"})
WASM_MAGIC = b"\0asm"


@dataclass(frozen=True, eq=False)
class CompiledPlugin:
    name: str
    source: PluginSource
    manifest: Manifest
    wasm: bytes = field(repr=False)
    module: wasmtime.Module = field(repr=False)
    engine: wasmtime.Engine = field(repr=False)
    template: wasmtime.InstancePre = field(repr=False)
    abi: str
    exports: Mapping[str, ExportSignature]
    imports: tuple[ImportInfo, ...]
    calls: Mapping[str, CoreCall]  # what requests may call: callable and allowed by the manifest
    uses_wasi: bool
    version: str  # see version_of

    @property
    def short_version(self) -> str:
        return self.version[:12]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.short_version,
            "path": str(self.source.module_path),
            "manifest_path": str(self.source.manifest_path) if self.source.manifest_path else None,
            "abi": self.abi,
            "size": len(self.wasm),
            "exports": [
                {**sig.to_dict(), "callable": name in self.calls}
                for name, sig in self.exports.items()
            ],
            "imports": [imp.to_dict() for imp in self.imports],
            "manifest": self.manifest.to_dict(),
            "limits": {
                "timeout_ms": self.manifest.timeout_ms,
                "memory_max": self.manifest.memory_max,
                "instances": self.manifest.instances,
                "mode": self.manifest.mode,
                "queue": self.manifest.queue,
                "fuel": self.manifest.fuel,
            },
        }


def version_of(wasm: bytes, manifest_text: str | None) -> str:
    """What a version is: the module's binary and its manifest's text (a manifest edit alone
    is a new version too), as a sha256 hex digest."""
    digest = hashlib.sha256(wasm)
    digest.update(b"\0" + (manifest_text or "").encode())
    return digest.hexdigest()


def read_module_bytes(path: Path, name: str) -> bytes:
    """The module's binary: a ``.wat`` file is assembled, a ``.wasm`` read as it is."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PluginLoadError(name, f"cannot read {path}: {exc.strerror or exc}") from None
    return module_binary(path, data, name)


def module_binary(path: Path, data: bytes, name: str) -> bytes:
    """``data`` as read from ``path``, as a binary module (WAT text is assembled).

    The binary magic decides over the suffix: a binary saved as ``.wat`` is still a binary.
    """
    if path.suffix != ".wat" or data.startswith(WASM_MAGIC):
        return data
    try:
        return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
    except UnicodeDecodeError:
        raise PluginLoadError(name, f"{path} is not UTF-8 text") from None
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"{path}: invalid WAT: {cause_of(exc)}") from None


def compile_plugin(
    source: PluginSource,
    manifest: Manifest,
    engines: Engines,
    wasm: bytes,
    manifest_text: str | None = None,
) -> CompiledPlugin:
    name = source.name
    if not wasm:
        raise PluginLoadError(name, f"{source.module_path} is empty")
    engine = engines.for_manifest(manifest.fuel)
    try:
        module = engines.compile(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"invalid module: {cause_of(exc)}") from None

    detected = detect_abi(module)
    abi = detected if manifest.abi == "auto" else manifest.abi
    if abi not in SUPPORTED_ABIS:
        raise PluginLoadError(name, f"the {abi} ABI is not supported by this wasmd yet")

    exports = function_exports(module)
    missing = [e for e in manifest.exports if e not in exports]
    if missing:
        raise PluginLoadError(
            name, f"manifest plugin.exports names {', '.join(missing)}, not exported by the module"
        )
    allowed = set(manifest.exports) if manifest.exports else set(exports)
    calls = {
        export: CoreCall.for_export(sig)
        for export, sig in exports.items()
        if export in allowed and sig.callable
    }

    imports = module_imports(module)
    uses_wasi = any(i.module in WASI_MODULES for i in imports)
    try:
        linker = wasmtime.Linker(engine)
        if uses_wasi:
            linker.define_wasi()
        # Anything nobody provides still links, and traps with a message naming it if called.
        linker.define_unknown_imports_as_traps(module)
        template = linker.instantiate_pre(module)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"cannot link: {cause_of(exc)}") from None

    return CompiledPlugin(
        name=name,
        source=source,
        manifest=manifest,
        wasm=wasm,
        module=module,
        engine=engine,
        template=template,
        abi=abi,
        exports=exports,
        imports=imports,
        calls=calls,
        uses_wasi=uses_wasi,
        version=version_of(wasm, manifest_text),
    )
