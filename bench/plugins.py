"""The plug-ins the scenarios load, generated as WAT text (and a few binaries)."""

from __future__ import annotations

import os
from pathlib import Path

import wasmtime

ADD = """(module
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add))
"""

# The same addition as a WebAssembly component (WIT: add: func(a: u32, b: u32) -> u32).
COMPONENT_ADD = """(component
  (core module $m
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
  (core instance $i (instantiate $m))
  (func $add (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
  (export "add" (func $add)))
"""

# A guest loop of `n` rounds of integer work (about 1 ns each): CPU-bound, no memory traffic.
BUSY = """(module
  (func (export "busy") (param $n i64) (result i64)
    (local $acc i64)
    (local.set $acc (i64.const 1))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005))
                                 (i64.const 1442695040888963407)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (local.get $acc)))
"""

# Runs until the epoch deadline interrupts it.
SPIN = """(module
  (func (export "spin") (loop $forever (br $forever))))
"""

# Only the result tells versions apart: a reload is observable by the value it returns.
WHICH = """(module
  (func (export "which") (result i32) (i32.const {version})))
"""

# Extism's kernel ABI (module "extism:host/env", as the Extism runtime 1.x provides it): read
# two input bytes, output one byte holding their sum, return 0 (success).
EXTISM_ADD = """(module
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "add") (result i32)
    (local $out i64)
    (local.set $out (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $out)
      (i32.add (call $input_load_u8 (i64.const 0)) (call $input_load_u8 (i64.const 1))))
    (call $output_set (local.get $out) (i64.const 1))
    (i32.const 0)))
"""


def small(index: int) -> str:
    """A small plug-in, different for every index (so no two share a compiled module)."""
    return f"""(module
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32)
    local.get 0 local.get 1 i32.add)
  (func (export "id") (result i32) (i32.const {index})))
"""


def large(index: int, functions: int) -> bytes:
    """A binary module of ``functions`` functions, each a few dozen arithmetic instructions
    that call the previous one: enough code that Cranelift needs a noticeable time for it.
    Only the last is exported, as a real module exports a few entry points, not its code."""
    body = " ".join(
        f"(local.set $x (i64.add (i64.mul (local.get $x) (i64.const {k * 2 + 1})) "
        f"(i64.xor (local.get $x) (i64.const {index * 7919 + k}))))"
        for k in range(12)
    )
    parts = ["(module"]
    for f in range(functions):
        call = f"(local.set $x (call $f{f - 1} (local.get $x)))" if f else ""
        export = '(export "run")' if f == functions - 1 else ""
        parts.append(
            f"(func $f{f} {export} (param $x i64) (result i64) {call} "
            f"(if (i64.gt_u (local.get $x) (i64.const {f})) (then {body})) (local.get $x))"
        )
    parts.append(")")
    return bytes(wasmtime.wat2wasm("\n".join(parts)))


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a temporary file beside ``path`` and rename it over ``path``, as tools should."""
    raw = data.encode() if isinstance(data, str) else data
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(raw)
    os.replace(temp, path)


def wat2wasm(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


# Scenario 9: ones(n) sends n one-byte chunks (the value 1) to a wasmd.stream call, then
# returns n; quick() is the plain call the chunk rate is compared with.
STREAMER = """(module
  (import "wasmd" "send" (func $send (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "ones") (param $n i32) (result i32)
    (local $i i32)
    (i32.store8 (i32.const 16) (i32.const 1))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (drop (call $send (i32.const 16) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n))
  (func (export "quick") (result i32) (i32.const 7))
)"""
