"""``wasmd check``: load one plug-in offline, exactly as the daemon would, and report on it.

The report says what a caller needs: the ABI and how it is called, each method's call
signature (``count_vowels(input: bin|str) -> bin``), what the plug-in is granted and its
limits. A plug-in that loads but has nothing to call is a *warning* (``no callable methods``):
the daemon would serve it, but nobody could use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..discovery import source_from_path
from ..errors import ConfigError, PluginLoadError
from ..runtime import Engines
from ..runtime.abis import describe_abi
from .build import load_source
from .trust import TrustPolicy

NO_METHODS = "no callable methods"


@dataclass
class CheckReport:
    path: str
    ok: bool
    description: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # why it would not load
    warnings: list[str] = field(default_factory=list)  # it loads, but something is amiss

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            **self.description,
        }


def check_plugin(path: Path, trust: TrustPolicy | None = None) -> CheckReport:
    """Validate the manifest, check pins and signatures (``trust``: the daemon config's;
    by default the manifest's own pin), compile, link and instantiate; never raises for a
    bad plug-in."""
    report = CheckReport(str(path), ok=False)
    try:
        source = source_from_path(path)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    with Engines() as engines:
        try:
            pool = load_source(source, engines, lambda _type, _fields: None, trust)
        except PluginLoadError as exc:
            report.problems.append(exc.reason)
            return report
        try:
            report.description = pool.plugin.describe()
            report.ok = True
        finally:
            pool.close()
            pool.wait_closed(timeout=5)
    if not report.description["methods"]:
        report.warnings.append(NO_METHODS)
    return report


def problem_lines(report: CheckReport) -> list[str]:
    """Each problem once, led by the path (a load error may name the path itself)."""
    return [p if p.startswith(report.path) else f"{report.path}: {p}" for p in report.problems]


def check_lines(report: CheckReport) -> list[str]:
    """The human report of a plug-in that loads: ABI, methods, imports that trap, grants."""
    d = report.description
    status = f"warning: {'; '.join(report.warnings)}" if report.warnings else "ok"
    how = describe_abi(d["abi"])
    lines = [
        f"{report.path}: {status} — plug-in {d['name']}, ABI {d['abi']}"
        f"{f' ({how})' if how else ''}, version {d['version']}"
    ]
    for signature in d["signatures"].values():
        lines.append(f"  {d['name']}.{signature}")
    if d.get("streams"):
        lines.append(
            f"  streams: imports {' and '.join(d['streams'])}: its methods may be called with "
            "wasmd.stream (chunks out, pushed values in)"
        )
    for export in d["exports"]:
        if export["name"] not in d["methods"]:
            why = export.get("refusal") or "not callable as a method"  # a component's reason
            lines.append(f"  export {export['name']} ({why})")
    for name in d["trapping_imports"]:
        lines.append(f"  import {name} is provided by nothing: calling it traps")
    caps = d["capabilities"]
    granted = [f"args {caps['args']}"] if caps["args"] else []
    granted += [f"env {', '.join(caps['env'])}"] if caps["env"] else []
    granted += [
        f"{'read-write' if g['writable'] else 'read-only'} {g['host']} as {g['guest']}"
        for g in caps["preopens"]
    ]
    lines.append(f"  grants: {'; '.join(granted) if granted else 'nothing (deny by default)'}")
    limits = d["limits"]
    instance = "a fresh instance per call" if limits["mode"] == "per-call" else "persistent"
    lines.append(
        f"  limits: {limits['timeout_ms']} ms per call, {limits['memory_max']} bytes of "
        f"memory, {limits['instances']} instance(s), {instance}"
    )
    return lines
