"""Recording pins in the trust file, and the OCI manifest rules: pure, no registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wasmd.oci import PLUGIN_MANIFEST_LAYER, WASM_LAYER, PullError, _layers, iter_sources
from wasmd.plugins.trust import trust_file_pins
from wasmd.plugins.trust_pins import PinError, record_pin, with_pin

A, B = "a" * 64, "b" * 64


def test_with_pin_adds_replaces_and_keeps_the_rest() -> None:
    assert with_pin("", "math", A) == f'[sha256]\nmath = "{A}"\n'
    text = f'# fleet pins\n[sha256]\nmath = "{A}" # v1\ntext = "{A}"\n\n[other]\nmath = 1\n'
    updated = with_pin(text, "math", B)
    assert updated == f'# fleet pins\n[sha256]\nmath = "{B}"\ntext = "{A}"\n\n[other]\nmath = 1\n'
    assert with_pin("[other]\nx = 1\n", "math", A) == f'[other]\nx = 1\n\n[sha256]\nmath = "{A}"\n'
    assert with_pin(f'[ sha256 ]\n"math" = "{A}"\n', "math", B) == f'[ sha256 ]\nmath = "{B}"\n'


def test_record_pin_round_trips_through_the_daemons_parser(tmp_path: Path) -> None:
    trust = tmp_path / "trust.toml"
    record_pin(trust, "math", A)
    record_pin(trust, "text", B)
    record_pin(trust, "math", B)
    assert trust_file_pins(trust) == {"math": B, "text": B}


def test_a_broken_trust_file_is_left_alone(tmp_path: Path) -> None:
    trust = tmp_path / "trust.toml"
    trust.write_text("[sha256\n")
    with pytest.raises(PinError, match="not valid now"):
        record_pin(trust, "math", A)
    assert trust.read_text() == "[sha256\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trust.toml"]  # no temporary left


def layer(media_type: str, size: int = 10) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + A, "size": size}


def manifest(*layers: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "layers": list(layers),
    }


def test_manifest_rules() -> None:
    module, toml = _layers(manifest(layer(WASM_LAYER)), "r", 100)
    assert module["size"] == 10
    assert toml is None
    _, toml = _layers(manifest(layer(WASM_LAYER), layer(PLUGIN_MANIFEST_LAYER)), "r", 100)
    assert toml is not None
    refusals = [
        (manifest(layer("application/octet-stream")), "not_wasm"),
        (manifest(layer(WASM_LAYER), layer(WASM_LAYER)), "not_wasm"),
        (manifest(layer(WASM_LAYER), layer("text/plain")), "not_wasm"),
        (
            {**manifest(layer(WASM_LAYER)), "mediaType": "application/vnd.oci.image.index.v1+json"},
            "not_wasm",
        ),
        (manifest(layer(WASM_LAYER, 101)), "too_large"),
        (manifest({**layer(WASM_LAYER), "digest": "md5:x"}), "registry"),
        (manifest({**layer(WASM_LAYER), "size": -1}), "registry"),
    ]
    for doc, kind in refusals:
        with pytest.raises(PullError) as info:
            _layers(doc, "r", 100)
        assert info.value.kind == kind, doc


def test_sources_file(tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nref = "r.example/wasm/math:1"\ninto = "plugins.d"\npin = true\n'
        '[[source]]\nref = "r.example/wasm/text:2"\ninto = "/srv/p"\nname = "txt"\n'
    )
    first, second = iter_sources(sources)
    assert first == {
        "ref": "r.example/wasm/math:1",
        "into": tmp_path / "plugins.d",
        "name": None,
        "plain_http": False,
        "pin": True,
    }
    assert second["into"] == Path("/srv/p")
    assert second["name"] == "txt"
    sources.write_text('[[source]]\nref = "x"\n')
    with pytest.raises(Exception, match="needs ref and into"):
        list(iter_sources(sources))
