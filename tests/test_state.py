"""Durable per-plug-in state (issue 26) through the real daemon on a real socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmd import ErrorCode, WasmdError

from .conftest import running_daemon
from .helpers import replace_atomically, subscribe
from .wat_state import COUNTER


async def test_counting_survives_a_trap_and_a_reload(short_tmp: Path) -> None:
    state = short_tmp / "state"
    async with running_daemon(short_tmp, {"tally.wat": COUNTER}, state_dir=state) as daemon:
        async with daemon.client() as c:
            assert [await c.call("tally.incr") for _ in range(3)] == [1, 2, 3]
            with pytest.raises(WasmdError) as caught:
                await c.call("tally.incr_then_trap")
            assert caught.value.code == ErrorCode.TRAP
            assert await c.call("tally.get") == 3  # the trapped call's +1 was rolled back
            events = await subscribe(c)
            replace_atomically(daemon.plugins_dir / "tally.wat", COUNTER + "\n;; v2\n")
            assert (await events.next())["type"] == "plugin.reloaded"
            assert await c.call("tally.incr") == 4
