"""Pinned and signed plug-ins: refused bytes never reach the compiler, and plugin.failed names
the digest that was expected and the one that was found."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wasmd import ErrorCode, WasmdError
from wasmd.config import load_config
from wasmd.errors import ConfigError
from wasmd.manifest import parse_manifest

from .conftest import running_daemon, write_plugins
from .helpers import replace_atomically, subscribe
from .wat import ARITH, COUNTER

# Bytes that are no module at all: if they reached the compiler, the error would say so.
NOT_A_MODULE = b"\0asm\x01\0\0\0 this is not a module"


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def public_key(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


async def test_a_manifest_pin_refuses_other_bytes_before_compiling(short_tmp: Path) -> None:
    plugins: dict[str, str | bytes] = {
        "good.wat": ARITH,
        "good.toml": f'[plugin]\nsha256 = "{sha256(ARITH)}"\n',
        "bad.wasm": NOT_A_MODULE,
        "bad.toml": f'[plugin]\nsha256 = "{sha256(ARITH)}"\n',
    }
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as client:
        assert await client.call("good.add", 2, 3) == 5
        listed = {p["name"]: p for p in await client.call("wasmd.list")}
        assert listed["bad"]["state"] == "failed"
        assert "does not match the pin" in listed["bad"]["error"]
        assert "magic" not in listed["bad"]["error"]  # never compiled
        with pytest.raises(WasmdError) as refused:
            await client.call("bad.add", 1, 2)
        assert refused.value.code == ErrorCode.UNAVAILABLE

        # An upgrade copied without its new pin keeps the old version serving.
        events = await subscribe(client)
        replace_atomically(daemon.plugins_dir / "good.wat", COUNTER)
        failed = await events.next()
        assert failed["type"] == "plugin.failed"
        assert failed["expected_sha256"] == sha256(ARITH)
        assert failed["actual_sha256"] == sha256(COUNTER)
        assert "kept_version" in failed
        assert await client.call("good.add", 2, 3) == 5


async def test_require_pinned_refuses_unpinned_modules(short_tmp: Path) -> None:
    trust = short_tmp / "trust.toml"
    trust.write_text(f'[sha256]\npinned = "sha256:{sha256(ARITH).upper()}"\n')
    plugins = {"pinned.wat": ARITH, "loose.wat": ARITH}
    async with (
        running_daemon(
            short_tmp, plugins, require_pinned=True, trust_file=trust, watch=True
        ) as daemon,
        daemon.client() as client,
    ):
        assert await client.call("pinned.add", 1, 1) == 2
        listed = {p["name"]: p for p in await client.call("wasmd.list")}
        assert listed["loose"]["state"] == "failed"
        assert "require_pinned" in listed["loose"]["error"]
        assert sha256(ARITH) in listed["loose"]["error"]

        # The trust file is read at each load: pin it, reload, and it loads.
        events = await subscribe(client)
        trust.write_text(f'[sha256]\npinned = "{sha256(ARITH)}"\nloose = "{sha256(ARITH)}"\n')
        report = await client.call("wasmd.reload", "loose")
        assert report["loaded"] == ["loose"]
        assert (await events.next())["type"] == "plugin.loaded"
        assert await client.call("loose.add", 1, 1) == 2

        # A trust file that cannot be read fails closed.
        trust.write_text("[sha256]\nloose = 42\n")
        replace_atomically(daemon.plugins_dir / "loose.wat", COUNTER)
        failed = await events.next()
        assert failed["type"] == "plugin.failed"
        assert "bad trust file" in failed["error"]
        assert "sha256.loose" in failed["error"]


async def test_signatures(short_tmp: Path) -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    module = ARITH.encode()
    plugins: dict[str, str | bytes] = {
        "signed.wat": ARITH,
        "signed.wat.sig": key.sign(module),
        "b64.wat": ARITH,
        "b64.wat.sig": base64.b64encode(key.sign(module)) + b"\n",
        "forged.wat": ARITH,
        "forged.wat.sig": stranger.sign(module),
        "tampered.wat": ARITH.replace("i32.add", "i32.sub"),
        "tampered.wat.sig": key.sign(module),
        "garbage.wat": ARITH,
        "garbage.wat.sig": b"not a signature",
        "unsigned.wat": ARITH,
    }
    async with (
        running_daemon(
            short_tmp, plugins, require_pinned=True, signing_keys=(public_key(key),)
        ) as daemon,
        daemon.client() as client,
    ):
        listed = {p["name"]: p for p in await client.call("wasmd.list")}
    assert listed["signed"]["state"] == "ready"
    assert listed["b64"]["state"] == "ready"
    for name in ("forged", "tampered", "garbage"):
        assert listed[name]["state"] == "failed", name
        assert "does not verify" in listed[name]["error"], name
    assert "require_pinned" in listed["unsigned"]["error"]


def test_config_and_manifest_keys(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = tmp_path / "wasmd.toml"
    config.write_text(
        "require_pinned = true\n"
        'trust_file = "trust.toml"\n'
        'metrics_textfile = "/var/lib/prometheus/node-exporter/wasmd.prom"\n'
        f'signing_keys = ["{public_key(key)}", "{base64.b64encode(der).decode()}"]\n'
    )
    loaded = load_config(config)
    assert loaded.require_pinned
    assert loaded.trust_file == tmp_path / "trust.toml"
    assert str(loaded.metrics_textfile) == "/var/lib/prometheus/node-exporter/wasmd.prom"
    config.write_text('signing_keys = ["c2hvcnQ="]\n')
    with pytest.raises(ConfigError, match="must be an ed25519 public key"):
        load_config(config)
    with pytest.raises(ConfigError, match="must be 64 hex digits"):
        parse_manifest('[plugin]\nsha256 = "abc"\n', source="p.toml")


async def test_a_signature_is_read_as_the_module_is_never_through_a_link(short_tmp: Path) -> None:
    """A valid signature elsewhere, linked in; and a FIFO, which would block a reader."""
    key = Ed25519PrivateKey.generate()
    elsewhere = short_tmp / "elsewhere.sig"
    elsewhere.write_bytes(key.sign(ARITH.encode()))
    plugins = {"linked.wat": ARITH, "fifo.wat": ARITH}
    write_plugins(short_tmp / "plugins.d", plugins)
    (short_tmp / "plugins.d" / "linked.wat.sig").symlink_to(elsewhere)
    os.mkfifo(short_tmp / "plugins.d" / "fifo.wat.sig")
    async with (
        running_daemon(
            short_tmp, plugins, require_pinned=True, signing_keys=(public_key(key),)
        ) as daemon,
        daemon.client() as client,
    ):
        listed = {p["name"]: p for p in await client.call("wasmd.list")}
    assert listed["linked"]["state"] == "failed"
    assert "symbolic link" in listed["linked"]["error"]
    assert listed["fifo"]["state"] == "failed"
    assert "not a regular file" in listed["fifo"]["error"]


async def test_require_pinned_holds_for_plugins_loaded_by_path(short_tmp: Path) -> None:
    """``wasmd.load PATH`` builds through the same loader: an unpinned module is refused."""
    elsewhere = short_tmp / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "loose.wat").write_text(ARITH)
    async with (
        running_daemon(short_tmp, {}, require_pinned=True) as daemon,
        daemon.client() as client,
    ):
        with pytest.raises(WasmdError) as refused:
            await client.call("wasmd.load", str(elsewhere / "loose.wat"))
        listed = await client.call("wasmd.list")
    assert refused.value.code == ErrorCode.INVALID_PARAMS
    assert "require_pinned" in refused.value.message
    assert listed == []
