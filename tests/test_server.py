"""The server's rooms on their own, with a dispatch of the test's: admission, the hand-off
watcher, and threads that cannot start. Real Unix sockets; no plug-ins, no daemon."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgpack
import pytest

from wasmd import ErrorCode
from wasmd.calls import Respond, Ticket
from wasmd.connection import ClientConnection
from wasmd.handoff import HandoffWatcher
from wasmd.protocol import NEED_DATA, Connection, Notification, Response
from wasmd.server import RpcServer, ServerLimits, Session


class Gate:
    """A dispatch: ``p.wait`` blocks until the test opens the gate; the rest answer at once."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()

    def __call__(
        self, session: Session, method: str, params: list[Any], ticket: Ticket, respond: Respond
    ) -> None:
        if method == "p.wait":
            self.entered.set()
            if not self.open.wait(20):
                raise AssertionError("the gate was never opened")
        respond(None, method)


@asynccontextmanager
async def serving(
    root: Path, dispatch: Any, limits: ServerLimits | None = None
) -> AsyncIterator[tuple[RpcServer, Path]]:
    path = root / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    server = RpcServer(
        dispatch,
        limits=limits or ServerLimits(),
        allow_uids=frozenset(),
        allow_gids=frozenset(),
        is_control=lambda method: method.startswith("wasmd."),
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, listener)
            yield server, path
            tg.cancel_scope.cancel()
    finally:
        listener.close()


def request(msgid: int, method: str) -> bytes:
    return bytes(msgpack.packb([0, msgid, method, []]))


async def next_message(sock: socket.socket, protocol: Connection) -> Response | Notification:
    while True:
        event = protocol.next_event()
        if event is NEED_DATA:
            await anyio.wait_readable(sock)
            protocol.receive_data(sock.recv(65536))
        elif isinstance(event, Response | Notification):
            return event
        else:
            raise AssertionError(f"unexpected {event!r}")


@contextmanager
def connected(path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def threads_cannot_start() -> Iterator[None]:
    """As when the process is out of threads: ``RuntimeError: can't start new thread``."""
    original = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if (self.name or "").startswith("wasmd:"):
            raise RuntimeError("can't start new thread")
        original(self)

    threading.Thread.start = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]


async def test_a_connection_without_a_reader_thread_is_refused_and_the_server_goes_on(
    short_tmp: Path,
) -> None:
    async with serving(short_tmp, Gate()) as (server, path):
        with threads_cannot_start(), connected(path) as refused:
            with anyio.fail_after(10):
                notice = await next_message(refused, Connection())
        assert isinstance(notice, Notification)
        assert notice.method == "wasmd.error"
        assert notice.params[0][0] == ErrorCode.RESOURCE_EXHAUSTED
        with connected(path) as sock:
            sock.send(request(1, "wasmd.ping"))
            with anyio.fail_after(10):
                answer = await next_message(sock, Connection())
        assert answer == Response(1, None, "wasmd.ping")
        assert server.counters.refused == 1


async def test_a_hand_off_that_cannot_start_a_thread_is_tried_again(short_tmp: Path) -> None:
    gate = Gate()
    async with serving(short_tmp, gate) as (server, path):
        with connected(path) as sock:
            protocol = Connection()
            sock.send(request(0, "wasmd.ping"))  # the connection has its reader
            with anyio.fail_after(10):
                assert await next_message(sock, protocol) == Response(0, None, "wasmd.ping")
            with threads_cannot_start():
                sock.send(request(1, "p.wait") + request(2, "wasmd.ping"))
                await anyio.to_thread.run_sync(gate.entered.wait, 10)
                # The watcher tries to hand the reading on and cannot; it survives that.
                with anyio.move_on_after(0.1):
                    await anyio.wait_readable(sock)
            # Threads start again: the next scan hands off, and the ping is answered while
            # the first request still waits.
            with anyio.fail_after(10):
                ping = await next_message(sock, protocol)
            assert ping == Response(2, None, "wasmd.ping")
            assert not gate.open.is_set()
            gate.open.set()
            with anyio.fail_after(10):
                first = await next_message(sock, protocol)
            assert first == Response(1, None, "p.wait")
        assert server.watcher._thread is not None
        assert server.watcher._thread.is_alive()


async def test_refusals_at_the_connection_limit_do_not_look_at_every_connection(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks = 0
    original: Callable[[ClientConnection], bool] = ClientConnection.peer_hung_up

    def counting(self: ClientConnection) -> bool:
        nonlocal looks
        looks += 1
        return original(self)

    monkeypatch.setattr(ClientConnection, "peer_hung_up", counting)
    limits = ServerLimits(max_connections=4)
    async with serving(short_tmp, Gate(), limits) as (_, path):
        with connected(path) as a, connected(path) as b, connected(path) as c, connected(path):
            for sock in (a, b, c):
                sock.send(request(1, "wasmd.ping"))
                with anyio.fail_after(10):
                    await next_message(sock, Connection())
            looks = 0
            for _ in range(40):
                with connected(path) as refused, anyio.fail_after(10):
                    notice = await next_message(refused, Connection())
                assert isinstance(notice, Notification)
                assert notice.params[0][0] == ErrorCode.BUSY
            # One poll of every socket at once per refusal; a look at each connection per
            # refusal was 160 looks.
            assert looks == 0
            # And the count is fresh: a peer that hangs up frees its place for the very next
            # connect, before its connection is reaped (a count cached for 20 ms refused it).
            a.close()
            with connected(path) as again, anyio.fail_after(10):
                again.send(request(2, "wasmd.ping"))
                answer = await next_message(again, Connection())
            assert answer == Response(2, None, "wasmd.ping")  # admitted and answered


def test_the_watcher_survives_a_connection_whose_hand_off_fails() -> None:
    class Broken:
        def hand_off(self, now: float, budget: float) -> bool:
            raise ValueError("a bug in one connection")

    class Counting:
        def __init__(self) -> None:
            self.scans = 0
            self.done = threading.Event()

        def hand_off(self, now: float, budget: float) -> bool:
            self.scans += 1
            if self.scans >= 5:
                self.done.set()
            return True

    watcher = HandoffWatcher(budget=0.001, period=0.001)
    watcher.start()
    try:
        broken, counting = Broken(), Counting()
        watcher.enter(broken)
        watcher.enter(counting)
        assert counting.done.wait(10)
        watcher.leave(broken)
        watcher.leave(counting)
    finally:
        watcher.stop()


async def test_serving_changes_no_interpreter_wide_setting(short_tmp: Path) -> None:
    import sys

    stack, interval = threading.stack_size(), sys.getswitchinterval()
    async with serving(short_tmp, Gate()) as (_, path):
        with connected(path) as sock:
            sock.send(request(1, "wasmd.ping"))
            with anyio.fail_after(10):
                await next_message(sock, Connection())
    assert (threading.stack_size(), sys.getswitchinterval()) == (stack, interval)


def test_the_network_layer_loads_no_runtime() -> None:
    # A fresh interpreter: the test process has loaded wasmtime long ago.
    import subprocess
    import sys

    code = (
        "import sys, wasmd.server, wasmd.connection, wasmd.session, wasmd.handoff\n"
        "runtime = ('wasmtime', 'wasmd.runtime')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(runtime))\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_stop_fits_inside_the_units_stop_timeout_with_margin() -> None:
    from wasmd.config import DaemonConfig
    from wasmd.daemon import stop_budget

    unit = (Path(__file__).resolve().parent.parent / "systemd" / "wasmd.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("TimeoutStopSec=")]
    timeout = float(line.removeprefix("TimeoutStopSec=").removesuffix("s"))
    assert stop_budget(DaemonConfig()) + 5 <= timeout


async def test_unfinished_messages_are_charged_what_the_decoder_may_hold(
    short_tmp: Path,
) -> None:
    """msgpack's decoder grows its buffer by doubling: 255 MiB held of unfinished messages was
    516 MiB of memory. ``max_buffered`` charges the memory, so two halves of the limit, each
    held as half a message, no longer fit (issue 22, item 10)."""
    part = b"\x94\x00\x01\xa9arith.add\x91\xc6" + (15 * 2**20).to_bytes(4, "big")
    part += b"x" * (300 * 1024)
    limits = ServerLimits(max_buffered=1024 * 1024)
    async with serving(short_tmp, Gate(), limits) as (server, path):
        with connected(path) as first, connected(path) as second:
            first.settimeout(10)
            second.settimeout(10)
            # Off the loop: the server accepts and reads on this very loop.
            await anyio.to_thread.run_sync(first.sendall, part)
            with anyio.fail_after(10):
                # Until the reader took it all: a counter that no event announces.
                while server.buffered_bytes < 2 * len(part):  # noqa: ASYNC110
                    await anyio.sleep(0.001)
            assert server.buffered_bytes == 2 * len(part)
            with contextlib.suppress(OSError):  # the server may close it while it sends
                await anyio.to_thread.run_sync(second.sendall, part)  # 2 x 2 x 300 KiB > 1 MiB
            with anyio.fail_after(10):
                notice = await next_message(second, Connection())
            assert isinstance(notice, Notification)
            assert "bytes of unfinished messages" in notice.params[0][1]
            assert server.buffered_bytes == 2 * len(part)  # the first is still held
