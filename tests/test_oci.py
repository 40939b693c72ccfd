"""`wasmd push` and `wasmd pull` against a real registry (Debian's docker-registry) on a
loopback port, into a live daemon's plug-in folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import oras.provider
import pytest
import wasmtime

from wasmd.cli import main
from wasmd.oci import WASM_CONFIG

from .conftest import running_daemon
from .helpers import subscribe
from .servers import Registry, free_port, registry

pytestmark = pytest.mark.system

ADD = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
MUL = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.mul))'


@pytest.fixture
def local_registry(short_tmp: Path) -> Iterator[Registry]:
    with registry(short_tmp / "registry") as running:
        yield running


def module(folder: Path, wat: str, name: str = "math") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    return path


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def push_json(path: Path, ref: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = cli(["push", str(path), ref, "--plain-http", "--json"], capsys)
    assert code == 0, err
    digest = json.loads(out)["digest"]
    assert isinstance(digest, str)
    assert digest.startswith("sha256:")
    return digest


async def test_push_then_pull_into_a_live_folder_then_call(
    short_tmp: Path, local_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    """An author pushes; `wasmd pull --pin` writes the module into a live daemon's folder
    (which only serves pinned modules), and the daemon serves it; a new version pushed to the
    same tag replaces it; pulling an unchanged tag writes nothing; a digest reference works."""
    ref = f"{local_registry.host}/plugins/math:1"
    first = push_json(module(short_tmp / "author", ADD), ref, capsys)
    trust = short_tmp / "trust.toml"
    trust.write_text("# pins of the fleet's plug-ins\n[sha256]\n")
    config = short_tmp / "wasmd.toml"
    config.write_text(f'trust_file = "{trust}"\nrequire_pinned = true\n')
    async with running_daemon(
        short_tmp / "host", {}, watch=True, trust_file=trust, require_pinned=True
    ) as daemon:
        pull = ["pull", ref, "--into", str(daemon.plugins_dir), "--plain-http", "--pin"]
        pull += ["--config", str(config)]
        async with daemon.client() as client:
            events = await subscribe(client)
            code, out, err = await anyio.to_thread.run_sync(cli, pull, capsys)
            assert code == 0, err
            assert f"digest: {first}" in out
            assert (await events.next())["type"] == "plugin.loaded"
            assert await client.call("math.add", 2, 3) == 5
            assert "math = " in trust.read_text()
            assert trust.read_text().startswith("# pins of the fleet's plug-ins\n")

            code, out, _ = await anyio.to_thread.run_sync(cli, pull, capsys)
            assert code == 0
            assert out.startswith("up to date:")

            second = push_json(module(short_tmp / "author", MUL), ref, capsys)
            code, out, err = await anyio.to_thread.run_sync(cli, pull, capsys)
            assert code == 0, err
            assert f"digest: {second}" in out
            assert (await events.next())["type"] == "plugin.reloaded"
            assert await client.call("math.add", 2, 3) == 6

            by_digest = f"{local_registry.host}/plugins/math@{first}"
            pinned_pull = ["pull", by_digest, "--into", str(daemon.plugins_dir), "--plain-http"]
            code, out, err = await anyio.to_thread.run_sync(
                cli, [*pinned_pull, "--pin", "--config", str(config)], capsys
            )
            assert code == 0, err
            assert (await events.next())["type"] == "plugin.reloaded"
            assert await client.call("math.add", 2, 3) == 5
    assert sorted(p.name for p in daemon.plugins_dir.iterdir()) == ["math.wasm"]


def _push_raw(path: Path, ref: str, media_type: str) -> None:
    """Push with oras itself, as a careless author might (any layer media type)."""
    registry_client = oras.provider.Registry(insecure=True)
    response = registry_client.push(
        target=ref,
        files=[f"{path}:{media_type}"],
        manifest_config=f"{path.parent / 'none'}:{WASM_CONFIG}",
        disable_path_validation=True,
        quiet=True,
    )
    assert response.status_code in (200, 201)


def _refused(
    args: list[str], into: Path, capsys: pytest.CaptureFixture[str], kind: str, code: int = 1
) -> str:
    got, out, err = cli(["pull", *args, "--into", str(into), "--plain-http"], capsys)
    assert (got, out) == (code, "")
    assert f"failed ({kind})" in err
    assert "nothing was written" in err
    assert list(into.iterdir()) == []
    return err


def test_pull_refuses_a_tampered_layer_and_a_wrong_digest(
    short_tmp: Path, local_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    into = short_tmp / "plugins.d"
    into.mkdir()
    ref = f"{local_registry.host}/plugins/math:1"
    path = module(short_tmp / "author", ADD)
    digest = push_json(path, ref, capsys)
    # A registry (or a proxy) that serves other bytes than the manifest names: the layer's
    # blob is changed on the registry's disk, same size.
    layer = local_registry.blob_file("sha256:" + _sha256(path.read_bytes()))
    tampered = bytearray(layer.read_bytes())
    tampered[-1] ^= 0xFF
    layer.write_bytes(bytes(tampered))
    err = _refused([ref], into, capsys, "digest_mismatch")
    assert "the manifest names" in err
    # The manifest itself changed on the registry's disk: its digest no longer matches.
    manifest = local_registry.blob_file(digest)
    text = manifest.read_bytes()
    manifest.write_bytes(text.replace(b"math.wasm", b"math.wasn", 1))
    assert manifest.read_bytes() != text
    _refused([f"{local_registry.host}/plugins/math@{digest}"], into, capsys, "digest_mismatch")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_pull_refuses_what_is_not_wasm(
    short_tmp: Path, local_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    into = short_tmp / "plugins.d"
    into.mkdir()
    path = module(short_tmp / "author", ADD)
    _push_raw(path, f"{local_registry.host}/plugins/octets:1", "application/octet-stream")
    err = _refused([f"{local_registry.host}/plugins/octets:1"], into, capsys, "not_wasm")
    assert "application/octet-stream" in err
    text = short_tmp / "author" / "text.wasm"
    text.write_text("(module)")  # WAT text under the wasm media type
    _push_raw(text, f"{local_registry.host}/plugins/text:1", "application/wasm")
    err = _refused([f"{local_registry.host}/plugins/text:1"], into, capsys, "not_wasm")
    assert "not a WebAssembly binary" in err
    _refused([f"{local_registry.host}/plugins/absent:1"], into, capsys, "not_found")


def test_pull_refuses_a_module_over_max_module_size(
    short_tmp: Path, local_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    into = short_tmp / "plugins.d"
    into.mkdir()
    ref = f"{local_registry.host}/plugins/big:1"
    big = '(module (memory 1) (data (i32.const 0) "' + "x" * 2000 + '"))'
    push_json(module(short_tmp / "author", big, "big"), ref, capsys)
    config = short_tmp / "wasmd.toml"
    config.write_text('max_module_size = "1 KiB"\n')
    err = _refused([ref, "--config", str(config)], into, capsys, "too_large")
    assert "max_module_size (1024)" in err


def test_pull_from_an_unreachable_registry(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = short_tmp / "plugins.d"
    into.mkdir()
    ref = f"127.0.0.1:{free_port()}/plugins/math:1"
    err = _refused([ref], into, capsys, "unreachable", code=3)
    assert "cannot reach the registry 127.0.0.1:" in err


def test_pull_sources_pulls_each_and_reports_the_worst(
    short_tmp: Path, local_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    """What wasmd-pull.service runs: every [[source]], past a failing one."""
    push_json(module(short_tmp / "author", ADD), f"{local_registry.host}/wasm/math:1", capsys)
    into = short_tmp / "plugins.d"
    into.mkdir()
    sources = short_tmp / "sources.toml"
    sources.write_text(
        f'[[source]]\nref = "{local_registry.host}/wasm/absent:1"\ninto = "plugins.d"\n'
        "plain_http = true\n"
        f'[[source]]\nref = "{local_registry.host}/wasm/math:1"\ninto = "plugins.d"\n'
        'name = "calc"\nplain_http = true\n'
    )
    code, out, err = cli(["pull", "--sources", str(sources)], capsys)
    assert code == 1
    assert "absent:1 failed (not_found)" in err
    assert out.startswith(f"pulled: {local_registry.host}/wasm/math:1 -> {into / 'calc.wasm'}")
    assert sorted(p.name for p in into.iterdir()) == ["calc.wasm"]


async def test_pull_pin_pins_the_manifest_it_brings(
    short_tmp: Path, local_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under require_pinned a manifest must be vouched for too (wasmd/plugins/trust.py): `--pin`
    records the pulled manifest's sha256 in [manifest_sha256] beside the module's."""
    ref = f"{local_registry.host}/plugins/math:2"
    path = module(short_tmp / "author", ADD)
    path.with_suffix(".toml").write_text("[plugin]\ntimeout_ms = 500\n")
    push_json(path, ref, capsys)
    trust = short_tmp / "trust.toml"
    config = short_tmp / "wasmd.toml"
    config.write_text(f'trust_file = "{trust}"\nrequire_pinned = true\n')
    async with running_daemon(
        short_tmp / "host", {}, watch=True, trust_file=trust, require_pinned=True
    ) as daemon:
        pull = ["pull", ref, "--into", str(daemon.plugins_dir), "--plain-http", "--pin"]
        async with daemon.client() as client:
            events = await subscribe(client)
            code, _, err = await anyio.to_thread.run_sync(
                cli, [*pull, "--config", str(config)], capsys
            )
            assert code == 0, err
            assert (await events.next())["type"] == "plugin.loaded"
            assert await client.call("math.add", 2, 3) == 5
    assert "[manifest_sha256]" in trust.read_text()
