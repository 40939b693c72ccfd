"""The wasmtime engines and the epoch ticker that enforces every call's deadline.

Every plug-in compiles against one of at most two engines: the common one, and — created
only when some manifest asks for ``fuel`` — one with fuel metering, because fuel metering
slows every call of every module compiled with it. Both have epoch interruption on; one
ticker thread advances their epochs every ``tick_ms``. A call's deadline is expressed in
ticks (``ticks_for``), set on its Store right before the call.
"""

from __future__ import annotations

import math
import threading

import wasmtime


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

    def __init__(self, *, tick_ms: int = 10, target: str | None = None) -> None:
        if tick_ms < 1:
            raise ValueError("tick_ms must be at least 1")
        self.tick_ms = tick_ms
        self._target = target
        self.default = _make_engine(fuel=False, target=target)
        self._fuel: wasmtime.Engine | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def for_manifest(self, fuel: int) -> wasmtime.Engine:
        if not fuel:
            return self.default
        with self._lock:
            if self._fuel is None:
                self._fuel = _make_engine(fuel=True, target=self._target)
            return self._fuel

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

    def _tick(self) -> None:
        interval = self.tick_ms / 1000
        while not self._stop.wait(interval):
            self.increment_epoch()

    def __enter__(self) -> Engines:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
