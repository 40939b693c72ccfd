"""The Zig example plug-in (examples/zig/sum.zig on sdk/zig/wasmd.zig), built and served for real.

The module is compiled once per test module by ``examples/zig/build.py`` with Zig 0.17 from
PyPI; a machine that cannot install or run it skips these tests with the reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from wasmd import ErrorCode, WasmdError

from .conftest import running_daemon
from .helpers import subscribe
from .test_example_c import VALUES
from .toolchains import build_example, guest_error, load_build_script

# The first build compiles Zig's std (minutes on a cold cache), inside the fixture.
pytestmark = [pytest.mark.toolchain, pytest.mark.timeout(900)]

INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


@pytest.fixture(scope="module")
def sum_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_example("zig", tmp_path_factory.mktemp("example-zig"))


@pytest.fixture(scope="module")
def selftest_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """sdk/zig/selftest.zig: the SDK's parts that sum.zig does not use (Zig compiles only
    what is referenced, so this is also what type-checks them)."""
    return build_example(
        "zig", tmp_path_factory.mktemp("sdk-zig"), load_build_script("zig").SELFTEST
    )


@pytest.mark.parametrize(
    ("numbers", "total"),
    [
        ([1, 2, 3], 6),
        ([], 0),
        ([1, 2, 3.5], 6.5),
        ([0.25, -0.5], -0.25),
        ([-1, -2, -3000000000], -3000000003),
        ([INT64_MAX, INT64_MAX], 2 * INT64_MAX),  # past int64: comes back as a uint64
        ([UINT64_MAX, INT64_MIN], UINT64_MAX + INT64_MIN),
        ([INT64_MIN], INT64_MIN),
        ([UINT64_MAX], UINT64_MAX),
        (list(range(1000)), 499500),
    ],
)
async def test_sum(short_tmp: Path, sum_wasm: bytes, numbers: list[Any], total: Any) -> None:
    async with running_daemon(short_tmp, {"sum.wasm": sum_wasm}) as daemon:
        async with daemon.client() as client:
            result = await client.call("sum.sum", numbers)
    assert result == total
    assert type(result) is type(total)  # ints stay ints; one float makes a float


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([[UINT64_MAX, 1]], "sum is outside the 64-bit range"),
        ([[INT64_MIN, -1]], "sum is outside the 64-bit range"),
        ([[1, "2"]], "sum takes [array of numbers]"),
        ([[None]], "sum takes [array of numbers]"),
        ([1, 2], "sum takes [array of numbers]"),
        ([], "sum takes [array of numbers]"),
    ],
)
async def test_sum_errors(
    short_tmp: Path, sum_wasm: bytes, params: list[Any], message: str
) -> None:
    async with running_daemon(short_tmp, {"sum.wasm": sum_wasm}) as daemon:
        async with daemon.client() as client:
            assert (await guest_error(client, "sum.sum", *params)).message == message


async def test_reverse(short_tmp: Path, sum_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sum.wasm": sum_wasm}) as daemon:
        async with daemon.client() as client:
            assert await client.call("sum.reverse", "hello") == "olleh"
            assert await client.call("sum.reverse", "") == ""
            # by code point: multi-byte UTF-8 survives reversal
            assert await client.call("sum.reverse", "héllo ☃ 🎉") == "🎉 ☃ olléh"
            long = "ab€" * 30_000  # past the str8 and str16 header forms
            assert await client.call("sum.reverse", long) == long[::-1]
            for params in ([5], [b"bytes"], [], ["a", "b"]):
                error = await guest_error(client, "sum.reverse", *params)
                assert error.message == "reverse takes [str]"


async def test_fail(short_tmp: Path, sum_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sum.wasm": sum_wasm}) as daemon:
        async with daemon.client() as client:
            assert (await guest_error(client, "sum.fail")).message == "as asked"
            assert (await guest_error(client, "sum.fail", 1, "x")).message == "as asked"
            # A guest error is not a trap: the same instance answers the next call.
            assert await client.call("sum.sum", [2, 2]) == 4
            stats = await client.stats()
    assert stats["plugins"]["sum"]["errors"] == {"trap": 2}


async def test_memory_is_given_back_between_calls(short_tmp: Path, sum_wasm: bytes) -> None:
    # 100 calls move 50 MiB through a 4 MiB memory: only a plug-in that releases each
    # call's arena survives this.
    plugins: dict[str, str | bytes] = {
        "sum.wasm": sum_wasm,
        "sum.toml": '[plugin]\nmemory_max = "4 MiB"\n',
    }
    text = "x" * 255 * 1024 + "é"
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            for _ in range(100):
                assert await client.call("sum.reverse", text) == text[::-1]
            assert await client.call("sum.sum", [1, 2]) == 3


async def test_module_shape(short_tmp: Path, sum_wasm: bytes) -> None:
    assert len(sum_wasm) < 32 * 1024
    async with running_daemon(short_tmp, {"sum.wasm": sum_wasm}) as daemon:
        async with daemon.client() as client:
            described = await client.describe("sum")
    assert described["abi"] == "msgpack"
    assert described["methods"] == ["fail", "lengths", "reverse", "running", "sum"]
    assert {i["module"] for i in described["imports"]} <= {"wasmd"}
    exports = {e["name"] for e in described["exports"]}
    assert "_start" not in exports  # a reactor, not a command
    assert {"wasmd_alloc", "sum", "reverse", "fail"} <= exports


async def test_sdk_round_trips_every_value(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sdk.wasm": selftest_wasm}) as daemon:
        async with daemon.client() as client:
            assert await client.call("sdk.echo", *VALUES) == VALUES
            assert await client.call("sdk.echo") == []
            # skip steps over one whole value, however nested
            assert await client.call("sdk.second", VALUES, "after") == "after"
            error = await guest_error(client, "sdk.second", 1)
            assert error.message == "second takes [a, b]"


async def test_sdk_reader_refuses_truncated_input(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sdk.wasm": selftest_wasm}) as daemon:
        async with daemon.client() as client:
            # [cursor left in place, error] for cut-off and invalid bytes
            assert await client.call("sdk.truncated") == [
                [True, "Truncated"],
                [True, "Truncated"],
                [True, "InvalidMsgpack"],
                [True, "Truncated"],
                [True, "Truncated"],
            ]


async def test_sdk_caller_is_the_peer(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sdk.wasm": selftest_wasm}) as daemon:
        async with daemon.client() as client:
            assert await client.call("sdk.whoami") == [os.getuid(), os.getgid(), os.getpid()]


async def test_sdk_emit_sends_an_event(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sdk.wasm": selftest_wasm}) as daemon:
        async with daemon.client() as client:
            events = await subscribe(client, "plugin.custom")
            assert await client.call("sdk.emit", {"x": [1, "é"], "n": None}) is None
            event = await events.next()
            assert (await guest_error(client, "sdk.emit", [1])).message == "emit takes [map]"
    assert event["type"] == "plugin.custom"
    assert (event["plugin"], event["data"]) == ("sdk", {"x": [1, "é"], "n": None})


async def test_sdk_config_and_log(
    short_tmp: Path, selftest_wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin")
    long = "x" * 1000
    config = f'[config]\nkey = "välue"\nempty = ""\nlong = "{long}"\n'
    plugins: dict[str, str | bytes] = {"sdk.wasm": selftest_wasm, "sdk.toml": config}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("sdk.config", "key") == "välue"
            assert await client.call("sdk.config", "empty") == ""
            assert await client.call("sdk.config", "missing") is None
            assert await client.call("sdk.config", "long") == long
    records = [r for r in caplog.records if r.name == "wasmd.plugin.sdk"]
    assert [r.getMessage() for r in records] == [
        "config key = välue",
        "config empty = ",
        "config missing = -",
        ("config long = " + long)[:512],  # wasmd.log cuts at its 512-byte buffer
    ]
    assert {r.levelno for r in records} == {logging.WARNING}


async def test_sdk_errors_and_panics(
    short_tmp: Path, selftest_wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin")
    async with running_daemon(short_tmp, {"sdk.wasm": selftest_wasm}) as daemon:
        async with daemon.client() as client:
            assert (await guest_error(client, "sdk.formatted", 7)).message == "got 7"
            error = await guest_error(client, "sdk.formatted", 300)
            assert error.message == "not a u8: OutOfRange"
            # an error other than call.fail's is named, with the export
            error = await guest_error(client, "sdk.oops")
            assert error.message == "oops failed: SomethingBroke"
            # a panic is a real trap: logged first, then the instance is replaced
            with pytest.raises(WasmdError) as caught:
                await client.call("sdk.crash")
            assert caught.value.code == ErrorCode.TRAP
            assert caught.value.data is not None
            assert caught.value.data.get("kind") != "guest_error"
            assert await client.call("sdk.echo", 1) == [1]
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("wasmd.plugin.sdk", logging.ERROR, "crashed on purpose") in lines


async def test_sum_streams_running_totals_and_push_lengths(
    short_tmp: Path, sum_wasm: bytes
) -> None:
    async with running_daemon(short_tmp, {"sum.wasm": sum_wasm}) as daemon:
        async with daemon.client() as client:
            stream = client.stream("sum.running", [1, 2, 3, -10], window=1)
            assert [total async for total in stream] == [1, 3, 6, -4]
            assert stream.result == -4
            assert await client.call("sum.running", [5, 5]) == 10  # a plain call
            async with client.stream("sum.lengths") as lengths:
                for text in ("", "héllo", "x" * 5000):  # past recv's first 256 bytes
                    await lengths.push(text)
                await lengths.push_end()
                assert [n async for n in lengths] == [0, 6, 5000]
            assert lengths.result == 3


async def test_sdk_keeps_durable_state(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(
        short_tmp, {"sdk.wasm": selftest_wasm}, state_dir=short_tmp / "state"
    ) as daemon:
        async with daemon.client() as client:
            assert await client.call("sdk.state") == [2, "value", True, ["k", "k2"], "TooLarge"]
            # Committed: the count goes on; "k" stays deleted until set again.
            assert (await client.call("sdk.state"))[0] == 4
