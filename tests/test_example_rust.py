"""The Rust SDK (``sdk/rust/wasmd.rs``) through its example ``textops``, on the daemon.

The module is built once per test module with Debian's rustc (``examples/rust/build.py``);
where that toolchain cannot be installed the tests are skipped with the reason. A build
that fails once the toolchain is there is an error, not a skip.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from msgpack import ExtType

from wasmd import ErrorCode, WasmdError

from .conftest import running_daemon
from .helpers import subscribe
from .toolchains import build_example

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def textops(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_example("rust", tmp_path_factory.mktemp("rust"))


# Every kind of msgpack value, and the integers at the edges of what msgpack can carry.
NESTED: list[Any] = [
    {"a": [1, 2, {"b": None}], "c": {"d": True, "e": 1.5, "f": False}},
    b"\x00\x01\xfe\xff" * 1000,
    "héllo wörld ☃ 🎉",
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    [-1, -32, -33, -128, -129, 255, 256, 65535, 65536, 2**32, -(2**31) - 1],
    ["x" * 31, "x" * 32, "y" * 300, "z" * 70_000],
    [],
    {},
    {1: "int key", None: [b""]},
    [list(range(16)), {str(i): i for i in range(16)}],
    -0.25,
    ExtType(5, b"abc"),
]


def test_module_is_a_reactor_with_the_msgpack_exports(textops: bytes) -> None:
    module = wasmtime.Module(wasmtime.Engine(), textops)
    exports = {export.name for export in module.exports}
    assert {"memory", "wasmd_alloc", "reverse", "count", "echo", "greet", "fail"} <= exports
    assert "_start" not in exports


async def test_reverse_and_count(short_tmp: Path, textops: bytes) -> None:
    async with running_daemon(short_tmp, {"textops.wasm": textops}) as daemon:
        async with daemon.client() as client:
            assert await client.call("textops.reverse", "héllo wörld 🎉") == "🎉 dlröw olléh"
            assert await client.call("textops.reverse", "") == ""
            text = "  the quick\tbrown 🦊\n"  # chars are code points, as Python counts them
            assert await client.call("textops.count", text) == {"chars": len(text), "words": 4}
            assert await client.call("textops.count", "") == {"chars": 0, "words": 0}
            described = await client.describe("textops")
    assert described["abi"] == "msgpack"
    assert described["methods"] == [
        "count",
        "echo",
        "fail",
        "greet",
        "note",
        "reverse",
        "tally",
        "upper",
        "words",
    ]


async def test_echo_round_trips_every_kind_of_value(short_tmp: Path, textops: bytes) -> None:
    async with running_daemon(short_tmp, {"textops.wasm": textops}) as daemon:
        async with daemon.client() as client:
            assert await client.call("textops.echo", *NESTED) == NESTED
            assert await client.call("textops.echo") == []
            big = bytes(range(256)) * 8192  # 2 MiB: more than the guest's initial memory
            assert await client.call("textops.echo", big) == [big]


async def test_memory_is_reused_from_call_to_call(short_tmp: Path, textops: bytes) -> None:
    # 40 calls of 1 MiB each would not fit in 8 MiB if buffers leaked
    plugins: dict[str, str | bytes] = {
        "textops.wasm": textops,
        "textops.toml": '[plugin]\nmemory_max = "8 MiB"\n',
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            payload = b"\xab" * (1 << 20)
            for _ in range(40):
                assert await client.call("textops.echo", payload) == [payload]


async def test_greet_reads_config_logs_and_emits(
    short_tmp: Path, textops: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    plugins: dict[str, str | bytes] = {
        "textops.wasm": textops,
        "textops.toml": '[config]\ngreeting = "Howdy"\n',
    }
    caplog.set_level(logging.INFO, logger="wasmd.plugin.textops")
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.custom")
        assert await client.call("textops.greet", "Ada") == "Howdy, Ada!"
        event = await events.next()
    assert (event["plugin"], event["data"]) == ("textops", {"greeted": "Ada"})
    lines = [r.getMessage() for r in caplog.records if r.name == "wasmd.plugin.textops"]
    assert "greeting Ada" in lines


async def test_greet_without_config_uses_the_default(short_tmp: Path, textops: bytes) -> None:
    async with running_daemon(short_tmp, {"textops.wasm": textops}) as daemon:
        async with daemon.client() as client:
            assert await client.call("textops.greet", "Ada") == "Hello, Ada!"


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("textops.fail", [], "textops.fail always fails"),
        ("textops.fail", ["custom ☃"], "custom ☃"),
        ("textops.reverse", [], "param 0: missing (got 0 params)"),
        ("textops.reverse", [42], "param 0: expected a string, got int"),
        ("textops.count", [b"bytes"], "param 0: expected a string, got bin"),
    ],
)
async def test_guest_errors(
    short_tmp: Path, textops: bytes, method: str, params: list[Any], message: str
) -> None:
    async with running_daemon(short_tmp, {"textops.wasm": textops}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call(method, *params)
            # the instance is still good after a guest error
            assert await client.call("textops.reverse", "ok") == "ko"
    assert caught.value.code == ErrorCode.TRAP  # 4 on the wire
    assert caught.value.message == message
    assert caught.value.data is not None
    assert caught.value.data["kind"] == "guest_error"


async def test_textops_streams_words_and_upper_cases_pushes(
    short_tmp: Path, textops: bytes
) -> None:
    async with running_daemon(short_tmp, {"textops.wasm": textops}) as daemon:
        async with daemon.client() as client:
            stream = client.stream("textops.words", "one two  three\nfour", window=1)
            assert [word async for word in stream] == ["one", "two", "three", "four"]
            assert stream.result == 4
            assert await client.call("textops.words", "a b") == 0  # a plain call
            async with client.stream("textops.upper") as upper:
                for text in ("hi", "straße", "x" * 5000):  # past recv's first 256 bytes
                    await upper.push(text)
                await upper.push_end()
                assert [chunk async for chunk in upper] == ["HI", "STRASSE", "X" * 5000]
            assert upper.result == 3


async def test_state_through_the_sdk(short_tmp: Path, textops: bytes) -> None:
    state = short_tmp / "state"
    plugins: dict[str, str | bytes] = {
        "textops.wasm": textops,
        "textops.toml": "[state]\nmax_keys = 3\n",
    }
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as client:
            assert [await client.call("textops.tally") for _ in range(2)] == [1, 2]
            assert await client.call("textops.tally", 10) == 12
            assert await client.call("textops.note", "b", {"x": [1, None]}) is None
            assert await client.call("textops.note", "a", b"\x00") is None
            assert await client.call("textops.note", "b") == {"x": [1, None]}
            assert await client.call("textops.note", "zz") is None
            assert await client.call("textops.note") == ["a", "b"]
            with pytest.raises(WasmdError) as caught:  # a fourth key: over max_keys
                await client.call("textops.note", "c", 1)
            assert caught.value.message == "over the state quota"
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as client:
            assert await client.call("textops.tally") == 13  # a restart
