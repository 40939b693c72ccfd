"""Where a plug-in version's files are, as the runtime sees them (its own module: both the
compiled plug-in, plugin.py, and the preopen checks, wasi.py, need it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PluginFiles:
    """Where a plug-in version's files are, as far as the runtime cares: what ``describe``
    shows and what its preopens are checked against (wasi.py). The loader makes one from
    what discovery found."""

    name: str
    module_path: Path  # the .wasm or .wat file
    manifest_path: Path | None
    root: Path  # what relative preopens resolve against
    folder: bool  # root is the plug-in's own NAME/ folder (else a directory it shares)
    # Plug-in directories, and the one holding this plug-in: no preopen may grant, hold or
    # (absolute) lie inside one.
    protected: tuple[Path, ...] = ()
