"""Pinned and signed plug-ins: which module bytes the daemon agrees to compile.

Theory of operation. ``verify_snapshot`` runs on the bytes of a ``Snapshot``, after they are
read and before anything compiles them, so a module that is refused never reaches Cranelift.
Three things can vouch for a module:
- a pin in its own manifest, ``[plugin] sha256 = "..."``;
- a pin in the trust file beside the daemon's config (``trust_file``), a TOML table
  ``[sha256]`` of ``NAME = "hex digest"``, re-read at every load so an operator can pin a
  new version and then ``wasmd reload`` it;
- an ed25519 signature of the module's bytes in ``NAME.wasm.sig`` (64 raw bytes, as
  ``openssl pkeyutl -sign -rawin`` writes them, or their base64), by one of ``signing_keys``.
Every pin that exists must match, and a signature that exists must verify when keys are
configured, whatever ``require_pinned`` says; ``require_pinned = true`` further refuses a
module nothing vouches for. Refusals are ``TrustRefused`` (a ``PluginLoadError``) carrying
the expected and actual digests for the ``plugin.failed`` event.

A pin in the manifest only guards against mistakes (a half-copied upgrade, the wrong
build): whoever can write the module can write the manifest beside it. The trust file and
the keys live with the config, which the plug-in directories' writers cannot change.

Ed25519 comes from ``cryptography`` (PyCA): already on most systems that have Python
(distribution package python3-cryptography), abi3 wheels for every platform, and an API
that takes the raw 32-byte keys and 64-byte signatures openssl produces.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .discovery import open_plugin_file
from .errors import ConfigError, PluginLoadError
from .manifest import parse_manifest
from .tomlcheck import Checker, read_toml

if TYPE_CHECKING:
    from .loader import Snapshot

SIGNATURE_SUFFIX = ".sig"
SIGNATURE_MAX_BYTES = 1024  # a signature is 64 bytes, 88 in base64


@dataclass(frozen=True)
class TrustPolicy:
    require_pinned: bool = False
    trust_file: Path | None = None
    signing_keys: tuple[bytes, ...] = ()  # raw 32-byte ed25519 public keys


class TrustRefused(PluginLoadError):
    """Raised when a module's bytes are not the ones pinned, or nothing vouches for them
    under ``require_pinned``."""

    def __init__(self, name: str, reason: str, expected: str | None, actual: str | None) -> None:
        super().__init__(name, reason)
        self.expected = expected
        self.actual = actual  # None when the check failed before hashing (a bad trust file)

    def digests(self) -> dict[str, str | None]:
        """The ``plugin.failed`` event's fields naming the digests."""
        if self.actual is None:
            return {}
        return {"expected_sha256": self.expected, "actual_sha256": self.actual}


def decode_public_key(text: str) -> bytes | None:
    """A base64 ed25519 public key: 32 raw bytes, or the 44-byte DER of ``openssl pkey
    -pubout -outform DER``; None if it is neither."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) == 44 and raw.startswith(bytes.fromhex("302a300506032b6570032100")):
        raw = raw[12:]
    return raw if len(raw) == 32 else None


def verify_snapshot(snapshot: Snapshot, policy: TrustPolicy) -> None:
    """Raise ``TrustRefused`` unless ``snapshot``'s module may be compiled (blocking)."""
    name = snapshot.source.name
    pins = _pins(snapshot, policy)
    if not pins and not policy.signing_keys and not policy.require_pinned:
        return  # nothing to check: the module is not hashed a second time
    actual = hashlib.sha256(snapshot.module_bytes).hexdigest()
    for where, expected in pins:
        if expected != actual:
            raise TrustRefused(
                name,
                f"module sha256 {actual} does not match the pin in {where} ({expected})",
                expected,
                actual,
            )
    signed = False
    if policy.signing_keys:
        try:
            signature = _read_signature(snapshot)
        except PluginLoadError as exc:  # a TrustRefused: a rescan checks again
            raise TrustRefused(name, exc.reason, None, actual) from None
        if signature is not None:
            if not _verifies(signature, snapshot.module_bytes, policy.signing_keys):
                raise TrustRefused(
                    name,
                    f"{signature_path(snapshot.source.module_path).name} does not verify "
                    f"with any of the {len(policy.signing_keys)} signing_keys",
                    pins[0][1] if pins else None,
                    actual,
                )
            signed = True
    if policy.require_pinned and not pins and not signed:
        raise TrustRefused(
            name,
            f"require_pinned is set, and no sha256 pin (manifest or trust file) nor valid "
            f"signature vouches for this module (its sha256 is {actual})",
            None,
            actual,
        )


def signature_path(module_path: Path) -> Path:
    return module_path.with_name(module_path.name + SIGNATURE_SUFFIX)


def _pins(snapshot: Snapshot, policy: TrustPolicy) -> list[tuple[str, str]]:
    source = snapshot.source
    pins: list[tuple[str, str]] = []
    if snapshot.manifest_text is not None:
        try:
            manifest = parse_manifest(snapshot.manifest_text, source=str(source.manifest_path))
        except ConfigError:
            manifest = None  # building the version reports it; a trust-file pin still counts
        if manifest is not None and manifest.sha256 is not None:
            pins.append((str(source.manifest_path), manifest.sha256))
    if policy.trust_file is not None:
        try:
            pinned = trust_file_pins(policy.trust_file).get(source.name)
        except ConfigError as exc:
            # Failing closed: a trust file that cannot be read refuses every module.
            raise TrustRefused(source.name, f"bad trust file: {exc}", None, None) from None
        if pinned is not None:
            pins.append((str(policy.trust_file), pinned))
    return pins


def trust_file_pins(path: Path) -> dict[str, str]:
    """The trust file's ``[sha256]`` table; raises ``ConfigError``."""
    doc = read_toml(path, kind="trust file")
    check = Checker(str(path))
    table = check.table(doc, "", ("sha256",))
    pins = check.table(table.get("sha256", {}), "sha256")
    out: dict[str, str] = {}
    for plugin, digest in pins.items():
        text = check.string(digest, f"sha256.{plugin}").lower().removeprefix("sha256:")
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise check.fail(f"sha256.{plugin}", "must be 64 hex digits (sha256sum's output)")
        out[plugin] = text
    return out


def _read_signature(snapshot: Snapshot) -> bytes | None:
    path = signature_path(snapshot.source.module_path)
    try:
        fd = open_plugin_file(snapshot.source, path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise PluginLoadError(snapshot.source.name, f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(SIGNATURE_MAX_BYTES + 1)
    if len(data) == 64:
        return data
    try:
        decoded = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    return decoded if len(decoded) == 64 else b""  # b"": present but malformed, never valid


def _verifies(signature: bytes, message: bytes, keys: tuple[bytes, ...]) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if len(signature) != 64:
        return False
    for key in keys:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False
