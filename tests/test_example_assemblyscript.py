"""The AssemblyScript SDK (``sdk/assemblyscript``) through its example ``asdemo``, on the daemon.

The module is built once per test module with the npm package ``assemblyscript``
(``examples/assemblyscript/build.py``); where it cannot be installed the tests are skipped
with the reason. A build that fails once the compiler is there is an error, not a skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import wasmtime

from wasmd import ErrorCode, WasmdError

from .conftest import running_daemon
from .toolchains import build_example

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def asdemo(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_example("assemblyscript", tmp_path_factory.mktemp("assemblyscript"))


def test_module_is_a_reactor_whose_aborts_go_to_the_sdk(asdemo: bytes) -> None:
    module = wasmtime.Module(wasmtime.Engine(), asdemo)
    exports = {export.name for export in module.exports}
    methods = {"upper", "add", "fail", "countdown", "sizes", "tally", "note"}
    assert exports == {"memory", "wasmd_alloc", *methods}
    imports = {(item.module, item.name) for item in module.imports}
    # --use abort=... took effect: no env.abort import, which wasmd would link as a bare trap
    kv = {("wasmd", "kv_get"), ("wasmd", "kv_set"), ("wasmd", "kv_next")}
    streams = {("wasmd", "send"), ("wasmd", "recv")}
    assert imports <= {("wasmd", "log"), ("wasmd", "error"), *kv, *streams}


async def test_upper(short_tmp: Path, asdemo: bytes) -> None:
    async with running_daemon(short_tmp, {"asdemo.wasm": asdemo}) as daemon:
        async with daemon.client() as client:
            assert await client.call("asdemo.upper", "héllo, wörld 🎉 a-z") == "HéLLO, WöRLD 🎉 A-Z"
            assert await client.call("asdemo.upper", "") == ""
            described = await client.describe("asdemo")
    assert described["abi"] == "msgpack"
    assert described["methods"] == ["add", "countdown", "fail", "note", "sizes", "tally", "upper"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (2, 3, 5),
        (-5, 3, -2),
        (1.5, 2, 3.5),
        (0.25, -0.5, -0.25),
        (2**63 - 1, -1, 2**63 - 2),
        (2**63 - 1, 1, float(2**63)),  # the i64 sum would overflow: a float instead
        (2**64 - 1, 1, float(2**64)),  # beyond i64 to begin with
    ],
)
async def test_add(short_tmp: Path, asdemo: bytes, a: Any, b: Any, expected: Any) -> None:
    async with running_daemon(short_tmp, {"asdemo.wasm": asdemo}) as daemon:
        async with daemon.client() as client:
            result = await client.call("asdemo.add", a, b)
    assert result == expected
    assert type(result) is type(expected)


async def test_memory_is_collected_between_calls(short_tmp: Path, asdemo: bytes) -> None:
    # Each call leaves about 2 MiB of garbage (the UTF-16 string, its code units, the
    # result); 40 of them fit in 16 MiB only if the SDK's collection between calls works.
    plugins: dict[str, str | bytes] = {
        "asdemo.wasm": asdemo,
        "asdemo.toml": '[plugin]\nmemory_max = "16 MiB"\n',
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            text = "abc" * 87_382  # 256 KiB
            for _ in range(40):
                assert await client.call("asdemo.upper", text) == text.upper()


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("asdemo.fail", [], "asdemo.fail always fails"),
        ("asdemo.fail", ["custom ☃ 🎉"], "custom ☃ 🎉"),
        ("asdemo.upper", [], "param 0: missing (got 0 params)"),
        ("asdemo.upper", [42], "param 0: expected a string, got int"),
        ("asdemo.add", [1], "param 1: missing (got 1 params)"),
        ("asdemo.add", ["1", 2], "param 0: expected a number, got str"),
        ("asdemo.add", [1, None], "param 1: expected a number, got nil"),
    ],
)
async def test_guest_errors(
    short_tmp: Path, asdemo: bytes, method: str, params: list[Any], message: str
) -> None:
    async with running_daemon(short_tmp, {"asdemo.wasm": asdemo}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call(method, *params)
            # the instance is still good after a guest error
            assert await client.call("asdemo.add", 40, 2) == 42
    assert caught.value.code == ErrorCode.TRAP  # 4 on the wire
    assert caught.value.message == message
    assert caught.value.data is not None
    assert caught.value.data["kind"] == "guest_error"


async def test_asdemo_streams_a_countdown_and_sizes_of_pushes(
    short_tmp: Path, asdemo: bytes
) -> None:
    async with running_daemon(short_tmp, {"asdemo.wasm": asdemo}) as daemon:
        async with daemon.client() as client:
            stream = client.stream("asdemo.countdown", 3, window=1)
            assert [n async for n in stream] == [3, 2, 1]
            assert stream.result == 0
            assert await client.call("asdemo.countdown", 3) == 0  # a plain call
            async with client.stream("asdemo.sizes") as sizes:
                for text in ("", "abc", "x" * 5000):  # past recv's first 256 bytes
                    await sizes.push(text)
                await sizes.push_end()
                assert [n async for n in sizes] == [0, 3, 5000]
            assert sizes.result == 3


async def test_state_through_the_sdk(short_tmp: Path, asdemo: bytes) -> None:
    state = short_tmp / "state"
    plugins: dict[str, str | bytes] = {
        "asdemo.wasm": asdemo,
        "asdemo.toml": "[state]\nmax_keys = 3\n",
    }
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as client:
            assert [await client.call("asdemo.tally") for _ in range(2)] == [1, 2]
            assert await client.call("asdemo.tally", 10) == 12
            assert await client.call("asdemo.note", "b", {"x": [1, None]}) is None
            assert await client.call("asdemo.note", "a", "é") is None
            assert await client.call("asdemo.note", "b") == {"x": [1, None]}
            assert await client.call("asdemo.note", "zz") is None
            assert await client.call("asdemo.note") == ["a", "b"]
            with pytest.raises(WasmdError) as caught:  # a fourth key: over max_keys
                await client.call("asdemo.note", "c", 1)
            assert caught.value.message == "state refused: -2"
    async with running_daemon(short_tmp, plugins, state_dir=state) as daemon:
        async with daemon.client() as client:
            assert await client.call("asdemo.tally") == 13  # a restart
