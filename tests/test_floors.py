"""The arrows of the map in docs/DESIGN.md ("The house"), read from the source with ``ast``.

Every import counts, a deferred one inside a function too, and importing a module counts as
importing each package above it (its ``__init__`` runs). test_server.py and
test_cli_output.py check in a fresh interpreter what an import loads at run time; these check
what the code could ever load, without running it."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from pathlib import Path

import wasmd

PACKAGE = Path(wasmd.__file__).parent

# The floor-3 columns and what stands above the plug-in set (docs/DESIGN.md, "The house").
NETWORK = {"server", "connection", "session", "stream_wire", "handoff", "memory"}
CLIENTS = {"client", "sync_client", "client_stream", "client_async_stream", "sockets"}
ABOVE_THE_PLUGIN_SET = {
    *("__main__", "cli", "remote_cli", "statecli"),
    *("daemon", "config", "listener", "systemd"),
    *("dispatch", "builtins", "loading", "statecontrol", "metrics", "statemetrics"),
    *("library", "library_stream", "oci", "bridge"),
}


def module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every dotted name ``path`` (module ``name``) imports, relative ones made absolute: for
    ``from X import y`` both ``X`` and ``X.y`` (y may be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


@functools.cache
def all_imports(root: Path) -> dict[str, set[str]]:
    """Module -> every dotted name it imports (read once per tree: parsing is the slow part)."""
    return {
        module_name(path, root): imports_of(path, module_name(path, root))
        for path in sorted(root.rglob("*.py"))
    }


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of this package it imports directly (and their packages)."""
    imports = all_imports(root)
    graph: dict[str, set[str]] = {}
    for name, names in imports.items():
        targets = {t for t in names if t in imports and t != name}
        for target in list(targets):  # a submodule's import runs its packages' __init__ too
            parts = target.split(".")
            targets.update(".".join(parts[:n]) for n in range(2, len(parts)))
        graph[name] = targets - {name}
    return graph


def reachable(graph: dict[str, set[str]], start: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = [name for name in start if name in graph]
    while todo:
        name = todo.pop()
        for target in graph[name] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def room(module: str) -> str:
    """``wasmd.plugins.trust`` -> ``plugins``: the room of a module on the map."""
    return module.split(".")[1] if "." in module else ""


def wasmtime_importers(root: Path) -> list[str]:
    return sorted(
        module
        for module, names in all_imports(root).items()
        if any(name.split(".")[0] == "wasmtime" for name in names)
    )


def test_only_the_runtime_imports_wasmtime() -> None:
    importers = wasmtime_importers(PACKAGE)
    assert importers  # the check reads the imports at all
    assert [m for m in importers if room(m) != "runtime"] == []


def test_the_network_and_the_clients_import_neither_the_runtime_nor_the_plugin_set() -> None:
    graph = import_graph(PACKAGE)
    for column in (NETWORK, CLIENTS):
        loads = {room(m) for m in reachable(graph, (f"wasmd.{name}" for name in column))}
        assert loads, column
        assert loads & {"runtime", "plugins", *ABOVE_THE_PLUGIN_SET} == set(), column
    client_loads = {room(m) for m in reachable(graph, (f"wasmd.{n}" for n in CLIENTS))}
    assert client_loads & NETWORK == set()


def test_the_plugin_set_imports_no_network_and_nothing_above_it() -> None:
    graph = import_graph(PACKAGE)
    plugin_set = [name for name in graph if room(name) == "plugins"]
    loads = {room(m) for m in reachable(graph, plugin_set)}
    assert "runtime" in loads  # it builds with the runtime
    assert loads & (NETWORK | CLIENTS | ABOVE_THE_PLUGIN_SET) == set()


def test_the_runtime_imports_nothing_above_it() -> None:
    graph = import_graph(PACKAGE)
    runtime = [name for name in graph if room(name) == "runtime"]
    loads = {room(m) for m in reachable(graph, runtime)}
    assert "manifest" in loads  # it reads the manifest
    assert loads & ({"plugins"} | NETWORK | CLIENTS | ABOVE_THE_PLUGIN_SET) == set()


def test_the_checks_see_a_wrong_arrow(tmp_path: Path) -> None:
    """The same reading on a made-up package where each arrow points the wrong way."""
    root = tmp_path / "wasmd"
    (root / "runtime").mkdir(parents=True)
    (root / "plugins").mkdir()
    for path in (root / "__init__.py", root / "runtime" / "__init__.py"):
        path.write_text("")
    (root / "plugins" / "__init__.py").write_text("")
    (root / "runtime" / "engine.py").write_text("import wasmtime\n")
    (root / "plugins" / "build.py").write_text("from ..server import Session\n")
    (root / "server.py").write_text("def f():\n    from .runtime.engine import Engines\n")
    (root / "config.py").write_text("import wasmtime.loader\n")
    graph = import_graph(root)
    assert wasmtime_importers(root) == ["wasmd.config", "wasmd.runtime.engine"]
    assert reachable(graph, ["wasmd.server"]) == {"wasmd.runtime", "wasmd.runtime.engine"}
    assert reachable(graph, ["wasmd.plugins.build"]) >= {"wasmd.server", "wasmd.runtime"}
