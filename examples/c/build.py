"""Build the C example plug-in ``greet`` (msgpack ABI, ``sdk/c/wasmd.h``) into ``greet.wasm``.

The toolchain is Debian's clang with wasi-libc (packages ``clang lld wasi-libc
libclang-rt-dev-wasm32``; the last one holds the compiler builtins that wasm-ld links).
From the repository root the build is:

    clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 \\
        -Wl,--strip-all -I sdk/c -o OUT_DIR/greet.wasm examples/c/greet.c

``-mexec-model=reactor`` links wasi-libc's reactor start file: the module has no ``_start``,
exports ``_initialize`` (wasmd runs it once per instance, for libc's constructors), and is
called only through its exports. ``--sysroot=/usr`` finds wasi-libc where Debian puts it,
``/usr/include/wasm32-wasi`` and ``/usr/lib/wasm32-wasi``. ``--strip-all`` drops the name
section. The exports (``wasmd_alloc``, ``greet``, ``sum``, ``info``) come from
``export_name`` attributes in the SDK, so no ``--export`` flags are needed.

Where the Debian packages cannot be installed (not root, no apt), Zig's bundled clang and
wasi-libc from PyPI (``ziglang``) build the same module:

    python -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -O2 \\
        -Wl,--strip-all -Wl,-z,stack-size=65536 -I sdk/c -o OUT_DIR/greet.wasm examples/c/greet.c

The stack size is wasm-ld's default under Debian's clang; Zig's default of 16 MiB would
become every instance's minimum memory (and exceed a small ``memory_max``). The script
passes it, and ``-Wall -Wextra -Werror -std=c99``, to either compiler.

Run as a script, ``python examples/c/build.py [OUT_DIR]`` builds and prints the path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script rather than imported by the tests
    sys.path.insert(0, str(REPO))

from tests.setup_toolchains import apt_install, pip_install  # noqa: E402
from tests.toolchains import ToolchainUnavailable, run  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "greet.c"
SDK = REPO / "sdk" / "c"
# The SDK's own test plug-in, built the same way (tests/test_example_c.py).
SELFTEST = SDK / "selftest.c"
# The example that keeps its count in wasmd's durable state (the kv_* imports).
COUNTER = Path(__file__).resolve().parent / "counter.c"
DEBIAN_PACKAGES = ("clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32")
ZIG_REQUIREMENT = "ziglang~=0.17.0"
COMMON_FLAGS = (
    "-mexec-model=reactor",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-std=c99",
    "-Wl,--strip-all",
    "-Wl,-z,stack-size=65536",
)


def _clang() -> list[str] | None:
    """Debian's clang for wasm32-wasi, if clang, wasm-ld, wasi-libc and the builtins are here."""
    clang = shutil.which("clang")
    if clang is None or shutil.which("wasm-ld") is None:
        return None
    if not Path("/usr/lib/wasm32-wasi/libc.a").is_file():
        return None
    command = [clang, "--target=wasm32-wasi", "--sysroot=/usr"]
    # Without the builtins archive every link fails; ask clang where it expects it.
    probe = subprocess.run(
        [*command, "-print-libgcc-file-name"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0 or not Path(probe.stdout.strip()).is_file():
        return None
    return command


def _zig_cc() -> list[str] | None:
    """Zig's ``cc`` (clang with its own wasi-libc), if the ``ziglang`` wheel is installed."""
    probe = subprocess.run(
        [sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return None
    return [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi"]


def _compiler() -> list[str] | None:
    return _clang() or _zig_cc()


def missing() -> str | None:
    """Why no module can be built here (no compiler found), or None: installs nothing."""
    if _compiler() is not None:
        return None
    packages = " ".join(DEBIAN_PACKAGES)
    return f"no wasm32-wasi C compiler (Debian's {packages}, or {ZIG_REQUIREMENT} from PyPI)"


def ensure_toolchain() -> None:
    """Install clang and wasi-libc from Debian, else Zig from PyPI; else ToolchainUnavailable."""
    if missing() is None:
        return
    reasons = []
    try:
        apt_install(*DEBIAN_PACKAGES)
    except ToolchainUnavailable as exc:
        reasons.append(str(exc))
    if _clang() is not None:
        return
    try:
        pip_install(ZIG_REQUIREMENT)
    except ToolchainUnavailable as exc:
        reasons.append(str(exc))
    if _zig_cc() is None:
        raise ToolchainUnavailable("no wasm32-wasi C compiler: " + "; ".join(reasons))


def build(out_dir: Path, source: Path = SOURCE) -> Path:
    """Compile ``source`` (``examples/c/greet.c``) to ``out_dir/STEM.wasm``; that path."""
    compiler = _compiler()
    if compiler is None:
        raise ToolchainUnavailable("no wasm32-wasi C compiler: call ensure_toolchain() first")
    out_dir.mkdir(parents=True, exist_ok=True)
    wasm = out_dir.resolve() / f"{source.stem}.wasm"
    run([*compiler, *COMMON_FLAGS, "-I", SDK, "-o", wasm, source])
    return wasm


if __name__ == "__main__":
    ensure_toolchain()
    source = COUNTER if sys.argv[2:] == ["counter"] else SOURCE
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd(), source))
