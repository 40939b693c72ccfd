(component
  (type $ty-wasmd:host/api@0.1.0 (;0;)
    (instance
      (type (;0;) (record (field "uid" s64) (field "gid" s64) (field "pid" s64)))
      (export (;1;) "peer" (type (eq 0)))
      (type (;2;) (enum "debug" "info" "warn" "error"))
      (export (;3;) "level" (type (eq 2)))
      (type (;4;) (func (param "level" 3) (param "message" string)))
      (export (;0;) "log" (func (type 4)))
      (type (;5;) (list u8))
      (type (;6;) (func (param "event" 5)))
      (export (;1;) "emit" (func (type 6)))
      (type (;7;) (option string))
      (type (;8;) (func (param "key" string) (result 7)))
      (export (;2;) "config-get" (func (type 8)))
      (type (;9;) (func (result 1)))
      (export (;3;) "caller" (func (type 9)))
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
  (alias export $wasmd:host/api@0.1.0 "peer" (type $peer (;2;)))
  (import "peer" (type $"#type3 peer" (@name "peer") (;3;) (eq $peer)))
  (type (;4;) (record (field "x" s32) (field "y" s32)))
  (import "point" (type $point (;5;) (eq 4)))
  (type (;6;) (variant (case "circle" f32) (case "square" u32) (case "empty")))
  (import "shape" (type $shape (;7;) (eq 6)))
  (type (;8;) (enum "red" "green" "blue"))
  (import "color" (type $color (;9;) (eq 8)))
  (type (;10;) (flags "read" "write" "exec"))
  (import "perms" (type $perms (;11;) (eq 10)))
  (core module $main (;0;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (type (;2;) (func (param i32)))
    (type (;3;) (func (param i32) (result i32)))
    (type (;4;) (func (result i32)))
    (type (;5;) (func (param i32 i32 i32 i32) (result i32)))
    (type (;6;) (func (param i32 i32) (result i32)))
    (type (;7;) (func (param i64) (result i64)))
    (type (;8;) (func (param f32) (result f32)))
    (type (;9;) (func (param f64) (result f64)))
    (type (;10;) (func (param i32 i32 i32) (result i32)))
    (type (;11;) (func))
    (import "wasmd:host/api@0.1.0" "log" (func $log (;0;) (type 0) (param i32 i32 i32)))
    (import "wasmd:host/api@0.1.0" "emit" (func $emit (;1;) (type 1) (param i32 i32)))
    (import "wasmd:host/api@0.1.0" "config-get" (func $config_get (;2;) (type 0) (param i32 i32 i32)))
    (import "wasmd:host/api@0.1.0" "caller" (func $caller (;3;) (type 2) (param i32)))
    (import "[export]wasmd:kitchen/things@0.1.0" "[resource-new]blob" (func $blob_new (;4;) (type 3) (param i32) (result i32)))
    (import "wasmd:kitchen/elsewhere@0.1.0" "ping" (func $ping (;5;) (type 4) (result i32)))
    (memory (;0;) 1)
    (global $heap (;0;) (mut i32) i32.const 4096)
    (global $count (;1;) (mut i32) i32.const 0)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 6))
    (export "wasmd:kitchen/math@0.1.0#add" (func 8))
    (export "wasmd:kitchen/things@0.1.0#make" (func 9))
    (export "wasmd:kitchen/things@0.1.0#size" (func 10))
    (export "echo-bool" (func 11))
    (export "echo-u8" (func 12))
    (export "echo-s8" (func 13))
    (export "echo-u16" (func 14))
    (export "echo-s16" (func 15))
    (export "echo-u32" (func 16))
    (export "echo-s32" (func 17))
    (export "echo-u64" (func 18))
    (export "echo-s64" (func 19))
    (export "echo-f32" (func 20))
    (export "echo-f64" (func 21))
    (export "echo-char" (func 22))
    (export "echo-string" (func 23))
    (export "echo-bytes" (func 24))
    (export "echo-list" (func 25))
    (export "echo-point" (func 26))
    (export "echo-shape" (func 27))
    (export "echo-maybe" (func 28))
    (export "echo-pair" (func 29))
    (export "echo-color" (func 30))
    (export "echo-perms" (func 31))
    (export "divide" (func 32))
    (export "count" (func 33))
    (export "spin" (func 34))
    (export "crash" (func 35))
    (export "grow" (func 36))
    (export "say" (func 37))
    (export "setting" (func 38))
    (export "call-elsewhere" (func 39))
    (export "announce" (func 40))
    (export "whoami" (func 41))
    (func (;6;) (type 5) (param i32 i32 i32 i32) (result i32)
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
    (func $pair (;7;) (type 6) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;8;) (type 6) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.add
    )
    (func (;9;) (type 4) (result i32)
      i32.const 7
      call $blob_new
    )
    (func (;10;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;11;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;12;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;13;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;14;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;15;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;16;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;17;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;18;) (type 7) (param i64) (result i64)
      local.get 0
    )
    (func (;19;) (type 7) (param i64) (result i64)
      local.get 0
    )
    (func (;20;) (type 8) (param f32) (result f32)
      local.get 0
    )
    (func (;21;) (type 9) (param f64) (result f64)
      local.get 0
    )
    (func (;22;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;23;) (type 6) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;24;) (type 6) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;25;) (type 6) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;26;) (type 6) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      call $pair
    )
    (func (;27;) (type 6) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store8
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;28;) (type 6) (param i32 i32) (result i32)
      i32.const 16
      local.get 0
      i32.store8
      i32.const 20
      local.get 1
      i32.store
      i32.const 16
    )
    (func (;29;) (type 10) (param i32 i32 i32) (result i32)
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
    (func (;30;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;31;) (type 3) (param i32) (result i32)
      local.get 0
    )
    (func (;32;) (type 6) (param i32 i32) (result i32)
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
    (func (;33;) (type 4) (result i32)
      global.get $count
      i32.const 1
      i32.add
      global.set $count
      global.get $count
    )
    (func (;34;) (type 11)
      loop $l
        br $l
      end
    )
    (func (;35;) (type 11)
      unreachable
    )
    (func (;36;) (type 3) (param i32) (result i32)
      local.get 0
      memory.grow
    )
    (func (;37;) (type 1) (param i32 i32)
      i32.const 1
      local.get 0
      local.get 1
      call $log
    )
    (func (;38;) (type 6) (param i32 i32) (result i32)
      local.get 0
      local.get 1
      i32.const 32
      call $config_get
      i32.const 32
    )
    (func (;39;) (type 4) (result i32)
      call $ping
    )
    (func (;40;) (type 1) (param i32 i32)
      local.get 0
      local.get 1
      call $emit
    )
    (func (;41;) (type 4) (result i32)
      i32.const 64
      call $caller
      i32.const 64
    )
    (data (;0;) (i32.const 512) "division by zero")
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core module $wit-component-shim-module (;1;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32)))
    (type (;2;) (func (param i32)))
    (table (;0;) 4 4 funcref)
    (export "0" (func $indirect-wasmd:host/api@0.1.0-log))
    (export "1" (func $indirect-wasmd:host/api@0.1.0-emit))
    (export "2" (func $indirect-wasmd:host/api@0.1.0-config-get))
    (export "3" (func $indirect-wasmd:host/api@0.1.0-caller))
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
    (func $indirect-wasmd:host/api@0.1.0-caller (;3;) (type 2) (param i32)
      local.get 0
      i32.const 3
      call_indirect (type 2)
    )
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core instance $wit-component-shim-instance (;0;) (instantiate $wit-component-shim-module))
  (type $blob (;12;) (resource (rep i32)))
  (alias core export $wit-component-shim-instance "0" (core func $indirect-wasmd:host/api@0.1.0-log (;0;)))
  (alias core export $wit-component-shim-instance "1" (core func $indirect-wasmd:host/api@0.1.0-emit (;1;)))
  (alias core export $wit-component-shim-instance "2" (core func $indirect-wasmd:host/api@0.1.0-config-get (;2;)))
  (alias core export $wit-component-shim-instance "3" (core func $indirect-wasmd:host/api@0.1.0-caller (;3;)))
  (core instance $wasmd:host/api@0.1.0 (;1;)
    (export "log" (func $indirect-wasmd:host/api@0.1.0-log))
    (export "emit" (func $indirect-wasmd:host/api@0.1.0-emit))
    (export "config-get" (func $indirect-wasmd:host/api@0.1.0-config-get))
    (export "caller" (func $indirect-wasmd:host/api@0.1.0-caller))
  )
  (core func $resource.new (;4;) (canon resource.new $blob))
  (core instance $"[export]wasmd:kitchen/things@0.1.0" (;2;)
    (export "[resource-new]blob" (func $resource.new))
  )
  (alias export $wasmd:kitchen/elsewhere@0.1.0 "ping" (func $ping (;0;)))
  (core func $ping (;5;) (canon lower (func $ping)))
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
    (type (;2;) (func (param i32)))
    (import "actual" "0" (func $0 (;0;) (type 0) (param i32 i32 i32)))
    (import "actual" "1" (func $1 (;1;) (type 1) (param i32 i32)))
    (import "actual" "2" (func $2 (;2;) (type 0) (param i32 i32 i32)))
    (import "actual" "3" (func $3 (;3;) (type 2) (param i32)))
    (import "shim" "$imports" (table (;0;) 4 4 funcref))
    (elem (;0;) (i32.const 0) func $0 $1 $2 $3)
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (alias export $wasmd:host/api@0.1.0 "log" (func $log (;1;)))
  (core func $"#core-func6 indirect-wasmd:host/api@0.1.0-log" (@name "indirect-wasmd:host/api@0.1.0-log") (;6;) (canon lower (func $log) (memory $memory) string-encoding=utf8))
  (alias export $wasmd:host/api@0.1.0 "emit" (func $emit (;2;)))
  (core func $"#core-func7 indirect-wasmd:host/api@0.1.0-emit" (@name "indirect-wasmd:host/api@0.1.0-emit") (;7;) (canon lower (func $emit) (memory $memory)))
  (alias export $wasmd:host/api@0.1.0 "config-get" (func $config-get (;3;)))
  (alias core export $main "cabi_realloc" (core func $cabi_realloc (;8;)))
  (core func $"#core-func9 indirect-wasmd:host/api@0.1.0-config-get" (@name "indirect-wasmd:host/api@0.1.0-config-get") (;9;) (canon lower (func $config-get) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasmd:host/api@0.1.0 "caller" (func $caller (;4;)))
  (core func $"#core-func10 indirect-wasmd:host/api@0.1.0-caller" (@name "indirect-wasmd:host/api@0.1.0-caller") (;10;) (canon lower (func $caller) (memory $memory)))
  (core instance $actual (;5;)
    (export "0" (func $"#core-func6 indirect-wasmd:host/api@0.1.0-log"))
    (export "1" (func $"#core-func7 indirect-wasmd:host/api@0.1.0-emit"))
    (export "2" (func $"#core-func9 indirect-wasmd:host/api@0.1.0-config-get"))
    (export "3" (func $"#core-func10 indirect-wasmd:host/api@0.1.0-caller"))
  )
  (core instance $fixup (;6;) (instantiate $wit-component-fixup
      (with "actual" (instance $actual))
      (with "shim" (instance $wit-component-shim-instance))
    )
  )
  (type (;13;) (func (param "v" bool) (result bool)))
  (alias core export $main "echo-bool" (core func $echo-bool (;11;)))
  (func $echo-bool (;5;) (type 13) (canon lift (core func $echo-bool)))
  (export $"#func6 echo-bool" (@name "echo-bool") (;6;) "echo-bool" (func $echo-bool))
  (type (;14;) (func (param "v" u8) (result u8)))
  (alias core export $main "echo-u8" (core func $echo-u8 (;12;)))
  (func $echo-u8 (;7;) (type 14) (canon lift (core func $echo-u8)))
  (export $"#func8 echo-u8" (@name "echo-u8") (;8;) "echo-u8" (func $echo-u8))
  (type (;15;) (func (param "v" s8) (result s8)))
  (alias core export $main "echo-s8" (core func $echo-s8 (;13;)))
  (func $echo-s8 (;9;) (type 15) (canon lift (core func $echo-s8)))
  (export $"#func10 echo-s8" (@name "echo-s8") (;10;) "echo-s8" (func $echo-s8))
  (type (;16;) (func (param "v" u16) (result u16)))
  (alias core export $main "echo-u16" (core func $echo-u16 (;14;)))
  (func $echo-u16 (;11;) (type 16) (canon lift (core func $echo-u16)))
  (export $"#func12 echo-u16" (@name "echo-u16") (;12;) "echo-u16" (func $echo-u16))
  (type (;17;) (func (param "v" s16) (result s16)))
  (alias core export $main "echo-s16" (core func $echo-s16 (;15;)))
  (func $echo-s16 (;13;) (type 17) (canon lift (core func $echo-s16)))
  (export $"#func14 echo-s16" (@name "echo-s16") (;14;) "echo-s16" (func $echo-s16))
  (type (;18;) (func (param "v" u32) (result u32)))
  (alias core export $main "echo-u32" (core func $echo-u32 (;16;)))
  (func $echo-u32 (;15;) (type 18) (canon lift (core func $echo-u32)))
  (export $"#func16 echo-u32" (@name "echo-u32") (;16;) "echo-u32" (func $echo-u32))
  (type (;19;) (func (param "v" s32) (result s32)))
  (alias core export $main "echo-s32" (core func $echo-s32 (;17;)))
  (func $echo-s32 (;17;) (type 19) (canon lift (core func $echo-s32)))
  (export $"#func18 echo-s32" (@name "echo-s32") (;18;) "echo-s32" (func $echo-s32))
  (type (;20;) (func (param "v" u64) (result u64)))
  (alias core export $main "echo-u64" (core func $echo-u64 (;18;)))
  (func $echo-u64 (;19;) (type 20) (canon lift (core func $echo-u64)))
  (export $"#func20 echo-u64" (@name "echo-u64") (;20;) "echo-u64" (func $echo-u64))
  (type (;21;) (func (param "v" s64) (result s64)))
  (alias core export $main "echo-s64" (core func $echo-s64 (;19;)))
  (func $echo-s64 (;21;) (type 21) (canon lift (core func $echo-s64)))
  (export $"#func22 echo-s64" (@name "echo-s64") (;22;) "echo-s64" (func $echo-s64))
  (type (;22;) (func (param "v" f32) (result f32)))
  (alias core export $main "echo-f32" (core func $echo-f32 (;20;)))
  (func $echo-f32 (;23;) (type 22) (canon lift (core func $echo-f32)))
  (export $"#func24 echo-f32" (@name "echo-f32") (;24;) "echo-f32" (func $echo-f32))
  (type (;23;) (func (param "v" f64) (result f64)))
  (alias core export $main "echo-f64" (core func $echo-f64 (;21;)))
  (func $echo-f64 (;25;) (type 23) (canon lift (core func $echo-f64)))
  (export $"#func26 echo-f64" (@name "echo-f64") (;26;) "echo-f64" (func $echo-f64))
  (type (;24;) (func (param "v" char) (result char)))
  (alias core export $main "echo-char" (core func $echo-char (;22;)))
  (func $echo-char (;27;) (type 24) (canon lift (core func $echo-char)))
  (export $"#func28 echo-char" (@name "echo-char") (;28;) "echo-char" (func $echo-char))
  (type (;25;) (func (param "v" string) (result string)))
  (alias core export $main "echo-string" (core func $echo-string (;23;)))
  (func $echo-string (;29;) (type 25) (canon lift (core func $echo-string) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func30 echo-string" (@name "echo-string") (;30;) "echo-string" (func $echo-string))
  (type (;26;) (list u8))
  (type (;27;) (func (param "v" 26) (result 26)))
  (alias core export $main "echo-bytes" (core func $echo-bytes (;24;)))
  (func $echo-bytes (;31;) (type 27) (canon lift (core func $echo-bytes) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func32 echo-bytes" (@name "echo-bytes") (;32;) "echo-bytes" (func $echo-bytes))
  (type (;28;) (list u32))
  (type (;29;) (func (param "v" 28) (result 28)))
  (alias core export $main "echo-list" (core func $echo-list (;25;)))
  (func $echo-list (;33;) (type 29) (canon lift (core func $echo-list) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func34 echo-list" (@name "echo-list") (;34;) "echo-list" (func $echo-list))
  (type (;30;) (func (param "v" $point) (result $point)))
  (alias core export $main "echo-point" (core func $echo-point (;26;)))
  (func $echo-point (;35;) (type 30) (canon lift (core func $echo-point) (memory $memory)))
  (export $"#func36 echo-point" (@name "echo-point") (;36;) "echo-point" (func $echo-point))
  (type (;31;) (tuple u32 string))
  (type (;32;) (func (param "v" 31) (result 31)))
  (alias core export $main "echo-pair" (core func $echo-pair (;27;)))
  (func $echo-pair (;37;) (type 32) (canon lift (core func $echo-pair) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func38 echo-pair" (@name "echo-pair") (;38;) "echo-pair" (func $echo-pair))
  (type (;33;) (func (param "v" $shape) (result $shape)))
  (alias core export $main "echo-shape" (core func $echo-shape (;28;)))
  (func $echo-shape (;39;) (type 33) (canon lift (core func $echo-shape) (memory $memory)))
  (export $"#func40 echo-shape" (@name "echo-shape") (;40;) "echo-shape" (func $echo-shape))
  (type (;34;) (func (param "v" $color) (result $color)))
  (alias core export $main "echo-color" (core func $echo-color (;29;)))
  (func $echo-color (;41;) (type 34) (canon lift (core func $echo-color)))
  (export $"#func42 echo-color" (@name "echo-color") (;42;) "echo-color" (func $echo-color))
  (type (;35;) (func (param "v" $perms) (result $perms)))
  (alias core export $main "echo-perms" (core func $echo-perms (;30;)))
  (func $echo-perms (;43;) (type 35) (canon lift (core func $echo-perms)))
  (export $"#func44 echo-perms" (@name "echo-perms") (;44;) "echo-perms" (func $echo-perms))
  (type (;36;) (option u32))
  (type (;37;) (func (param "v" 36) (result 36)))
  (alias core export $main "echo-maybe" (core func $echo-maybe (;31;)))
  (func $echo-maybe (;45;) (type 37) (canon lift (core func $echo-maybe) (memory $memory)))
  (export $"#func46 echo-maybe" (@name "echo-maybe") (;46;) "echo-maybe" (func $echo-maybe))
  (type (;38;) (result u32 (error string)))
  (type (;39;) (func (param "a" u32) (param "b" u32) (result 38)))
  (alias core export $main "divide" (core func $divide (;32;)))
  (func $divide (;47;) (type 39) (canon lift (core func $divide) (memory $memory) string-encoding=utf8))
  (export $"#func48 divide" (@name "divide") (;48;) "divide" (func $divide))
  (type (;40;) (func (result u32)))
  (alias core export $main "count" (core func $count (;33;)))
  (func $count (;49;) (type 40) (canon lift (core func $count)))
  (export $"#func50 count" (@name "count") (;50;) "count" (func $count))
  (type (;41;) (func))
  (alias core export $main "spin" (core func $spin (;34;)))
  (func $spin (;51;) (type 41) (canon lift (core func $spin)))
  (export $"#func52 spin" (@name "spin") (;52;) "spin" (func $spin))
  (alias core export $main "crash" (core func $crash (;35;)))
  (func $crash (;53;) (type 41) (canon lift (core func $crash)))
  (export $"#func54 crash" (@name "crash") (;54;) "crash" (func $crash))
  (type (;42;) (func (param "pages" u32) (result s32)))
  (alias core export $main "grow" (core func $grow (;36;)))
  (func $grow (;55;) (type 42) (canon lift (core func $grow)))
  (export $"#func56 grow" (@name "grow") (;56;) "grow" (func $grow))
  (type (;43;) (func (param "message" string)))
  (alias core export $main "say" (core func $say (;37;)))
  (func $say (;57;) (type 43) (canon lift (core func $say) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func58 say" (@name "say") (;58;) "say" (func $say))
  (type (;44;) (option string))
  (type (;45;) (func (param "key" string) (result 44)))
  (alias core export $main "setting" (core func $setting (;38;)))
  (func $setting (;59;) (type 45) (canon lift (core func $setting) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func60 setting" (@name "setting") (;60;) "setting" (func $setting))
  (type (;46;) (func (param "event" 26)))
  (alias core export $main "announce" (core func $announce (;39;)))
  (func $announce (;61;) (type 46) (canon lift (core func $announce) (memory $memory) (realloc $cabi_realloc)))
  (export $"#func62 announce" (@name "announce") (;62;) "announce" (func $announce))
  (alias core export $main "call-elsewhere" (core func $call-elsewhere (;40;)))
  (func $call-elsewhere (;63;) (type 40) (canon lift (core func $call-elsewhere)))
  (export $"#func64 call-elsewhere" (@name "call-elsewhere") (;64;) "call-elsewhere" (func $call-elsewhere))
  (type (;47;) (func (result $"#type3 peer")))
  (alias core export $main "whoami" (core func $whoami (;41;)))
  (func $whoami (;65;) (type 47) (canon lift (core func $whoami) (memory $memory)))
  (export $"#func66 whoami" (@name "whoami") (;66;) "whoami" (func $whoami))
  (type (;48;) (func (param "a" u32) (param "b" u32) (result u32)))
  (alias core export $main "wasmd:kitchen/math@0.1.0#add" (core func $wasmd:kitchen/math@0.1.0#add (;42;)))
  (func $add (;67;) (type 48) (canon lift (core func $wasmd:kitchen/math@0.1.0#add)))
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
  (type (;49;) (own $blob))
  (type (;50;) (func (result 49)))
  (alias core export $main "wasmd:kitchen/things@0.1.0#make" (core func $wasmd:kitchen/things@0.1.0#make (;43;)))
  (func $make (;68;) (type 50) (canon lift (core func $wasmd:kitchen/things@0.1.0#make)))
  (type (;51;) (borrow $blob))
  (type (;52;) (func (param "b" 51) (result u32)))
  (alias core export $main "wasmd:kitchen/things@0.1.0#size" (core func $wasmd:kitchen/things@0.1.0#size (;44;)))
  (func $size (;69;) (type 52) (canon lift (core func $wasmd:kitchen/things@0.1.0#size)))
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
