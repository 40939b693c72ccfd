"""What a compiled module declares: its function exports' signatures and its imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import wasmtime

NUMERIC_TYPES = ("i32", "i64", "f32", "f64")


@dataclass(frozen=True, slots=True)
class ExportSignature:
    """An exported function: its wasm types, and whether the core ABI can call it."""

    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]

    @property
    def callable(self) -> bool:
        return all(t in NUMERIC_TYPES for t in (*self.params, *self.results))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": list(self.params),
            "results": list(self.results),
            "callable": self.callable,
        }


@dataclass(frozen=True, slots=True)
class ImportInfo:
    module: str
    name: str
    kind: str  # func | memory | table | global

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "name": self.name, "kind": self.kind}


def _kind(extern_type: object) -> str:
    return {
        "FuncType": "func",
        "MemoryType": "memory",
        "TableType": "table",
        "GlobalType": "global",
    }.get(type(extern_type).__name__, "other")


def function_exports(module: wasmtime.Module) -> dict[str, ExportSignature]:
    exports = {}
    for export in module.exports:
        ty = export.type
        if isinstance(ty, wasmtime.FuncType):
            exports[export.name] = ExportSignature(
                export.name,
                tuple(str(p) for p in ty.params),
                tuple(str(r) for r in ty.results),
            )
    return exports


def module_imports(module: wasmtime.Module) -> tuple[ImportInfo, ...]:
    return tuple(ImportInfo(i.module, i.name or "", _kind(i.type)) for i in module.imports)
