"""Pinned and signed plug-ins: which versions the daemon agrees to compile.

Theory of operation. ``verify_snapshot`` runs on a ``Snapshot`` (the module's bytes and the
manifest's text, read together), after they are read and before anything compiles them, so
a module that is refused never reaches Cranelift. What can vouch for a version:

- a pin in the trust file beside the daemon's config (``trust_file``): ``[sha256] NAME =
  "..."`` pins the module's bytes, ``[manifest_sha256] NAME = "..."`` pins the manifest's
  (``"none"``: it has none). The file is re-read at every load, so an operator can pin a new
  version and then ``wasmd reload`` it;
- an ed25519 signature ``NAME.wasm.sig`` by one of ``signing_keys``, of the plug-in's name,
  a serial number, and the module's and manifest's bytes (wasmd/plugins/signature.py). A serial
  lower than the floor (the highest serial whose signature verified for that name since the
  daemon started, or the trust file's ``[min_serial] NAME = N`` if higher) is a rollback and
  is refused;
- a pin in the version's own manifest, ``[plugin] sha256 = "..."``: it must match, but it
  vouches for nothing (whoever writes the module writes the manifest beside it), so it only
  catches mistakes such as a half-copied upgrade.

Every pin that exists must match, and a signature that exists must verify when keys are
configured, whatever ``require_pinned`` says. ``require_pinned = true`` further refuses a
version whose module, or whose manifest if it has one, neither a trust-file pin nor a
signature vouches for. Refusals are ``TrustRefused`` (a ``PluginLoadError``) carrying the
expected and actual digests for the ``plugin.failed`` event.

The trust file and the keys live with the config, which the plug-in directories' writers
cannot change.

Ed25519 comes from ``cryptography`` (PyCA): already on most systems that have Python
(distribution package python3-cryptography), abi3 wheels for every platform, and an API
that takes the raw 32-byte keys and 64-byte signatures openssl produces.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..discovery import open_plugin_file
from ..errors import ConfigError, PluginLoadError
from ..manifest import parse_manifest
from ..tomlcheck import Checker, read_toml
from . import signature as sigfile
from .snapshot import Snapshot

SIGNATURE_SUFFIX = sigfile.SIGNATURE_SUFFIX
SIGNATURE_MAX_BYTES = sigfile.SIGNATURE_MAX_BYTES
signature_path = sigfile.signature_path


class SerialFloors:
    """The highest signature serial verified per name (anti-rollback), shared by every load of
    one daemon or ``wasmd.Loader``; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._floors: dict[str, int] = {}

    def get(self, name: str) -> int:
        with self._lock:
            return self._floors.get(name, 0)

    def raise_to(self, name: str, serial: int) -> None:
        with self._lock:
            self._floors[name] = max(serial, self._floors.get(name, 0))


@dataclass(frozen=True)
class TrustPolicy:
    require_pinned: bool = False
    trust_file: Path | None = None
    signing_keys: tuple[bytes, ...] = ()  # raw 32-byte ed25519 public keys
    floors: SerialFloors = field(default_factory=SerialFloors, compare=False, repr=False)


@dataclass(frozen=True)
class TrustPins:
    """The trust file's tables for one name."""

    module: str | None = None
    manifest: str | None = None  # a hex digest, or "none"
    min_serial: int = 0


class TrustRefused(PluginLoadError):
    """Raised when a version is not the one pinned or signed, or nothing vouches for it
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
    """Raise ``TrustRefused`` unless ``snapshot`` may be compiled (blocking)."""
    name = snapshot.source.name
    own_pin = _manifest_pin(snapshot)
    pins = _trust_file_pins(snapshot, policy)
    if own_pin is None and pins is None and not policy.signing_keys and not policy.require_pinned:
        return  # nothing to check: the module is not hashed a second time
    module = snapshot.module_bytes
    manifest = None if snapshot.manifest_text is None else snapshot.manifest_text.encode()
    actual, manifest_actual = sigfile.digest(module), sigfile.digest(manifest)
    pins = pins or TrustPins()
    module_pins = [p for p in (own_pin, (str(policy.trust_file), pins.module)) if p and p[1]]
    for where, expected in module_pins:
        if expected != actual:
            raise TrustRefused(
                name,
                f"module sha256 {actual} does not match the pin in {where} ({expected})",
                expected,
                actual,
            )
    if pins.manifest is not None and pins.manifest != manifest_actual:
        raise TrustRefused(
            name,
            f"manifest sha256 {manifest_actual} does not match the pin in {policy.trust_file} "
            f"([manifest_sha256] {pins.manifest})",
            pins.manifest,
            manifest_actual,
        )
    signed = policy.signing_keys and _check_signature(snapshot, policy, pins, actual, manifest)
    if not policy.require_pinned or signed:
        return
    if pins.module is None:
        raise TrustRefused(
            name,
            f"require_pinned is set, and neither a trust-file pin nor a valid signature "
            f"vouches for this module (its sha256 is {actual})",
            None,
            actual,
        )
    if manifest is not None and pins.manifest is None:
        raise TrustRefused(
            name,
            f"require_pinned is set, and neither a trust-file pin ([manifest_sha256]) nor a "
            f"valid signature vouches for its manifest (its sha256 is {manifest_actual})",
            None,
            manifest_actual,
        )


def _check_signature(
    snapshot: Snapshot, policy: TrustPolicy, pins: TrustPins, actual: str, manifest: bytes | None
) -> bool:
    """Whether a signature vouches for this version: False if there is none; raises
    ``TrustRefused`` if there is one that does not (see wasmd/plugins/signature.py)."""
    name = snapshot.source.name
    path = signature_path(snapshot.source.module_path)
    try:
        data = _read_signature(snapshot)
    except PluginLoadError as exc:  # a TrustRefused: a rescan checks again
        raise TrustRefused(name, exc.reason, None, actual) from None
    if data is None:
        return False

    def refuse(why: str) -> TrustRefused:
        return TrustRefused(name, f"{path.name} {why}", pins.module, actual)

    try:
        signed = sigfile.parse(data)
    except sigfile.LegacySignature:
        raise refuse(
            "signs the module's bytes alone (signature format 1), which no longer vouches "
            "for a plug-in: re-sign it with `wasmd sign`, which covers its name, serial "
            "and manifest too"
        ) from None
    except sigfile.BadSignatureFile as exc:
        raise refuse(f"does not verify: {exc}") from None
    if signed.name != name:
        raise refuse(f"signs plug-in {signed.name!r}, not {name!r}")
    message = sigfile.message(name, signed.serial, snapshot.module_bytes, manifest)
    if not _verifies(signed.signature, message, policy.signing_keys):
        raise refuse(
            f"does not verify with any of the {len(policy.signing_keys)} signing_keys "
            "(the module, its manifest and its name must be the ones signed)"
        )
    floor = max(pins.min_serial, policy.floors.get(name))
    if signed.serial < floor:
        raise refuse(
            f"has serial {signed.serial}, below {floor}: an older version (rollback) is "
            "refused (the floor is the highest serial verified since the daemon started, or "
            "the trust file's [min_serial])"
        )
    policy.floors.raise_to(name, signed.serial)
    return True


def _manifest_pin(snapshot: Snapshot) -> tuple[str, str] | None:
    if snapshot.manifest_text is None:
        return None
    source = snapshot.source
    try:
        manifest = parse_manifest(snapshot.manifest_text, source=str(source.manifest_path))
    except ConfigError:
        return None  # building the version reports it; a trust-file pin still counts
    if manifest.sha256 is None:
        return None
    return (str(source.manifest_path), manifest.sha256)


def _trust_file_pins(snapshot: Snapshot, policy: TrustPolicy) -> TrustPins | None:
    if policy.trust_file is None:
        return None
    name = snapshot.source.name
    try:
        return trust_file_tables(policy.trust_file).get(name, TrustPins())
    except ConfigError as exc:
        # Failing closed: a trust file that cannot be read refuses every module.
        raise TrustRefused(name, f"bad trust file: {exc}", None, None) from None


def trust_file_pins(path: Path) -> dict[str, str]:
    """The trust file's module pins (``[sha256]``), by name; raises ``ConfigError``."""
    return {name: pins.module for name, pins in trust_file_tables(path).items() if pins.module}


def trust_file_tables(path: Path) -> dict[str, TrustPins]:
    """The trust file's ``[sha256]``, ``[manifest_sha256]`` and ``[min_serial]`` tables, by
    name; raises ``ConfigError``."""
    doc = read_toml(path, kind="trust file")
    check = Checker(str(path))
    tables = ("sha256", "manifest_sha256", "min_serial")
    table = check.table(doc, "", tables)
    digests: dict[str, dict[str, str]] = {"sha256": {}, "manifest_sha256": {}}
    for kind, found in digests.items():
        for plugin, value in check.table(table.get(kind, {}), kind).items():
            text = check.string(value, f"{kind}.{plugin}").lower().removeprefix("sha256:")
            bad = len(text) != 64 or any(c not in "0123456789abcdef" for c in text)
            if bad and not (kind == "manifest_sha256" and text == "none"):
                raise check.fail(f"{kind}.{plugin}", "must be 64 hex digits (sha256sum's output)")
            found[plugin] = text
    serials: dict[str, int] = {}
    for plugin, value in check.table(table.get("min_serial", {}), "min_serial").items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise check.fail(f"min_serial.{plugin}", "must be an integer of at least 0")
        serials[plugin] = value
    names = set(serials).union(*digests.values())
    return {
        plugin: TrustPins(
            digests["sha256"].get(plugin),
            digests["manifest_sha256"].get(plugin),
            serials.get(plugin, 0),
        )
        for plugin in names
    }


def _read_signature(snapshot: Snapshot) -> bytes | None:
    """The signature file's bytes (at most ``SIGNATURE_MAX_BYTES`` + 1), None if there is
    none; read as modules are: never through a link, only a regular file."""
    path = signature_path(snapshot.source.module_path)
    try:
        fd = open_plugin_file(snapshot.source, path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise PluginLoadError(snapshot.source.name, f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(SIGNATURE_MAX_BYTES + 1)
    return data if len(data) <= SIGNATURE_MAX_BYTES else b"-"  # never a valid signature


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
