"""Calls through the real daemon: round trips, the core ABI's conversions, and error codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from wasmd import DaemonConfig, ErrorCode, WasmdError, open_client, serve

from .conftest import RunningDaemon, running_daemon, shared_daemon, write_plugins
from .wat import ARITH, COUNTER, UNKNOWN_IMPORT, WASI_USER

pytestmark = pytest.mark.usefixtures("call_path")


@pytest.fixture(scope="module")
def call_path(call_path_per_module: str) -> str:
    """This module's tests run through each call path in turn, so that those that only call
    ``arith`` share one daemon per path (``arith``)."""
    return call_path_per_module


@pytest.fixture(scope="module")
def arith(call_path: str) -> Iterator[RunningDaemon]:
    """One daemon serving ARITH, whose exports keep no state, for tests that only call it."""
    with shared_daemon({"arith.wat": ARITH}) as daemon:
        yield daemon


async def test_round_trip(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with daemon.client() as client:
            assert await client.call("arith.add", 2, 3) == 5
            assert await client.ping() == "pong"


@pytest.mark.parametrize(
    ("export", "params", "expected"),
    [
        ("add", [2**31 - 1, 1], -(2**31)),  # wraps in the guest, as wasm defines it
        ("echo32", [2**32 - 1], -1),  # the unsigned reading is accepted, bit for bit
        ("echo32", [-(2**31)], -(2**31)),
        ("echo64", [2**64 - 1], -1),
        ("echo64", [-(2**63)], -(2**63)),
        ("add64", [2**40, 2**40], 2**41),
        ("scale", [1.5, 2], 3.0),  # an int is accepted for a float param
        ("echof32", [0.5], 0.5),
        ("pair", [21], [21, 42]),
        ("nothing", [], None),
    ],
)
async def test_core_abi_conversions(
    arith: RunningDaemon, export: str, params: list[object], expected: object
) -> None:
    async with arith.client() as client:
        assert await client.call(f"arith.{export}", *params) == expected


@pytest.mark.parametrize(
    ("method", "params", "code", "fragment"),
    [
        ("arith.add", [1], ErrorCode.INVALID_PARAMS, "takes 2 param(s)"),
        ("arith.add", [1, 2, 3], ErrorCode.INVALID_PARAMS, "takes 2 param(s)"),
        ("arith.add", ["1", 2], ErrorCode.INVALID_PARAMS, "param 0 (i32): expected an integer"),
        ("arith.add", [True, 2], ErrorCode.INVALID_PARAMS, "expected an integer"),
        ("arith.add", [1.5, 2], ErrorCode.INVALID_PARAMS, "expected an integer, got 1.5"),
        ("arith.add", [2**32, 0], ErrorCode.INVALID_PARAMS, "out of range"),
        ("arith.add", [-(2**31) - 1, 0], ErrorCode.INVALID_PARAMS, "out of range"),
        ("arith.echo32", [2**63], ErrorCode.INVALID_PARAMS, "out of range"),
        ("arith.scale", [None, 1.0], ErrorCode.INVALID_PARAMS, "expected a number"),
        ("arith.echof32", [1e39], ErrorCode.INVALID_PARAMS, "out of range for f32"),
        ("arith.mul", [1, 2], ErrorCode.METHOD_NOT_FOUND, "'mul' (which does not exist"),
        ("arith.memory", [], ErrorCode.METHOD_NOT_FOUND, "no callable export"),
        ("arith.takes_ref", [None], ErrorCode.METHOD_NOT_FOUND, "core ABI cannot call"),
        ("nope.add", [1, 2], ErrorCode.METHOD_NOT_FOUND, "no plug-in named 'nope'"),
        ("arith", [], ErrorCode.METHOD_NOT_FOUND, "PLUGIN.EXPORT"),
        ("wasmd.nope", [], ErrorCode.METHOD_NOT_FOUND, "no built-in"),
        ("wasmd.ping", [1], ErrorCode.INVALID_PARAMS, "takes no params"),
        ("arith.div", [1, 0], ErrorCode.TRAP, "integer divide by zero"),
    ],
)
async def test_error_codes(
    arith: RunningDaemon, method: str, params: list[object], code: ErrorCode, fragment: str
) -> None:
    async with arith.client() as client:
        with pytest.raises(WasmdError) as caught:
            await client.call(method, *params)
        assert caught.value.code == code
        assert fragment in caught.value.message
        assert await client.call("arith.add", 1, 1) == 2  # the connection still works


async def test_a_float_that_is_an_integer_exactly_is_one(short_tmp: Path) -> None:
    """JavaScript's msgpack sends 2**53 and the like as float64 (issue 28); a fraction, NaN or
    a bool is still refused, and the value is named as JSON names it."""
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with daemon.client() as client:
            assert await client.call("arith.echo64", float(2**53)) == 2**53
            assert await client.call("arith.echo64", -float(2**63)) == -(2**63)
            assert await client.call("arith.echo32", float(2**32 - 1)) == -1
            assert await client.call("arith.add", 2.0, -3.0) == -1
            refusals = [
                (1.5, "expected an integer, got 1.5"),
                (float("nan"), "expected an integer, got NaN"),
                (float("-inf"), "expected an integer, got -Infinity"),
                (float(2**32), "out of range -2147483648..4294967295, got 4294967296.0"),
                (True, "expected an integer, got true"),
                (None, "expected an integer, got null"),
                ({"x": 0}, 'expected an integer, got {"x": 0}'),
                ("7", 'expected an integer, got "7"'),
            ]
            for value, message in refusals:
                with pytest.raises(WasmdError) as caught:
                    await client.call("arith.add", value, 1)
                assert caught.value.code == ErrorCode.INVALID_PARAMS
                assert caught.value.message == f"param 0 (i32): {message}"


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ("", "(which is not a method under the core ABI;"),
        ('[plugin]\nexports = ["f"]\n', "(which its manifest does not allow;"),
    ],
)
async def test_plumbing_export_is_not_blamed_on_the_manifest(
    short_tmp: Path, manifest: str, fragment: str
) -> None:
    """Issue 13: ``names._start`` said "which its manifest does not allow" with no manifest."""
    plugins = {"names.wat": '(module (func (export "_start")) (func (export "f")))'}
    if manifest:
        plugins["names.toml"] = manifest
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("names._start")
            assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
            assert fragment in caught.value.message


async def test_trap_then_fresh_instance(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"counter.wat": COUNTER}) as daemon:
        async with daemon.client() as client:
            assert [await client.call("counter.incr") for _ in range(3)] == [1, 2, 3]
            with pytest.raises(WasmdError) as caught:
                await client.call("counter.fail")
            assert caught.value.code == ErrorCode.TRAP
            assert caught.value.data is not None
            assert caught.value.data["trap_code"] == "unreachable"
            # The trapped instance was discarded: state starts over on a fresh one.
            assert await client.call("counter.incr") == 1


async def test_per_call_mode_keeps_no_state(short_tmp: Path) -> None:
    plugins = {"counter.wat": COUNTER, "counter.toml": '[plugin]\nmode = "per-call"\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert [await client.call("counter.incr") for _ in range(3)] == [1, 1, 1]


async def test_unknown_import_links_and_traps_only_when_called(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"odd.wat": UNKNOWN_IMPORT}) as daemon:
        async with daemon.client() as client:
            assert await client.call("odd.fine") == 1
            with pytest.raises(WasmdError) as caught:
                await client.call("odd.uses")
            assert caught.value.code == ErrorCode.TRAP
            assert "env::exotic" in caught.value.message
            assert await client.call("odd.fine") == 1


async def test_wasi_is_denied_by_default_but_links(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"wasi.wat": WASI_USER}) as daemon:
        async with daemon.client() as client:
            # random_get needs no capability; the point is that the call does not abort
            # the process for lack of a WASI context.
            assert await client.call("wasi.rand") == 0


async def test_manifest_exports_restrict_what_is_callable(short_tmp: Path) -> None:
    plugins = {"arith.wat": ARITH, "arith.toml": '[plugin]\nexports = ["add"]\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("arith.add", 1, 2) == 3
            with pytest.raises(WasmdError) as caught:
                await client.call("arith.add64", 1, 2)
            assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
            assert "manifest does not allow" in caught.value.message


async def test_failed_plugin_answers_unavailable(short_tmp: Path) -> None:
    plugins: dict[str, str | bytes] = {
        "broken.wasm": b"\x00asm\x01\x00\x00\x00garbage",
        "arith.wat": ARITH,
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        assert (daemon.info.plugins, daemon.info.failed) == (2, 1)
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("broken.anything")
            assert caught.value.code == ErrorCode.UNAVAILABLE
            assert "invalid module" in caught.value.message
            listing = {item["name"]: item for item in await client.list()}
            assert listing["broken"]["state"] == "failed"
            assert listing["arith"]["state"] == "ready"


async def test_first_directory_wins_and_the_twin_is_reported(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = short_tmp / "first", short_tmp / "second"
    write_plugins(first, {"calc.wat": ARITH})
    write_plugins(second, {"calc.wat": COUNTER, "counter.wat": COUNTER})
    config = DaemonConfig(socket=short_tmp / "s.sock", plugin_dirs=(first, second))
    caplog.set_level("INFO", logger="wasmd")
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: serve(config, task_status=task_status))
        async with open_client(config.socket) as client:
            assert await client.call("calc.add", 1, 2) == 3  # from the first directory
            assert await client.call("counter.incr") == 1
            listing = {item["name"]: item["path"] for item in await client.list()}
        tg.cancel_scope.cancel()
    assert listing == {"calc": str(first / "calc.wat"), "counter": str(second / "counter.wat")}
    shadowed = [r.getMessage() for r in caplog.records if "plugin.shadowed" in r.getMessage()]
    assert len(shadowed) == 1
    assert str(second / "calc.wat") in shadowed[0]
