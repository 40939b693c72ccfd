"""Streaming calls in this process (``Plugin.stream``): the guest's ``send`` and ``recv``
through the real runtime, without a socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_plugins
from tests.wat_stream import EXTISM_STREAMER, STREAMER
from wasmd import ErrorCode, Loader, WasmdError
from wasmd.runtime import fastcall
from wasmd.streams import MAX_PUSHES

pytestmark = pytest.mark.usefixtures("call_path")

needs_guard = pytest.mark.skipif(
    not fastcall.ENABLED, reason="interrupting a running call needs the epoch-deadline callback"
)


@pytest.fixture
def loader(tmp_path: Path) -> Iterator[Loader]:
    write_plugins(
        tmp_path,
        {
            "streamer.wat": STREAMER,
            "streamer.toml": "[plugin]\ntimeout_ms = 300\n",
        },
    )
    with Loader([tmp_path], include_defaults=False) as loader:
        yield loader


def test_chunks_arrive_in_order_then_the_result(loader: Loader) -> None:
    stream = loader.load("streamer").stream("count", 5, window=2)
    assert list(stream) == [0, 1, 2, 3, 4]
    assert stream.result == 5


def test_a_plain_call_of_a_streaming_export_drops_the_values(loader: Loader) -> None:
    # send answers -1 (not a stream): the guest counts no value sent.
    assert loader.load("streamer").call("count", 3) == 0
    assert loader.load("streamer").call("echo") == 0  # recv: the end at once


def test_pushed_values_reach_recv_in_order(loader: Loader) -> None:
    with loader.load("streamer").stream("echo") as stream:
        for value in (1, "two", [3, {"four": b"4"}]):
            stream.push(value)
        stream.push_end()
        assert list(stream) == [1, "two", [3, {"four": b"4"}]]
        assert stream.result == 3


def test_a_value_over_cap_stays_queued(loader: Loader) -> None:
    with loader.load("streamer").stream("sizes", 1) as stream:
        stream.push("hello")
        stream.push_end()
        assert list(stream) == ["hello"]  # read again with room for it
        assert stream.result == -2


def test_waiting_for_credit_past_the_deadline_is_a_timeout(loader: Loader) -> None:
    stream = loader.load("streamer").stream("count", 100, window=1)
    assert next(stream) == 0  # its credit lets chunk 1 out; chunk 2 waits for more
    stream._thread.join(5)  # the 300 ms deadline ends the wait
    assert not stream._thread.is_alive()
    assert next(stream) == 1
    with pytest.raises(WasmdError) as caught:
        next(stream)
    assert caught.value.code == ErrorCode.TIMEOUT


def test_closing_cancels_a_guest_waiting_for_credit(loader: Loader) -> None:
    stream = loader.load("streamer").stream("count", 100, window=1)
    assert next(stream) == 0
    stream.close(timeout=5)
    assert not stream._thread.is_alive()


@needs_guard
def test_closing_cancels_a_running_guest(loader: Loader) -> None:
    plugin = loader.load("streamer")
    stream = plugin.stream("spin")
    assert next(stream) == 0
    stream.close(timeout=5)
    assert not stream._thread.is_alive()
    assert plugin.call("count", 1) == 0  # a fresh instance serves the next call


@pytest.mark.parametrize(
    ("export", "fragment"),
    [
        ("bad", "not one msgpack value"),
        ("two", "not one msgpack value"),
        ("huge", "over the limit"),
        ("recv_out", "outside the guest's memory"),
    ],
)
def test_misused_imports_are_abi_violations(loader: Loader, export: str, fragment: str) -> None:
    for run in (
        lambda: loader.load("streamer").call(export),
        lambda: list(loader.load("streamer").stream(export)),
    ):
        with pytest.raises(WasmdError) as caught:
            run()
        assert caught.value.code == ErrorCode.TRAP
        assert caught.value.data == {"kind": "abi_violation"}
        assert fragment in caught.value.message


def test_a_push_over_the_bound_ends_the_call_busy(loader: Loader) -> None:
    stream = loader.load("streamer").stream("count", 100, window=1)  # it never reads pushes
    for _ in range(MAX_PUSHES):
        stream.push(b"x" * 8)
    with pytest.raises(WasmdError) as caught:
        stream.push(b"x" * 8)
    assert caught.value.code == ErrorCode.BUSY
    with pytest.raises(WasmdError) as ended:
        list(stream)
    assert ended.value.code == ErrorCode.BUSY
    assert "push refused" in ended.value.message


def test_describe_and_check_mark_a_streamer(loader: Loader, tmp_path: Path) -> None:
    from wasmd.plugins.check import check_lines, check_plugin

    description = loader.load("streamer").describe()
    assert description["streams"] == ["recv", "send"]
    assert all(export["streams"] for export in description["exports"])
    report = check_plugin(tmp_path / "streamer.wat")
    assert any("streams: imports recv and send" in line for line in check_lines(report))
    write_plugins(tmp_path, {"plain.wat": '(module (func (export "f")))'})
    plain = loader.load("plain").describe()
    assert plain["streams"] == []
    assert not plain["exports"][0]["streams"]


STREAMER_COMPONENT = (Path(__file__).parent / "components" / "streamer.component.wat").read_text()


def test_a_component_streams_through_wasmd_host_stream(tmp_path: Path) -> None:
    write_plugins(tmp_path / "c", {"cstream.wat": STREAMER_COMPONENT})
    with Loader([tmp_path / "c"], include_defaults=False) as loader:
        plugin = loader.load("cstream")
        stream = plugin.stream("count", 5, window=2)
        assert list(stream) == [0, 1, 2, 3, 4]
        assert stream.result == 5
        assert plugin.call("count", 3) == 0  # send answers err: not a stream
        with plugin.stream("echo") as echo:
            echo.push("a")
            echo.push([1, {"b": None}])
            echo.push_end()
            assert list(echo) == ["a", [1, {"b": None}]]
        assert echo.result == 2
        assert plugin.describe()["streams"] == ["recv", "send"]
        assert plugin.describe()["trapping_imports"] == []


def test_an_extism_plugin_streams_and_its_output_is_the_result(tmp_path: Path) -> None:
    write_plugins(tmp_path / "x", {"ext.wat": EXTISM_STREAMER})
    with Loader([tmp_path / "x"], include_defaults=False) as loader:
        plugin = loader.load("ext")
        assert plugin.abi == "extism"
        stream = plugin.stream("split", "abc")
        assert list(stream) == [b"a", b"b", b"c"]
        assert stream.result == b"abc"
        assert plugin.call("split", "xy") == b"xy"  # a plain call: the output alone
        assert plugin.describe()["streams"] == ["send"]


NO_MEMORY_SENDER = """(module
  (import "wasmd" "send" (func $send (param i32 i32) (result i32)))
  (func (export "f") (result i32) (call $send (i32.const 0) (i32.const 1)))
)"""


def test_send_from_a_module_without_memory_is_an_abi_violation(tmp_path: Path) -> None:
    write_plugins(tmp_path / "n", {"nomem.wat": NO_MEMORY_SENDER})
    with Loader([tmp_path / "n"], include_defaults=False) as loader:
        with pytest.raises(WasmdError) as caught:
            list(loader.load("nomem").stream("f"))
        assert caught.value.data == {"kind": "abi_violation"}
        assert "host import wasmd.send was misused: the module exports no memory" in str(
            caught.value.message
        )


def test_an_iterator_dropped_half_read_cancels_its_call(tmp_path: Path) -> None:
    import gc

    write_plugins(
        tmp_path / "l", {"slow.wat": STREAMER, "slow.toml": "[plugin]\ntimeout_ms = 60000\n"}
    )
    with Loader([tmp_path / "l"], include_defaults=False) as loader:
        stream = loader.load("slow").stream("count", 100, window=1)
        assert next(stream) == 0  # the guest now waits for credit, for up to a minute
        thread = stream._thread
        del stream
        gc.collect()
        thread.join(10)
        assert not thread.is_alive()
