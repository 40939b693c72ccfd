"""wasmd as a library (wasmd/library.py): loading and calling plug-ins in this process."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import wasmd
from tests.conftest import write_plugins
from tests.wat import ARITH, COUNTER, SPIN
from tests.wat_abi import MSGPACK_GUEST
from wasmd import ErrorCode, Loader, PluginLoadError, WasmdError
from wasmd.runtime import fastcall
from wasmd.runtime.engine import Engines

needs_guard = pytest.mark.skipif(
    not fastcall.ENABLED, reason="interrupting a running call needs the epoch-deadline callback"
)


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "plugins.d"
    write_plugins(
        directory,
        {
            "arith.wat": ARITH,
            "counter.wat": COUNTER,
            "spin.wat": SPIN,
            "spin.toml": "[plugin]\ntimeout_ms = 100\n",
            "guest.wat": MSGPACK_GUEST,
            "guest.toml": '[config]\ngreeting = "hi"\n',
        },
    )
    return directory


@pytest.fixture
def loader(plugins_dir: Path) -> Iterator[Loader]:
    with Loader([plugins_dir], environ={}, include_defaults=False) as loader:
        yield loader


def test_load_by_name_and_call(loader: Loader, plugins_dir: Path) -> None:
    arith = loader.load("arith")
    assert arith.name == "arith"
    assert arith.path == plugins_dir / "arith.wat"
    assert len(arith.version) == 12
    assert arith.abi == "core"
    assert arith.exports["add"].params == ("i32", "i32")
    assert arith.exports["add"].results == ("i32",)
    assert "takes_ref" not in arith.exports  # not callable by the core ABI
    assert arith.call("add", 2, 40) == 42
    assert arith.describe()["stats"]["calls"] == 1


def test_the_same_name_is_one_handle(loader: Loader) -> None:
    assert loader.load("counter") is loader.load("counter")
    assert [p.name for p in loader] == ["counter"]
    assert loader.get("counter") is not None
    assert loader.get("arith") is None


def test_errors_carry_the_wire_codes(loader: Loader) -> None:
    arith = loader.load("arith")
    with pytest.raises(WasmdError) as info:
        arith.call("div", 1, 0)
    assert info.value.code == ErrorCode.TRAP
    with pytest.raises(WasmdError) as info:
        arith.call("add", "x", 1)
    assert info.value.code == ErrorCode.INVALID_PARAMS
    with pytest.raises(WasmdError) as info:
        arith.call("nope")
    assert info.value.code == ErrorCode.METHOD_NOT_FOUND
    spin = loader.load("spin")
    with pytest.raises(WasmdError) as info:
        spin.call("spin")  # the manifest's timeout_ms = 100 holds here too
    assert info.value.code == ErrorCode.TIMEOUT


def test_manifest_and_host_imports(loader: Loader) -> None:
    guest = loader.load("guest")
    assert guest.abi == "msgpack"
    assert guest.call("echo", 1, "two", [3]) == [1, "two", [3]]
    assert guest.call("greeting") == "hi"
    with pytest.raises(WasmdError) as info:
        guest.call("fail")
    assert info.value.data == {"kind": "guest_error"}


def test_not_found_and_bad_names(loader: Loader) -> None:
    with pytest.raises(PluginLoadError, match="not found on the search path"):
        loader.load("missing")
    with pytest.raises(PluginLoadError, match="invalid plug-in name"):
        loader.load("../arith")


def test_load_path_outside_the_search_path(loader: Loader, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_plugins(elsewhere, {"extra.wat": COUNTER, "arith.wat": COUNTER})
    extra = loader.load_path(elsewhere / "extra.wat")
    assert extra.call("incr") == 1
    assert loader.load_path(str(elsewhere / "extra.wat")) is extra
    # A name taken by another file is refused, not replaced.
    loader.load("arith")
    with pytest.raises(PluginLoadError, match="loaded already"):
        loader.load_path(elsewhere / "arith.wat")
    with pytest.raises(PluginLoadError, match="no such file"):
        loader.load_path(elsewhere / "absent.wasm")


def test_close_takes_it_out_and_refuses_calls(loader: Loader) -> None:
    with loader.load("counter") as counter:
        assert counter.call("incr") == 1
    assert counter.closed
    assert loader.get("counter") is None
    with pytest.raises(WasmdError) as info:
        counter.call("incr")
    assert info.value.code == ErrorCode.UNAVAILABLE
    fresh = loader.load("counter")  # a new version, with fresh state
    assert fresh is not counter
    assert fresh.call("incr") == 1


def test_a_closed_loader_loads_nothing(plugins_dir: Path) -> None:
    loader = Loader([plugins_dir], environ={}, include_defaults=False)
    counter = loader.load("counter")
    loader.close()
    assert counter.closed
    with pytest.raises(PluginLoadError, match="closed"):
        loader.load("counter")


def test_search_path_order(tmp_path: Path) -> None:
    first, second, env_dir = tmp_path / "a", tmp_path / "b", tmp_path / "env"
    write_plugins(first, {"x.wat": '(module (func (export "who") (result i32) i32.const 1))'})
    write_plugins(second, {"x.wat": '(module (func (export "who") (result i32) i32.const 2))'})
    write_plugins(env_dir, {"y.wat": '(module (func (export "who") (result i32) i32.const 3))'})
    environ = {"WASMD_PLUGIN_PATH": str(env_dir)}
    with Loader([first, second], environ=environ, include_defaults=False) as loader:
        assert loader.search_path == (first, second, env_dir)
        assert loader.load("x").call("who") == 1
        assert loader.load("y").call("who") == 3
    with Loader(environ={}) as defaults:
        assert defaults.search_path == (
            Path("/etc/wasmd/plugins.d"),
            Path("/usr/lib/wasmd/plugins.d"),
        )


def test_concurrent_loads_from_threads_compile_once(
    loader: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles: list[int] = []
    compile_module = Engines.compile

    def counted(self: Engines, engine: Any, wasm: bytes) -> Any:
        compiles.append(len(wasm))
        return compile_module(self, engine, wasm)

    monkeypatch.setattr(Engines, "compile", counted)
    handles: list[wasmd.Plugin] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        handles.append(loader.load("counter"))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(handles) == 8
    assert all(h is handles[0] for h in handles)
    assert len(compiles) == 1  # eight threads asked at once; one compile served them all
    # One instance, shared state: calls from threads are serialised by the pool.
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(handles[0].call("incr"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(1, 9))


async def test_from_anyio_tasks(loader: Loader) -> None:
    handles: list[wasmd.Plugin] = []
    results: list[int] = []

    async def load_and_call() -> None:
        plugin = await loader.aload("counter")
        handles.append(plugin)
        results.append(await plugin.acall("incr"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(load_and_call)
    assert all(h is handles[0] for h in handles)
    assert sorted(results) == [1, 2, 3, 4, 5]


@needs_guard
async def test_cancelling_the_task_cancels_the_guest(tmp_path: Path) -> None:
    write_plugins(tmp_path, {"spin.wat": SPIN, "spin.toml": "[plugin]\ntimeout_ms = 60000\n"})
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        spin = await loader.aload("spin")
        with anyio.move_on_after(0.2):
            await spin.acall("spin")
        # The guest was interrupted (not left spinning for 60 s): the instance is free again.
        with anyio.fail_after(10):
            assert await spin.acall("quick") == 7
        assert spin.describe()["stats"]["errors"] == {"cancelled": 1}


def test_the_library_imports_nothing_linux_specific() -> None:
    code = (
        "import sys, wasmd\n"
        "from wasmd import Loader, Plugin\n"
        "bad = {'watchfiles', 'wasmd.systemd', 'wasmd.daemon', 'wasmd.server',"
        " 'wasmd.plugins.watcher', 'wasmd.listener', 'wasmd.connection', 'wasmd.config', 'grp'}"
        " & set(sys.modules)\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_load_path_of_the_loaded_file_is_a_no_op(loader: Loader, tmp_path: Path) -> None:
    """Documented (docs/embedding.md): the same handle, and the file is not read again."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "extra.wat").write_text(ARITH)
    extra = loader.load_path(elsewhere / "extra.wat")
    version = extra.version
    (elsewhere / "extra.wat").write_text(COUNTER)
    assert loader.load_path(elsewhere / "extra.wat") is extra
    assert extra.version == version
    assert extra.call("add", 1, 2) == 3
    extra.close()
    assert loader.load_path(elsewhere / "extra.wat").version != version  # read afresh
