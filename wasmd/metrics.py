"""Prometheus metrics: wasmd's own counters, read at scrape time, in the exposition format.

Theory of operation. ``WasmdCollector`` is a ``prometheus_client`` custom collector: it keeps
no metric objects of its own and, at each ``collect()``, reads the per-plug-in accounts
(``wasmd.runtime.account``), the live pools' ``usage()`` and the server's counters. So there is
one set of numbers, the one ``wasmd.stats`` reads too. The text reaches Prometheus two ways:
the ``wasmd.metrics`` built-in (``wasmd metrics`` in the CLI), and the node-exporter textfile
collector, a ``.prom`` file that ``write_textfile_forever`` rewrites atomically (a temporary
file renamed over it) every ``metrics_interval_ms``.

Names follow Prometheus conventions: a ``wasmd_`` prefix, base units (seconds, bytes),
``_total`` on counters, the plug-in's name in a ``plugin`` label and a call's outcome in
``code`` (``ok`` or the error code's name, as in the protocol).

What a scrape costs is bounded by the plug-ins served now: the accounts of names gone are
dropped (their counts live on in the daemon-wide ``wasmd_calls_total`` and its siblings, see
``account.py``). A text longer than one answer may carry (``max_message_size``) is refused
with ``resource_exhausted``, never sent as a frame the client would have to refuse. The text
is rendered on the requesting connection's thread (or, for the textfile, a worker thread),
never on the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from .errors import ErrorCode, WasmdError
from .plugins.registry import Registry
from .runtime import WASMTIME_VERSION
from .runtime.account import LATENCY_BUCKETS, Accounts

log = logging.getLogger("wasmd.metrics")

# The histogram's "le" labels: the bounds as Prometheus spells them, then +Inf.
BUCKET_LABELS = (*(format(b, "g") for b in LATENCY_BUCKETS), "+Inf")

# Reads the daemon-wide numbers, by their DAEMON_METRICS names, at each scrape.
DaemonReading = Callable[[], dict[str, float]]


class WasmdCollector(Collector):
    """The collector ``wasmd.metrics`` renders: every family is built afresh per scrape."""

    def __init__(
        self, registry: Registry, accounts: Accounts, daemon: DaemonReading, started: float
    ) -> None:
        self._registry = registry
        self._accounts = accounts
        self._daemon = daemon
        self._started = started

    def collect(self) -> Iterator[Any]:
        yield from self._daemon_metrics()
        yield from self._daemon_totals()
        yield from self._plugin_counters()
        yield from self._plugin_gauges()

    def _daemon_totals(self) -> Iterator[Any]:
        """What every plug-in counted, those unloaded since included: these never reset."""
        totals = self._accounts.totals()
        calls = CounterMetricFamily(
            "wasmd_calls_total",
            "calls to plug-ins answered, by outcome (plug-ins unloaded since included)",
            labels=["code"],
        )
        calls.add_metric(["ok"], totals.ok)
        for code, count in sorted(totals.errors.items()):
            calls.add_metric([code], count)
        yield calls
        values = {
            "cpu_seconds_total": totals.cpu_seconds,
            "fuel_consumed_total": totals.fuel,
            "input_bytes_total": totals.bytes_in,
            "output_bytes_total": totals.bytes_out,
            "restarts_total": totals.restarts,
            "reloads_total": totals.reloads,
            "load_failures_total": totals.load_failures,
            "quarantines_total": totals.quarantines,
            "throttles_total": totals.throttles,
        }
        for key, value in values.items():
            help_text = f"{PLUGIN_COUNTERS[key]}, all plug-ins (unloaded ones included)"
            yield CounterMetricFamily(f"wasmd_{key}", help_text, value)

    def _daemon_metrics(self) -> Iterator[Any]:
        info = GaugeMetricFamily(
            "wasmd_build_info", "wasmd and wasmtime versions", labels=["version", "wasmtime"]
        )
        info.add_metric([version("wasmd"), WASMTIME_VERSION], 1)
        yield info
        yield GaugeMetricFamily(
            "wasmd_start_time_seconds", "when the daemon started (Unix time)", self._started
        )
        readings = self._daemon()
        for name, (kind, help_text) in DAEMON_METRICS.items():
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"wasmd_{name}", help_text, readings.get(name, 0))

    def _plugin_counters(self) -> Iterator[Any]:
        def counter(name: str, help_text: str, labels: tuple[str, ...] = ()) -> Any:
            return CounterMetricFamily(
                f"wasmd_plugin_{name}", help_text, labels=["plugin", *labels]
            )

        calls = counter("calls_total", "calls answered, by outcome", ("code",))
        latency = HistogramMetricFamily(
            "wasmd_plugin_call_duration_seconds",
            "time from a call's arrival to its answer",
            labels=["plugin"],
        )
        families = {key: counter(key, text) for key, text in PLUGIN_COUNTERS.items()}
        for name, account in self._accounts.items():
            seen = account.snapshot()
            calls.add_metric([name, "ok"], seen.ok)
            for code, count in sorted(seen.errors.items()):
                calls.add_metric([name, code], count)
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKET_LABELS, seen.latency_buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([name], buckets, seen.latency_sum)
            values = {
                "cpu_seconds_total": seen.cpu_seconds,
                "fuel_consumed_total": seen.fuel,
                "input_bytes_total": seen.bytes_in,
                "output_bytes_total": seen.bytes_out,
                "restarts_total": seen.restarts,
                "reloads_total": seen.reloads,
                "load_failures_total": seen.load_failures,
                "quarantines_total": seen.quarantines,
                "throttles_total": seen.throttles,
            }
            for key, value in values.items():
                families[key].add_metric([name], value)
        yield calls
        yield latency
        yield from families.values()

    def _plugin_gauges(self) -> Iterator[Any]:
        helps = {
            "up": "1 if the plug-in is loaded, 0 if its last load failed",
            "instances": "live instances",
            "in_flight_calls": "calls running or waiting for an instance",
            "queued_calls": "calls waiting for an instance",
            "quarantined": "1 while the failure policy refuses calls",
            "memory_bytes": "linear memory of the live instances",
            "memory_peak_bytes": "the most linear memory one instance has had",
            "memory_limit_bytes": "memory_max of the manifest (per instance)",
        }
        gauges = {
            key: GaugeMetricFamily(f"wasmd_plugin_{key}", text, labels=["plugin"])
            for key, text in helps.items()
        }
        throttled = GaugeMetricFamily(
            "wasmd_plugin_throttled",
            "1 for each caller uid whose calls the failure policy refuses now",
            labels=["plugin", "uid"],
        )
        for entry in sorted(self._registry, key=lambda e: e.name):
            pool = entry.pool
            gauges["up"].add_metric([entry.name], 0 if pool is None else 1)
            if pool is None:
                continue
            usage = pool.usage()  # before the peak: it measures the idle instances
            for uid in usage.throttled:
                throttled.add_metric([entry.name, str(uid)], 1)
            values = {
                "instances": usage.instances_live,
                "in_flight_calls": usage.in_flight,
                "queued_calls": usage.queued,
                "quarantined": 0 if usage.retry_in is None else 1,
                "memory_bytes": usage.memory_bytes,
                "memory_peak_bytes": pool.account.snapshot().memory_peak,
                "memory_limit_bytes": pool.plugin.manifest.memory_max,
            }
            for key, value in values.items():
                gauges[key].add_metric([entry.name], value)
        yield from gauges.values()
        yield throttled


# The per-plug-in counters besides calls and latency (also summed daemon-wide).
PLUGIN_COUNTERS = {
    "cpu_seconds_total": "thread CPU time spent in the guest (sampled estimate)",
    "fuel_consumed_total": "fuel the guest burnt (plug-ins with metering)",
    "input_bytes_total": "payload bytes handed to the guest",
    "output_bytes_total": "payload bytes the guest handed back",
    "restarts_total": "instances discarded after a fault and made afresh",
    "reloads_total": "new versions swapped in",
    "load_failures_total": "versions that failed to load (or were refused)",
    "quarantines_total": "times the failure policy quarantined the plug-in",
    "throttles_total": "times the failure policy throttled a caller uid",
}

DAEMON_METRICS = {
    "connections": ("gauge", "client connections open"),
    "connections_total": ("counter", "client connections accepted"),
    "connections_refused_total": ("counter", "client connections refused"),
    "requests_total": ("counter", "requests received"),
    "protocol_errors_total": ("counter", "malformed messages from clients"),
    "plugins": ("gauge", "plug-ins known (loaded or failed)"),
    "event_subscribers": ("gauge", "connections subscribed to events"),
    "events_dropped_total": ("counter", "events dropped for subscribers that lag"),
}


def collector_registry(collector: WasmdCollector) -> CollectorRegistry:
    # auto_describe=False: describing would run a whole collect() at registration.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> str:
    """The exposition text (format 0.0.4, what node-exporter's textfile collector reads)."""
    return generate_latest(registry).decode("utf-8")


# What an answer adds around its result: the array, msgid and nil error, the str header.
ANSWER_FRAMING = 32


def render_answer(registry: CollectorRegistry, max_message_size: int) -> str:
    """The text for ``wasmd.metrics``: refused if its answer would be over
    ``max_message_size``, the most a client takes in one message."""
    text = generate_latest(registry)
    if len(text) + ANSWER_FRAMING > max_message_size:
        raise WasmdError(
            ErrorCode.RESOURCE_EXHAUSTED,
            f"the metrics text is {len(text)} bytes, more than one answer may carry "
            f"(max_message_size {max_message_size}); read the metrics_textfile instead, "
            "or raise max_message_size",
        )
    return text.decode("utf-8")


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """Replace ``path`` by the current text at once (a temporary file renamed over it): the
    node-exporter never reads half a file. Mode 0644 whatever the umask (the unit's is 0077),
    so the node-exporter's user can read it.

    The temporary's name is unpredictable and it is created afresh (``mkstemp``: O_EXCL,
    O_NOFOLLOW): the folder may be shared with other writers, and nothing planted there
    beforehand, a link or a folder, can be written through or stop the writing."""
    text = generate_latest(registry)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb", closefd=True) as out:  # not *.prom: the collector skips it
            os.fchmod(out.fileno(), 0o644)
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _textfile_problem(path: Path, registry: CollectorRegistry) -> str | None:
    """``write_textfile`` in a worker thread: why it failed, or None. Only the reason leaves
    the thread: an exception would come back in a cycle with the frames holding the text."""
    try:
        write_textfile(path, registry)
    except OSError as exc:
        return f"{exc.strerror or exc}"
    return None


async def write_textfile_forever(path: Path, registry: CollectorRegistry, interval: float) -> None:
    """Rewrite ``path`` every ``interval`` seconds. A failure (a missing folder, no permission)
    is logged once per distinct reason, and the next round tries again."""
    last_problem: str | None = None
    while True:
        problem = await anyio.to_thread.run_sync(_textfile_problem, path, registry)
        if problem is not None and problem != last_problem:
            log.warning("cannot write metrics to %s: %s", path, problem)
        last_problem = problem
        await anyio.sleep(interval)
