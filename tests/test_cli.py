"""The command line: `main(argv)` against a real daemon, and `wasmd serve` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from wasmd import SyncClient
from wasmd.cli import main, parse_arg

from .conftest import running_daemon, serve_command, write_plugins
from .processes import copy_bundled_examples, reaped, until, wait_ready
from .wat import ARITH, COUNTER, START_LOGS_THEN_SPINS, UNKNOWN_IMPORT
from .wat_abi import CAT_COMMAND, MSGPACK_GUEST
from .wat_extism import extism_guest

REPO = Path(__file__).resolve().parent.parent


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-1.5", -1.5),
        ("true", True),
        ('"7"', "7"),
        ("[1, 2]", [1, 2]),
        ("hello", "hello"),
        ("", ""),
    ],
)
def test_call_arguments_are_json_or_strings(text: str, value: object) -> None:
    assert parse_arg(text) == value


async def test_client_commands(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugins = {"arith.wat": ARITH, "counter.wat": COUNTER}
    async with running_daemon(short_tmp, plugins) as daemon:
        sock = str(daemon.socket)

        def cli(*argv: str) -> tuple[int, str, str]:
            return run_cli([*argv[:1], "--socket", sock, *argv[1:]], capsys)

        # The sync CLI blocks; run it in a thread so the daemon on this loop keeps serving.
        async def acli(*argv: str) -> tuple[int, str, str]:
            return await anyio.to_thread.run_sync(lambda: cli(*argv))

        assert await acli("call", "arith.add", "2", "3") == (0, "5\n", "")
        code, out, _ = await acli("call", "--json", "arith.pair", "4")
        assert (code, json.loads(out)) == (0, [4, 8])
        code, out, err = await acli("call", "arith.div", "1", "0")
        assert (code, out) == (1, "")
        assert "trap: integer divide by zero" in err
        code, _, err = await acli("call", "arith.add", "1", "true")
        assert code == 1
        assert "invalid_params" in err

        code, out, _ = await acli("list")
        assert code == 0
        lines = out.splitlines()
        assert [line.split()[0] for line in lines] == ["arith", "counter"]
        assert "ready" in lines[0]

        code, out, _ = await acli("list", "--json")
        assert [item["name"] for item in json.loads(out)] == ["arith", "counter"]

        code, out, _ = await acli("describe", "--json", "arith")
        described = json.loads(out)
        assert code == 0
        add = next(e for e in described["exports"] if e["name"] == "add")
        assert add == {
            "name": "add",
            "params": ["i32", "i32"],
            "results": ["i32"],
            "callable": True,
            "streams": False,
        }
        assert described["streams"] == []
        assert described["limits"]["timeout_ms"] == 1000

        code, out, _ = await acli("stats", "--json")
        arith = json.loads(out)["plugins"]["arith"]
        assert arith["calls"] == 4  # the refused call counts too, though it never ran
        assert arith["errors"] == {"trap": 1, "invalid_params": 1}
        assert await acli("ping") == (0, "pong\n", "")
        code, out, _ = await acli("version", "--json")
        assert set(json.loads(out)) == {"wasmd", "wasmtime", "python"}

        code, out, _ = await acli("reload", "--json")
        assert (code, json.loads(out)["unchanged"]) == (0, ["arith", "counter"])


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["call"]) == 2


def test_unreachable_socket_exits_3(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["ping", "--socket", str(short_tmp / "absent.sock")], capsys)
    assert code == 3
    assert "cannot connect" in err


def test_check_reports_a_good_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["check", str(REPO / "plugins.d" / "math.wat")], capsys)
    assert code == 0
    assert "plug-in math, ABI core" in out
    assert "\n  math.add(i32, i32) -> i32\n" in out
    assert "\n  math.divmod(i32, i32) -> [i32, i32]\n" in out
    assert "()" not in out
    assert "grants: nothing (deny by default)" in out


def test_check_names_trapping_imports_and_grants(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = short_tmp / "odd"
    (odd / "data").mkdir(parents=True)
    (odd / "plugin.wat").write_text(UNKNOWN_IMPORT)
    (odd / "plugin.toml").write_text(
        '[wasi]\nargs = ["-v"]\nenv = { LANG = "C" }\n'
        'preopens = [{ host = "data", guest = "/data", writable = true }]\n'
    )
    code, out, _ = run_cli(["check", str(odd)], capsys)
    assert code == 0
    assert "import env::exotic is provided by nothing: calling it traps" in out
    data = odd.resolve() / "data"
    assert f"grants: args ['-v']; env LANG; read-write {data} as /data" in out

    code, out, _ = run_cli(["check", "--json", str(REPO / "plugins.d" / "slow.wat")], capsys)
    report = json.loads(out)
    assert (code, report["ok"], report["manifest"]["plugin"]["timeout_ms"]) == (0, True, 250)


@pytest.mark.parametrize(
    ("files", "target", "fragment"),
    [
        ({"bad.wasm": b"\x00asm\x01\x00\x00\x00\xff"}, "bad.wasm", "invalid module"),
        ({"bad.wat": '(module (func (export "f") (result i32)))'}, "bad.wat", "invalid"),
        ({"bad.wat": ARITH, "bad.toml": "[plugin]\ntimeout = 5\n"}, "bad.wat", "plugin.timeout"),
        ({"empty.wasm": b""}, "empty.wasm", "is empty"),
        ({"Bad Name.wat": ARITH}, "Bad Name.wat", "invalid plug-in name"),
        ({}, "missing.wasm", "missing.wasm"),
    ],
)
def test_check_reports_problems(
    short_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str | bytes],
    target: str,
    fragment: str,
) -> None:
    for name, content in files.items():
        path = short_tmp / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    code, _, err = run_cli(["check", str(short_tmp / target)], capsys)
    assert code == 1
    assert fragment in err


def test_serve_as_a_process_like_the_readme(short_tmp: Path) -> None:
    """`wasmd serve --plugins plugins.d` in a real process: ready, serving, stops on SIGTERM."""
    sock = short_tmp / "wasmd.sock"
    command = serve_command(copy_bundled_examples(short_tmp / "plugins.d"), "--socket", str(sock))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with reaped(command, stderr=subprocess.PIPE, text=True, env=env) as daemon:
        assert daemon.stderr is not None
        wait_ready(daemon)
        with SyncClient(sock, timeout=10) as client:
            assert client.call("math.add", 2, 3) == 5
            assert client.call("counter.incr") == 1
            names = [item["name"] for item in client.call("wasmd.list")]
        assert names == ["counter", "math", "slow"]
        daemon.send_signal(signal.SIGTERM)
        rest = daemon.stderr.read()
        assert daemon.wait(timeout=30) == 0, rest
        assert "daemon.stopping" in rest
    assert not sock.exists()


def test_sighup_rescans_and_wasmd_events_follows(short_tmp: Path) -> None:
    """A daemon with --no-watch picks up a new plug-in on SIGHUP; `wasmd events` sees it."""
    plugins = short_tmp / "plugins.d"
    plugins.mkdir()
    (plugins / "counter.wat").write_text(COUNTER)
    sock = short_tmp / "wasmd.sock"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WASMD_SOCKET": str(sock)}
    with reaped(
        serve_command(plugins, "--no-watch"), stderr=subprocess.PIPE, text=True, env=env
    ) as daemon:
        assert daemon.stderr is not None
        for line in daemon.stderr:
            if "daemon.ready" in line:
                break
        events_command = [sys.executable, "-m", "wasmd", "events", "--json", "daemon.", "plugin."]
        with reaped(events_command, stdout=subprocess.PIPE, text=True, env=env) as follower:
            assert follower.stdout is not None
            # Know that the follower is subscribed before causing events: the daemon counts it.
            with SyncClient(sock, timeout=10) as client:
                until(
                    lambda: client.call("wasmd.stats")["daemon"]["subscribers"] > 0,
                    what="the follower subscribing",
                )
                (plugins / "arith.wat").write_text(ARITH)
                daemon.send_signal(signal.SIGHUP)
                first = json.loads(follower.stdout.readline())
                second = json.loads(follower.stdout.readline())
                assert client.call("arith.add", 20, 22) == 42
            follower.terminate()
        assert first["type"] == "daemon.reloading"
        assert (second["type"], second["plugin"]) == ("plugin.loaded", "arith")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0


def _serve_failure(short_tmp: Path, sock: Path) -> tuple[int, list[str]]:
    """`wasmd serve --socket SOCK` as a process that is expected to fail at start-up."""
    (short_tmp / "plugins.d").mkdir(exist_ok=True)
    command = serve_command(short_tmp / "plugins.d", "--no-watch", "--socket", str(sock))
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr.splitlines()


def _place_in_a_file(short_tmp: Path) -> tuple[Path, str]:
    (short_tmp / "file").write_text("")
    return short_tmp / "file" / "wasmd.sock", f"{short_tmp / 'file'} is not a folder"


def _too_long(short_tmp: Path) -> tuple[Path, str]:
    sock = short_tmp / ("x" * 120) / "wasmd.sock"
    size = len(os.fsencode(sock))
    return sock, f"the path is {size} bytes long; a Unix socket's may be 108 at most"


def _not_a_socket(short_tmp: Path) -> tuple[Path, str]:
    (short_tmp / "wasmd.sock").write_text("precious")
    return short_tmp / "wasmd.sock", "something that is not a socket is there"


def _folder_cannot_be_created(short_tmp: Path) -> tuple[Path, str]:
    # Not even root may create a folder in /proc's root: a folder that cannot be made, as root.
    folder = Path("/proc/wasmd-absent")
    return folder / "wasmd.sock", f"cannot create its folder {folder}: No such file or directory"


@pytest.mark.parametrize(
    "case", [_place_in_a_file, _too_long, _not_a_socket, _folder_cannot_be_created]
)
def test_serve_names_the_socket_path_and_the_reason_in_one_line(
    short_tmp: Path, case: Callable[[Path], tuple[Path, str]]
) -> None:
    sock, reason = case(short_tmp)
    code, lines = _serve_failure(short_tmp, sock)
    assert code == 1
    assert lines[-1] == f"wasmd: cannot listen on {sock}: {reason}"
    if sock.is_file():
        assert sock.read_text() == "precious"  # refused, not replaced


async def test_serve_on_a_served_socket_fails_in_one_line(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        code, lines = await anyio.to_thread.run_sync(_serve_failure, short_tmp, daemon.socket)
        assert code == 1
        assert (
            lines[-1]
            == f"wasmd: cannot listen on {daemon.socket}: another daemon is listening on it"
        )
        async with daemon.client() as client:
            assert await client.call("arith.add", 2, 3) == 5


@pytest.mark.parametrize(
    ("wat", "described", "signature", "instances"),
    [
        (
            ARITH,
            "ABI core (typed numeric params, range-checked)",
            "p.pair(i32) -> [i32, i64]",
            "persistent",
        ),
        (
            MSGPACK_GUEST,
            "ABI msgpack (params array in, any msgpack value out)",
            "p.echo(any...) -> any",
            "persistent",
        ),
        (
            CAT_COMMAND,
            "ABI command (run [stdin, args] -> {exit_code, stdout, stderr})",
            "p.run(stdin: bin|str, args: [str]) -> {exit_code, stdout, stderr}",
            "a fresh instance per call",
        ),
        (
            extism_guest(),
            "ABI extism ([input: bin|str] in, output bytes out)",
            "p.count_vowels(input: bin|str) -> bin",
            "persistent",
        ),
    ],
)
def test_check_says_how_each_abi_is_called(
    short_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    wat: str,
    described: str,
    signature: str,
    instances: str,
) -> None:
    path = short_tmp / "p.wat"
    path.write_text(wat)
    code, out, _ = run_cli(["check", str(path)], capsys)
    assert code == 0
    assert f"plug-in p, {described}, version" in out
    assert f"\n  {signature}\n" in out
    assert out.rstrip().endswith(f"instance(s), {instances}")


def test_check_warns_of_no_callable_methods(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = short_tmp / "useless.wat"
    path.write_text('(module (func (export "takes_ref") (param externref)))')
    code, out, _ = run_cli(["check", str(path)], capsys)
    assert code == 4
    assert out.startswith(f"{path}: warning: no callable methods — plug-in useless")
    code, out, _ = run_cli(["check", "--json", str(path)], capsys)
    report = json.loads(out)
    assert (code, report["ok"], report["warnings"]) == (4, True, ["no callable methods"])


def test_check_points_at_a_wat_error_once(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = short_tmp / "typo.wat"
    path.write_text('(module\n  (func (export "f") (result i32)\n    (i32.bogus 1))\n)\n')
    code, out, err = run_cli(["check", str(path)], capsys)
    assert (code, out) == (1, "")
    assert err == f"{path}: invalid WAT at line 3, column 6: unknown operator or unexpected token\n"
    assert "bogus" not in err  # the file's text is never quoted


SPINNING_START = {"hang.wat": START_LOGS_THEN_SPINS, "hang.toml": "[plugin]\ntimeout_ms = 30000\n"}


def _stop_when_logged(daemon: subprocess.Popen[str], *marks: str) -> float:
    """Read the daemon's log through each mark in turn, then SIGTERM it: the seconds it took
    to exit."""
    assert daemon.stderr is not None
    seen: list[str] = []
    for mark in marks:
        for line in daemon.stderr:
            seen.append(line)
            if mark in line:
                break
        else:
            pytest.fail(f"daemon exited before logging {mark!r}:\n" + "".join(seen))
    signalled = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    rest = daemon.stderr.read()
    assert daemon.wait(timeout=60) == 0, rest
    return time.monotonic() - signalled


@pytest.mark.parametrize("arrival", ["at-start-up", "dropped-in-live", "on-sighup"])
def test_sigterm_while_start_code_spins_stops_promptly(short_tmp: Path, arrival: str) -> None:
    """Issue 13: a SIGTERM during the initial scan or a reload took effect only once the
    loading plug-in's start code had run to its deadline (20 s with timeout_ms = 20000)."""
    plugins = short_tmp / "plugins.d"
    write_plugins(plugins, SPINNING_START if arrival == "at-start-up" else {"arith.wat": ARITH})
    sock = short_tmp / "wasmd.sock"
    extra = ["--no-watch"] if arrival == "on-sighup" else []
    command = serve_command(plugins, "--socket", str(sock), *extra)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with reaped(command, stderr=subprocess.PIPE, text=True, env=env) as daemon:
        assert daemon.stderr is not None
        marks = ["start code spins"]
        if arrival != "at-start-up":
            for line in daemon.stderr:
                if "daemon.ready" in line:
                    break
            write_plugins(plugins, SPINNING_START)
            if arrival == "on-sighup":
                daemon.send_signal(signal.SIGHUP)
        took = _stop_when_logged(daemon, *marks)
    assert took < 3  # within 1 s plus interpreter shutdown on a loaded machine
