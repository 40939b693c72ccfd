"""``wasmd check``: load one plug-in offline, exactly as the daemon would, and report on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .discovery import source_from_path
from .errors import ConfigError, PluginLoadError
from .loader import load_source
from .runtime import Engines


@dataclass
class CheckReport:
    path: str
    ok: bool
    description: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "problems": self.problems, **self.description}


def check_plugin(path: Path) -> CheckReport:
    """Validate the manifest, compile, link and instantiate; never raises for a bad plug-in."""
    report = CheckReport(str(path), ok=False)
    try:
        source = source_from_path(path)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    with Engines() as engines:
        try:
            pool = load_source(source, engines, lambda _type, _fields: None)
        except PluginLoadError as exc:
            report.problems.append(exc.reason)
            return report
        try:
            report.description = pool.plugin.describe()
            report.ok = True
        finally:
            pool.close()
            pool.wait_closed(timeout=5)
    return report
