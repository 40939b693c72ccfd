from __future__ import annotations

from pathlib import Path

import pytest

from wasmd.config import (
    DaemonConfig,
    allowed_uids,
    config_path_from_env,
    default_socket_path,
    load_config,
)
from wasmd.errors import ConfigError
from wasmd.tomlcheck import GiB, KiB, MiB


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wasmd.toml"
    path.write_text(text)
    return path


def config_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    return info.value


def test_defaults() -> None:
    config = load_config(None)
    assert config == DaemonConfig()
    assert config.socket is None
    assert config.socket_mode == 0o660
    assert config.plugin_dirs == ()
    assert (config.tick_ms, config.max_message_size) == (5, 16 * MiB)
    assert (config.max_in_flight, config.max_connections) == (128, 1024)
    assert config.allow_uids is None
    assert config.load_uids is None
    assert config.log_level == "info"
    assert config.shutdown_timeout_ms == 10_000
    assert config.allow_absolute_preopens is False
    assert (config.events_buffer, config.events_outbox_limit) == (1024, 64 * KiB)


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == DaemonConfig()


def test_every_key_is_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
socket = "/run/wasmd/custom.sock"
socket_mode = "0600"
plugin_dirs = ["/srv/plugins", "local"]
tick_ms = 7
max_message_size = "1 MiB"
max_in_flight = 16
max_connections = 10
allow_uids = [1000, 1001]
allow_gids = [50]
cache_dir = "/var/cache/wasmd"
log_level = "debug"
shutdown_timeout_ms = 0
allow_absolute_preopens = true
events_buffer = 16
events_outbox_limit = "8 KiB"
""",
    )
    assert load_config(path) == DaemonConfig(
        socket=Path("/run/wasmd/custom.sock"),
        socket_mode=0o600,
        plugin_dirs=(Path("/srv/plugins"), tmp_path / "local"),
        tick_ms=7,
        max_message_size=MiB,
        max_in_flight=16,
        max_connections=10,
        allow_uids=(1000, 1001),
        allow_gids=(50,),
        cache_dir=Path("/var/cache/wasmd"),
        log_level="debug",
        shutdown_timeout_ms=0,
        allow_absolute_preopens=True,
        events_buffer=16,
        events_outbox_limit=8 * KiB,
    )


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "wasmd.toml"
    path.write_text('plugin_dirs = ["plugins.d", "../shared"]\nsocket = "run/w.sock"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../etc/wasmd.toml"))  # relative config path, too
    assert config.plugin_dirs == (etc / "plugins.d", tmp_path / "shared")
    assert config.socket == etc / "run/w.sock"
    assert all(p.is_absolute() for p in config.plugin_dirs)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("socket_mode = 432", 0o660),
        ("socket_mode = 0o640", 0o640),
        ('socket_mode = "0660"', 0o660),
        ('socket_mode = "660"', 0o660),
        ('socket_mode = "0o600"', 0o600),
        ('socket_mode = "0777"', 0o777),
        ("socket_mode = 0", 0),
    ],
)
def test_socket_mode_forms(tmp_path: Path, text: str, mode: int) -> None:
    assert load_config(write(tmp_path, text)).socket_mode == mode


@pytest.mark.parametrize(
    "text",
    [
        "socket_mode = 660",  # decimal 660 is 0o1224
        'socket_mode = "rw-rw----"',
        'socket_mode = "0989"',
        'socket_mode = "1777"',
        "socket_mode = true",
        "socket_mode = -1",
    ],
)
def test_bad_socket_modes(tmp_path: Path, text: str) -> None:
    assert config_error(tmp_path, text).key == "socket_mode"


def test_decimal_socket_mode_gets_a_hint(tmp_path: Path) -> None:
    assert 'did you mean "0660"?' in str(config_error(tmp_path, "socket_mode = 660"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tick_ms = 0", "tick_ms"),
        ("tick_ms = 1001", "tick_ms"),
        ("tick_ms = true", "tick_ms"),
        ('tick_ms = "10"', "tick_ms"),
        ('max_message_size = "512 B"', "max_message_size"),
        ('max_message_size = "2 GiB"', "max_message_size"),
        ('max_message_size = "big"', "max_message_size"),
        ("max_in_flight = 0", "max_in_flight"),
        ("max_in_flight = 65537", "max_in_flight"),
        ("max_connections = 1000001", "max_connections"),
        ("shutdown_timeout_ms = -1", "shutdown_timeout_ms"),
        ("shutdown_timeout_ms = 3600001", "shutdown_timeout_ms"),
        ('allow_uids = "root"', "allow_uids"),
        ("allow_uids = [-1]", "allow_uids[0]"),
        ('load_uids = "root"', "load_uids"),
        ("load_uids = [1.5]", "load_uids[0]"),
        ("allow_gids = [1, true]", "allow_gids[1]"),
        ('log_level = "verbose"', "log_level"),
        ("log_level = 10", "log_level"),
        ('plugin_dirs = "/srv"', "plugin_dirs"),
        ('plugin_dirs = ["/srv", ""]', "plugin_dirs[1]"),
        ("plugin_dirs = [1]", "plugin_dirs[0]"),
        ('socket = ""', "socket"),
        ("cache_dir = 3", "cache_dir"),
        ('allow_absolute_preopens = "yes"', "allow_absolute_preopens"),
        ("events_buffer = 0", "events_buffer"),
        ("events_buffer = 1000001", "events_buffer"),
        ("events_outbox_limit = -1", "events_outbox_limit"),
        ('events_outbox_limit = "2 GiB"', "events_outbox_limit"),
        ('sockt = "/x"', "sockt"),
        ("[daemon]\ntick_ms = 5", "daemon"),
    ],
)
def test_validation_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    e = config_error(tmp_path, text)
    assert e.key == key
    assert str(e).startswith(f"{tmp_path / 'wasmd.toml'}: {key}: ")


def test_unknown_key_suggests_the_near_one(tmp_path: Path) -> None:
    assert "did you mean socket?" in str(config_error(tmp_path, 'sockt = "/x"'))


def test_size_and_level_forms(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'max_message_size = "1 GiB"\nlog_level = "WARNING"'))
    assert (config.max_message_size, config.log_level) == (GiB, "warning")
    assert load_config(write(tmp_path, "max_message_size = 1024")).max_message_size == KiB


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    assert "invalid TOML" in str(config_error(tmp_path, "tick_ms = "))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")


def test_huge_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wasmd.toml"
    path.write_bytes(b"#" * (2 * MiB))
    with pytest.raises(ConfigError, match=f"config is {2 * MiB} bytes, limit 1 MiB"):
        load_config(path)


def test_with_overrides_checks_and_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = DaemonConfig(tick_ms=20)
    config = base.with_overrides(
        socket="w.sock", plugin_dirs=[Path("p"), "/abs"], log_level="error"
    )
    assert config.socket == tmp_path / "w.sock"
    assert config.plugin_dirs == (tmp_path / "p", Path("/abs"))
    assert (config.tick_ms, config.log_level) == (20, "error")
    assert base.socket is None  # frozen: the original is untouched
    assert config.with_overrides(socket=None).socket is None
    with pytest.raises(ConfigError, match=r"^command line: tick_ms: must be an integer"):
        base.with_overrides(tick_ms=0)
    with pytest.raises(ConfigError, match=r"^command line: tick_ms: "):
        base.with_overrides(tick_ms=None)
    with pytest.raises(ConfigError, match=r"^command line: colour: unknown key"):
        base.with_overrides(colour=True)


def test_config_path_from_env(tmp_path: Path) -> None:
    default = tmp_path / "wasmd.toml"
    env = {"WASMD_CONFIG": "/from/env.toml"}
    assert config_path_from_env("/explicit.toml", env, default=default) == Path("/explicit.toml")
    assert config_path_from_env(None, env, default=default) == Path("/from/env.toml")
    assert config_path_from_env(None, {"WASMD_CONFIG": ""}, default=default) is None
    assert config_path_from_env(None, {}, default=default) is None
    default.write_text("")
    assert config_path_from_env(None, {}, default=default) == default


def test_config_path_default_location() -> None:
    expected = Path("/etc/wasmd/wasmd.toml")
    found = config_path_from_env(None, {})
    assert found == (expected if expected.is_file() else None)


def test_default_socket_path() -> None:
    xdg = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    assert default_socket_path({}, 0) == Path("/run/wasmd/wasmd.sock")
    assert default_socket_path(xdg, 0) == Path("/run/wasmd/wasmd.sock")
    assert default_socket_path(xdg, 1000) == Path("/run/user/1000/wasmd.sock")
    assert default_socket_path({}, 1000) == Path("/tmp/wasmd-1000/wasmd.sock")
    # A relative XDG_RUNTIME_DIR is invalid per the XDG spec and ignored.
    assert default_socket_path({"XDG_RUNTIME_DIR": "rel"}, 7) == Path("/tmp/wasmd-7/wasmd.sock")
    override = {"WASMD_SOCKET": "/srv/w.sock", **xdg}
    assert default_socket_path(override, 0) == Path("/srv/w.sock")
    assert default_socket_path(override, 1000) == Path("/srv/w.sock")


def test_socket_path_prefers_the_config() -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/5"}
    assert DaemonConfig().socket_path(env, 5) == Path("/run/user/5/wasmd.sock")
    assert DaemonConfig(socket=Path("/s.sock")).socket_path(env, 5) == Path("/s.sock")


def test_allowed_uids() -> None:
    assert allowed_uids(DaemonConfig(), 1000) == {1000, 0}
    assert allowed_uids(DaemonConfig(), 0) == {0}
    assert allowed_uids(DaemonConfig(allow_uids=(5, 6)), 1000) == {5, 6, 0}
    assert allowed_uids(DaemonConfig(allow_uids=()), 1000) == {0}  # root only


def test_empty_allow_uids_in_file_means_root_only(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "allow_uids = []"))
    assert config.allow_uids == ()
    assert allowed_uids(config, 1000) == {0}
