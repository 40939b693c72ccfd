"""The one build pipeline of the plug-in set: snapshot -> folder rule -> trust check -> compile
-> link -> pool.

Every version of a plug-in, whoever asks for it, is built by ``build_pool``: the daemon's
``Reconciler`` (reconciler.py), ``wasmd.Loader`` (wasmd/library.py), ``wasmd.load``
(wasmd/loading.py, through the reconciler) and ``wasmd check`` (check.py). So a pin or a
signature holds everywhere. ``off_loop`` runs such a blocking build in a daemon thread the
event loop does not wait for when cancelled.
"""

from __future__ import annotations

import asyncio  # a Future settled from a thread anyio's to_thread would wait for
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..discovery import PluginSource, folder_problem
from ..errors import ConfigError, PluginLoadError
from ..manifest import DEFAULT_MANIFEST, parse_manifest
from ..runtime import (
    DEFAULT_START_TIMEOUT_MS,
    Engines,
    EventSink,
    PluginFiles,
    PluginPool,
    PluginResolver,
    compile_plugin,
    module_binary,
    plugin_calls,
)
from ..runtime.account import PluginAccount
from ..runtime.host import Imports
from .snapshot import Snapshot, take_snapshot
from .trust import TrustPolicy, verify_snapshot

T = TypeVar("T")


def build_pool(
    snapshot: Snapshot,
    engines: Engines,
    on_event: EventSink,
    allow_absolute_preopens: bool = False,
    plugin_dirs: Sequence[Path] = (),
    start_timeout_ms: int = DEFAULT_START_TIMEOUT_MS,
    plugins: PluginResolver | None = None,
    account: PluginAccount | None = None,
    trust: TrustPolicy | None = None,
    host_functions: Imports | None = None,
) -> PluginPool:
    """The one build pipeline, for the daemon, ``wasmd.Loader`` and ``wasmd check`` alike
    (blocking): the folder rule, the trust check (pins and signatures; refused bytes never
    reach the compiler), compile, link, and the started pool. Raises PluginLoadError
    (``TrustRefused`` from the trust check).

    ``plugins``: how its ``wasmd.call`` finds other plug-ins (the registry it will be in).
    ``trust``: the pins and keys (by default: only the manifest's own pin is checked).

    ``plugin_dirs``: the search path, on which no preopen may grant anything;
    ``start_timeout_ms``: the deadline of each instantiation (start code, ``_initialize``).
    """
    source = snapshot.source
    problem = folder_problem(source, plugin_dirs)
    if problem is not None:
        raise PluginLoadError(source.name, problem)
    verify_snapshot(snapshot, trust or TrustPolicy())
    manifest = DEFAULT_MANIFEST
    if snapshot.manifest_text is not None:
        try:
            manifest = parse_manifest(snapshot.manifest_text, source=str(source.manifest_path))
        except ConfigError as exc:
            raise PluginLoadError(source.name, f"bad manifest: {exc}") from None
    wasm = module_binary(source.module_path, snapshot.module_bytes, source.name)
    plugin = compile_plugin(
        plugin_files(source, plugin_dirs),
        manifest,
        engines,
        wasm,
        snapshot.manifest_text,
        on_event=on_event,
        allow_absolute_preopens=allow_absolute_preopens,
        plugins=None if plugins is None else plugin_calls(plugins),
        host_functions=host_functions,
    )
    pool = PluginPool(plugin, engines, account, start_timeout_ms=start_timeout_ms)
    pool.start()
    return pool


def plugin_files(source: PluginSource, plugin_dirs: Sequence[Path] = ()) -> PluginFiles:
    """What the runtime needs to know of where ``source`` is. No preopen may grant a plug-in
    directory: those of the search path, and the one that holds this plug-in (which is not
    on the search path when it is loaded from a path)."""
    holder = source.root.parent if source.folder else source.root
    protected = (*plugin_dirs, holder, *([source.search_dir] if source.search_dir else []))
    return PluginFiles(
        source.name,
        source.module_path,
        source.manifest_path,
        source.root,
        source.folder,
        protected,
    )


def load_source(
    source: PluginSource, engines: Engines, on_event: EventSink, trust: TrustPolicy | None = None
) -> PluginPool:
    """Snapshot and build in one blocking step (``wasmd check``, tools)."""
    try:
        snapshot = take_snapshot(source)
    except ConfigError as exc:
        raise PluginLoadError(source.name, f"bad manifest: {exc}") from None
    return build_pool(snapshot, engines, on_event, trust=trust)


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a new daemon thread; if the caller is cancelled, the thread is left
    to finish on its own and its result dropped.

    For compiling and reading plug-ins: a compile cannot be interrupted, and anyio's worker
    threads would hold up both the cancellation (a SIGTERM during a 30 s compile) and the
    process's exit, which waits for every non-daemon thread.

    An exception ``func`` raises carries a traceback whose frames hold the build's bytes
    (the snapshot, the copy wasmtime was handed). No frame here keeps a reference back to the
    exception once it is handed on, or exception -> traceback -> frame -> exception would be
    a cycle that only the cyclic collector frees, and every failed build would keep its
    bytes until then (tests/test_memory.py).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    threading.Thread(
        target=_run_and_settle,
        args=(loop, done, func, args),
        name=f"wasmd-{func.__name__}",
        daemon=True,
    ).start()
    try:
        return await done
    finally:
        del done  # it holds the exception, whose traceback holds this frame


def _run_and_settle(
    loop: asyncio.AbstractEventLoop, done: asyncio.Future[Any], func: Callable[..., Any], args: Any
) -> None:
    """``off_loop``'s thread: run ``func``, hand its outcome to ``done`` on the loop."""
    try:
        result, error = func(*args), None
    except BaseException as exc:
        result, error = None, exc
    try:
        loop.call_soon_threadsafe(_settle, done, result, error)
    except RuntimeError:
        pass  # the loop closed: nobody waits any more
    finally:
        del result, error, done  # the error's traceback holds this frame


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)
