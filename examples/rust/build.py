"""Build the Rust example plug-in ``textops`` (msgpack ABI, ``sdk/rust/wasmd.rs``).

The toolchain is Debian's rustc 1.63 with the standard library for wasm32-wasi (packages
``rustc libstd-rust-dev-wasm32 lld``: rustc links wasm with ``rust-lld``, which Debian
ships as a symlink to lld's binary, so lld is needed even though apt only recommends it).
No cargo and no crates: the SDK is one file that the plug-in includes with ``#[path]``.
From the repository root the build is:

    /usr/bin/rustc --edition 2021 --target wasm32-wasi --crate-type=cdylib -O \\
        -C strip=symbols -o OUT_DIR/textops.wasm examples/rust/textops.rs

``--crate-type=cdylib`` makes a WASI reactor: no ``_start``, only the ``#[no_mangle]``
exports (``wasmd_alloc`` from the SDK, then ``reverse``, ``count``, ``echo``, ``greet``,
``fail``). ``-C strip=symbols`` drops the name section and debug info (85 KiB instead of
several MiB). The rustc is named by its full path: a rustup install earlier in ``PATH``
may lack the wasm32-wasi target.

Run as a script, ``python examples/rust/build.py [OUT_DIR]`` builds and prints the path.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script rather than imported by the tests
    sys.path.insert(0, str(REPO))

from tests.setup_toolchains import apt_install  # noqa: E402
from tests.toolchains import ToolchainUnavailable, run  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "textops.rs"
RUSTC = Path("/usr/bin/rustc")
TARGET = "wasm32-wasi"
DEBIAN_PACKAGES = ("rustc", "libstd-rust-dev-wasm32", "lld")
FLAGS = (
    "--edition",
    "2021",
    "--target",
    TARGET,
    "--crate-type=cdylib",
    "-O",
    "-C",
    "strip=symbols",
)


def missing() -> str | None:
    """What keeps Debian's rustc from building for wasm32-wasi here, or None: installs nothing."""
    if not RUSTC.is_file():
        return f"{RUSTC} is not installed"
    if TARGET not in run([RUSTC, "--print", "target-list"]).split():
        return f"{RUSTC} does not know the {TARGET} target"
    sysroot = Path(run([RUSTC, "--print", "sysroot"]).strip())
    if not any((sysroot / "lib" / "rustlib" / TARGET / "lib").glob("libstd-*.rlib")):
        return f"no standard library for {TARGET} under {sysroot}"
    if shutil.which("rust-lld") is None:  # None also when the symlink dangles
        return "rust-lld (from lld) is not installed"
    return None


def ensure_toolchain() -> None:
    """Install rustc, its wasm32-wasi std and lld from Debian; ToolchainUnavailable if not."""
    if missing() is None:
        return
    apt_install(*DEBIAN_PACKAGES)
    reason = missing()
    if reason is not None:
        raise ToolchainUnavailable(f"after installing {' '.join(DEBIAN_PACKAGES)}: {reason}")


def build(out_dir: Path) -> Path:
    """Compile ``examples/rust/textops.rs`` to ``out_dir/textops.wasm`` and return that path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wasm = out_dir.resolve() / "textops.wasm"
    run([RUSTC, *FLAGS, "-o", wasm, SOURCE])
    return wasm


if __name__ == "__main__":
    ensure_toolchain()
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
