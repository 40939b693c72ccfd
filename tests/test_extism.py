"""Extism plug-ins through the real daemon: the kernel ABI, config, vars, logs, errors, HTTP
allow lists, and the same deadlines, limits and reloads as every other plug-in."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from wasmd import ErrorCode, WasmdError
from wasmd.runtime.extism import host_allowed

from .conftest import ONE_CALL_PATH, running_daemon
from .helpers import replace_atomically, subscribe
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
    """A real HTTP server on 127.0.0.1: ``/`` answers GETs, ``/elsewhere`` redirects to
    ``localhost`` (another host name for the same server), ``/nearby`` redirects to ``/``,
    and ``/slow`` answers only when the test is over."""
    released = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = self.server.server_address[1]  # type: ignore[index]  # an AF_INET server
            if self.path == "/elsewhere":
                self._answer(302, b"", f"http://localhost:{port}/secret")
            elif self.path == "/nearby":
                self._answer(302, b"", "/")
            elif self.path == "/secret":
                self._answer(200, b"a secret on localhost")
            elif self.path == "/slow":
                released.wait()
                self._answer(200, b"too late")
            else:
                self._answer(200, b"served locally")

        def _answer(self, status: int, body: bytes, location: str | None = None) -> None:
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A short poll interval: shutdown() waits for the loop to look (0.5 s by default, per test).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    released.set()
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
    async with (
        running_daemon(short_tmp, {"ex.wat": GUEST}, watch=True) as daemon,
        daemon.client() as c,
    ):
        events = await subscribe(c)
        assert await c.call("ex.count_vowels", "aaa") == b"3"
        (daemon.plugins_dir / "ex.toml").write_text('[config]\ngreeting = "new"\n')
        assert (await events.next())["type"] == "plugin.reloaded"
        assert await c.call("ex.greeting") == b"new"
        replace_atomically(daemon.plugins_dir / "ex.wat", "(module (func (export")
        failed = await events.next()
        assert failed["type"] == "plugin.failed"
        assert await c.call("ex.greeting") == b"new"  # the old version keeps serving


async def test_http_request_is_http_and_https_only(short_tmp: Path, local_http: str) -> None:
    allowed = '[extism]\nallowed_hosts = ["localhost", "127.0.0.1"]\n'
    plugins = {
        "file.wat": extism_guest("file://localhost/etc/passwd"),
        "file.toml": allowed,
        "ftp.wat": extism_guest(local_http.replace("http:", "ftp:")),
        "ftp.toml": allowed,
        "creds.wat": extism_guest(local_http.replace("//", "//localhost@")),
        "creds.toml": allowed,
    }
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        for name, fragment in [("file", "file:"), ("ftp", "ftp:"), ("creds", "user info")]:
            with pytest.raises(WasmdError) as caught:
                await client.call(f"{name}.fetch")
            assert caught.value.code == ErrorCode.PERMISSION_DENIED, (name, caught.value)
            assert fragment in caught.value.message


async def test_http_redirects_are_checked_hop_by_hop(short_tmp: Path, local_http: str) -> None:
    allowed = '[extism]\nallowed_hosts = ["127.0.0.1"]\n'
    plugins = {
        "away.wat": extism_guest(local_http + "elsewhere"),
        "away.toml": allowed,
        "near.wat": extism_guest(local_http + "nearby"),
        "near.toml": allowed,
    }
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        with pytest.raises(WasmdError) as caught:
            await client.call("away.fetch")
        assert caught.value.code == ErrorCode.PERMISSION_DENIED
        assert "'localhost' is not allowed" in caught.value.message
        assert await client.call("near.fetch") == b"served locally"


async def test_http_request_without_a_method_is_a_get(short_tmp: Path, local_http: str) -> None:
    plugins = {
        "ex.wat": extism_guest(local_http, method=None),
        "ex.toml": '[extism]\nallowed_hosts = ["127.0.0.1"]\n',
    }
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert await client.call("ex.fetch") == b"served locally"


@ONE_CALL_PATH
@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.example.com", True),
        ("a.b.example.com", True),
        ("API.Example.COM", True),
        ("example.com", False),  # as in Extism: *.NAME is what is below NAME
        ("evilexample.com", False),
        ("example.com.evil.org", False),
        ("localhost", False),
    ],
)
def test_wildcard_allowed_hosts(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["*.example.com"]) is allowed
    assert host_allowed(host, ["*"]) is True
    assert host_allowed(host, []) is False


async def test_http_wildcard_through_the_daemon(short_tmp: Path, local_http: str) -> None:
    plugins = {
        # 127.0.0.1 is below "0.0.1" as far as the pattern goes: loopback only, no DNS.
        "ex.wat": extism_guest(local_http),
        "ex.toml": '[extism]\nallowed_hosts = ["*.0.0.1"]\n',
        "bare.wat": extism_guest(local_http.replace("127.0.0.1", "localhost")),
        "bare.toml": '[extism]\nallowed_hosts = ["*.localhost"]\n',
    }
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert await client.call("ex.fetch") == b"served locally"
        with pytest.raises(WasmdError) as caught:
            await client.call("bare.fetch")
        assert caught.value.code == ErrorCode.PERMISSION_DENIED


async def test_http_request_keeps_the_call_deadline(short_tmp: Path, local_http: str) -> None:
    plugins = {
        "ex.wat": extism_guest(local_http + "slow"),
        "ex.toml": '[plugin]\ntimeout_ms = 300\n[extism]\nallowed_hosts = ["127.0.0.1"]\n',
    }
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        with anyio.fail_after(5):  # the old fixed 10 s timeout would hold the call that long
            with pytest.raises(WasmdError) as caught:
                await client.call("ex.fetch")
        assert caught.value.code == ErrorCode.TIMEOUT
        assert "deadline of 300 ms" in caught.value.message
        assert await client.call("ex.count_calls") == b"1"
