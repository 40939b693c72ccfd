(component
  (type $ty-wasmd:host/api@0.1.0 (;0;)
    (instance
      (type (;0;) (enum "debug" "info" "warn" "error"))
      (export (;1;) "level" (type (eq 0)))
      (type (;2;) (func (param "level" 1) (param "message" string)))
      (export (;0;) "log" (func (type 2)))
      (type (;3;) (list u8))
      (type (;4;) (func (param "event" 3)))
      (export (;1;) "emit" (func (type 4)))
      (type (;5;) (option string))
      (type (;6;) (func (param "key" string) (result 5)))
      (export (;2;) "config-get" (func (type 6)))
    )
  )
  (import "wasmd:host/api@0.1.0" (instance $wasmd:host/api@0.1.0 (;0;) (type $ty-wasmd:host/api@0.1.0)))
  (type $ty-wasmd:kitchen/elsewhere@0.1.0 (;1;)
    (instance
      (type (;0;) (func (result u32)))
      (export (;0;) "ping" (func (type 0)))
    )
  )
  (import "wasmd:kitchen/elsewhere@0.1.0" (instance $wasmd:kitchen/elsewhere@0.1.0 (;1;) (type $ty-wasmd:kitchen/elsewhere@0.1.0)))
  (type (;2;) (record (field "x" s32) (field "y" s32)))
  (import "point" (type $point (;3;) (eq 2)))
  (type (;4;) (variant (case "circle" f32) (case "square" u32) (case "empty")))
  (import "shape" (type $shape (;5;) (eq 4)))
  (type (;6;) (enum "red" "green" "blue"))
  (import "color" (type $color (;7;) (eq 6)))
  (type (;8;) (flags "read" "write" "exec"))
  (import "perms" (type $perms (;9;) (eq 8)))
  (core module $main (;0;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (type (;2;) (func (param i32) (result i32)))
    (type (;3;) (func (result i32)))
    (type (;4;) (func (param i32 i32 i32 i32) (result i32)))
    (type (;5;) (func (param i32 i32) (result i32)))
    (type (;6;) (func (param i64) (result i64)))
    (type (;7;) (func (param f32) (result f32)))
    (type (;8;) (func (param f64) (result f64)))
    (type (;9;) (func (param i32 i32 i32) (result i32)))
    (type (;10;) (func))
    (import "wasmd:host/api@0.1.0" "log" (func $log (;0;) (type 0) (param i32 i32 i32)))
    (import "wasmd:host/api@0.1.0" "emit" (func $emit (;1;) (type 1) (param i32 i32)))
    (import "wasmd:host/api@0.1.0" "config-get" (func $config_get (;2;) (type 0) (param i32 i32 i32)))
    (import "[export]wasmd:kitchen/things@0.1.0" "[resource-new]blob" (func $blob_new (;3;) (type 2) (param i32) (result i32)))
    (import "wasmd:kitchen/elsewhere@0.1.0" "ping" (func $ping (;4;) (type 3) (result i32)))
    (memory (;0;) 1)
    (global $heap (;0;) (mut i32) i32.const 4096)
    (global $count (;1;) (mut i32) i32.const 0)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 5))
    (export "wasmd:kitchen/math@0.1.0#add" (func 7))
    (export "wasmd:kitchen/things@0.1.0#make" (func 8))
    (export "wasmd:kitchen/things@0.1.0#size" (func 9))
    (export "echo-bool" (func 10))
    (export "echo-u8" (func 11))
    (export "echo-s8" (func 12))
    (export "echo-u16" (func 13))
    (export "echo-s16" (func 14))
    (export "echo-u32" (func 15))
    (export "echo-s32" (func 16))
    (export "echo-u64" (func 17))
    (export "echo-s64" (func 18))
    (export "echo-f32" (func 19))
    (export "echo-f64" (func 20))
    (export "echo-char" (func 21))
    (export "echo-string" (func 22))
    (export "echo-bytes" (func 23))
    (export "echo-list" (func 24))
    (export "echo-point" (func 25))
    (export "echo-shape" (func 26))
    (export "echo-maybe" (func 27))
    (export "echo-pair" (func 28))
    (export "echo-color" (func 29))
    (export "echo-perms" (func 30))
    (export "divide" (func 31))
    (export "count" (func 32))
    (export "spin" (func 33))
    (export "crash" (func 34))
    (export "grow" (func 35))
    (export "say" (func 36))
    (export "setting" (func 37))
    (export "call-elsewhere" (func 38))
    (export "announce" (func 39))
    (func (;5;) (type 4) (param i32 i32 i32 i32) (result i32)
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
    (func $pair (;6;) (type 5) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;7;) (type 5) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.add
    )
    (func (;8;) (type 3) (result i32)
      i32.const 7
      call $blob_new
    )
    (func (;9;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;10;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;11;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;12;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;13;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;14;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;15;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;16;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;17;) (type 6) (param i64) (result i64)
      local.get 0
    )
    (func (;18;) (type 6) (param i64) (result i64)
      local.get 0
    )
    (func (;19;) (type 7) (param f32) (result f32)
      local.get 0
    )
    (func (;20;) (type 8) (param f64) (result f64)
      local.get 0
    )
    (func (;21;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;22;) (type 5) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;23;) (type 5) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;24;) (type 5) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;25;) (type 5) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;26;) (type 5) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store8
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;27;) (type 5) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store8
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;28;) (type 9) (param i32 i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store
      i32.const 20
      local.get 1
      i32.store
      i32.const 24
      local.get 2
      i32.store
      i32.const 16
    )
    (func (;29;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;30;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;31;) (type 5) (param i32 i32) (result i32)
      local.get 1
      i32.eqz
      if ;; label = @1
        i32.const 16
        i32.const 1
        i32.store8
        i32.const 20
        i32.const 512
        i32.store
        i32.const 24
        i32.const 16
        i32.store
      else
        i32.const 16
        i32.const 0
        i32.store8
        i32.const 20
        local.get 0
        local.get 1
        i32.div_u
        i32.store
      end
      i32.const 16
    )
    (func (;32;) (type 3) (result i32)
      global.get $count
      i32.const 1
      i32.add
      global.set $count
      global.get $count
    )
    (func (;33;) (type 10)
      loop $l
        br $l
      end
    )
    (func (;34;) (type 10)
      unreachable
    )
    (func (;35;) (type 2) (param i32) (result i32)
      local.get 0
      memory.grow
    )
    (func (;36;) (type 1) (param i32 i32)
      i32.const 1
      local.get 0
      local.get 1
      call $log
    )
    (func (;37;) (type 5) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.const 32
      call $config_get
      i32.const 32
    )
    (func (;38;) (type 3) (result i32)
      call $ping
    )
    (func (;39;) (type 1) (param i32 i32)
      local.get 0
      local.get 1
      call $emit
    )
    (data (;0;) (i32.const 512) "division by zero")
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core module $wit-component-shim-module (;1;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (table (;0;) 3 3 funcref)
    (export "0" (func $indirect-wasmd:host/api@0.1.0-log))
    (export "1" (func $indirect-wasmd:host/api@0.1.0-emit))
    (export "2" (func $indirect-wasmd:host/api@0.1.0-config-get))
    (export "$imports" (table 0))
    (func $indirect-wasmd:host/api@0.1.0-log (;0;) (type 0) (param i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      i32.const 0
      call_indirect (type 0)
    )
    (func $indirect-wasmd:host/api@0.1.0-emit (;1;) (type 1) (param i32 i32)
      local.get 0
      local.get 1
      i32.const 1
      call_indirect (type 1)
    )
    (func $indirect-wasmd:host/api@0.1.0-config-get (;2;) (type 0) (param i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      i32.const 2
      call_indirect (type 0)
    )
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core instance $wit-component-shim-instance (;0;) (instantiate $wit-component-shim-module))
  (type $blob (;10;) (resource (rep i32)))
  (alias core export $wit-component-shim-instance "0" (core func $indirect-wasmd:host/api@0.1.0-log (;0;)))
  (alias core export $wit-component-shim-instance "1" (core func $indirect-wasmd:host/api@0.1.0-emit (;1;)))
  (alias core export $wit-component-shim-instance "2" (core func $indirect-wasmd:host/api@0.1.0-config-get (;2;)))
  (core instance $wasmd:host/api@0.1.0 (;1;)
    (export "log" (func $indirect-wasmd:host/api@0.1.0-log))
    (export "emit" (func $indirect-wasmd:host/api@0.1.0-emit))
    (export "config-get" (func $indirect-wasmd:host/api@0.1.0-config-get))
  )
  (core func $resource.new (;3;) (canon resource.new $blob))
  (core instance $"[export]wasmd:kitchen/things@0.1.0" (;2;)
    (export "[resource-new]blob" (func $resource.new))
  )
  (alias export $wasmd:kitchen/elsewhere@0.1.0 "ping" (func $ping (;0;)))
  (core func $ping (;4;) (canon lower (func $ping)))
  (core instance $wasmd:kitchen/elsewhere@0.1.0 (;3;)
    (export "ping" (func $ping))
  )
  (core instance $main (;4;) (instantiate $main
      (with "wasmd:host/api@0.1.0" (instance $wasmd:host/api@0.1.0))
      (with "[export]wasmd:kitchen/things@0.1.0" (instance $"[export]wasmd:kitchen/things@0.1.0"))
      (with "wasmd:kitchen/elsewhere@0.1.0" (instance $wasmd:kitchen/elsewhere@0.1.0))
    )
  )
  (alias core export $main "memory" (core memory $memory (;0;)))
  (core module $wit-component-fixup (;2;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (import "actual" "0" (func $0 (;0;) (type 0) (param i32 i32 i32)))
    (import "actual" "1" (func $1 (;1;) (type 1) (param i32 i32)))
    (import "actual" "2" (func $2 (;2;) (type 0) (param i32 i32 i32)))
    (import "shim" "$imports" (table (;0;) 3 3 funcref))
    (elem (;0;) (i32.const 0) func $0 $1 $2)
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (alias export $wasmd:host/api@0.1.0 "log" (func $log (;1;)))
  (core func $"#core-func5 indirect-wasmd:host/api@0.1.0-log" (@name "indirect-wasmd:host/api@0.1.0-log") (;5;) (canon lower (func $log) (memory $memory) string-encoding=utf8))
  (alias export $wasmd:host/api@0.1.0 "emit" (func $emit (;2;)))
  (core func $"#core-func6 indirect-wasmd:host/api@0.1.0-emit" (@name "indirect-wasmd:host/api@0.1.0-emit") (;6;) (canon lower (func $emit) (memory $memory)))
  (alias export $wasmd:host/api@0.1.0 "config-get" (func $config-get (;3;)))
  (alias core export $main "cabi_realloc" (core func $cabi_realloc (;7;)))
  (core func $"#core-func8 indirect-wasmd:host/api@0.1.0-config-get" (@name "indirect-wasmd:host/api@0.1.0-config-get") (;8;) (canon lower (func $config-get) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (core instance $actual (;5;)
    (export "0" (func $"#core-func5 indirect-wasmd:host/api@0.1.0-log"))
    (export "1" (func $"#core-func6 indirect-wasmd:host/api@0.1.0-emit"))
    (export "2" (func $"#core-func8 indirect-wasmd:host/api@0.1.0-config-get"))
  )
  (core instance $fixup (;6;) (instantiate $wit-component-fixup
      (with "actual" (instance $actual))
      (with "shim" (instance $wit-component-shim-instance))
    )
  )
  (type (;11;) (func (param "v" bool) (result bool)))
  (alias core export $main "echo-bool" (core func $echo-bool (;9;)))
  (func $echo-bool (;4;) (type 11) (canon lift (core func $echo-bool)))
  (export $"#func5 echo-bool" (@name "echo-bool") (;5;) "echo-bool" (func $echo-bool))
  (type (;12;) (func (param "v" u8) (result u8)))
  (alias core export $main "echo-u8" (core func $echo-u8 (;10;)))
  (func $echo-u8 (;6;) (type 12) (canon lift (core func $echo-u8)))
  (export $"#func7 echo-u8" (@name "echo-u8") (;7;) "echo-u8" (func $echo-u8))
  (type (;13;) (func (param "v" s8) (result s8)))
  (alias core export $main "echo-s8" (core func $echo-s8 (;11;)))
  (func $echo-s8 (;8;) (type 13) (canon lift (core func $echo-s8)))
  (export $"#func9 echo-s8" (@name "echo-s8") (;9;) "echo-s8" (func $echo-s8))
  (type (;14;) (func (param "v" u16) (result u16)))
  (alias core export $main "echo-u16" (core func $echo-u16 (;12;)))
  (func $echo-u16 (;10;) (type 14) (canon lift (core func $echo-u16)))
  (export $"#func11 echo-u16" (@name "echo-u16") (;11;) "echo-u16" (func $echo-u16))
  (type (;15;) (func (param "v" s16) (result s16)))
  (alias core export $main "echo-s16" (core func $echo-s16 (;13;)))
  (func $echo-s16 (;12;) (type 15) (canon lift (core func $echo-s16)))
  (export $"#func13 echo-s16" (@name "echo-s16") (;13;) "echo-s16" (func $echo-s16))
  (type (;16;) (func (param "v" u32) (result u32)))
  (alias core export $main "echo-u32" (core func $echo-u32 (;14;)))
  (func $echo-u32 (;14;) (type 16) (canon lift (core func $echo-u32)))
  (export $"#func15 echo-u32" (@name "echo-u32") (;15;) "echo-u32" (func $echo-u32))
  (type (;17;) (func (param "v" s32) (result s32)))
  (alias core export $main "echo-s32" (core func $echo-s32 (;15;)))
  (func $echo-s32 (;16;) (type 17) (canon lift (core func $echo-s32)))
  (export $"#func17 echo-s32" (@name "echo-s32") (;17;) "echo-s32" (func $echo-s32))
  (type (;18;) (func (param "v" u64) (result u64)))
  (alias core export $main "echo-u64" (core func $echo-u64 (;16;)))
  (func $echo-u64 (;18;) (type 18) (canon lift (core func $echo-u64)))
  (export $"#func19 echo-u64" (@name "echo-u64") (;19;) "echo-u64" (func $echo-u64))
  (type (;19;) (func (param "v" s64) (result s64)))
  (alias core export $main "echo-s64" (core func $echo-s64 (;17;)))
  (func $echo-s64 (;20;) (type 19) (canon lift (core func $echo-s64)))
  (export $"#func21 echo-s64" (@name "echo-s64") (;21;) "echo-s64" (func $echo-s64))
  (type (;20;) (func (param "v" f32) (result f32)))
  (alias core export $main "echo-f32" (core func $echo-f32 (;18;)))
  (func $echo-f32 (;22;) (type 20) (canon lift (core func $echo-f32)))
  (export $"#func23 echo-f32" (@name "echo-f32") (;23;) "echo-f32" (func $echo-f32))
  (type (;21;) (func (param "v" f64) (result f64)))
  (alias core export $main "echo-f64" (core func $echo-f64 (;19;)))
  (func $echo-f64 (;24;) (type 21) (canon lift (core func $echo-f64)))
  (export $"#func25 echo-f64" (@name "echo-f64") (;25;) "echo-f64" (func $echo-f64))
  (type (;22;) (func (param "v" char) (result char)))
  (alias core export $main "echo-char" (core func $echo-char (;20;)))
  (func $echo-char (;26;) (type 22) (canon lift (core func $echo-char)))
  (export $"#func27 echo-char" (@name "echo-char") (;27;) "echo-char" (func $echo-char))
  (type (;23;) (func (param "v" string) (result string)))
  (alias core export $main "echo-string" (core func $echo-string (;21;)))
  (func $echo-string (;28;) (type 23) (canon lift (core func $echo-string) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func29 echo-string" (@name "echo-string") (;29;) "echo-string" (func $echo-string))
  (type (;24;) (list u8))
  (type (;25;) (func (param "v" 24) (result 24)))
  (alias core export $main "echo-bytes" (core func $echo-bytes (;22;)))
  (func $echo-bytes (;30;) (type 25) (canon lift (core func $echo-bytes) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func31 echo-bytes" (@name "echo-bytes") (;31;) "echo-bytes" (func $echo-bytes))
  (type (;26;) (list u32))
  (type (;27;) (func (param "v" 26) (result 26)))
  (alias core export $main "echo-list" (core func $echo-list (;23;)))
  (func $echo-list (;32;) (type 27) (canon lift (core func $echo-list) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func33 echo-list" (@name "echo-list") (;33;) "echo-list" (func $echo-list))
  (type (;28;) (func (param "v" $point) (result $point)))
  (alias core export $main "echo-point" (core func $echo-point (;24;)))
  (func $echo-point (;34;) (type 28) (canon lift (core func $echo-point) (memory $memory)))
  (export $"#func35 echo-point" (@name "echo-point") (;35;) "echo-point" (func $echo-point))
  (type (;29;) (tuple u32 string))
  (type (;30;) (func (param "v" 29) (result 29)))
  (alias core export $main "echo-pair" (core func $echo-pair (;25;)))
  (func $echo-pair (;36;) (type 30) (canon lift (core func $echo-pair) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func37 echo-pair" (@name "echo-pair") (;37;) "echo-pair" (func $echo-pair))
  (type (;31;) (func (param "v" $shape) (result $shape)))
  (alias core export $main "echo-shape" (core func $echo-shape (;26;)))
  (func $echo-shape (;38;) (type 31) (canon lift (core func $echo-shape) (memory $memory)))
  (export $"#func39 echo-shape" (@name "echo-shape") (;39;) "echo-shape" (func $echo-shape))
  (type (;32;) (func (param "v" $color) (result $color)))
  (alias core export $main "echo-color" (core func $echo-color (;27;)))
  (func $echo-color (;40;) (type 32) (canon lift (core func $echo-color)))
  (export $"#func41 echo-color" (@name "echo-color") (;41;) "echo-color" (func $echo-color))
  (type (;33;) (func (param "v" $perms) (result $perms)))
  (alias core export $main "echo-perms" (core func $echo-perms (;28;)))
  (func $echo-perms (;42;) (type 33) (canon lift (core func $echo-perms)))
  (export $"#func43 echo-perms" (@name "echo-perms") (;43;) "echo-perms" (func $echo-perms))
  (type (;34;) (option u32))
  (type (;35;) (func (param "v" 34) (result 34)))
  (alias core export $main "echo-maybe" (core func $echo-maybe (;29;)))
  (func $echo-maybe (;44;) (type 35) (canon lift (core func $echo-maybe) (memory $memory)))
  (export $"#func45 echo-maybe" (@name "echo-maybe") (;45;) "echo-maybe" (func $echo-maybe))
  (type (;36;) (result u32 (error string)))
  (type (;37;) (func (param "a" u32) (param "b" u32) (result 36)))
  (alias core export $main "divide" (core func $divide (;30;)))
  (func $divide (;46;) (type 37) (canon lift (core func $divide) (memory $memory) string-encoding=utf8))
  (export $"#func47 divide" (@name "divide") (;47;) "divide" (func $divide))
  (type (;38;) (func (result u32)))
  (alias core export $main "count" (core func $count (;31;)))
  (func $count (;48;) (type 38) (canon lift (core func $count)))
  (export $"#func49 count" (@name "count") (;49;) "count" (func $count))
  (type (;39;) (func))
  (alias core export $main "spin" (core func $spin (;32;)))
  (func $spin (;50;) (type 39) (canon lift (core func $spin)))
  (export $"#func51 spin" (@name "spin") (;51;) "spin" (func $spin))
  (alias core export $main "crash" (core func $crash (;33;)))
  (func $crash (;52;) (type 39) (canon lift (core func $crash)))
  (export $"#func53 crash" (@name "crash") (;53;) "crash" (func $crash))
  (type (;40;) (func (param "pages" u32) (result s32)))
  (alias core export $main "grow" (core func $grow (;34;)))
  (func $grow (;54;) (type 40) (canon lift (core func $grow)))
  (export $"#func55 grow" (@name "grow") (;55;) "grow" (func $grow))
  (type (;41;) (func (param "message" string)))
  (alias core export $main "say" (core func $say (;35;)))
  (func $say (;56;) (type 41) (canon lift (core func $say) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func57 say" (@name "say") (;57;) "say" (func $say))
  (type (;42;) (option string))
  (type (;43;) (func (param "key" string) (result 42)))
  (alias core export $main "setting" (core func $setting (;36;)))
  (func $setting (;58;) (type 43) (canon lift (core func $setting) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func59 setting" (@name "setting") (;59;) "setting" (func $setting))
  (type (;44;) (func (param "event" 24)))
  (alias core export $main "announce" (core func $announce (;37;)))
  (func $announce (;60;) (type 44) (canon lift (core func $announce) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func61 announce" (@name "announce") (;61;) "announce" (func $announce))
  (alias core export $main "call-elsewhere" (core func $call-elsewhere (;38;)))
  (func $call-elsewhere (;62;) (type 38) (canon lift (core func $call-elsewhere)))
  (export $"#func63 call-elsewhere" (@name "call-elsewhere") (;63;) "call-elsewhere" (func $call-elsewhere))
  (type (;45;) (func (param "a" u32) (param "b" u32) (result u32)))
  (alias core export $main "wasmd:kitchen/math@0.1.0#add" (core func $wasmd:kitchen/math@0.1.0#add (;39;)))
  (func $add (;64;) (type 45) (canon lift (core func $wasmd:kitchen/math@0.1.0#add)))
  (component $wasmd:kitchen/math@0.1.0-shim-component (;0;)
    (type (;0;) (func (param "a" u32) (param "b" u32) (result u32)))
    (import "import-func-add" (func (;0;) (type 0)))
    (type (;1;) (func (param "a" u32) (param "b" u32) (result u32)))
    (export (;1;) "add" (func 0) (func (type 1)))
  )
  (instance $wasmd:kitchen/math@0.1.0-shim-instance (;2;) (instantiate $wasmd:kitchen/math@0.1.0-shim-component
      (with "import-func-add" (func $add))
    )
  )
  (export $wasmd:kitchen/math@0.1.0 (;3;) "wasmd:kitchen/math@0.1.0" (instance $wasmd:kitchen/math@0.1.0-shim-instance))
  (type (;46;) (own $blob))
  (type (;47;) (func (result 46)))
  (alias core export $main "wasmd:kitchen/things@0.1.0#make" (core func $wasmd:kitchen/things@0.1.0#make (;40;)))
  (func $make (;65;) (type 47) (canon lift (core func $wasmd:kitchen/things@0.1.0#make)))
  (type (;48;) (borrow $blob))
  (type (;49;) (func (param "b" 48) (result u32)))
  (alias core export $main "wasmd:kitchen/things@0.1.0#size" (core func $wasmd:kitchen/things@0.1.0#size (;41;)))
  (func $size (;66;) (type 49) (canon lift (core func $wasmd:kitchen/things@0.1.0#size)))
  (component $wasmd:kitchen/things@0.1.0-shim-component (;1;)
    (import "import-type-blob" (type (;0;) (sub resource)))
    (type (;1;) (own 0))
    (type (;2;) (func (result 1)))
    (import "import-func-make" (func (;0;) (type 2)))
    (type (;3;) (borrow 0))
    (type (;4;) (func (param "b" 3) (result u32)))
    (import "import-func-size" (func (;1;) (type 4)))
    (export (;5;) "blob" (type 0))
    (type (;6;) (own 5))
    (type (;7;) (func (result 6)))
    (export (;2;) "make" (func 0) (func (type 7)))
    (type (;8;) (borrow 5))
    (type (;9;) (func (param "b" 8) (result u32)))
    (export (;3;) "size" (func 1) (func (type 9)))
  )
  (instance $wasmd:kitchen/things@0.1.0-shim-instance (;4;) (instantiate $wasmd:kitchen/things@0.1.0-shim-component
      (with "import-func-make" (func $make))
      (with "import-func-size" (func $size))
      (with "import-type-blob" (type $blob))
    )
  )
  (export $wasmd:kitchen/things@0.1.0 (;5;) "wasmd:kitchen/things@0.1.0" (instance $wasmd:kitchen/things@0.1.0-shim-instance))
  (@producers
    (processed-by "wit-component" "0.262.0")
  )
)
