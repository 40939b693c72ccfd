"""WAT sources the tests load: each small, each doing one thing on purpose."""

ARITH = """(module
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add64") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "echo32") (param i32) (result i32) (local.get 0))
  (func (export "echo64") (param i64) (result i64) (local.get 0))
  (func (export "echof32") (param f32) (result f32) (local.get 0))
  (func (export "scale") (param f64 f64) (result f64) (f64.mul (local.get 0) (local.get 1)))
  (func (export "pair") (param i32) (result i32 i64)
    (local.get 0) (i64.extend_i32_s (i32.mul (local.get 0) (i32.const 2))))
  (func (export "nothing"))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "takes_ref") (param externref))
  (memory (export "memory") 1)
)"""

COUNTER = """(module
  (global $n (mut i64) (i64.const 0))
  (func (export "incr") (result i64)
    (global.set $n (i64.add (global.get $n) (i64.const 1))) (global.get $n))
  (func (export "fail") unreachable)
)"""

SPIN = """(module
  (func (export "spin") (loop $l (br $l)))
  (func (export "quick") (result i32) (i32.const 7))
)"""

MEMORY = """(module
  (memory (export "memory") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "pages") (result i32) (memory.size))
  (func (export "poke") (param i32) (result i32)
    (i32.store (local.get 0) (i32.const 42)) (i32.load (local.get 0)))
)"""

BIG_MEMORY = """(module
  (memory (export "memory") 100)
  (func (export "f") (result i32) (i32.const 1))
)"""

UNKNOWN_IMPORT = """(module
  (import "env" "exotic" (func $exotic (param i32) (result i32)))
  (func (export "uses") (result i32) (call $exotic (i32.const 1)))
  (func (export "fine") (result i32) (i32.const 1))
)"""

WASI_USER = """(module
  (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "rand") (result i32) (call $rand (i32.const 0) (i32.const 8)))
)"""

RECURSE = """(module
  (func $r (export "recurse") (param i32) (result i32)
    (i32.add (call $r (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
)"""

START_TRAPS = """(module (func $boom unreachable) (start $boom) (func (export "f")))"""

START_SPINS = """(module (func $s (loop $l (br $l))) (start $s) (func (export "f")))"""

# A bounded loop: work(n) counts to n (about 3 ms per million here), for calls that take a
# while without running into their deadline.
WORK = """(module
  (func (export "work") (param $n i64) (result i64)
    (local $i i64)
    (block $done (loop $step
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $step)))
    (local.get $i)))"""

# Start code that says so in the log, then spins until its start deadline.
START_LOGS_THEN_SPINS = """(module
  (import "wasmd" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "start code spins")
  (func $spin (call $log (i32.const 2) (i32.const 0) (i32.const 16)) (loop $l (br $l)))
  (start $spin)
  (func (export "f")))"""
