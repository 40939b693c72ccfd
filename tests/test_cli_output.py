"""What the CLI prints and how it exits (README "Calling wasmd from the shell"), against a
real daemon: --json before or after the command, errors as JSON, text as itself, bytes as
text or base64, a command plug-in's exit code, and a client that never loads the daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from wasmd.cli import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, _print_result, list_lines, main

from .conftest import running_daemon
from .wat import ARITH
from .wat_abi import CAT_COMMAND, MSGPACK_GUEST
from .wat_extism import extism_guest

Cli = Callable[..., Awaitable[tuple[int, str, str]]]
PLUGINS = {
    "arith.wat": ARITH,
    "mp.wat": MSGPACK_GUEST,
    "cat.wat": CAT_COMMAND,
    "ex.wat": extism_guest(),
}


def cli_for(sock: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``main(argv)`` with ``--socket`` first, in a thread (the daemon runs on this loop)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--socket", str(sock), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    async def acli(*argv: str) -> tuple[int, str, str]:
        return await anyio.to_thread.run_sync(lambda: run(*argv))

    return acli


async def test_json_before_or_after_the_command(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(short_tmp, PLUGINS) as daemon:
        cli = cli_for(daemon.socket, capsys)
        before = await cli("--json", "call", "arith.pair", "4")
        after = await cli("call", "--json", "arith.pair", "4")
        assert before == after
        assert (before[0], json.loads(before[1])) == (EXIT_OK, [4, 8])
        # --socket after the command overrides nothing it did not set.
        code, out, _ = await cli("--json", "ping", "--socket", str(daemon.socket))
        assert (code, json.loads(out)) == (EXIT_OK, "pong")


async def test_errors_are_json_on_stdout_with_json(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(short_tmp, PLUGINS) as daemon:
        cli = cli_for(daemon.socket, capsys)
        code, out, err = await cli("--json", "call", "arith.div", "1", "0")
        assert (code, err) == (EXIT_FAILED, "")
        error = json.loads(out)["error"]
        assert (error["code"], error["name"], error["message"]) == (
            4,
            "trap",
            "integer divide by zero",
        )
        assert set(error) == {"code", "name", "message", "data"}
        code, out, _ = await cli("call", "--json", "nope.f")
        assert (code, json.loads(out)["error"]["name"]) == (EXIT_FAILED, "method_not_found")
        # Without --json the error is one line on stderr, as the README shows it.
        code, out, err = await cli("call", "arith.add", "1", "true")
        assert (code, out) == (EXIT_FAILED, "")
        assert err.startswith("wasmd: invalid_params: ")


def test_unreachable_daemon_exits_3(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = str(short_tmp / "absent.sock")
    assert main(["--json", "--socket", absent, "ping"]) == EXIT_UNREACHABLE
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["code"], error["name"]) == (8, "unavailable")
    assert absent in error["message"]


async def test_text_prints_as_itself_and_bytes_as_text(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(short_tmp, PLUGINS) as daemon:
        cli = cli_for(daemon.socket, capsys)
        # msgpack echo returns its params array: JSON, with "é" as itself.
        assert await cli("call", "mp.echo", "café") == (EXIT_OK, '["café"]\n', "")
        assert await cli("--json", "call", "mp.echo", "naïve") == (EXIT_OK, '[\n  "naïve"\n]\n', "")
        # An Extism function returns bytes: printed as text when they are UTF-8.
        assert await cli("call", "ex.echo", "héllo wörld") == (EXIT_OK, "héllo wörld\n", "")


def test_bytes_that_are_not_utf8_print_as_base64(capsys: pytest.CaptureFixture[str]) -> None:
    _print_result(b"\xff\x00ok")
    _print_result({"out": b"\xfe"})
    _print_result({"long": "x" * 80})  # past one line: indented
    assert capsys.readouterr().out == (
        '{"base64": "/wBvaw=="}\n{"out": {"base64": "/g=="}}\n{\n  "long": "' + "x" * 80 + '"\n}\n'
    )


async def test_a_command_that_exits_nonzero_fails_the_call(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(short_tmp, PLUGINS) as daemon:
        cli = cli_for(daemon.socket, capsys)
        code, out, _ = await cli("call", "cat.run", "hi")
        assert (code, json.loads(out)["exit_code"]) == (EXIT_OK, 0)
        # CAT_COMMAND exits with its number of args: one here.
        code, out, _ = await cli("call", "cat.run", "hi", '["x"]')
        assert (code, json.loads(out)) == (
            EXIT_FAILED,
            {"exit_code": 1, "stdout": "hi", "stderr": "args: 2\n"},
        )
        code, out, _ = await cli("--json", "call", "cat.run", "hi", '["x"]')
        assert (code, json.loads(out)["exit_code"]) == (EXIT_FAILED, 1)


def test_help_says_what_each_command_does(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for phrase in (
        "serve",
        "run the daemon",
        "call a plug-in's function",
        "check a plug-in offline, without a daemon",
        "follow what happens in the daemon",
        "Exit codes: 0 ok; 1",
        '{"base64": "..."}',
    ):
        assert phrase in out, phrase


# What a client command may load of wasmd (issue 23: it imports only what it uses), and what
# it must not load at all: the daemon, the runtime, anyio/asyncio (the blocking client talks
# to the socket directly) and dataclasses (~10 ms). bench/cli_startup.py measures the time.
CLIENT_COMMAND_MODULES = [
    "wasmd",
    "wasmd.cli",
    "wasmd.errors",
    "wasmd.protocol",
    "wasmd.socket_path",
    "wasmd.sync_client",
]
NOT_FOR_A_CLIENT = ("wasmtime", "watchfiles", "anyio", "asyncio", "dataclasses", "logging")


@pytest.mark.parametrize("command", [["call", "arith.add", "2", "3"], ["list"]])
async def test_a_client_command_imports_only_what_it_uses(
    short_tmp: Path, command: list[str]
) -> None:
    async with running_daemon(short_tmp, PLUGINS) as daemon:
        script = (
            "import sys; from wasmd.cli import main\n"
            f"assert main([*{command!r}, '--socket', {str(daemon.socket)!r}]) == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'wasmd'))\n"
            f"print(sorted(m for m in {NOT_FOR_A_CLIENT!r} if m in sys.modules))\n"
        )
        result = await anyio.run_process([sys.executable, "-c", script], check=False)
    assert result.returncode == 0, result.stderr.decode()
    *_, wasmd_modules, others = result.stdout.decode().splitlines()
    assert (wasmd_modules, others) == (str(CLIENT_COMMAND_MODULES), "[]")


def test_importing_the_client_loads_no_daemon_module() -> None:
    """``wasmd.client`` needs the socket path, not the config file's checker or the runtime."""
    script = (
        "import sys, wasmd.client\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wasmd', 'wasmtime')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    client = sorted({*CLIENT_COMMAND_MODULES, "wasmd.client", "wasmd.sockets"} - {"wasmd.cli"})
    assert result.stdout.splitlines() == [str(client)]


def test_wasmd_call_as_a_process_loads_no_daemon_module(short_tmp: Path) -> None:
    """The entry point itself (``python -m wasmd``), not only ``wasmd.cli``."""
    script = (
        "import runpy, sys\n"
        "sys.argv = ['wasmd', 'ping', '--socket', sys.argv[1]]\n"
        "try:\n    runpy.run_module('wasmd', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print(code, 'wasmtime' in sys.modules, 'watchfiles' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(short_tmp / "absent.sock")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.splitlines()[-1] == f"{EXIT_UNREACHABLE} False False", result.stderr


def test_wasmd_list_keeps_its_columns_aligned() -> None:
    """Issue 28: a ``component`` ABI (9 characters) pushed its row out of line."""
    plugins: list[dict[str, Any]] = [
        {
            "name": "math",
            "version": "0118510037af",
            "abi": "core",
            "state": "ready",
            "exports": ["add", "sub"],
        },
        {
            "name": "textstats",
            "version": "a1b2c3d4e5f6",
            "abi": "component",
            "state": "ready",
            "exports": ["text.shout"],
        },
        {
            "name": "a-plugin-with-a-long-name",
            "version": None,
            "abi": None,
            "state": "failed",
            "error": "bad manifest: x",
            "exports": [],
        },
    ]
    lines = list_lines(plugins)
    assert lines == [
        "math                      0118510037af core      ready    add, sub",
        "textstats                 a1b2c3d4e5f6 component ready    text.shout",
        "a-plugin-with-a-long-name -            -         failed   bad manifest: x",
    ]
    assert list_lines(plugins[:1]) == [  # what the README shows: the old fixed widths
        "math                 0118510037af core     ready    add, sub"
    ]
