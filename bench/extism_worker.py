"""The Extism side of scenario 3, in a child process of its own.

``python -m bench.extism_worker`` loads ``plugins.EXTISM_ADD`` with the Extism Python SDK and
prints ``ready VERSION``; then, for each line ``N`` it reads, it times ``N`` calls of
``Plugin.call("add", b"\\x02\\x03")`` and prints the mean ns per call. Its own process, so that
Extism's embedded wasmtime never shares a process with wasmtime-py's, and a crash in it costs
one row, not the run. Any failure is printed as ``error REASON`` and ends it.
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    try:
        import extism  # type: ignore[import-untyped,import-not-found,unused-ignore]

        from .plugins import EXTISM_ADD, wat2wasm

        plugin = extism.Plugin(wat2wasm(EXTISM_ADD), wasi=False, functions=[])
        result = plugin.call("add", b"\x02\x03")
        if bytes(result) != b"\x05":
            raise RuntimeError(f"add(2, 3) returned {bytes(result)!r}")
        print(f"ready {extism.extism_version()}", flush=True)
    except Exception as exc:
        print(f"error {exc!r}", flush=True)
        return 1
    call = plugin.call
    for line in sys.stdin:
        calls = int(line)
        start = time.perf_counter_ns()
        for _ in range(calls):
            call("add", b"\x02\x03")
        print((time.perf_counter_ns() - start) / calls, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
