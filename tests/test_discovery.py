from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from wasmd import discovery
from wasmd.client import open_client
from wasmd.config import DaemonConfig
from wasmd.daemon import serve
from wasmd.discovery import (
    DEFAULT_DIRS,
    PluginSource,
    ScanProblem,
    Shadowed,
    entry_name,
    is_ignored,
    scan,
    scan_dir,
    scan_name,
    search_path,
    source_from_path,
)
from wasmd.errors import ConfigError

from .conftest import running_daemon
from .wat import ARITH, COUNTER


def touch(path: Path, data: bytes = b"\0asm\1\0\0\0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reasons(problems: list[ScanProblem] | tuple[ScanProblem, ...]) -> dict[str, str]:
    return {p.path.name: p.reason for p in problems}


# -- is_ignored -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    [
        ".hidden.wasm",
        ".foo.wasm.swp",
        "foo.wasm~",
        "foo.wasm.tmp",
        "foo.wasm.part",
        "foo.wasm.swp",
        "foo.wasm.swx",
        "4913",
        "#foo.wasm#",
        ".#foo.wasm",
    ],
)
def test_ignored_names(filename: str) -> None:
    assert is_ignored(filename)


@pytest.mark.parametrize("filename", ["foo.wasm", "foo.wat", "foo.toml", "foo", "49130", "#"])
def test_names_not_ignored(filename: str) -> None:
    assert not is_ignored(filename)


@pytest.mark.parametrize(
    "filename",
    [
        ".hidden.wasm",
        "foo.wasm~",
        "foo.wasm.tmp",
        "foo.wasm.part",
        "foo.wasm.swp",
        "foo.swx",
        "4913",
        "#foo.wasm#",
    ],
)
def test_scan_skips_ignored_files(tmp_path: Path, filename: str) -> None:
    touch(tmp_path / filename)
    assert scan_dir(tmp_path) == ({}, [])


# -- search_path ------------------------------------------------------------------------------


def test_search_path_order(tmp_path: Path) -> None:
    a, b, c, d = (tmp_path / n for n in "abcd")
    env = {"WASMD_PLUGIN_PATH": f"{b}::{c}:"}
    assert search_path([a], env, [d]) == (a, b, c, d, *DEFAULT_DIRS)
    assert search_path([a], env, [d], include_defaults=False) == (a, b, c, d)
    assert search_path([], {}, [], include_defaults=False) == ()


def test_search_path_makes_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"WASMD_PLUGIN_PATH": "rel/env"}
    result = search_path([Path("cli")], env, [], include_defaults=False)
    assert result == (tmp_path / "cli", tmp_path / "rel/env")


def test_search_path_removes_duplicates_keeping_the_first(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    other = tmp_path / "other"
    env = {"WASMD_PLUGIN_PATH": f"{other}:{real}"}
    config_dirs = [tmp_path / "x" / ".." / "real", other, Path("/etc/wasmd/plugins.d")]
    result = search_path([link, real], env, config_dirs)
    assert result == (link, other, *DEFAULT_DIRS)


# -- scan_dir ---------------------------------------------------------------------------------


def test_flat_files(tmp_path: Path) -> None:
    touch(tmp_path / "hello.wasm")
    touch(tmp_path / "text.wat", b"(module)")
    touch(tmp_path / "hello.toml", b"")
    touch(tmp_path / "README.md", b"not a plug-in")
    sources, problems = scan_dir(tmp_path)
    assert problems == []
    assert list(sources) == ["hello", "text"]
    assert sources["hello"] == PluginSource(
        "hello", tmp_path / "hello.wasm", tmp_path / "hello.toml", tmp_path, tmp_path
    )
    assert sources["text"] == PluginSource("text", tmp_path / "text.wat", None, tmp_path, tmp_path)


def test_folder_plugins(tmp_path: Path) -> None:
    touch(tmp_path / "kv" / "plugin.wasm")
    touch(tmp_path / "kv" / "plugin.toml", b"")
    touch(tmp_path / "kv" / "data" / "seed.json", b"{}")
    touch(tmp_path / "wat-one" / "plugin.wat", b"(module)")
    touch(tmp_path / "just-data" / "table.csv", b"a,b")
    (tmp_path / "empty").mkdir()
    sources, problems = scan_dir(tmp_path)
    assert problems == []  # folders without a module are data, silently skipped
    assert list(sources) == ["kv", "wat-one"]
    kv = tmp_path / "kv"
    assert sources["kv"] == PluginSource(
        "kv", kv / "plugin.wasm", kv / "plugin.toml", kv, tmp_path, folder=True
    )
    assert sources["wat-one"].module_path == tmp_path / "wat-one" / "plugin.wat"
    assert sources["wat-one"].manifest_path is None
    assert sources["wat-one"].root == tmp_path / "wat-one"


def test_names_are_sorted(tmp_path: Path) -> None:
    for name in ["zeta", "alpha", "m_id", "0day"]:
        touch(tmp_path / f"{name}.wasm")
    assert list(scan_dir(tmp_path)[0]) == ["0day", "alpha", "m_id", "zeta"]


@pytest.mark.parametrize(
    "filename", ["Hello.wasm", "my.plugin.wasm", "-dash.wasm", "_x.wat", f"{'a' * 65}.wasm"]
)
def test_invalid_names(tmp_path: Path, filename: str) -> None:
    touch(tmp_path / filename)
    sources, problems = scan_dir(tmp_path)
    assert sources == {}
    assert len(problems) == 1
    assert problems[0].path == tmp_path / filename
    assert problems[0].reason.startswith("invalid plug-in name")


def test_longest_valid_name(tmp_path: Path) -> None:
    touch(tmp_path / f"{'a' * 64}.wasm")
    assert list(scan_dir(tmp_path)[0]) == ["a" * 64]


def test_invalid_folder_name_with_a_module(tmp_path: Path) -> None:
    touch(tmp_path / "My Plugin" / "plugin.wasm")
    sources, problems = scan_dir(tmp_path)
    assert sources == {}
    assert problems == [
        ScanProblem(
            tmp_path / "My Plugin" / "plugin.wasm",
            "invalid plug-in name 'My Plugin': must match [a-z0-9][a-z0-9_-]{0,63}",
        )
    ]


def test_reserved_name(tmp_path: Path) -> None:
    touch(tmp_path / "wasmd.wasm")
    touch(tmp_path / "ok.wasm")
    sources, problems = scan_dir(tmp_path)
    assert list(sources) == ["ok"]
    assert len(problems) == 1
    assert "reserved" in problems[0].reason
    assert problems[0].path == tmp_path / "wasmd.wasm"


def test_wasm_wins_over_wat(tmp_path: Path) -> None:
    touch(tmp_path / "both.wasm")
    touch(tmp_path / "both.wat", b"(module)")
    sources, problems = scan_dir(tmp_path)
    assert sources["both"].module_path == tmp_path / "both.wasm"
    assert problems == [
        ScanProblem(tmp_path / "both.wat", f"ignored: {tmp_path / 'both.wasm'} takes precedence")
    ]


def test_wasm_wins_over_wat_inside_a_folder(tmp_path: Path) -> None:
    touch(tmp_path / "f" / "plugin.wasm")
    touch(tmp_path / "f" / "plugin.wat", b"(module)")
    sources, problems = scan_dir(tmp_path)
    assert sources["f"].module_path == tmp_path / "f" / "plugin.wasm"
    assert reasons(problems) == {
        "plugin.wat": f"ignored: {tmp_path}/f/plugin.wasm takes precedence"
    }


def test_file_wins_over_folder(tmp_path: Path) -> None:
    touch(tmp_path / "dup.wat", b"(module)")
    touch(tmp_path / "dup" / "plugin.wasm")
    sources, problems = scan_dir(tmp_path)
    assert sources["dup"].module_path == tmp_path / "dup.wat"
    assert sources["dup"].root == tmp_path
    assert problems == [
        ScanProblem(
            tmp_path / "dup" / "plugin.wasm", f"ignored: {tmp_path / 'dup.wat'} takes precedence"
        )
    ]


def test_manifest_without_a_module(tmp_path: Path) -> None:
    touch(tmp_path / "lonely.toml", b"")
    touch(tmp_path / "folder" / "plugin.toml", b"")
    sources, problems = scan_dir(tmp_path)
    assert sources == {}
    assert problems == [
        ScanProblem(tmp_path / "folder" / "plugin.toml", "manifest without a module"),
        ScanProblem(tmp_path / "lonely.toml", "manifest without a module"),
    ]


def test_flat_manifest_beside_a_folder_plugin_is_reported(tmp_path: Path) -> None:
    touch(tmp_path / "kv" / "plugin.wasm")
    touch(tmp_path / "kv.toml", b"")
    sources, problems = scan_dir(tmp_path)
    assert sources["kv"].manifest_path is None
    assert reasons(problems)["kv.toml"].startswith("ignored: the folder plug-in")


def test_linked_files_are_sources_so_the_loader_refuses_them(tmp_path: Path) -> None:
    """A module or manifest that is a link (to a file or to nothing) is still there: the
    loader refuses it by name instead of treating it as absent, and a link to a folder is not
    entered (DESIGN.md section 2)."""
    store = tmp_path / "store"
    real = touch(store / "v2.wasm")
    touch(store / "folder" / "plugin.wasm")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "linked.wasm").symlink_to(real)
    (plugins / "gone.wasm").symlink_to(tmp_path / "nowhere.wasm")
    touch(plugins / "plain.wasm")
    (plugins / "plain.toml").symlink_to(tmp_path / "nowhere.toml")
    (plugins / "linkdir").symlink_to(store / "folder")
    sources, problems = scan_dir(plugins)
    assert sorted(sources) == ["gone", "linked", "plain"]
    assert sources["linked"].module_path == plugins / "linked.wasm"
    assert sources["gone"].module_path == plugins / "gone.wasm"
    assert sources["plain"].manifest_path == plugins / "plain.toml"
    assert problems == [ScanProblem(plugins / "linkdir", discovery.SYMLINK_NOT_FOLLOWED)]


def test_a_link_inside_a_folder_plugin_is_a_source_too(tmp_path: Path) -> None:
    touch(tmp_path / "kv" / "plugin.wasm")
    (tmp_path / "kv" / "plugin.toml").symlink_to("/etc/passwd")
    sources, problems = scan_dir(tmp_path)
    assert problems == []
    assert sources["kv"].manifest_path == tmp_path / "kv" / "plugin.toml"


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.symlink_to("/etc/hostname"),
        lambda p: p.symlink_to(p.parent / "nowhere"),
        lambda p: os.mkfifo(p),
        lambda p: p.mkdir(),
    ],
    ids=["link", "dangling-link", "fifo", "folder"],
)
def test_open_plugin_file_refuses_all_but_a_regular_file(tmp_path: Path, make: object) -> None:
    touch(tmp_path / "p.wasm")
    source = scan_dir(tmp_path)[0]["p"]
    manifest = tmp_path / "p.toml"
    make(manifest)  # type: ignore[operator]
    with pytest.raises(discovery.PluginFileError) as caught:
        discovery.open_plugin_file(source, manifest)
    assert caught.value.strerror in (discovery.SYMLINK_NOT_FOLLOWED, "not a regular file")


def test_open_plugin_file_refuses_a_folder_plugin_swapped_for_a_link(tmp_path: Path) -> None:
    """The folder is opened without following too: a link put in its place after the scan
    leads nowhere."""
    touch(tmp_path / "kv" / "plugin.wasm")
    source = scan_dir(tmp_path)[0]["kv"]
    os.close(discovery.open_plugin_file(source, source.module_path))
    (tmp_path / "kv").rename(tmp_path / "elsewhere")
    (tmp_path / "kv").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(discovery.PluginFileError) as caught:
        discovery.open_plugin_file(source, source.module_path)
    assert caught.value.strerror == discovery.SYMLINK_NOT_FOLLOWED


def test_missing_directory_is_empty(tmp_path: Path) -> None:
    assert scan_dir(tmp_path / "absent") == ({}, [])


def test_file_instead_of_directory(tmp_path: Path) -> None:
    path = touch(tmp_path / "notadir")
    sources, problems = scan_dir(path)
    assert sources == {}
    assert len(problems) == 1
    assert problems[0].reason.startswith("cannot read directory")


def test_file_vanishing_mid_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "a.wasm")
    doomed = touch(tmp_path / "b.wasm")
    touch(tmp_path / "c.wasm")
    real_scan_name = discovery.scan_name

    def racing(directory: Path, name: str) -> tuple[PluginSource | None, list[ScanProblem]]:
        if name == "b":  # listed, then deleted before it is looked at: an atomic replace
            doomed.unlink(missing_ok=True)
        return real_scan_name(directory, name)

    monkeypatch.setattr(discovery, "scan_name", racing)
    sources, problems = scan_dir(tmp_path)
    assert list(sources) == ["a", "c"]
    assert problems == []


def test_scan_name_settles_one_name(tmp_path: Path) -> None:
    touch(tmp_path / "one.wasm")
    touch(tmp_path / "one.toml", b"")
    source, problems = scan_name(tmp_path, "one")
    assert source is not None
    assert source.manifest_path == tmp_path / "one.toml"
    assert problems == []
    assert scan_name(tmp_path, "two") == (None, [])


# -- scan -------------------------------------------------------------------------------------


def test_shadowing_across_directories(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    touch(first / "echo.wasm")
    touch(second / "echo" / "plugin.wasm")
    touch(second / "only-second.wat", b"(module)")
    result = scan([first, second])
    assert list(result.sources) == ["echo", "only-second"]
    assert result.sources["echo"].search_dir == first
    assert result.shadowed == (
        Shadowed("echo", first / "echo.wasm", second / "echo" / "plugin.wasm"),
    )
    assert result.problems == ()
    assert result.missing_dirs == ()


def test_missing_dirs_are_recorded(tmp_path: Path) -> None:
    present = tmp_path / "present"
    touch(present / "a.wasm")
    absent = tmp_path / "absent"
    result = scan([absent, present])
    assert list(result.sources) == ["a"]
    assert result.missing_dirs == (absent,)


def test_scan_collects_problems_from_every_directory(tmp_path: Path) -> None:
    touch(tmp_path / "d1" / "Bad.wasm")
    touch(tmp_path / "d2" / "x.toml", b"")
    result = scan([tmp_path / "d1", tmp_path / "d2"])
    assert result.sources == {}
    assert [p.path for p in result.problems] == [tmp_path / "d1/Bad.wasm", tmp_path / "d2/x.toml"]


def test_a_directory_listed_twice_does_not_shadow_itself(tmp_path: Path) -> None:
    touch(tmp_path / "a.wasm")
    result = scan([tmp_path, tmp_path])
    assert list(result.sources) == ["a"]
    assert result.shadowed == ()


# -- source_from_path -------------------------------------------------------------------------


def test_source_from_file(tmp_path: Path) -> None:
    path = touch(tmp_path / "tool.wasm")
    assert source_from_path(path) == PluginSource("tool", path, None, tmp_path, None)
    manifest = touch(tmp_path / "tool.toml", b"")
    assert source_from_path(path).manifest_path == manifest


def test_source_from_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "rel.wat", b"(module)")
    monkeypatch.chdir(tmp_path)
    source = source_from_path(Path("rel.wat"))
    assert source.module_path == tmp_path / "rel.wat"
    assert source.module_path.is_absolute()


def test_source_from_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "kv"
    touch(folder / "plugin.wat", b"(module)")
    touch(folder / "plugin.toml", b"")
    expected = PluginSource(
        "kv", folder / "plugin.wat", folder / "plugin.toml", folder, None, folder=True
    )
    assert source_from_path(folder) == expected
    monkeypatch.chdir(folder)
    assert source_from_path(Path(".")) == expected


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("missing.wasm", "no such file or directory"),
        ("Bad.wasm", "invalid plug-in name 'Bad'"),
        ("wasmd.wasm", "reserved"),
        ("notes.txt", "not a plug-in"),
        ("data", "folder holds no plugin.wasm or plugin.wat"),
    ],
)
def test_source_from_path_errors(tmp_path: Path, relative: str, message: str) -> None:
    touch(tmp_path / "Bad.wasm")
    touch(tmp_path / "wasmd.wasm")
    touch(tmp_path / "notes.txt", b"hi")
    touch(tmp_path / "data" / "x.csv", b"")
    with pytest.raises(ConfigError, match=message) as info:
        source_from_path(tmp_path / relative)
    assert info.value.source == str(tmp_path / relative)


# -- entry_name -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("foo.wasm", "foo"),
        ("foo.wat", "foo"),
        ("foo.toml", "foo"),
        ("foo", "foo"),
        ("foo/plugin.wasm", "foo"),
        ("foo/data/deep/file.bin", "foo"),
        ("Bad.wasm", "Bad"),  # scan_name reports the bad name
        (".foo.wasm", None),
        ("foo.wasm~", None),
        ("foo.wasm.tmp", None),
        ("foo.wasm.part", None),
        ("foo.wasm.swp", None),
        ("4913", None),
        ("#foo.wasm#", None),
        ("foo/.plugin.wasm.swp", None),
        (".git/HEAD", None),
        ("", None),
    ],
)
def test_entry_name(tmp_path: Path, filename: str, name: str | None) -> None:
    assert entry_name(tmp_path, filename) == name


def test_entry_name_of_absolute_paths(tmp_path: Path) -> None:
    assert entry_name(tmp_path, str(tmp_path / "foo" / "plugin.toml")) == "foo"
    assert entry_name(tmp_path, str(tmp_path / "bar.wasm")) == "bar"
    assert entry_name(tmp_path, "/elsewhere/bar.wasm") is None


def test_entry_name_agrees_with_scan(tmp_path: Path) -> None:
    touch(tmp_path / "flat.wasm")
    touch(tmp_path / "folder" / "plugin.wasm")
    sources, _ = scan_dir(tmp_path)
    for name, source in sources.items():
        relative = os.path.relpath(source.module_path, tmp_path)
        assert entry_name(tmp_path, relative) == name


# -- hostile names, live --------------------------------------------------------------------


@pytest.mark.parametrize("watch", [False, True], ids=["no-watch", "watch"])
async def test_plugin_directory_whose_path_is_not_utf8_is_skipped(
    short_tmp: Path, watch: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: such a directory on the search path killed start-up, even with --no-watch."""
    bad = short_tmp / os.fsdecode(b"p\xfe")
    good = short_tmp / "good"
    touch(bad / "arith.wat", ARITH.encode())
    touch(good / "counter.wat", COUNTER.encode())
    sock = short_tmp / "wasmd.sock"
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: serve(
                DaemonConfig(socket=sock, plugin_dirs=(bad, good), watch=watch),
                task_status=task_status,
            )
        )
        async with open_client(sock) as client:
            assert [item["name"] for item in await client.list()] == ["counter"]
            assert await client.call("counter.incr") == 1
        tg.cancel_scope.cancel()
    warnings = [r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert warnings == [f"{short_tmp}/p\\xfe: ignored: the plug-in directory's path is not UTF-8"]


async def test_file_names_are_escaped_in_log_lines(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: a file name with a newline split its log line in two."""
    plugins = {"arith.wat": ARITH, "evil\nINFO forged line.wat": ARITH}
    async with running_daemon(short_tmp, plugins) as daemon, daemon.client() as client:
        assert [item["name"] for item in await client.list()] == ["arith"]
    problems = [r.getMessage() for r in caplog.records if "evil" in r.getMessage()]
    assert problems
    assert all("\n" not in message for message in problems), problems
    assert any("evil\\nINFO forged line.wat" in message for message in problems), problems
