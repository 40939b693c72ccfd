"""Finding plug-ins on the search path (DESIGN.md section 2).

Theory of operation: a plug-in directory holds entries of two shapes,

- ``NAME.wasm`` or ``NAME.wat``, with an optional manifest ``NAME.toml`` beside it;
- a folder ``NAME/`` holding ``plugin.wasm`` or ``plugin.wat``, an optional ``plugin.toml``,
  and whatever data the plug-in needs.

A scan lists a directory once, turns every entry into a candidate name (the stem of a
``.wasm``/``.wat``/``.toml`` file, or a folder's name), then settles each name on its own with
a few ``lstat`` calls (``scan_name``). The hot-reload watcher settles a changed name the same
way (``entry_name`` says which name a changed path belongs to), so a full scan and an
incremental one can never disagree.

Nothing here reads a module's bytes or parses a manifest: discovery only says which files
make up which plug-in. Problems (a bad name, two candidates for one name, a stray manifest)
are collected as ``ScanProblem`` values, never raised, because one broken entry must not stop
the others from loading. Editor and downloader leftovers are ignored outright, and files that
vanish mid-scan (an atomic replace in progress) are skipped silently: the watcher will see the
next state.

Across directories the first occurrence of a name wins; later twins are ``Shadowed``.

Symbolic links inside a plug-in directory are never followed (DESIGN.md section 2): the search
directories themselves may be links, but a plug-in's own entries are judged by ``lstat``. A
module or manifest that is a link (dangling or not) still counts as present, so that the loader
refuses it by name (``open_plugin_file``) and a version already serving keeps serving; a
missing manifest must never be mistaken for one that is there but unreadable, because that
would drop its ``[access]`` list. A folder ``NAME/`` that is a link is reported, not entered.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RESERVED = frozenset({"wasmd"})
DEFAULT_DIRS = (Path("/etc/wasmd/plugins.d"), Path("/usr/lib/wasmd/plugins.d"))
MODULE_SUFFIXES = (".wasm", ".wat")  # in order of preference
_IGNORED_SUFFIXES = ("~", ".tmp", ".part", ".swp", ".swx")


@dataclass(frozen=True)
class PluginSource:
    name: str
    module_path: Path  # the .wasm or .wat file
    manifest_path: Path | None  # NAME.toml or NAME/plugin.toml, if it exists
    root: Path  # what manifest-relative paths resolve against
    search_dir: Path | None  # None when loaded directly from a path
    folder: bool = False  # NAME/ with plugin.wasm|wat: root is the plug-in's own folder


@dataclass(frozen=True)
class Shadowed:
    name: str
    winner: Path  # module path of the plug-in that is served
    loser: Path  # module path of the twin further down the search path


@dataclass(frozen=True)
class ScanProblem:
    path: Path
    reason: str


@dataclass(frozen=True)
class ScanResult:
    sources: dict[str, PluginSource]  # sorted by name
    shadowed: tuple[Shadowed, ...]
    problems: tuple[ScanProblem, ...]
    missing_dirs: tuple[Path, ...]


def is_ignored(filename: str) -> bool:
    """Whether a file name is an editor's, downloader's or hidden file that is never a plug-in."""
    return (
        filename.startswith(".")  # hidden files, and atomic-write temporaries like .foo.wasm.XXXX
        or filename.endswith(_IGNORED_SUFFIXES)
        or filename == "4913"  # vim writes this to probe whether it may create files
        or (len(filename) > 1 and filename.startswith("#") and filename.endswith("#"))  # emacs
    )


def is_utf8(filename: str) -> bool:
    """Whether a name read from the file system is UTF-8 (else it holds surrogate escapes):
    wasmd's messages, events and fingerprints are UTF-8 text, so other names are ignored."""
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str | os.PathLike[str]) -> str:
    """A name or path as a log line or message may show it: bytes that are not UTF-8 as
    ``\\xNN``, and control characters escaped (a newline in a file name would split a line)."""
    decoded = os.fsencode(text).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in decoded)


NOT_UTF8 = "ignored: the name is not UTF-8"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a plug-in, or None if it can."""
    if not NAME_RE.fullmatch(name):
        return f"invalid plug-in name {name!r}: must match {NAME_RE.pattern}"
    if name in RESERVED:
        return f"plug-in name {name!r} is reserved for wasmd's built-in methods"
    return None


def search_path(
    cli_dirs: Sequence[Path],
    environ: Mapping[str, str],
    config_dirs: Sequence[Path],
    *,
    include_defaults: bool = True,
) -> tuple[Path, ...]:
    """The plug-in directories, in priority order, absolute, each once."""
    env_dirs = [Path(p) for p in environ.get("WASMD_PLUGIN_PATH", "").split(":") if p]
    candidates = [*cli_dirs, *env_dirs, *config_dirs, *(DEFAULT_DIRS if include_defaults else ())]
    seen: set[Path] = set()
    result: list[Path] = []
    for directory in candidates:
        directory = directory.absolute()
        # Two spellings of one folder (a symlink, "a/../b") would shadow every plug-in in it
        # with itself; compare resolved paths but report the path as the user wrote it.
        key = _resolved(directory)
        if key not in seen:
            seen.add(key)
            result.append(directory)
    return tuple(result)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop; fall back to the lexical form
        return Path(os.path.normpath(path))


def _lstat_mode(path: Path) -> int | None:
    """The file type bits of ``path`` itself (a link is a link), or None if nothing is there."""
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # NotADirectory: a parent is a plain file
        return None


def _is_file_entry(path: Path) -> bool:
    """Whether a module or manifest is there: any entry but a folder. A symbolic link counts,
    dangling or not, so the loader refuses it by name rather than skipping it."""
    mode = _lstat_mode(path)
    return mode is not None and not stat.S_ISDIR(mode)


def scan_name(directory: Path, name: str) -> tuple[PluginSource | None, list[ScanProblem]]:
    """Settle one candidate name in one directory: which files, if any, make up plug-in NAME."""
    problems: list[ScanProblem] = []
    files = [directory / f"{name}{s}" for s in MODULE_SUFFIXES if not is_ignored(name + s)]
    modules = [p for p in files if _is_file_entry(p)]  # a vanished file is not one
    folder = directory / name
    folder_module = None
    folder_mode = None if is_ignored(name) else _lstat_mode(folder)
    if folder_mode is not None and stat.S_ISLNK(folder_mode):
        problems.append(ScanProblem(folder, SYMLINK_NOT_FOLLOWED))
    elif folder_mode is not None and stat.S_ISDIR(folder_mode):
        folder_module, folder_problems = _folder_module(folder)
        problems += folder_problems
    manifest = directory / f"{name}.toml"
    has_manifest = not is_ignored(manifest.name) and _is_file_entry(manifest)
    # Precedence: .wasm over .wat, a file over a folder; every loser is reported.
    candidates = [*modules, *([folder_module] if folder_module else [])]
    if not candidates:
        if has_manifest:
            problems.append(ScanProblem(manifest, "manifest without a module"))
        return None, problems
    winner = candidates[0]
    problems += [ScanProblem(p, f"ignored: {winner} takes precedence") for p in candidates[1:]]
    reason = name_problem(name)
    if reason is not None:
        return None, [*problems, ScanProblem(winner, reason)]
    if modules:
        manifest_path = manifest if has_manifest else None
        source = PluginSource(name, winner, manifest_path, directory, directory)
        return source, problems
    if has_manifest:
        reason = f"ignored: the folder plug-in {folder} reads its own plugin.toml"
        problems.append(ScanProblem(manifest, reason))
    source = PluginSource(name, winner, _manifest_in(folder), folder, directory, folder=True)
    return source, problems


SYMLINK_NOT_FOLLOWED = "symbolic link: wasmd does not follow links inside a plug-in directory"


def _folder_module(folder: Path) -> tuple[Path | None, list[ScanProblem]]:
    modules = [folder / f"plugin{s}" for s in MODULE_SUFFIXES]
    modules = [path for path in modules if _is_file_entry(path)]
    if not modules:
        manifest = _manifest_in(folder)
        # A folder with neither module nor manifest may be plain data; one with a manifest
        # was meant to be a plug-in.
        problems = [ScanProblem(manifest, "manifest without a module")] if manifest else []
        return None, problems
    ignored = [ScanProblem(p, f"ignored: {modules[0]} takes precedence") for p in modules[1:]]
    return modules[0], ignored


def _manifest_in(folder: Path) -> Path | None:
    manifest = folder / "plugin.toml"
    return manifest if _is_file_entry(manifest) else None


class PluginFileError(OSError):
    """Raised when one of a plug-in's own files cannot be opened as a regular file."""


def open_plugin_file(source: PluginSource, path: Path) -> int:
    """A read-only descriptor of ``path``, one of ``source``'s module or manifest, opened
    without following a symbolic link: not the file itself, nor (for a folder plug-in) its
    folder. Anything but a regular file is refused too (a FIFO would block the reader).

    Raises ``PluginFileError`` whose ``strerror`` says why without quoting the file.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    folder_fd = None
    try:
        if source.folder:
            # The folder is opened on its own so that a link swapped in for it is refused too.
            folder_fd = os.open(source.root, os.O_RDONLY | os.O_DIRECTORY | flags)
            folder_mode = os.fstat(folder_fd).st_mode
            if folder_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise PluginFileError(
                    errno.EPERM,
                    f"the folder may be written by group or others (mode "
                    f"{stat.S_IMODE(folder_mode):04o}): a plug-in folder must be writable "
                    "by its owner only",
                    str(source.root),
                )
            fd = os.open(path.name, flags, dir_fd=folder_fd)
        else:
            fd = os.open(path, flags)
    except PluginFileError:
        raise
    except OSError as exc:
        target = source.root if folder_fd is None and source.folder else path
        raise _plugin_file_error(exc, target) from None
    finally:
        if folder_fd is not None:
            os.close(folder_fd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise PluginFileError(errno.EINVAL, "not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd


def _plugin_file_error(exc: OSError, path: Path) -> PluginFileError:
    # O_NOFOLLOW reports a link as ELOOP (ENOTDIR for a folder opened with O_DIRECTORY).
    if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and os.path.islink(path)):
        return PluginFileError(exc.errno, SYMLINK_NOT_FOLLOWED, str(path))
    return PluginFileError(exc.errno, exc.strerror or str(exc), str(path))


def entry_name(directory: Path, filename: str) -> str | None:
    """Which candidate plug-in name a changed path in ``directory`` belongs to, or None.

    ``filename`` is relative to ``directory`` (an absolute path inside it works too):
    ``NAME.wasm``, ``NAME.wat``, ``NAME.toml`` and ``NAME/anything`` belong to NAME.
    The name may still be invalid; ``scan_name`` reports that.
    """
    path = Path(filename)
    if path.is_absolute():
        try:
            path = path.relative_to(directory)
        except ValueError:
            return None
    parts = path.parts
    if not parts or any(is_ignored(part) or not is_utf8(part) for part in parts):
        return None
    if len(parts) > 1:
        return parts[0]
    for suffix in (*MODULE_SUFFIXES, ".toml"):
        if parts[0].endswith(suffix) and len(parts[0]) > len(suffix):
            return parts[0].removesuffix(suffix)
    # Anything else may be a folder plug-in (even one with an invalid name, which a scan
    # reports); for a plain data file the caller's stat finds no plug-in, which is cheap.
    return parts[0]


def scan_dir(directory: Path) -> tuple[dict[str, PluginSource], list[ScanProblem]]:
    """Every plug-in in one directory; a missing directory yields nothing, not an exception."""
    try:
        with os.scandir(directory) as entries:
            filenames = [entry.name for entry in entries]
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        return {}, [ScanProblem(directory, f"cannot read directory: {exc.strerror or exc}")]
    sources: dict[str, PluginSource] = {}
    problems = [ScanProblem(directory / f, NOT_UTF8) for f in filenames if not is_utf8(f)]
    names = {entry_name(directory, filename) for filename in filenames}
    for name in sorted(n for n in names if n is not None):
        try:
            source, name_problems = scan_name(directory, name)
        except OSError as exc:  # e.g. EACCES on a folder; vanished files never get here
            problems.append(ScanProblem(directory / name, f"cannot read: {exc.strerror or exc}"))
            continue
        problems += name_problems
        if source is not None:
            sources[name] = source
    return sources, problems


def scan(dirs: Sequence[Path]) -> ScanResult:
    """Scan the search path in order: the first occurrence of a name wins."""
    sources: dict[str, PluginSource] = {}
    shadowed: list[Shadowed] = []
    problems: list[ScanProblem] = []
    missing: list[Path] = []
    seen: set[Path] = set()
    for directory in dirs:
        if _resolved(directory) in seen:  # a folder listed twice must not shadow itself
            continue
        seen.add(_resolved(directory))
        if not directory.exists():
            missing.append(directory)
            continue
        found, dir_problems = scan_dir(directory)
        problems += dir_problems
        for name, source in found.items():
            if name in sources:
                shadowed.append(Shadowed(name, sources[name].module_path, source.module_path))
            else:
                sources[name] = source
    return ScanResult(
        dict(sorted(sources.items())), tuple(shadowed), tuple(problems), tuple(missing)
    )


def folder_problem(source: PluginSource, plugin_dirs: Sequence[Path]) -> str | None:
    """Why a folder plug-in may not be served, or None: its folder is, or holds, a plug-in
    directory (``--plugins A --plugins A/sub``, or a search directory loaded by path), so its
    preopens would reach other plug-ins' files, manifests and secrets."""
    return plugin_dir_problem(source.root, plugin_dirs) if source.folder else None


def plugin_dir_problem(folder: Path, plugin_dirs: Sequence[Path]) -> str | None:
    """``folder_problem`` of a folder that would be a folder plug-in."""
    real = _resolved(folder)
    for directory in plugin_dirs:
        if _resolved(directory).is_relative_to(real):
            return (
                f"the folder plug-in {printable(folder)} is or holds the plug-in directory "
                f"{printable(directory)}: a plug-in folder may not hold other plug-ins"
            )
    return None


def source_from_path(path: Path) -> PluginSource:
    """Load one plug-in file or folder directly, outside the search path (``wasmd check``)."""
    path = Path(os.path.normpath(path.absolute()))  # so "plug/.." does not name ".."
    source = str(path)
    if path.is_dir():
        name = path.name
        module, _ = _folder_module(path)  # .wasm over .wat, as in a scan
        if module is None:
            raise ConfigError(source, None, "folder holds no plugin.wasm or plugin.wat")
        manifest = _manifest_in(path)
        root, folder = path, True
    elif path.is_file() and path.suffix in MODULE_SUFFIXES:
        name, module, root, folder = path.stem, path, path.parent, False
        manifest = path.with_suffix(".toml") if _is_file_entry(path.with_suffix(".toml")) else None
    elif path.exists():
        raise ConfigError(source, None, "not a plug-in: expected a .wasm or .wat file or a folder")
    else:
        raise ConfigError(source, None, "no such file or directory")
    reason = name_problem(name)
    if reason is not None:
        raise ConfigError(source, None, reason)
    return PluginSource(name, module, manifest, root, None, folder=folder)
