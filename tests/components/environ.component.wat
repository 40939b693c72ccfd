(component
  (type $ty-wasi:cli/environment@0.2.0 (;0;)
    (instance
      (type (;0;) (tuple string string))
      (type (;1;) (list 0))
      (type (;2;) (func (result 1)))
      (export (;0;) "get-environment" (func (type 2)))
      (type (;3;) (list string))
      (type (;4;) (func (result 3)))
      (export (;1;) "get-arguments" (func (type 4)))
    )
  )
  (import "wasi:cli/environment@0.2.0" (instance $wasi:cli/environment@0.2.0 (;0;) (type $ty-wasi:cli/environment@0.2.0)))
  (core module $main (;0;)
    (type (;0;) (func (param i32)))
    (type (;1;) (func (param i32 i32 i32 i32) (result i32)))
    (type (;2;) (func (result i32)))
    (import "wasi:cli/environment@0.2.0" "get-arguments" (func $args (;0;) (type 0) (param i32)))
    (import "wasi:cli/environment@0.2.0" "get-environment" (func $env (;1;) (type 0) (param i32)))
    (memory (;0;) 1)
    (global $heap (;0;) (mut i32) i32.const 1024)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 2))
    (export "arguments" (func 3))
    (export "environment" (func 4))
    (func (;2;) (type 1) (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      global.get $heap
      local.get 2
      i32.const 1
      i32.sub
      i32.add
      i32.const 0
      local.get 2
      i32.sub
      i32.and
      local.set $p
      local.get $p
      local.get 3
      i32.add
      global.set $heap
      global.get $heap
      memory.size
      i32.const 65536
      i32.mul
      i32.gt_u
      if ;; label = @1
        unreachable
      end
      local.get $p
    )
    (func (;3;) (type 2) (result i32)
      i32.const 16
      call $args
      i32.const 16
    )
    (func (;4;) (type 2) (result i32)
      i32.const 16
      call $env
      i32.const 16
    )
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core module $wit-component-shim-module (;1;)
    (type (;0;) (func (param i32)))
    (table (;0;) 2 2 funcref)
    (export "0" (func $indirect-wasi:cli/environment@0.2.0-get-arguments))
    (export "1" (func $indirect-wasi:cli/environment@0.2.0-get-environment))
    (export "$imports" (table 0))
    (func $indirect-wasi:cli/environment@0.2.0-get-arguments (;0;) (type 0) (param i32)
      local.get 0
      i32.const 0
      call_indirect (type 0)
    )
    (func $indirect-wasi:cli/environment@0.2.0-get-environment (;1;) (type 0) (param i32)
      local.get 0
      i32.const 1
      call_indirect (type 0)
    )
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core instance $wit-component-shim-instance (;0;) (instantiate $wit-component-shim-module))
  (alias core export $wit-component-shim-instance "0" (core func $indirect-wasi:cli/environment@0.2.0-get-arguments (;0;)))
  (alias core export $wit-component-shim-instance "1" (core func $indirect-wasi:cli/environment@0.2.0-get-environment (;1;)))
  (core instance $wasi:cli/environment@0.2.0 (;1;)
    (export "get-arguments" (func $indirect-wasi:cli/environment@0.2.0-get-arguments))
    (export "get-environment" (func $indirect-wasi:cli/environment@0.2.0-get-environment))
  )
  (core instance $main (;2;) (instantiate $main
      (with "wasi:cli/environment@0.2.0" (instance $wasi:cli/environment@0.2.0))
    )
  )
  (alias core export $main "memory" (core memory $memory (;0;)))
  (core module $wit-component-fixup (;2;)
    (type (;0;) (func (param i32)))
    (import "actual" "0" (func $0 (;0;) (type 0) (param i32)))
    (import "actual" "1" (func $1 (;1;) (type 0) (param i32)))
    (import "shim" "$imports" (table (;0;) 2 2 funcref))
    (elem (;0;) (i32.const 0) func $0 $1)
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (alias export $wasi:cli/environment@0.2.0 "get-arguments" (func $get-arguments (;0;)))
  (alias core export $main "cabi_realloc" (core func $cabi_realloc (;2;)))
  (core func $"#core-func3 indirect-wasi:cli/environment@0.2.0-get-arguments" (@name "indirect-wasi:cli/environment@0.2.0-get-arguments") (;3;) (canon lower (func $get-arguments) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasi:cli/environment@0.2.0 "get-environment" (func $get-environment (;1;)))
  (core func $"#core-func4 indirect-wasi:cli/environment@0.2.0-get-environment" (@name "indirect-wasi:cli/environment@0.2.0-get-environment") (;4;) (canon lower (func $get-environment) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (core instance $actual (;3;)
    (export "0" (func $"#core-func3 indirect-wasi:cli/environment@0.2.0-get-arguments"))
    (export "1" (func $"#core-func4 indirect-wasi:cli/environment@0.2.0-get-environment"))
  )
  (core instance $fixup (;4;) (instantiate $wit-component-fixup
      (with "actual" (instance $actual))
      (with "shim" (instance $wit-component-shim-instance))
    )
  )
  (type (;1;) (list string))
  (type (;2;) (func (result 1)))
  (alias core export $main "arguments" (core func $arguments (;5;)))
  (func $arguments (;2;) (type 2) (canon lift (core func $arguments) (memory $memory) string-encoding=utf8))
  (export $"#func3 arguments" (@name "arguments") (;3;) "arguments" (func $arguments))
  (type (;3;) (tuple string string))
  (type (;4;) (list 3))
  (type (;5;) (func (result 4)))
  (alias core export $main "environment" (core func $environment (;6;)))
  (func $environment (;4;) (type 5) (canon lift (core func $environment) (memory $memory) string-encoding=utf8))
  (export $"#func5 environment" (@name "environment") (;5;) "environment" (func $environment))
  (@producers
    (processed-by "wit-component" "0.262.0")
  )
)
