"""Prometheus metrics read back with prometheus_client's own parser, checked against the calls
each test made: through wasmd.metrics, the CLI, and the node-exporter textfile."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from wasmd import ErrorCode, WasmdError
from wasmd.cli import main
from wasmd.metrics import write_textfile

from .conftest import running_daemon
from .helpers import replace_atomically, subscribe
from .wat import ARITH, COUNTER, MEMORY, SPIN, WORK
from .wat_abi import MSGPACK_GUEST

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of the exposition text, by (name, labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_count_the_calls_made(short_tmp: Path) -> None:
    plugins = {
        "arith.wat": ARITH,
        "counter.wat": COUNTER,
        "mp.wat": MSGPACK_GUEST,
        "mp.toml": '[plugin]\nabi = "msgpack"\n',
        "work.wat": WORK,
        "work.toml": "[plugin]\nfuel = 100_000_000\n",
    }
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        for i in range(7):
            assert await client.call("arith.add", i, 1) == i + 1
        for _ in range(3):
            with pytest.raises(WasmdError) as trapped:
                await client.call("arith.div", 1, 0)
            assert trapped.value.code == ErrorCode.TRAP
        with pytest.raises(WasmdError):
            await client.call("arith.add", 1)  # invalid params: answered before any instance
        with pytest.raises(WasmdError):
            await client.call("arith.nope")  # no such export
        assert await client.call("mp.echo", b"x" * 1000) == [b"x" * 1000]
        for _ in range(32):  # two CPU samples at least: one call in 16 is measured
            assert await client.call("work.work", 300_000) == 300_000

        samples = parse(await client.call("wasmd.metrics"))

    assert value(samples, "wasmd_plugin_calls_total", plugin="arith", code="ok") == 7
    assert value(samples, "wasmd_plugin_calls_total", plugin="arith", code="trap") == 3
    # Every request to the plug-in counts, those refused before they ran too.
    assert value(samples, "wasmd_plugin_calls_total", plugin="arith", code="invalid_params") == 1
    assert value(samples, "wasmd_plugin_calls_total", plugin="arith", code="method_not_found") == 1
    assert value(samples, "wasmd_plugin_call_duration_seconds_count", plugin="arith") == 12
    assert (
        value(samples, "wasmd_plugin_call_duration_seconds_bucket", plugin="arith", le="+Inf") == 12
    )
    assert value(samples, "wasmd_calls_total", code="ok") == 7 + 1 + 32
    assert value(samples, "wasmd_calls_total", code="trap") == 3
    assert 0 < value(samples, "wasmd_plugin_call_duration_seconds_sum", plugin="arith") < 10
    assert value(samples, "wasmd_plugin_restarts_total", plugin="arith") == 3
    assert value(samples, "wasmd_plugin_restarts_total", plugin="counter") == 0
    assert value(samples, "wasmd_plugin_instances", plugin="arith") == 1
    assert value(samples, "wasmd_plugin_memory_bytes", plugin="arith") == 65536  # one page
    assert value(samples, "wasmd_plugin_memory_peak_bytes", plugin="arith") == 65536
    assert value(samples, "wasmd_plugin_memory_limit_bytes", plugin="arith") == 64 * 2**20
    assert value(samples, "wasmd_plugin_up", plugin="arith") == 1
    # The msgpack ABI hands the guest the params array's encoding and reads its answer.
    sent = len(msgpack.packb([b"x" * 1000]))
    assert value(samples, "wasmd_plugin_input_bytes_total", plugin="mp") == sent
    assert value(samples, "wasmd_plugin_output_bytes_total", plugin="mp") == sent
    # Fuel: each work(n) burns the same, so 32 calls burn 32 times one call's fuel.
    fuel = value(samples, "wasmd_plugin_fuel_consumed_total", plugin="work")
    assert fuel > 32 * 300_000
    assert fuel % 32 == 0
    assert value(samples, "wasmd_plugin_fuel_consumed_total", plugin="arith") == 0
    # Thread CPU time is sampled; a busy loop's CPU time is close to its wall time.
    cpu = value(samples, "wasmd_plugin_cpu_seconds_total", plugin="work")
    busy = value(samples, "wasmd_plugin_call_duration_seconds_sum", plugin="work")
    assert 0 < cpu < 3 * busy
    assert value(samples, "wasmd_fuel_consumed_total") == fuel
    assert value(samples, "wasmd_requests_total") >= 29
    assert value(samples, "wasmd_plugins") == 4


async def test_memory_now_and_peak(short_tmp: Path) -> None:
    page = 65536
    async with running_daemon(short_tmp, {"mem.wat": MEMORY}) as daemon, daemon.client() as c:
        assert await c.call("mem.grow", 3) == 1  # 1 page -> 4
        grown = parse(await c.call("wasmd.metrics"))
        with pytest.raises(WasmdError):
            await c.call("mem.poke", 4 * page)  # out of bounds: a trap, a fresh instance
        fresh = parse(await c.call("wasmd.metrics"))
    assert value(grown, "wasmd_plugin_memory_bytes", plugin="mem") == 4 * page
    assert value(grown, "wasmd_plugin_memory_peak_bytes", plugin="mem") == 4 * page
    assert value(fresh, "wasmd_plugin_memory_bytes", plugin="mem") == 1 * page
    assert value(fresh, "wasmd_plugin_memory_peak_bytes", plugin="mem") == 4 * page
    assert value(fresh, "wasmd_plugin_restarts_total", plugin="mem") == 1


async def test_busy_is_counted_once(short_tmp: Path) -> None:
    plugins = {
        "spin.wat": SPIN,
        "spin.toml": "[plugin]\ninstances = 1\nqueue = 0\ntimeout_ms = 60000\n",
    }
    async with running_daemon(short_tmp, plugins) as daemon:
        async with daemon.client() as spinner, daemon.client() as other:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_expect_cancelled, spinner)
                # Wait until the spin call holds the only instance.
                with anyio.fail_after(10):
                    while (await other.stats())["plugins"]["spin"]["in_flight"] == 0:
                        await other.call("wasmd.ping")
                with pytest.raises(WasmdError) as busy:
                    await other.call("spin.quick")
                assert busy.value.code == ErrorCode.BUSY
                stats = await other.stats()
                samples = parse(await other.call("wasmd.metrics"))
                tg.cancel_scope.cancel()
    assert stats["plugins"]["spin"]["errors"] == {"busy": 1}
    assert value(samples, "wasmd_plugin_calls_total", plugin="spin", code="busy") == 1
    assert value(samples, "wasmd_plugin_in_flight_calls", plugin="spin") == 1


async def _expect_cancelled(client: object) -> None:
    await client.call("spin.spin")  # type: ignore[attr-defined]


async def test_counters_continue_across_reloads_and_count_failures(short_tmp: Path) -> None:
    async with (
        running_daemon(short_tmp, {"counter.wat": COUNTER}, watch=True) as daemon,
        daemon.client() as c,
    ):
        events = await subscribe(c)
        assert await c.call("counter.incr") == 1
        target = daemon.plugins_dir / "counter.wat"
        replace_atomically(target, COUNTER.replace("(i64.const 1)", "(i64.const 2)"))
        assert (await events.next())["type"] == "plugin.reloaded"
        assert await c.call("counter.incr") == 2
        replace_atomically(target, "(module (func (export")  # does not compile
        assert (await events.next())["type"] == "plugin.failed"
        samples = parse(await c.call("wasmd.metrics"))
    assert value(samples, "wasmd_plugin_calls_total", plugin="counter", code="ok") == 2
    assert value(samples, "wasmd_plugin_reloads_total", plugin="counter") == 1
    assert value(samples, "wasmd_plugin_load_failures_total", plugin="counter") == 1
    assert value(samples, "wasmd_plugin_up", plugin="counter") == 1  # the old version serves


async def test_bytes_of_a_replaced_version_are_kept(short_tmp: Path) -> None:
    """An old version's instances hold counts until it drains: then they join the account."""
    manifest = '[plugin]\nabi = "msgpack"\n'
    plugins = {"mp.wat": MSGPACK_GUEST, "mp.toml": manifest}
    async with running_daemon(short_tmp, plugins, watch=True) as daemon, daemon.client() as c:
        events = await subscribe(c)
        assert await c.call("mp.echo", b"abc") == [b"abc"]
        replace_atomically(daemon.plugins_dir / "mp.toml", manifest + "timeout_ms = 2000\n")
        assert (await events.next())["type"] == "plugin.reloaded"
        assert await c.call("mp.echo", b"abc") == [b"abc"]
        samples = parse(await c.call("wasmd.metrics"))
    sent = len(msgpack.packb([b"abc"]))
    assert value(samples, "wasmd_plugin_input_bytes_total", plugin="mp") == 2 * sent
    assert value(samples, "wasmd_plugin_output_bytes_total", plugin="mp") == 2 * sent
    assert value(samples, "wasmd_plugin_calls_total", plugin="mp", code="ok") == 2


async def test_textfile_is_rewritten_and_cli_prints_the_same_names(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    textfile = short_tmp / "node-exporter" / "wasmd.prom"
    textfile.parent.mkdir()
    old_umask = os.umask(0o077)  # the unit's UMask=
    try:
        await _textfile_and_cli(short_tmp, textfile, capsys)
    finally:
        os.umask(old_umask)


async def _textfile_and_cli(
    short_tmp: Path, textfile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        running_daemon(
            short_tmp, {"arith.wat": ARITH}, metrics_textfile=textfile, metrics_interval_ms=100
        ) as daemon,
        daemon.client() as client,
    ):
        assert await client.call("arith.add", 1, 2) == 3
        with anyio.fail_after(10):  # the writer's next round shows the call
            while True:
                text = textfile.read_text() if textfile.exists() else ""
                if (
                    text
                    and value(parse(text), "wasmd_plugin_calls_total", plugin="arith", code="ok")
                    == 1
                ):
                    break
                await anyio.sleep(0.05)
        code = await anyio.to_thread.run_sync(
            lambda: main(["metrics", "--socket", str(daemon.socket)])
        )
    out = capsys.readouterr().out
    assert code == 0
    assert set(parse(out)) == set(parse(text))
    # Only the .prom file, readable by the node-exporter's user: the temporary it is
    # written as is renamed over it.
    assert [p.name for p in textfile.parent.iterdir()] == ["wasmd.prom"]
    assert textfile.stat().st_mode & 0o777 == 0o644


def test_textfile_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """The textfile's folder may be shared (the node-exporter's): a link planted under the
    temporary name must not make the daemon write into the file it points to."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    textfile = tmp_path / "wasmd.prom"
    planted = tmp_path / f".wasmd.prom.{os.getpid()}.tmp"  # the name it used to be
    planted.symlink_to(victim)
    registry = CollectorRegistry()
    write_textfile(textfile, registry)
    assert victim.read_text() == "precious\n"
    assert textfile.exists()
    assert not textfile.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [planted.name, "victim", "wasmd.prom"]


def test_a_folder_planted_at_the_temporary_name_does_not_stop_the_textfile(
    tmp_path: Path,
) -> None:
    """Issue 22 item 10: the temporary's name was predictable, and a folder planted there
    made every later write fail."""
    textfile = tmp_path / "wasmd.prom"
    planted = tmp_path / f".wasmd.prom.{os.getpid()}.tmp"
    planted.mkdir()
    registry = CollectorRegistry()
    for _ in range(2):
        write_textfile(textfile, registry)
        assert textfile.is_file()
        textfile.unlink()
    assert planted.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [planted.name]


async def test_a_few_calls_show_cpu_bytes_and_memory(short_tmp: Path) -> None:
    """Issue 25 item 6: after 7 calls, CPU seconds read 0 (only one call in 16 is
    measured); the first call of a version is measured too."""
    plugins = {"mp.wat": MSGPACK_GUEST, "mp.toml": '[plugin]\nabi = "msgpack"\n'}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        for _ in range(7):
            assert await client.call("mp.echo", b"abc") == [b"abc"]
        samples = parse(await client.call("wasmd.metrics"))
    assert value(samples, "wasmd_plugin_calls_total", plugin="mp", code="ok") == 7
    assert value(samples, "wasmd_plugin_cpu_seconds_total", plugin="mp") > 0
    assert value(samples, "wasmd_plugin_input_bytes_total", plugin="mp") == 7 * len(
        msgpack.packb([b"abc"])
    )
    assert value(samples, "wasmd_plugin_memory_bytes", plugin="mp") > 0


async def test_plugins_that_are_gone_are_forgotten_and_totals_stay(short_tmp: Path) -> None:
    """Issue 22 item 7: every name that ever built kept its account, and wasmd.metrics grew
    with each; now only names served are listed, and the daemon-wide totals keep counting."""
    elsewhere = short_tmp / "elsewhere"
    elsewhere.mkdir()
    async with (
        running_daemon(short_tmp, {"keep.wat": ARITH}, watch=True) as daemon,
        daemon.client() as client,
    ):
        for i in range(12):
            path = elsewhere / f"by-path{i}.wat"
            path.write_text(ARITH)
            await client.call("wasmd.load", str(path))
            assert await client.call(f"by-path{i}.add", i, 1) == i + 1
            await client.call("wasmd.unload", f"by-path{i}")
            broken = elsewhere / f"broken{i}.wat"
            broken.write_text("(module")
            with pytest.raises(WasmdError):
                await client.call("wasmd.load", str(broken))
        events = await subscribe(client, "plugin.loaded", "plugin.unloaded")
        on_path = daemon.plugins_dir / "transient.wat"
        replace_atomically(on_path, ARITH)
        assert (await events.next())["type"] == "plugin.loaded"
        assert await client.call("transient.add", 1, 1) == 2
        on_path.unlink()
        assert (await events.next())["type"] == "plugin.unloaded"
        samples = parse(await client.call("wasmd.metrics"))
    named = {dict(labels).get("plugin") for _, labels in samples} - {None}
    assert named == {"keep"}
    assert value(samples, "wasmd_calls_total", code="ok") == 12 + 1
    assert value(samples, "wasmd_plugins") == 1


async def test_metrics_longer_than_one_message_are_refused(short_tmp: Path) -> None:
    """Issue 22 item 7: a 27 MB text was sent past max_message_size, which the client then
    refuses; it is an error now, and the textfile still has it all."""
    textfile = short_tmp / "wasmd.prom"
    plugins = {f"p{i}.wat": ARITH for i in range(4)}
    async with (
        running_daemon(
            short_tmp,
            plugins,
            max_message_size=4096,
            metrics_textfile=textfile,
            metrics_interval_ms=100,
        ) as daemon,
        daemon.client() as client,
    ):
        with pytest.raises(WasmdError) as refused:
            await client.call("wasmd.metrics")
        with anyio.fail_after(10):
            while True:
                if textfile.exists():
                    break
                await anyio.sleep(0.05)
        assert await client.call("wasmd.ping") == "pong"
    assert refused.value.code == ErrorCode.RESOURCE_EXHAUSTED
    assert "max_message_size 4096" in refused.value.message
    assert len(textfile.read_bytes()) > 4096
