"""The Go example plug-in (examples/go): built with Go from PyPI, then called through the daemon.

The module is a WASI command (the command ABI): each call is a fresh run of ``_start`` with
the call's stdin and args, and its result is ``{exit_code, stdout, stderr}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import running_daemon
from .toolchains import build_example

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def wc_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The built module's bytes; a skip (printed by -ra) when Go cannot be installed here."""
    return build_example("go", tmp_path_factory.mktemp("go"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by this module's daemons: the 2.7 MB module is compiled once, not per test."""
    return tmp_path_factory.mktemp("go-cache")


def result(exit_code: int, stdout: bytes = b"", stderr: bytes = b"") -> dict[str, Any]:
    return {"exit_code": exit_code, "stdout": stdout, "stderr": stderr}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (["one two\nthree\n"], result(0, b"2 3 14\n")),
        ([b"one two\nthree\n", []], result(0, b"2 3 14\n")),  # stdin as bin, args empty
        ([""], result(0, b"0 0 0\n")),
        (["no newline"], result(0, b"0 2 10\n")),
        (["one two\nthree\n", ["-u"]], result(0, b"ONE TWO\nTHREE\n")),
        (["gr\u00fc\u00dfe", ["-u"]], result(0, "GR\u00dc\u00dfE".encode())),
        # A non-zero exit is a result, not an error.
        (["", ["--fail"]], result(3, stderr=b"failing as asked\n")),
        # Deny by default: no [wasi] env in a manifest, so the guest sees no variable at all.
        (["", ["--env"]], result(0)),
    ],
)
async def test_calls(
    short_tmp: Path, wc_wasm: bytes, cache_dir: Path, params: list[Any], expected: dict[str, Any]
) -> None:
    async with running_daemon(short_tmp, {"wc.wasm": wc_wasm}, cache_dir=cache_dir) as daemon:
        async with daemon.client() as client:
            assert await client.call("wc.run", *params) == expected


async def test_files_are_not_granted(short_tmp: Path, wc_wasm: bytes, cache_dir: Path) -> None:
    """No preopens in a manifest: the guest cannot open any file, /etc/passwd included."""
    async with running_daemon(short_tmp, {"wc.wasm": wc_wasm}, cache_dir=cache_dir) as daemon:
        async with daemon.client() as client:
            answer = await client.call("wc.run", "", ["--read", "/etc/passwd"])
    assert answer["exit_code"] == 2
    assert answer["stdout"] == b""
    assert answer["stderr"].startswith(b"open /etc/passwd: ")


async def test_env_granted_by_the_manifest(
    short_tmp: Path, wc_wasm: bytes, cache_dir: Path
) -> None:
    plugins: dict[str, str | bytes] = {
        "wc.wasm": wc_wasm,
        "wc.toml": '[wasi]\nenv = { GREETING = "hi" }\n',
    }
    async with running_daemon(short_tmp, plugins, cache_dir=cache_dir) as daemon:
        async with daemon.client() as client:
            assert await client.call("wc.run", "", ["--env"]) == result(0, b"GREETING=hi\n")
            # The grant is the environment only: the other modes are unchanged.
            assert await client.call("wc.run", "a b") == result(0, b"0 2 3\n")


async def test_bad_flag_is_a_usage_result(short_tmp: Path, wc_wasm: bytes, cache_dir: Path) -> None:
    async with running_daemon(short_tmp, {"wc.wasm": wc_wasm}, cache_dir=cache_dir) as daemon:
        async with daemon.client() as client:
            answer = await client.call("wc.run", "", ["--nope"])
    assert answer["exit_code"] == 2
    assert answer["stdout"] == b""
    # argv[0] is the plug-in's name, so Go's flag package names it in the usage line.
    assert b"flag provided but not defined: -nope\nUsage of wc:\n" in answer["stderr"]


async def test_files_granted_by_the_manifest(
    short_tmp: Path, wc_wasm: bytes, cache_dir: Path
) -> None:
    """The folder form: a preopen grants one folder inside the plug-in's own, nothing else."""
    plugins: dict[str, str | bytes] = {
        "wc/plugin.wasm": wc_wasm,
        "wc/plugin.toml": '[wasi]\npreopens = [{ host = "data", guest = "/data" }]\n',
        "wc/data/hello.txt": "hello from the host\n",
    }
    async with running_daemon(short_tmp, plugins, cache_dir=cache_dir) as daemon:
        async with daemon.client() as client:
            granted = await client.call("wc.run", "", ["--read", "/data/hello.txt"])
            denied = await client.call("wc.run", "", ["--read", "/etc/passwd"])
    assert granted == result(0, b"hello from the host\n")
    assert denied["exit_code"] == 2
    assert denied["stdout"] == b""
