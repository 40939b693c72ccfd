"""A catalog of hostile plug-ins: each does one bad thing on purpose (issue 7).

Each entry: the files to drop in, the call to make, and the precise outcome — an error code
from the call, or a load failure (calls answer ``unavailable``) — plus a fragment that the
message must contain, and a string (a secret's bytes) that no message, listing or event may.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wasmd import ErrorCode

from .wat import BIG_MEMORY, RECURSE, SPIN, UNKNOWN_IMPORT
from .wat_abi import EXITING_CORE, flood_command


@dataclass(frozen=True)
class Hostile:
    name: str
    files: dict[str, str | bytes]
    method: str
    params: list[Any] = field(default_factory=list)
    code: ErrorCode = ErrorCode.TRAP
    fragment: str = ""
    result: Any = None  # for the cases that must simply succeed harmlessly
    # Entries that are not plain files (links, FIFOs): each makes its path.
    specials: dict[str, Callable[[Path], None]] = field(default_factory=dict)
    absent: str | None = None  # must appear in no error message, listing or event
    # The most the daemon's peak RSS may grow during the call, for the cases that try to
    # make the host hold memory outside the guest's linear memory.
    rss_growth_max: int | None = None


# The first line of a file only root may read, as /etc/shadow's would be.
SECRET = "root:$y$j9T$wasmd-test-secret:19700:0:99999:7:::"


def link_to_a_secret(path: Path) -> None:
    """A link to a root-only file outside the plug-in directory."""
    secret = path.parent.parent / "secret.txt"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    path.symlink_to(secret)


def link_to_nothing(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere.toml")


def fifo(path: Path) -> None:
    os.mkfifo(path)


GROW_BOMB = """(module (memory (export "memory") 1)
  (func (export "bomb")
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))"""

OOB = """(module (memory 1)
  (func (export "poke") (result i32) (i32.load (i32.const 70000))))"""

DIVIDE = """(module (func (export "div") (param i32) (result i32)
  (i32.div_u (i32.const 1) (local.get 0))))"""

UNREACHABLE = """(module (func (export "boom") unreachable))"""

LOG_FLOOD = """(module
  (import "wasmd" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "flood")
  (func (export "flood") (result i32)
    (local $i i32)
    (loop $more
      (call $log (i32.const 1) (i32.const 0) (i32.const 5))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 5000))))
    (local.get $i)))"""

WASI_UNGRANTED = """(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "/etc/passwd")
  ;; errno of opening /etc/passwd through fd 3 (none is granted), plus 1000 x the number
  ;; of environment variables it can see (none).
  (func (export "try") (result i32)
    (drop (call $env (i32.const 0) (i32.const 4)))
    (i32.add
      (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 11)
        (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8))
      (i32.mul (i32.load (i32.const 0)) (i32.const 1000)))))"""

FUEL_BURNER = """(module (func (export "burn") (result i32)
  (local $i i32)
  (loop $more
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $more (i32.lt_u (local.get $i) (i32.const 100000000))))
  (local.get $i)))"""

# Grows its table by a million elements at a time, 64 times (~512 MiB of host memory) unless
# a grow fails first: then it aborts. Without a table limit it returns the table's size.
TABLE_GROW_BOMB = """(module
  (table $t 1 funcref)
  (func (export "grow") (result i32)
    (local $i i32)
    (loop $more
      (if (i32.eq (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const -1))
        (then unreachable))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 64))))
    (table.size $t)))"""

# A persistent WASI guest writing 64 KiB to stdout 8,192 times (512 MiB) in one call, until a
# write fails: it returns how many writes succeeded in full.
FD_WRITE_FLOOD = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "flood") (result i32)
    (local $i i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (block $failed
      (loop $more
        (br_if $failed (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $failed (i32.ne (i32.load (i32.const 8)) (i32.const 65536)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $more (i32.lt_u (local.get $i) (i32.const 8192)))))
    (local.get $i)))"""

# A msgpack-ABI guest whose wasmd_alloc spins when asked for 7 bytes: the size of its config
# value, so the spin happens inside config_get, a host function calling back into the guest.
CONFIG_GET_ALLOC_SPINS = """(module
  (import "wasmd" "config_get" (func $config_get (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "key")
  (func (export "wasmd_alloc") (param $n i32) (result i32)
    (if (i32.eq (local.get $n) (i32.const 7)) (then (loop $spin (br $spin))))
    (i32.const 1024))
  (func (export "get") (param i32 i32) (result i64)
    (drop (call $config_get (i32.const 0) (i32.const 3)))
    (i64.const 0)))"""

# Emits bytes that are no msgpack value at all (0xc1 is msgpack's one unused byte).
EMIT_GARBAGE = """(module
  (import "wasmd" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\\c1")
  (func (export "emit") (call $emit (i32.const 0) (i32.const 1))))"""


def link_to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


MiB = 1024 * 1024

CATALOG = [
    # Deadlines short enough not to dominate the suite: whatever the length, a spin only ends
    # by the deadline.
    Hostile(
        "infinite-loop",
        {"h.wat": SPIN, "h.toml": "[plugin]\ntimeout_ms = 50\n"},
        "spin",
        code=ErrorCode.TIMEOUT,
        fragment="deadline of 50 ms",
    ),
    Hostile("deep-recursion", {"h.wat": RECURSE}, "recurse", [0], fragment="call stack exhausted"),
    Hostile(
        "grow-bomb",
        {"h.wat": GROW_BOMB, "h.toml": '[plugin]\nmemory_max = "4 MiB"\n'},
        "bomb",
        code=ErrorCode.RESOURCE_EXHAUSTED,
        fragment="memory limit of 4194304",
    ),
    Hostile(
        "huge-initial-memory",
        {"h.wat": BIG_MEMORY, "h.toml": '[plugin]\nmemory_max = "1 MiB"\n'},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="exceeds memory limits",
    ),
    Hostile("unreachable", {"h.wat": UNREACHABLE}, "boom", fragment="unreachable"),
    Hostile("divide-by-zero", {"h.wat": DIVIDE}, "div", [0], fragment="divide by zero"),
    Hostile("out-of-bounds", {"h.wat": OOB}, "poke", fragment="out of bounds"),
    Hostile("proc-exit-persistent", {"h.wat": EXITING_CORE}, "leave", fragment="proc_exit(7)"),
    Hostile(
        "enormous-output",
        {"h.wat": flood_command(17 * 16)},
        "run",
        [""],
        code=ErrorCode.RESOURCE_EXHAUSTED,
        fragment="more than 16777216 bytes",
    ),
    # About flooding, not speed: a deadline far from what 5,000 host calls take on a loaded
    # machine through the slower public-API call path, and still 25x the log burst.
    Hostile(
        "host-import-flood",
        {"h.wat": LOG_FLOOD, "h.toml": "[plugin]\ntimeout_ms = 30000\n"},
        "flood",
        result=5000,
    ),
    Hostile(
        "table-grow-bomb",
        {"h.wat": TABLE_GROW_BOMB},
        "grow",
        fragment="unreachable",
        rss_growth_max=64 * MiB,
    ),
    # The stream is sealed: the writes past its room fail inside the guest as they happen.
    # A fresh instance's stdout has room for 2 x 16 MiB + one page: 512 whole writes.
    Hostile(
        "fd-write-flood",
        {"h.wat": FD_WRITE_FLOOD, "h.toml": "[plugin]\ntimeout_ms = 30000\n"},
        "flood",
        result=512,
        rss_growth_max=64 * MiB,
    ),
    Hostile(
        "fd-write-flood-command",
        {"h.wat": flood_command(8192), "h.toml": "[plugin]\ntimeout_ms = 30000\n"},
        "run",
        [""],
        code=ErrorCode.RESOURCE_EXHAUSTED,
        fragment="(the writes past it failed)",
        rss_growth_max=64 * MiB,
    ),
    # Issue 13: the deadline, hit inside wasmd_alloc called from config_get, is a timeout.
    Hostile(
        "deadline-inside-config-get",
        {
            "h.wat": CONFIG_GET_ALLOC_SPINS,
            "h.toml": '[plugin]\ntimeout_ms = 50\n[config]\nkey = "1234567"\n',
        },
        "get",
        code=ErrorCode.TIMEOUT,
        fragment="deadline of 50 ms",
    ),
    Hostile(
        "emit-garbage",
        {"h.wat": EMIT_GARBAGE},
        "emit",
        fragment="emit was misused: the event is not one msgpack value",
    ),
    Hostile("wasi-without-grants", {"h.wat": WASI_UNGRANTED}, "try", result=8),  # EBADF
    Hostile("unknown-import", {"h.wat": UNKNOWN_IMPORT}, "uses", fragment="env::exotic"),
    Hostile(
        "fuel-exhausted",
        {"h.wat": FUEL_BURNER, "h.toml": "[plugin]\nfuel = 100000\n"},
        "burn",
        code=ErrorCode.RESOURCE_EXHAUSTED,
        fragment="fuel",
    ),
    Hostile(
        "invalid-bytes",
        {"h.wasm": b"\x00asm\x01\x00\x00\x00\x01\xff\xff"},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="invalid module",
    ),
    Hostile(
        "not-wasm-at-all",
        {"h.wasm": b"#!/bin/sh\nrm -rf /\n"},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="invalid module",
    ),
    Hostile(
        "truncated-bytes",
        {"h.wasm": b"\x00asm\x01\x00"},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="invalid module",
    ),
    Hostile(
        "zero-byte-file", {"h.wasm": b""}, "f", code=ErrorCode.UNAVAILABLE, fragment="is empty"
    ),
    Hostile(
        "preopen-outside-folder",
        {
            "h/plugin.wat": UNREACHABLE,
            "h/plugin.toml": '[wasi]\npreopens = [{ host = "..", guest = "/x" }]\n',
        },
        "boom",
        code=ErrorCode.UNAVAILABLE,
        fragment="outside the plug-in's folder",
    ),
    # Issue 12: a flat plug-in's "folder" is the shared plug-in directory; a writable grant on
    # it let a guest read every manifest, drop in code, plant links and grow files.
    Hostile(
        "preopen-the-plugin-directory",
        {
            "h.wat": UNREACHABLE,
            "h.toml": '[wasi]\npreopens = [{ host = ".", guest = "/d", writable = true }]\n',
        },
        "boom",
        code=ErrorCode.UNAVAILABLE,
        fragment="only a folder plug-in (NAME/plugin.wasm) may preopen",
    ),
    Hostile(
        "preopen-own-folder",
        {
            "h/plugin.wat": UNREACHABLE,
            "h/plugin.toml": '[wasi]\npreopens = [{ host = ".", guest = "/d", writable = true }]\n',
        },
        "boom",
        code=ErrorCode.UNAVAILABLE,
        fragment="which holds its module and manifest",
    ),
    Hostile(
        "module-linked-to-a-secret",
        {},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="does not follow links",
        specials={"h.wat": link_to_a_secret},
        absent=SECRET,
    ),
    Hostile(
        "module-linked-to-dev-zero",
        {},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="symbolic link: wasmd does not follow links",
        specials={"h.wasm": link_to_dev_zero},
    ),
    Hostile(
        "secret-text-as-wat",
        {"h.wat": SECRET + "\n"},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="invalid WAT at line 1, column 1",
        absent="wasmd-test-secret",
    ),
    Hostile(
        "secret-text-as-wasm",
        {"h.wasm": SECRET + "\n"},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="not a WebAssembly binary",
        absent="wasmd-test-secret",
    ),
    Hostile(
        "manifest-replaced-by-a-dangling-link",
        {"h.wat": UNREACHABLE},
        "boom",
        code=ErrorCode.UNAVAILABLE,
        fragment="cannot read manifest: symbolic link",
        specials={"h.toml": link_to_nothing},
    ),
    Hostile(
        "module-is-a-fifo",
        {},
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="not a regular file",
        specials={"h.wasm": fifo},
    ),
    Hostile(
        "secret-in-a-bad-manifest",
        {"h.wat": UNREACHABLE, "h.toml": "[config]\nDB_PASSWORD = 918273645\n"},
        "boom",
        code=ErrorCode.UNAVAILABLE,
        fragment="config.DB_PASSWORD: must be a string, got an integer",
        absent="918273645",
    ),
    Hostile(
        "huge-manifest",
        {"h.wat": UNREACHABLE, "h.toml": "# x\n" * 400_000},
        "boom",
        code=ErrorCode.UNAVAILABLE,
        fragment="limit 1 MiB",
    ),
    Hostile(
        "bad-manifest-key",
        {"h.wat": UNREACHABLE, "h.toml": "[plugin]\nevil = 1\n"},
        "boom",
        code=ErrorCode.UNAVAILABLE,
        fragment="plugin.evil",
    ),
    Hostile(
        "wrong-host-import-type",
        {
            "h.wat": """(module
      (import "wasmd" "log" (func (param i64)))
      (func (export "f")))"""
        },
        "f",
        code=ErrorCode.UNAVAILABLE,
        fragment="wasmd::log must be",
    ),
]
