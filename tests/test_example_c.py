"""The C example plug-in (examples/c/greet.c on sdk/c/wasmd.h), built and served for real.

The module is compiled once per test module by ``examples/c/build.py``; a machine that
cannot get a wasm32-wasi C compiler skips these tests with the reason (``-ra`` shows it).
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
from .toolchains import build_example, guest_error, load_build_script

# Built with zig cc (no Debian clang), the first build compiles wasi-libc: minutes.
pytestmark = [pytest.mark.toolchain, pytest.mark.timeout(900)]

GREET_TOML = '[config]\ngreeting = "hi"\n'
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
# Every msgpack type the SDK reads and writes, in every header size (the Zig tests too).
_INTS = [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, INT64_MAX, UINT64_MAX]
_NEGATIVE = [-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, INT64_MIN]
_STRS = ["", "x" * 31, "x" * 32, "é" * 200, "☃" * 30_000, "🎉" * 20_000]
_BINS = [b"", b"\x00\xff" * 200, b"b" * 70_000]
_ARRAYS = [[], list(range(15)), list(range(16)), list(range(70_000))]
_MAPS = [{}, {str(i): i for i in range(15)}, {str(i): [i] for i in range(16)}, {1: "int key"}]
VALUES: list[Any] = [
    *(None, True, False, 0.1, -2.5, float("inf")),
    *_INTS,
    *_NEGATIVE,
    *_STRS,
    *_BINS,
    *_ARRAYS,
    *_MAPS,
    {"a": [1, 2, {"b": None}], "c": {"d": True, "e": 1.5}},
]


@pytest.fixture(scope="module")
def greet_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_example("c", tmp_path_factory.mktemp("example-c"))


@pytest.fixture(scope="module")
def selftest_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """sdk/c/selftest.c: the SDK's parts that greet.c does not use."""
    return build_example("c", tmp_path_factory.mktemp("sdk-c"), load_build_script("c").SELFTEST)


async def test_greet(short_tmp: Path, greet_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"greet.wasm": greet_wasm}) as daemon:
        async with daemon.client() as client:
            assert await client.call("greet.greet", "world") == "hello, world"
            assert await client.call("greet.greet", "wörld ☃ 🎉") == "hello, wörld ☃ 🎉"
            assert await client.call("greet.greet", "") == "hello, "
            long = "é" * 40_000  # past the str8 and str16 header forms
            assert await client.call("greet.greet", long) == "hello, " + long


@pytest.mark.parametrize("params", [[5], [None], [b"bytes"], [], ["a", "b"], [["world"]]])
async def test_greet_refuses_anything_but_one_string(
    short_tmp: Path, greet_wasm: bytes, params: list[Any]
) -> None:
    async with running_daemon(short_tmp, {"greet.wasm": greet_wasm}) as daemon:
        async with daemon.client() as client:
            error = await guest_error(client, "greet.greet", *params)
            assert error.message == "greet takes [name: str]"
            # A guest error is not a trap of the instance: the next call just works.
            assert await client.call("greet.greet", "again") == "hello, again"


@pytest.mark.parametrize(
    ("numbers", "total"),
    [
        ([1, 2, 3], 6),
        ([], 0),
        ([-1, -2, -3000000000], -3000000003),
        ([INT64_MAX, INT64_MAX], 2 * INT64_MAX),  # past int64: comes back as a uint64
        ([UINT64_MAX, INT64_MIN], UINT64_MAX + INT64_MIN),
        ([INT64_MIN, 0], INT64_MIN),
        ([UINT64_MAX], UINT64_MAX),
        (list(range(1000)), 499500),
    ],
)
async def test_sum(short_tmp: Path, greet_wasm: bytes, numbers: list[int], total: int) -> None:
    async with running_daemon(short_tmp, {"greet.wasm": greet_wasm}) as daemon:
        async with daemon.client() as client:
            assert await client.call("greet.sum", numbers) == total


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([[UINT64_MAX, 1]], "sum is outside the 64-bit range"),
        ([[INT64_MIN, -1]], "sum is outside the 64-bit range"),
        ([[1, 2.5]], "sum takes [array of ints]"),
        ([[1, "2"]], "sum takes [array of ints]"),
        ([1, 2], "sum takes [array of ints]"),
        ([], "sum takes [array of ints]"),
    ],
)
async def test_sum_errors(
    short_tmp: Path, greet_wasm: bytes, params: list[Any], message: str
) -> None:
    async with running_daemon(short_tmp, {"greet.wasm": greet_wasm}) as daemon:
        async with daemon.client() as client:
            assert (await guest_error(client, "greet.sum", *params)).message == message


async def test_info_reads_config_and_logs(
    short_tmp: Path, greet_wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin")
    plugins: dict[str, str | bytes] = {
        "greet.wasm": greet_wasm,
        "greet.toml": GREET_TOML,
        "plain.wasm": greet_wasm,  # the same module without a manifest
        "intl.wasm": greet_wasm,
        "intl.toml": '[config]\ngreeting = "grüß dich ☃"\n',
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("greet.info") == {"greeting": "hi", "language": "c"}
            assert await client.call("plain.info") == {"greeting": None, "language": "c"}
            assert await client.call("intl.info") == {"greeting": "grüß dich ☃", "language": "c"}
    lines = {(r.name, r.getMessage()) for r in caplog.records}
    assert ("wasmd.plugin.greet", "info: greeting is hi") in lines
    assert ("wasmd.plugin.plain", "info: greeting is (not configured)") in lines
    assert ("wasmd.plugin.intl", "info: greeting is grüß dich ☃") in lines


async def test_memory_is_given_back_between_calls(short_tmp: Path, greet_wasm: bytes) -> None:
    # 100 calls move 50 MiB through a 4 MiB memory: only a plug-in that frees each call's
    # params and the previous result survives this.
    plugins: dict[str, str | bytes] = {
        "greet.wasm": greet_wasm,
        "greet.toml": '[plugin]\nmemory_max = "4 MiB"\n',
    }
    name = "n" * 256 * 1024
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            for _ in range(100):
                assert await client.call("greet.greet", name) == "hello, " + name
            assert await client.call("greet.info") == {"greeting": None, "language": "c"}


async def test_module_shape(short_tmp: Path, greet_wasm: bytes) -> None:
    assert len(greet_wasm) < 64 * 1024
    async with running_daemon(short_tmp, {"greet.wasm": greet_wasm}) as daemon:
        async with daemon.client() as client:
            described = await client.describe("greet")
    assert described["abi"] == "msgpack"
    assert described["methods"] == ["greet", "info", "lines", "shout", "sum"]
    assert {i["module"] for i in described["imports"]} <= {"wasmd", "wasi_snapshot_preview1"}
    assert described["trapping_imports"] == []
    exports = {e["name"] for e in described["exports"]}
    assert "_start" not in exports  # a reactor, not a command
    assert {"wasmd_alloc", "greet", "sum", "info"} <= exports


async def test_sdk_round_trips_every_value(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sdk.wasm": selftest_wasm}) as daemon:
        async with daemon.client() as client:
            assert await client.call("sdk.echo", *VALUES) == VALUES
            assert await client.call("sdk.echo") == []
            assert await client.call("sdk.free") == "free"  # not libc's free
            # skip steps over one whole value, however nested
            assert await client.call("sdk.second", VALUES, "after") == "after"
            error = await guest_error(client, "sdk.second", 1)
            assert error.message == "second takes [a, b]"


async def test_sdk_reader_refuses_truncated_input(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"sdk.wasm": selftest_wasm}) as daemon:
        async with daemon.client() as client:
            # [cursor left in place, error] for cut-off and invalid bytes
            assert await client.call("sdk.truncated") == [
                [True, "truncated value"],
                [True, "truncated value"],
                [True, "invalid msgpack byte 0xc1"],
                [True, "expected a value, found the end"],
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


async def test_sdk_config_and_a_long_log_line(
    short_tmp: Path, selftest_wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin")
    plugins: dict[str, str | bytes] = {
        "sdk.wasm": selftest_wasm,
        "sdk.toml": '[config]\nkey = "välue"\nempty = ""\n',
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("sdk.config", "key") == "välue"
            assert await client.call("sdk.config", "empty") == ""
            assert await client.call("sdk.config", "missing") is None
    lines = [r.getMessage() for r in caplog.records if r.name == "wasmd.plugin.sdk"]
    # past the SDK's 256-byte stack buffer: formatted again at its full length
    assert lines[0] == "config key = välue; " + "0" * 299 + "7"
    assert [r.levelno for r in caplog.records if r.name == "wasmd.plugin.sdk"] == [
        logging.WARNING
    ] * 3


async def test_greet_streams_lines_and_shouts_pushes(short_tmp: Path, greet_wasm: bytes) -> None:
    async with running_daemon(short_tmp, {"greet.wasm": greet_wasm}) as daemon:
        async with daemon.client() as client:
            stream = client.stream("greet.lines", "one\ntwo\n\nfour", window=1)
            assert [line async for line in stream] == ["one", "two", "", "four"]
            assert stream.result == 4
            assert await client.call("greet.lines", "a\nb") == 0  # a plain call: no chunks
            async with client.stream("greet.shout") as shouted:
                for word in ("hi", "é" * 100, "x" * 70_000):  # past recv's first 256 bytes
                    await shouted.push(word)
                await shouted.push_end()
                assert [chunk async for chunk in shouted] == ["HI", "é" * 100, "X" * 70_000]
            assert shouted.result == 3
            description = await client.describe("greet")
            assert description["streams"] == ["recv", "send"]


@pytest.fixture(scope="module")
def counter_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """examples/c/counter.c: the SDK's state helpers (kv_* imports)."""
    counter = load_build_script("c").COUNTER
    return build_example("c", tmp_path_factory.mktemp("example-c-counter"), counter)


async def test_counter_keeps_its_count_in_wasmd_state(short_tmp: Path, counter_wasm: bytes) -> None:
    state = short_tmp / "state"
    plugins: dict[str, str | bytes] = {"counter.wasm": counter_wasm}
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as client:
            assert [await client.call("counter.incr") for _ in range(3)] == [1, 2, 3]
            assert await client.call("counter.incr", 10) == 13
            with pytest.raises(WasmdError) as caught:
                await client.call("counter.crash")
            assert caught.value.code == ErrorCode.TRAP
            assert await client.call("counter.incr", 0) == 13  # the crash's +1: rolled back
            value = {"any": ["msgpack", 1, None], "bin": b"\x00\xff"}
            assert await client.call("counter.remember", "b", value) is None
            assert await client.call("counter.remember", "a", "first") is None
            assert await client.call("counter.recall", "b") == value
            assert await client.call("counter.recall", "missing") is None
            assert await client.call("counter.notes") == ["a", "b"]
    # A new daemon on the same state folder: a restart.
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as client:
            assert await client.call("counter.incr") == 14
            assert await client.call("counter.notes") == ["a", "b"]


async def test_counter_is_refused_past_its_quota_without_a_trap(
    short_tmp: Path, counter_wasm: bytes
) -> None:
    plugins: dict[str, str | bytes] = {
        "counter.wasm": counter_wasm,
        "counter.toml": "[state]\nmax_keys = 2\n",
    }
    async with running_daemon(short_tmp, plugins, state_dir=short_tmp / "s") as daemon:
        async with daemon.client() as client:
            assert await client.call("counter.incr") == 1
            assert await client.call("counter.remember", "a", 1) is None
            error = await guest_error(client, "counter.remember", "b", 2)
            assert error.message == "over the state quota"
            assert await client.call("counter.incr") == 2  # the same instance, no trap


async def test_sdk_state_helpers(short_tmp: Path, selftest_wasm: bytes) -> None:
    async with running_daemon(
        short_tmp, {"sdk.wasm": selftest_wasm}, state_dir=short_tmp / "state"
    ) as daemon:
        async with daemon.client() as client:
            # 2 - 1; 300 bytes read back whole (the second, larger read), last byte 299 % 256;
            # "k" deleted (1) then absent (-1); a key of 1,025 bytes: KV_TOO_LARGE (-4)
            assert await client.call("sdk.state") == [1, 300, 43, 1, -1, -4]
            assert (await client.call("sdk.state"))[0] == 2  # committed: the count goes on
