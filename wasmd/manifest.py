"""A plug-in's manifest, ``NAME.toml`` (DESIGN.md section 2), parsed into a frozen ``Manifest``.

Theory of operation: the manifest is the plug-in's whole grant of capabilities, so parsing is
strict. ``tomllib`` turns the text into plain values; every section and key is then checked,
with exact types (a TOML ``true`` is not an integer) and ranges. The first problem raises
``ConfigError`` naming the file and the dotted key (``plugin.timeout_ms``,
``wasi.preopens[0].guest``). No manifest means ``DEFAULT_MANIFEST``: nothing granted.

Values of ``[config]``, ``[wasi].env`` and ``[wasi].args`` may be secrets (a database
password), so no error message quotes them, only their type; ``Manifest.admits`` says who may
see them (``to_dict(with_values=False)`` for everyone else).

The result holds only immutable, order-normalised values (tables become tuples sorted by key),
so two loads of equivalent text compare equal and a reload can tell that nothing changed.
Preopen path checks (resolution, escaping the plug-in folder) need the plug-in's root and the
daemon config, so they happen where the WASI context is built, not here.

``Checker`` (typed values bound to one source file) and ``read_toml`` are shared with
``wasmd.config``, so both files word their errors the same way.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .peers import allowed

ABIS = ("auto", "core", "msgpack", "command", "extism")
MODES = ("persistent", "per-call")
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MAX_TOML_BYTES = 1 * MiB


@dataclass(frozen=True)
class Preopen:
    host: str  # relative to the plug-in's root, or absolute (if the daemon config allows it)
    guest: str
    writable: bool = False


@dataclass(frozen=True)
class Manifest:
    abi: str = "auto"
    timeout_ms: int = 1000
    memory_max: int = 64 * MiB  # bytes, per linear memory
    instances: int = 1
    mode: str = "persistent"
    queue: int = 64
    fuel: int = 0  # 0 = no fuel metering
    exports: tuple[str, ...] = ()  # empty = every export is callable
    wasi_args: tuple[str, ...] = ()
    wasi_env: tuple[tuple[str, str], ...] = ()  # sorted by name
    preopens: tuple[Preopen, ...] = ()
    config: tuple[tuple[str, str], ...] = ()  # sorted by key
    access_uids: tuple[int, ...] = ()
    access_gids: tuple[int, ...] = ()
    # Extism plug-ins' http_request may reach only these host names (none by default).
    extism_allowed_hosts: tuple[str, ...] = ()

    def config_dict(self) -> dict[str, str]:
        return dict(self.config)

    def admits(self, uid: int, gid: int, groups: Callable[[], Iterable[int]]) -> bool:
        """Whether a caller may call this plug-in (DESIGN.md section 8): anyone, without
        ``[access]`` lists; else root, a listed uid, or a listed gid as the caller's primary or
        supplementary group (``groups()``, read only when the cheap checks said no)."""
        if not self.access_uids and not self.access_gids:
            return True
        return allowed(uid, gid, self.access_uids, self.access_gids, groups)

    def to_dict(self, *, with_values: bool = True) -> dict[str, Any]:
        """The manifest as plain msgpack-able values, in the TOML file's own shape.

        ``with_values=False`` replaces what may be secret (the values of ``[config]`` and
        ``[wasi].env``, each of ``[wasi].args``) by ``HIDDEN``; key names stay visible.
        """

        def shown(value: str) -> str:
            return value if with_values else HIDDEN

        plugin = {k: getattr(self, k) for k in _SECTIONS["plugin"]}
        plugin["exports"] = list(self.exports)
        wasi: dict[str, Any] = {
            "args": [shown(a) for a in self.wasi_args],
            "env": {k: shown(v) for k, v in self.wasi_env},
        }
        wasi["preopens"] = [asdict(p) for p in self.preopens]
        return {
            "plugin": plugin,
            "wasi": wasi,
            "config": {k: shown(v) for k, v in self.config},
            "access": {"uids": list(self.access_uids), "gids": list(self.access_gids)},
            "extism": {"allowed_hosts": list(self.extism_allowed_hosts)},
        }


DEFAULT_MANIFEST = Manifest()
HIDDEN = "<hidden>"  # a value shown only to callers the plug-in admits


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


_SECTIONS: dict[str, tuple[str, ...]] = {
    "plugin": ("abi", "timeout_ms", "memory_max", "instances", "mode", "queue", "fuel", "exports"),
    "wasi": ("args", "env", "preopens"),
    "config": (),  # free-form keys
    "access": ("uids", "gids"),
    "extism": ("allowed_hosts",),
}
_INTS = dict(timeout_ms=(1, 3_600_000), instances=(1, 64), queue=(0, 100_000), fuel=(0, 2**63 - 1))


def parse_manifest(text: str, *, source: str) -> Manifest:
    """Parse and validate manifest text; ``source`` names the file in error messages."""
    return _manifest_from_doc(parse_toml(text, source=source), Checker(source))


def load_manifest(path: Path | None) -> Manifest:
    """Load ``path`` (``None``: no manifest, so the defaults); raises ``ConfigError``."""
    if path is None:
        return DEFAULT_MANIFEST
    return _manifest_from_doc(read_toml(path, kind="manifest"), Checker(str(path)))


def _manifest_from_doc(doc: dict[str, Any], check: Checker) -> Manifest:
    for name in doc:
        if name not in _SECTIONS:
            home = [s for s, keys in _SECTIONS.items() if name in keys]
            hint = f"it belongs under [{home[0]}]" if home else f"use {', '.join(_SECTIONS)}"
            what = "section" if isinstance(doc[name], dict) else "key outside any section"
            raise check.fail(name, f"unknown {what} ({hint})")
    section = {
        name: check.table(doc.get(name, {}), name, None if name == "config" else keys)
        for name, keys in _SECTIONS.items()
    }
    fields = _plugin_fields(section["plugin"], check) | _wasi_fields(section["wasi"], check)
    for key, value in section["config"].items():
        # A common slip is `retries = 3`; the host API hands the guest strings only.
        hint = " (quote it)" if type(value) in (int, float) else ""
        if not isinstance(value, str):
            raise check.fail(f"config.{key}", f"must be a string, got {kind_of(value)}{hint}")
        check.string(value, f"config.{key}", secret=True)
    fields["config"] = tuple(sorted(section["config"].items()))
    for name in ("uids", "gids"):
        key = f"access.{name}"
        ids = check.array(section["access"].get(name, []), key, "integer ids")
        ids = [check.integer(v, f"{key}[{i}]", 0, 2**32 - 1) for i, v in enumerate(ids)]
        fields[f"access_{name}"] = tuple(ids)
    hosts = check.array(
        section["extism"].get("allowed_hosts", []), "extism.allowed_hosts", "host names"
    )
    fields["extism_allowed_hosts"] = tuple(
        check.string(h, f"extism.allowed_hosts[{i}]", empty=False) for i, h in enumerate(hosts)
    )
    return Manifest(**fields)


def _plugin_fields(table: dict[str, Any], check: Checker) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in table.items():
        key = f"plugin.{name}"
        if name in _INTS:
            fields[name] = check.integer(value, key, *_INTS[name])
        elif name == "memory_max":
            fields[name] = check.size(value, key, 64 * KiB, 4 * GiB)
        elif name in ("abi", "mode"):
            fields[name] = check.string(value, key, ABIS if name == "abi" else MODES)
        else:  # exports; any non-empty name, since a method splits at its first dot only
            exports = check.array(value, key, "export names")
            for i, export in enumerate(exports):
                check.string(export, f"{key}[{i}]", empty=False)
                if export in exports[:i]:
                    raise check.fail(f"{key}[{i}]", f"{describe(export)} is listed twice")
            fields[name] = tuple(exports)
    return fields


def _wasi_fields(table: dict[str, Any], check: Checker) -> dict[str, Any]:
    args = check.array(table.get("args", []), "wasi.args", "strings")
    env = check.table(table.get("env", {}), "wasi.env")
    for name, value in env.items():
        check.string(value, f"wasi.env.{name}", secret=True)
        if not name or "=" in name or "\0" in name:
            raise check.fail(f"wasi.env.{name}", "is not a valid environment variable name")
    preopens: list[Preopen] = []
    for i, entry in enumerate(check.array(table.get("preopens", []), "wasi.preopens", "tables")):
        key = f"wasi.preopens[{i}]"
        entry = check.table(entry, key, ("host", "guest", "writable"))
        for required in ("host", "guest"):
            if required not in entry:
                raise check.fail(f"{key}.{required}", "is required")
        host = check.string(entry["host"], f"{key}.host", empty=False)
        guest = check.string(entry["guest"], f"{key}.guest")
        if not guest.startswith("/"):
            raise check.fail(f"{key}.guest", f'must start with "/", got {describe(guest)}')
        if any(p.guest == guest for p in preopens):
            raise check.fail(f"{key}.guest", f"{describe(guest)} is preopened twice")
        writable = check.boolean(entry.get("writable", False), f"{key}.writable")
        preopens.append(Preopen(host, guest, writable))
    return {
        "wasi_args": tuple(
            check.string(a, f"wasi.args[{i}]", secret=True) for i, a in enumerate(args)
        ),
        "wasi_env": tuple(sorted(env.items())),
        "preopens": tuple(preopens),
    }
