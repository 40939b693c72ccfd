"""Hand-written guests for the msgpack and command ABIs, so their tests need no toolchain."""

# msgpack ABI. A bump allocator that wraps around (the host copies results out at once);
# "echo" returns its input, the msgpack params array, untouched.
MSGPACK_GUEST = r"""(module
  (import "wasmd" "error" (func $error (param i32 i32)))
  (import "wasmd" "log" (func $log (param i32 i32 i32)))
  (import "wasmd" "emit" (func $emit (param i32 i32)))
  (import "wasmd" "config_get" (func $config_get (param i32 i32) (result i64)))
  (memory (export "memory") 40)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 16) "echo refused on purpose")
  (data (i32.const 64) "greeting")
  (data (i32.const 80) "\81\a4kind\a5hello")
  (data (i32.const 96) "a line from the guest")
  (data (i32.const 128) "\c1")

  (func $alloc (export "wasmd_alloc") (param $n i32) (result i32)
    (local $p i32)
    (if (i32.gt_u (i32.add (global.get $bump) (local.get $n)) (i32.const 2600000))
      (then (global.set $bump (i32.const 4096))))
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $n)))
    (local.get $p))

  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))

  (func (export "echo") (param $p i32) (param $n i32) (result i64)
    (call $pack (local.get $p) (local.get $n)))

  (func (export "fail") (param $p i32) (param $n i32) (result i64)
    (call $error (i32.const 16) (i32.const 23))
    (i64.const 0))

  (func (export "nothing") (param $p i32) (param $n i32) (result i64)
    (call $log (i32.const 1) (i32.const 96) (i32.const 21))
    (call $emit (i32.const 80) (i32.const 12))
    (i64.const 0))

  ;; The manifest's [config] greeting, as a msgpack str (fixstr: values under 32 bytes).
  (func (export "greeting") (param $p i32) (param $n i32) (result i64)
    (local $header i32) (local $got i64) (local $len i32)
    (local.set $header (call $alloc (i32.const 1)))
    (local.set $got (call $config_get (i32.const 64) (i32.const 8)))
    (if (i64.eq (local.get $got) (i64.const -1))
      (then (i32.store8 (local.get $header) (i32.const 0xc0))  ;; nil
            (return (call $pack (local.get $header) (i32.const 1)))))
    (local.set $len (i32.wrap_i64 (local.get $got)))
    (i32.store8 (local.get $header) (i32.or (i32.const 0xa0) (local.get $len)))
    (call $pack (local.get $header) (i32.add (local.get $len) (i32.const 1))))

  ;; Emits its input minus the params array's header: the bytes the caller packed after it.
  (func (export "emit_after_header") (param $p i32) (param $n i32) (result i64)
    (call $emit (i32.add (local.get $p) (i32.const 1)) (i32.sub (local.get $n) (i32.const 1)))
    (i64.const 0))

  ;; Claims a 5 MiB result (past the limit; checked before the bytes are looked at).
  (func (export "huge_result") (param $p i32) (param $n i32) (result i64)
    (call $pack (i32.const 0) (i32.const 0x500000)))

  (func (export "bad_pointer") (param $p i32) (param $n i32) (result i64)
    (call $pack (i32.const 0xffff0000) (i32.const 100)))

  (func (export "not_msgpack") (param $p i32) (param $n i32) (result i64)
    (call $pack (i32.const 128) (i32.const 1)))

  (func (export "bad_log") (param $p i32) (param $n i32) (result i64)
    (call $log (i32.const 1) (i32.const 0x7fffffff) (i32.const 50))
    (i64.const 0))

  (func (export "not_a_method") (param i32) (result i32) (local.get 0))
)"""

# WASI command "cat": copies stdin to stdout, says "args: N" on stderr, and exits with
# code argc - 1 (so no args exits 0, two args exit 2).
CAT_COMMAND = r"""(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (data (i32.const 200) "args: ")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $n i32) (local $argc i32)
    (block $eof
      (loop $more
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 60000))
        (drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
        (local.set $n (i32.load (i32.const 24)))
        (br_if $eof (i32.eqz (local.get $n)))
        (call $write (i32.const 1) (i32.const 1024) (local.get $n))
        (br $more)))
    (drop (call $args_sizes (i32.const 32) (i32.const 36)))
    (local.set $argc (i32.load (i32.const 32)))
    (i32.store8 (i32.const 206) (i32.add (i32.const 48) (local.get $argc)))
    (i32.store8 (i32.const 207) (i32.const 10))
    (call $write (i32.const 2) (i32.const 200) (i32.const 8))
    (call $exit (i32.sub (local.get $argc) (i32.const 1))))
)"""


# A command that writes 64 KiB to stdout COUNT times, then exits 0.
def flood_command(count: int) -> str:
    return r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (local $i i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (block $done
      (loop $again
        (br_if $done (i32.ge_u (local.get $i) (i32.const COUNT)))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again))))
)""".replace("COUNT", str(count))


# A command that opens "secret.txt" in the first preopened directory (fd 3) and copies it
# to stdout; without a grant fd 3 does not exist, and it prints the WASI errno and exits 1.
READ_SECRET_COMMAND = r"""(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (data (i32.const 300) "secret.txt")
  (data (i32.const 320) "errno ")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $errno i32) (local $fd i32)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 300) (i32.const 10)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 40)))
    (if (local.get $errno)
      (then
        (i32.store8 (i32.const 326)
          (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
        (call $write (i32.const 2) (i32.const 320) (i32.const 7))
        (call $exit (i32.const 1))))
    (local.set $fd (i32.load (i32.const 40)))
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const 4096))
    (drop (call $fd_read (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24)))
    (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
)"""

# A persistent (core ABI) plug-in that exits: proc_exit must not take the daemon down.
EXITING_CORE = r"""(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "leave") (call $exit (i32.const 7)))
  (func (export "stay") (result i32) (i32.const 1))
)"""

# A persistent plug-in that prints: its stdout and stderr belong in the daemon log.
PRINTING_CORE = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello from stdout\nsecond line\n")
  (data (i32.const 200) "oops on stderr\n")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "talk") (result i32)
    (call $write (i32.const 1) (i32.const 100) (i32.const 30))
    (call $write (i32.const 2) (i32.const 200) (i32.const 15))
    (i32.const 0))
)"""


def relay_guest(targets: dict[str, str]) -> str:
    """A msgpack-ABI guest whose export E calls ``targets[E]`` (``PLUGIN.EXPORT``) through
    ``wasmd.call`` with its own params, and returns the ``[error, result]`` answer as is."""
    data, exports, offset = [], [], 16
    for export, method in targets.items():
        data.append(f'  (data (i32.const {offset}) "{method}")')
        exports.append(
            f'  (func (export "{export}") (param $p i32) (param $n i32) (result i64)\n'
            f"    (call $call (i32.const {offset}) (i32.const {len(method)})"
            " (local.get $p) (local.get $n)))"
        )
        offset += len(method) + 1
    return "\n".join(
        [
            "(module",
            '  (import "wasmd" "call" (func $call (param i32 i32 i32 i32) (result i64)))',
            '  (memory (export "memory") 8)',
            "  (global $bump (mut i32) (i32.const 4096))",
            *data,
            '  (func (export "wasmd_alloc") (param $n i32) (result i32) (local $p i32)',
            "    (if (i32.gt_u (i32.add (global.get $bump) (local.get $n)) (i32.const 500000))",
            "      (then (global.set $bump (i32.const 4096))))",
            "    (local.set $p (global.get $bump))",
            "    (global.set $bump (i32.add (global.get $bump) (local.get $n)))",
            "    (local.get $p))",
            *exports,
            ")",
        ]
    )
