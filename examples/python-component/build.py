"""Build the Python component example ``notes`` with componentize-py (PyPI).

``app.py`` implements ``wit/notes.wit``'s interface ``notes`` (records, an enum, a list, an
option and a result) and calls wasmd's ``log`` through ``wasmd:host/api`` (``wit/deps/host``
links to ``sdk/wit/wasmd-host.wit``). componentize-py generates the bindings, bundles
CPython and the app, and runs the app's imports at build time; the component is ~18 MB and
imports WASI preview 2, which wasmd gives it with the manifest's grants (nothing by default).
From the repository root:

    componentize-py -d examples/python-component/wit -w notebook componentize \\
        -p examples/python-component app -o OUT/notes.wasm

Compiling it takes seconds to tens of seconds, once per version: wasmd keeps it in the
compile cache. Run as a script, ``python examples/python-component/build.py [OUT_DIR]``
builds and prints the path.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script rather than imported by the tests
    sys.path.insert(0, str(REPO))

from tests.setup_toolchains import pip_install  # noqa: E402
from tests.toolchains import ToolchainUnavailable, run  # noqa: E402

HERE = Path(__file__).resolve().parent
PYPI_PACKAGES = ("componentize-py==0.25.1",)


def componentize_py() -> Path | None:
    beside = Path(sys.executable).parent / "componentize-py"  # the venv's, from PyPI
    if beside.is_file():
        return beside
    found = shutil.which("componentize-py")
    return Path(found) if found else None


def missing() -> str | None:
    """What keeps this example from building here, or None: installs nothing."""
    if componentize_py() is None:
        return "componentize-py is not installed (PyPI componentize-py)"
    return None


def ensure_toolchain() -> None:
    """Install componentize-py from PyPI into this interpreter's environment."""
    if missing() is None:
        return
    pip_install(*PYPI_PACKAGES)
    reason = missing()
    if reason is not None:
        raise ToolchainUnavailable(f"after pip install: {reason}")


def build(out_dir: Path) -> Path:
    """Make ``out_dir/notes.wasm``, the component, and return that path."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tool = componentize_py()
    assert tool is not None, missing()
    component = out_dir / "notes.wasm"
    wit = HERE / "wit"
    run([tool, "-d", wit, "-w", "notebook", "componentize", "-p", HERE, "app", "-o", component])
    return component


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
