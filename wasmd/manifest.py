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

Values are checked with ``wasmd.tomlcheck``'s ``Checker``, as the daemon's config is, so both
files word their errors the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from .credentials import Credential, Secret, name_problem, read_credential
from .discovery import NAME_RE
from .peers import allowed
from .tomlcheck import Checker, GiB, KiB, MiB, describe, kind_of, parse_toml, read_toml

# The ABIs (DESIGN.md section 3); each has its module in wasmd.runtime.abis.
AbiName = Literal["core", "msgpack", "command", "extism", "component"]
ABIS = ("auto", *get_args(AbiName))
MODES = ("persistent", "per-call")


@dataclass(frozen=True)
class Preopen:
    host: str  # relative to the plug-in's root, or absolute (if the daemon config allows it)
    guest: str
    writable: bool = False


@dataclass(frozen=True)
class FailurePolicy:
    """A manifest's ``[failure]`` section (DESIGN.md section 2)."""

    # The default is lenient (a plug-in that faults now and then gets a fresh instance at
    # once, as it always did) but caps a crash loop: at most ten faulting calls a second.
    max_faults: int = 10
    window_ms: int = 1000
    backoff_ms: int = 100
    backoff_max_ms: int = 30_000
    # Faults are charged to the caller's uid; the plug-in as a whole is quarantined when this
    # many distinct uids share the max_faults of one window (1: any uid's, as before).
    quarantine_uids: int = 3


@dataclass(frozen=True)
class StatePolicy:
    """A manifest's ``[state]`` section: whether the plug-in gets a durable key-value store
    (wasmd/statestore.py), and its quota, keys and values counted together."""

    enabled: bool = True
    max_bytes: int = 16 * MiB
    max_keys: int = 100_000


@dataclass(frozen=True)
class Manifest:
    abi: AbiName | Literal["auto"] = "auto"
    timeout_ms: int = 1000
    memory_max: int = 64 * MiB  # bytes, per linear memory
    instances: int = 1
    mode: str = "persistent"
    queue: int = 64
    fuel: int = 0  # 0 = no fuel metering
    exports: tuple[str, ...] = ()  # empty = every export is callable
    wasi_args: tuple[str, ...] = ()
    # A value may name a systemd credential (credentials.py), read when the plug-in loads.
    wasi_env: tuple[tuple[str, str | Credential], ...] = ()  # sorted by name
    preopens: tuple[Preopen, ...] = ()
    config: tuple[tuple[str, str | Credential], ...] = ()  # sorted by key
    access_uids: tuple[int, ...] = ()
    access_gids: tuple[int, ...] = ()
    # Plug-ins that may call this one through wasmd.call ("*": any); none by default.
    access_plugins: tuple[str, ...] = ()
    # Extism plug-ins' http_request may reach only these host names (none by default).
    extism_allowed_hosts: tuple[str, ...] = ()
    failure: FailurePolicy = FailurePolicy()
    state: StatePolicy = StatePolicy()
    # The module's sha256 (hex); when set, a module with another digest is refused.
    sha256: str | None = None

    def config_dict(self) -> dict[str, str]:
        """The ``[config]`` values (a credential not read yet is left out)."""
        return {key: value for key, value in self.config if isinstance(value, str)}

    def with_credentials(self) -> Manifest:
        """This manifest with every credential it names read (``Secret`` values); raises
        ``CredentialError``. Read when a version loads (systemd itself fills the folder
        when the service starts: a rotated credential needs ``systemctl restart``)."""

        def read(pairs: tuple[tuple[str, str | Credential], ...]) -> Any:
            return tuple(
                (key, read_credential(v) if isinstance(v, Credential) else v) for key, v in pairs
            )

        if not any(isinstance(v, Credential) for _, v in (*self.config, *self.wasi_env)):
            return self
        return replace(self, config=read(self.config), wasi_env=read(self.wasi_env))

    def admits(self, uid: int, gid: int, groups: Callable[[], Iterable[int]]) -> bool:
        """Whether a caller may call this plug-in (DESIGN.md section 8): anyone, without
        ``[access]`` lists; else root, a listed uid, or a listed gid as the caller's primary or
        supplementary group (``groups()``, read only when the cheap checks said no)."""
        if not self.access_uids and not self.access_gids:
            return True
        return allowed(uid, gid, self.access_uids, self.access_gids, groups)

    def admits_plugin(self, caller: str) -> bool:
        """Whether the plug-in ``caller`` may call this one (``wasmd.call``): only if
        ``[access] plugins`` lists it, or ``"*"``. Its uid and gid lists do not apply: a
        plug-in has none; listing it trusts it with what it may be asked by its own callers."""
        return caller in self.access_plugins or "*" in self.access_plugins

    def to_dict(self, *, with_values: bool = True) -> dict[str, Any]:
        """The manifest as plain msgpack-able values, in the TOML file's own shape.

        ``with_values=False`` replaces what may be secret (the values of ``[config]`` and
        ``[wasi].env``, each of ``[wasi].args``) by ``HIDDEN``; key names stay visible.
        """

        def shown(value: str | Credential) -> Any:
            if isinstance(value, Credential):
                return value.shown()
            if isinstance(value, Secret):  # never its value, whoever asks
                return value.credential.shown()
            return value if with_values else HIDDEN

        plugin = {k: getattr(self, k) for k in _SECTIONS["plugin"]}
        plugin["exports"] = list(self.exports)
        if self.sha256 is None:
            del plugin["sha256"]  # TOML has no null
        wasi: dict[str, Any] = {
            "args": [shown(a) for a in self.wasi_args],
            "env": {k: shown(v) for k, v in self.wasi_env},
        }
        wasi["preopens"] = [asdict(p) for p in self.preopens]
        return {
            "plugin": plugin,
            "wasi": wasi,
            "config": {k: shown(v) for k, v in self.config},
            "access": {
                "uids": list(self.access_uids),
                "gids": list(self.access_gids),
                "plugins": list(self.access_plugins),
            },
            "extism": {"allowed_hosts": list(self.extism_allowed_hosts)},
            "failure": asdict(self.failure),
            "state": asdict(self.state),
        }


DEFAULT_MANIFEST = Manifest()
HIDDEN = "<hidden>"  # a value shown only to callers the plug-in admits


_SECTIONS: dict[str, tuple[str, ...]] = {
    "plugin": (
        "abi",
        "timeout_ms",
        "memory_max",
        "instances",
        "mode",
        "queue",
        "fuel",
        "exports",
        "sha256",
    ),
    "wasi": ("args", "env", "preopens"),
    "config": (),  # free-form keys
    "access": ("uids", "gids", "plugins"),
    "extism": ("allowed_hosts",),
    "failure": ("max_faults", "window_ms", "backoff_ms", "backoff_max_ms", "quarantine_uids"),
    "state": ("enabled", "max_bytes", "max_keys"),
}
_INTS = dict(timeout_ms=(1, 3_600_000), instances=(1, 64), queue=(0, 100_000), fuel=(0, 2**63 - 1))
_FAILURE_INTS = dict(
    max_faults=(0, 1_000_000),
    window_ms=(1, 86_400_000),
    backoff_ms=(1, 86_400_000),
    backoff_max_ms=(1, 86_400_000),
    quarantine_uids=(1, 1024),  # breaker.MAX_CALLERS: no more uids are remembered
)
_SHA256_RE = re.compile("[0-9a-f]{64}")


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
    fields_failure = _failure_policy(section["failure"], check)
    fields = _plugin_fields(section["plugin"], check) | _wasi_fields(section["wasi"], check)
    config: dict[str, str | Credential] = {}
    for key, value in section["config"].items():
        # A common slip is `retries = 3`; the host API hands the guest strings only.
        hint = " (quote it)" if type(value) in (int, float) else ""
        if isinstance(value, dict):
            config[key] = _credential(value, f"config.{key}", check)
            continue
        if not isinstance(value, str):
            raise check.fail(f"config.{key}", f"must be a string, got {kind_of(value)}{hint}")
        config[key] = check.string(value, f"config.{key}", secret=True)
    fields["config"] = tuple(sorted(config.items()))
    for name in ("uids", "gids"):
        key = f"access.{name}"
        ids = check.array(section["access"].get(name, []), key, "integer ids")
        ids = [check.integer(v, f"{key}[{i}]", 0, 2**32 - 1) for i, v in enumerate(ids)]
        fields[f"access_{name}"] = tuple(ids)
    fields["access_plugins"] = _plugin_names(section["access"].get("plugins", []), check)
    hosts = check.array(
        section["extism"].get("allowed_hosts", []), "extism.allowed_hosts", "host names"
    )
    fields["extism_allowed_hosts"] = tuple(
        check.string(h, f"extism.allowed_hosts[{i}]", empty=False) for i, h in enumerate(hosts)
    )
    return Manifest(**fields, failure=fields_failure, state=_state_policy(section["state"], check))


def _state_policy(table: dict[str, Any], check: Checker) -> StatePolicy:
    policy = StatePolicy()
    if "enabled" in table:
        policy = replace(policy, enabled=check.boolean(table["enabled"], "state.enabled"))
    if "max_bytes" in table:
        policy = replace(
            policy, max_bytes=check.size(table["max_bytes"], "state.max_bytes", 0, GiB * 64)
        )
    if "max_keys" in table:
        keys = check.integer(table["max_keys"], "state.max_keys", 0, 2**31 - 1)
        policy = replace(policy, max_keys=keys)
    return policy


def _failure_policy(table: dict[str, Any], check: Checker) -> FailurePolicy:
    values = {
        name: check.integer(value, f"failure.{name}", *_FAILURE_INTS[name])
        for name, value in table.items()
    }
    policy = replace(FailurePolicy(), **values)
    if policy.backoff_max_ms < policy.backoff_ms:
        raise check.fail("failure.backoff_max_ms", "must be at least failure.backoff_ms")
    return policy


def _credential(table: dict[str, Any], key: str, check: Checker) -> Credential:
    """``{ credential = "NAME" }``: a systemd credential's name (credentials.py)."""
    check.table(table, key, ("credential",))
    if "credential" not in table:
        raise check.fail(
            f"{key}.credential", 'is required (a value table is { credential = "NAME" })'
        )
    name = check.string(table["credential"], f"{key}.credential")
    problem = name_problem(name)
    if problem is not None:
        raise check.fail(f"{key}.credential", f"{describe(name)} {problem}")
    return Credential(name)


def _plugin_names(value: Any, check: Checker) -> tuple[str, ...]:
    names = check.array(value, "access.plugins", "plug-in names")
    for i, name in enumerate(names):
        check.string(name, f"access.plugins[{i}]", empty=False)
        if name != "*" and not NAME_RE.fullmatch(name):
            raise check.fail(f"access.plugins[{i}]", f"{describe(name)} is not a plug-in name")
    return tuple(names)


def _plugin_fields(table: dict[str, Any], check: Checker) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in table.items():
        key = f"plugin.{name}"
        if name in _INTS:
            fields[name] = check.integer(value, key, *_INTS[name])
        elif name == "memory_max":
            fields[name] = check.size(value, key, 64 * KiB, 4 * GiB)
        elif name == "sha256":
            digest = check.string(value, key).lower().removeprefix("sha256:")
            if not _SHA256_RE.fullmatch(digest):
                raise check.fail(key, "must be 64 hex digits (sha256sum's output)")
            fields[name] = digest
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
    env: dict[str, str | Credential] = {}
    for name, value in check.table(table.get("env", {}), "wasi.env").items():
        key = f"wasi.env.{name}"
        if isinstance(value, dict):
            env[name] = _credential(value, key, check)
        else:
            env[name] = check.string(value, key, secret=True)
        if not name or "=" in name or "\0" in name:
            raise check.fail(key, "is not a valid environment variable name")
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
