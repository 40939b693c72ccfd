"""What a plug-in's signature says, and how it is written (docs/security.md, "Signatures").

Theory of operation. A signature (``NAME.wasm.sig`` beside the module, or
``NAME/plugin.wasm.sig``) vouches for one *version* of one *plug-in*: the ed25519 signature
covers ``message()``, a short text that names

- the plug-in's name (a signed module copied under another name does not verify),
- a serial number (the version floor: the daemon refuses a serial lower than the highest whose
  signature verified for that name since it started, or than the trust file's ``[min_serial]``),
- the sha256 of the module's bytes,
- the sha256 of the manifest's bytes, or ``none`` when it has no manifest (an edit of
  ``[access]`` or ``[wasi]``, or a manifest added later, does not verify).

The file is a small TOML document, ``format = "wasmd-signature-2"`` with ``name``, ``serial``
and ``signature`` (base64 of the 64 bytes); ``wasmd sign`` writes it. A file of 64 raw bytes
or their base64 is a signature of the module's bytes alone (format 1, what wasmd accepted
before): it is recognised only to refuse it with the advice to re-sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

FORMAT = "wasmd-signature-2"
SIGNATURE_SUFFIX = ".sig"
SIGNATURE_MAX_BYTES = 1024  # a format-2 file is about 200 bytes
MAX_SERIAL = 2**63 - 1


@dataclass(frozen=True)
class Signature:
    """A format-2 signature file: who it names, its serial, and the 64 signature bytes."""

    name: str
    serial: int
    signature: bytes


class LegacySignature(Exception):
    """A format-1 file: a signature of the module's bytes alone."""


class BadSignatureFile(Exception):
    """A signature file that is neither format; the message says what is wrong."""


def digest(data: bytes | None) -> str:
    return "none" if data is None else hashlib.sha256(data).hexdigest()


def message(name: str, serial: int, module: bytes, manifest: bytes | None) -> bytes:
    """The bytes an ed25519 signature of this version covers."""
    return (
        f"{FORMAT}\nname {name}\nserial {serial}\n"
        f"module {digest(module)}\nmanifest {digest(manifest)}\n"
    ).encode()


def parse(data: bytes) -> Signature:
    """A signature file's contents; raises ``LegacySignature`` or ``BadSignatureFile``."""
    if len(data) == 64 or _base64_of_64(data):
        raise LegacySignature
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise BadSignatureFile("it is not a wasmd signature file (TOML)") from None
    if doc.get("format") != FORMAT:
        raise BadSignatureFile(f'its format is not "{FORMAT}"')
    name, serial, text = doc.get("name"), doc.get("serial"), doc.get("signature")
    if not isinstance(name, str):
        raise BadSignatureFile("it names no plug-in (name)")
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 <= serial <= MAX_SERIAL:
        raise BadSignatureFile(f"its serial must be an integer from 0 to {MAX_SERIAL}")
    signature = _base64_of_64(text.encode()) if isinstance(text, str) else None
    if signature is None:
        raise BadSignatureFile("its signature is not the base64 of 64 bytes")
    return Signature(name, serial, signature)


def _base64_of_64(data: bytes) -> bytes | None:
    try:
        decoded = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == 64 else None


def render(name: str, serial: int, signature: bytes) -> str:
    """The signature file ``wasmd sign`` writes."""
    return (
        f'format = "{FORMAT}"\nname = "{name}"\nserial = {serial}\n'
        f'signature = "{base64.b64encode(signature).decode()}"\n'
    )


def signature_path(module_path: Path) -> Path:
    return module_path.with_name(module_path.name + SIGNATURE_SUFFIX)


def sign_plugin(path: Path, private_key_pem: bytes, serial: int) -> Path:
    """Sign the plug-in at ``path`` (file or folder) as the daemon will read it, with an
    ed25519 private key in PEM (``openssl genpkey -algorithm ed25519``); write and return
    its signature file. Raises ``ConfigError``, ``PluginLoadError`` or ``ValueError``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from ..discovery import source_from_path
    from .snapshot import take_snapshot

    if not 0 <= serial <= MAX_SERIAL:
        raise ValueError(f"the serial must be from 0 to {MAX_SERIAL}")
    key = load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the key is not an ed25519 private key")
    snapshot = take_snapshot(source_from_path(path))
    name = snapshot.source.name
    manifest = None if snapshot.manifest_text is None else snapshot.manifest_text.encode()
    signed = key.sign(message(name, serial, snapshot.module_bytes, manifest))
    target = signature_path(snapshot.source.module_path)
    target.write_text(render(name, serial, signed))
    return target
