"""The component ABI: a WebAssembly component's functions called with typed WIT values.

A component is told from a core module by its header (the layer field, bytes 6-7, is 1), so
it is never "detected" among modules: ``compile_plugin`` asks ``is_component`` first, and a
core module given ``abi = "component"`` is refused by ``problems``. A function exported at the
top level is method ``NAME.FUNC``; one of an exported interface is ``NAME.IFACE.FUNC``, where
IFACE is the interface's short name (``math`` for ``wasmd:example/math@0.1.0``), or its full
name if two exported interfaces share a short name. Params are positional, converted by
wit.py (shapes in docs/abi.md); a function whose result is a ``result`` answers its ok value,
or the error ``[4, message, {"kind": "guest_error", "err": value}]`` with the instance kept.

The instance is linked once per version (``link``): WASI preview 2 if the component imports
any ``wasi:`` interface (its context from the manifest's grants, deny by default, set on the
Store as for modules), wasmd's host interface ``wasmd:host/api`` (component_host.py), and every
other import as a trap. Component calls go through wasmtime-py's own ``Func.__call__``; guest
traps surface there as ``WasmtimeError`` (never ``Trap``), and an epoch deadline without
wasmd's ``EpochGuard`` as "wasm trap: interrupt", which ``call`` reports as a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import wasmtime
from wasmtime import component as wc

from ...errors import ErrorCode, PluginLoadError, WasmdError
from ..component_call import make_component_caller
from ..component_host import (
    HOST_INTERFACE,
    STREAM_INTERFACE,
    define_host_interface,
    define_stream_interface,
)
from ..component_kv import PROVIDED as KEYVALUE
from ..component_kv import define_keyvalue, is_keyvalue
from ..host import HostContext
from ..signatures import ExportSignature, ImportInfo
from ..traps import CallEnded
from ..wit import Codec, Unsupported, codec_for
from .base import Linked, Method, raise_host_outcome

if TYPE_CHECKING:
    from ..engine import Engines
    from ..instance import Instance

name: Final = "component"
keeps_instance: Final = True

_MAGIC = b"\0asm"
_COMPONENT_LAYER = b"\x01\x00"


def is_component(wasm: bytes) -> bool:
    """Whether ``wasm`` is a component binary: the layer field after the version is 1."""
    return wasm[:4] == _MAGIC and wasm[6:8] == _COMPONENT_LAYER


def describe() -> str:
    return "typed WIT params and result; IFACE.FUNC for an interface's functions"


def detect(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> bool:
    return False  # a core module is never a component: is_component tells them apart first


def problems(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> list[str]:
    return ["this is a core module, not a component (make one with `wasm-tools component new`)"]


@dataclass(frozen=True, slots=True)
class WitSignature(ExportSignature):
    """A component function: ``params``/``results`` are WIT types, ``wit`` the whole
    signature as WIT writes it; ``refusal`` says why it cannot be called ("" if it can)."""

    wit: str = ""
    refusal: str = ""

    @property
    def callable(self) -> bool:
        return not self.refusal

    def to_dict(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "params": list(self.params),
            "results": list(self.results),
            "callable": self.callable,
            "wit": self.wit,
        }
        if self.refusal:
            described["refusal"] = self.refusal
        return described


@dataclass(frozen=True, slots=True)
class ComponentMethod:
    """One component function: its export index and the codecs of its params and result."""

    signature: WitSignature
    index: wc.ExportIndex
    params: tuple[tuple[str, Codec], ...]
    result: Codec | None
    returns_result: bool  # the result is a WIT ``result``: err becomes a guest_error

    def convert(self, params: Sequence[Any]) -> list[Any]:
        if len(params) != len(self.params):
            names = ", ".join(f"{n}: {c.wit}" for n, c in self.params) or "none"
            raise WasmdError(
                ErrorCode.INVALID_PARAMS,
                f"{self.signature.name} takes {len(self.params)} param(s) ({names}), "
                f"got {len(params)}",
            )
        return [
            codec.lower(value, f"param {i} {param}")
            for i, ((param, codec), value) in enumerate(zip(self.params, params, strict=True))
        ]

    def call_signature(self, method: str) -> str:
        """``math.add(a: u32, b: u32) -> u32``: the WIT params and result of ``method``."""
        params = ", ".join(f"{name}: {codec.wit}" for name, codec in self.params)
        result = f" -> {self.result.wit}" if self.result is not None else ""
        return f"{method}({params}){result}"

    def answer(self, raw: Any) -> Any:
        """The msgpack result of the call that returned ``raw``; raises the guest's err."""
        if self.result is None:
            return None
        lifted = self.result.lift(raw)
        if not self.returns_result:
            return lifted
        ((case, value),) = lifted.items()
        if case == "ok":
            return value
        message = value if isinstance(value, str) and value else f"{self.signature.name} failed"
        raise WasmdError(ErrorCode.TRAP, message, {"kind": "guest_error", "err": value})


@dataclass(frozen=True, eq=False)
class LinkedComponent:
    """What every instance of one component version is made from."""

    component: wc.Component
    linker: wc.Linker
    methods: Mapping[str, ComponentMethod]  # every function, callable or not, by method name


# Exported interfaces that are a toolchain's plumbing, never a plug-in's methods:
# componentize-py's ``exports`` interface holds ``init``, which component-init runs once at
# build time (its snapshot of the Python heap is the component); calling it again would
# re-initialise a live interpreter.
PLUMBING = frozenset({"exports"})


def _short_name(interface: str) -> str:
    """``wasmd:example/math@0.1.0`` -> ``math``."""
    return interface.rpartition("/")[2].partition("@")[0] or interface


def analyse(component: wc.Component, engine: wasmtime.Engine) -> dict[str, ComponentMethod]:
    """Every exported function, by method name (top-level ``FUNC``, nested ``IFACE.FUNC``)."""
    exported = component.type.exports(engine)
    interfaces = [n for n, e in exported.items() if isinstance(e.ty, wc.ComponentInstanceType)]
    shorts = [_short_name(n) for n in interfaces]
    found: dict[str, ComponentMethod] = {}
    for export, item in exported.items():
        ty = item.ty
        if isinstance(ty, wc.FuncType):
            index = component.get_export_index(export)
            assert index is not None  # it was just listed
            found[export] = _method(export, export, ty, index)
        elif isinstance(ty, wc.ComponentInstanceType) and export not in PLUMBING:
            short = _short_name(export)
            prefix = short if shorts.count(short) == 1 else export
            parent = component.get_export_index(export)
            assert parent is not None
            for func_name, func_item in ty.exports(engine).items():
                func_ty = func_item.ty
                if not isinstance(func_ty, wc.FuncType):
                    continue  # a type or resource the interface exports
                index = component.get_export_index(func_name, parent)
                assert index is not None
                method = f"{prefix}.{func_name}"
                found[method] = _method(method, func_name, func_ty, index)
    return found


def _method(method: str, func_name: str, ty: wc.FuncType, index: wc.ExportIndex) -> ComponentMethod:
    params: list[tuple[str, Codec]] = []
    result: Codec | None = None
    refusal = ""
    where = ""
    try:
        for param, param_ty in ty.params:
            where = f"param {param}"
            params.append((param, codec_for(param_ty)))
        where = "result"
        result_ty = ty.result
        result = None if result_ty is None else codec_for(result_ty)
        shown_params = [f"{n}: {c.wit}" for n, c in params]
        wit = f"{func_name}: func({', '.join(shown_params)})"
        wit += f" -> {result.wit}" if result is not None else ""
    except Unsupported as exc:
        refusal = f"its {where}: {exc}"
        wit = f"{func_name}: func(...)"
    signature = WitSignature(
        method,
        tuple(c.wit for _, c in params),
        (result.wit,) if result is not None else (),
        wit=wit,
        refusal=refusal,
    )
    returns_result = isinstance(ty.result, wc.ResultType) and not refusal
    return ComponentMethod(signature, index, tuple(params), result, returns_result)


def component_imports(component: wc.Component, engine: wasmtime.Engine) -> tuple[ImportInfo, ...]:
    """The component's imports: interfaces (``kind`` "interface") and functions."""
    imports = []
    for import_name, item in component.type.imports(engine).items():
        kind = "func" if isinstance(item.ty, wc.FuncType) else "interface"
        imports.append(ImportInfo(import_name, "", kind))
    return tuple(imports)


def uses_wasi(imports: Sequence[ImportInfo]) -> bool:
    return any(i.module.startswith("wasi:") and not is_keyvalue(i.module) for i in imports)


def uses_state(imports: Sequence[ImportInfo]) -> bool:
    """Whether the component imports ``wasi:keyvalue`` (then it gets durable state)."""
    return any(is_keyvalue(i.module) for i in imports)


def is_provided(item: ImportInfo) -> bool:
    """Whether wasmd provides this import of a component (the rest is stubbed by traps)."""
    return item.module.startswith("wasi:") or item.module.partition("@")[0] in (
        HOST_INTERFACE,
        STREAM_INTERFACE,
    )


def methods(exports: Mapping[str, ExportSignature], allowed: set[str] | None) -> dict[str, Method]:
    raise NotImplementedError("components are compiled by compile_component, not as modules")


def link(
    engines: Engines,
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    host: HostContext,
    uses_wasi: bool,
) -> Linked:
    raise NotImplementedError("components are linked by link_component, not as modules")


def link_component(
    engine: wasmtime.Engine,
    component: wc.Component,
    host: HostContext,
    wasi: bool,
    has_store: bool = False,
) -> wc.Linker:
    """Once per version: WASI preview 2 (if imported), ``wasmd:host/api``, ``wasi:keyvalue``
    (component_kv.py; ``has_store``: the plug-in has durable state), traps for the rest.
    Raises ``wasmtime.WasmtimeError``, or ``PluginLoadError`` for an import it cannot stub."""
    linker = wc.Linker(engine)
    if wasi:
        linker.add_wasip2()
    unknown = {}
    for import_name, item in component.type.imports(engine).items():
        if import_name.partition("@")[0] == HOST_INTERFACE:
            define_host_interface(linker, import_name, host)
        elif import_name.partition("@")[0] == STREAM_INTERFACE:
            define_stream_interface(linker, import_name)
        elif is_keyvalue(import_name):
            if not define_keyvalue(linker, import_name, host, has_store):
                raise PluginLoadError(
                    host.plugin,
                    f"imports {import_name}; wasmd provides {', '.join(sorted(KEYVALUE))}",
                )
        elif not import_name.startswith("wasi:"):
            unknown[import_name] = item.ty
    # Not ``define_unknown_imports_as_traps``: it also replaces the WASI functions that
    # add_wasip2 provides to a component importing an older 0.2.x version.
    with linker.root() as root:
        for import_name, ty in unknown.items():
            _define_traps(root, import_name, ty, engine, host.plugin)
    return linker


def _define_traps(
    root: wc.LinkerInstance, import_name: str, ty: Any, engine: wasmtime.Engine, plugin: str
) -> None:
    """Functions that fail the call that reaches them, for an import nothing provides."""
    if isinstance(ty, wc.FuncType):
        root.add_func(import_name, _trap(import_name))
        return
    if not isinstance(ty, wc.ComponentInstanceType):
        raise PluginLoadError(plugin, f"imports {import_name}, which wasmd does not provide")
    with root.add_instance(import_name) as instance:
        for func_name, func_item in ty.exports(engine).items():
            if not isinstance(func_item.ty, wc.FuncType):
                raise PluginLoadError(
                    plugin,
                    f"imports {import_name}, which wasmd does not provide and cannot stub "
                    f"(it has a resource or type {func_name})",
                )
            instance.add_func(func_name, _trap(f"{import_name}#{func_name}"))


def _trap(import_name: str) -> Any:
    def trap(_store: Any, *_args: Any) -> None:
        # wasmtime-py hands a WasmtimeError raised here back to wasmtime as the call's
        # error; any other exception would go through its process-wide LAST_EXCEPTION.
        raise wasmtime.WasmtimeError(f"the plug-in called {import_name}, which nothing provides")

    return trap


def instantiate(instance: Instance, deadline_at: float) -> wc.Instance:
    """The component instantiated in ``instance.store``, its methods bound in ``callers``."""
    plugin, store = instance.plugin, instance.store
    linked = plugin.component
    assert isinstance(linked, LinkedComponent)  # compile_component made it
    made = linked.linker.instantiate(store, linked.component)
    instance.callers = _Callers(store, made, linked.methods)
    return made


class _Callers(dict[str, Any]):
    """A component instance's callers by method, each made on its first call (as for
    modules: an instantiation pays nothing per function it does not call)."""

    __slots__ = ("made", "methods", "store")

    def __init__(
        self,
        store: wasmtime.Store,
        made: wc.Instance,
        methods: Mapping[str, ComponentMethod],
    ) -> None:
        super().__init__()
        self.store, self.made, self.methods = store, made, methods

    def __missing__(self, method: str) -> Any:
        func = self.made.get_func(self.store, self.methods[method].index)
        assert func is not None  # analyse found it among the exports
        caller = self[method] = make_component_caller(self.store, func)
        return caller


def call(instance: Instance, export: str, args: list[Any]) -> Any:
    try:
        raw = instance.callers[export](*args)
    except wasmtime.WasmtimeError as exc:
        # Without an EpochGuard the deadline traps; wasmtime's component API reports it
        # as a plain WasmtimeError ("wasm trap: interrupt"), not a Trap with its code.
        if instance.guard is None and "wasm trap: interrupt" in str(exc):
            raise CallEnded("timeout") from None
        raise
    raise_host_outcome()
    linked = instance.plugin.component
    assert isinstance(linked, LinkedComponent)
    return linked.methods[export].answer(raw)
