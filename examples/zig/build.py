"""Build the Zig example plug-in ``sum`` (msgpack ABI, ``sdk/zig/wasmd.zig``) into ``sum.wasm``.

Zig 0.17 comes from PyPI (``ziglang``, the compiler in a wheel, run as
``python -m ziglang``). From the repository root the build is:

    python -m ziglang build-exe -target wasm32-wasi -fno-entry -rdynamic -O ReleaseSmall \\
        --stack 65536 --dep wasmd -Mroot=examples/zig/sum.zig -Mwasmd=sdk/zig/wasmd.zig \\
        -femit-bin=OUT_DIR/sum.wasm

``-fno-entry`` makes a reactor: no ``_start``, only exports. ``-rdynamic`` exports every
``export``/``@export`` symbol (``wasmd_alloc`` and the plug-in's functions; also the
``__stack_pointer`` global, which wasmd ignores) without naming them in the command.
``--stack 65536`` (64 KiB, wasm-ld's default for C) because Zig's own default of 16 MiB
becomes the memory's minimum size: 16 MiB per instance, and over a small ``memory_max``.
``build-lib -dynamic`` does not work here: it wants position-independent code. The SDK
is the module ``wasmd`` (``--dep wasmd`` then ``-Mwasmd=...``) because Zig refuses to
``@import`` a file outside the root module's folder. The module imports only ``wasmd``
host functions. The per-build cache goes to a throw-away folder (the global one,
``~/.cache/zig``, keeps the compiled std between builds).

Run as a script, ``python examples/zig/build.py [OUT_DIR]`` builds and prints the path.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script rather than imported by the tests
    sys.path.insert(0, str(REPO))

from tests.setup_toolchains import pip_install  # noqa: E402
from tests.toolchains import ToolchainUnavailable, run  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "sum.zig"
SDK = REPO / "sdk" / "zig" / "wasmd.zig"
# The SDK's own test plug-in, built the same way (tests/test_example_zig.py).
SELFTEST = SDK.parent / "selftest.zig"
# The SDK uses 0.17's std (unmanaged ArrayList, @Int, FullPanic): older Zigs reject it.
REQUIREMENT = "ziglang~=0.17.0"
ZIG = (sys.executable, "-m", "ziglang")
FLAGS = (
    "-target",
    "wasm32-wasi",
    "-fno-entry",
    "-rdynamic",
    "-O",
    "ReleaseSmall",
    "--stack",
    "65536",
)


def _zig_version() -> str | None:
    try:
        return run([*ZIG, "version"], timeout=60).strip()
    except ToolchainUnavailable:
        return None


def missing() -> str | None:
    """Why Zig 0.17 cannot build here (absent, or another version), or None: installs nothing."""
    version = _zig_version()
    if version is None:
        return f"{REQUIREMENT} is not installed"
    if not version.startswith("0.17."):
        return f"the SDK needs Zig 0.17 ({REQUIREMENT}), found {version}"
    return None


def ensure_toolchain() -> None:
    """Install Zig 0.17 from PyPI if it is missing; ToolchainUnavailable if it cannot run."""
    version = _zig_version()
    if version is None or not version.startswith("0.17."):
        pip_install(REQUIREMENT)
        version = _zig_version()
    if version is None:
        raise ToolchainUnavailable(f"{REQUIREMENT} installed, but `python -m ziglang` fails")
    if not version.startswith("0.17."):
        raise ToolchainUnavailable(f"the SDK needs Zig 0.17, found {version}")


def build(out_dir: Path, source: Path = SOURCE) -> Path:
    """Compile ``source`` (``examples/zig/sum.zig``) to ``out_dir/STEM.wasm``; that path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wasm = out_dir.resolve() / f"{source.stem}.wasm"
    with tempfile.TemporaryDirectory(prefix="wasmd-zig-") as scratch:
        # The SDK is its own module: Zig will not @import a file outside the root's folder.
        modules = ("--dep", "wasmd", f"-Mroot={source}", f"-Mwasmd={SDK}")
        output = (f"-femit-bin={wasm}", "--cache-dir", str(Path(scratch) / "cache"))
        run([*ZIG, "build-exe", *FLAGS, *modules, *output], cwd=Path(scratch))
    return wasm


if __name__ == "__main__":
    ensure_toolchain()
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
