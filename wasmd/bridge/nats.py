"""``wasmd bridge nats``: remote callers reach the local daemon through NATS queue groups.

Theory of operation. The bridge holds one connection to NATS (nats-py) and one to the daemon
(``wasmd.client``: an ordinary client, so plug-ins' ``[access]`` sees the bridge's uid). While
the daemon answers, the bridge subscribes to the subjects its allow-list names
(``expose.Exposure.subjects``), all in one queue group, so NATS hands each request to one
bridge among every host's. Each request becomes one pipelined call on the daemon connection
(at most ``max_in_flight`` at a time; past ``max_waiting`` more, ``busy``); the reply is
``[error, result]``.

Failover. The daemon connection failing (the daemon died or stopped) is seen at once: the
client's event stream ends. The bridge then drains its subscriptions (an UNSUB, then a round
trip, so every request NATS sent before it is in hand) and leaves the queue group until it can
connect again (every ``retry_interval``): NATS routes no request to a host without a daemon.
Requests it holds that never reached the daemon are handed back to the queue group once (the
header ``Wasmd-Forwarded-By`` marks them), so another host answers; calls that were running
in the dying daemon are answered ``unavailable`` (8): they may or may not have run.

Cancellation. A call ends early, with ``wasmd.cancel`` sent to the daemon (the client does
that when its call is cancelled) and no reply, when its caller gave up: the request's
``Wasmd-Timeout-Ms`` passed, or, for the official clients' reply subjects, the caller's
connection is gone (``expose.probe_subject``: checked every ``probe_interval`` for calls
running longer than that).

Events from the daemon are republished on ``wasmd.events.HOST.TYPE`` (MessagePack maps): the
daemon's own, and those of exposed plug-ins only.
"""

from __future__ import annotations

import itertools
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import msgpack
import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..client import Client, open_client
from ..errors import ErrorCode, WasmdError
from .expose import (
    DEFAULT_QUEUE,
    FORWARDED_HEADER,
    Exposure,
    decode_params,
    encode_reply,
    event_subject,
    method_of,
    probe_subject,
    timeout_of,
)

log = logging.getLogger("wasmd.bridge")
# Attempts per server when the bridge starts: NATS down or refusing it ends the process (exit
# 3, and systemd's Restart= tries later) instead of waiting silently.
INITIAL_ATTEMPTS = 2


@dataclass(frozen=True)
class NatsAuth:
    """How the bridge authenticates to NATS (at most one of the three kinds)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkey_seed_file: Path | None = None  # needs the `nkeys` package (the bridge extra)
    creds_file: Path | None = None  # a decentralized-auth .creds file (JWT and NKEY seed)

    def options(self) -> dict[str, Any]:
        """nats-py's ``connect`` keyword arguments."""
        options: dict[str, Any] = {}
        if self.user is not None:
            options["user"] = self.user
            options["password"] = self.password or ""
        if self.token is not None:
            options["token"] = self.token
        if self.nkey_seed_file is not None:
            options["nkeys_seed"] = str(self.nkey_seed_file)
        if self.creds_file is not None:
            options["user_credentials"] = str(self.creds_file)
        return options

    @property
    def kind(self) -> str:
        if self.creds_file is not None:
            return "credentials file"
        if self.nkey_seed_file is not None:
            return "nkey"
        if self.token is not None:
            return "token"
        if self.user is not None:
            return "user and password"
        return "none"


@dataclass(frozen=True)
class BridgeSettings:
    servers: tuple[str, ...]
    socket: Path
    exposure: Exposure
    host: str  # one subject token (expose.host_token)
    max_message_size: int  # the daemon's: larger requests are refused before they are sent
    queue: str = DEFAULT_QUEUE
    auth: NatsAuth = field(default_factory=NatsAuth)
    max_in_flight: int = 128  # calls at once on the daemon connection
    max_waiting: int = 1024  # requests waiting for one of those; past it, busy (7)
    retry_interval: float = 0.5  # between attempts to reach an unreachable daemon
    probe_interval: float = 1.0  # how often long calls check that their caller still listens


@dataclass
class _Call:
    probe: str | None
    scope: anyio.CancelScope
    started: float
    caller_gone: bool = False


class NatsBridge:
    """One bridge: create with ``connect_nats``'s connection, then ``run``."""

    def __init__(self, settings: BridgeSettings, nc: NatsClient) -> None:
        self.settings = settings
        self.nc = nc
        self._client: Client | None = None
        self._subscriptions: list[Subscription] = []
        self._left = anyio.Event()
        self._left.set()
        self._slots = anyio.Semaphore(settings.max_in_flight)
        self._waiting = 0
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count()
        self._tg: anyio.abc.TaskGroup | None = None
        self._active = 0  # requests in hand, from arrival to reply
        self._idle = anyio.Event()
        self._idle.set()
        self._stopped = anyio.Event()
        self.joined = 0  # how often the bridge joined the queue group (tests, logs)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        s = self.settings
        if s.exposure.empty:
            log.warning(
                "EXPOSING NOTHING: no plug-in is reachable over NATS until it is listed with "
                "--expose PLUGIN or --expose PLUGIN.EXPORT (--expose '*' for every plug-in)"
            )
        else:
            log.info("exposing over NATS: %s", s.exposure.describe())
        if self.nc.max_payload < s.max_message_size:
            log.info(
                "the NATS server's max_payload (%d bytes) is below the daemon's "
                "max_message_size (%d): larger requests are refused by NATS and larger results "
                "are answered resource_exhausted; raise max_payload in the NATS server's config "
                "to match",
                self.nc.max_payload,
                s.max_message_size,
            )
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._probe_callers)
            task_status.started()
            await self._follow_daemon()

    async def _follow_daemon(self) -> None:
        """Join the queue group while the daemon answers, leave it while it does not."""
        reported: str | None = None
        while True:
            reason = "its connection closed"
            try:
                async with open_client(self.settings.socket) as client:
                    await client.subscribe()  # also the sign of the connection's end
                    self._client = client
                    if self._stopped.is_set():
                        return
                    await self._join()
                    reported = None
                    try:
                        async for event in client.events():
                            await self._republish(event)
                    finally:
                        self._client = None
                        with anyio.CancelScope(shield=True):
                            await self._leave()
            except WasmdError as exc:
                reason = exc.message
            if reason != reported:
                log.warning(
                    "the daemon at %s is unreachable (%s): out of the queue group %r until it "
                    "answers again (retrying every %g s)",
                    self.settings.socket,
                    reason,
                    self.settings.queue,
                    self.settings.retry_interval,
                )
                reported = reason
            await anyio.sleep(self.settings.retry_interval)

    async def stop(self) -> None:
        """Leave the queue group, then wait for the calls in flight (bound it from outside)."""
        await self._leave()
        self._stopped.set()
        await self._idle.wait()

    async def _join(self) -> None:
        self._left = anyio.Event()
        for subject in self.settings.exposure.subjects():
            sub = await self.nc.subscribe(subject, queue=self.settings.queue, cb=self._on_message)
            self._subscriptions.append(sub)
        await self.nc.flush()
        self.joined += 1
        log.info(
            "joined queue group %r on %d subject(s): the daemon at %s answers",
            self.settings.queue,
            len(self._subscriptions),
            self.settings.socket,
        )

    async def _leave(self) -> None:
        """Unsubscribe, and have every request NATS sent before that in hand (a drain)."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for sub in subscriptions:
            try:
                with anyio.fail_after(5):
                    await sub.drain()  # type: ignore[no-untyped-call]
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("could not drain the subscription to %s: %s", sub.subject, exc)
        self._left.set()

    async def _on_message(self, msg: Msg) -> None:
        # nats-py awaits this for one message at a time per subscription: never wait here.
        assert self._tg is not None
        self._tg.start_soon(self._serve, msg)

    async def _serve(self, msg: Msg) -> None:
        self._active += 1
        if self._active == 1:
            self._idle = anyio.Event()
        try:
            await self._answer(msg)
        except Exception as exc:
            # A bug here must cost one request, not the bridge (its task group would end).
            log.exception("a request on %s failed in the bridge", msg.subject)
            await self._reply(msg, WasmdError(ErrorCode.INTERNAL, f"the bridge failed: {exc!r}"))
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _answer(self, msg: Msg) -> None:
        received = anyio.current_time()
        method = method_of(msg.subject)
        if method is None or not self.settings.exposure.allows(method):
            await self._reply(
                msg, WasmdError(ErrorCode.METHOD_NOT_FOUND, f"{method} is not exposed")
            )
            return
        try:
            params = decode_params(msg.data, self.settings.max_message_size, method)
        except WasmdError as exc:
            await self._reply(msg, exc)
            return
        if self._waiting >= self.settings.max_waiting:
            await self._reply(
                msg,
                WasmdError(
                    ErrorCode.BUSY,
                    f"the bridge on {self.settings.host} has {self._waiting} requests waiting",
                ),
            )
            return
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            await self._call(msg, method, params, received)
        finally:
            self._slots.release()

    async def _call(self, msg: Msg, method: str, params: list[Any], received: float) -> None:
        client = self._client
        if client is None:
            await self._hand_on(msg)
            return
        patience = timeout_of(msg.headers)
        call_id = next(self._ids)
        with anyio.CancelScope() as scope:
            if patience is not None:
                scope.deadline = received + patience
            self._calls[call_id] = call = _Call(
                probe_subject(msg.reply, f"wasmd-probe-{call_id}") if msg.reply else None,
                scope,
                received,
            )
            try:
                result = await client.call(method, *params)
            except WasmdError as exc:
                await self._reply(msg, exc)
            else:
                await self._reply(msg, None, result)
            finally:
                del self._calls[call_id]
        if scope.cancelled_caught:
            why = "its caller is gone" if call.caller_gone else "its Wasmd-Timeout-Ms passed"
            log.debug("cancelled %s: %s", method, why)

    async def _hand_on(self, msg: Msg) -> None:
        """A request that reached this bridge while its daemon is away: to another host."""
        await self._left.wait()  # out of the queue group first, or it could come back here
        headers = dict(msg.headers or {})
        if FORWARDED_HEADER in headers or not msg.reply:
            await self._reply(
                msg,
                WasmdError(
                    ErrorCode.UNAVAILABLE,
                    f"no daemon answers on {self.settings.host} nor on "
                    f"{headers.get(FORWARDED_HEADER, 'another host')}",
                ),
            )
            return
        headers[FORWARDED_HEADER] = self.settings.host
        try:
            await self.nc.publish(msg.subject, msg.data, reply=msg.reply, headers=headers)
        except nats.errors.Error as exc:
            log.warning("could not hand a request for %s on: %s", msg.subject, exc)

    async def _reply(self, msg: Msg, error: WasmdError | None, result: Any = None) -> None:
        if not msg.reply:
            return  # published without a reply subject: nobody waits for an answer
        payload = encode_reply(error, result)
        if len(payload) > self.nc.max_payload:
            payload = encode_reply(
                WasmdError(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    f"the answer is {len(payload)} bytes, over the NATS server's max_payload "
                    f"({self.nc.max_payload})",
                )
            )
        try:
            await self.nc.publish(msg.reply, payload)
        except nats.errors.Error as exc:
            log.warning("could not reply on %s: %s", msg.reply, exc)

    async def _probe_callers(self) -> None:
        """Every ``probe_interval``: end the long calls whose callers' connections are gone."""
        interval = self.settings.probe_interval
        while True:
            await anyio.sleep(interval)
            now = anyio.current_time()
            assert self._tg is not None
            for call in list(self._calls.values()):
                if call.probe is not None and now - call.started >= interval:
                    self._tg.start_soon(self._probe, call)

    async def _probe(self, call: _Call) -> None:
        assert call.probe is not None
        try:
            await self.nc.request(call.probe, b"", timeout=self.settings.probe_interval)
        except nats.errors.NoRespondersError:
            call.caller_gone = True
            call.scope.cancel()
        except (TimeoutError, nats.errors.Error):
            pass  # someone listens (and, rightly, does not answer), or NATS is away

    async def _republish(self, event: Mapping[str, Any]) -> None:
        plugin = event.get("plugin")
        if isinstance(plugin, str) and not self.settings.exposure.allows_plugin(plugin):
            return  # an unexposed plug-in's events stay on the host
        subject = event_subject(self.settings.host, str(event.get("type", "unknown")))
        try:
            await self.nc.publish(subject, msgpack.packb(dict(event), use_bin_type=True))
        except (nats.errors.Error, ValueError, TypeError) as exc:
            log.warning("could not republish a %s event: %s", event.get("type"), exc)


class BridgeError(Exception):
    """The bridge cannot start: NATS is unreachable or refused it."""


async def connect_nats(settings: BridgeSettings) -> NatsClient:
    """Connect to NATS, trying each server a few times (raises ``BridgeError`` with the last
    reason: refused, authorization violation ...); once connected, it reconnects forever."""
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)
        log.warning("NATS: %s", exc)

    async def on_disconnected() -> None:
        log.warning("NATS connection lost: reconnecting")

    async def on_reconnected() -> None:
        log.info("NATS connection back (subscriptions restored)")

    try:
        nc = await nats.connect(
            servers=list(settings.servers),
            name=f"wasmd-bridge {settings.host}",
            max_reconnect_attempts=INITIAL_ATTEMPTS,
            reconnect_time_wait=1,
            connect_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            **settings.auth.options(),
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        reason = errors[-1] if errors else exc
        raise BridgeError(f"{type(reason).__name__}: {reason}") from None
    # nats-py reads this at each reconnection: a service keeps trying, the first start did not.
    nc.options["max_reconnect_attempts"] = -1
    return nc


async def run_bridge(settings: BridgeSettings, *, stop_timeout: float = 10) -> None:
    """Connect to NATS and bridge until SIGTERM or SIGINT; then leave the queue group, let the
    calls in flight finish (at most ``stop_timeout`` seconds) and close."""
    nc = await connect_nats(settings)
    log.info(
        "connected to NATS at %s as %s (auth: %s)",
        nc.connected_url.netloc if nc.connected_url else "?",
        settings.host,
        settings.auth.kind,
    )
    bridge = NatsBridge(settings, nc)
    try:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:
                await tg.start(bridge.run)
                async for signum in signals:
                    log.info(
                        "received %s: leaving the queue group; calls in flight finish first",
                        signal.Signals(signum).name,
                    )
                    break
                with anyio.move_on_after(stop_timeout):
                    await bridge.stop()
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await nc.close()
