"""Installing the guest toolchains from the registries, for the example plug-in tests.

Each language's example has an ``examples/<lang>/build.py`` with ``ensure_toolchain()`` and
``build(out_dir) -> Path``; these helpers are what they use to install. A toolchain that
cannot be installed raises ``ToolchainUnavailable`` with the reason, which the tests turn into
a skip that pytest prints (``-ra``): never a silent pass.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from wasmd import ErrorCode, WasmdError

REPO = Path(__file__).resolve().parent.parent
_apt_lock = threading.Lock()
_apt_updated = False


class ToolchainUnavailable(Exception):
    """Raised when a toolchain cannot be installed or run here; the message says why."""


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> str:
    """Run a command; its stdout, or ToolchainUnavailable with its output on failure."""
    try:
        result = subprocess.run(
            [str(c) for c in command],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainUnavailable(f"{command[0]}: {exc}") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise ToolchainUnavailable(f"{' '.join(map(str, command))} failed:\n{output}")
    return result.stdout


def apt_install(*packages: str) -> None:
    """Install Debian packages (root only); `apt-get update` runs once per test session."""
    global _apt_updated
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolchainUnavailable(f"needs Debian packages {missing} and root to install them")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    with _apt_lock:
        if not _apt_updated:
            run(["apt-get", "update", "-qq"], env=env)
            _apt_updated = True
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def _dpkg_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


def pip_install(*packages: str) -> None:
    """Install PyPI packages into the test environment's own Python."""
    run([sys.executable, "-m", "pip", "install", "-q", *packages])


def npm_install(directory: Path) -> None:
    """`npm install` from the directory's package.json (and lock file, if any)."""
    if shutil.which("npm") is None:
        raise ToolchainUnavailable("npm is not installed")
    run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=directory)


def load_build_script(language: str) -> ModuleType:
    """Import ``examples/LANGUAGE/build.py`` (examples/ is not a package) under its own name."""
    path = REPO / "examples" / language / "build.py"
    spec = importlib.util.spec_from_file_location(f"wasmd_example_{language}_build", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_example(language: str, out_dir: Path, *args: object) -> bytes:
    """Build an example's module; a skip with the reason if its toolchain cannot install."""
    script = load_build_script(language)
    try:
        script.ensure_toolchain()
    except ToolchainUnavailable as exc:
        pytest.skip(str(exc))
    # With the toolchain in place, a failed build is the example's bug: an error, not a skip.
    return Path(script.build(out_dir, *args)).read_bytes()


async def guest_error(client: Any, method: str, *params: Any) -> WasmdError:
    """The error of a call the guest refused through ``wasmd.error``."""
    with pytest.raises(WasmdError) as caught:
        await client.call(method, *params)
    assert caught.value.code == ErrorCode.TRAP
    assert caught.value.data == {"kind": "guest_error"}
    return caught.value
