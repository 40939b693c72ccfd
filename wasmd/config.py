"""The daemon's own config file and the places wasmd looks for it and for its socket.

Theory of operation: the config file is TOML with flat top-level keys, one per field of
``DaemonConfig``; every key is optional and an unknown one is an error naming file and key.
Values are checked by the same ``Checker`` (``wasmd.tomlcheck``) as plug-in manifests, so both
files word their errors alike. Relative paths in the file resolve against the file's own folder,
never the daemon's working directory: a unit file and a shell started in different places must
read the same config the same way.

Command-line flags override the file through ``DaemonConfig.with_overrides``, which runs the
values through the same checks (relative paths there resolve against the working directory,
as a user typing a flag expects).

Lookup order (DESIGN.md sections 8 and 9): the config file is ``--config``, else
``$WASMD_CONFIG``, else ``/etc/wasmd/wasmd.toml`` if it exists. The socket is the config's
``socket`` (which the CLI's ``--socket`` overrides), else ``$WASMD_SOCKET``, else
``/run/wasmd/wasmd.sock`` for root, else ``$XDG_RUNTIME_DIR/wasmd.sock``, else
``/tmp/wasmd-UID/wasmd.sock``.
"""

from __future__ import annotations

import grp
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .plugins.trust import TrustPolicy, decode_public_key

# Re-exported: the daemon's side finds every path rule here.
from .socket_path import default_socket_path as default_socket_path
from .socket_path import fallback_socket_folder as fallback_socket_folder
from .tomlcheck import Checker, GiB, KiB, MiB, describe, read_toml

DEFAULT_CONFIG_PATH = Path("/etc/wasmd/wasmd.toml")
LOG_LEVELS = ("debug", "info", "warning", "error")
ENGINES = ("cranelift", "pulley")


@dataclass(frozen=True)
class DaemonConfig:
    socket: Path | None = None  # None -> default_socket_path()
    socket_mode: int = 0o660
    # In a config file, directories searched after --plugins and $WASMD_PLUGIN_PATH; the
    # CLI replaces it by the whole search path it resolved before calling serve().
    plugin_dirs: tuple[Path, ...] = ()
    watch: bool = True  # watch the plug-in directories (else rescans on SIGHUP and reload)
    poll: bool = False  # watch by polling, for file systems without inotify
    # The epoch ticker's interval: a call ends at most about one tick past its deadline
    # (5 ms: within 5% of a 100 ms deadline on an idle machine, bench/deadline_precision.py).
    tick_ms: int = 5
    max_message_size: int = 16 * MiB
    max_in_flight: int = 128  # per connection
    max_connections: int = 1024
    # One uid's share of max_connections (root and the daemon's own uid are not limited, and
    # keep CONNECTION_RESERVE places that no other uid may take).
    max_connections_per_uid: int = 128
    # A message that has started must be complete within this, or its connection is closed.
    frame_timeout_ms: int = 10_000
    # Bytes of unfinished messages held across all connections; past it, the connection
    # whose message grows is closed.
    max_buffered: int = 256 * MiB
    # Bytes of answers written for peers that have not read them, across all connections;
    # past it, the connection whose answer would go over is closed (its answers dropped).
    max_unread: int = 256 * MiB
    allow_uids: tuple[int, ...] | None = None  # None -> the daemon's own uid (and root)
    allow_gids: tuple[int, ...] = ()
    allow_groups: tuple[str, ...] = ()  # group names, resolved when the daemon starts
    cache_dir: Path | None = None  # None -> no compiled-module cache
    # The compile cache's size on disk; past it the least recently used entries go.
    cache_max_size: int = 1 * GiB
    log_level: str = "info"
    shutdown_timeout_ms: int = 10_000
    allow_absolute_preopens: bool = False
    # Who may use wasmd.load and wasmd.unload; None -> root and the daemon's own uid.
    load_uids: tuple[int, ...] | None = None
    # "cranelift" compiles to native code; "pulley" interprets (slower, but works under
    # systemd's MemoryDenyWriteExecute=yes, which forbids JIT code).
    engine: str = "cranelift"
    # A subscriber that does not keep up: its events wait while more than events_outbox_limit
    # bytes are unsent to it, in a buffer of events_buffer events that then drops the oldest.
    events_buffer: int = 1024
    events_outbox_limit: int = 64 * KiB
    # Operations (docs/operations.md): the node-exporter textfile rewritten every
    # metrics_interval_ms (None: none), and which modules may be compiled (wasmd/plugins/trust.py).
    metrics_textfile: Path | None = None
    metrics_interval_ms: int = 5000
    require_pinned: bool = False
    trust_file: Path | None = None
    signing_keys: tuple[str, ...] = ()  # base64 ed25519 public keys
    # A module file bigger than this fails to load without being read.
    max_module_size: int = 256 * MiB
    # The deadline of every instantiation (start functions, _initialize), whatever a
    # manifest's timeout_ms: start code must not hold up start-up, reloads or shutdown.
    start_timeout_ms: int = 5000
    # How long start-up waits for the initial scan before READY: plug-ins still compiling
    # then finish in the background (calls to them: unavailable, kind "loading").
    ready_timeout_ms: int = 10_000
    # Plug-ins' durable key-value state (wasmd/statestore.py): None -> default_state_dir()
    # ($STATE_DIRECTORY under systemd, else $XDG_STATE_HOME/wasmd or ~/.local/state/wasmd);
    # "full" syncs every commit to disk (survives power loss), "normal" survives kill -9.
    state_dir: Path | None = None
    state_sync: str = "full"

    def with_overrides(self, **changes: Any) -> DaemonConfig:
        """A copy with command-line values applied, checked as the file's values are.

        Pass only the flags that were given: ``None`` means "unset" for the optional fields
        (``socket``, ``cache_dir``, ``allow_uids``) and is an error for the others.
        """
        return replace(self, **_parse(changes, Checker("command line"), Path.cwd()))

    def socket_path(self, environ: Mapping[str, str], uid: int) -> Path:
        return self.socket if self.socket is not None else default_socket_path(environ, uid)


_KEYS = tuple(f.name for f in fields(DaemonConfig))
_OPTIONAL = (
    "socket",
    "cache_dir",
    "allow_uids",
    "load_uids",
    "metrics_textfile",
    "trust_file",
    "state_dir",
)
_INTS = {
    "tick_ms": (1, 1000),
    "max_in_flight": (1, 65536),
    "max_connections": (1, 1_000_000),
    "max_connections_per_uid": (1, 1_000_000),
    "frame_timeout_ms": (1, 3_600_000),
    "shutdown_timeout_ms": (0, 3_600_000),
    "events_buffer": (1, 1_000_000),
    "metrics_interval_ms": (100, 3_600_000),
    "start_timeout_ms": (1, 3_600_000),
    "ready_timeout_ms": (0, 3_600_000),
}


def load_config(path: Path | None) -> DaemonConfig:
    """Read the config file at ``path`` (``None``: the defaults); raises ``ConfigError``."""
    if path is None:
        return DaemonConfig()
    table = read_toml(path, kind="config")
    return DaemonConfig(**_parse(table, Checker(str(path)), path.absolute().parent))


def _parse(table: dict[str, Any], check: Checker, base: Path) -> dict[str, Any]:
    """Check raw values (from TOML or flags) and turn them into ``DaemonConfig`` fields."""
    check.table(table, "", _KEYS)
    out: dict[str, Any] = {}
    for key, value in table.items():
        if value is None and key in _OPTIONAL:
            out[key] = None  # from with_overrides only: TOML has no null
        elif key in _INTS:
            out[key] = check.integer(value, key, *_INTS[key])
        elif key in ("socket", "cache_dir", "metrics_textfile", "trust_file", "state_dir"):
            out[key] = _path(value, key, check, base)
        elif key == "plugin_dirs":
            dirs = check.array(value, key, "paths")
            out[key] = tuple(_path(v, f"{key}[{i}]", check, base) for i, v in enumerate(dirs))
        elif key in ("allow_uids", "allow_gids", "load_uids"):
            ids = check.array(value, key, "integer ids")
            out[key] = tuple(
                check.integer(v, f"{key}[{i}]", 0, 2**32 - 1) for i, v in enumerate(ids)
            )
        elif key == "socket_mode":
            out[key] = _mode(value, check)
        elif key == "max_message_size":
            out[key] = check.size(value, key, 1 * KiB, 1 * GiB)
        elif key == "cache_max_size":
            out[key] = check.size(value, key, 1 * MiB, 1024 * GiB)
        elif key in ("max_buffered", "max_unread", "max_module_size"):
            out[key] = check.size(value, key, 1 * KiB, 64 * GiB)
        elif key == "events_outbox_limit":
            out[key] = check.size(value, key, 0, 1 * GiB)
        elif key == "log_level":
            level = value.lower() if isinstance(value, str) else value
            out[key] = check.string(level, key, LOG_LEVELS)
        elif key == "engine":
            out[key] = check.string(value, key, ENGINES)
        elif key == "state_sync":
            out[key] = check.string(value, key, ("full", "normal"))
        elif key == "allow_groups":
            names = check.array(value, key, "group names")
            out[key] = tuple(
                check.string(v, f"{key}[{i}]", empty=False) for i, v in enumerate(names)
            )
        elif key == "signing_keys":
            keys = check.array(value, key, "base64 ed25519 public keys")
            out[key] = tuple(_signing_key(v, f"{key}[{i}]", check) for i, v in enumerate(keys))
        else:  # the booleans: allow_absolute_preopens, watch, poll, require_pinned
            out[key] = check.boolean(value, key)
    return out


def _path(value: Any, key: str, check: Checker, base: Path) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    # Normalised lexically (as a shell's `cd` does), so logs show "/etc/x", not "/etc/w/../x".
    return Path(os.path.normpath(base / check.string(value, key, empty=False)))


def _signing_key(value: Any, key: str, check: Checker) -> str:
    text = check.string(value, key, empty=False)
    if decode_public_key(text) is None:
        raise check.fail(
            key,
            "must be an ed25519 public key in base64: 32 raw bytes, or the DER of "
            "`openssl pkey -pubout -outform DER`",
        )
    try:
        import cryptography  # noqa: F401  (only checked: plugins/trust.py imports what it uses)
    except ImportError:
        raise check.fail(
            key, "needs the cryptography package (pip install 'wasmd[signing]')"
        ) from None
    return text


_OCTAL_RE = re.compile(r"(?:0o?)?([0-7]{1,4})")


def _mode(value: Any, check: Checker) -> int:
    """A socket file mode: an integer (TOML's ``0o660`` or decimal 432) or a string "0660"."""
    match = _OCTAL_RE.fullmatch(value.strip().lower()) if isinstance(value, str) else None
    mode = int(match[1], 8) if match else value
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        # `socket_mode = 660` is the classic slip: a decimal integer meant as octal.
        slip = isinstance(value, int) and re.fullmatch("[0-7]{3}", str(value))
        hint = f' (did you mean "{value:04}"?)' if slip else ""
        reason = f'must be a permission mode like "0660" or 0o660, got {describe(value)}{hint}'
        raise check.fail("socket_mode", reason)
    return mode


def config_path_from_env(
    explicit: str | None, environ: Mapping[str, str], *, default: Path = DEFAULT_CONFIG_PATH
) -> Path | None:
    """Which config file to read: ``--config``, ``$WASMD_CONFIG``, ``default`` if it exists."""
    if explicit:
        return Path(explicit)
    if environ.get("WASMD_CONFIG"):
        return Path(environ["WASMD_CONFIG"])
    # Only the built-in location is optional; a named file that is missing is an error later.
    return default if default.is_file() else None


def allowed_uids(config: DaemonConfig, own_uid: int) -> frozenset[int]:
    """The peer uids that may connect. Root is always allowed: it can bypass the check anyway.

    ``allow_uids = []`` in the file means "root only", unlike an absent key (the default).
    """
    if config.allow_uids is None:
        return frozenset({own_uid, 0})
    return frozenset({*config.allow_uids, 0})


def allowed_load_uids(config: DaemonConfig, own_uid: int) -> frozenset[int]:
    """Who may use ``wasmd.load``/``wasmd.unload``: ``load_uids`` if the config sets it (an
    empty list: nobody, root included), else root and the daemon's own uid."""
    if config.load_uids is None:
        return frozenset({own_uid, 0})
    return frozenset(config.load_uids)


def allowed_gids(config: DaemonConfig, source: str = "config") -> frozenset[int]:
    """``allow_gids`` plus the ids of ``allow_groups``; an unknown group name is an error."""
    gids = set(config.allow_gids)
    for index, name in enumerate(config.allow_groups):
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            raise ConfigError(
                source, f"allow_groups[{index}]", f"no group named {name!r}"
            ) from None
    return frozenset(gids)


def trust_policy(config: DaemonConfig) -> TrustPolicy:
    """The config's pinning switches as ``wasmd.plugins.trust`` takes them."""
    keys = tuple(decode_public_key(k) or b"" for k in config.signing_keys)
    return TrustPolicy(config.require_pinned, config.trust_file, keys)
