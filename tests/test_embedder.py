"""An embedder's own host functions: ``wasmd.Loader(host_functions=...)`` (issue 28)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_plugins
from wasmd import ErrorCode, HostFunction, Loader, PluginLoadError, WasmdError

# Core numbers: "twice" asks the host's app.double; "both" gets two results back; "absent"
# imports a function the embedder did not give (it links, and traps naming it if called).
CORE_GUEST = r"""(module
  (import "app" "double" (func $double (param i64) (result i64)))
  (import "app" "split" (func $split (param f64) (result i32 f64)))
  (import "app" "absent" (func $absent))
  (func (export "twice") (param i64) (result i64) (call $double (local.get 0)))
  (func (export "parts") (param f64) (result i32 f64) (call $split (local.get 0)))
  (func (export "absent") (call $absent))
  (func (export "plain") (result i32) (i32.const 7))
)"""

# msgpack values: "lookup" hands its params (a msgpack array) to the host's app.lookup and
# returns what it answered, so a call's result is the host function's result.
MSGPACK_GUEST = r"""(module
  (import "app" "lookup" (func $lookup (param i32 i32) (result i64)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 1024))
  (func (export "wasmd_alloc") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (i32.add (global.get $bump) (local.get $n)) (i32.const 120000))
      (then (global.set $bump (i32.const 1024))))
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $n)))
    (local.get $p))
  (func (export "lookup") (param $p i32) (param $n i32) (result i64)
    (call $lookup (local.get $p) (local.get $n)))
)"""


class Host:
    """The embedding program's side: what its host functions saw and will do."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.threads: set[int] = set()
        self.fail: BaseException | None = None
        self.answer: Any = None

    def double(self, value: int) -> Any:
        self.seen.append(value)
        self.threads.add(threading.get_ident())
        if self.fail is not None:
            raise self.fail
        return value * 2 if self.answer is None else self.answer

    def split(self, value: float) -> tuple[int, float]:
        return int(value), value - int(value)

    def lookup(self, *params: Any) -> Any:
        self.seen.append(list(params))
        if self.fail is not None:
            raise self.fail
        return {"params": list(params), "found": True} if self.answer is None else self.answer

    def functions(self) -> dict[str, dict[str, HostFunction]]:
        return {
            "app": {
                "double": HostFunction(self.double, params=["i64"], results=["i64"]),
                "split": HostFunction(self.split, params=["f64"], results=["i32", "f64"]),
                "lookup": HostFunction(self.lookup, shape="msgpack"),
            }
        }


@pytest.fixture
def host() -> Host:
    return Host()


@pytest.fixture
def loader(tmp_path: Path, host: Host) -> Iterator[Loader]:
    write_plugins(tmp_path, {"core.wat": CORE_GUEST, "mp.wat": MSGPACK_GUEST})
    with Loader(
        [tmp_path], environ={}, include_defaults=False, host_functions=host.functions()
    ) as loader:
        yield loader


def test_core_host_functions_take_and_give_numbers(loader: Loader, host: Host) -> None:
    core = loader.load("core")
    assert core.call("twice", 21) == 42
    assert core.call("twice", -(2**62)) == -(2**63)
    assert core.call("parts", 2.5) == [2, 0.5]
    assert host.seen == [21, -(2**62)]
    assert host.threads == {threading.get_ident()}  # the caller's thread runs the guest
    # What the embedder gave is provided; what it did not is a trapping import.
    assert core.describe()["trapping_imports"] == ["app::absent"]
    with pytest.raises(WasmdError) as caught:
        core.call("absent")
    assert caught.value.code == ErrorCode.TRAP
    assert "app::absent" in caught.value.message


def test_msgpack_host_functions_take_and_give_values(loader: Loader, host: Host) -> None:
    mp = loader.load("mp")
    assert mp.abi == "msgpack"
    assert mp.call("lookup", "key", 2, [True, None]) == {
        "params": ["key", 2, [True, None]],
        "found": True,
    }
    host.answer = b"\x00bytes"
    assert mp.call("lookup") == b"\x00bytes"
    assert host.seen == [["key", 2, [True, None]], []]


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (ValueError("no such thing"), "host function app.double raised ValueError: no such thing"),
        (KeyboardInterrupt(), "host function app.double raised KeyboardInterrupt: "),
    ],
    ids=["exception", "base-exception"],
)
def test_a_raised_exception_is_a_trap_naming_it(
    loader: Loader, host: Host, failure: BaseException, message: str
) -> None:
    core = loader.load("core")
    host.fail = failure
    with pytest.raises(WasmdError) as caught:
        core.call("twice", 1)
    assert (caught.value.code, caught.value.message) == (ErrorCode.TRAP, message)
    assert caught.value.data == {"kind": "abi_violation"}
    host.fail = None
    assert core.call("twice", 4) == 8  # a fresh instance, nothing left over
    assert core.call("plain") == 7


def test_a_raised_exception_in_a_msgpack_function_is_a_trap(loader: Loader, host: Host) -> None:
    mp = loader.load("mp")
    host.fail = KeyError("x")
    with pytest.raises(WasmdError) as caught:
        mp.call("lookup", "x")
    assert caught.value.message == "host function app.lookup raised KeyError: 'x'"
    host.fail = None
    host.answer = object()  # not a msgpack value
    with pytest.raises(WasmdError) as caught:
        mp.call("lookup", "x")
    assert caught.value.code == ErrorCode.TRAP
    assert caught.value.message.startswith(
        "host function app.lookup returned what msgpack cannot encode"
    )
    host.answer = None
    assert mp.call("lookup", 1) == {"params": [1], "found": True}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("7", 'host function app.double returned "7" for an i64 result'),
        (True, "host function app.double returned true for an i64 result"),
        (1.5, "host function app.double returned 1.5 for an i64 result"),
        (2**64, "host function app.double returned 18446744073709551616 for an i64 result"),
    ],
)
def test_a_result_of_the_wrong_type_is_a_trap(
    loader: Loader, host: Host, answer: Any, message: str
) -> None:
    core = loader.load("core")
    host.answer = answer
    with pytest.raises(WasmdError) as caught:
        core.call("twice", 1)
    assert (caught.value.code, caught.value.message) == (ErrorCode.TRAP, message)
    host.answer = 8.0  # an integral float is an integer, as for params
    assert core.call("twice", 1) == 8


def test_an_import_of_another_type_fails_the_load(tmp_path: Path, host: Host) -> None:
    write_plugins(
        tmp_path,
        {"odd.wat": '(module (import "app" "double" (func (param i32) (result i32))))'},
    )
    with Loader(
        [tmp_path], environ={}, include_defaults=False, host_functions=host.functions()
    ) as loader:
        with pytest.raises(PluginLoadError) as caught:
            loader.load("odd")
    assert "import app::double must be a function (i64) -> (i64)" in str(caught.value)


@pytest.mark.parametrize(
    "module", ["wasmd", "wasi_snapshot_preview1", "wasi:cli/environment", "extism:host/env"]
)
def test_wasmds_own_imports_cannot_be_shadowed(module: str) -> None:
    log = HostFunction(print, params=["i32", "i32", "i32"])
    with pytest.raises(ValueError, match=f"module '{module}' is linked by wasmd itself"):
        Loader(environ={}, include_defaults=False, host_functions={module: {"log": log}})


@pytest.mark.parametrize(
    ("functions", "fragment"),
    [
        ({"app": {"f": print}}, "must be a wasmd.HostFunction"),
        ({"app": {"f": HostFunction(print, params=["i8"])}}, "'i8' is not one of"),
        ({"app": {"f": HostFunction(print, shape="json")}}, "shape must be 'core' or 'msgpack'"),
        (
            {"app": {"f": HostFunction(print, params=["i32"], shape="msgpack")}},
            "a msgpack host function declares no params or results",
        ),
        ({"app": {"f": HostFunction(42)}}, "func is not callable"),  # type: ignore[arg-type]
        ({"": {}}, "a module name must be a non-empty string"),
    ],
)
def test_declarations_are_checked_when_the_loader_is_made(
    functions: dict[str, dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        Loader(environ={}, include_defaults=False, host_functions=functions)
