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

from wasmd import ErrorCode, Loader, PluginLoadError, WasmdError
from wasmd.cli import main
from wasmd.config import load_config
from wasmd.errors import ConfigError
from wasmd.manifest import parse_manifest
from wasmd.plugins import signature
from wasmd.plugins.trust import TrustPolicy

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


def signed(
    key: Ed25519PrivateKey, name: str, module: str, manifest: str | None = None, serial: int = 1
) -> str:
    """A format-2 signature file of this version (wasmd/plugins/signature.py)."""
    text = None if manifest is None else manifest.encode()
    return signature.render(
        name, serial, key.sign(signature.message(name, serial, module.encode(), text))
    )


async def test_signatures(short_tmp: Path) -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    manifest = "[plugin]\ntimeout_ms = 500\n"
    plugins: dict[str, str | bytes] = {
        "signed.wat": ARITH,
        "signed.wat.sig": signed(key, "signed", ARITH),
        "withtoml.wat": ARITH,
        "withtoml.toml": manifest,
        "withtoml.wat.sig": signed(key, "withtoml", ARITH, manifest),
        "forged.wat": ARITH,
        "forged.wat.sig": signed(stranger, "forged", ARITH),
        "tampered.wat": ARITH.replace("i32.add", "i32.sub"),
        "tampered.wat.sig": signed(key, "tampered", ARITH),
        "garbage.wat": ARITH,
        "garbage.wat.sig": b"not a signature",
        "legacy.wat": ARITH,
        "legacy.wat.sig": key.sign(ARITH.encode()),
        "legacy64.wat": ARITH,
        "legacy64.wat.sig": base64.b64encode(key.sign(ARITH.encode())) + b"\n",
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
    assert listed["withtoml"]["state"] == "ready"
    for name in ("forged", "tampered", "garbage"):
        assert listed[name]["state"] == "failed", name
        assert "does not verify" in listed[name]["error"], name
    for name in ("legacy", "legacy64"):
        assert listed[name]["state"] == "failed", name
        assert "re-sign it with `wasmd sign`" in listed[name]["error"], name
    assert "require_pinned" in listed["unsigned"]["error"]


async def test_a_signature_covers_the_manifest_the_name_and_the_serial(short_tmp: Path) -> None:
    """Issue 22 item 9's three attacks, under require_pinned with signing_keys: a manifest
    edit, a signed module copied under another name, a rollback to an older signed version."""
    key = Ed25519PrivateKey.generate()
    strict = "[plugin]\ntimeout_ms = 500\n[access]\nuids = [4242]\n"
    plugins: dict[str, str | bytes] = {
        "tool.wat": ARITH,
        "tool.toml": strict,
        "tool.wat.sig": signed(key, "tool", ARITH, strict, serial=1),
    }
    async with (
        running_daemon(
            short_tmp,
            plugins,
            watch=False,  # each step is a wasmd.reload: no watcher racing it
            require_pinned=True,
            signing_keys=(public_key(key),),
        ) as daemon,
        daemon.client() as client,
    ):
        plugins_dir = daemon.plugins_dir
        events = await subscribe(client)

        async def reload_fails(name: str) -> str:
            assert (await client.call("wasmd.reload", name))["failed"] == [name]
            failed = await events.next()
            assert failed["type"] == "plugin.failed"
            return str(failed["error"])

        # 1. The manifest edited: [access] uids dropped, plugins = ["*"] added.
        replace_atomically(plugins_dir / "tool.toml", '[access]\nplugins = ["*"]\n')
        assert "does not verify" in await reload_fails("tool")
        replace_atomically(plugins_dir / "tool.toml", strict)
        # 2. The signed module and its signature copied under another name.
        sig = (plugins_dir / "tool.wat.sig").read_text()
        write_plugins(plugins_dir, {"other.wat": ARITH, "other.toml": strict, "other.wat.sig": sig})
        assert "signs plug-in 'tool', not 'other'" in await reload_fails("other")
        # 3. Version 2 is signed and loads; then version 1 (validly signed) comes back.
        write_plugins(plugins_dir, {"tool.wat": COUNTER})
        write_plugins(plugins_dir, {"tool.wat.sig": signed(key, "tool", COUNTER, strict, 2)})
        assert (await client.call("wasmd.reload", "tool"))["reloaded"] == ["tool"]
        assert (await events.next())["type"] == "plugin.reloaded"
        write_plugins(plugins_dir, {"tool.wat": ARITH})
        write_plugins(plugins_dir, {"tool.wat.sig": signed(key, "tool", ARITH, strict, 1)})
        assert "rollback" in await reload_fails("tool")
        listed = {p["name"]: p for p in await client.call("wasmd.list")}
        assert listed["tool"]["state"] == "ready"  # version 2 keeps serving


async def test_the_trust_file_pins_manifests_and_sets_a_floor(short_tmp: Path) -> None:
    key = Ed25519PrivateKey.generate()
    manifest = "[plugin]\ntimeout_ms = 500\n"
    trust = short_tmp / "trust.toml"
    trust.write_text(
        f'[sha256]\npinned = "{sha256(ARITH)}"\nloose = "{sha256(ARITH)}"\n'
        f'[manifest_sha256]\npinned = "{sha256(manifest)}"\n'
        "[min_serial]\nold = 5\n"
    )
    plugins: dict[str, str | bytes] = {
        "pinned.wat": ARITH,
        "pinned.toml": manifest,
        "loose.wat": ARITH,
        "loose.toml": manifest,  # its module is pinned, its manifest is not
        "old.wat": ARITH,
        "old.wat.sig": signed(key, "old", ARITH, serial=4),
    }
    async with (
        running_daemon(
            short_tmp,
            plugins,
            require_pinned=True,
            trust_file=trust,
            signing_keys=(public_key(key),),
            watch=True,
        ) as daemon,
        daemon.client() as client,
    ):
        listed = {p["name"]: p for p in await client.call("wasmd.list")}
        assert listed["pinned"]["state"] == "ready"
        assert "[manifest_sha256]" in listed["loose"]["error"]
        assert "below 5" in listed["old"]["error"]
        replace_atomically(daemon.plugins_dir / "pinned.toml", "[plugin]\ntimeout_ms = 9\n")
        events = await subscribe(client)
        report = await client.call("wasmd.reload", "pinned")
        assert report["failed"] == ["pinned"]
        failed = await events.next()
        assert "manifest sha256" in failed["error"]
        assert failed["expected_sha256"] == sha256(manifest)


async def test_wasmd_sign_writes_a_signature_the_daemon_accepts(short_tmp: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (short_tmp / "key.pem").write_bytes(pem)
    plugins = {"tool/plugin.wat": ARITH, "tool/plugin.toml": "[plugin]\ntimeout_ms = 500\n"}
    write_plugins(short_tmp / "plugins.d", plugins)
    argv = ["sign", "--key", str(short_tmp / "key.pem"), "--serial", "3"]
    assert main([*argv, str(short_tmp / "plugins.d" / "tool")]) == 0
    sig = short_tmp / "plugins.d" / "tool" / "plugin.wat.sig"
    assert signature.parse(sig.read_bytes()).serial == 3
    async with (
        running_daemon(
            short_tmp, plugins, require_pinned=True, signing_keys=(public_key(key),)
        ) as daemon,
        daemon.client() as client,
    ):
        assert await client.call("tool.add", 2, 2) == 4


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
    elsewhere.write_text(signed(key, "linked", ARITH))
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


def test_a_pin_holds_in_process_and_in_wasmd_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23: the daemon refused a manifest sha256 that does not match, but
    ``wasmd.Loader`` loaded it and ``wasmd check`` said ok; all three build through
    ``plugins.build.build_pool`` now. And the library takes the daemon's pins and keys."""
    write_plugins(
        tmp_path,
        {
            "bad.wat": ARITH,
            "bad.toml": f'[plugin]\nsha256 = "{sha256(COUNTER)}"\n',
            "ok.wat": ARITH,
        },
    )
    with Loader([tmp_path], environ={}, include_defaults=False) as loader:
        with pytest.raises(PluginLoadError, match="does not match the pin"):
            loader.load("bad")
        with pytest.raises(PluginLoadError, match="does not match the pin"):
            loader.load_path(tmp_path / "bad.wat")
        assert loader.get("bad") is None
    assert main(["check", str(tmp_path / "bad.wat")]) != 0
    assert "does not match the pin" in capsys.readouterr().err
    # With the daemon's config, its require_pinned holds in wasmd check too.
    (tmp_path / "wasmd.toml").write_text("require_pinned = true\n")
    assert main(["check", "--config", str(tmp_path / "wasmd.toml"), str(tmp_path / "ok.wat")]) != 0
    assert "require_pinned" in capsys.readouterr().err
    strict = TrustPolicy(require_pinned=True)
    with Loader([tmp_path], environ={}, include_defaults=False, trust=strict) as loader:
        with pytest.raises(PluginLoadError, match="require_pinned"):
            loader.load("ok")
