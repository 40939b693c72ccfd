"""``wasmd.configure``: a connection chooses its error shape; others keep theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasmd import ErrorCode, WasmdError
from wasmd.configure import ErrorEncoder, configure, neovim_error

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
def test_configure_refuses_what_it_does_not_know(params: list[object]) -> None:
    """A pure function of a session and the params: no daemon needed to see it refuse."""
    session = _Session()
    with pytest.raises(WasmdError) as refused:
        configure(session, list(params))
    assert refused.value.code == ErrorCode.INVALID_PARAMS
    assert "wasmd.configure takes" in refused.value.message
    assert session.encode_error is WasmdError.to_wire  # unchanged


def test_configure_sets_and_reports_the_shape() -> None:
    session = _Session()
    assert configure(session, [{}]) == {"errors": "wasmd"}
    assert configure(session, [{"errors": "neovim"}]) == {"errors": "neovim"}
    assert session.encode_error is neovim_error
    timeout = WasmdError(ErrorCode.TIMEOUT, "call exceeded its deadline of 5 ms")
    assert session.encode_error(timeout) == [1, "timeout (5): call exceeded its deadline of 5 ms"]
    assert configure(session, [{"errors": "wasmd"}]) == {"errors": "wasmd"}
    assert session.encode_error(timeout) == [5, "call exceeded its deadline of 5 ms"]


class _Session:
    """What configure() needs of a connection: the error encoder it holds."""

    def __init__(self) -> None:
        self.encode_error: ErrorEncoder = WasmdError.to_wire
