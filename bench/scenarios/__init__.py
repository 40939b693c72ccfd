"""The scenarios, in the order of the table: each ``run(ctx)`` returns its rows."""

from __future__ import annotations

from collections.abc import Callable

from ..context import Context
from ..report import Row
from . import (
    hammer,
    idle,
    inprocess,
    nats,
    ping,
    reload,
    roundtrip,
    scaling,
    startup,
    state,
    streaming,
)

Scenario = Callable[[Context], list[Row]]

# (number, title, function): the number is what --only selects.
SCENARIOS: tuple[tuple[str, str, Scenario], ...] = (
    ("1", "round trip", roundtrip.run_latency),
    ("2", "pipelined throughput", roundtrip.run_throughput),
    ("3", "in-process call cost", inprocess.run),
    ("4", "reload latency", reload.run),
    ("5", "start-up to READY", startup.run),
    ("6", "CPU-bound scaling", scaling.run),
    ("7", "ping under spinning guests", ping.run),
    ("8", "idle connections", idle.run),
    ("9", "NATS bridge", nats.run),
    ("10", "ping under a hammered instance", hammer.run),
    ("11", "durable state per call", state.run),
    ("12", "streaming chunks", streaming.run),
)
