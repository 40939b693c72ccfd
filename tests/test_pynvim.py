"""Real pynvim against a real daemon: the session API docs/neovim.md recommends works, and
``pynvim.attach`` (which expects a Neovim) fails saying what to use instead (issue 28)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio

from .conftest import running_daemon
from .wat import ARITH

# docs/neovim.md's Python example, with what it saw printed as JSON.
SCRIPT = """
import json, sys
import pynvim
from pynvim.msgpack_rpc import socket_session

sock = sys.argv[1]
seen = {}
try:
    pynvim.attach("socket", path=sock)
except Exception as exc:
    seen["attach"] = str(exc)

session = socket_session(sock)
seen["add"] = session.request("arith.add", 2, 3)
try:
    session.request("arith.div", 1, 0)
except Exception as exc:
    seen["error"] = str(exc)
session.request("wasmd.subscribe", ["plugin.trapped"])
try:
    session.request("arith.div", 1, 0)
except Exception:
    pass
kind, method, params = session.next_message()
seen["event"] = [kind, method, params[0]["type"], params[0]["plugin"]]
session.close()
print(json.dumps(seen))
"""


async def test_pynvim_sessions_work_and_attach_says_why_not(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        with anyio.fail_after(60):
            result = await anyio.run_process(
                [sys.executable, "-c", SCRIPT, str(daemon.socket)], check=False
            )
    assert result.returncode == 0, result.stderr.decode()
    seen = json.loads(result.stdout.decode().splitlines()[-1])
    assert seen["add"] == 5
    assert seen["error"] == "integer divide by zero"  # pynvim shows err[1]
    assert seen["event"] == ["notification", "wasmd.event", "plugin.trapped", "arith"]
    assert seen["attach"] == (
        'method must be PLUGIN.EXPORT, got "nvim_get_api_info" (wasmd is not Neovim and has '
        "no Neovim API: from pynvim, connect with pynvim.msgpack_rpc.socket_session(path), "
        "not pynvim.attach)"
    )
