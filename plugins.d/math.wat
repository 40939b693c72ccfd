;; math: pure arithmetic through the core ABI — typed numeric params in, numbers out.
;;   wasmd call math.add 2 3          -> 5
;;   wasmd call math.div 7 0          -> error 4 (trap: integer divide by zero)
;;   wasmd call math.fib 40           -> 102334155 (CPU-bound; math.toml gives it 2 instances)
(module
  (func (export "add") (param $a i32) (param $b i32) (result i32)
    (i32.add (local.get $a) (local.get $b)))

  (func (export "sub") (param $a i64) (param $b i64) (result i64)
    (i64.sub (local.get $a) (local.get $b)))

  (func (export "div") (param $a i32) (param $b i32) (result i32)
    (i32.div_s (local.get $a) (local.get $b)))

  (func (export "hypot") (param $x f64) (param $y f64) (result f64)
    (f64.sqrt (f64.add (f64.mul (local.get $x) (local.get $x))
                       (f64.mul (local.get $y) (local.get $y)))))

  (func (export "divmod") (param $a i32) (param $b i32) (result i32 i32)
    (i32.div_u (local.get $a) (local.get $b))
    (i32.rem_u (local.get $a) (local.get $b)))

  ;; Iterative Fibonacci: fib(n) in n steps, wrapping past i64.
  (func (export "fib") (param $n i32) (result i64)
    (local $a i64) (local $b i64) (local $t i64)
    (local.set $b (i64.const 1))
    (block $done
      (loop $step
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $t (i64.add (local.get $a) (local.get $b)))
        (local.set $a (local.get $b))
        (local.set $b (local.get $t))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $step)))
    (local.get $a))
)
