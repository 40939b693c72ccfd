;; counter: state that lives between calls (mode = "persistent", the default).
;;   wasmd call counter.incr       -> 1, then 2, 3 ...
;;   wasmd call counter.add 10     -> previous + 10
;;   wasmd call counter.get
;;   wasmd call counter.reset
;; A trap (counter.fail) discards the instance, so the count starts again from 0.
(module
  (global $count (mut i64) (i64.const 0))
  (func (export "incr") (result i64)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (global.get $count))
  (func (export "add") (param $n i64) (result i64)
    (global.set $count (i64.add (global.get $count) (local.get $n)))
    (global.get $count))
  (func (export "get") (result i64) (global.get $count))
  (func (export "reset") (global.set $count (i64.const 0)))
  (func (export "fail") unreachable)
)
