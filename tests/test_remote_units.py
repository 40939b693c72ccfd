"""The units of the processes that reach other machines (wasmd-bridge.service,
wasmd-pull.service and .timer): `systemd-analyze verify` with no warning, exposure bounds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ANALYZE = shutil.which("systemd-analyze")
UNITS = ("wasmd-bridge.service", "wasmd-pull.service", "wasmd-pull.timer")
# `systemd-analyze security` scores 0 (safe) to 10 (exposed). They scored 1.5 and 2.6 when
# these bounds were set (both need the network; the puller runs as root to write /etc/wasmd).
MAX_EXPOSURE = {"wasmd-bridge.service": 2.0, "wasmd-pull.service": 3.0}

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _placed(directory: Path) -> list[Path]:
    wasmd = str(Path(sys.executable).parent / "wasmd")
    placed = []
    for name in UNITS:
        text = (REPO / "systemd" / name).read_text().replace("/opt/wasmd/bin/wasmd", wasmd)
        (directory / name).write_text(text)
        placed.append(directory / name)
    return placed


def test_units_verify_without_warnings(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, _placed(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_exposure_stays_low(tmp_path: Path, unit: str) -> None:
    assert ANALYZE is not None
    _placed(tmp_path)
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(tmp_path / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE[unit]
