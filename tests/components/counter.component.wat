(component
  (type $ty-wasi:keyvalue/store@0.2.0-draft (;0;)
    (instance
      (export (;0;) "bucket" (type (sub resource)))
      (type (;1;) (variant (case "no-such-store") (case "access-denied") (case "other" string)))
      (export (;2;) "error" (type (eq 1)))
      (type (;3;) (list string))
      (type (;4;) (option u64))
      (type (;5;) (record (field "keys" 3) (field "cursor" 4)))
      (export (;6;) "key-response" (type (eq 5)))
      (type (;7;) (borrow 0))
      (type (;8;) (list u8))
      (type (;9;) (option 8))
      (type (;10;) (result 9 (error 2)))
      (type (;11;) (func (param "self" 7) (param "key" string) (result 10)))
      (export (;0;) "[method]bucket.get" (func (type 11)))
      (type (;12;) (result (error 2)))
      (type (;13;) (func (param "self" 7) (param "key" string) (param "value" 8) (result 12)))
      (export (;1;) "[method]bucket.set" (func (type 13)))
      (type (;14;) (func (param "self" 7) (param "key" string) (result 12)))
      (export (;2;) "[method]bucket.delete" (func (type 14)))
      (type (;15;) (result bool (error 2)))
      (type (;16;) (func (param "self" 7) (param "key" string) (result 15)))
      (export (;3;) "[method]bucket.exists" (func (type 16)))
      (type (;17;) (result 6 (error 2)))
      (type (;18;) (func (param "self" 7) (param "cursor" 4) (result 17)))
      (export (;4;) "[method]bucket.list-keys" (func (type 18)))
      (type (;19;) (own 0))
      (type (;20;) (result 19 (error 2)))
      (type (;21;) (func (param "identifier" string) (result 20)))
      (export (;5;) "open" (func (type 21)))
    )
  )
  (import "wasi:keyvalue/store@0.2.0-draft" (instance $wasi:keyvalue/store@0.2.0-draft (;0;) (type $ty-wasi:keyvalue/store@0.2.0-draft)))
  (alias export $wasi:keyvalue/store@0.2.0-draft "bucket" (type $bucket (;1;)))
  (alias export $wasi:keyvalue/store@0.2.0-draft "error" (type $error (;2;)))
  (type $ty-wasi:keyvalue/atomics@0.2.0-draft (;3;)
    (instance
      (alias outer 1 $bucket (type (;0;)))
      (export (;1;) "bucket" (type (eq 0)))
      (alias outer 1 $error (type (;2;)))
      (export (;3;) "error" (type (eq 2)))
      (type (;4;) (borrow 1))
      (type (;5;) (result u64 (error 3)))
      (type (;6;) (func (param "bucket" 4) (param "key" string) (param "delta" u64) (result 5)))
      (export (;0;) "increment" (func (type 6)))
    )
  )
  (import "wasi:keyvalue/atomics@0.2.0-draft" (instance $wasi:keyvalue/atomics@0.2.0-draft (;1;) (type $ty-wasi:keyvalue/atomics@0.2.0-draft)))
  (core module $main (;0;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32 i32 i32)))
    (type (;2;) (func (param i32 i32 i32 i32 i32 i32)))
    (type (;3;) (func (param i32 i32 i64 i32)))
    (type (;4;) (func (param i32)))
    (type (;5;) (func (param i32 i32 i32 i64 i32)))
    (type (;6;) (func (param i32 i32 i32 i32) (result i32)))
    (type (;7;) (func (result i32)))
    (type (;8;) (func (result i64)))
    (type (;9;) (func (param i32 i32) (result i32)))
    (import "wasi:keyvalue/store@0.2.0-draft" "open" (func $open (;0;) (type 0) (param i32 i32 i32)))
    (import "wasi:keyvalue/store@0.2.0-draft" "[method]bucket.get" (func $get (;1;) (type 1) (param i32 i32 i32 i32)))
    (import "wasi:keyvalue/store@0.2.0-draft" "[method]bucket.set" (func $set (;2;) (type 2) (param i32 i32 i32 i32 i32 i32)))
    (import "wasi:keyvalue/store@0.2.0-draft" "[method]bucket.exists" (func $exists (;3;) (type 1) (param i32 i32 i32 i32)))
    (import "wasi:keyvalue/store@0.2.0-draft" "[method]bucket.delete" (func $delete (;4;) (type 1) (param i32 i32 i32 i32)))
    (import "wasi:keyvalue/store@0.2.0-draft" "[method]bucket.list-keys" (func $list_keys (;5;) (type 3) (param i32 i32 i64 i32)))
    (import "wasi:keyvalue/store@0.2.0-draft" "[resource-drop]bucket" (func $drop (;6;) (type 4) (param i32)))
    (import "wasi:keyvalue/atomics@0.2.0-draft" "increment" (func $increment (;7;) (type 5) (param i32 i32 i32 i64 i32)))
    (memory (;0;) 1)
    (global $heap (;0;) (mut i32) i32.const 4096)
    (export "memory" (memory 0))
    (export "cabi_realloc" (func 8))
    (export "bump" (func $bump))
    (export "bump-then-trap" (func 11))
    (export "put" (func 12))
    (export "fetch" (func 13))
    (export "open-other" (func 14))
    (export "has" (func 15))
    (export "forget" (func 16))
    (export "keys" (func 17))
    (func (;8;) (type 6) (param i32 i32 i32 i32) (result i32)
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
    (func $bucket (;9;) (type 7) (result i32)
      i32.const 64
      i32.const 7
      i32.const 128
      call $open
      i32.const 128
      i32.load8_u
      if ;; label = @1
        unreachable
      end
      i32.const 132
      i32.load
    )
    (func $bump (;10;) (type 8) (result i64)
      (local $b i32) (local $n i64)
      call $bucket
      local.set $b
      local.get $b
      i32.const 80
      i32.const 5
      i64.const 1
      i32.const 128
      call $increment
      i32.const 128
      i32.load8_u
      if ;; label = @1
        unreachable
      end
      i32.const 136
      i64.load
      local.set $n
      local.get $b
      call $drop
      local.get $n
    )
    (func (;11;) (type 8) (result i64)
      call $bump
      drop
      unreachable
    )
    (func (;12;) (type 6) (param i32 i32 i32 i32) (result i32)
      (local $b i32)
      call $bucket
      local.set $b
      local.get $b
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 128
      call $set
      local.get $b
      call $drop
      i32.const 128
      i32.load8_u
      i32.eqz
    )
    (func (;13;) (type 9) (param i32 i32) (result i32)
      (local $b i32)
      call $bucket
      local.set $b
      local.get $b
      local.get 0
      local.get 1
      i32.const 128
      call $get
      local.get $b
      call $drop
      i32.const 128
      i32.load8_u
      if ;; label = @1
        unreachable
      end
      i32.const 256
      i32.const 132
      i32.load8_u
      i32.store8
      i32.const 260
      i32.const 136
      i32.load
      i32.store
      i32.const 264
      i32.const 140
      i32.load
      i32.store
      i32.const 256
    )
    (func (;14;) (type 7) (result i32)
      i32.const 96
      i32.const 5
      i32.const 128
      call $open
      i32.const 128
      i32.load8_u
      i32.eqz
      if ;; label = @1
        i32.const 132
        i32.load
        call $drop
        i32.const 1
        return
      end
      i32.const 0
    )
    (func (;15;) (type 9) (param i32 i32) (result i32)
      (local $b i32)
      call $bucket
      local.set $b
      local.get $b
      local.get 0
      local.get 1
      i32.const 128
      call $exists
      local.get $b
      call $drop
      i32.const 128
      i32.load8_u
      if ;; label = @1
        unreachable
      end
      i32.const 132
      i32.load8_u
    )
    (func (;16;) (type 9) (param i32 i32) (result i32)
      (local $b i32)
      call $bucket
      local.set $b
      local.get $b
      local.get 0
      local.get 1
      i32.const 128
      call $delete
      local.get $b
      call $drop
      i32.const 128
      i32.load8_u
      i32.eqz
    )
    (func (;17;) (type 7) (result i32)
      (local $b i32)
      call $bucket
      local.set $b
      local.get $b
      i32.const 0
      i64.const 0
      i32.const 128
      call $list_keys
      local.get $b
      call $drop
      i32.const 128
      i32.load8_u
      if ;; label = @1
        unreachable
      end
      i32.const 256
      i32.const 136
      i32.load
      i32.store
      i32.const 260
      i32.const 140
      i32.load
      i32.store
      i32.const 256
    )
    (data (;0;) (i32.const 64) "default")
    (data (;1;) (i32.const 80) "count")
    (data (;2;) (i32.const 96) "other")
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core module $wit-component-shim-module (;1;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32 i32 i32)))
    (type (;2;) (func (param i32 i32 i32 i32 i32 i32)))
    (type (;3;) (func (param i32 i32 i64 i32)))
    (type (;4;) (func (param i32 i32 i32 i64 i32)))
    (table (;0;) 7 7 funcref)
    (export "0" (func $indirect-wasi:keyvalue/store@0.2.0-draft-open))
    (export "1" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.get"))
    (export "2" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.set"))
    (export "3" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.exists"))
    (export "4" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.delete"))
    (export "5" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.list-keys"))
    (export "6" (func $indirect-wasi:keyvalue/atomics@0.2.0-draft-increment))
    (export "$imports" (table 0))
    (func $indirect-wasi:keyvalue/store@0.2.0-draft-open (;0;) (type 0) (param i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      i32.const 0
      call_indirect (type 0)
    )
    (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.get" (;1;) (type 1) (param i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 1
      call_indirect (type 1)
    )
    (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.set" (;2;) (type 2) (param i32 i32 i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      local.get 4
      local.get 5
      i32.const 2
      call_indirect (type 2)
    )
    (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.exists" (;3;) (type 1) (param i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 3
      call_indirect (type 1)
    )
    (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.delete" (;4;) (type 1) (param i32 i32 i32 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 4
      call_indirect (type 1)
    )
    (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.list-keys" (;5;) (type 3) (param i32 i32 i64 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      i32.const 5
      call_indirect (type 3)
    )
    (func $indirect-wasi:keyvalue/atomics@0.2.0-draft-increment (;6;) (type 4) (param i32 i32 i32 i64 i32)
      local.get 0
      local.get 1
      local.get 2
      local.get 3
      local.get 4
      i32.const 6
      call_indirect (type 4)
    )
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (core instance $wit-component-shim-instance (;0;) (instantiate $wit-component-shim-module))
  (alias core export $wit-component-shim-instance "0" (core func $indirect-wasi:keyvalue/store@0.2.0-draft-open (;0;)))
  (alias core export $wit-component-shim-instance "1" (core func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.get" (;1;)))
  (alias core export $wit-component-shim-instance "2" (core func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.set" (;2;)))
  (alias core export $wit-component-shim-instance "3" (core func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.exists" (;3;)))
  (alias core export $wit-component-shim-instance "4" (core func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.delete" (;4;)))
  (alias core export $wit-component-shim-instance "5" (core func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.list-keys" (;5;)))
  (alias export $wasi:keyvalue/store@0.2.0-draft "bucket" (type $"#type4 bucket" (@name "bucket") (;4;)))
  (core func $resource.drop (;6;) (canon resource.drop $"#type4 bucket"))
  (core instance $wasi:keyvalue/store@0.2.0-draft (;1;)
    (export "open" (func $indirect-wasi:keyvalue/store@0.2.0-draft-open))
    (export "[method]bucket.get" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.get"))
    (export "[method]bucket.set" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.set"))
    (export "[method]bucket.exists" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.exists"))
    (export "[method]bucket.delete" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.delete"))
    (export "[method]bucket.list-keys" (func $"indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.list-keys"))
    (export "[resource-drop]bucket" (func $resource.drop))
  )
  (alias core export $wit-component-shim-instance "6" (core func $indirect-wasi:keyvalue/atomics@0.2.0-draft-increment (;7;)))
  (core instance $wasi:keyvalue/atomics@0.2.0-draft (;2;)
    (export "increment" (func $indirect-wasi:keyvalue/atomics@0.2.0-draft-increment))
  )
  (core instance $main (;3;) (instantiate $main
      (with "wasi:keyvalue/store@0.2.0-draft" (instance $wasi:keyvalue/store@0.2.0-draft))
      (with "wasi:keyvalue/atomics@0.2.0-draft" (instance $wasi:keyvalue/atomics@0.2.0-draft))
    )
  )
  (alias core export $main "memory" (core memory $memory (;0;)))
  (core module $wit-component-fixup (;2;)
    (type (;0;) (func (param i32 i32 i32)))
    (type (;1;) (func (param i32 i32 i32 i32)))
    (type (;2;) (func (param i32 i32 i32 i32 i32 i32)))
    (type (;3;) (func (param i32 i32 i64 i32)))
    (type (;4;) (func (param i32 i32 i32 i64 i32)))
    (import "actual" "0" (func $0 (;0;) (type 0) (param i32 i32 i32)))
    (import "actual" "1" (func $1 (;1;) (type 1) (param i32 i32 i32 i32)))
    (import "actual" "2" (func $2 (;2;) (type 2) (param i32 i32 i32 i32 i32 i32)))
    (import "actual" "3" (func $3 (;3;) (type 1) (param i32 i32 i32 i32)))
    (import "actual" "4" (func $4 (;4;) (type 1) (param i32 i32 i32 i32)))
    (import "actual" "5" (func $5 (;5;) (type 3) (param i32 i32 i64 i32)))
    (import "actual" "6" (func $6 (;6;) (type 4) (param i32 i32 i32 i64 i32)))
    (import "shim" "$imports" (table (;0;) 7 7 funcref))
    (elem (;0;) (i32.const 0) func $0 $1 $2 $3 $4 $5 $6)
    (@producers
      (processed-by "wit-component" "0.262.0")
    )
  )
  (alias export $wasi:keyvalue/store@0.2.0-draft "open" (func $open (;0;)))
  (alias core export $main "cabi_realloc" (core func $cabi_realloc (;8;)))
  (core func $"#core-func9 indirect-wasi:keyvalue/store@0.2.0-draft-open" (@name "indirect-wasi:keyvalue/store@0.2.0-draft-open") (;9;) (canon lower (func $open) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasi:keyvalue/store@0.2.0-draft "[method]bucket.get" (func $"[method]bucket.get" (;1;)))
  (core func $"#core-func10 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.get" (@name "indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.get") (;10;) (canon lower (func $"[method]bucket.get") (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasi:keyvalue/store@0.2.0-draft "[method]bucket.set" (func $"[method]bucket.set" (;2;)))
  (core func $"#core-func11 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.set" (@name "indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.set") (;11;) (canon lower (func $"[method]bucket.set") (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasi:keyvalue/store@0.2.0-draft "[method]bucket.exists" (func $"[method]bucket.exists" (;3;)))
  (core func $"#core-func12 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.exists" (@name "indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.exists") (;12;) (canon lower (func $"[method]bucket.exists") (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasi:keyvalue/store@0.2.0-draft "[method]bucket.delete" (func $"[method]bucket.delete" (;4;)))
  (core func $"#core-func13 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.delete" (@name "indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.delete") (;13;) (canon lower (func $"[method]bucket.delete") (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasi:keyvalue/store@0.2.0-draft "[method]bucket.list-keys" (func $"[method]bucket.list-keys" (;5;)))
  (core func $"#core-func14 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.list-keys" (@name "indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.list-keys") (;14;) (canon lower (func $"[method]bucket.list-keys") (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (alias export $wasi:keyvalue/atomics@0.2.0-draft "increment" (func $increment (;6;)))
  (core func $"#core-func15 indirect-wasi:keyvalue/atomics@0.2.0-draft-increment" (@name "indirect-wasi:keyvalue/atomics@0.2.0-draft-increment") (;15;) (canon lower (func $increment) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (core instance $actual (;4;)
    (export "0" (func $"#core-func9 indirect-wasi:keyvalue/store@0.2.0-draft-open"))
    (export "1" (func $"#core-func10 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.get"))
    (export "2" (func $"#core-func11 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.set"))
    (export "3" (func $"#core-func12 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.exists"))
    (export "4" (func $"#core-func13 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.delete"))
    (export "5" (func $"#core-func14 indirect-wasi:keyvalue/store@0.2.0-draft-[method]bucket.list-keys"))
    (export "6" (func $"#core-func15 indirect-wasi:keyvalue/atomics@0.2.0-draft-increment"))
  )
  (core instance $fixup (;5;) (instantiate $wit-component-fixup
      (with "actual" (instance $actual))
      (with "shim" (instance $wit-component-shim-instance))
    )
  )
  (type (;5;) (func (result u64)))
  (alias core export $main "bump" (core func $bump (;16;)))
  (func $bump (;7;) (type 5) (canon lift (core func $bump)))
  (export $"#func8 bump" (@name "bump") (;8;) "bump" (func $bump))
  (alias core export $main "bump-then-trap" (core func $bump-then-trap (;17;)))
  (func $bump-then-trap (;9;) (type 5) (canon lift (core func $bump-then-trap)))
  (export $"#func10 bump-then-trap" (@name "bump-then-trap") (;10;) "bump-then-trap" (func $bump-then-trap))
  (type (;6;) (list u8))
  (type (;7;) (func (param "key" string) (param "value" 6) (result bool)))
  (alias core export $main "put" (core func $put (;18;)))
  (func $put (;11;) (type 7) (canon lift (core func $put) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func12 put" (@name "put") (;12;) "put" (func $put))
  (type (;8;) (option 6))
  (type (;9;) (func (param "key" string) (result 8)))
  (alias core export $main "fetch" (core func $fetch (;19;)))
  (func $fetch (;13;) (type 9) (canon lift (core func $fetch) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func14 fetch" (@name "fetch") (;14;) "fetch" (func $fetch))
  (type (;10;) (func (result bool)))
  (alias core export $main "open-other" (core func $open-other (;20;)))
  (func $open-other (;15;) (type 10) (canon lift (core func $open-other)))
  (export $"#func16 open-other" (@name "open-other") (;16;) "open-other" (func $open-other))
  (type (;11;) (func (param "key" string) (result bool)))
  (alias core export $main "has" (core func $has (;21;)))
  (func $has (;17;) (type 11) (canon lift (core func $has) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func18 has" (@name "has") (;18;) "has" (func $has))
  (alias core export $main "forget" (core func $forget (;22;)))
  (func $forget (;19;) (type 11) (canon lift (core func $forget) (memory $memory) (realloc $cabi_realloc) string-encoding=utf8))
  (export $"#func20 forget" (@name "forget") (;20;) "forget" (func $forget))
  (type (;12;) (list string))
  (type (;13;) (func (result 12)))
  (alias core export $main "keys" (core func $keys (;23;)))
  (func $keys (;21;) (type 13) (canon lift (core func $keys) (memory $memory) string-encoding=utf8))
  (export $"#func22 keys" (@name "keys") (;22;) "keys" (func $keys))
  (@producers
    (processed-by "wit-component" "0.262.0")
  )
)
