"""WAT plug-ins that keep durable state through the ``wasmd.kv_*`` imports (issue 26)."""

from __future__ import annotations

KV_IMPORTS = """
  (import "wasmd" "kv_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "wasmd" "kv_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "wasmd" "kv_delete" (func $delete (param i32 i32) (result i32)))
  (import "wasmd" "kv_next" (func $next (param i32 i32 i32 i32 i32 i32) (result i32)))
"""

# A counter kept under the key "count" (an i64, little-endian, at address 16).
# incr: +1, answered; incr_then_trap: +1, then a trap (rolled back); spin: +1 then a loop
# the deadline ends; fill(n): sets "big" to n bytes, answering kv_set's code; drop: deletes
# "count" (1 or 0); first(prefix length in memory at 64..): see below.
COUNTER = f"""(module
  {KV_IMPORTS}
  (memory (export "memory") 4)
  (data (i32.const 0) "count")
  (data (i32.const 8) "big")
  (func $load (result i64)
    (if (i32.lt_s (call $get (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8))
                  (i32.const 0))
      (then (i64.store (i32.const 16) (i64.const 0))))
    (i64.load (i32.const 16)))
  (func $incr (export "incr") (result i64)
    (local $n i64)
    (local.set $n (i64.add (call $load) (i64.const 1)))
    (i64.store (i32.const 16) (local.get $n))
    (if (call $set (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8))
      (then unreachable))
    (local.get $n))
  (func (export "get") (result i64) (call $load))
  (func (export "get_code") (result i32)
    (call $get (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8)))
  (func (export "incr_then_trap") (result i64) (drop (call $incr)) unreachable)
  (func (export "incr_then_spin") (result i64) (drop (call $incr)) (loop $l (br $l)) (i64.const 0))
  (func (export "fill") (param $n i32) (result i32)
    (call $set (i32.const 8) (i32.const 3) (i32.const 1024) (local.get $n)))
  (func (export "drop") (result i32) (call $delete (i32.const 0) (i32.const 5)))
  (func (export "set_key") (param $k i32) (param $klen i32) (result i32)
    ;; the key is bytes $k.. of a constant alphabet at 32; the value is empty
    (call $set (i32.add (i32.const 32) (local.get $k)) (local.get $klen)
               (i32.const 1024) (i32.const 0)))
  (data (i32.const 32) "abcdefghijklmnopqrstuvwxyz")
  ;; the count of keys that start with the $plen bytes at 32, walked by kv_next
  (func (export "count_prefix") (param $plen i32) (result i32)
    (local $n i32) (local $len i32) (local $after i32)
    (local.set $after (i32.const 0))
    (block $done
      (loop $walk
        (local.set $len (call $next (i32.const 32) (local.get $plen)
                                    (i32.const 2048) (local.get $after)
                                    (i32.const 2048) (i32.const 1024)))
        (br_if $done (i32.lt_s (local.get $len) (i32.const 0)))
        (local.set $after (local.get $len))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $walk)))
    (local.get $n))
)"""

# A plug-in whose outer call takes its state, then calls itself through wasmd.call: the
# inner call answers kv_set's code (stored at 64 by the inner call's set_code, read back
# from the answer would need msgpack: the inner call's code is kept in a global instead,
# which each instance has its own of, so the inner answer is decoded from the reply).
SELF_CALLER = f"""(module
  {KV_IMPORTS}
  (import "wasmd" "call" (func $call (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "wasmd_alloc") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (data (i32.const 0) "selfish.inner")
  (data (i32.const 16) "\\90")
  (data (i32.const 32) "k")
  (func (export "inner") (result i32)
    (call $set (i32.const 32) (i32.const 1) (i32.const 32) (i32.const 1)))
  (func (export "outer") (result i32)
    (local $answer i64) (local $p i32)
    (drop (call $set (i32.const 32) (i32.const 1) (i32.const 32) (i32.const 1)))
    (local.set $answer (call $call (i32.const 0) (i32.const 13) (i32.const 16) (i32.const 1)))
    ;; the answer is [nil, -6]: 0x92 0xc0 0xfa (negative fixint -6)
    (local.set $p (i32.wrap_i64 (i64.shr_u (local.get $answer) (i64.const 32))))
    (i32.load8_s (i32.add (local.get $p) (i32.const 2))))
)"""

# A plug-in without state, beside the stateful ones.
PLAIN = '(module (func (export "answer") (result i32) (i32.const 42)))'
