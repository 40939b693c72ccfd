"""The wasmtime engines and the epoch ticker that enforces every call's deadline.

Every plug-in compiles against one of at most two engines: the common one, and — created
only when some manifest asks for ``fuel`` — one with fuel metering, because fuel metering
slows every call of every module compiled with it. Both have epoch interruption on; one
ticker thread advances their epochs every ``tick_ms``. A call's deadline is expressed in
ticks (``ticks_for``), set on its Store right before the call. With a ``cache_dir``,
``compile`` goes through a ``CompileCache`` per engine, so a restart or a reload of a large
module deserializes instead of compiling.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import wasmtime
from wasmtime import component as wc

from ..statestore import StateStores
from .cache import CompileCache


def _make_engine(*, fuel: bool, target: str | None) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    config.cranelift_opt_level = "speed"
    if target is not None:
        config.target = target
    return wasmtime.Engine(config)


class Engines:
    """Owns the engines and the ticker thread; use as a context manager."""

    def __init__(
        self,
        *,
        tick_ms: int = 5,
        target: str | None = None,
        cache_dir: Path | None = None,
        cache_max_bytes: int | None = None,
    ) -> None:
        if tick_ms < 1:
            raise ValueError("tick_ms must be at least 1")
        self.tick_ms = tick_ms
        self._target = target
        self._cache_dir = cache_dir
        self._cache_max_bytes = cache_max_bytes  # None: the cache grows without bound
        self.default = _make_engine(fuel=False, target=target)
        self._fuel: wasmtime.Engine | None = None
        self.caches: dict[bool, CompileCache] = {}  # by fuel on/off, when caching
        self._kernels: dict[int, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        # Where plug-ins that import the state imports keep their state (None: nowhere;
        # their imports answer KV_UNAVAILABLE). The daemon sets it: daemon-wide, like the
        # engines, and reaching every compile without another parameter on each path.
        self.states: StateStores | None = None

    def for_manifest(self, fuel: int) -> wasmtime.Engine:
        if not fuel:
            return self.default
        with self._lock:
            if self._fuel is None:
                self._fuel = _make_engine(fuel=True, target=self._target)
            return self._fuel

    def compile(self, engine: wasmtime.Engine, wasm: bytes) -> wasmtime.Module:
        """Compile ``wasm`` for ``engine``, through the compile cache when there is one."""
        cache = self._cache_for(engine)
        if cache is None:
            return wasmtime.Module(engine, wasm)
        module, _hit = cache.load_or_compile(engine, wasm)
        return module

    def compile_component(self, engine: wasmtime.Engine, wasm: bytes) -> wc.Component:
        """``compile`` for a component binary."""
        cache = self._cache_for(engine)
        if cache is None:
            return wc.Component(engine, wasm)
        component, _hit = cache.load_or_compile_component(engine, wasm)
        return component

    def _cache_for(self, engine: wasmtime.Engine) -> CompileCache | None:
        if self._cache_dir is None:
            return None
        fuel = engine is not self.default
        with self._lock:
            cache = self.caches.get(fuel)
            if cache is None:
                key = CompileCache.engine_key(fuel=fuel, target=self._target)
                cache = self.caches[fuel] = CompileCache(
                    self._cache_dir, engine_key=key, max_bytes=self._cache_max_bytes
                )
            return cache

    def extism_kernel(self, engine: wasmtime.Engine) -> wasmtime.Module:
        """wasmd's Extism kernel module, compiled once per engine."""
        from .extism import KERNEL_WAT

        with self._lock:
            kernel = self._kernels.get(id(engine))
            if kernel is None:
                kernel = self._kernels[id(engine)] = wasmtime.Module(engine, KERNEL_WAT)
            return kernel

    def cache_stats(self) -> dict[str, int] | None:
        """The compile caches' counters summed, or None without a cache."""
        if self._cache_dir is None:
            return None
        totals = {"hits": 0, "misses": 0, "rejected": 0, "stores": 0, "store_errors": 0}
        with self._lock:
            caches = list(self.caches.values())
        for cache in caches:
            for key, value in vars(cache.stats()).items():
                totals[key] += value
        return totals

    def ticks_for(self, milliseconds: float) -> int:
        """Ticks that are sure to last at least ``milliseconds``.

        The next tick may come at once after the deadline is set, so one tick more than the
        quotient: the interrupt lands between ``milliseconds`` and one tick later.
        """
        return max(1, math.ceil(milliseconds / self.tick_ms)) + 1

    def increment_epoch(self) -> None:
        self.default.increment_epoch()
        fuel_engine = self._fuel
        if fuel_engine is not None:
            fuel_engine.increment_epoch()

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="wasmd-epoch", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.states is not None:
            self.states.close()

    def _tick(self) -> None:
        interval = self.tick_ms / 1000
        while not self._stop.wait(interval):
            self.increment_epoch()

    def __enter__(self) -> Engines:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
