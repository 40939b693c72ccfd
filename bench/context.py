"""What every scenario is handed: where to put files, how long to run, the load generator."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .loadgen import LoadGen


@dataclass
class Context:
    workdir: Path  # a temporary folder, removed after the run
    quick: bool
    loadgen: LoadGen
    started: float = field(default_factory=time.perf_counter)

    @property
    def rounds(self) -> int:
        """Interleaved repetitions of each wasmd / baseline pair."""
        return 2 if self.quick else 5

    @property
    def pin_cpu(self) -> int:
        """The CPU of the pinned row sets: the server under test, its baseline and the load
        generator all on this one."""
        return min(os.sched_getaffinity(0))

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def say(self, message: str) -> None:
        """Progress, on stderr so that stdout holds only the report."""
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def subdir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir()
        return path
