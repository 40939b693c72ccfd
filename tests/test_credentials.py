"""Secrets outside plugins.d: ``{ credential = "NAME" }`` in ``[config]`` and ``[wasi].env``,
read at load from ``$CREDENTIALS_DIRECTORY`` (a real folder, as systemd's ``LoadCredential=``
makes one), never shown by ``describe``, ``list``, events or the log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from wasmd import ErrorCode, WasmdError
from wasmd.credentials import (
    MAX_CREDENTIAL_BYTES,
    Credential,
    CredentialError,
    Secret,
    read_credential,
)
from wasmd.errors import ConfigError
from wasmd.manifest import parse_manifest

from .conftest import running_daemon
from .wat_abi import MSGPACK_GUEST

ENVIRON = (Path(__file__).parent / "components" / "environ.component.wat").read_text()
SECRET = "s3cr3t-t0ken"  # under 32 bytes: MSGPACK_GUEST's greeting packs a fixstr
MANIFESTS = {
    "greet.wat": MSGPACK_GUEST,
    "greet.toml": '[config]\ngreeting = { credential = "greeting" }\nplain = "shown"\n',
    "env.wat": ENVIRON,
    "env.toml": '[wasi]\nenv = { TOKEN = { credential = "api-token" }, PLAIN = "p" }\n',
}


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A credentials folder as systemd makes one, named by the daemon's environment."""
    folder = tmp_path / "credentials"
    folder.mkdir(mode=0o700)
    (folder / "greeting").write_text(SECRET)
    (folder / "api-token").write_text(SECRET + "-env")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    return folder


def test_the_manifest_keeps_the_reference_not_the_value() -> None:
    manifest = parse_manifest(MANIFESTS["greet.toml"], source="greet.toml")
    assert manifest.config == (("greeting", Credential("greeting")), ("plain", "shown"))
    env = parse_manifest(MANIFESTS["env.toml"], source="env.toml").wasi_env
    assert env == (("PLAIN", "p"), ("TOKEN", Credential("api-token")))
    for with_values in (True, False):
        shown = manifest.to_dict(with_values=with_values)["config"]["greeting"]
        assert shown == {"credential": "greeting"}


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[config]\nk = { credential = "../etc/shadow" }', "config.k.credential", "no '/'"),
        ('[config]\nk = { credential = "a/b" }', "config.k.credential", "no '/'"),
        ('[config]\nk = { credential = ".." }', "config.k.credential", "not '.' or '..'"),
        ('[config]\nk = { credential = "" }', "config.k.credential", "is empty"),
        ("[config]\nk = { credential = 5 }", "config.k.credential", "must be a string"),
        ("[config]\nk = {}", "config.k.credential", "is required"),
        ('[wasi]\nenv = { K = { name = "x" } }', "wasi.env.K.name", "unknown key"),
    ],
)
def test_bad_references_are_refused_naming_the_key(text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_manifest(text, source="p.toml")
    assert refused.value.key == key
    assert reason in refused.value.reason


def test_reading_a_credential(credentials: Path) -> None:
    secret = read_credential(Credential("greeting"))
    assert secret == SECRET
    assert isinstance(secret, Secret)
    assert SECRET not in repr(secret)
    assert repr(secret) == "<credential greeting>"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda folder: None, "is not in $CREDENTIALS_DIRECTORY"),
        (lambda folder: (folder / "c").write_bytes(b"x" * (MAX_CREDENTIAL_BYTES + 1)), "over"),
        (lambda folder: (folder / "c").write_bytes(b"\xff\xfe"), "not UTF-8"),
        (lambda folder: (folder / "c").symlink_to(folder / "greeting"), "cannot be read"),
        (lambda folder: (folder / "c").mkdir(), "not a regular file"),
    ],
)
def test_a_credential_that_cannot_be_read_is_a_precise_error(
    credentials: Path, make: object, reason: str
) -> None:
    make(credentials)  # type: ignore[operator]
    with pytest.raises(CredentialError) as refused:
        read_credential(Credential("c"))
    message = str(refused.value)
    assert "credential 'c'" in message
    assert reason in message
    assert SECRET not in message


def test_without_a_credentials_directory_the_error_says_what_to_add() -> None:
    with pytest.raises(CredentialError, match=r"not set \(give the unit a LoadCredential=x:"):
        read_credential(Credential("x"), environ={})


async def test_a_live_daemon_hands_credentials_to_plugins_and_shows_them_to_nobody(
    short_tmp: Path, credentials: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_daemon(short_tmp, MANIFESTS) as daemon, daemon.client() as client:
        assert await client.call("greet.greeting") == SECRET
        environment = await client.call("env.environment")
        assert sorted(environment) == [["PLAIN", "p"], ["TOKEN", SECRET + "-env"]]
        described = await client.describe("greet")
        listed = await client.list()
        stats = await client.stats()
    shown = json.dumps([described, listed, stats], default=repr)
    assert SECRET not in shown
    assert described["manifest"]["config"]["greeting"] == {"credential": "greeting"}
    assert described["manifest"]["config"]["plain"] == "shown"
    assert SECRET not in caplog.text


async def test_a_missing_credential_fails_the_load_naming_it(
    short_tmp: Path, credentials: Path
) -> None:
    (credentials / "greeting").unlink()
    async with running_daemon(short_tmp, MANIFESTS) as daemon, daemon.client() as client:
        with pytest.raises(WasmdError) as refused:
            await client.call("greet.greeting")
        assert await client.call("env.environment")  # the other plug-in loaded
    assert refused.value.code == ErrorCode.UNAVAILABLE
    assert "credential 'greeting' is not in $CREDENTIALS_DIRECTORY" in refused.value.message
    assert str(credentials) in refused.value.message
