"""Recording a sha256 pin in the trust file (``wasmd pull --pin``), keeping everything else.

The trust file (wasmd/plugins/trust.py) is TOML with a table ``[sha256]`` of ``NAME = "HEX"`` (and
``[manifest_sha256]`` of the same shape, for manifests). The
standard library reads TOML but does not write it, so a pin is recorded as a text edit: the
line ``NAME = ...`` inside the table is replaced, or a new one added under the table's
header (the table is appended if there is none). Comments and other lines stay as they were.
The result is read back with the daemon's own parser before it replaces the file (atomically:
a temporary name, then a rename), so an edit that would not parse, or would not pin what was
asked, leaves the file alone and says so.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..errors import ConfigError
from .trust import TrustPins, trust_file_pins, trust_file_tables

_TABLE_RE = re.compile(r"^\s*\[\s*(\S[^\]]*?)\s*\]\s*(#.*)?$")


class PinError(Exception):
    """The trust file cannot take the pin; the message says why and leaves it unchanged."""


def record_pin(trust_file: Path, name: str, sha256: str, table: str = "sha256") -> None:
    """Pin ``name`` to ``sha256`` (64 hex digits) in ``trust_file``'s ``table`` (``sha256``:
    the module; ``manifest_sha256``: the manifest), creating the file if needed."""
    try:
        text = trust_file.read_text()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise PinError(f"cannot read the trust file {trust_file}: {exc.strerror}") from None
    if text:
        try:
            trust_file_pins(trust_file)
        except ConfigError as exc:
            raise PinError(f"the trust file is not valid now, so it is left alone: {exc}") from None
    updated = with_pin(text, name, sha256, table)
    _replace(trust_file, updated, name, sha256, table)


def with_pin(text: str, name: str, sha256: str, table_name: str = "sha256") -> str:
    """``text`` with ``name = "sha256"`` in its ``[table_name]`` table (pure)."""
    line = f'{name} = "{sha256}"'
    lines = text.splitlines()
    key_re = re.compile(rf"^\s*(?:{re.escape(name)}|\"{re.escape(name)}\"|'{re.escape(name)}')\s*=")
    table: str | None = None
    header: int | None = None
    for i, current in enumerate(lines):
        match = _TABLE_RE.match(current)
        if match:
            table = match.group(1).replace(" ", "")
            if table == table_name:
                header = i
            continue
        if table == table_name and key_re.match(current):
            lines[i] = line
            return "\n".join(lines) + "\n"
    if header is not None:
        lines.insert(header + 1, line)
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += [f"[{table_name}]", line]
    return "\n".join(lines) + "\n"


def _replace(trust_file: Path, text: str, name: str, sha256: str, table: str) -> None:
    folder = trust_file.parent
    try:
        mode = trust_file.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{trust_file.name}.", dir=folder)
    except OSError as exc:
        raise PinError(f"cannot write beside the trust file {trust_file}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        try:
            pins = trust_file_tables(Path(temporary)).get(name, TrustPins())
            pinned = pins.manifest if table == "manifest_sha256" else pins.module
        except ConfigError as exc:
            raise PinError(
                f"pinning {name} would break {trust_file} ({exc}): pin it by hand"
            ) from None
        if pinned != sha256:
            raise PinError(f"could not pin {name} in {trust_file}: pin it by hand")
        os.replace(temporary, trust_file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
