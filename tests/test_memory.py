"""Memory a failure must not keep: a failed build's bytes, a trapped call's instance.

An exception's traceback holds the frames it passed through, and they hold what the build or
the call was working on (the module's bytes, the copy wasmtime was handed, the params, the
discarded instance and its Store). If one of those frames also holds the exception, the lot
is a cycle that reference counting never frees: it waits for the cyclic collector, whose
full passes come rarely, so six broken 100 MiB reloads took the daemon from 50 to 1,251 MiB.
These tests disable the collector and check that nothing of a failure is left for it.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import tracemalloc
import types
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import wasmtime
from prometheus_client.registry import CollectorRegistry

from wasmd import Loader, WasmdError
from wasmd.client import SyncClient
from wasmd.errors import PluginLoadError
from wasmd.metrics import write_textfile_forever
from wasmd.plugins.build import off_loop
from wasmd.runtime.instance import Instance

from .conftest import running_daemon, serve_command
from .helpers import replace_atomically, subscribe
from .processes import reaped, resident_bytes, until
from .test_plugin_calls import plugins
from .wat import ARITH, MEMORY, START_TRAPS

MiB = 1024 * 1024


@contextmanager
def collector_off() -> Iterator[None]:
    """The cyclic collector disabled: what reference counting does not free stays."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cyclic_garbage() -> list[str]:
    """The frames and exceptions that only the cyclic collector would free now."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [_describe(o) for o in gc.garbage if isinstance(o, types.FrameType | BaseException)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


def _describe(thing: object) -> str:
    if isinstance(thing, types.FrameType):
        code = thing.f_code
        return f"frame {code.co_name} ({Path(code.co_filename).name}:{thing.f_lineno})"
    return repr(thing)


async def error_of(call: Awaitable[object]) -> str:
    """The message of the error ``call`` fails with (the exception itself is not kept)."""
    try:
        await call
    except WasmdError as exc:
        return exc.message
    raise AssertionError("the call succeeded")


class Held:
    """Something a failed function was working on, that a weak reference can watch."""


async def test_off_loop_keeps_nothing_of_a_failed_call() -> None:
    def fails(held: Held) -> None:
        working_on = held  # a frame of the traceback holds it, as a build holds its bytes
        raise ValueError(f"cannot build {working_on}")

    with collector_off():
        held = Held()
        watch = weakref.ref(held)
        with suppress(ValueError):
            await off_loop(fails, held)
        del held
        # Its thread may take a moment to return after handing the error over.
        with anyio.move_on_after(5):
            while True:
                if watch() is None:
                    break
                await anyio.sleep(0.01)
        assert watch() is None, "the failed call's frames are still alive"
        assert cyclic_garbage() == []


def _broken_module(size: int, seed: int) -> bytes:
    """A binary module's header, then bytes wasmtime refuses."""
    return b"\0asm\x01\0\0\0" + bytes([seed]) * size


def _start_traps(size: int, seed: int) -> bytes:
    """A valid module whose start code traps, made ``size`` bytes big by a custom section."""
    module = wasmtime.wat2wasm(START_TRAPS)
    payload = b"\x04fill" + bytes([seed]) * size
    length, leb = len(payload), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        leb.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes(module) + b"\0" + bytes(leb) + payload


@pytest.mark.parametrize(
    ("make", "setting"),
    [
        pytest.param(_broken_module, "", id="invalid-module"),
        pytest.param(_broken_module, "cache", id="invalid-module-with-compile-cache"),
        pytest.param(_start_traps, "", id="start-code-traps"),
        pytest.param(_start_traps, "cache", id="start-code-traps-with-compile-cache"),
        pytest.param(_broken_module, "pinned", id="refused-by-its-pin"),
    ],
)
async def test_failed_reloads_keep_no_bytes(
    short_tmp: Path, make: Callable[[int, int], bytes], setting: str
) -> None:
    """The issue's case: a plug-in directory's writer reloads big broken versions."""
    size = 8 * MiB
    extra: dict[str, Any] = {"watch": True, "cache_dir": None}  # no cache unless "cache"
    if setting == "cache":
        extra["cache_dir"] = short_tmp / "cache"
    if setting == "pinned":
        (short_tmp / "trust.toml").write_text('[sha256]\nbig = "' + "0" * 64 + '"\n')
        extra["trust_file"] = short_tmp / "trust.toml"
    async with running_daemon(short_tmp, {}, **extra) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.failed")
        target = daemon.plugins_dir / "big.wasm"

        async def fail_once(seed: int) -> None:
            replace_atomically(target, make(size, seed))
            await events.next()
            await client.call("wasmd.ping")  # the failure's handling has finished

        with collector_off():
            await fail_once(0)  # the first failure of a name makes its lasting state
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for seed in range(1, 5):
                    await fail_once(seed)
                # A rescan the watcher started meanwhile may still be reading the file. Polled
                # against a clock, not in a cancel scope: a cancellation would leave its own
                # exception in the garbage this test looks at (seen on a loaded machine).
                give_up = time.monotonic() + 30
                kept = tracemalloc.get_traced_memory()[0] - before
                while kept >= size and time.monotonic() < give_up:
                    await anyio.sleep(0.05)
                    kept = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            garbage = cyclic_garbage()
    assert kept < size, f"4 failed builds of {size} bytes kept {kept} bytes"
    assert garbage == []


async def test_refused_loads_keep_no_bytes(short_tmp: Path) -> None:
    size = 8 * MiB
    async with running_daemon(short_tmp, {}) as daemon, daemon.client() as client:
        path = short_tmp / "big.wasm"
        with collector_off():
            for seed in range(4):
                path.write_bytes(_start_traps(size, seed))
                assert "cannot instantiate" in await error_of(client.call("wasmd.load", str(path)))
                path.write_bytes(_broken_module(size, seed))
                assert "invalid module" in await error_of(client.call("wasmd.load", str(path)))
                # The manifest is read after the module: its error held the module's bytes.
                path.with_suffix(".toml").write_bytes(b"\xff")
                assert "not valid UTF-8" in await error_of(client.call("wasmd.load", str(path)))
                path.with_suffix(".toml").unlink()
            garbage = cyclic_garbage()
    assert garbage == [], "\n".join(garbage)


async def test_a_textfile_that_cannot_be_written_keeps_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed round (here: the folder is missing) kept the metrics text in a cycle."""
    registry = CollectorRegistry()
    with collector_off():
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_textfile_forever, tmp_path / "missing" / "wasmd.prom", registry, 60)
            with anyio.fail_after(10):
                while True:  # the first round has failed
                    if "cannot write metrics" in caplog.text:
                        break
                    await anyio.sleep(0.01)
            garbage = cyclic_garbage()  # before the writer is cancelled (which makes some)
            tg.cancel_scope.cancel()
    assert garbage == [], "\n".join(garbage)


def _live_instances() -> int:
    return sum(isinstance(thing, Instance) for thing in gc.get_objects())


async def test_trapped_calls_let_go_of_their_instances(short_tmp: Path, call_path: str) -> None:
    """A trap discards its instance (and its Store, with all its memory): at once, not when
    the cyclic collector next runs."""
    plugins = {"mem.wat": MEMORY, "arith.wat": ARITH}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        with collector_off():
            for _ in range(5):
                assert await client.call("mem.grow", 16) == 1  # 1 MiB more
                assert "out of bounds" in await error_of(client.call("mem.poke", 64 * MiB))
                assert "divide by zero" in await error_of(client.call("arith.div", 1, 0))
            live = _live_instances()
            garbage = cyclic_garbage()
    assert live <= 2  # the two plug-ins' fresh instances
    assert garbage == []


async def test_refusals_of_a_quarantined_plugin_keep_nothing(short_tmp: Path) -> None:
    plugins = {
        "arith.wat": ARITH,
        # quarantine_uids = 1: one caller's fault quarantines the plug-in (not only its uid).
        "arith.toml": "[failure]\nmax_faults = 1\nbackoff_ms = 60000\nbackoff_max_ms = 60000\n"
        "quarantine_uids = 1\n",
    }
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert "divide by zero" in await error_of(client.call("arith.div", 1, 0))
        with collector_off():
            for _ in range(3):
                assert "quarantined" in await error_of(client.call("arith.add", 1, 2))
            garbage = cyclic_garbage()
    assert garbage == []


def _rss_mib(pid: int) -> int:
    return resident_bytes(pid) // MiB


@pytest.mark.slow
def test_daemon_memory_stays_bounded_over_broken_reloads(short_tmp: Path) -> None:
    """The issue's measurement on a real daemon process: six broken 64 MiB versions."""
    plugins, sock = short_tmp / "plugins.d", short_tmp / "wasmd.sock"
    plugins.mkdir()
    command = serve_command(plugins, "--socket", str(sock))
    with reaped(command, stderr=subprocess.DEVNULL) as daemon:
        until(lambda: _answers(sock, daemon), what="the daemon's start")
        with SyncClient(sock, timeout=30) as client:
            base = _rss_mib(daemon.pid)
            target = plugins / "big.wasm"
            for seed in range(6):
                replace_atomically(target, _broken_module(64 * MiB, seed))
                until(partial(_failed_loads, client, seed + 1), what=f"failure {seed + 1}")
            # A rescan may still be reading the last version (two copies at most while it
            # fails); six versions' (twice over) stayed until the collector's next full pass.
            # Only /proc is read meanwhile: calls to the daemon would make it collect.
            limit = base + 2 * 64
            until(partial(_rss_below, daemon.pid, limit), within=10, what=f"RSS < {limit} MiB")


def _rss_below(pid: int, limit: int) -> bool:
    time.sleep(0.05)
    return _rss_mib(pid) < limit


def _answers(sock: Path, daemon: subprocess.Popen[bytes]) -> bool:
    assert daemon.poll() is None, "the daemon exited"
    try:
        with SyncClient(sock, timeout=5) as client:
            return bool(client.call("wasmd.ping") == "pong")
    except WasmdError:  # not listening yet
        time.sleep(0.05)
        return False


def _failed_loads(client: SyncClient, count: int) -> bool:
    """Whether ``wasmd.metrics`` counts ``count`` failed loads of "big" (0.05 s apart)."""
    time.sleep(0.05)
    for line in str(client.call("wasmd.metrics")).splitlines():
        if line.startswith('wasmd_plugin_load_failures_total{plugin="big"}'):
            return float(line.split()[-1]) >= count
    return False


if sys.implementation.name != "cpython":  # reference counting is what these tests check
    pytestmark = pytest.mark.skip("CPython's reference counting only")


async def test_garbage_from_a_client_keeps_nothing(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        with collector_off():
            for _ in range(3):
                stream = await anyio.connect_unix(daemon.socket)
                async with stream:
                    await stream.send(b"\xc1" * 64)  # never valid MessagePack
                    with anyio.fail_after(10):
                        with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                            while True:
                                await stream.receive()
            async with daemon.client() as client:
                assert await client.call("wasmd.ping") == "pong"  # the closings are done
                garbage = cyclic_garbage()
    assert garbage == [], "\n".join(garbage)


async def test_failed_plugin_to_plugin_calls_keep_nothing(short_tmp: Path) -> None:
    files = plugins(relay='[plugin]\ntimeout_ms = 2000\n[access]\nplugins = ["relay"]\n')
    async with running_daemon(short_tmp, files) as daemon, daemon.client() as client:
        assert await client.call("relay.to_echo", 1) == [None, [1]]
        with collector_off():
            for export in ("to_fail", "to_missing", "to_no_export", "to_private", "to_self"):
                answer = await client.call(f"relay.{export}")
                assert answer[0] is not None, (export, answer)
            garbage = cyclic_garbage()
    assert garbage == [], "\n".join(garbage)


async def test_the_in_process_loaders_failures_keep_nothing(tmp_path: Path) -> None:
    """``wasmd.Loader``'s anyio methods: their worker thread's error came back in a cycle."""
    (tmp_path / "arith.wat").write_text(ARITH)
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        arith = await loader.aload("arith")
        with collector_off():
            for seed in range(3):
                (tmp_path / "big.wasm").write_bytes(_broken_module(MiB, seed))
                with suppress(PluginLoadError):
                    await loader.aload("big")
                with suppress(WasmdError):
                    await arith.acall("div", 1, 0)
            garbage = cyclic_garbage()
    assert garbage == [], "\n".join(garbage)
