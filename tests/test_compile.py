"""Compiling, ABI detection and parameter conversion: pure functions, so one call path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import wasmtime

from wasmd import ErrorCode, PluginLoadError, WasmdError
from wasmd.manifest import AbiName, Manifest
from wasmd.runtime import Engines, PluginFiles, compile_plugin
from wasmd.runtime.abis import ABIS, detect_abi
from wasmd.runtime.abis.core import CONVERTERS
from wasmd.runtime.signatures import function_exports


@pytest.fixture
def engines() -> Iterator[Engines]:
    with Engines(tick_ms=60_000) as engines:
        yield engines


def test_ticks_cover_the_whole_timeout() -> None:
    engines = Engines(tick_ms=10)
    assert engines.ticks_for(1000) == 101
    assert engines.ticks_for(5) == 2
    assert engines.ticks_for(0.1) == 2


def test_compile_errors_name_the_plugin(engines: Engines, tmp_path: Path) -> None:
    path = tmp_path / "p.wasm"
    path.write_bytes(b"\x00asm\x01\x00\x00\x00\x01")
    files = PluginFiles("p", path, None, tmp_path, folder=False)
    with pytest.raises(PluginLoadError) as caught:
        compile_plugin(files, Manifest(), engines, path.read_bytes(), on_event=lambda *_: None)
    assert caught.value.name == "p"
    assert "invalid module" in caught.value.reason


@pytest.mark.parametrize(
    ("type_name", "value", "converted"),
    [
        ("i32", 2**31, -(2**31)),
        ("i32", 2**32 - 1, -1),
        ("i32", -5, -5),
        ("i64", 2**63, -(2**63)),
        ("f32", 3, 3.0),
        ("f64", float("inf"), float("inf")),
        ("f32", float("-inf"), float("-inf")),
        ("i32", 1.0, 1),  # a float that is an integer exactly (JavaScript's 2**53, say)
        ("i64", float(2**53), 2**53),
        ("i64", float(2**63), -(2**63)),
    ],
)
def test_converters_accept(type_name: str, value: Any, converted: Any) -> None:
    assert CONVERTERS[type_name](value, 0) == converted


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("i32", 2**32),
        ("i32", -(2**31) - 1),
        ("i32", True),
        ("i32", 1.5),
        ("i32", float("nan")),
        ("i64", float(2**64)),
        ("i32", "1"),
        ("i64", None),
        ("f64", "1.0"),
        ("f64", False),
        ("f32", 3.5e38),
        ("i32", [1]),
    ],
)
def test_converters_refuse(type_name: str, value: Any) -> None:
    with pytest.raises(WasmdError) as caught:
        CONVERTERS[type_name](value, 3)
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    assert caught.value.message.startswith(f"param 3 ({type_name})")


def test_every_abi_name_has_its_module() -> None:
    # the detection order; a component is told by its header first
    assert list(ABIS) == ["component", "extism", "msgpack", "command", "core"]
    assert set(ABIS) == set(get_args(AbiName))
    assert all(abi.name == name and abi.describe() for name, abi in ABIS.items())


_COMMAND_START = '(func (export "_start"))'


@pytest.mark.parametrize(
    ("body", "abi"),
    [
        # DESIGN.md section 3's order: extism imports win over wasmd_alloc, which wins over
        # a lone _start; anything else is core.
        (
            '(import "extism:host/env" "output_set" (func (param i64 i64)))'
            '(func (export "wasmd_alloc") (param i32) (result i32) i32.const 0)',
            "extism",
        ),
        (
            '(memory (export "memory") 1)'
            '(func (export "wasmd_alloc") (param i32) (result i32) i32.const 0)' + _COMMAND_START,
            "msgpack",
        ),
        (_COMMAND_START, "command"),
        (_COMMAND_START + '(func (export "add") (param i32 i32) (result i32) i32.const 0)', "core"),
        ("", "core"),
    ],
)
def test_detection_order(engines: Engines, body: str, abi: str) -> None:
    module = wasmtime.Module(engines.default, f"(module {body})")
    assert detect_abi(module, function_exports(module)).name == abi
