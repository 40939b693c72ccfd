"""examples/node/stream.mjs, docs/streaming.md's Node client, against a real daemon."""

from __future__ import annotations

import re
import shutil
import signal
from pathlib import Path

import anyio
import pytest

from wasmd.runtime import fastcall

from .conftest import running_daemon
from .helpers import subscribe
from .setup_toolchains import NODE_CLIENT, npm_install
from .toolchains import ToolchainUnavailable
from .wat_stream import STREAMER

needs_guard = pytest.mark.skipif(
    not fastcall.ENABLED, reason="interrupting a running call needs the epoch-deadline callback"
)

pytestmark = [
    pytest.mark.toolchain,
    pytest.mark.skipif(shutil.which("node") is None, reason="needs node (Debian nodejs)"),
]

PLUGINS = {"streamer.wat": STREAMER, "streamer.toml": "[plugin]\ntimeout_ms = 20000\n"}


@pytest.fixture(scope="module")
def client_script() -> Path:
    if not (NODE_CLIENT / "node_modules" / "@msgpack" / "msgpack").is_dir():
        try:
            npm_install(NODE_CLIENT)
        except ToolchainUnavailable as exc:
            pytest.skip(str(exc))
    return NODE_CLIENT / "stream.mjs"


async def test_node_prints_each_chunk_then_the_result(short_tmp: Path, client_script: Path) -> None:
    async with running_daemon(short_tmp, PLUGINS) as daemon:
        with anyio.fail_after(60):
            done = await anyio.run_process(
                ["node", str(client_script), str(daemon.socket), "streamer.count", "40"]
            )
    # 40 chunks with a window of 32: the credit the client grants lets the rest out.
    assert done.stdout.decode().splitlines() == [*map(str, range(40)), "result 40"]


@needs_guard
async def test_node_ctrl_c_cancels(short_tmp: Path, client_script: Path) -> None:
    async with running_daemon(short_tmp, PLUGINS) as daemon, daemon.client() as watcher:
        events = await subscribe(watcher, "plugin.cancelled")
        command = ["node", str(client_script), str(daemon.socket), "streamer.spin"]
        process = await anyio.open_process(command)
        try:
            assert process.stdout is not None
            with anyio.fail_after(60):
                out = b""
                while b"\n" not in out:  # the first chunk: the stream is under way
                    out += await process.stdout.receive()
                process.send_signal(signal.SIGINT)
                assert await process.wait() == 1  # its error line: "error 11: call cancelled"
            assert (await events.next())["export"] == "spin"
        finally:
            if process.returncode is None:
                process.kill()
            await process.aclose()


def test_the_docs_show_the_script() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "streaming.md").read_text()
    shown = re.findall(r"```js\n(.*?)```", docs, re.S)
    assert shown
    assert shown[0] in (NODE_CLIENT / "stream.mjs").read_text()
