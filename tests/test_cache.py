"""The compile cache: hits, misses, every kind of bad entry, failing stores, threads, size cap."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from wasmd.runtime.cache import MAGIC, CacheStats, CompileCache, default_cache_dir

from .conftest import running_daemon
from .wat import ARITH, COUNTER, SPIN

KEY = CompileCache.engine_key(fuel=False, target=None)


def make_engine(*, fuel: bool = False) -> wasmtime.Engine:
    # As the daemon makes them: with epochs on, every call needs a deadline.
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    return wasmtime.Engine(config)


def large_wat(functions: int) -> str:
    bodies = (
        f'(func (export "f{i}") (param i32) (result i32)'
        f" (i32.add (i32.mul (local.get 0) (i32.const {i})) (i32.const 3)))"
        for i in range(functions)
    )
    return "(module " + " ".join(bodies) + ")"


@pytest.fixture(scope="module")
def engine() -> wasmtime.Engine:
    return make_engine()


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return bytes(wasmtime.wat2wasm(ARITH))


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    return CompileCache(tmp_path / "cache", engine_key=KEY)


def add(engine: wasmtime.Engine, module: wasmtime.Module) -> object:
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(10)
    instance = wasmtime.Instance(store, module, [])
    func = instance.exports(store)["add"]
    assert isinstance(func, wasmtime.Func)
    return func(store, 2, 3)


def entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def test_miss_then_hit_and_the_cached_module_runs(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes
) -> None:
    assert not cache.directory.exists()  # created on the first store, not before

    module, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert add(engine, module) == 5
    assert cache.stats() == CacheStats(misses=1, stores=1)

    module, hit = cache.load_or_compile(engine, wasm)
    assert hit
    assert add(engine, module) == 5
    assert cache.stats() == CacheStats(hits=1, misses=1, stores=1)

    assert entries(cache.directory) == [cache.path_for(wasm)]
    assert cache.path_for(wasm).name == (
        hashlib.sha256(cache.full_engine_key.encode() + b"\0" + wasm).hexdigest() + ".cwasm"
    )
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path_for(wasm).stat().st_mode) == 0o600


def test_the_key_holds_the_wasmtime_version_machine_and_settings() -> None:
    keys = {
        CompileCache.engine_key(fuel=fuel, target=target)
        for fuel in (False, True)
        for target in (None, "x86_64-unknown-linux-gnu")
    }
    assert len(keys) == 4
    full = CompileCache(Path("unused"), engine_key=KEY).full_engine_key
    assert full.startswith(f"wasmtime={importlib.metadata.version('wasmtime')};machine=")
    assert full.endswith(";" + KEY)


def test_another_engine_key_misses(tmp_path: Path, engine: wasmtime.Engine, wasm: bytes) -> None:
    first = CompileCache(tmp_path, engine_key="fuel=0;target=native")
    second = CompileCache(tmp_path, engine_key="fuel=0;target=other")
    first.load_or_compile(engine, wasm)
    _, hit = second.load_or_compile(engine, wasm)
    assert not hit
    assert second.stats() == CacheStats(misses=1, stores=1)
    assert len(entries(tmp_path)) == 2


def test_another_module_misses(cache: CompileCache, engine: wasmtime.Engine, wasm: bytes) -> None:
    cache.load_or_compile(engine, wasm)
    _, hit = cache.load_or_compile(engine, bytes(wasmtime.wat2wasm(COUNTER)))
    assert not hit
    assert cache.stats() == CacheStats(misses=2, stores=2)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def header_length(cache: CompileCache) -> int:
    return len(MAGIC) + 32 + 4 + len(cache.full_engine_key.encode()) + 32


CORRUPTIONS: dict[str, Callable[[bytes, CompileCache], bytes]] = {
    "flipped payload byte": lambda data, cache: flip_last_byte(data),
    "flipped payload hash": lambda data, cache: (
        data[: len(MAGIC)] + bytes([data[len(MAGIC)] ^ 1]) + data[len(MAGIC) + 1 :]
    ),
    "empty": lambda data, cache: b"",
    "truncated in the magic": lambda data, cache: data[:5],
    "truncated in the hash": lambda data, cache: data[: len(MAGIC) + 10],
    "truncated in the key": lambda data, cache: data[: len(MAGIC) + 32 + 4 + 3],
    "truncated after the header": lambda data, cache: data[: header_length(cache)],
    "truncated payload": lambda data, cache: data[:-1],
    "wrong magic": lambda data, cache: b"wasmd-cwasm-0\n" + data[len(MAGIC) :],
    "huge key length": lambda data, cache: (
        data[: len(MAGIC) + 32] + b"\xff\xff\xff\xff" + data[len(MAGIC) + 36 :]
    ),
    "garbage": lambda data, cache: os.urandom(4096),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_entry_is_rejected_recompiled_and_rewritten(
    cache: CompileCache,
    engine: wasmtime.Engine,
    wasm: bytes,
    corrupt: Callable[[bytes, CompileCache], bytes],
) -> None:
    cache.load_or_compile(engine, wasm)
    path = cache.path_for(wasm)
    good = path.read_bytes()
    path.write_bytes(corrupt(good, cache))

    module, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert add(engine, module) == 5
    assert cache.stats() == CacheStats(misses=2, rejected=1, stores=2)
    assert path.read_bytes() == good

    module, hit = cache.load_or_compile(engine, wasm)
    assert hit
    assert add(engine, module) == 5


def test_an_entry_made_for_another_engine_key_is_rejected(
    tmp_path: Path, engine: wasmtime.Engine, wasm: bytes
) -> None:
    # A valid entry under another entry's name: only the key inside the file tells.
    other = CompileCache(tmp_path, engine_key="fuel=0;target=other")
    cache = CompileCache(tmp_path, engine_key=KEY)
    other.load_or_compile(engine, wasm)
    cache.path_for(wasm).write_bytes(other.path_for(wasm).read_bytes())

    _, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert cache.stats() == CacheStats(misses=1, rejected=1, stores=1)
    assert cache.load_or_compile(engine, wasm)[1]


def test_an_entry_made_from_another_module_is_rejected(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes
) -> None:
    other = bytes(wasmtime.wat2wasm(COUNTER))
    cache.load_or_compile(engine, other)
    cache.path_for(wasm).write_bytes(cache.path_for(other).read_bytes())

    module, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert add(engine, module) == 5
    assert cache.stats() == CacheStats(misses=2, rejected=1, stores=2)


def test_an_entry_wasmtime_refuses_is_rejected(tmp_path: Path, wasm: bytes) -> None:
    # A caller that mislabels its engines: the entry is whole, but compiled with fuel.
    fuel_engine, plain_engine = make_engine(fuel=True), make_engine(fuel=False)
    cache = CompileCache(tmp_path, engine_key="mislabelled")
    cache.load_or_compile(fuel_engine, wasm)

    module, hit = cache.load_or_compile(plain_engine, wasm)
    assert not hit
    assert add(plain_engine, module) == 5
    assert cache.stats() == CacheStats(misses=2, rejected=1, stores=2)
    assert cache.load_or_compile(plain_engine, wasm)[1]


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_an_entry_writable_by_others_is_rejected(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes, mode: int
) -> None:
    cache.load_or_compile(engine, wasm)
    path = cache.path_for(wasm)
    path.chmod(mode)

    _, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert cache.stats() == CacheStats(misses=2, rejected=1, stores=2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # replaced by a fresh entry


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file away")
def test_an_entry_owned_by_someone_else_is_rejected_and_replaced(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes
) -> None:
    cache.load_or_compile(engine, wasm)
    path = cache.path_for(wasm)
    os.chown(path, 12345, 12345)

    _, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert cache.stats() == CacheStats(misses=2, rejected=1, stores=2)
    assert path.stat().st_uid == os.getuid()


def test_a_symlinked_entry_is_rejected(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes
) -> None:
    cache.load_or_compile(engine, wasm)
    path = cache.path_for(wasm)
    target = cache.directory / "elsewhere"
    path.rename(target)
    path.symlink_to(target)

    _, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert cache.stats() == CacheStats(misses=2, rejected=1, stores=2)
    assert not path.is_symlink()
    assert cache.load_or_compile(engine, wasm)[1]


def test_a_fifo_in_place_of_an_entry_is_rejected_without_blocking(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes
) -> None:
    cache.directory.mkdir()
    os.mkfifo(cache.path_for(wasm), 0o600)  # opening it for reading would wait for a writer

    _, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert cache.stats() == CacheStats(misses=1, rejected=1, stores=1)
    assert cache.load_or_compile(engine, wasm)[1]


def test_a_failing_store_still_returns_the_module(
    tmp_path: Path, engine: wasmtime.Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Tests run as root, which ignores permissions: a path under a regular file cannot exist.
    (tmp_path / "afile").write_bytes(b"")
    cache = CompileCache(tmp_path / "afile" / "cache", engine_key=KEY)

    with caplog.at_level(logging.DEBUG, logger="wasmd.cache"):
        for source in (ARITH, COUNTER, ARITH):
            _, hit = cache.load_or_compile(engine, bytes(wasmtime.wat2wasm(source)))
            assert not hit
    assert add(engine, cache.load_or_compile(engine, wasm)[0]) == 5

    assert cache.stats() == CacheStats(misses=4, store_errors=4)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per cache, not once per load
    assert "cannot store" in warnings[0].getMessage()


def test_a_failing_rename_leaves_no_temporary_file(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes
) -> None:
    cache.directory.mkdir()
    cache.path_for(wasm).mkdir()  # nothing can be renamed over a directory

    module, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert add(engine, module) == 5
    assert cache.stats() == CacheStats(misses=1, rejected=1, store_errors=1)
    assert entries(cache.directory) == [cache.path_for(wasm)]


def test_threads_loading_the_same_module_all_get_working_modules(
    cache: CompileCache, engine: wasmtime.Engine, wasm: bytes
) -> None:
    threads = 4
    barrier = threading.Barrier(threads)
    results: list[object] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            barrier.wait(timeout=10)
            module, _ = cache.load_or_compile(engine, wasm)
            results.append(add(engine, module))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=load) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert errors == []
    assert results == [5] * threads
    stats = cache.stats()
    assert stats.hits + stats.misses == threads
    assert stats.rejected == stats.store_errors == 0
    assert entries(cache.directory) == [cache.path_for(wasm)]  # no temporary file left over
    assert cache.load_or_compile(engine, wasm)[1]


def entry_size(tmp_path: Path, engine: wasmtime.Engine, wasm: bytes) -> int:
    probe = CompileCache(tmp_path / "probe", engine_key=KEY)
    probe.load_or_compile(engine, wasm)
    return probe.path_for(wasm).stat().st_size


def test_max_bytes_evicts_the_least_recently_used(tmp_path: Path, engine: wasmtime.Engine) -> None:
    a, b, c = (bytes(wasmtime.wat2wasm(source)) for source in (ARITH, COUNTER, SPIN))
    sizes = {wasm: entry_size(tmp_path, engine, wasm) for wasm in (a, b, c)}
    # Room for two of the three whichever two they are.
    cap = sum(sizes.values()) - min(sizes.values())
    cache = CompileCache(tmp_path / "cache", engine_key=KEY, max_bytes=cap)

    cache.load_or_compile(engine, a)
    cache.load_or_compile(engine, b)
    # Fixed times, not sleeps: a is older than b, then a hit makes a the youngest.
    os.utime(cache.path_for(a), (1_000, 1_000))
    os.utime(cache.path_for(b), (2_000, 2_000))
    assert cache.load_or_compile(engine, a)[1]

    cache.load_or_compile(engine, c)
    assert entries(cache.directory) == sorted([cache.path_for(a), cache.path_for(c)])
    assert sum(p.stat().st_size for p in entries(cache.directory)) <= cap


def test_an_entry_over_max_bytes_by_itself_is_not_stored(
    tmp_path: Path, engine: wasmtime.Engine, wasm: bytes
) -> None:
    small = bytes(wasmtime.wat2wasm(SPIN))
    cap = entry_size(tmp_path, engine, small)
    assert entry_size(tmp_path, engine, wasm) > cap
    cache = CompileCache(tmp_path / "cache", engine_key=KEY, max_bytes=cap)
    cache.load_or_compile(engine, small)

    module, hit = cache.load_or_compile(engine, wasm)
    assert not hit
    assert add(engine, module) == 5
    assert entries(cache.directory) == [cache.path_for(small)]
    assert cache.stats() == CacheStats(misses=2, stores=1)


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        CompileCache(tmp_path, engine_key=KEY, max_bytes=0)


def test_a_compile_error_propagates_and_stores_nothing(
    cache: CompileCache, engine: wasmtime.Engine
) -> None:
    with pytest.raises(wasmtime.WasmtimeError):
        cache.load_or_compile(engine, b"\0asm\x01\0\0\0garbage")
    assert cache.stats() == CacheStats(misses=1)
    assert not cache.directory.exists()


def test_a_hit_on_a_large_module_skips_the_compiler(
    cache: CompileCache, engine: wasmtime.Engine
) -> None:
    wasm = bytes(wasmtime.wat2wasm(large_wat(2000)))

    started = time.perf_counter()
    module, hit = cache.load_or_compile(engine, wasm)
    compiled = time.perf_counter() - started
    assert not hit

    started = time.perf_counter()
    module, hit = cache.load_or_compile(engine, wasm)
    loaded = time.perf_counter() - started
    assert hit
    assert cache.stats() == CacheStats(hits=1, misses=1, stores=1)

    store = wasmtime.Store(engine)
    store.set_epoch_deadline(10)
    func = wasmtime.Instance(store, module, []).exports(store)["f1999"]
    assert isinstance(func, wasmtime.Func)
    assert func(store, 2) == 2 * 1999 + 3
    # Timings are for reading with -s, never asserted: shared CI machines vary too much.
    print(
        f"\n{len(wasm)} byte module: compile+store {compiled * 1000:.1f} ms, "
        f"hit {loaded * 1000:.2f} ms ({compiled / loaded:.0f}x)"
    )


@pytest.mark.parametrize(
    ("environ", "uid", "expected"),
    [
        ({"CACHE_DIRECTORY": "/var/cache/wasmd"}, 1000, "/var/cache/wasmd"),
        ({"CACHE_DIRECTORY": "/var/cache/a:/var/cache/b", "HOME": "/h"}, 1000, "/var/cache/a"),
        ({"CACHE_DIRECTORY": "/c", "XDG_CACHE_HOME": "/x"}, 0, "/c"),
        ({"XDG_CACHE_HOME": "/x", "HOME": "/h"}, 1000, "/x/wasmd"),
        ({"XDG_CACHE_HOME": "/x"}, 0, "/x/wasmd"),
        ({"HOME": "/home/u"}, 1000, "/home/u/.cache/wasmd"),
        ({"HOME": "/root"}, 0, "/var/cache/wasmd"),
        ({}, 0, "/var/cache/wasmd"),
        ({}, 1000, None),
        ({"HOME": ""}, 1000, None),
        # Relative paths would depend on the working directory: ignored.
        (
            {"CACHE_DIRECTORY": "rel", "XDG_CACHE_HOME": "rel", "HOME": "/h"},
            1000,
            "/h/.cache/wasmd",
        ),
        ({"HOME": "relative"}, 1000, None),
        ({"CACHE_DIRECTORY": "", "XDG_CACHE_HOME": ""}, 0, "/var/cache/wasmd"),
    ],
)
def test_default_cache_dir(environ: dict[str, str], uid: int, expected: str | None) -> None:
    assert default_cache_dir(environ, uid) == (Path(expected) if expected else None)


def many_functions(seed: int, count: int = 2000) -> str:
    """A module whose compiled form takes about a megabyte (``count`` small functions)."""
    body = "".join(
        f'(func (export "f{i}") (result i32) (i32.const {seed * count + i}))' for i in range(count)
    )
    return f"(module {body})"


@pytest.mark.slow  # over 2 s alone (pytest --durations)
async def test_the_daemon_caps_its_compile_cache(short_tmp: Path) -> None:
    """Issue 13: the compile cache never evicted (one .cwasm per version, forever)."""
    cache = short_tmp / "cache"
    plugins = {f"p{seed}.wat": many_functions(seed) for seed in range(4)}
    cap = 3 * 1024 * 1024
    async with running_daemon(short_tmp, plugins, cache_dir=cache, cache_max_size=cap) as daemon:
        async with daemon.client() as client:
            assert sorted(item["name"] for item in await client.list()) == ["p0", "p1", "p2", "p3"]
            entries = list(cache.glob("*.cwasm"))
            sizes = [entry.stat().st_size for entry in entries]
            assert min(sizes) > cap // 4  # so four entries would not fit
            assert 0 < sum(sizes) <= cap
            assert len(entries) < 4
