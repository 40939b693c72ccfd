"""Build the AssemblyScript example plug-in ``asdemo`` (msgpack ABI, ``sdk/assemblyscript``).

The toolchain is the npm package ``assemblyscript`` 0.28.20 (the compiler ``asc`` and its
bundled Binaryen), pinned in ``package.json`` and ``package-lock.json`` and installed into
``examples/assemblyscript/node_modules`` by ``npm install``; it needs Node.js 20 or newer.
From ``examples/assemblyscript`` the build is:

    npm install
    npx asc assembly/index.ts --outFile OUT_DIR/asdemo.wasm --optimize --runtime minimal \\
        --use abort=../../sdk/assemblyscript/wasmd/abortHandler

``--runtime minimal`` brings the TLSF allocator and a garbage collector that runs only when
asked: the SDK's ``call`` asks at the start of each call, when no object is on the stack
(``stub`` would never free, so a long-lived plug-in would grow without end). ``--use
abort=...`` routes the runtime's ``abort`` (a failed assertion, an index out of range) to the
SDK, which logs the reason through ``wasmd.log`` before trapping; without it the module would
import ``env.abort``, which wasmd links as a bare trap. The path is the SDK's internal name as
asc sees it, relative to this folder, so the command must run here.

Run as a script, ``python examples/assemblyscript/build.py [OUT_DIR]`` builds and prints the
path.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script rather than imported by the tests
    sys.path.insert(0, str(REPO))

from tests.setup_toolchains import npm_install  # noqa: E402
from tests.toolchains import ToolchainUnavailable, run  # noqa: E402

HERE = Path(__file__).resolve().parent
ASC = HERE / "node_modules" / ".bin" / "asc"
FLAGS = (
    "--optimize",
    "--runtime",
    "minimal",
    "--use",
    "abort=../../sdk/assemblyscript/wasmd/abortHandler",
)


def _pinned_version() -> str:
    manifest = json.loads((HERE / "package.json").read_text())
    return str(manifest["devDependencies"]["assemblyscript"])


def _installed_version() -> str | None:
    try:
        installed = json.loads((HERE / "node_modules/assemblyscript/package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(installed.get("version"))


def missing() -> str | None:
    """Why the pinned compiler cannot build here, or None: installs nothing."""
    if _installed_version() != _pinned_version() or not ASC.exists():
        return f"assemblyscript {_pinned_version()} is not installed in {HERE / 'node_modules'}"
    if shutil.which("node") is None:
        return "Node.js (20 or newer) is not installed"
    return None


def ensure_toolchain() -> None:
    """``npm install`` the pinned compiler unless it is there; ToolchainUnavailable if it fails."""
    if missing() is None:
        return
    npm_install(HERE)
    reason = missing()
    if reason is not None:
        raise ToolchainUnavailable(f"after npm install: {reason}")


def build(out_dir: Path) -> Path:
    """Compile ``assembly/index.ts`` to ``out_dir/asdemo.wasm`` and return that path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wasm = out_dir.resolve() / "asdemo.wasm"
    # the local asc, not npx: npx would download a compiler if the install were missing
    run([ASC, "assembly/index.ts", "--outFile", wasm, *FLAGS], cwd=HERE)
    return wasm


if __name__ == "__main__":
    ensure_toolchain()
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
