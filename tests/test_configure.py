"""``wasmd.configure``: a connection chooses its error shape; others keep theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmd import ErrorCode, WasmdError

from .conftest import running_daemon
from .wat import ARITH


async def test_neovim_error_shape_is_per_connection(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with daemon.client() as nvim_like, daemon.client() as other:
            assert await nvim_like.call("wasmd.configure", {"errors": "neovim"}) == {
                "errors": "neovim"
            }
            with pytest.raises(WasmdError) as shaped:
                await nvim_like.call("arith.div", 1, 0)
            assert (shaped.value.code, shaped.value.message, shaped.value.data) == (
                1,
                "trap (4): integer divide by zero",
                None,
            )
            with pytest.raises(WasmdError) as plain:
                await other.call("arith.div", 1, 0)
            assert (plain.value.code, plain.value.message) == (
                ErrorCode.TRAP,
                "integer divide by zero",
            )
            assert await nvim_like.call("arith.add", 2, 3) == 5  # results are unchanged
            assert await nvim_like.call("wasmd.configure", {"errors": "wasmd"}) == {
                "errors": "wasmd"
            }
            with pytest.raises(WasmdError) as back:
                await nvim_like.call("arith.div", 1, 0)
            assert back.value.code == ErrorCode.TRAP


@pytest.mark.parametrize(
    "params",
    [[], [{"errors": "vim"}], [{"errors": 1}], [{"colour": "red"}], ["neovim"], [{}, {}]],
)
async def test_configure_refuses_what_it_does_not_know(
    short_tmp: Path, params: list[object]
) -> None:
    async with running_daemon(short_tmp, {"arith.wat": ARITH}) as daemon:
        async with daemon.client() as client:
            with pytest.raises(WasmdError) as refused:
                await client.call("wasmd.configure", *params)
            assert refused.value.code == ErrorCode.INVALID_PARAMS
            assert "wasmd.configure takes" in refused.value.message
            with pytest.raises(WasmdError) as unchanged:
                await client.call("arith.div", 1, 0)
            assert unchanged.value.code == ErrorCode.TRAP
