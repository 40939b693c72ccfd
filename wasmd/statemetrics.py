"""The Prometheus families of plug-ins' durable state, beside metrics.py's (one more collector
on the same registry): keys and bytes kept, the quota, and commits, per plug-in that has a
store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .plugins.registry import Registry


class StateCollector(Collector):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        def gauge(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"wasmd_plugin_state_{name}", text, labels=["plugin"])

        keys = gauge("keys", "keys in the plug-in's durable state")
        size = gauge("bytes", "bytes of keys and values in the plug-in's durable state")
        limit = gauge("limit_bytes", "[state] max_bytes of the manifest")
        commits = CounterMetricFamily(
            "wasmd_plugin_state_commits_total",
            "calls whose state was committed (since the daemon opened it)",
            labels=["plugin"],
        )
        for entry in sorted(self._registry, key=lambda e: e.name):
            plugin = entry.pool.plugin if entry.pool is not None else None
            if plugin is None or plugin.state is None:
                continue
            namespace = plugin.state
            keys.add_metric([entry.name], namespace.keys)
            size.add_metric([entry.name], namespace.bytes)
            limit.add_metric([entry.name], plugin.manifest.state.max_bytes)
            commits.add_metric([entry.name], namespace.commits)
        yield from (keys, size, limit, commits)
