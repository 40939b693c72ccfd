(component
  (type $ty-wasmd:host/stream@0.1.0 (;0;)
    (instance
      (type (;0;) (list u8))
      (type (;1;) (result))
      (type (;2;) (func (param "value" 0) (result 1)))
      (export (;0;) "send" (func (type 2)))
      (type (;3;) (option 0))
      (type (;4;) (func (result 3)))
      (export (;1;) "recv" (func (type 4)))
    )
  )
  (import "wasmd:host/stream@0.1.0" (instance $wasmd:host/stream@0.1.0 (;0;) (type $ty-wasmd:host/stream@0.1.0)))
  (core module $main (;0;)
    (type (;0;) (func (param i32 i32) (result i32)))
    (type (;1;) (func (param i32)))
    (type (;2;) (func (param i32 i32 i32 i32) (result i32)))
    (type (;3;) (func (param i32) (result i32)))
    (type (;4;) (func (result i32)))
    (import "wasmd:host/stream@0.1.0" "send" (func $send (;0;) (type 0) (param i32 i32) (result i32)))
    (import "wasmd:host/stream@0.1.0" "recv" (func $recv (;1;) (type 1) (param i32)))
    (memory (;0;) 1)
    (global $heap (;0;) (mut i32) i32.const 1024)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 2))
    (export "count" (func 3))
    (export "echo" (func 4))
    (func (;2;) (type 2) (param i32 i32 i32 i32) (result i32)
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
        i32.const 1024
        global.set $heap
        i32.const 1024
        local.set $p
      end
      local.get $p
    )
    (func (;3;) (type 3) (param $n i32) (result i32)
      (local $i i32) (local $sent i32)
      block $done
        loop $next
          local.get $i
          local.get $n
          i32.ge_u
          br_if $done
          i32.const 0
          i32.const 206
          i32.store8
          i32.const 1
          local.get $i
          i32.const 24
          i32.shr_u
          i32.store8
          i32.const 2
          local.get $i
          i32.const 16
          i32.shr_u
          i32.store8
          i32.const 3
          local.get $i
          i32.const 8
          i32.shr_u
          i32.store8
          i32.const 4
          local.get $i
          i32.store8
          i32.const 0
          i32.const 5
          call $send
          i32.eqz
          if ;; label = @3
            local.get $sent
            i32.const 1
            i32.add
            local.set $sent
          end
          local.get $i
          i32.const 1
          i32.add
          local.set $i
          br $next
        end
      end
      local.get $sent
    )
    (func (;4;) (type 4) (result i32)
      (local $count i32)
      block $done
        loop $next
          i32.const 16
          call $recv
          i32.const 16
          i32.load8_u
          i32.eqz
          br_if $done
          i32.const 20
          i32.load
          i32.const 24
          i32.load
          call $send
          drop
          i32.const 1024
          global.set $heap
          local.get $count
          i32.const 1
          i32.add
          local.set $count
          br $next
        end
      end
      local.get $count
    )
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core module $wit-component-shim-module (;1;)
    (type (;0;) (func (param i32 i32) (result i32)))
    (type (;1;) (func (param i32)))
    (table (;0;) 2 2 funcref)
    (export "0" (func $indirect-wasmd:host/stream@0.1.0-send))
    (export "1" (func $indirect-wasmd:host/stream@0.1.0-recv))
    (export "$imports" (table 0))
    (func $indirect-wasmd:host/stream@0.1.0-send (;0;) (type 0) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.const 0
      call_indirect (type 0)
    )
    (func $indirect-wasmd:host/stream@0.1.0-recv (;1;) (type 1) (param i32)
      local.get 0
      i32.const 1
      call_indirect (type 1)
    )
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core instance $wit-component-shim-instance (;0;) (instantiate $wit-component-shim-module))
  (alias core export $wit-component-shim-instance "0" (core func $indirect-wasmd:host/stream@0.1.0-send (;0;)))
  (alias core export $wit-component-shim-instance "1" (core func $indirect-wasmd:host/stream@0.1.0-recv (;1;)))
  (core instance $wasmd:host/stream@0.1.0 (;1;)
    (export "send" (func $indirect-wasmd:host/stream@0.1.0-send))
    (export "recv" (func $indirect-wasmd:host/stream@0.1.0-recv))
  )
  (core instance $main (;2;) (instantiate $main
      (with "wasmd:host/stream@0.1.0" (instance $wasmd:host/stream@0.1.0))
    )
  )
  (alias core export $main "memory" (core memory $memory (;0;)))
  (core module $wit-component-fixup (;2;)
    (type (;0;) (func (param i32 i32) (result i32)))
    (type (;1;) (func (param i32)))
    (import "actual" "0" (func $0 (;0;) (type 0) (param i32 i32) (result i32)))
    (import "actual" "1" (func $1 (;1;) (type 1) (param i32)))
    (import "shim" "$imports" (table (;0;) 2 2 funcref))
    (elem (;0;) (i32.const 0) func $0 $1)
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (alias export $wasmd:host/stream@0.1.0 "send" (func $send (;0;)))
  (core func $"#core-func2 indirect-wasmd:host/stream@0.1.0-send" (@name "indirect-wasmd:host/stream@0.1.0-send") (;2;) (canon lower (func $send) (memory $memory)))
  (alias export $wasmd:host/stream@0.1.0 "recv" (func $recv (;1;)))
  (alias core export $main "cabi_realloc" (core func $cabi_realloc (;3;)))
  (core func $"#core-func4 indirect-wasmd:host/stream@0.1.0-recv" (@name "indirect-wasmd:host/stream@0.1.0-recv") (;4;) (canon lower (func $recv) (memory $memory) (realloc $cabi_realloc)))
  (core instance $actual (;3;)
    (export "0" (func $"#core-func2 indirect-wasmd:host/stream@0.1.0-send"))
    (export "1" (func $"#core-func4 indirect-wasmd:host/stream@0.1.0-recv"))
  )
  (core instance $fixup (;4;) (instantiate $wit-component-fixup
      (with "actual" (instance $actual))
      (with "shim" (instance $wit-component-shim-instance))
    )
  )
  (type (;1;) (func (param "n" u32) (result u32)))
  (alias core export $main "count" (core func $count (;5;)))
  (func $count (;2;) (type 1) (canon lift (core func $count)))
  (export $"#func3 count" (@name "count") (;3;) "count" (func $count))
  (type (;2;) (func (result u32)))
  (alias core export $main "echo" (core func $echo (;6;)))
  (func $echo (;4;) (type 2) (canon lift (core func $echo)))
  (export $"#func5 echo" (@name "echo") (;5;) "echo" (func $echo))
  (@producers
    (processed-by "wit-component" "0.262.0")
  )
)
