"""``wasmd pull`` and ``wasmd push``: plug-ins as wasm OCI artifacts in a registry.

Theory of operation. An artifact is an OCI image manifest whose config has the conventional
media type ``application/vnd.wasm.config.v0+json`` and whose layers are the module
(``application/wasm``, exactly one) and, optionally, the plug-in's manifest
(``application/vnd.wasmd.manifest.v1+toml``). The ``oras`` package speaks the registry API
(references, auth from the Docker config, uploads); this module decides what is accepted.

A pull checks everything before it writes anything: the manifest's digest when the reference
names one (``@sha256:...``), that the artifact is wasm (layer media type, then the module's
``\\0asm`` header), the module's size against the daemon's ``max_module_size`` (the size the
manifest declares, then the bytes as they arrive), and each layer's sha256 against its
descriptor. Only then are the files written, each to a temporary name the daemon ignores
(``.NAME.wasm.XXXX``) and renamed over ``NAME.wasm``, so a live daemon sees one complete new
version and hot-reloads it. A module whose sha256 is already the file's is not downloaded
again (a timer pulling every few minutes costs one manifest request per host). With a trust
file, the pin is recorded before the module is renamed in: the daemon, which re-reads the
trust file at each load, never sees the new module without its pin.

Every failure is a ``PullError`` naming its kind (``unreachable``, ``not_found``,
``registry``, ``digest_mismatch``, ``not_wasm``, ``too_large``, ``pin``) and leaves the folder
as it was. oras's own retries (five, sleeping up to 83 s) are turned off: an unreachable
registry is reported at once, and the timer tries again later.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.container
import oras.provider
import requests

from .discovery import NAME_RE
from .plugins.trust_pins import PinError, record_pin
from .tomlcheck import Checker, read_toml

WASM_LAYER = "application/wasm"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
PLUGIN_MANIFEST_LAYER = "application/vnd.wasmd.manifest.v1+toml"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WASM_MAGIC = b"\0asm"
# OCI's limit on a manifest a registry must accept; a plug-in's TOML manifest gets as much.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
REQUEST_TIMEOUT = 30.0  # seconds for connecting and between bytes of an answer
_CHUNK = 256 * 1024


class PullError(Exception):
    """A pull or push that failed; nothing was written. ``kind`` names the failure."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Pulled:
    name: str
    path: Path
    manifest_digest: str  # sha256:... of the OCI manifest
    module_sha256: str  # hex: the module's sha256, what a pin names
    size: int
    changed: bool  # False: the file already held this module, nothing was written
    pinned: Path | None = None  # the trust file the pin went into


def default_name(reference: str) -> str:
    """The plug-in name a reference gives: its repository's last path segment."""
    return _container(reference).repository  # type: ignore[no-any-return]


def pull(
    reference: str,
    into: Path,
    *,
    name: str | None = None,
    plain_http: bool = False,
    max_module_size: int,
    trust_file: Path | None = None,
) -> Pulled:
    """Fetch the wasm artifact ``reference`` into ``into/NAME.wasm`` (blocking)."""
    container = _container(reference)
    name = name or container.repository
    if not NAME_RE.fullmatch(name):
        raise PullError(
            "usage", f"{name!r} is not a plug-in name ({NAME_RE.pattern}): give one with --name"
        )
    if not into.is_dir():
        raise PullError("usage", f"{into} is not a folder")
    registry = _registry(plain_http)
    registry.auth.load_configs(container)
    manifest, digest = _manifest(registry, container)
    module, plugin_manifest = _layers(manifest, reference, max_module_size)
    target = into / f"{name}.wasm"
    module_sha256 = module["digest"].removeprefix("sha256:")
    if _sha256_of(target) == module_sha256 and plugin_manifest is None:
        pinned = _pin(trust_file, name, module_sha256)
        return Pulled(name, target, digest, module_sha256, module["size"], False, pinned)
    module_bytes = _blob(registry, container, module, max_module_size)
    if not module_bytes.startswith(WASM_MAGIC):
        raise PullError(
            "not_wasm", f"{reference}: its application/wasm layer is not a WebAssembly binary"
        )
    toml = None
    if plugin_manifest is not None:
        toml = _blob(registry, container, plugin_manifest, MAX_MANIFEST_BYTES)
    pinned = _pin(trust_file, name, module_sha256)
    if toml is not None:
        # Under require_pinned a manifest must be vouched for too (wasmd/plugins/trust.py).
        _pin(trust_file, name, hashlib.sha256(toml).hexdigest(), "manifest_sha256")
        _write_atomically(into / f"{name}.toml", toml)
    _write_atomically(target, module_bytes)
    return Pulled(name, target, digest, module_sha256, len(module_bytes), True, pinned)


def push(path: Path, reference: str, *, plain_http: bool = False) -> str:
    """Push the module at ``path`` (and ``NAME.toml`` beside it) as ``reference``; the
    manifest's digest."""
    data = path.read_bytes()
    if not data.startswith(WASM_MAGIC):
        raise PullError("not_wasm", f"{path} is not a WebAssembly binary (push a .wasm file)")
    files = [f"{path}:{WASM_LAYER}"]
    toml = path.with_suffix(".toml")
    if toml.is_file():
        files.append(f"{toml}:{PLUGIN_MANIFEST_LAYER}")
    registry = _registry(plain_http)
    container = _container(reference)
    try:
        response = registry.push(
            target=reference,
            files=files,
            # A path that does not exist: oras uploads "{}" as the config, with this type.
            manifest_config=f"{path.parent / '.wasmd-no-config'}:{WASM_CONFIG}",
            disable_path_validation=True,
            quiet=True,
        )
    except requests.exceptions.ConnectionError as exc:
        raise _unreachable(container, exc) from None
    except (ValueError, requests.exceptions.RequestException) as exc:
        raise PullError("registry", f"push to {container.registry} failed: {exc}") from None
    digest = response.headers.get("Docker-Content-Digest")
    if not digest:
        raise PullError("registry", f"{container.registry} did not say the manifest's digest")
    return str(digest)


def _container(reference: str) -> Any:
    try:
        return oras.container.Container(reference)
    except ValueError as exc:
        raise PullError("usage", f"{reference!r} is not an OCI reference: {exc}") from None


def _registry(plain_http: bool) -> Any:
    """An oras registry client that tries each request once, with a timeout."""
    once = oras.provider.Registry.do_request.__wrapped__  # without oras's retry decorator

    class Registry(oras.provider.Registry):  # type: ignore[misc]
        def do_request(self, *args: Any, **kwargs: Any) -> Any:
            return once(self, *args, **kwargs)

    registry = Registry(insecure=plain_http)
    request = registry.session.request

    def with_timeout(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return request(*args, **kwargs)

    registry.session.request = with_timeout
    return registry


def _unreachable(container: Any, exc: Exception) -> PullError:
    reason = exc.args[0] if exc.args else exc
    while hasattr(reason, "reason"):  # urllib3 wraps the socket error in two layers
        reason = reason.reason
    return PullError("unreachable", f"cannot reach the registry {container.registry}: {reason}")


def _get(registry: Any, container: Any, url: str, accept: str | None = None) -> Any:
    headers = {"Accept": accept} if accept else {}
    try:
        response = registry.do_request(url, "GET", headers=headers, stream=True)
    except requests.exceptions.ConnectionError as exc:
        raise _unreachable(container, exc) from None
    except (ValueError, requests.exceptions.RequestException) as exc:
        raise PullError("registry", f"{container.registry}: {exc}") from None
    if response.status_code == 404:
        response.close()
        raise PullError(
            "not_found", f"{container.uri} is not in the registry ({_errors(response)})"
        )
    if response.status_code != 200:
        response.close()
        raise PullError(
            "registry",
            f"{container.registry} answered {response.status_code} {response.reason} "
            f"({_errors(response)})",
        )
    return response


def _errors(response: Any) -> str:
    try:
        errors = json.loads(response.content or b"{}").get("errors") or []
        return "; ".join(str(e.get("message") or e.get("code")) for e in errors) or "no details"
    except (ValueError, AttributeError):
        return "no details"


def _read_bounded(response: Any, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_content(chunk_size=_CHUNK):
            total += len(chunk)
            if total > limit:
                raise PullError("too_large", f"{what} is larger than {limit} bytes")
            chunks.append(chunk)
    except requests.exceptions.RequestException as exc:
        raise PullError("registry", f"{what}: the download failed: {exc}") from None
    finally:
        response.close()
    return b"".join(chunks)


def _manifest(registry: Any, container: Any) -> tuple[dict[str, Any], str]:
    url = f"{registry.prefix}://{container.manifest_url()}"
    response = _get(registry, container, url, accept=OCI_MANIFEST)
    data = _read_bounded(response, MAX_MANIFEST_BYTES, f"the manifest of {container.uri}")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if container.digest and container.digest != digest:
        raise PullError(
            "digest_mismatch",
            f"{container.uri}: the registry sent a manifest whose digest is {digest}",
        )
    try:
        manifest = json.loads(data)
    except ValueError:
        raise PullError("not_wasm", f"{container.uri}: the manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise PullError("not_wasm", f"{container.uri}: the manifest is not a JSON object")
    return manifest, digest


def _layers(
    manifest: dict[str, Any], reference: str, max_module_size: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The module's layer and the plug-in manifest's (or None), checked."""
    media_type = manifest.get("mediaType", OCI_MANIFEST)
    layers = manifest.get("layers")
    if media_type != OCI_MANIFEST or not isinstance(layers, list):
        raise PullError(
            "not_wasm", f"{reference} is not a wasm artifact: its manifest is {media_type}"
        )
    types = [layer.get("mediaType") if isinstance(layer, dict) else None for layer in layers]
    modules = [layer for layer, t in zip(layers, types, strict=True) if t == WASM_LAYER]
    manifests = [
        layer for layer, t in zip(layers, types, strict=True) if t == PLUGIN_MANIFEST_LAYER
    ]
    if len(modules) != 1 or len(manifests) > 1 or len(layers) != len(modules) + len(manifests):
        raise PullError(
            "not_wasm",
            f"{reference} is not a wasm artifact: its layers are {types} (one {WASM_LAYER}, "
            f"and at most one {PLUGIN_MANIFEST_LAYER}, are expected)",
        )
    for layer in layers:
        _check_descriptor(layer, reference)
    module = modules[0]
    if module["size"] > max_module_size:
        raise PullError(
            "too_large",
            f"{reference}: the module is {module['size']} bytes, over the daemon's "
            f"max_module_size ({max_module_size})",
        )
    if manifests and manifests[0]["size"] > MAX_MANIFEST_BYTES:
        raise PullError("too_large", f"{reference}: its plug-in manifest is too large")
    return module, manifests[0] if manifests else None


def _check_descriptor(layer: dict[str, Any], reference: str) -> None:
    digest, size = layer.get("digest"), layer.get("size")
    hexdigest = digest.removeprefix("sha256:") if isinstance(digest, str) else ""
    if (
        not isinstance(digest, str)
        or not digest.startswith("sha256:")
        or len(hexdigest) != 64
        or any(c not in "0123456789abcdef" for c in hexdigest)
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
    ):
        raise PullError(
            "registry", f"{reference}: a layer's descriptor has no valid sha256 digest and size"
        )


def _blob(registry: Any, container: Any, layer: dict[str, Any], limit: int) -> bytes:
    url = f"{registry.prefix}://{container.get_blob_url(layer['digest'])}"
    response = _get(registry, container, url)
    what = f"{container.uri}'s {layer['mediaType']} layer"
    data = _read_bounded(response, min(limit, layer["size"]), what)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != layer["digest"] or len(data) != layer["size"]:
        raise PullError(
            "digest_mismatch",
            f"{what}: the registry sent {len(data)} bytes with digest {actual}, not the "
            f"{layer['size']} bytes with digest {layer['digest']} the manifest names",
        )
    return data


def _sha256_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _pin(trust_file: Path | None, name: str, sha256: str, table: str = "sha256") -> Path | None:
    if trust_file is None:
        return None
    try:
        record_pin(trust_file, name, sha256, table)
    except PinError as exc:
        raise PullError("pin", str(exc)) from None
    return trust_file


def _write_atomically(target: Path, data: bytes) -> None:
    """``data`` into ``target`` by a rename: readers see the old file or the whole new one.
    The temporary name starts with a dot, which the daemon's watcher ignores."""
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def iter_sources(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of a sources file (``wasmd pull --sources``); raises ``ConfigError``."""
    doc = read_toml(path, kind="sources file")
    check = Checker(str(path))
    table = check.table(doc, "", ("source",))
    entries = table.get("source", [])
    if not isinstance(entries, list):
        raise check.fail("source", "must be an array of tables ([[source]])")
    for i, entry in enumerate(entries):
        key = f"source[{i}]"
        item = check.table(entry, key, ("ref", "into", "name", "plain_http", "pin"))
        if "ref" not in item or "into" not in item:
            raise check.fail(key, "needs ref and into")
        into = Path(check.string(item["into"], f"{key}.into"))
        yield {
            "ref": check.string(item["ref"], f"{key}.ref"),
            "into": into if into.is_absolute() else path.absolute().parent / into,
            "name": check.string(item["name"], f"{key}.name") if "name" in item else None,
            "plain_http": check.boolean(item.get("plain_http", False), f"{key}.plain_http"),
            "pin": check.boolean(item.get("pin", False), f"{key}.pin"),
        }
