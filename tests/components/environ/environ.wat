;; The core module of the environ component: hands WASI's answers back to the caller.
(module
  (import "wasi:cli/environment@0.2.0" "get-arguments" (func $args (param i32)))
  (import "wasi:cli/environment@0.2.0" "get-environment" (func $env (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then unreachable))
    (local.get $p))
  ;; both results are (ptr, len) pairs, written by the host at the return area 16
  (func (export "arguments") (result i32) (call $args (i32.const 16)) (i32.const 16))
  (func (export "environment") (result i32) (call $env (i32.const 16)) (i32.const 16))
)
