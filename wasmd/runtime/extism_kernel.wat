;; wasmd's own implementation of the Extism kernel: the memory that Extism plug-ins address
;; with 64-bit offsets, and the imports of "extism:host/env" that touch it. It is written
;; in WAT and instantiated beside each plug-in, so the plug-in's byte-by-byte loads and
;; stores are calls from wasm to wasm, never a trip into Python.
;;
;; Layout: a block is an 8-byte header holding its length, then its bytes; an offset names
;; the first byte, so the header sits at offset - 8. Offset 0 means "none". Allocation is a
;; bump pointer that the host resets before every call (Extism's memory does not outlive a
;; call); free is accepted and does nothing.
(module
  (memory (export "memory") 1)
  (global $top (mut i64) (i64.const 8))
  (global $input_offset (mut i64) (i64.const 0))
  (global $input_length (mut i64) (i64.const 0))
  (global $output_offset (mut i64) (i64.const 0))
  (global $output_length (mut i64) (i64.const 0))
  (global $error (mut i64) (i64.const 0))

  ;; Offsets beyond 4 GiB cannot address this memory: trap rather than wrap.
  (func $addr (param $offs i64) (result i32)
    (if (i64.gt_u (local.get $offs) (i64.const 0xffffffff)) (then unreachable))
    (i32.wrap_i64 (local.get $offs)))

  (func $alloc (export "alloc") (param $n i64) (result i64)
    (local $offs i64) (local $end i64) (local $pages i64)
    (local.set $offs (i64.add (global.get $top) (i64.const 8)))
    ;; keep blocks 8-aligned so load_u64/store_u64 stay aligned
    (local.set $end (i64.and (i64.add (i64.add (local.get $offs) (local.get $n)) (i64.const 7))
                             (i64.const -8)))
    (if (i64.gt_u (local.get $end) (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
      (then
        (local.set $pages (i64.sub (i64.shr_u (i64.add (local.get $end) (i64.const 65535))
                                              (i64.const 16))
                                   (i64.extend_i32_u (memory.size))))
        ;; Past memory_max, grow returns -1: then there is no memory to give.
        (if (i32.eq (memory.grow (i32.wrap_i64 (local.get $pages))) (i32.const -1))
          (then (return (i64.const 0))))))
    (i64.store (call $addr (global.get $top)) (local.get $n))
    (global.set $top (local.get $end))
    (local.get $offs))

  (func (export "free") (param $offs i64))

  (func $length (export "length") (param $offs i64) (result i64)
    (if (i32.or (i64.lt_u (local.get $offs) (i64.const 16))
                (i64.ge_u (local.get $offs) (global.get $top)))
      (then (return (i64.const 0))))
    (i64.load (call $addr (i64.sub (local.get $offs) (i64.const 8)))))

  (func (export "length_unsafe") (param $offs i64) (result i64)
    (call $length (local.get $offs)))

  (func (export "load_u8") (param $offs i64) (result i32)
    (i32.load8_u (call $addr (local.get $offs))))
  (func (export "load_u64") (param $offs i64) (result i64)
    (i64.load (call $addr (local.get $offs))))
  (func (export "store_u8") (param $offs i64) (param $v i32)
    (i32.store8 (call $addr (local.get $offs)) (local.get $v)))
  (func (export "store_u64") (param $offs i64) (param $v i64)
    (i64.store (call $addr (local.get $offs)) (local.get $v)))

  (func (export "input_length") (result i64) (global.get $input_length))
  (func (export "input_offset") (result i64) (global.get $input_offset))
  (func (export "input_load_u8") (param $i i64) (result i32)
    (i32.load8_u (call $addr (i64.add (global.get $input_offset) (local.get $i)))))
  (func (export "input_load_u64") (param $i i64) (result i64)
    (i64.load (call $addr (i64.add (global.get $input_offset) (local.get $i)))))

  (func (export "output_set") (param $offs i64) (param $n i64)
    (global.set $output_offset (local.get $offs))
    (global.set $output_length (local.get $n)))
  (func (export "error_set") (param $offs i64) (global.set $error (local.get $offs)))

  ;; For the host, not the plug-in: start a call with this input, then read what it left.
  (func (export "wasmd_begin") (param $n i64) (result i64)
    (global.set $top (i64.const 8))
    (global.set $output_offset (i64.const 0))
    (global.set $output_length (i64.const 0))
    (global.set $error (i64.const 0))
    (global.set $input_offset (call $alloc (local.get $n)))
    (global.set $input_length (local.get $n))
    (global.get $input_offset))
  (func (export "wasmd_output_offset") (result i64) (global.get $output_offset))
  (func (export "wasmd_output_length") (result i64) (global.get $output_length))
  (func (export "wasmd_error") (result i64) (global.get $error))
)
