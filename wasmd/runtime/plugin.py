"""Compiling one plug-in version: bytes -> validated module -> a ready-to-instantiate template.

A ``CompiledPlugin`` is immutable and shared by every instance of one version: the module,
its detected ABI, its export signatures, and an ``InstancePre`` (imports already resolved),
so that making a fresh instance after a trap, or for each call in per-call mode, costs only
the instantiation itself. Compiling is slow and runs off the event loop.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

from ..credentials import CredentialError
from ..errors import PluginLoadDeferred, PluginLoadError
from ..manifest import Manifest
from ..statestore import Namespace, StateError
from .abis import ABIS, Abi, Method, detect_abi
from .abis import component as component_abi
from .abis.component import LinkedComponent
from .engine import Engines
from .files import PluginFiles
from .host import EventSink, HostContext, Imports, PluginCalls
from .kv import uses_state
from .linker import WASI_MODULES, is_provided
from .signatures import ExportSignature, ImportInfo, function_exports, module_imports
from .stream_imports import stream_imports_used
from .traps import cause_of
from .wasi import Grant, resolve_preopens

WASM_MAGIC = b"\0asm"


@dataclass(frozen=True, eq=False)
class CompiledPlugin:
    name: str
    files: PluginFiles
    manifest: Manifest
    wasm: bytes = field(repr=False)
    module: wasmtime.Module | None = field(repr=False)  # None for a component
    engine: wasmtime.Engine = field(repr=False)
    # What ``abi.link`` made: the imports resolved once, or (Extism) a kernel module each
    # instance links against.
    template: wasmtime.InstancePre | None = field(repr=False)
    kernel: wasmtime.Module | None = field(repr=False)
    abi: Abi
    exports: Mapping[str, ExportSignature]
    imports: tuple[ImportInfo, ...]
    calls: Mapping[str, Method]  # what requests may call, by method name after the dot
    uses_wasi: bool
    grants: tuple[Grant, ...]  # preopened directories, resolved
    host: HostContext  # holds ``on_event`` too, for wasmd.emit
    on_event: EventSink  # where the pool reports traps, timeouts and cancellations
    version: str  # see version_of
    component: LinkedComponent | None = field(default=None, repr=False)  # abis/component.py
    # Whether it imports the state imports (kv.py); then every call is a transaction on
    # ``state``, its namespace (None: no store, the imports answer KV_UNAVAILABLE).
    uses_state: bool = False
    state: Namespace | None = field(default=None, repr=False)
    # describe()'s answers, by with_values: a version never changes, and a flood of
    # wasmd.describe must not rebuild thousands of export maps holding the GIL each time.
    _described: dict[bool, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def short_version(self) -> str:
        return self.version[:12]

    def trapping_imports(self) -> list[ImportInfo]:
        """Function imports nothing provides: linked as traps that fire if called."""
        if self.component is not None:
            return [i for i in self.imports if not component_abi.is_provided(i)]
        given = self.host.host_functions
        return [
            i
            for i in self.imports
            if i.kind == "func"
            and not is_provided(i)
            and not (given is not None and given.provides(i.module, i.name))
        ]

    def describe(self, *, with_values: bool = True) -> dict[str, Any]:
        """Everything about this version; ``with_values=False`` hides what may be secret
        (configuration values, environment values, args), for callers it does not admit.
        Built once per version and kind; callers get their own top-level copy."""
        described = self._described.get(with_values)
        if described is None:
            described = self._described[with_values] = self._describe(with_values)
        return dict(described)

    def _describe(self, with_values: bool) -> dict[str, Any]:
        streams = stream_imports_used(self.imports)
        return {
            "name": self.name,
            "version": self.short_version,
            "path": str(self.files.module_path),
            "manifest_path": str(self.files.manifest_path) if self.files.manifest_path else None,
            "abi": self.abi.name,
            "size": len(self.wasm),
            "exports": [
                {
                    **sig.to_dict(),
                    "callable": name in self.calls,
                    # The module may send or recv in any export: each callable one may stream.
                    "streams": bool(streams) and name in self.calls,
                }
                for name, sig in self.exports.items()
            ],
            "streams": streams,  # which of wasmd's send and recv it imports
            "methods": sorted(self.calls),
            "signatures": {
                name: self.calls[name].call_signature(name) for name in sorted(self.calls)
            },
            "imports": [imp.to_dict() for imp in self.imports],
            "trapping_imports": [
                f"{i.module}::{i.name}" if i.name else i.module for i in self.trapping_imports()
            ],
            "capabilities": {
                "args": self.manifest.to_dict(with_values=with_values)["wasi"]["args"],
                "env": sorted(key for key, _ in self.manifest.wasi_env),
                "preopens": [
                    {"host": str(g.host), "guest": g.guest, "writable": g.writable}
                    for g in self.grants
                ],
            },
            "manifest": self.manifest.to_dict(with_values=with_values),
            "limits": {
                "timeout_ms": self.manifest.timeout_ms,
                "memory_max": self.manifest.memory_max,
                "instances": self.manifest.instances,
                # An ABI that keeps no instance (command) gets a fresh one per call, whatever
                # the manifest says.
                "mode": self.manifest.mode if self.abi.keeps_instance else "per-call",
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
    A ``.wasm`` without it is refused here: wasmtime would otherwise parse it as WAT text and
    quote its first line in the error (see ``wat_error``).
    """
    if data.startswith(WASM_MAGIC) or not data:
        return data
    if path.suffix != ".wat":
        raise PluginLoadError(
            name, f"invalid module: {path} is not a WebAssembly binary (no \\0asm header)"
        )
    try:
        return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
    except UnicodeDecodeError as exc:
        raise PluginLoadError(name, f"{path} is not UTF-8 text (byte {exc.start})") from None
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"{path}: invalid WAT{wat_error(exc)}") from None


_WAT_POSITION = re.compile(r"--> [^\n]*:(\d+):(\d+)")
_QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"")


def wat_error(exc: BaseException) -> str:
    """The position and kind of a WAT syntax error, without the file's text.

    wasmtime's message quotes the offending source line under a caret, and names tokens of the
    file in quotes; a file that is not WAT at all (a hard link to ``/etc/shadow``) would then
    leak into ``wasmd.list`` and the ``plugin.failed`` event. Only the line and column, and
    the first line with every quoted span blanked (except the parentheses the parser wanted),
    are kept.
    """
    text = str(exc)
    kind = _QUOTED.sub(_keep_parenthesis, text.splitlines()[0] if text else "").strip()
    position = _WAT_POSITION.search(text)
    where = f" at line {position[1]}, column {position[2]}" if position else ""
    return f"{where}: {kind}" if kind else where


def _keep_parenthesis(match: re.Match[str]) -> str:
    return match[0] if match[0] in ("`(`", "`)`") else "\u2026"


def compile_plugin(
    files: PluginFiles,
    manifest: Manifest,
    engines: Engines,
    wasm: bytes,
    manifest_text: str | None = None,
    *,
    on_event: EventSink,
    allow_absolute_preopens: bool = False,
    plugins: PluginCalls | None = None,
    host_functions: Imports | None = None,
) -> CompiledPlugin:
    """Compile, check and link one version (blocking). Raises ``PluginLoadError``.

    ``on_event`` receives what happens to it later: wasmd.emit's custom events, and the
    pool's reports of traps, timeouts and cancellations. ``plugins``: what its ``wasmd.call``
    reaches (``nested.plugin_calls``; None: nothing); ``host_functions`` are an embedder's own
    (embedder.py), which a module may import besides wasmd's."""
    name = files.name
    if not wasm:
        raise PluginLoadError(name, f"{files.module_path} is empty")
    try:
        manifest = manifest.with_credentials()  # secrets are read at each load, not kept
    except CredentialError as exc:
        raise PluginLoadError(name, str(exc)) from None
    engine = engines.for_manifest(manifest.fuel)
    if component_abi.is_component(wasm):
        return compile_component(
            files,
            manifest,
            engines,
            engine,
            wasm,
            manifest_text,
            on_event=on_event,
            allow_absolute_preopens=allow_absolute_preopens,
        )
    try:
        module = engines.compile(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"invalid module: {cause_of(exc)}") from None

    exports = function_exports(module)
    abi = detect_abi(module, exports) if manifest.abi == "auto" else ABIS[manifest.abi]
    problems = abi.problems(module, exports)
    if problems:
        raise PluginLoadError(name, f"not a {abi.name}-ABI module: {'; '.join(problems)}")

    missing = [e for e in manifest.exports if e not in exports]
    if missing:
        raise PluginLoadError(
            name, f"manifest plugin.exports names {', '.join(missing)}, not exported by the module"
        )
    calls = abi.methods(exports, set(manifest.exports) if manifest.exports else None)
    grants = resolve_preopens(files, manifest, allow_absolute=allow_absolute_preopens)

    imports = module_imports(module)
    uses_wasi = any(i.module in WASI_MODULES for i in imports)
    host = HostContext(name, manifest.config_dict(), on_event, plugins, host_functions)
    try:
        template, kernel = abi.link(engines, engine, module, host, uses_wasi)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"cannot link: {cause_of(exc)}") from None
    stateful = uses_state(imports)

    return CompiledPlugin(
        name=name,
        files=files,
        manifest=manifest,
        wasm=wasm,
        module=module,
        engine=engine,
        template=template,
        kernel=kernel,
        abi=abi,
        exports=exports,
        imports=imports,
        calls=calls,
        uses_wasi=uses_wasi,
        grants=grants,
        host=host,
        on_event=on_event,
        version=version_of(wasm, manifest_text),
        uses_state=stateful,
        state=open_state(engines, name, manifest) if stateful else None,
    )


def open_state(engines: Engines, name: str, manifest: Manifest) -> Namespace | None:
    """The namespace of a plug-in that uses state (None: disabled, or no state directory).
    Raises ``PluginLoadError`` when it cannot be opened (locked, corrupt, refused)."""
    if not manifest.state.enabled or engines.states is None:
        return None
    try:
        return engines.states.open(name)
    except StateError as exc:
        raise PluginLoadDeferred(name, exc.message) from None


def compile_component(
    files: PluginFiles,
    manifest: Manifest,
    engines: Engines,
    engine: wasmtime.Engine,
    wasm: bytes,
    manifest_text: str | None,
    *,
    on_event: EventSink,
    allow_absolute_preopens: bool,
) -> CompiledPlugin:
    """``compile_plugin`` for a component (abis/component.py). Raises ``PluginLoadError``."""
    name = files.name
    if manifest.abi not in ("auto", "component"):
        raise PluginLoadError(
            name,
            f'{files.module_path} is a component; abi = "{manifest.abi}" needs a core module '
            '(use abi = "component" or "auto")',
        )
    try:
        component = engines.compile_component(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"invalid component: {cause_of(exc)}") from None
    found = component_abi.analyse(component, engine)
    exports = {method: m.signature for method, m in found.items()}
    missing = [e for e in manifest.exports if e not in exports]
    if missing:
        raise PluginLoadError(
            name,
            f"manifest plugin.exports names {', '.join(missing)}, not exported by the component"
            f" (its functions: {', '.join(exports) or 'none'})",
        )
    allowed = set(manifest.exports) if manifest.exports else None
    calls: dict[str, Method] = {
        method: m
        for method, m in found.items()
        if m.signature.callable and (allowed is None or method in allowed)
    }
    grants = resolve_preopens(files, manifest, allow_absolute=allow_absolute_preopens)
    imports = component_abi.component_imports(component, engine)
    uses_wasi = component_abi.uses_wasi(imports)
    host = HostContext(name, manifest.config_dict(), on_event)
    stateful = component_abi.uses_state(imports)  # wasi:keyvalue (component_kv.py)
    state = open_state(engines, name, manifest) if stateful else None
    try:
        linker = component_abi.link_component(
            engine, component, host, uses_wasi, has_store=state is not None
        )
    except wasmtime.WasmtimeError as exc:
        raise PluginLoadError(name, f"cannot link: {cause_of(exc)}") from None
    return CompiledPlugin(
        name=name,
        files=files,
        manifest=manifest,
        wasm=wasm,
        module=None,
        engine=engine,
        template=None,
        kernel=None,
        abi=ABIS["component"],
        exports=exports,
        imports=imports,
        calls=calls,
        uses_wasi=uses_wasi,
        grants=grants,
        host=host,
        on_event=on_event,
        version=version_of(wasm, manifest_text),
        component=LinkedComponent(component, linker, found),
        uses_state=stateful,
        state=state,
    )
