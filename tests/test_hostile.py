"""Hostile plug-ins: each gets its precise error, the daemon survives, and a neighbour plug-in
is called throughout without one failed call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from wasmd import Client, WasmdError

from .conftest import running_daemon
from .hostile import CATALOG, Hostile
from .test_reload import replace_atomically, subscribe
from .wat import ARITH, COUNTER

pytestmark = pytest.mark.usefixtures("call_path")


def drop_in(directory: Path, hostile: Hostile, name: str) -> None:
    """Put the hostile plug-in's entries in ``directory`` as plug-in ``name``: manifests first,
    each made under a temporary (ignored) name and renamed into place."""
    entries: dict[str, Any] = {**hostile.files, **hostile.specials}
    for filename in sorted(entries, key=lambda f: not f.endswith(".toml")):
        target = directory / (name + filename.removeprefix("h"))
        target.parent.mkdir(parents=True, exist_ok=True)
        content = entries[filename]
        if callable(content):
            temporary = target.with_name(target.name + ".tmp")
            content(temporary)
            os.replace(temporary, target)
        else:
            replace_atomically(target, content)


@pytest.mark.parametrize("hostile", CATALOG, ids=[h.name for h in CATALOG])
async def test_hostile_plugin(short_tmp: Path, hostile: Hostile) -> None:
    (short_tmp / "plugins.d").mkdir()
    drop_in(short_tmp / "plugins.d", hostile, "h")
    async with running_daemon(short_tmp, {"neighbour.wat": ARITH}) as daemon:
        async with daemon.client() as client, daemon.client() as neighbour:
            neighbour_calls: list[object] = []
            done = anyio.Event()

            async def keep_calling() -> None:
                while not done.is_set():
                    neighbour_calls.append(await neighbour.call("neighbour.add", 2, 2))

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_calling)
                try:
                    if hostile.code is not None and hostile.result is None:
                        with pytest.raises(WasmdError) as caught:
                            await client.call(f"h.{hostile.method}", *hostile.params)
                        assert caught.value.code == hostile.code, caught.value
                        assert hostile.fragment in caught.value.message
                        if hostile.absent is not None:
                            assert hostile.absent not in caught.value.message
                            assert hostile.absent not in str(await client.list())
                    else:
                        assert await client.call(f"h.{hostile.method}", *hostile.params) == (
                            hostile.result
                        )
                    assert await client.ping() == "pong"
                finally:
                    done.set()
            assert neighbour_calls
            assert set(neighbour_calls) == {4}  # every neighbour call succeeded


async def test_plugin_named_like_the_builtins_is_refused(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"wasmd.wat": COUNTER, "ok.wat": COUNTER}) as daemon:
        async with daemon.client() as client:
            assert await client.ping() == "pong"  # still the built-in
            assert [item["name"] for item in await client.list()] == ["ok"]


async def _outcome(client: Client, method: str, params: list[Any]) -> Any:
    """The call's result, or its error code."""
    try:
        return await client.call(method, *params)
    except WasmdError as exc:
        return exc.code


async def test_catalog_dropped_in_live_while_the_neighbour_works(short_tmp: Path) -> None:
    """The same catalog, hot-loaded one by one into a running daemon."""
    async with running_daemon(short_tmp, {"neighbour.wat": ARITH}) as daemon:
        async with daemon.client() as client, daemon.client() as neighbour:
            events = await subscribe(client, "plugin.loaded", "plugin.failed")
            failures: list[str] = []
            done = anyio.Event()

            async def keep_calling() -> None:
                while not done.is_set():
                    try:
                        await neighbour.call("neighbour.add", 1, 1)
                    except WasmdError as exc:
                        failures.append(str(exc))

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_calling)
                for index, hostile in enumerate(CATALOG):
                    name = f"h{index}"
                    drop_in(daemon.plugins_dir, hostile, name)
                    event = await events.next()
                    assert event["plugin"] == name
                    assert hostile.absent is None or hostile.absent not in str(event)
                    outcome = await _outcome(client, f"{name}.{hostile.method}", hostile.params)
                    expected = hostile.result if hostile.result is not None else hostile.code
                    assert outcome == expected, (hostile.name, outcome)
                done.set()
            assert failures == []
            shutil.rmtree(daemon.plugins_dir)
