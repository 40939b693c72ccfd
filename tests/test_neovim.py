"""A real ``nvim --headless`` against a real daemon, with docs/neovim.md's Lua as written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import anyio
import pytest

from .conftest import running_daemon
from .wat import ARITH

REPO = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.toolchain,
    pytest.mark.skipif(shutil.which("nvim") is None, reason="needs nvim (tests.setup_toolchains)"),
]

# Drives docs/neovim.md's module: a result, errors as Lua and Vimscript see them, an event.
DRIVER = """
local wasmd = dofile(%(module)s)
local sock = %(sock)s
local out = {}
local ok, err = pcall(function()
  local plain = vim.fn.sockconnect('pipe', sock, { rpc = true })
  out.default_error = select(2, pcall(vim.rpcrequest, plain, 'arith.div', 1, 0))
  local events, subscribed = {}, false
  wasmd.subscribe(sock, { 'plugin.trapped' }, function(event)
    table.insert(events, event)
  end, function() subscribed = true end)
  assert(vim.wait(10000, function() return subscribed end), 'not subscribed')
  local chan = wasmd.connect(sock)
  out.result = vim.rpcrequest(chan, 'arith.add', 2, 3)
  out.lua_error = select(2, pcall(vim.rpcrequest, chan, 'arith.div', 1, 0))
  local vim_call = 'call rpcrequest(' .. chan .. ", 'arith.add', 1, v:true)"
  out.vim_error = select(2, pcall(vim.cmd, vim_call))
  assert(vim.wait(10000, function() return #events >= 1 end), 'no events')
  out.events = events
end)
if not ok then out.failure = tostring(err) end
local f = assert(io.open(%(out)s, 'w'))
f:write(vim.fn.json_encode(out))
f:close()
vim.cmd('qa!')
"""


def lua_blocks(markdown: str) -> list[str]:
    return re.findall(r"```lua\n(.*?)```", markdown, re.S)


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of a path is a valid Lua string literal


async def test_neovim_sees_results_errors_and_events(short_tmp: Path) -> None:
    module = short_tmp / "wasmd.lua"
    module.write_text(lua_blocks((REPO / "docs" / "neovim.md").read_text())[0])
    out = short_tmp / "out.json"
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        driver = short_tmp / "driver.lua"
        driver.write_text(
            DRIVER
            % {
                "module": lua_string(str(module)),
                "sock": lua_string(str(daemon.socket)),
                "out": lua_string(str(out)),
            }
        )
        with anyio.fail_after(60):
            await anyio.run_process(
                ["nvim", "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {driver}"],
                check=False,
            )
    seen = json.loads(out.read_text())
    assert "failure" not in seen, seen.get("failure")
    assert seen["result"] == 5
    # Without wasmd.configure, Neovim cannot show wasmd's own error shape.
    assert seen["default_error"] == "unknown error"
    assert seen["lua_error"] == "trap (4): integer divide by zero"
    assert re.fullmatch(
        r"Vim\(call\):Error invoking 'arith.add' on channel \d+:\n"
        r"invalid_params \(3\): param 1 \(i32\): expected an integer, got true",
        seen["vim_error"],
    ), seen["vim_error"]
    trapped = [e for e in seen["events"] if e["type"] == "plugin.trapped"]
    assert {(e["plugin"], e["export"]) for e in trapped} == {("arith", "div")}
