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
  (type (;1;) (record (field "x" s32) (field "y" s32)))
  (import "point" (type $point (;2;) (eq 1)))
  (type (;3;) (variant (case "circle" f32) (case "square" u32) (case "empty")))
  (import "shape" (type $shape (;4;) (eq 3)))
  (type (;5;) (enum "red" "green" "blue"))
  (import "color" (type $color (;6;) (eq 5)))
  (type (;7;) (flags "read" "write" "exec"))
  (import "perms" (type $perms (;8;) (eq 7)))
  (core module $main (;0;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (type (;2;) (func (param i32) (result i32)))
    (type (;3;) (func (param i32 i32 i32 i32) (result i32)))
    (type (;4;) (func (param i32 i32) (result i32)))
    (type (;5;) (func (result i32)))
    (type (;6;) (func (param i64) (result i64)))
    (type (;7;) (func (param f32) (result f32)))
    (type (;8;) (func (param f64) (result f64)))
    (type (;9;) (func (param i32 i32 i32) (result i32)))
    (type (;10;) (func))
    (import "wasmd:host/api@0.1.0" "log" (func $log (;0;) (type 0) (param i32 i32 i32)))
    (import "wasmd:host/api@0.1.0" "emit" (func $emit (;1;) (type 1) (param i32 i32)))
    (import "wasmd:host/api@0.1.0" "config-get" (func $config_get (;2;) (type 0) (param i32 i32 i32)))
    (import "[export]wasmd:kitchen/things@0.1.0" "[resource-new]blob" (func $blob_new (;3;) (type 2) (param i32) (result i32)))
    (memory (;0;) 1)
    (global $heap (;0;) (mut i32) i32.const 4096)
    (global $count (;1;) (mut i32) i32.const 0)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 4))
    (export "wasmd:kitchen/math@0.1.0#add" (func 6))
    (export "wasmd:kitchen/things@0.1.0#make" (func 7))
    (export "wasmd:kitchen/things@0.1.0#size" (func 8))
    (export "echo-bool" (func 9))
    (export "echo-u8" (func 10))
    (export "echo-s8" (func 11))
    (export "echo-u16" (func 12))
    (export "echo-s16" (func 13))
    (export "echo-u32" (func 14))
    (export "echo-s32" (func 15))
    (export "echo-u64" (func 16))
    (export "echo-s64" (func 17))
    (export "echo-f32" (func 18))
    (export "echo-f64" (func 19))
    (export "echo-char" (func 20))
    (export "echo-string" (func 21))
    (export "echo-bytes" (func 22))
    (export "echo-list" (func 23))
    (export "echo-point" (func 24))
    (export "echo-shape" (func 25))
    (export "echo-maybe" (func 26))
    (export "echo-pair" (func 27))
    (export "echo-color" (func 28))
    (export "echo-perms" (func 29))
    (export "divide" (func 30))
    (export "count" (func 31))
    (export "spin" (func 32))
    (export "crash" (func 33))
    (export "grow" (func 34))
    (export "say" (func 35))
    (export "setting" (func 36))
    (export "announce" (func 37))
    (func (;4;) (type 3) (param i32 i32 i32 i32) (result i32)
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
    (func $pair (;5;) (type 4) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;6;) (type 4) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.add
    )
    (func (;7;) (type 5) (result i32)
      i32.const 7
      call $blob_new
    )
    (func (;8;) (type 2) (param i32) (result i32)
      local.get 0
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
    (func (;16;) (type 6) (param i64) (result i64)
      local.get 0
    )
    (func (;17;) (type 6) (param i64) (result i64)
      local.get 0
    )
    (func (;18;) (type 7) (param f32) (result f32)
      local.get 0
    )
    (func (;19;) (type 8) (param f64) (result f64)
      local.get 0
    )
    (func (;20;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;21;) (type 4) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;22;) (type 4) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;23;) (type 4) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;24;) (type 4) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;25;) (type 4) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store8
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;26;) (type 4) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store8
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;27;) (type 9) (param i32 i32 i32) (result i32)
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
    (func (;28;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;29;) (type 2) (param i32) (result i32)
      local.get 0
    )
    (func (;30;) (type 4) (param i32 i32) (result i32)
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
    (func (;31;) (type 5) (result i32)
      global.get $count
      i32.const 1
      i32.add
      global.set $count
      global.get $count
    )
    (func (;32;) (type 10)
      loop $l
        br $l
      end
    )
    (func (;33;) (type 10)
      unreachable
    )
    (func (;34;) (type 2) (param i32) (result i32)
      local.get 0
      memory.grow
    )
    (func (;35;) (type 1) (param i32 i32)
      i32.const 1
      local.get 0
      local.get 1
      call $log
    )
    (func (;36;) (type 4) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.const 32
      call $config_get
      i32.const 32
    )
    (func (;37;) (type 1) (param i32 i32)
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
  (type $blob (;9;) (resource (rep i32)))
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
  (core instance $main (;3;) (instantiate $main
      (with "wasmd:host/api@0.1.0" (instance $wasmd:host/api@0.1.0))
      (with "[export]wasmd:kitchen/things@0.1.0" (instance $"[export]wasmd:kitchen/things@0.1.0"))
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
  (alias export $wasmd:host/api@0.1.0 "log" (func $log (;0;)))
  (core func $"#core-func4 indirect-wasmd:host/api@0.1.0-log" (@name "indirect-wasmd:host/api@0.1.0-log") (;4;) (canon lower (func $log) (memory $memory) string-encoding=utf8))
  (alias export $wasmd:host/api@0.1.0 "emit" (func $emit (;1;)))
  (core func $"#core-func5 indirect-wasmd:host/api@0.1.0-emit" (@name "indirect-wasmd:host/api@0.1.0-emit") (;5;) (canon lower (func $emit) (memory $memory)))
  (alias export $wasmd:host/api@0.1.0 "config-get" (func $config-get (;2;)))
  (alias core export $main "cabi_realloc" (core func $cabi_realloc (;6;)))
  (core func $"#core-func7 indirect-wasmd:host/api@0.1.0-config-get" (@name "indirect-wasmd:host/api@0.1.0-config-get") (;7;) (canon lower (func $config-get) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (core instance $actual (;4;)
    (export "0" (func $"#core-func4 indirect-wasmd:host/api@0.1.0-log"))
    (export "1" (func $"#core-func5 indirect-wasmd:host/api@0.1.0-emit"))
    (export "2" (func $"#core-func7 indirect-wasmd:host/api@0.1.0-config-get"))
  )
  (core instance $fixup (;5;) (instantiate $wit-component-fixup
      (with "actual" (instance $actual))
      (with "shim" (instance $wit-component-shim-instance))
    )
  )
  (type (;10;) (func (param "v" bool) (result bool)))
  (alias core export $main "echo-bool" (core func $echo-bool (;8;)))
  (func $echo-bool (;3;) (type 10) (canon lift (core func $echo-bool)))
  (export $"#func4 echo-bool" (@name "echo-bool") (;4;) "echo-bool" (func $echo-bool))
  (type (;11;) (func (param "v" u8) (result u8)))
  (alias core export $main "echo-u8" (core func $echo-u8 (;9;)))
  (func $echo-u8 (;5;) (type 11) (canon lift (core func $echo-u8)))
  (export $"#func6 echo-u8" (@name "echo-u8") (;6;) "echo-u8" (func $echo-u8))
  (type (;12;) (func (param "v" s8) (result s8)))
  (alias core export $main "echo-s8" (core func $echo-s8 (;10;)))
  (func $echo-s8 (;7;) (type 12) (canon lift (core func $echo-s8)))
  (export $"#func8 echo-s8" (@name "echo-s8") (;8;) "echo-s8" (func $echo-s8))
  (type (;13;) (func (param "v" u16) (result u16)))
  (alias core export $main "echo-u16" (core func $echo-u16 (;11;)))
  (func $echo-u16 (;9;) (type 13) (canon lift (core func $echo-u16)))
  (export $"#func10 echo-u16" (@name "echo-u16") (;10;) "echo-u16" (func $echo-u16))
  (type (;14;) (func (param "v" s16) (result s16)))
  (alias core export $main "echo-s16" (core func $echo-s16 (;12;)))
  (func $echo-s16 (;11;) (type 14) (canon lift (core func $echo-s16)))
  (export $"#func12 echo-s16" (@name "echo-s16") (;12;) "echo-s16" (func $echo-s16))
  (type (;15;) (func (param "v" u32) (result u32)))
  (alias core export $main "echo-u32" (core func $echo-u32 (;13;)))
  (func $echo-u32 (;13;) (type 15) (canon lift (core func $echo-u32)))
  (export $"#func14 echo-u32" (@name "echo-u32") (;14;) "echo-u32" (func $echo-u32))
  (type (;16;) (func (param "v" s32) (result s32)))
  (alias core export $main "echo-s32" (core func $echo-s32 (;14;)))
  (func $echo-s32 (;15;) (type 16) (canon lift (core func $echo-s32)))
  (export $"#func16 echo-s32" (@name "echo-s32") (;16;) "echo-s32" (func $echo-s32))
  (type (;17;) (func (param "v" u64) (result u64)))
  (alias core export $main "echo-u64" (core func $echo-u64 (;15;)))
  (func $echo-u64 (;17;) (type 17) (canon lift (core func $echo-u64)))
  (export $"#func18 echo-u64" (@name "echo-u64") (;18;) "echo-u64" (func $echo-u64))
  (type (;18;) (func (param "v" s64) (result s64)))
  (alias core export $main "echo-s64" (core func $echo-s64 (;16;)))
  (func $echo-s64 (;19;) (type 18) (canon lift (core func $echo-s64)))
  (export $"#func20 echo-s64" (@name "echo-s64") (;20;) "echo-s64" (func $echo-s64))
  (type (;19;) (func (param "v" f32) (result f32)))
  (alias core export $main "echo-f32" (core func $echo-f32 (;17;)))
  (func $echo-f32 (;21;) (type 19) (canon lift (core func $echo-f32)))
  (export $"#func22 echo-f32" (@name "echo-f32") (;22;) "echo-f32" (func $echo-f32))
  (type (;20;) (func (param "v" f64) (result f64)))
  (alias core export $main "echo-f64" (core func $echo-f64 (;18;)))
  (func $echo-f64 (;23;) (type 20) (canon lift (core func $echo-f64)))
  (export $"#func24 echo-f64" (@name "echo-f64") (;24;) "echo-f64" (func $echo-f64))
  (type (;21;) (func (param "v" char) (result char)))
  (alias core export $main "echo-char" (core func $echo-char (;19;)))
  (func $echo-char (;25;) (type 21) (canon lift (core func $echo-char)))
  (export $"#func26 echo-char" (@name "echo-char") (;26;) "echo-char" (func $echo-char))
  (type (;22;) (func (param "v" string) (result string)))
  (alias core export $main "echo-string" (core func $echo-string (;20;)))
  (func $echo-string (;27;) (type 22) (canon lift (core func $echo-string) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func28 echo-string" (@name "echo-string") (;28;) "echo-string" (func $echo-string))
  (type (;23;) (list u8))
  (type (;24;) (func (param "v" 23) (result 23)))
  (alias core export $main "echo-bytes" (core func $echo-bytes (;21;)))
  (func $echo-bytes (;29;) (type 24) (canon lift (core func $echo-bytes) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func30 echo-bytes" (@name "echo-bytes") (;30;) "echo-bytes" (func $echo-bytes))
  (type (;25;) (list u32))
  (type (;26;) (func (param "v" 25) (result 25)))
  (alias core export $main "echo-list" (core func $echo-list (;22;)))
  (func $echo-list (;31;) (type 26) (canon lift (core func $echo-list) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func32 echo-list" (@name "echo-list") (;32;) "echo-list" (func $echo-list))
  (type (;27;) (func (param "v" $point) (result $point)))
  (alias core export $main "echo-point" (core func $echo-point (;23;)))
  (func $echo-point (;33;) (type 27) (canon lift (core func $echo-point) (memory $memory)))
  (export $"#func34 echo-point" (@name "echo-point") (;34;) "echo-point" (func $echo-point))
  (type (;28;) (tuple u32 string))
  (type (;29;) (func (param "v" 28) (result 28)))
  (alias core export $main "echo-pair" (core func $echo-pair (;24;)))
  (func $echo-pair (;35;) (type 29) (canon lift (core func $echo-pair) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func36 echo-pair" (@name "echo-pair") (;36;) "echo-pair" (func $echo-pair))
  (type (;30;) (func (param "v" $shape) (result $shape)))
  (alias core export $main "echo-shape" (core func $echo-shape (;25;)))
  (func $echo-shape (;37;) (type 30) (canon lift (core func $echo-shape) (memory $memory)))
  (export $"#func38 echo-shape" (@name "echo-shape") (;38;) "echo-shape" (func $echo-shape))
  (type (;31;) (func (param "v" $color) (result $color)))
  (alias core export $main "echo-color" (core func $echo-color (;26;)))
  (func $echo-color (;39;) (type 31) (canon lift (core func $echo-color)))
  (export $"#func40 echo-color" (@name "echo-color") (;40;) "echo-color" (func $echo-color))
  (type (;32;) (func (param "v" $perms) (result $perms)))
  (alias core export $main "echo-perms" (core func $echo-perms (;27;)))
  (func $echo-perms (;41;) (type 32) (canon lift (core func $echo-perms)))
  (export $"#func42 echo-perms" (@name "echo-perms") (;42;) "echo-perms" (func $echo-perms))
  (type (;33;) (option u32))
  (type (;34;) (func (param "v" 33) (result 33)))
  (alias core export $main "echo-maybe" (core func $echo-maybe (;28;)))
  (func $echo-maybe (;43;) (type 34) (canon lift (core func $echo-maybe) (memory $memory)))
  (export $"#func44 echo-maybe" (@name "echo-maybe") (;44;) "echo-maybe" (func $echo-maybe))
  (type (;35;) (result u32 (error string)))
  (type (;36;) (func (param "a" u32) (param "b" u32) (result 35)))
  (alias core export $main "divide" (core func $divide (;29;)))
  (func $divide (;45;) (type 36) (canon lift (core func $divide) (memory $memory) string-encoding=utf8))
  (export $"#func46 divide" (@name "divide") (;46;) "divide" (func $divide))
  (type (;37;) (func (result u32)))
  (alias core export $main "count" (core func $count (;30;)))
  (func $count (;47;) (type 37) (canon lift (core func $count)))
  (export $"#func48 count" (@name "count") (;48;) "count" (func $count))
  (type (;38;) (func))
  (alias core export $main "spin" (core func $spin (;31;)))
  (func $spin (;49;) (type 38) (canon lift (core func $spin)))
  (export $"#func50 spin" (@name "spin") (;50;) "spin" (func $spin))
  (alias core export $main "crash" (core func $crash (;32;)))
  (func $crash (;51;) (type 38) (canon lift (core func $crash)))
  (export $"#func52 crash" (@name "crash") (;52;) "crash" (func $crash))
  (type (;39;) (func (param "pages" u32) (result s32)))
  (alias core export $main "grow" (core func $grow (;33;)))
  (func $grow (;53;) (type 39) (canon lift (core func $grow)))
  (export $"#func54 grow" (@name "grow") (;54;) "grow" (func $grow))
  (type (;40;) (func (param "message" string)))
  (alias core export $main "say" (core func $say (;34;)))
  (func $say (;55;) (type 40) (canon lift (core func $say) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func56 say" (@name "say") (;56;) "say" (func $say))
  (type (;41;) (option string))
  (type (;42;) (func (param "key" string) (result 41)))
  (alias core export $main "setting" (core func $setting (;35;)))
  (func $setting (;57;) (type 42) (canon lift (core func $setting) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func58 setting" (@name "setting") (;58;) "setting" (func $setting))
  (type (;43;) (func (param "event" 23)))
  (alias core export $main "announce" (core func $announce (;36;)))
  (func $announce (;59;) (type 43) (canon lift (core func $announce) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func60 announce" (@name "announce") (;60;) "announce" (func $announce))
  (type (;44;) (func (param "a" u32) (param "b" u32) (result u32)))
  (alias core export $main "wasmd:kitchen/math@0.1.0#add" (core func $wasmd:kitchen/math@0.1.0#add (;37;)))
  (func $add (;61;) (type 44) (canon lift (core func $wasmd:kitchen/math@0.1.0#add)))
  (component $wasmd:kitchen/math@0.1.0-shim-component (;0;)
    (type (;0;) (func (param "a" u32) (param "b" u32) (result u32)))
    (import "import-func-add" (func (;0;) (type 0)))
    (type (;1;) (func (param "a" u32) (param "b" u32) (result u32)))
    (export (;1;) "add" (func 0) (func (type 1)))
  )
  (instance $wasmd:kitchen/math@0.1.0-shim-instance (;1;) (instantiate $wasmd:kitchen/math@0.1.0-shim-component
      (with "import-func-add" (func $add))
    )
  )
  (export $wasmd:kitchen/math@0.1.0 (;2;) "wasmd:kitchen/math@0.1.0" (instance $wasmd:kitchen/math@0.1.0-shim-instance))
  (type (;45;) (own $blob))
  (type (;46;) (func (result 45)))
  (alias core export $main "wasmd:kitchen/things@0.1.0#make" (core func $wasmd:kitchen/things@0.1.0#make (;38;)))
  (func $make (;62;) (type 46) (canon lift (core func $wasmd:kitchen/things@0.1.0#make)))
  (type (;47;) (borrow $blob))
  (type (;48;) (func (param "b" 47) (result u32)))
  (alias core export $main "wasmd:kitchen/things@0.1.0#size" (core func $wasmd:kitchen/things@0.1.0#size (;39;)))
  (func $size (;63;) (type 48) (canon lift (core func $wasmd:kitchen/things@0.1.0#size)))
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
  (instance $wasmd:kitchen/things@0.1.0-shim-instance (;3;) (instantiate $wasmd:kitchen/things@0.1.0-shim-component
      (with "import-func-make" (func $make))
      (with "import-func-size" (func $size))
      (with "import-type-blob" (type $blob))
    )
  )
  (export $wasmd:kitchen/things@0.1.0 (;4;) "wasmd:kitchen/things@0.1.0" (instance $wasmd:kitchen/things@0.1.0-shim-instance))
  (@producers
    (processed-by "wit-component" "0.262.0")
  )
)
