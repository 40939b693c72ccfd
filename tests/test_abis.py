"""The msgpack and command ABIs, host imports and WASI grants, through the real daemon."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from wasmd import ErrorCode, WasmdError

from .conftest import ONE_CALL_PATH, running_daemon, write_plugins
from .helpers import subscribe
from .wat_abi import (
    CAT_COMMAND,
    EXITING_CORE,
    MSGPACK_GUEST,
    PRINTING_CORE,
    READ_SECRET_COMMAND,
    flood_command,
)

pytestmark = pytest.mark.usefixtures("call_path")

NESTED: list[Any] = [
    {"a": [1, 2, {"b": None}], "c": {"d": True, "e": 1.5}},
    b"\x00\x01\xfe\xff" * 1000,
    "héllo wörld ☃ 🎉",
    2**64 - 1,
    -(2**63),
    [],
    {},
    {1: "int key"},
]


async def test_msgpack_round_trip_of_every_kind_of_value(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"mp.wat": MSGPACK_GUEST}) as daemon:
        async with daemon.client() as client:
            assert await client.call("mp.echo", *NESTED) == NESTED
            big = os.urandom(2_000_000)  # larger than one read and than the guest's pages
            assert await client.call("mp.echo", big) == [big]
            assert await client.call("mp.echo") == []
            described = await client.describe("mp")
    assert described["abi"] == "msgpack"
    assert described["methods"] == [
        "bad_log",
        "bad_pointer",
        "echo",
        "emit_after_header",
        "fail",
        "greeting",
        "huge_result",
        "not_msgpack",
        "nothing",
    ]


async def test_guest_error_is_a_clean_error(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"mp.wat": MSGPACK_GUEST}) as daemon:
        async with daemon.client() as client:
            assert await client.call("mp.echo", 1) == [1]
            with pytest.raises(WasmdError) as caught:
                await client.call("mp.fail", "x")
            assert (caught.value.code, caught.value.message) == (
                ErrorCode.TRAP,
                "echo refused on purpose",
            )
            assert caught.value.data == {"kind": "guest_error"}
            stats = await client.stats()
    # A guest's own error is not a fault: no trap event, no instance restarted.
    assert stats["plugins"]["mp"]["errors"] == {"trap": 1}


@pytest.mark.parametrize(
    ("method", "fragment"),
    [
        ("bad_pointer", "outside memory"),
        ("not_msgpack", "not one msgpack value"),
        ("bad_log", "wasmd.log was misused"),
    ],
)
async def test_abi_violations_are_traps(short_tmp: Path, method: str, fragment: str) -> None:
    async with running_daemon(short_tmp, {"mp.wat": MSGPACK_GUEST}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call(f"mp.{method}")
            assert caught.value.code == ErrorCode.TRAP
            assert fragment in caught.value.message
            assert caught.value.data == {"kind": "abi_violation"}
            assert await client.call("mp.echo", "still fine") == ["still fine"]


async def test_host_imports_log_emit_and_config(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = {"mp.wat": MSGPACK_GUEST, "mp.toml": '[config]\ngreeting = "bonjour"\n'}
    caplog.set_level(logging.INFO, logger="wasmd.plugin.mp")
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.custom")
        assert await client.call("mp.nothing") is None
        event = await events.next()
        assert await client.call("mp.greeting") == "bonjour"
    assert (event["plugin"], event["data"]) == ("mp", {"kind": "hello"})
    lines = [(r.name, r.getMessage()) for r in caplog.records if r.name == "wasmd.plugin.mp"]
    assert ("wasmd.plugin.mp", "a line from the guest") in lines


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"blob": "x" * 20_000}, "over the limit of 16384"),
        ({"deep": [[] for _ in range(300)]}, "more than 256 maps and arrays"),
        ("not a map", "the event must be a msgpack map, got str"),
    ],
    ids=["too-big", "too-many-containers", "not-a-map"],
)
async def test_emit_keeps_custom_events_small(
    short_tmp: Path, payload: object, fragment: str
) -> None:
    """What a subscriber keeps until it reads is small: a 1 MiB event per call to a
    subscriber that never read took the daemon to 5.6 GiB."""
    async with running_daemon(short_tmp, {"mp.wat": MSGPACK_GUEST}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("mp.emit_after_header", payload)
            assert caught.value.code == ErrorCode.TRAP
            assert caught.value.data == {"kind": "abi_violation"}
            assert fragment in caught.value.message
            assert await client.call("mp.emit_after_header", {"small": [1, 2]}) is None


@pytest.mark.parametrize(
    ("method", "param", "fragment"),
    [
        ("huge_result", None, "returned 5242880 bytes, over the limit of 4194304"),
        ("echo", [[] for _ in range(70_000)], "more than 65536 arrays and maps"),
    ],
    ids=["too-many-bytes", "too-many-containers"],
)
async def test_msgpack_results_are_bounded(
    short_tmp: Path, method: str, param: object, fragment: str
) -> None:
    """A result's cost to the host is bounded in bytes and in objects: 16 MB of empty arrays
    decoded to 1.2 GiB and held the GIL for 8 s."""
    plugins = {"mp.wat": MSGPACK_GUEST, "mp.toml": '[plugin]\nmemory_max = "32 MiB"\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call(f"mp.{method}", param)
            assert caught.value.code == ErrorCode.RESOURCE_EXHAUSTED
            assert fragment in caught.value.message
            assert await client.call("mp.echo", "fine") == ["fine"]


async def test_config_get_of_a_missing_key(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"mp.wat": MSGPACK_GUEST}) as daemon:
        async with daemon.client() as client:
            assert await client.call("mp.greeting") is None


async def test_wasi_command_reads_stdin_writes_stdout(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"cat.wat": CAT_COMMAND}) as daemon:
        async with daemon.client() as client:
            text = "one line\nand ☃ another\n" * 2000
            result = await client.call("cat.run", text)
            assert result == {"exit_code": 0, "stdout": text.encode(), "stderr": b"args: 1\n"}
            result = await client.call("cat.run", b"\x00\xff", ["a", "b"])
            assert result == {"exit_code": 2, "stdout": b"\x00\xff", "stderr": b"args: 3\n"}
            described = await client.describe("cat")
    assert (described["abi"], described["methods"]) == ("command", ["run"])


@pytest.mark.parametrize(
    "params",
    [[], [1], ["x", "not a list"], ["x", [1]], ["x", [], "extra"]],
    ids=["none", "int-stdin", "args-not-list", "args-not-str", "too-many"],
)
async def test_command_params_are_checked(short_tmp: Path, params: list[Any]) -> None:
    async with running_daemon(short_tmp, {"cat.wat": CAT_COMMAND}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("cat.run", *params)
            assert caught.value.code == ErrorCode.INVALID_PARAMS


async def test_command_output_over_the_limit_is_resource_exhausted(short_tmp: Path) -> None:
    plugins = {"flood.wat": flood_command(17 * 16), "ok.wat": flood_command(1)}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("flood.run", "")
            assert caught.value.code == ErrorCode.RESOURCE_EXHAUSTED
            assert "more than 16777216 bytes to stdout" in caught.value.message
            assert len((await client.call("ok.run", ""))["stdout"]) == 65536


async def test_file_not_granted_cannot_be_read(short_tmp: Path) -> None:
    plugins = {"reader.wat": READ_SECRET_COMMAND, "data/secret.txt": "top secret\n"}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            result = await client.call("reader.run", "")
    assert result["exit_code"] == 1
    assert result["stdout"] == b""
    assert result["stderr"] == b"errno 8"  # EBADF: there is no preopened fd 3


async def test_granted_folder_can_be_read(short_tmp: Path) -> None:
    plugins = {
        "reader/plugin.wat": READ_SECRET_COMMAND,
        "reader/plugin.toml": '[wasi]\npreopens = [{ host = "data", guest = "/data" }]\n',
        "reader/data/secret.txt": "top secret\n",
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            result = await client.call("reader.run", "")
            described = await client.describe("reader")
    assert result == {"exit_code": 0, "stdout": b"top secret\n", "stderr": b""}
    (grant,) = described["capabilities"]["preopens"]
    assert (grant["guest"], grant["writable"]) == ("/data", False)
    assert grant["host"] == str(daemon.plugins_dir.resolve() / "reader" / "data")


@ONE_CALL_PATH
@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("..", "outside the plug-in's folder"),
        ("data/../..", "outside the plug-in's folder"),
        ("escape", "outside the plug-in's folder"),
        ("neighbour", "outside the plug-in's folder"),
        (".", "itself, which holds its module and manifest"),
        ("data/..", "itself, which holds its module and manifest"),
        ("/etc", "absolute path"),
        ("missing", "No such file"),
        ("file.txt", "not a directory"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "symlink",
        "symlink-to-a-neighbour",
        "own-folder",
        "own-folder-spelled-long",
        "absolute",
        "missing",
        "file",
    ],
)
async def test_preopen_that_escapes_is_refused_at_load(
    short_tmp: Path, host: str, fragment: str
) -> None:
    plugins = {
        "reader/plugin.wat": READ_SECRET_COMMAND,
        "reader/plugin.toml": f'[wasi]\npreopens = [{{ host = "{host}", guest = "/data" }}]\n',
        "reader/data/secret.txt": "x",
        "reader/file.txt": "x",
        "other/plugin.wat": READ_SECRET_COMMAND,
    }
    write_plugins(short_tmp / "plugins.d", plugins)
    (short_tmp / "plugins.d" / "reader" / "escape").symlink_to("/etc")
    (short_tmp / "plugins.d" / "reader" / "neighbour").symlink_to("../other")
    async with running_daemon(short_tmp, {}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("reader.run", "")
            assert (await client.call("other.run", ""))["exit_code"] == 1  # it loaded
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert fragment in caught.value.message


@ONE_CALL_PATH
async def test_a_flat_plugin_may_not_preopen_relative_paths(short_tmp: Path) -> None:
    """``NAME.wat`` shares its directory with every other plug-in: even a subfolder of it
    could be another plug-in's folder (or become one: ``data/plugin.wat``)."""
    plugins = {
        "reader.wat": READ_SECRET_COMMAND,
        "reader.toml": '[wasi]\npreopens = [{ host = "data", guest = "/data" }]\n',
        "data/secret.txt": "top secret\n",
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("reader.run", "")
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert "only a folder plug-in (NAME/plugin.wasm) may preopen" in caught.value.message


async def test_absolute_preopen_allowed_by_daemon_config(short_tmp: Path) -> None:
    secret_dir = short_tmp / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("from afar")
    plugins = {
        "reader.wat": READ_SECRET_COMMAND,
        "reader.toml": f'[wasi]\npreopens = [{{ host = "{secret_dir}", guest = "/d" }}]\n',
    }
    async with running_daemon(short_tmp, plugins, allow_absolute_preopens=True) as daemon:
        async with daemon.client() as client:
            result = await client.call("reader.run", "")
    assert result["stdout"] == b"from afar"


@ONE_CALL_PATH
@pytest.mark.parametrize(
    ("relative", "fragment"),
    [
        ("plugins.d", "is or holds the plug-in directory"),
        ("", "is or holds the plug-in directory"),
        ("plugins.d/other/data", "inside the plug-in directory"),
        ("link-to-plugins", "is or holds the plug-in directory"),
    ],
    ids=["the-directory", "its-parent", "inside-another-plugin", "through-a-link"],
)
async def test_absolute_preopen_never_reaches_a_plugin_directory(
    short_tmp: Path, relative: str, fragment: str
) -> None:
    """Even where absolute roots are allowed, no grant covers a plug-in directory: a writable
    one would let the guest drop in code the watcher loads, or read every manifest."""
    (short_tmp / "link-to-plugins").symlink_to(short_tmp / "plugins.d")
    host = short_tmp / relative if relative else short_tmp
    plugins = {
        "reader.wat": READ_SECRET_COMMAND,
        "reader.toml": f'[wasi]\npreopens = [{{ host = "{host}", guest = "/d" }}]\n',
        "other/plugin.wat": READ_SECRET_COMMAND,
        "other/data/secret.txt": "x",
    }
    async with running_daemon(short_tmp, plugins, allow_absolute_preopens=True) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("reader.run", "")
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert fragment in caught.value.message


async def test_proc_exit_in_a_persistent_plugin_is_a_trap(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"exits.wat": EXITING_CORE}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("exits.leave")
            assert caught.value.code == ErrorCode.TRAP
            assert "proc_exit(7)" in caught.value.message
            assert await client.call("exits.stay") == 1


async def test_persistent_plugin_output_goes_to_the_log(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin.talker")
    async with running_daemon(short_tmp, {"talker.wat": PRINTING_CORE}) as daemon:
        async with daemon.client() as client:
            for _ in range(2):
                assert await client.call("talker.talk") == 0
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "wasmd.plugin.talker"
    ]
    once = [("INFO", "hello from stdout"), ("INFO", "second line"), ("WARNING", "oops on stderr")]
    assert lines == once * 2  # each call's output once: nothing is logged twice
