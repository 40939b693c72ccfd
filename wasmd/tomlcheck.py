"""Checked values from TOML files: the one place ``manifest.py`` and ``config.py`` read TOML.

``read_toml*`` read a file of at most ``MAX_TOML_BYTES`` (a runaway file is never pulled into
memory) and parse it with ``tomllib``; ``Checker`` then turns each raw value into a typed one,
with exact types (a TOML ``true`` is not an integer) and ranges, or raises ``ConfigError``
naming the file and the dotted key. Errors show a value the way the user wrote it
(``describe``), or, for what may be a secret, only its type (``kind_of``).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from .errors import ConfigError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MAX_TOML_BYTES = 1 * MiB


def kind_of(value: object) -> str:
    """A TOML value's type, for "got ..." where the value itself may be a secret."""
    if isinstance(value, bool):
        return "true/false"
    kinds = {int: "an integer", float: "a float", str: "a string", list: "an array"}
    return kinds.get(type(value), "a table" if isinstance(value, dict) else "a date/time")


def describe(value: object) -> str:
    """Show a TOML value the way the user wrote it, for "got ..." in error messages."""
    if isinstance(value, bool | str) or value is None:
        return json.dumps(value, ensure_ascii=False)  # true, "text", null
    if isinstance(value, int | float):
        return repr(value)
    kinds: dict[type, str] = {list: "an array", tuple: "an array", dict: "a table"}
    return kinds.get(type(value), "a date/time")


def format_size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


_SIZE_RE = re.compile(r"\s*(\d+)\s*([kmgt]i?b|b)?\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": KiB, "mib": MiB, "gib": GiB, "tib": 1 << 40}


class Checker:
    """Validators for values read from one file: each failure is a ``ConfigError`` naming it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str | None, reason: str) -> ConfigError:
        return ConfigError(self.source, key, reason)

    def integer(self, value: Any, key: str, lo: int, hi: int) -> int:
        # bool is a subclass of int in Python; `timeout_ms = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            got = describe(value)
            raise self.fail(key, f"must be an integer between {lo} and {hi}, got {got}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {describe(value)}")
        return value

    def string(
        self,
        value: Any,
        key: str,
        choices: Collection[str] = (),
        empty: bool = True,
        secret: bool = False,
    ) -> str:
        """A string; ``secret``: errors name its type only, never the value."""
        if choices and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {describe(value)}")
        if not isinstance(value, str):
            got = kind_of(value) if secret else describe(value)
            raise self.fail(key, f"must be a string, got {got}")
        if not empty and not value:
            raise self.fail(key, "must not be empty")
        # Strings reach C APIs (WASI args, env, paths), where an embedded NUL would cut them short.
        if "\0" in value:
            raise self.fail(key, "must not contain a NUL character")
        return value

    def array(self, value: Any, key: str, what: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise self.fail(key, f"must be an array of {what}, got {describe(value)}")
        return list(value)

    def table(self, value: Any, key: str, allowed: Collection[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {describe(value)}")
        for name in value:
            if allowed is not None and name not in allowed:
                near = difflib.get_close_matches(name, allowed, n=1)
                hint = f"did you mean {near[0]}?" if near else f"allowed: {', '.join(allowed)}"
                raise self.fail(f"{key}.{name}" if key else name, f"unknown key ({hint})")
        return value

    def size(self, value: Any, key: str, lo: int, hi: int) -> int:
        """Bytes from an integer or a string like "64 MiB", "512KiB", "100 KB" (KB = 1000)."""
        match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
        if match:
            size = int(match[1]) * _UNITS[(match[2] or "b").lower()]
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            size = value
        else:
            example = 'bytes as an integer, or a string like "64 MiB"'
            raise self.fail(key, f"must be a size ({example}), got {describe(value)}")
        if not lo <= size <= hi:
            span = f"{format_size(lo)} and {format_size(hi)}"
            raise self.fail(key, f"must be a size between {span}, got {describe(value)}")
        return size


def parse_size(value: int | str, *, source: str, key: str) -> int:
    """Bytes from an integer or a size string ("64 MiB", "100 KB"); ``ConfigError`` otherwise."""
    return Checker(source).size(value, key, 0, 2**64)


def parse_toml(text: str, *, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"invalid TOML: {exc}") from None


def read_toml(path: Path, *, kind: str) -> dict[str, Any]:
    """Read and parse a TOML file of at most 1 MiB; every failure is a ``ConfigError``."""
    return parse_toml(read_toml_text(path, kind=kind), source=str(path))


def read_toml_text(path: Path, *, kind: str) -> str:
    """The text of a TOML file of at most 1 MiB; every failure is a ``ConfigError``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read {kind}: {exc.strerror or exc}") from None
    return read_toml_fd(fd, source=str(path), kind=kind)


def read_toml_fd(fd: int, *, source: str, kind: str) -> str:
    """The text of the TOML file open at ``fd`` (closed here), as ``read_toml_text``."""
    try:
        with open(fd, "rb", closefd=True) as f:
            # A runaway file must not be pulled into memory; the +1 catches one that grows.
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_TOML_BYTES + 1) if size <= MAX_TOML_BYTES else b""
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read {kind}: {exc.strerror or exc}") from None
    size = max(size, len(data))
    if size > MAX_TOML_BYTES:
        limit = format_size(MAX_TOML_BYTES)
        raise ConfigError(source, None, f"{kind} is {size} bytes, limit {limit}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, None, f"not valid UTF-8 (byte {exc.start})") from None
    # Some editors write a byte-order mark; TOML forbids it, but it carries no meaning.
    return text.removeprefix("\ufeff")
