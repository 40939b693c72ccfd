"""Results: one ``Row`` per measured comparison, printed as a table and written as JSON."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .stats import Spread


@dataclass
class Row:
    """One line of the table. ``ratio`` is what the target is about (its meaning is in
    ``ratio_means``); ``met`` is None where there is no target or nothing was measured."""

    id: str
    title: str
    unit: str
    wasmd: Spread | None = None
    baseline: Spread | None = None
    baseline_name: str = ""
    ratio: float | None = None
    ratio_means: str = ""
    target: str = ""
    met: bool | None = None
    skipped: str | None = None  # why nothing was measured
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "wasmd": self.wasmd.to_dict() if self.wasmd else None,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "ratio_means": self.ratio_means,
            "target": self.target,
            "met": self.met,
            "skipped": self.skipped,
            "notes": self.notes,
            "extra": self.extra,
        }


def skipped(id: str, title: str, reason: str) -> Row:
    return Row(id, title, "", skipped=reason, notes=[f"skipped: {reason}"])


def machine_info() -> dict[str, Any]:
    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "wasmtime": installed("wasmtime"),
        "wasmd": installed("wasmd"),
        "anyio": installed("anyio"),
        "msgpack": installed("msgpack"),
        "extism": installed("extism"),
        "extism_sys": installed("extism-sys"),
        "loadavg": os.getloadavg(),
    }


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(spread: Spread | None, unit: str) -> str:
    return f"{_num(spread.median)} {unit}" if spread else "-"


def _range(spread: Spread | None) -> str:
    return f"{_num(spread.min)}-{_num(spread.max)}" if spread else "-"


def table(rows: Sequence[Row]) -> str:
    header: tuple[str, ...] = ("#", "scenario", "wasmd median", "baseline median")
    header += ("min-max (w | b)", "ratio", "target", "met?")
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        if row.skipped:
            lines.append((row.id, row.title, "skipped", "-", "-", "-", row.target or "-", "-"))
            continue
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        span = f"{_range(row.wasmd)} | {_range(row.baseline)}"
        base = _cell(row.baseline, row.unit)
        if row.baseline and row.baseline_name:
            base += f" ({row.baseline_name})"
        lines.append(
            (
                row.id,
                row.title,
                _cell(row.wasmd, row.unit),
                base,
                span,
                ratio,
                row.target or "-",
                met,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in out)


def notes(rows: Sequence[Row]) -> str:
    """Every row's notes, and what each ratio means."""
    out = []
    for row in rows:
        items = [f"ratio = {row.ratio_means}"] if row.ratio_means and not row.skipped else []
        items += row.notes
        if items:
            out.append(f"[{row.id}] " + "; ".join(items))
    return "\n".join(out)
