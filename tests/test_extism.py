"""Extism plug-ins through the real daemon: the kernel ABI, config, vars, logs, errors, HTTP
allow lists, and the same deadlines, limits and reloads as every other plug-in."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasmd import ErrorCode, WasmdError

from .conftest import running_daemon
from .test_reload import replace_atomically, subscribe
from .wat_extism import EXTISM_USER_IMPORTS, extism_guest

pytestmark = pytest.mark.usefixtures("call_path")

GUEST = extism_guest()


async def test_detected_and_described(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"ex.wat": GUEST}) as daemon:
        async with daemon.client() as client:
            described = await client.describe("ex")
    assert described["abi"] == "extism"
    assert described["methods"] == [
        "count_calls",
        "count_vowels",
        "echo",
        "fail",
        "fail_quietly",
        "fetch",
        "greeting",
        "spin",
    ]
    assert described["trapping_imports"] == []


async def test_echo_and_count_vowels(short_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin.ex")
    async with running_daemon(short_tmp, {"ex.wat": GUEST}) as daemon:
        async with daemon.client() as client:
            data = bytes(range(256)) * 400
            assert await client.call("ex.echo", data) == data
            assert await client.call("ex.echo", "héllo") == "héllo".encode()
            assert await client.call("ex.echo") == b""
            assert await client.call("ex.count_vowels", "Hello, World! AEIOU") == b"8"
            with pytest.raises(WasmdError) as caught:
                await client.call("ex.echo", 1)
            assert caught.value.code == ErrorCode.INVALID_PARAMS
    assert ("wasmd.plugin.ex", "vowels counted") in [
        (r.name, r.getMessage()) for r in caplog.records
    ]


# slow: 1.05 s measured per call path (waits out the default 1 s deadline)
@pytest.mark.slow
async def test_config_and_vars_that_survive_calls(short_tmp: Path) -> None:
    plugins = {"ex.wat": GUEST, "ex.toml": '[config]\ngreeting = "bonjour"\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("ex.greeting") == b"bonjour"
            assert [await client.call("ex.count_calls") for _ in range(3)] == [b"1", b"2", b"3"]
            # A trap replaces the instance, and its vars go with it.
            with pytest.raises(WasmdError):
                await client.call("ex.spin")
            assert await client.call("ex.count_calls") == b"1"


async def test_errors(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"ex.wat": GUEST}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("ex.fail")
            assert (caught.value.code, caught.value.message) == (
                ErrorCode.TRAP,
                "something went wrong on purpose",
            )
            assert caught.value.data == {"kind": "guest_error", "status": 1}
            with pytest.raises(WasmdError) as caught:
                await client.call("ex.fail_quietly")
            assert caught.value.message == "fail_quietly returned 3"
            assert await client.call("ex.count_calls") == b"1"  # errors keep the instance


async def test_runaway_loop_and_memory_limit(short_tmp: Path) -> None:
    plugins = {"ex.wat": GUEST, "ex.toml": '[plugin]\ntimeout_ms = 300\nmemory_max = "1 MiB"\n'}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("ex.spin")
            assert caught.value.code == ErrorCode.TIMEOUT
            # The input does not fit the kernel's memory under memory_max.
            with pytest.raises(WasmdError) as caught:
                await client.call("ex.echo", b"x" * 2_000_000)
            assert caught.value.code == ErrorCode.RESOURCE_EXHAUSTED
            assert await client.call("ex.echo", b"fits") == b"fits"


@pytest.fixture
def local_http() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"served locally"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


async def test_http_request_only_to_allowed_hosts(short_tmp: Path, local_http: str) -> None:
    guest = extism_guest(local_http)
    async with running_daemon(
        short_tmp,
        {
            "denied.wat": guest,
            "allowed.wat": guest,
            "allowed.toml": '[extism]\nallowed_hosts = ["127.0.0.1"]\n',
        },
    ) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("denied.fetch")
            assert caught.value.code == ErrorCode.PERMISSION_DENIED
            assert "127.0.0.1" in caught.value.message
            assert await client.call("allowed.fetch") == b"served locally"
            assert await client.call("denied.count_calls") == b"1"  # refused, not faulted


async def test_user_host_functions_match_by_name_or_trap(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin.user")
    async with running_daemon(short_tmp, {"user.wat": EXTISM_USER_IMPORTS}) as daemon:
        async with daemon.client() as client:
            assert (await client.describe("user"))["trapping_imports"] == [
                "extism:host/user::mystery"
            ]
            assert await client.call("user.say") == b""
            with pytest.raises(WasmdError) as caught:
                await client.call("user.ask")
            assert caught.value.code == ErrorCode.TRAP
            assert "mystery" in caught.value.message
    assert "hello from a user host function" in [r.getMessage() for r in caplog.records]


async def test_hot_reload_of_an_extism_plugin(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"ex.wat": GUEST}) as daemon, daemon.client() as c:
        events = await subscribe(c)
        assert await c.call("ex.count_vowels", "aaa") == b"3"
        (daemon.plugins_dir / "ex.toml").write_text('[config]\ngreeting = "new"\n')
        assert (await events.next())["type"] == "plugin.reloaded"
        assert await c.call("ex.greeting") == b"new"
        replace_atomically(daemon.plugins_dir / "ex.wat", "(module (func (export")
        failed = await events.next()
        assert failed["type"] == "plugin.failed"
        assert await c.call("ex.greeting") == b"new"  # the old version keeps serving
