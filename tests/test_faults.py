"""Client faults and live fuzzing against a daemon in its own process, so that its file
descriptors and memory can be measured: nothing a client does may hurt other clients or leak."""

from __future__ import annotations

import socket
from pathlib import Path

import msgpack
import pytest

from wasmd import ErrorCode, SyncClient, WasmdError

from .conftest import write_plugins
from .fuzz.live import FD_GROWTH_BOUND, run, spawned_daemon, usage
from .processes import copy_bundled_examples, until
from .soak import soak
from .wat_abi import MSGPACK_GUEST


def test_live_fuzz_subset() -> None:
    report = run(frames=4000, connections=25, seed=7)
    assert report.pings == 8
    assert report.within_bounds, report


@pytest.mark.slow  # over 2 s alone (pytest --durations)
def test_2000_connections_hurt_nobody_and_leak_nothing(short_tmp: Path) -> None:
    with spawned_daemon(copy_bundled_examples(short_tmp / "plugins.d")) as (daemon, sock):
        with SyncClient(sock, timeout=30) as bystander:
            bystander.call("math.add", 1, 1)
            fds_before, _ = usage(daemon.pid)
            peers = []
            for _ in range(2000):
                peer = socket.socket(socket.AF_UNIX)
                peer.connect(str(sock))
                peers.append(peer)
            # The daemon keeps answering its existing client throughout.
            assert bystander.call("math.add", 2, 3) == 5
            stats = bystander.call("wasmd.stats")["daemon"]
            assert stats["connections"] <= 1024  # max_connections
            # Past the limit, connections are told why and closed.
            refused = peers[-1]
            refused.settimeout(10)
            note = msgpack.unpackb(refused.recv(4096))
            assert note[0] == 2
            assert note[1] == "wasmd.error"
            assert note[2][0][0] == ErrorCode.BUSY
            for peer in peers:
                peer.close()
            until(
                lambda: bystander.call("wasmd.stats")["daemon"]["connections"] == 1,
                what="the daemon closing the other connections",
            )
            fds_after, _ = usage(daemon.pid)
            assert fds_after - fds_before <= FD_GROWTH_BOUND
            assert bystander.call("math.add", 3, 4) == 7


def test_client_that_never_reads_its_responses(short_tmp: Path) -> None:
    write_plugins(short_tmp / "plugins.d", {"mp.wat": MSGPACK_GUEST})
    with spawned_daemon(short_tmp / "plugins.d") as (daemon, sock):
        with SyncClient(sock, timeout=30) as bystander:
            _, rss_before = usage(daemon.pid)
            deaf = socket.socket(socket.AF_UNIX)
            deaf.connect(str(sock))
            deaf.setblocking(False)
            payload = b"\x00" * 500_000
            request = msgpack.packb([0, 1, "mp.echo", [payload]], use_bin_type=True)
            sent = 0
            try:  # until the daemon stops reading: backpressure instead of buffering forever
                for _ in range(1000):
                    deaf.send(request)
                    sent += 1
            except BlockingIOError:
                pass
            assert 0 < sent < 1000
            for index in range(20):
                assert bystander.call("mp.echo", index) == [index]
            _, rss_during = usage(daemon.pid)
            # What waits for the deaf client is bounded: the outbox high water (4 MiB) and the
            # socket buffers, not 500 KiB times every request it sent.
            assert rss_during - rss_before < 64 * 1024 * 1024
            deaf.close()
            until(
                lambda: bystander.call("wasmd.stats")["daemon"]["connections"] == 1,
                what="the daemon closing the other connections",
            )
            with pytest.raises(WasmdError) as caught:
                bystander.call("nope.nope")
            assert caught.value.code == ErrorCode.METHOD_NOT_FOUND


# slow: 4.3 s measured (a soak, by design)
@pytest.mark.slow
def test_soak_for_a_few_seconds() -> None:
    report = soak(4)
    assert report["unexpected_failures"] == 0, report["first_failures"]
    assert report["reloads"] >= 3
    assert report["calls"] > 100
    assert report["hostile_calls"] > 10
    assert report["fds"][1] - report["fds"][0] <= FD_GROWTH_BOUND
