"""``wasmd.load`` acts with the caller's rights (wasmd/plugins/by_path.py,
wasmd/plugins/access.py), plug-in folders others may write or that hold plug-in directories
are refused, and who may rescan.

The attacks are issue 22's: each test failed on the code before the fix."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import running_daemon, write_plugins
from tests.other_uid import call_as, needs_root_and_setpriv
from tests.wat_abi import MSGPACK_GUEST, READ_SECRET_COMMAND, relay_guest
from wasmd.errors import ErrorCode, WasmdError
from wasmd.plugins.access import Caller, Hidden, Refused, resolve_as
from wasmd.plugins.by_path import check_as_caller
from wasmd.plugins.snapshot import take_snapshot

ATTACKER, VICTIM = 4343, 4444
ONE = '(module (func (export "who") (result i32) i32.const 1))'


def own(path: Path, uid: int, mode: int) -> None:
    os.chown(path, uid, uid)
    path.chmod(mode)


def grant(host: str, *, writable: bool = False) -> str:
    flag = "true" if writable else "false"
    return f'[wasi]\npreopens = [{{ host = "{host}", guest = "/d", writable = {flag} }}]\n'


def as_attacker(**config: Any) -> dict[str, Any]:
    return {"socket_mode": 0o666, "allow_uids": (ATTACKER,), "load_uids": (0, ATTACKER)} | config


@needs_root_and_setpriv
async def test_a_load_by_another_uid_reaches_only_what_that_uid_may(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    # Issue 22 item 1: the attacker's plug-in in a shared sticky folder, granting (writable)
    # the victim's private folder that sits beside it.
    shared = short_tmp / "shared"
    write_plugins(
        shared,
        {
            "plugin.wat": READ_SECRET_COMMAND,
            "plugin.toml": grant("victim-private", writable=True),
            "victim-private/secret.txt": "the victim's\n",
        },
    )
    own(shared / "victim-private" / "secret.txt", VICTIM, 0o600)
    own(shared / "victim-private", VICTIM, 0o700)
    for name in ("plugin.wat", "plugin.toml"):
        own(shared / name, ATTACKER, 0o644)
    shared.chmod(0o1777)
    # The same grant from a folder of the attacker's own, which holds the victim's folder,
    # and one that grants a folder anyone may write but the attacker does not own.
    mine = short_tmp / "mine"
    write_plugins(
        mine,
        {
            "plug/plugin.wat": READ_SECRET_COMMAND,
            "plug/plugin.toml": grant("victim"),
            "plug/victim/secret.txt": "the victim's\n",
            "open/plugin.wat": READ_SECRET_COMMAND,
            "open/plugin.toml": grant("anyones", writable=True),
        },
    )
    (mine / "open" / "anyones").mkdir()
    own(mine / "plug" / "victim" / "secret.txt", VICTIM, 0o600)
    own(mine / "plug" / "victim", VICTIM, 0o700)
    own(mine / "open" / "anyones", VICTIM, 0o777)
    for path in (mine, *mine.rglob("*")):
        if path.stat().st_uid == 0:
            own(path, ATTACKER, 0o755 if path.is_dir() else 0o644)
    async with running_daemon(short_tmp, {}, **as_attacker()) as daemon:
        calls = [
            ("wasmd.load", [str(shared)]),
            ("wasmd.load", [str(mine / "plug")]),
            ("wasmd.load", [str(mine / "open")]),
            ("wasmd.list", []),
        ]
        sticky, plug, anyones, listed = await call_as(ATTACKER, daemon.socket, calls)
    assert sticky["error"][0] == ErrorCode.INVALID_PARAMS
    assert "written by group or others (mode 1777)" in sticky["error"][1]
    assert plug["error"][0] == ErrorCode.PERMISSION_DENIED
    assert "may not read the folder" in plug["error"][1]
    assert anyones["error"][0] == ErrorCode.PERMISSION_DENIED
    assert "does not own" in anyones["error"][1]
    assert listed == {"result": []}
    assert sorted(p.name for p in (shared / "victim-private").iterdir()) == ["secret.txt"]


@needs_root_and_setpriv
async def test_the_attacker_may_still_grant_its_own_folder(short_tmp: Path) -> None:
    """The rule refuses the grants above, not grants as such."""
    short_tmp.chmod(0o755)
    mine = short_tmp / "mine"
    write_plugins(
        mine,
        {
            "reader/plugin.wat": READ_SECRET_COMMAND,
            "reader/plugin.toml": grant("data"),
            "reader/data/secret.txt": "mine\n",
        },
    )
    for path in (mine, *mine.rglob("*")):
        own(path, ATTACKER, 0o755 if path.is_dir() else 0o644)
    async with (
        running_daemon(short_tmp, {}, **as_attacker()) as daemon,
        daemon.client() as client,
    ):
        (loaded,) = await call_as(ATTACKER, daemon.socket, [("wasmd.load", [str(mine / "reader")])])
        assert loaded["result"]["name"] == "reader"
        assert (await client.call("reader.run", ""))["stdout"] == b"mine\n"


def _without(path: Path, message: str) -> str:
    return message.replace(str(path), "PATH")


@needs_root_and_setpriv
async def test_no_load_reveals_what_the_caller_cannot_see(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    # Issue 22 item 3: a 0600 module in a root-only folder, with a secret in its manifest.
    private = short_tmp / "private"
    write_plugins(
        private,
        {"m.wat": MSGPACK_GUEST, "m.toml": '[config]\napi_key = "k3y"\n', "notes.txt": "x"},
    )
    for path in private.iterdir():
        path.chmod(0o600)
    private.chmod(0o700)
    readable = short_tmp / "readable"
    write_plugins(readable, {"m.wat": MSGPACK_GUEST})
    (readable / "m.wat").chmod(0o600)
    async with running_daemon(short_tmp, {}, **as_attacker()) as daemon:
        targets = [private / "m.wat", private / "nope.wat", private / "notes.txt", private / "d"]
        calls = [("wasmd.load", [str(t)]) for t in targets]
        calls += [("wasmd.load", [str(readable / "m.wat")]), ("wasmd.list", [])]
        *hidden, unreadable, listed = await call_as(ATTACKER, daemon.socket, calls)
    codes = {outcome["error"][0] for outcome in hidden}
    assert codes == {ErrorCode.INVALID_PARAMS}
    texts = {_without(t, o["error"][1]) for t, o in zip(targets, hidden, strict=True)}
    assert len(texts) == 1, texts  # one answer for a module, a missing file, a text file
    assert "k3y" not in str(hidden)
    assert unreadable["error"][0] == ErrorCode.PERMISSION_DENIED
    assert listed == {"result": []}


async def test_paths_the_walk_will_not_take_get_a_precise_code(short_tmp: Path) -> None:
    async with running_daemon(short_tmp, {}) as daemon, daemon.client() as client:
        long = ("/proc/1/cwd", "/" + "a" * 5000, "/x/" + "b" * 300, "/x" * 3000, "x" * 9000)
        for path in ("/proc/self/root/etc", *long):
            with pytest.raises(WasmdError) as info:
                await client.call("wasmd.load", path)
            assert info.value.code == ErrorCode.INVALID_PARAMS, (path[:20], info.value)
            assert len(info.value.message) < 600  # the path is not echoed whole
        assert await client.ping() == "pong"


@needs_root_and_setpriv
async def test_describe_of_a_plugin_loaded_by_path_hides_values_from_others(
    short_tmp: Path,
) -> None:
    short_tmp.chmod(0o755)
    private = short_tmp / "private"
    write_plugins(private, {"m.wat": MSGPACK_GUEST, "m.toml": '[config]\napi_key = "k3y"\n'})
    private.chmod(0o700)
    async with (
        running_daemon(short_tmp, {}, **as_attacker()) as daemon,
        daemon.client() as client,
    ):
        await client.load_path(private / "m.wat")
        assert (await client.describe("m"))["manifest"]["config"]["api_key"] == "k3y"
        (described,) = await call_as(ATTACKER, daemon.socket, [("wasmd.describe", ["m"])])
    assert described["result"]["manifest"]["config"]["api_key"] == "<hidden>"


@needs_root_and_setpriv
async def test_reload_needs_the_right_to_load(short_tmp: Path) -> None:
    async with running_daemon(
        short_tmp, {"x.wat": ONE}, socket_mode=0o666, allow_uids=(ATTACKER,)
    ) as daemon:
        short_tmp.chmod(0o755)
        calls = [("wasmd.reload", []), ("wasmd.reload", ["x"]), ("x.who", [])]
        full, one, who = await call_as(ATTACKER, daemon.socket, calls)
        async with daemon.client() as client:
            assert "x" in (await client.call("wasmd.reload"))["unchanged"]  # root may
    assert full["error"][0] == ErrorCode.PERMISSION_DENIED
    assert "load_uids" in full["error"][1]
    assert one["error"][0] == ErrorCode.PERMISSION_DENIED
    assert who == {"result": 1}


async def test_a_plugin_directory_is_no_folder_plugin(short_tmp: Path) -> None:
    # Issue 22 item 2: a search directory holding plugin.wat/plugin.toml, loaded by path,
    # granting another plug-in's folder; and the same through nested search directories.
    victim = {"victim/plugin.wat": MSGPACK_GUEST, "victim/plugin.toml": '[config]\nk = "s"\n'}
    lib = {"plugin.wat": READ_SECRET_COMMAND, "plugin.toml": grant("victim")}
    inner = short_tmp / "plugins.d" / "sub"
    write_plugins(inner, {**lib, **victim})
    async with (
        running_daemon(short_tmp, victim | lib, extra_dirs=(inner,)) as daemon,
        daemon.client() as client,
    ):
        listed = {p["name"]: p for p in await client.list()}
        assert listed["sub"]["state"] == "failed"
        assert "holds the plug-in directory" in listed["sub"]["error"]
        with pytest.raises(WasmdError, match="is or holds the plug-in directory") as info:
            await client.call("wasmd.load", str(daemon.plugins_dir))
        assert info.value.code == ErrorCode.INVALID_PARAMS
        assert "plugins" not in {p["name"] for p in await client.list()}
        assert listed["victim"]["state"] == "ready"


async def test_a_folder_reached_through_a_linked_parent_loads_under_its_real_path(
    short_tmp: Path,
) -> None:
    real = short_tmp / "real"
    write_plugins(real, {"plug/plugin.wat": ONE})
    (short_tmp / "link").symlink_to(real)
    async with running_daemon(short_tmp, {}) as daemon, daemon.client() as client:
        loaded = await client.call("wasmd.load", str(short_tmp / "link" / "plug"))
        assert loaded["path"] == str(real.resolve() / "plug" / "plugin.wat")
        again = await client.call("wasmd.load", str(real / "plug"))
        assert again["how"] == "load"
        assert await client.call("plug.who") == 1


async def test_a_name_trusted_by_a_callee_means_the_plugin_directories_one(
    short_tmp: Path,
) -> None:
    # Issue 22 item 10: "b" trusts caller "a", which is absent; a load_uids user loads an "a".
    plugins = {"b.wat": MSGPACK_GUEST, "b.toml": '[access]\nplugins = ["a"]\n'}
    plugins |= {"open.wat": MSGPACK_GUEST, "open.toml": '[access]\nplugins = ["*"]\n'}
    write_plugins(
        short_tmp / "mine", {"a.wat": relay_guest({"to_b": "b.echo", "to_open": "open.echo"})}
    )
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        await client.call("wasmd.load", str(short_tmp / "mine" / "a.wat"))
        error, result = await client.call("a.to_b", 1)
        assert result is None
        assert error[0] == ErrorCode.PERMISSION_DENIED
        assert re.search("loaded by path", error[1])
        assert await client.call("a.to_open", 1) == [None, [1]]


def test_resolve_as_walks_as_the_caller(short_tmp: Path) -> None:
    """The walk itself, without a daemon: search permission, links, and its refusals."""
    nobody = Caller(ATTACKER, ATTACKER)
    tmp_path = short_tmp
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "f").write_text("x")
    (tmp_path / "link").symlink_to("open")
    tmp_path.chmod(0o755)
    real, _ = resolve_as(nobody, str(tmp_path / "link" / "f"))
    assert real == tmp_path.resolve() / "open" / "f"
    assert resolve_as(nobody, str(tmp_path / "link" / ".." / "open"))[0] == real.parent
    (tmp_path / "open").chmod(0o700)
    with pytest.raises(Hidden):
        resolve_as(nobody, str(tmp_path / "link" / "f"))
    with pytest.raises(Hidden):
        resolve_as(nobody, str(tmp_path / "missing"))
    assert resolve_as(Caller(0, 0), str(tmp_path / "link" / "f"))[0] == real
    with pytest.raises(Refused, match="/proc"):
        resolve_as(Caller(0, 0), "/proc/self/cwd")
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(Refused, match="symbolic links"):
        resolve_as(Caller(0, 0), str(tmp_path / "loop"))


async def test_a_folder_plugin_others_may_write_to_is_refused_on_the_search_path(
    short_tmp: Path,
) -> None:
    plugins = {"shared/plugin.wat": ONE, "mine/plugin.wat": ONE}
    write_plugins(short_tmp / "plugins.d", plugins)
    (short_tmp / "plugins.d" / "shared").chmod(0o1777)
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        listed = {p["name"]: p for p in await client.list()}
    assert listed["mine"]["state"] == "ready"
    assert listed["shared"]["state"] == "failed"
    assert "written by group or others (mode 1777)" in listed["shared"]["error"]


@needs_root_and_setpriv
async def test_the_callers_groups_count_as_the_kernel_counts_them(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    team = short_tmp / "team"
    write_plugins(team, {"t.wat": ONE})
    os.chown(team / "t.wat", 0, 4545)
    (team / "t.wat").chmod(0o640)
    os.chown(team, 0, 4545)
    team.chmod(0o750)
    async with running_daemon(short_tmp, {}, **as_attacker()) as daemon:
        call = [("wasmd.load", [str(team / "t.wat")])]
        (outsider,) = await call_as(ATTACKER, daemon.socket, call)
        (member,) = await call_as(ATTACKER, daemon.socket, call, groups=[4545])
    assert outsider["error"][0] == ErrorCode.INVALID_PARAMS  # it may not even see it
    assert "may not see it" in outsider["error"][1]
    assert member["result"]["name"] == "t"


def test_a_file_swapped_after_the_check_is_refused(short_tmp: Path) -> None:
    """What the walk checked is compared with what was read (device, inode): a module
    replaced in between (another inode) fails the load."""
    write_plugins(short_tmp, {"m.wat": ONE})
    short_tmp.chmod(0o755)
    checked = check_as_caller(Caller(0, 0), str(short_tmp / "m.wat"), ())
    before = take_snapshot(checked.source)
    checked.same_files(before.stamps)  # the same file: fine
    (short_tmp / "m.wat").rename(short_tmp / "old.wat")
    write_plugins(short_tmp, {"m.wat": ONE})
    with pytest.raises(WasmdError, match="changed while it was being loaded"):
        checked.same_files(take_snapshot(checked.source).stamps)
