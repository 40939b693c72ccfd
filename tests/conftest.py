from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from wasmtime import _func as wasmtime_func

from wasmd.client import Client, open_client
from wasmd.config import DaemonConfig
from wasmd.daemon import Daemon, serve
from wasmd.runtime import fastcall


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_stale_host_exception() -> Iterator[None]:
    """A host function that raised into wasmtime-py leaves its exception in a global, where
    the next call that traps, on any thread, would raise it: none may be left after a test."""
    yield
    stale, wasmtime_func.LAST_EXCEPTION = wasmtime_func.LAST_EXCEPTION, None
    assert stale is None, f"a host function raised into wasmtime: {stale!r}"


@pytest.fixture(params=["fast-calls", "public-api-calls"])
def call_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through wasmd's fast call path and through wasmtime-py's public API: the
    fast path must keep every type check and trap report of the slow one."""
    fast = request.param == "fast-calls"
    if fast and not fastcall.SUPPORTED:
        pytest.skip(f"the fast call path is not tested with this wasmtime-py ({fastcall.TESTED})")
    monkeypatch.setattr(fastcall, "ENABLED", fast)
    return str(request.param)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short folder: a Unix socket path must fit in 108 bytes, pytest's tmp_path may not."""
    with tempfile.TemporaryDirectory(prefix="wasmd-") as path:
        yield Path(path)


@dataclass
class RunningDaemon:
    socket: Path
    plugins_dir: Path
    info: Daemon

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Client]:
        async with open_client(self.socket) as client:
            yield client


def write_plugins(directory: Path, plugins: Mapping[str, str | bytes]) -> None:
    """Write ``{"name.wat": text, "name.toml": text, "name.wasm": bytes}`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for filename, content in plugins.items():
        path = directory / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


@asynccontextmanager
async def running_daemon(
    root: Path,
    plugins: Mapping[str, str | bytes],
    *,
    watch: bool = True,
    force_polling: bool = False,
    extra_dirs: Sequence[Path] = (),
    **config: Any,
) -> AsyncIterator[RunningDaemon]:
    """Start the real daemon on a real socket in this event loop; stop it on exit.
    ``extra_dirs`` come after ``root/plugins.d`` on the search path."""
    plugins_dir = root / "plugins.d"
    write_plugins(plugins_dir, plugins)
    socket_path = root / "wasmd.sock"
    daemon_config = DaemonConfig(
        socket=socket_path,
        plugin_dirs=(plugins_dir, *extra_dirs),
        watch=watch,
        poll=force_polling,
        **config,
    )
    async with anyio.create_task_group() as tg:
        info = await tg.start(lambda task_status: serve(daemon_config, task_status=task_status))
        try:
            yield RunningDaemon(socket_path, plugins_dir, info)
        finally:
            tg.cancel_scope.cancel()


@pytest.fixture
def own_uid() -> int:
    return os.getuid()


def serve_command(plugins: Path, *extra: str) -> list[str]:
    """`wasmd serve` of ``plugins`` as a child process runs it: no default dirs, no cache."""
    return [
        sys.executable,
        "-m",
        "wasmd",
        "serve",
        "--plugins",
        str(plugins),
        "--no-default-dirs",
        "--no-cache",
        *extra,
    ]
