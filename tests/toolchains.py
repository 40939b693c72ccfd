"""Building the example plug-ins with the guest toolchains, for the toolchain-tier tests.

Each language's example has an ``examples/<lang>/build.py`` with ``missing()`` (what keeps
its toolchain from working here, or None), ``ensure_toolchain()`` and
``build(out_dir) -> Path``. The tests only check and build: installing is the job of
``python -m tests.setup_toolchains``, run before the full suite (the README's test command
does). A missing toolchain is a skip that says to run it (``-ra`` prints it), or a failure
under CI, where the set-up has run and a skip would hide that it did not work.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from wasmd import ErrorCode, WasmdError

REPO = Path(__file__).resolve().parent.parent
LANGUAGES = ("c", "zig", "rust", "go", "assemblyscript", "rust-component", "python-component")
SETUP_COMMAND = ".venv/bin/python -m tests.setup_toolchains"


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
    """Build an example's module; a skip (a failure under CI) if its toolchain is missing."""
    script = load_build_script(language)
    reason = script.missing()
    if reason is not None:
        toolchain_missing(f"{language}: {reason}")
    # With the toolchain in place, a failed build is the example's bug: an error, not a skip.
    return Path(script.build(out_dir, *args)).read_bytes()


def toolchain_missing(reason: str) -> NoReturn:
    """Skip a test whose tools are not installed, saying how to install them; under CI
    (``CI=true``), where the set-up has run, fail instead."""
    import pytest  # here, not above: the build scripts import this module with a plain Python

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI ran `{SETUP_COMMAND}` first; it did not provide it)")
    pytest.skip(f"{reason}: run `{SETUP_COMMAND}` to install it")


async def guest_error(client: Any, method: str, *params: Any) -> WasmdError:
    """The error of a call the guest refused through ``wasmd.error``."""
    import pytest

    with pytest.raises(WasmdError) as caught:
        await client.call(method, *params)
    assert caught.value.code == ErrorCode.TRAP
    assert caught.value.data == {"kind": "guest_error"}
    return caught.value
