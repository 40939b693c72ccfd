"""A real ``nvim --headless`` streaming from a real daemon with docs/streaming.md's Lua."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import anyio
import pytest

from wasmd.runtime import fastcall

from .conftest import running_daemon
from .wat_stream import STREAMER

REPO = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.toolchain,
    pytest.mark.skipif(shutil.which("nvim") is None, reason="needs nvim (tests.setup_toolchains)"),
    pytest.mark.skipif(
        not fastcall.ENABLED, reason="cancelling a spinning guest needs the epoch guard"
    ),
]

# A stream, a stream that fails, and a cancelled one, through docs/streaming.md's module.
DRIVER = """
local wasmd_stream = dofile(%(module)s)
local sock = %(sock)s
local out = { chunks = {} }
local ok, err = pcall(function()
  local done = false
  wasmd_stream.stream(sock, 'streamer.count', { 40 }, function(value)
    table.insert(out.chunks, value)
  end, function(e, result) out.error, out.result, done = e, result, true end, 4)
  assert(vim.wait(20000, function() return done end), 'the stream did not end')
  local failed = false
  wasmd_stream.stream(sock, 'streamer.bad', {}, function() end, function(e)
    out.bad = e
    failed = true
  end)
  assert(vim.wait(20000, function() return failed end), 'no error')
  local first, cancelled = false, false
  local handle
  handle = wasmd_stream.stream(sock, 'streamer.spin', {}, function()
    first = true
    handle.cancel()
  end, function(e)
    out.cancelled = e
    cancelled = true
  end)
  assert(vim.wait(20000, function() return cancelled end), 'not cancelled')
end)
if not ok then out.failure = tostring(err) end
local f = assert(io.open(%(out)s, 'w'))
f:write(vim.fn.json_encode(out))
f:close()
vim.cmd('qa!')
"""


async def test_neovim_streams_with_the_documented_module(short_tmp: Path) -> None:
    blocks = re.findall(r"```lua\n(.*?)```", (REPO / "docs" / "streaming.md").read_text(), re.S)
    module = short_tmp / "wasmd_stream.lua"
    module.write_text(blocks[0])
    out = short_tmp / "out.json"
    plugins = {"streamer.wat": STREAMER, "streamer.toml": "[plugin]\ntimeout_ms = 20000\n"}
    async with running_daemon(short_tmp, plugins) as daemon:
        driver = short_tmp / "driver.lua"
        driver.write_text(
            DRIVER
            % {
                "module": json.dumps(str(module)),
                "sock": json.dumps(str(daemon.socket)),
                "out": json.dumps(str(out)),
            }
        )
        with anyio.fail_after(60):
            await anyio.run_process(
                ["nvim", "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {driver}"],
                check=False,
            )
    seen = json.loads(out.read_text())
    assert "failure" not in seen, seen.get("failure")
    assert seen["chunks"] == list(range(40))  # with a window of 4: credit granted as handled
    assert seen["result"] == 40
    assert "error" not in seen
    assert seen["bad"][0] == 4
    assert seen["cancelled"][0] == 11
