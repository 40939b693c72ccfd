"""Medians, spreads and percentiles: the only statistics the bench reports.

The machine is a noisy 2-core VM, so every number is a median over interleaved rounds with
its min-max beside it; nothing is a mean, and no timing is ever asserted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The sample at rank ``q`` (0..1) of ascending ``sorted_samples`` (loadgen.c's rule)."""
    if not sorted_samples:
        raise ValueError("no samples")
    return sorted_samples[min(len(sorted_samples) - 1, int(q * len(sorted_samples)))]


@dataclass(frozen=True)
class Spread:
    """One measurement repeated: its median, min and max, and the samples themselves."""

    median: float
    min: float
    max: float
    samples: tuple[float, ...] = field(repr=False)

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))

    def to_dict(self) -> dict[str, object]:
        return {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "samples": list(self.samples),
        }
