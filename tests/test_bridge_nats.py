"""`wasmd bridge nats` against a real nats-server and real daemons, each its own process.

Loopback addresses and sockets in the test's folder only; every process is reaped pass or
fail (tests/servers.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgpack
import nats
import nats.errors
import nkeys
import pytest
from nats.aio.client import Client as NatsClient

from wasmd.bridge.expose import TIMEOUT_HEADER

from .nspawn import wait_until
from .servers import bridge_command, bridge_process, daemon_process, nats_server
from .wat_abi import MSGPACK_GUEST

pytestmark = pytest.mark.system


def who(n: int) -> dict[str, str]:
    """A plug-in `who` whose `id` answers which daemon serves it, and one that spins."""
    return {
        "who.wat": f'(module (func (export "id") (result i32) (i32.const {n})))',
        "spin.wat": '(module (func (export "forever") (loop (br 0))))',
        "spin.toml": "[plugin]\ntimeout_ms = 60000\n",
        "hidden.wat": '(module (func (export "id") (result i32) (i32.const 99)))',
    }


@asynccontextmanager
async def nats_client(url: str, **options: Any) -> AsyncIterator[NatsClient]:
    nc = await nats.connect(url, allow_reconnect=False, **options)
    try:
        yield nc
    finally:
        await nc.close()


async def call(nc: NatsClient, method: str, *params: Any) -> list[Any]:
    """One request through NATS: the reply's [error, result]."""
    reply = await nc.request(f"wasmd.call.{method}", msgpack.packb(list(params)), timeout=10)
    answer = msgpack.unpackb(reply.data)
    assert isinstance(answer, list)
    return answer


async def spread(nc: NatsClient, n: int) -> Counter[int]:
    """Which daemon answered each of ``n`` requests for who.id (errors fail the test)."""
    answers: Counter[int] = Counter()
    for _ in range(n):
        error, result = await call(nc, "who.id")
        assert error is None
        answers[result] += 1
    return answers


async def test_requests_spread_over_hosts_and_a_dead_daemons_bridge_leaves(
    short_tmp: Path,
) -> None:
    """Two daemons, a bridge each, one nats-server: requests go to both; once one daemon is
    killed its bridge leaves the queue group and every request is answered by the other; when
    it is back, its bridge joins again."""
    subject = "wasmd.call.who.>"
    with (
        nats_server(short_tmp / "nats") as server,
        daemon_process(short_tmp / "a", who(1)) as a,
        daemon_process(short_tmp / "b", who(2)) as b,
        bridge_process(
            short_tmp / "ba", server.url, a.socket, "--expose", "who", "--host", "a"
        ) as bridge_a,
        bridge_process(short_tmp / "bb", server.url, b.socket, "--expose", "who", "--host", "b"),
    ):
        assert server.subscriptions(subject) == 2
        async with nats_client(server.url) as nc:
            # Random queue-group routing: all of 40 on one host has probability 2**-39.
            first = await spread(nc, 40)
            assert set(first) == {1, 2}, first

            a.process.kill()
            a.process.wait(timeout=30)
            bridge_a.wait_for_log("is unreachable")
            wait_until("bridge a to leave", lambda: server.subscriptions(subject) == 1 or None, 10)
            assert await spread(nc, 40) == Counter({2: 40})

            with daemon_process(short_tmp / "a", who(1)):
                bridge_a.wait_for_log("joined queue group", count=2)
                assert server.subscriptions(subject) == 2
                assert set(await spread(nc, 40)) == {1, 2}


async def test_errors_allow_list_and_payloads(short_tmp: Path) -> None:
    """method_not_found for a missing export, the allow-list holds (no responder for an
    unexposed plug-in), a payload that is not an array is invalid_request."""
    with (
        nats_server(short_tmp / "nats") as server,
        daemon_process(short_tmp / "a", who(1)) as a,
        bridge_process(
            short_tmp / "ba", server.url, a.socket, "--expose", "who", "--expose", "spin.nothing"
        ),
    ):
        async with nats_client(server.url) as nc:
            assert await call(nc, "who.id") == [None, 1]
            error, result = await call(nc, "who.missing")
            assert error[0] == 2
            assert result is None
            error, _ = await call(nc, "spin.nothing")
            assert error[0] == 2
            with pytest.raises(nats.errors.NoRespondersError):
                await call(nc, "hidden.id")  # not exposed: no bridge subscribes to it
            with pytest.raises(nats.errors.NoRespondersError):
                await call(nc, "wasmd.ping")
            reply = await nc.request("wasmd.call.who.id", msgpack.packb({"a": 1}), timeout=10)
            error, _ = msgpack.unpackb(reply.data)
            assert error[0] == 1
            assert "array" in error[1]
            reply = await nc.request("wasmd.call.who.id", b"", timeout=10)
            assert msgpack.unpackb(reply.data) == [None, 1]  # an empty payload is []


async def test_nothing_is_exposed_by_default(short_tmp: Path) -> None:
    with (
        nats_server(short_tmp / "nats") as server,
        daemon_process(short_tmp / "a", who(1)) as a,
        bridge_process(short_tmp / "ba", server.url, a.socket) as bridge,
    ):
        assert "EXPOSING NOTHING" in bridge.log.read_text()
        async with nats_client(server.url) as nc:
            with pytest.raises(nats.errors.NoRespondersError):
                await call(nc, "who.id")


async def _cancelled_events(nc: NatsClient) -> Any:
    return await nc.subscribe("wasmd.events.a.plugin.cancelled")


async def test_a_caller_who_gave_up_is_cancelled_in_the_daemon(short_tmp: Path) -> None:
    """A spinning call is cancelled (plug-in event plugin.cancelled, republished on
    wasmd.events.HOST.TYPE) when its Wasmd-Timeout-Ms passes, and when its caller's
    connection is gone."""
    with (
        nats_server(short_tmp / "nats") as server,
        daemon_process(short_tmp / "a", who(1)) as a,
        bridge_process(short_tmp / "ba", server.url, a.socket, "--expose", "spin", "--host", "a"),
    ):
        async with nats_client(server.url) as watcher:
            events = await _cancelled_events(watcher)
            async with nats_client(server.url) as caller:
                with pytest.raises(nats.errors.TimeoutError):
                    await caller.request(
                        "wasmd.call.spin.forever",
                        msgpack.packb([]),
                        timeout=1,
                        headers={TIMEOUT_HEADER: "200"},
                    )
                event = msgpack.unpackb((await events.next_msg(timeout=20)).data)
                assert event["type"] == "plugin.cancelled"
                assert event["plugin"] == "spin"

                # No header: the caller gives up and goes away; the bridge's probe notices.
                with pytest.raises(nats.errors.TimeoutError):
                    await caller.request("wasmd.call.spin.forever", b"", timeout=0.5)
            event = msgpack.unpackb((await events.next_msg(timeout=20)).data)
            assert event["type"] == "plugin.cancelled"


def _nkey_user() -> tuple[str, str]:
    seed = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key
    return seed.decode(), public.decode()


@pytest.mark.parametrize("kind", ["user", "token", "nkey"])
async def test_nats_authentication(short_tmp: Path, kind: str) -> None:
    """The bridge authenticates with user and password, a token, or an NKEY (from files)."""
    secret = short_tmp / "secret"
    if kind == "user":
        server_flags = ["--user", "bridge", "--pass", "s3cret"]
        secret.write_text("s3cret\n")
        flags = ["--user", "bridge", "--password-file", str(secret)]
        client: dict[str, Any] = {"user": "bridge", "password": "s3cret"}
    elif kind == "token":
        server_flags = ["--auth", "t0ken"]
        secret.write_text("t0ken\n")
        flags = ["--token-file", str(secret)]
        client = {"token": "t0ken"}
    else:
        seed, public = _nkey_user()
        conf = short_tmp / "nats.conf"
        conf.write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
        server_flags = ["-c", str(conf)]
        secret.write_text(seed + "\n")
        flags = ["--nkey-seed-file", str(secret)]
        client = {"nkeys_seed_str": seed}
    with (
        nats_server(short_tmp / "nats", *server_flags) as server,
        daemon_process(short_tmp / "a", who(1)) as a,
    ):
        # Without credentials the bridge cannot start, and says why (exit 3).
        refused = await anyio.run_process(
            bridge_command(server.url, a.socket, "--expose", "who"), check=False
        )
        assert refused.returncode == 3, refused.stderr
        assert b"cannot bridge to NATS" in refused.stderr
        with bridge_process(
            short_tmp / "ba", server.url, a.socket, "--expose", "who", *flags
        ) as bridge:
            async with nats_client(server.url, **client) as nc:
                assert await call(nc, "who.id") == [None, 1]
            assert bridge.stop() == 0


async def test_a_bridge_started_before_its_daemon_joins_when_it_answers(short_tmp: Path) -> None:
    with nats_server(short_tmp / "nats") as server:
        sock = short_tmp / "a" / "wasmd.sock"
        with bridge_process(
            short_tmp / "ba", server.url, sock, "--expose", "who", joined=False
        ) as bridge:
            bridge.wait_for_log("is unreachable")
            assert server.subscriptions("wasmd.call.who.>") == 0
            with daemon_process(short_tmp / "a", who(1)):
                bridge.wait_for_log("joined queue group")
                async with nats_client(server.url) as nc:
                    assert await call(nc, "who.id") == [None, 1]


async def test_payload_limits_match_the_daemons_and_nats(short_tmp: Path) -> None:
    """A request over the daemon's max_message_size is refused before it reaches the socket;
    an answer over the NATS server's max_payload becomes resource_exhausted."""
    conf = short_tmp / "nats.conf"
    conf.write_text("max_payload: 4096\n")
    small, large = short_tmp / "small.toml", short_tmp / "large.toml"
    small.write_text('max_message_size = "3 KiB"\n')
    large.write_text('max_message_size = "16 KiB"\n')
    with (
        nats_server(short_tmp / "nats", "-c", str(conf)) as server,
        daemon_process(short_tmp / "a", {"echo.wat": MSGPACK_GUEST}) as a,
    ):
        args = (server.url, a.socket, "--expose", "echo", "--config")
        with bridge_process(short_tmp / "b1", *args, str(small)) as bridge:
            assert "is below" not in bridge.log.read_text()
            async with nats_client(server.url) as nc:
                assert await call(nc, "echo.echo", b"x" * 100) == [None, [b"x" * 100]]
                error, _ = await call(nc, "echo.echo", b"x" * 3100)  # 3,104 bytes: > 3 KiB
                assert error[0] == 1
                assert "max_message_size" in error[1]
            assert bridge.stop() == 0
        with bridge_process(short_tmp / "b2", *args, str(large)) as bridge:
            assert "max_payload (4096 bytes) is below" in bridge.log.read_text()
            async with nats_client(server.url) as nc:
                payload = msgpack.packb([b"x" * 4092])
                assert len(payload) == 4096  # NATS's limit exactly; the answer is 2 bytes more
                reply = await nc.request("wasmd.call.echo.echo", payload, timeout=10)
                error, result = msgpack.unpackb(reply.data)
                assert result is None
                assert error[0] == 6
                assert "over the NATS server's max_payload (4096)" in error[1]
