;; slow: calls that overrun their deadline. slow.toml sets timeout_ms = 250, so
;;   wasmd call slow.spin          -> error 5 (timeout) after ~250 ms
;;   wasmd call slow.work 1000     -> finishes: a bounded loop of 1000 iterations
;; While slow.spin runs, every other plug-in and wasmd.ping keep answering.
(module
  (func (export "spin") (loop $forever (br $forever)))
  (func (export "work") (param $n i64) (result i64)
    (local $i i64)
    (block $done
      (loop $step
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $step)))
    (local.get $i))
)
