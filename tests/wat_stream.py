"""WAT sources of streaming plug-ins (``wasmd::send``, ``wasmd::recv``), each export doing
one thing on purpose."""

# count(n): sends 0..n-1 as msgpack uint32 (0xce and four bytes, big-endian); returns how
# many sends answered 0 (a plain call: none). ones(n): n one-byte chunks (the value 1).
# spin(): sends 0, then loops forever (cancel while running). echo(): sends back each
# pushed value until the end; returns how many. sizes(cap): recv into cap bytes (the
# answer is returned), then into 4096 and sends that value. bad(): sends 0xc1, never
# msgpack. two(): sends two values in one send. huge(): sends 1 MiB + 1 bytes. big(n):
# n chunks of 256 KiB each.
# recv_out(): recv at an address outside memory.
STREAMER = """(module
  (import "wasmd" "send" (func $send (param i32 i32) (result i32)))
  (import "wasmd" "recv" (func $recv (param i32 i32) (result i32)))
  (memory (export "memory") 17)
  (func (export "count") (param $n i32) (result i32)
    (local $i i32) (local $sent i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (i32.const 0) (i32.const 0xce))
      (i32.store8 (i32.const 1) (i32.shr_u (local.get $i) (i32.const 24)))
      (i32.store8 (i32.const 2) (i32.shr_u (local.get $i) (i32.const 16)))
      (i32.store8 (i32.const 3) (i32.shr_u (local.get $i) (i32.const 8)))
      (i32.store8 (i32.const 4) (local.get $i))
      (if (i32.eqz (call $send (i32.const 0) (i32.const 5)))
        (then (local.set $sent (i32.add (local.get $sent) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sent))
  (func (export "ones") (param $n i32) (result i32)
    (local $i i32)
    (i32.store8 (i32.const 16) (i32.const 1))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (drop (call $send (i32.const 16) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n))
  (func (export "spin")
    (i32.store8 (i32.const 0) (i32.const 0))
    (drop (call $send (i32.const 0) (i32.const 1)))
    (loop $l (br $l)))
  (func (export "echo") (result i32)
    (local $len i32) (local $count i32)
    (block $done (loop $next
      (local.set $len (call $recv (i32.const 1024) (i32.const 4096)))
      (br_if $done (i32.lt_s (local.get $len) (i32.const 0)))
      (drop (call $send (i32.const 1024) (local.get $len)))
      (local.set $count (i32.add (local.get $count) (i32.const 1)))
      (br $next)))
    (local.get $count))
  (func (export "sizes") (param $cap i32) (result i32)
    (local $first i32) (local $len i32)
    (local.set $first (call $recv (i32.const 1024) (local.get $cap)))
    (local.set $len (call $recv (i32.const 1024) (i32.const 4096)))
    (if (i32.gt_s (local.get $len) (i32.const 0))
      (then (drop (call $send (i32.const 1024) (local.get $len)))))
    (local.get $first))
  (func (export "bad") (result i32)
    (i32.store8 (i32.const 0) (i32.const 0xc1))
    (call $send (i32.const 0) (i32.const 1)))
  (func (export "two") (result i32)
    (i32.store8 (i32.const 0) (i32.const 1))
    (i32.store8 (i32.const 1) (i32.const 2))
    (call $send (i32.const 0) (i32.const 2)))
  (func (export "huge") (result i32)
    (call $send (i32.const 0) (i32.const 1048577)))
  (func (export "big") (param $n i32) (result i32)
    ;; n chunks of bin32 with 256 KiB of zeros each (0xc6, then the length big-endian)
    (local $i i32)
    (i32.store8 (i32.const 65531) (i32.const 0xc6))
    (i32.store (i32.const 65532) (i32.const 0x00000400))  ;; 00 04 00 00: 262,144
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (drop (call $send (i32.const 65531) (i32.const 262149)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n))
  (func (export "recv_out") (result i32)
    (call $recv (i32.const 1114000) (i32.const 4096)))
)"""

# An Extism plug-in that streams: `split` sends each byte of its input as a chunk (msgpack
# bin, 0xc4 0x01 BYTE, made in its own memory), through the user host function `send` of
# extism:host/user (wasmd's own, by name and type); its output, the whole input, is the
# stream's result.
EXTISM_STREAMER = """(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "send" (func $send (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "split") (result i32)
    (local $n i64) (local $i i64) (local $out i64) (local $byte i32)
    (local.set $n (call $input_length))
    (local.set $out (call $alloc (local.get $n)))
    (i32.store8 (i32.const 0) (i32.const 0xc4))
    (i32.store8 (i32.const 1) (i32.const 1))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $byte (call $input_load_u8 (local.get $i)))
      (i32.store8 (i32.const 2) (local.get $byte))
      (drop (call $send (i32.const 0) (i32.const 3)))
      (call $store_u8 (i64.add (local.get $out) (local.get $i)) (local.get $byte))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $output_set (local.get $out) (local.get $n))
    (i32.const 0))
)"""
