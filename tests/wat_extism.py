"""Extism-style plug-ins in WAT: they import extism:host/env exactly as Extism's PDKs do."""

import json
from typing import Any


def extism_guest(url: str = "http://example.com/", **request_fields: Any) -> str:
    """The guest below, fetching ``url`` in its ``fetch`` export: a GET unless
    ``request_fields`` say otherwise (``method=None`` sends ``"method": null``, as PDKs do)."""
    request = json.dumps({"url": url, "method": "GET", **request_fields})
    escaped = request.replace('"', '\\"')
    return EXTISM_GUEST.replace("REQUEST_JSON", escaped).replace(
        "REQUEST_LENGTH", str(len(request.encode()))
    )


EXTISM_GUEST = r"""(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "http_request" (func $http (param i64 i64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "greeting")
  (data (i32.const 16) "calls")
  (data (i32.const 32) "vowels counted")
  (data (i32.const 64) "something went wrong on purpose")
  (data (i32.const 128) "REQUEST_JSON")

  ;; Copy plug-in memory [ptr, ptr+len) into a new block of Extism memory.
  (func $to_kernel (param $ptr i32) (param $len i32) (result i64)
    (local $offs i64) (local $i i32)
    (local.set $offs (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done (loop $copy
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $offs) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $copy)))
    (local.get $offs))

  ;; The input, copied into a new block: byte by byte, as PDKs load it.
  (func $input (result i64)
    (local $n i64) (local $offs i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $offs (call $alloc (local.get $n)))
    (block $done (loop $copy
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $offs) (local.get $i))
                      (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $copy)))
    (local.get $offs))

  ;; A u64 as decimal digits in a new block.
  (func $decimal (param $v i64) (result i64)
    (local $digits i32) (local $t i64) (local $offs i64) (local $i i32)
    (local.set $t (local.get $v))
    (loop $count
      (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
      (local.set $t (i64.div_u (local.get $t) (i64.const 10)))
      (br_if $count (i64.ne (local.get $t) (i64.const 0))))
    (local.set $offs (call $alloc (i64.extend_i32_u (local.get $digits))))
    (local.set $i (local.get $digits))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (call $store_u8 (i64.add (local.get $offs) (i64.extend_i32_u (local.get $i)))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $write (i32.gt_u (local.get $i) (i32.const 0))))
    (local.get $offs))

  (func $output (param $offs i64)
    (call $output_set (local.get $offs) (call $length (local.get $offs))))

  (func (export "echo") (result i32)
    (call $output (call $input)) (i32.const 0))

  (func (export "count_vowels") (result i32)
    (local $n i64) (local $i i64) (local $c i32) (local $count i64)
    (local.set $n (call $input_length))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $c (i32.or (call $input_load_u8 (local.get $i)) (i32.const 32)))
      (if (i32.or
            (i32.or (i32.eq (local.get $c) (i32.const 97)) (i32.eq (local.get $c) (i32.const 101)))
            (i32.or
              (i32.or (i32.eq (local.get $c) (i32.const 105))
                      (i32.eq (local.get $c) (i32.const 111)))
              (i32.eq (local.get $c) (i32.const 117))))
        (then (local.set $count (i64.add (local.get $count) (i64.const 1)))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $log_info (call $to_kernel (i32.const 32) (i32.const 14)))
    (call $output (call $decimal (local.get $count)))
    (i32.const 0))

  (func (export "greeting") (result i32)
    (local $value i64)
    (local.set $value (call $config_get (call $to_kernel (i32.const 0) (i32.const 8))))
    (if (i64.eqz (local.get $value)) (then (return (i32.const 0))))
    (call $output (local.get $value))
    (i32.const 0))

  ;; A counter kept in a var: it survives between calls of one instance.
  (func (export "count_calls") (result i32)
    (local $key i64) (local $old i64) (local $n i64) (local $new i64)
    (local.set $key (call $to_kernel (i32.const 16) (i32.const 5)))
    (local.set $old (call $var_get (local.get $key)))
    (if (i64.ne (local.get $old) (i64.const 0))
      (then (local.set $n (call $load_u64 (local.get $old)))))
    (local.set $n (i64.add (local.get $n) (i64.const 1)))
    (local.set $new (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $new) (local.get $n))
    (call $var_set (local.get $key) (local.get $new))
    (call $output (call $decimal (local.get $n)))
    (i32.const 0))

  (func (export "fail") (result i32)
    (call $error_set (call $to_kernel (i32.const 64) (i32.const 31)))
    (i32.const 1))

  (func (export "fail_quietly") (result i32) (i32.const 3))

  (func (export "spin") (result i32) (loop $forever (br $forever)) (i32.const 0))

  (func (export "fetch") (result i32)
    (call $output (call $http (call $to_kernel (i32.const 128) (i32.const REQUEST_LENGTH))
                              (i64.const 0)))
    (i32.const 0))

  (func (export "not_an_extism_function") (param i32) (result i32) (local.get 0))
)"""


# An Extism plug-in with a host function of its own, from extism:host/user: "log" agrees
# with wasmd's host import (name and type) and is linked to it; "mystery" traps if called.
EXTISM_USER_IMPORTS = r"""(module
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "log" (func $log (param i32 i32 i32)))
  (import "extism:host/user" "mystery" (func $mystery (param i64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello from a user host function")
  (func (export "say") (result i32)
    (call $log (i32.const 1) (i32.const 0) (i32.const 31))
    (i32.const 0))
  (func (export "ask") (result i32)
    (drop (call $mystery (i64.const 1)))
    (i32.const 0))
)"""
