"""The systemd units: `systemd-analyze verify` with no warning, and an exposure score bound."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "systemd"
ANALYZE = shutil.which("systemd-analyze")
# `systemd-analyze security` scores 0 (safe) to 10 (exposed); the unit scored 0.7 when this
# bound was set. A change that weakens the sandbox past it fails here.
MAX_EXPOSURE = 1.5

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _units_in(directory: Path, *, hardened: bool = False) -> list[Path]:
    """The units as install.sh would place them, ExecStart pointing at this venv's wasmd."""
    wasmd = Path(sys.executable).parent / "wasmd"
    service = (UNITS / "wasmd.service").read_text().replace("/opt/wasmd/bin/wasmd", str(wasmd))
    if hardened:  # as a real drop-in, the way it is installed
        dropin = (UNITS / "hardened.conf").read_text().replace("/opt/wasmd/bin/wasmd", str(wasmd))
        (directory / "wasmd.service.d").mkdir()
        (directory / "wasmd.service.d" / "hardened.conf").write_text(dropin)
    (directory / "wasmd.service").write_text(service)
    shutil.copy(UNITS / "wasmd.socket", directory / "wasmd.socket")
    return [directory / "wasmd.service", directory / "wasmd.socket"]


@pytest.mark.parametrize("hardened", [False, True], ids=["cranelift", "pulley-hardened"])
def test_units_verify_without_warnings(tmp_path: Path, hardened: bool) -> None:
    assert ANALYZE is not None
    units = _units_in(tmp_path, hardened=hardened)
    # verify exits 0 even on unknown keys, only warning on stderr: any output is a failure.
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize("hardened", [False, True], ids=["cranelift", "pulley-hardened"])
def test_exposure_score_stays_low(tmp_path: Path, hardened: bool) -> None:
    assert ANALYZE is not None
    service, _ = _units_in(tmp_path, hardened=hardened)
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(service)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for wasmd.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= MAX_EXPOSURE
    if hardened:
        assert "✓ MemoryDenyWriteExecute=" in result.stdout


def test_dropins_and_sysusers_are_well_formed() -> None:
    assert (UNITS / "wasmd.sysusers.conf").read_text().splitlines()[-1] == "g wasmd -"
    reload_dropin = (UNITS / "wasmd.service.d" / "notify-reload.conf").read_text()
    assert "Type=notify-reload" in reload_dropin
    assert "RuntimeDirectory" not in (UNITS / "wasmd.service").read_text().split("# Not")[0]


def _seconds(unit_text: str, key: str) -> float:
    match = re.search(rf"^{key}=(\d+)s$", unit_text, re.MULTILINE)
    assert match is not None, f"{key}= is not set in seconds"
    return float(match[1])


def test_the_start_timeout_covers_the_ready_bound() -> None:
    """systemd must not kill a start-up that waits ready_timeout_ms for slow plug-ins: READY
    comes at most that long after the scan began, plus Python's and the listener's start."""
    from wasmd.config import DaemonConfig

    timeout = _seconds((UNITS / "wasmd.service").read_text(), "TimeoutStartSec")
    assert timeout >= 2 * DaemonConfig().ready_timeout_ms / 1000


def test_the_network_dropin_verifies(tmp_path: Path) -> None:
    assert ANALYZE is not None
    units = _units_in(tmp_path)
    (tmp_path / "wasmd.service.d").mkdir()
    shutil.copy(UNITS / "network.conf", tmp_path / "wasmd.service.d" / "network.conf")
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_the_unit_documents_wasmd_with_what_install_sh_installs() -> None:
    """``Documentation=`` names wasmd's own docs (it named the msgpack-rpc spec), as files
    install.sh copies to PREFIX/share/doc/wasmd (the system tier checks they are there)."""
    service = (UNITS / "wasmd.service").read_text()
    documented = re.findall(r"^Documentation=(.+)$", service, re.M)
    assert documented
    install = (UNITS / "install.sh").read_text()
    assert '"$repo/README.md" "$repo"/docs/*.md "$prefix/share/doc/wasmd/"' in install
    shipped = {"README.md", *(p.name for p in (REPO / "docs").glob("*.md"))}
    for uri in (u for line in documented for u in line.split()):
        folder, _, name = uri.rpartition("/")
        assert folder == "file:/opt/wasmd/share/doc/wasmd", uri
        assert name in shipped, uri
