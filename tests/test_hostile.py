"""Hostile plug-ins: each gets its precise error, the daemon survives, and a neighbour plug-in
is called throughout without one failed call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from wasmd import Client, ErrorCode, WasmdError
from wasmd.runtime import host

from .conftest import running_daemon
from .helpers import replace_atomically, subscribe
from .hostile import CATALOG, FD_WRITE_FLOOD, UNREACHABLE, Hostile
from .wat import ARITH, COUNTER


def drop_in(directory: Path, hostile: Hostile, name: str) -> None:
    """Put the hostile plug-in's entries in ``directory`` as plug-in ``name``: manifests first,
    each made under a temporary (ignored) name and renamed into place."""
    entries: dict[str, Any] = {**hostile.files, **hostile.specials}
    for filename in sorted(entries, key=lambda f: not f.endswith(".toml")):
        target = directory / (name + filename.removeprefix("h"))
        target.parent.mkdir(parents=True, exist_ok=True)
        content = entries[filename]
        if callable(content):
            temporary = target.with_name(target.name + ".tmp")
            content(temporary)
            os.replace(temporary, target)
        else:
            replace_atomically(target, content)


@pytest.mark.usefixtures("call_path")
@pytest.mark.parametrize("hostile", CATALOG, ids=[h.name for h in CATALOG])
async def test_hostile_plugin(short_tmp: Path, hostile: Hostile) -> None:
    (short_tmp / "plugins.d").mkdir()
    drop_in(short_tmp / "plugins.d", hostile, "h")
    async with running_daemon(short_tmp, {"neighbour.wat": ARITH}) as daemon:
        async with daemon.client() as client, daemon.client() as neighbour:
            neighbour_calls: list[object] = []
            done = anyio.Event()

            async def keep_calling() -> None:
                while not done.is_set():
                    neighbour_calls.append(await neighbour.call("neighbour.add", 2, 2))

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_calling)
                try:
                    baseline = _reset_peak_rss()
                    if hostile.code is not None and hostile.result is None:
                        with pytest.raises(WasmdError) as caught:
                            await client.call(f"h.{hostile.method}", *hostile.params)
                        assert caught.value.code == hostile.code, caught.value
                        assert hostile.fragment in caught.value.message
                        if hostile.absent is not None:
                            assert hostile.absent not in caught.value.message
                            assert hostile.absent not in str(await client.list())
                    else:
                        assert await client.call(f"h.{hostile.method}", *hostile.params) == (
                            hostile.result
                        )
                    if hostile.rss_growth_max is not None:
                        growth = _peak_rss() - baseline
                        assert growth < hostile.rss_growth_max, f"RSS grew by {growth} bytes"
                    assert await client.ping() == "pong"
                finally:
                    done.set()
            assert neighbour_calls
            assert set(neighbour_calls) == {4}  # every neighbour call succeeded


def _reset_peak_rss() -> int:
    """Start measuring the daemon's (this process's) peak RSS afresh; the RSS now."""
    Path("/proc/self/clear_refs").write_text("5")  # 5: reset VmHWM to the current RSS
    return _status_bytes("VmRSS")


def _peak_rss() -> int:
    return _status_bytes("VmHWM")


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # in kB
    raise AssertionError(f"no {field} in /proc/self/status")


async def test_plugin_named_like_the_builtins_is_refused(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"wasmd.wat": COUNTER, "ok.wat": COUNTER}) as daemon:
        async with daemon.client() as client:
            assert await client.ping() == "pong"  # still the built-in
            assert [item["name"] for item in await client.list()] == ["ok"]


async def _outcome(client: Client, method: str, params: list[Any]) -> Any:
    """The call's result, or its error code."""
    try:
        return await client.call(method, *params)
    except WasmdError as exc:
        return exc.code


async def test_catalog_dropped_in_live_while_the_neighbour_works(short_tmp: Path) -> None:
    """The same catalog, hot-loaded one by one into a running daemon. On the default call
    path only: what is new here is the hot load, which takes no call path; each call's
    outcome on both paths is test_hostile_plugin's."""
    async with running_daemon(short_tmp, {"neighbour.wat": ARITH}, watch=True) as daemon:
        async with daemon.client() as client, daemon.client() as neighbour:
            events = await subscribe(client, "plugin.loaded", "plugin.failed")
            failures: list[str] = []
            done = anyio.Event()

            async def keep_calling() -> None:
                while not done.is_set():
                    try:
                        await neighbour.call("neighbour.add", 1, 1)
                    except WasmdError as exc:
                        failures.append(str(exc))

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_calling)
                for index, hostile in enumerate(CATALOG):
                    name = f"h{index}"
                    drop_in(daemon.plugins_dir, hostile, name)
                    event = await events.next()
                    assert event["plugin"] == name
                    assert hostile.absent is None or hostile.absent not in str(event)
                    outcome = await _outcome(client, f"{name}.{hostile.method}", hostile.params)
                    expected = hostile.result if hostile.result is not None else hostile.code
                    assert outcome == expected, (hostile.name, outcome)
                done.set()
            assert failures == []
            shutil.rmtree(daemon.plugins_dir)


LOGS_ONCE = """(module
  (import "wasmd" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello")
  (func (export "hello") (result i32)
    (call $log (i32.const 1) (i32.const 0) (i32.const 5))
    (i32.const 1)))"""


class HostBug(BaseException):
    """Raised by a host function on purpose: not even an ``Exception``."""


@pytest.mark.usefixtures("call_path")
async def test_host_function_that_raises_is_a_trap_on_both_call_paths(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raising host function never reaches wasmtime-py: both call paths answer the same
    trap, the worker lives on, and nothing stale surfaces in the next call that traps (the
    autouse fixture also checks wasmtime-py's global afterwards)."""

    def broken(*args: object) -> str:
        raise HostBug("a bug in a host function")

    monkeypatch.setattr(host, "_read_text", broken)
    plugins = {"logs.wat": LOGS_ONCE, "boom.wat": UNREACHABLE}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        with anyio.fail_after(10):
            for _ in range(2):  # the second call runs on the replacement instance
                with pytest.raises(WasmdError) as caught:
                    await client.call("logs.hello")
                assert caught.value.code == ErrorCode.TRAP
                assert caught.value.message == (
                    "host import wasmd.log failed: HostBug('a bug in a host function')"
                )
                assert caught.value.data == {"kind": "abi_violation"}
            with pytest.raises(WasmdError) as caught:
                await client.call("boom.boom")
            assert caught.value.code == ErrorCode.TRAP
            assert "unreachable" in caught.value.message


@pytest.mark.usefixtures("call_path")
async def test_flooded_streams_are_replaced_between_calls(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A persistent instance whose stdout filled up gets fresh streams before its next call:
    the same instance floods again, hits the same wall, and still answers."""
    plugins = {"h.wat": FD_WRITE_FLOOD, "h.toml": "[plugin]\ntimeout_ms = 30000\n"}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert [await client.call("h.flood") for _ in range(3)] == [512, 512, 512]
    warnings = [r.getMessage() for r in caplog.records if r.name == "wasmd.plugin.h"]
    assert (
        warnings
        == ["(33558528 bytes of output in one call: writes past 16777216 bytes may have failed)"]
        * 3
    )
