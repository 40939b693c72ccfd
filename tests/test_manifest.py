from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from wasmd.errors import ConfigError
from wasmd.manifest import (
    DEFAULT_MANIFEST,
    HIDDEN,
    Manifest,
    Preopen,
    StatePolicy,
    load_manifest,
    parse_manifest,
)
from wasmd.tomlcheck import GiB, KiB, MiB, parse_size

SOURCE = "plugins.d/foo.toml"

FULL = """
[plugin]
abi = "msgpack"
timeout_ms = 2500
memory_max = "128 MiB"
instances = 4
mode = "per-call"
queue = 0
fuel = 1000000
exports = ["greet", "sum.all"]

[wasi]
args = ["prog", "--verbose", ""]
env = { LANG = "C.UTF-8", HOME = "/data" }
preopens = [
    { host = "data", guest = "/data" },
    { host = "/var/cache/foo", guest = "/cache", writable = true },
]

[config]
zeta = "last"
greeting = "hello"

[access]
uids = [1000, 0]
gids = [4294967295]
"""


def parse(text: str) -> Manifest:
    return parse_manifest(text, source=SOURCE)


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value).startswith(f"{SOURCE}: ")
    return info.value


def test_empty_manifest_is_the_default() -> None:
    assert parse("") == DEFAULT_MANIFEST == Manifest()
    assert DEFAULT_MANIFEST.memory_max == 64 * MiB
    assert DEFAULT_MANIFEST.to_dict()["plugin"]["memory_max"] == 64 * MiB


def test_every_key_is_parsed() -> None:
    m = parse(FULL)
    assert m == Manifest(
        abi="msgpack",
        timeout_ms=2500,
        memory_max=128 * MiB,
        instances=4,
        mode="per-call",
        queue=0,
        fuel=1_000_000,
        exports=("greet", "sum.all"),
        wasi_args=("prog", "--verbose", ""),
        wasi_env=(("HOME", "/data"), ("LANG", "C.UTF-8")),
        preopens=(Preopen("data", "/data"), Preopen("/var/cache/foo", "/cache", writable=True)),
        config=(("greeting", "hello"), ("zeta", "last")),
        access_uids=(1000, 0),
        access_gids=(2**32 - 1,),
    )
    assert m.config_dict() == {"greeting": "hello", "zeta": "last"}


def test_to_dict_has_the_toml_shape_and_round_trips() -> None:
    m = parse(FULL)
    d = m.to_dict()
    assert set(d) == {"plugin", "wasi", "config", "access", "extism", "failure", "state"}
    assert d["wasi"]["preopens"][1] == {
        "host": "/var/cache/foo",
        "guest": "/cache",
        "writable": True,
    }
    assert d["access"] == {"uids": [1000, 0], "gids": [2**32 - 1], "plugins": []}
    # Plain values only: a dict of the TOML's own shape parses back to the same manifest.
    toml = _to_toml(d)
    assert tomllib.loads(toml) == d
    assert parse(toml) == m


def _to_toml(d: dict[str, dict[str, object]]) -> str:
    # TOML's basic strings, arrays and inline-table values accept JSON's spelling.
    lines = []
    for section, table in d.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{json.dumps(key)} = {{ {inner} }}")
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                tables = ", ".join(
                    "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in t.items()) + " }"
                    for t in value
                )
                lines.append(f"{key} = [{tables}]")
            else:
                lines.append(f"{json.dumps(key)} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def test_to_dict_without_values_keeps_only_the_names() -> None:
    d = parse(FULL).to_dict(with_values=False)
    assert d["config"] == {"greeting": HIDDEN, "zeta": HIDDEN}
    assert set(d["wasi"]["env"]) == set(parse(FULL).to_dict()["wasi"]["env"])
    assert set(d["wasi"]["env"].values()) == {HIDDEN}
    assert d["wasi"]["args"] == [HIDDEN] * len(parse(FULL).wasi_args)
    assert d["access"] == parse(FULL).to_dict()["access"]


@pytest.mark.parametrize(
    "text",
    [
        "[config]\nDB_PASSWORD = 918273645",
        "[config]\nDB_PASSWORD = 918273645.5",
        "[wasi]\nenv = { DB_PASSWORD = 918273645 }",
        "[wasi]\nargs = [918273645]",
    ],
)
def test_errors_never_quote_a_value_that_may_be_secret(text: str) -> None:
    """A misconfigured secret must not reach ``wasmd.list`` or the ``plugin.failed`` event,
    which every client sees: its type is named, never its value."""
    message = str(error(text))
    assert "must be a string, got a" in message
    assert "918273645" not in message


def test_admits() -> None:
    def no_groups() -> list[int]:
        return []

    anyone = parse("")
    assert anyone.admits(4343, 4343, no_groups)
    private = parse("[access]\nuids = [4242]\ngids = [5555]")
    assert private.admits(4242, 4242, no_groups)
    assert private.admits(0, 0, no_groups)  # root
    assert private.admits(4343, 5555, no_groups)
    assert private.admits(4343, 4343, lambda: [1, 5555])
    assert not private.admits(4343, 4343, lambda: [1, 2])
    by_uid = parse("[access]\nuids = [4242]")
    assert not by_uid.admits(4343, 4343, lambda: pytest.fail("groups need not be read"))


def test_equivalent_text_gives_equal_manifests() -> None:
    a = parse('[config]\nb = "2"\na = "1"\n[wasi]\nenv = { Y = "y", X = "x" }')
    b = parse('[wasi]\nenv = { X = "x", Y = "y" }\n[config]\na = "1"\nb = "2"')
    assert a == b
    assert hash(a) == hash(b)


def test_error_message_names_file_key_and_value() -> None:
    e = error('[plugin]\ntimeout_ms = "fast"')
    assert str(e) == (
        "plugins.d/foo.toml: plugin.timeout_ms: "
        'must be an integer between 1 and 3600000, got "fast"'
    )
    assert (e.source, e.key) == (SOURCE, "plugin.timeout_ms")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[plugin]\ntimeout_ms = true", "plugin.timeout_ms"),  # bool is not an int
        ("[plugin]\ntimeout_ms = 0", "plugin.timeout_ms"),
        ("[plugin]\ntimeout_ms = 3600001", "plugin.timeout_ms"),
        ("[plugin]\ntimeout_ms = 1.5", "plugin.timeout_ms"),
        ("[plugin]\ninstances = 0", "plugin.instances"),
        ("[plugin]\ninstances = 65", "plugin.instances"),
        ("[plugin]\ninstances = false", "plugin.instances"),
        ("[plugin]\nqueue = -1", "plugin.queue"),
        ("[plugin]\nqueue = 100001", "plugin.queue"),
        ("[plugin]\nfuel = -1", "plugin.fuel"),
        ("[plugin]\nfuel = true", "plugin.fuel"),
        ("[plugin]\nmemory_max = 65535", "plugin.memory_max"),
        ('[plugin]\nmemory_max = "5 GiB"', "plugin.memory_max"),
        ('[plugin]\nmemory_max = "lots"', "plugin.memory_max"),
        ("[plugin]\nmemory_max = true", "plugin.memory_max"),
        ('[plugin]\nabi = "wasi"', "plugin.abi"),
        ("[plugin]\nabi = 1", "plugin.abi"),
        ('[plugin]\nmode = "pooled"', "plugin.mode"),
        ('[plugin]\nexports = "greet"', "plugin.exports"),
        ('[plugin]\nexports = ["ok", 3]', "plugin.exports[1]"),
        ('[plugin]\nexports = [""]', "plugin.exports[0]"),
        ('[plugin]\nexports = ["a", "a"]', "plugin.exports[1]"),
        ("[plugin]\ntimeot_ms = 5", "plugin.timeot_ms"),
        ('[wasi]\nargs = "x"', "wasi.args"),
        ("[wasi]\nargs = [1]", "wasi.args[0]"),
        ('[wasi]\nargs = ["a\\u0000b"]', "wasi.args[0]"),
        ('[wasi]\nenv = ["A=1"]', "wasi.env"),
        ("[wasi]\nenv = { A = 1 }", "wasi.env.A"),
        ('[wasi]\nenv = { "A=B" = "1" }', "wasi.env.A=B"),
        ("[wasi]\npreopen = []", "wasi.preopen"),
        ('[wasi]\npreopens = { host = "a", guest = "/a" }', "wasi.preopens"),
        ('[wasi]\npreopens = ["data"]', "wasi.preopens[0]"),
        ('[wasi]\npreopens = [{ guest = "/a" }]', "wasi.preopens[0].host"),
        ('[wasi]\npreopens = [{ host = "a" }]', "wasi.preopens[0].guest"),
        ('[wasi]\npreopens = [{ host = "", guest = "/a" }]', "wasi.preopens[0].host"),
        ('[wasi]\npreopens = [{ host = 1, guest = "/a" }]', "wasi.preopens[0].host"),
        ('[wasi]\npreopens = [{ host = "a", guest = "a" }]', "wasi.preopens[0].guest"),
        (
            '[wasi]\npreopens = [{ host = "a", guest = "/a", writable = "yes" }]',
            "wasi.preopens[0].writable",
        ),
        ('[wasi]\npreopens = [{ host = "a", guest = "/a", mode = "ro" }]', "wasi.preopens[0].mode"),
        (
            '[wasi]\npreopens = [{ host = "a", guest = "/a" }, { host = "b", guest = "/a" }]',
            "wasi.preopens[1].guest",
        ),
        ("[config]\nretries = 3", "config.retries"),
        ("[config]\nverbose = true", "config.verbose"),
        # A table is a credential reference, { credential = "NAME" }, and nothing else.
        ("[config]\nnested = { a = '1' }", "config.nested.a"),
        ("[access]\nuids = [-1]", "access.uids[0]"),
        ("[access]\nuids = [4294967296]", "access.uids[0]"),
        ('[access]\ngids = ["wheel"]', "access.gids[0]"),
        ("[access]\ngids = 5", "access.gids"),
        ("[access]\nusers = []", "access.users"),
        ('[access]\nplugins = ["Bad Name"]', "access.plugins[0]"),
        ("[access]\nplugins = [1]", "access.plugins[0]"),
        ('[access]\nplugins = "relay"', "access.plugins"),
        ("[network]\nallow = true", "network"),
        ('abi = "core"', "abi"),
        ("plugin = 3", "plugin"),
    ],
)
def test_validation_errors_name_the_key(text: str, key: str) -> None:
    e = error(text)
    assert e.key == key
    assert str(e).startswith(f"{SOURCE}: {key}: ")


def test_access_plugins() -> None:
    assert not parse("").admits_plugin("relay")  # no plug-in may call another by default
    listed = parse('[access]\nplugins = ["relay"]')
    assert listed.admits_plugin("relay")
    assert not listed.admits_plugin("other")
    assert parse('[access]\nplugins = ["*"]').admits_plugin("other")


def test_error_details() -> None:
    assert "got true" in str(error("[plugin]\ntimeout_ms = true"))
    assert "got an integer (quote it)" in str(error("[config]\nretries = 3"))
    assert "did you mean timeout_ms?" in str(error("[plugin]\ntimeot_ms = 5"))
    assert "unknown section" in str(error("[network]\nallow = true"))
    assert "it belongs under [plugin]" in str(error('abi = "core"'))
    assert "between 64 KiB and 4 GiB" in str(error('[plugin]\nmemory_max = "5 GiB"'))
    assert "auto, core, msgpack, command, extism, component" in str(error('[plugin]\nabi = "wasi"'))


def test_limits_at_the_edges_are_accepted() -> None:
    low = parse("[plugin]\ntimeout_ms = 1\ninstances = 1\nqueue = 0\nfuel = 0\nmemory_max = 65536")
    assert (low.timeout_ms, low.memory_max) == (1, 64 * KiB)
    high = parse(
        "[plugin]\ntimeout_ms = 3600000\ninstances = 64\nqueue = 100000\n"
        f'fuel = {2**63 - 1}\nmemory_max = "4 GiB"'
    )
    assert (high.instances, high.fuel, high.memory_max) == (64, 2**63 - 1, 4 * GiB)


def test_syntax_error_carries_tomllib_message() -> None:
    e = error("[plugin\ntimeout_ms = 5")
    assert e.key is None
    assert "invalid TOML" in str(e)
    assert "line 1" in str(e)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (65536, 65536),
        (0, 0),
        ("4096", 4096),
        ("64 MiB", 64 * MiB),
        ("512KiB", 512 * KiB),
        ("1 GiB", GiB),
        ("100 KB", 100_000),
        ("3 MB", 3_000_000),
        ("2 gib", 2 * GiB),
        ("10 B", 10),
        (" 8 KiB ", 8 * KiB),
    ],
)
def test_parse_size(value: int | str, expected: int) -> None:
    assert parse_size(value, source=SOURCE, key="plugin.memory_max") == expected


@pytest.mark.parametrize(
    "value", ["", "MiB", "1.5 GiB", "-1", "64 MiBs", "64 M", "sixty", -1, True]
)
def test_parse_size_refuses(value: int | str) -> None:
    with pytest.raises(
        ConfigError, match=r"^plugins\.d/foo\.toml: plugin\.memory_max: must be a size"
    ):
        parse_size(value, source=SOURCE, key="plugin.memory_max")


def test_load_manifest(tmp_path: Path) -> None:
    path = tmp_path / "foo.toml"
    path.write_text('[plugin]\nabi = "core"\n')
    assert load_manifest(path) == Manifest(abi="core")
    assert load_manifest(None) is DEFAULT_MANIFEST


def test_load_manifest_tolerates_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "foo.toml"
    path.write_bytes(b'\xef\xbb\xbf[plugin]\nabi = "core"\n')
    assert load_manifest(path).abi == "core"


def test_load_manifest_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "foo.toml"
    path.write_text("[plugin]\nqueue = true\n")
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert str(info.value).startswith(f"{path}: plugin.queue: ")


def test_missing_manifest_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.toml"
    with pytest.raises(ConfigError, match="cannot read manifest: No such file") as info:
        load_manifest(path)
    assert info.value.source == str(path)


def test_non_utf8_manifest(tmp_path: Path) -> None:
    path = tmp_path / "foo.toml"
    path.write_bytes(b'[config]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"not valid UTF-8 \(byte 20\)"):
        load_manifest(path)


def test_huge_manifest_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "foo.toml"
    size = MiB + 1
    # Not valid TOML either: the size check must come first.
    path.write_bytes(b"[" * size)
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert str(info.value) == f"{path}: manifest is {size} bytes, limit 1 MiB"


def test_manifest_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "foo.toml"
    path.write_bytes(b"#" * (MiB - 1) + b"\n")
    assert load_manifest(path) == DEFAULT_MANIFEST


def test_directory_instead_of_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read manifest"):
        load_manifest(tmp_path)


def test_extism_allowed_hosts() -> None:
    assert parse(
        '[extism]\nallowed_hosts = ["127.0.0.1", "example.org"]\n'
    ).extism_allowed_hosts == (
        "127.0.0.1",
        "example.org",
    )
    with pytest.raises(ConfigError, match=r"extism\.allowed_hosts\[0\]"):
        parse("[extism]\nallowed_hosts = [1]\n")


def test_the_state_section() -> None:
    m = parse('[state]\nenabled = false\nmax_bytes = "1 MiB"\nmax_keys = 10\n')
    assert m.state == StatePolicy(enabled=False, max_bytes=MiB, max_keys=10)
    assert m.to_dict()["state"] == {"enabled": False, "max_bytes": MiB, "max_keys": 10}
    assert DEFAULT_MANIFEST.state == StatePolicy(True, 16 * MiB, 100_000)
    for text, key in (
        ("[state]\nenabled = 1\n", "state.enabled"),
        ("[state]\nmax_keys = -1\n", "state.max_keys"),
        ("[state]\nmax_bytes = true\n", "state.max_bytes"),
        ("[state]\nquota = 1\n", "state.quota"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse(text)
        assert caught.value.key == key
