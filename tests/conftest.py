from __future__ import annotations

import compileall
import gc
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from wasmtime import _func as wasmtime_func

import wasmd
from wasmd.client import Client, open_client
from wasmd.config import DaemonConfig
from wasmd.daemon import Daemon, serve
from wasmd.runtime import fastcall


def pytest_sessionstart(session: pytest.Session) -> None:
    """Byte-compile wasmd once, as a regular (not editable) install does: the fast tier
    starts some fifty Python processes (daemons, clients, the CLI), and where
    ``PYTHONDONTWRITEBYTECODE`` is set and the clone is fresh, each compiled all of wasmd from
    source again (0.14 s each on one core). Files already compiled are skipped; a checkout
    that cannot be written is left as it is."""
    compileall.compile_dir(Path(wasmd.__file__).parent, quiet=2)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection made (every test module, wasmtime, hypothesis: about 190,000
    objects that live as long as the session) out of the cyclic collector's sight. Every full
    collection walked them again: 20 automatic ones and test_memory's 30 ``gc.collect()``
    cost 5 s of the fast tier's CPU, 1.5 s after this. Garbage made from now on is
    collected as before, so test_memory's checks see all of it."""
    gc.collect()
    gc.freeze()


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


CALL_PATHS = ["fast-calls", "public-api-calls"]
DEFAULT_CALLS = "default-calls"
# For a test in a module of call_path tests whose outcome takes no call path (a plug-in refused
# at load, a pure function): run it once, on the default path.
ONE_CALL_PATH = pytest.mark.parametrize("call_path", [DEFAULT_CALLS], indirect=True)


def use_call_path(path: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make plug-ins loaded from now on call through ``path`` (one of ``CALL_PATHS``, or
    ``DEFAULT_CALLS``: whichever the daemon uses by default)."""
    if path == DEFAULT_CALLS:
        return path
    fast = path == "fast-calls"
    if fast and not fastcall.SUPPORTED:
        pytest.skip(f"the fast call path is not tested with this wasmtime-py ({fastcall.TESTED})")
    monkeypatch.setattr(fastcall, "ENABLED", fast)
    return path


@pytest.fixture(scope="module", params=CALL_PATHS)
def call_path_per_module(request: pytest.FixtureRequest) -> Iterator[str]:
    """``call_path`` for a whole module at a time: a module whose tests share a daemon (see
    ``shared_daemon``) makes its ``call_path`` this one, since a daemon's instances keep the
    call path they were made with."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield use_call_path(str(request.param), monkeypatch)


@pytest.fixture(params=CALL_PATHS)
def call_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through wasmd's fast call path and through wasmtime-py's public API: the
    fast path must keep every type check and trap report of the slow one."""
    return use_call_path(str(request.param), monkeypatch)


def _scratch_root() -> str | None:
    """Where the tests' short folders go: /dev/shm when it is there, since a test creates and
    removes a folder on every run and on a disk file system (ext4 with ``discard``, say) each
    removal costs milliseconds; else the default temporary folder."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


SCRATCH = _scratch_root()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short folder: a Unix socket path must fit in 108 bytes, pytest's tmp_path may not."""
    with tempfile.TemporaryDirectory(prefix="wasmd-", dir=SCRATCH) as path:
        yield Path(path)


# The compile cache every `running_daemon` of the session shares (unless a test passes its own
# ``cache_dir``, or None for none): the same WAT modules are loaded in hundreds of tests, and
# the cache is the daemon's own, so a hit is what a restarted daemon does.
_session_cache: Path | None = None


@pytest.fixture(scope="session", autouse=True)
def session_compile_cache() -> Iterator[Path]:
    global _session_cache
    with tempfile.TemporaryDirectory(prefix="wasmd-cache-", dir=SCRATCH) as path:
        _session_cache = Path(path)
        try:
            yield _session_cache
        finally:
            _session_cache = None


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
    watch: bool | None = None,
    force_polling: bool = False,
    extra_dirs: Sequence[Path] = (),
    **config: Any,
) -> AsyncIterator[RunningDaemon]:
    """Start the real daemon on a real socket in this event loop; stop it on exit.
    ``extra_dirs`` come after ``root/plugins.d`` on the search path. It compiles through the
    session's compile cache unless ``cache_dir`` says otherwise.

    It watches its plug-in folders if ``watch`` (or ``force_polling``) says so. Left unsaid, it
    does not, since most tests change no plug-in file while it runs and stopping a watch
    waits out a watchfiles step (10 ms, a few seconds over the suite); a test that leaves it
    unsaid and changes a plug-in folder all the same fails, so that none passes for want of
    a watcher."""
    plugins_dir = root / "plugins.d"
    write_plugins(plugins_dir, plugins)
    socket_path = root / "wasmd.sock"
    config.setdefault("cache_dir", _session_cache)
    daemon_config = DaemonConfig(
        socket=socket_path,
        plugin_dirs=(plugins_dir, *extra_dirs),
        watch=force_polling if watch is None else watch,
        poll=force_polling,
        **config,
    )
    folders = (plugins_dir, *extra_dirs)
    before = _folders_state(folders) if watch is None and not force_polling else None
    unwatched_change = (
        "the test changed a plug-in folder while an unwatched daemon ran: pass watch=True "
        "(or watch=False if the daemon must not see the change)"
    )
    async with anyio.create_task_group() as tg:
        info = await tg.start(lambda task_status: serve(daemon_config, task_status=task_status))
        try:
            yield RunningDaemon(socket_path, plugins_dir, info)
        except BaseException as exc:
            if before is not None and _folders_state(folders) != before:
                exc.add_note(unwatched_change)  # most likely why it waited in vain
            raise
        finally:
            tg.cancel_scope.cancel()
    if before is not None and _folders_state(folders) != before:
        raise AssertionError(unwatched_change)


def _folders_state(folders: Sequence[Path]) -> set[tuple[str, int, int, int]]:
    """Every entry under ``folders`` (not following links): its path, inode, mtime and size."""
    state = set()
    for parent, dirs, files in (step for folder in folders for step in os.walk(folder)):
        for name in dirs + files:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            state.add((path, st.st_ino, st.st_mtime_ns, st.st_size))
    return state


@contextmanager
def shared_daemon(plugins: Mapping[str, str | bytes]) -> Iterator[RunningDaemon]:
    """A daemon for a module-scoped fixture: tests that only make calls, and check only what
    their own calls did, share it instead of starting one each. It runs on an event loop of
    its own in a thread (an anyio portal), not in the tests' loop: a module-scoped async
    fixture would keep anyio's test runner open across the module, and its closing then
    leaves cyclic garbage that test_memory's checks find."""
    with (
        tempfile.TemporaryDirectory(prefix="wasmd-", dir=SCRATCH) as root,
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_daemon(Path(root), plugins)) as daemon,
    ):
        yield daemon


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
