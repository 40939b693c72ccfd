"""The command line: it parses, calls the library, and prints. No logic lives only here.

A client command (everything but ``serve`` and ``check``) imports only the blocking client
(``wasmd.sync_client``: the protocol, msgpack, a plain socket; no anyio, no dataclasses); the
daemon's modules (wasmtime, watchfiles, anyio, logging) load inside ``_serve`` and
``_check``, so ``wasmd call`` starts within 40 ms of bare Python (bench/cli_startup.py
measures it; tests/test_cli_output.py pins the modules it loads).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigError, SocketPathError, WasmdError, error_name

if TYPE_CHECKING:
    import logging
    import socket

    import anyio.abc

    from .config import DaemonConfig
    from .daemon import Daemon
    from .sync_client import SyncClient
    from .systemd import Notifier

# 1: the daemon answered with an error (or a command plug-in exited non-zero), or the
# check found problems; 2: the command line or a config file is wrong; 3: no daemon answers;
# 4: `check` has warnings (the plug-in loads, but has no callable methods).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_WARNING = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # `wasmd call --stream` stopped by Ctrl-C (128 + SIGINT)

DESCRIPTION = """\
wasmd runs WebAssembly plug-ins for local programs: `wasmd serve` starts the daemon, which
loads every plug-in from its plug-in directories (and reloads them as the files change) and
answers calls on a Unix socket. The other commands talk to a running daemon, except `check`,
which needs none."""

EPILOG = """\
Every command takes --socket PATH (default: $WASMD_SOCKET, else /run/wasmd/wasmd.sock for
root, $XDG_RUNTIME_DIR/wasmd.sock, or /tmp/wasmd-UID/wasmd.sock) and --json, before or after
the command's name. Results print as text: strings as they are, bytes as text when they are
UTF-8 and as {"base64": "..."} otherwise, anything else as JSON. With --json, a result is
JSON, and so is an error (on stdout): {"error": {"code", "name", "message", "data"}}.

Exit codes: 0 ok; 1 the daemon answered with an error, a command plug-in exited with a
non-zero code, or `check` found problems; 2 a wrong command line or config file; 3 no daemon
answers on the socket; 4 `check` has warnings: the plug-in loads, but has no callable
methods."""


ONE_LINE = 80


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _dumps(value: Any, *, indent: int | None = None) -> str:
    # ensure_ascii=False: "café" prints as itself, not "caf\u00e9".
    return json.dumps(_jsonable(value), indent=indent, sort_keys=True, ensure_ascii=False)


def _print_json(value: Any) -> None:
    print(_dumps(value, indent=2))


def _print_result(value: Any) -> None:
    """A result as a person reads it: text as text (bytes too, if UTF-8), the rest as JSON,
    on one line if it fits in ``ONE_LINE`` characters."""
    text = _jsonable(value)
    if not isinstance(text, str):
        text = _dumps(text)
        if len(text) > ONE_LINE:
            text = _dumps(value, indent=2)
    print(text)


def _format_event(event: dict[str, Any], *, as_json: bool) -> str:
    if as_json:
        return _dumps(event)
    fields = {k: v for k, v in event.items() if k not in ("type", "seq", "time")}
    return f"{event.get('seq', '-')} {event['type']} {_dumps(fields)}"


def _error_json(error: WasmdError) -> dict[str, Any]:
    code = int(error.code)
    name = error_name(code)
    return {"error": {"code": code, "name": name, "message": error.message, "data": error.data}}


def _report_error(error: WasmdError, *, as_json: bool, exit_code: int) -> int:
    if as_json:
        _print_json(_error_json(error))
    else:
        print(f"wasmd: {error}", file=sys.stderr)
    return exit_code


def parse_arg(text: str) -> Any:
    """A call argument: JSON if it parses (42, 1.5, true, "x", [1], {...}), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasmd",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The same two options before the command (`wasmd --json call ...`) and after it; after
    # it they default to SUPPRESS, so a subcommand leaves what the main parser saw alone.
    _add_common(parser, default_json=False, default_socket=None)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, default_json=argparse.SUPPRESS, default_socket=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=summary, description=summary)

    p = command(
        "serve",
        "run the daemon: load the plug-ins in the plug-in directories, reload them as their "
        "files change, and answer calls on the socket until stopped (SIGTERM or Ctrl-C)",
    )
    p.add_argument(
        "--plugins",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a plug-in directory (repeatable; searched before the others)",
    )
    p.add_argument(
        "--config", help="daemon config file (default: $WASMD_CONFIG, /etc/wasmd/wasmd.toml)"
    )
    p.add_argument(
        "--no-default-dirs",
        action="store_true",
        help="do not search /etc/wasmd/plugins.d and /usr/lib/wasmd/plugins.d",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--no-watch",
        action="store_true",
        help="do not watch plug-in directories (SIGHUP or `wasmd reload` rescan)",
    )
    p.add_argument(
        "--poll",
        action="store_true",
        help="poll plug-in directories instead of inotify (network file systems)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not cache compiled modules")
    p.add_argument(
        "--engine",
        choices=["cranelift", "pulley"],
        help="pulley interprets guests: slower, but allowed by MemoryDenyWriteExecute=yes",
    )

    p = command(
        "call",
        "call a plug-in's function and print its result, e.g. `wasmd call math.add 2 3`",
    )
    p.add_argument("method", help="PLUGIN.FUNCTION (see `wasmd list`)")
    p.add_argument("args", nargs="*", help="arguments, each JSON (42, 1.5, true, [1]) or a string")
    p.add_argument(
        "--stream",
        action="store_true",
        help="call it as a stream: print each chunk it sends on a line of its own as it "
        "arrives, then its result; Ctrl-C cancels it",
    )
    p.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="N",
        help="with --stream: chunks the daemon may send ahead of what was printed",
    )

    command("list", "list the plug-ins: name, version, ABI, state and callable functions")
    p = command(
        "describe",
        "show one plug-in in full: its functions with their parameters, its manifest, "
        "limits and statistics",
    )
    p.add_argument("name", help="the plug-in's name")
    command("stats", "show the daemon's counters and each plug-in's calls, errors and latency")
    command("metrics", "print every counter in the Prometheus text format (docs/operations.md)")
    command("version", "show the versions of wasmd, wasmtime and Python the daemon runs")
    command("ping", "check that the daemon is up and answering (prints pong)")
    p = command(
        "events",
        "follow what happens in the daemon (plug-ins loaded, reloaded, failed, trapped, "
        "timed out ...) until Ctrl-C",
    )
    p.add_argument("prefixes", nargs="*", help="only events whose type starts so, e.g. plugin.")
    p = command(
        "reload",
        "make the daemon rescan its plug-in directories now (all, or one plug-in by name) "
        "and print what changed",
    )
    p.add_argument("name", nargs="?")
    p = command(
        "load",
        "load a plug-in file or folder from anywhere into the running daemon (root and the "
        "daemon's own uid, by default), until it is unloaded",
    )
    p.add_argument("path", type=Path, help="a .wasm or .wat file, or a plug-in folder")
    p = command(
        "unload",
        "let a plug-in's running calls finish, then remove it until its files change or it is "
        "loaded again",
    )
    p.add_argument("name")
    _add_state_command(command)
    p = command(
        "check",
        "check a plug-in offline, without a daemon: its manifest, ABI, the methods it can be "
        "called with and their signatures, what it is granted, its limits",
    )
    p.add_argument("path", type=Path, help="a .wasm or .wat file, or a plug-in folder")
    p.add_argument(
        "--config",
        help="the daemon config whose pins and signing keys apply (default: $WASMD_CONFIG, "
        "/etc/wasmd/wasmd.toml if it exists)",
    )
    p = command(
        "sign",
        "sign a plug-in (its name, module, manifest and a serial) for daemons whose "
        "signing_keys hold the key's public half; writes NAME.wasm.sig (docs/security.md)",
    )
    p.add_argument("path", type=Path, help="a .wasm or .wat file, or a plug-in folder")
    p.add_argument("--key", type=Path, required=True, help="ed25519 private key, PEM")
    p.add_argument(
        "--serial", type=int, required=True, help="this version's number: never lower than the last"
    )
    _add_remote_commands(command)
    return parser


def _add_state_command(command: Any) -> None:
    """`wasmd state`: its module (statecli.py) loads only when it runs."""
    p = command(
        "state",
        "show a plug-in's durable state (its keys and value sizes), or the names that have "
        "state; export, import or clear it (the uids of load_uids only)",
    )
    p.add_argument("name", nargs="?", help="the plug-in's name (none: every name with state)")
    action = p.add_mutually_exclusive_group()
    action.add_argument(
        "--clear", action="store_true", help="delete every key (kept until then, even unloaded)"
    )
    action.add_argument(
        "--export", metavar="FILE", help="write every key and value to FILE (msgpack; - stdout)"
    )
    action.add_argument(
        "--import", dest="import_file", metavar="FILE", help="set the keys an export holds"
    )
    p.add_argument("--replace", action="store_true", help="with --import: delete every key first")


def _add_remote_commands(command: Any) -> None:
    """`bridge nats`, `pull` and `push`: separate processes that reach other machines (the
    daemon stays offline); their modules load only when they run (wasmd/bridge, wasmd/oci)."""
    p = command(
        "bridge",
        "carry calls from other machines to the daemon through a message bus (needs the "
        "`bridge` extra)",
    )
    kinds = p.add_subparsers(dest="bridge", required=True, metavar="KIND")
    p = kinds.add_parser(
        "nats",
        help="answer NATS requests on wasmd.call.PLUGIN.EXPORT in a queue group",
        description="Answer NATS requests on wasmd.call.PLUGIN.EXPORT (payload: a MessagePack "
        "array of params; reply: MessagePack [error, result]) in one queue group with every "
        "other host's bridge. Nothing is exposed unless listed with --expose.",
    )
    p.add_argument(
        "--server",
        action="append",
        required=True,
        metavar="URL",
        help="nats://HOST:PORT (repeatable: a cluster's servers)",
    )
    p.add_argument(
        "--socket",
        default=argparse.SUPPRESS,
        help="the daemon's socket (default: as for the other commands)",
    )
    p.add_argument(
        "--expose",
        action="append",
        default=[],
        metavar="PATTERN",
        help="PLUGIN (every export), PLUGIN.EXPORT, or '*' (every plug-in); repeatable. "
        "Default: nothing is exposed",
    )
    p.add_argument("--queue", default="wasmd", help="the queue group (default: wasmd)")
    p.add_argument("--host", help="this host's name in event subjects (default: the hostname)")
    p.add_argument(
        "--config",
        help="the daemon's config file, for its max_message_size (default: $WASMD_CONFIG, "
        "/etc/wasmd/wasmd.toml)",
    )
    p.add_argument("--user", help="NATS user (with --password-file)")
    p.add_argument("--password-file", type=Path, help="a file holding the NATS password")
    p.add_argument("--token-file", type=Path, help="a file holding a NATS token")
    p.add_argument("--nkey-seed-file", type=Path, help="a file holding an NKEY seed (SU...)")
    p.add_argument("--creds", type=Path, help="a NATS .creds file (JWT and NKEY seed)")
    p.add_argument(
        "--max-in-flight", type=int, default=128, help="calls at once on the daemon (default 128)"
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")

    p = command(
        "pull",
        "fetch a plug-in published as a wasm OCI artifact into a plug-in folder (atomically: a "
        "live daemon hot-reloads it); needs the `oci` extra",
    )
    p.add_argument("ref", nargs="?", help="REGISTRY/REPOSITORY:TAG or ...@sha256:DIGEST")
    p.add_argument("--into", type=Path, metavar="DIR", help="the plug-in folder to write into")
    p.add_argument("--name", help="the plug-in's name (default: the repository's last segment)")
    p.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS")
    p.add_argument(
        "--pin", action="store_true", help="record the module's sha256 in the config's trust_file"
    )
    p.add_argument(
        "--config",
        help="the daemon's config file, for max_module_size and trust_file (default: "
        "$WASMD_CONFIG, /etc/wasmd/wasmd.toml)",
    )
    p.add_argument(
        "--sources",
        type=Path,
        metavar="FILE",
        help="pull every [[source]] of this TOML file instead (ref, into, name, plain_http, pin)",
    )
    p = command("push", "publish a .wasm module (and NAME.toml beside it) as a wasm OCI artifact")
    p.add_argument("file", type=Path, help="the .wasm module")
    p.add_argument("ref", help="REGISTRY/REPOSITORY:TAG")
    p.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS")


def _add_common(parser: argparse.ArgumentParser, *, default_json: Any, default_socket: Any) -> None:
    parser.add_argument(
        "--socket",
        default=default_socket,
        help="the daemon's socket (default: $WASMD_SOCKET, then the defaults below)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default_json,
        help="print results and errors as JSON, for scripts",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args)
        if args.command == "sign":
            return _sign(args)
        if args.command in ("bridge", "pull", "push"):
            from .remote_cli import run_remote_command

            return run_remote_command(args)
        return _client_command(args)
    except WasmdError as exc:
        return _report_error(exc, as_json=args.json, exit_code=EXIT_FAILED)
    except ConfigError as exc:
        print(f"wasmd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `wasmd describe math | head`: the reader has what it wanted. Point stdout at
        # /dev/null so that the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def _check(args: argparse.Namespace) -> int:
    from .config import config_path_from_env, load_config, trust_policy
    from .plugins.check import check_lines, check_plugin, problem_lines

    # The daemon's pins and keys apply, so check says what the daemon would.
    config = load_config(config_path_from_env(args.config, os.environ))
    report = check_plugin(args.path, trust_policy(config))
    if args.json:
        _print_json(report.to_dict())
    elif report.ok:
        print("\n".join(check_lines(report)))
    else:
        print("\n".join(problem_lines(report)), file=sys.stderr)
    if not report.ok:
        return EXIT_FAILED
    return EXIT_WARNING if report.warnings else EXIT_OK


def _sign(args: argparse.Namespace) -> int:
    from .errors import PluginLoadError
    from .plugins.signature import sign_plugin

    try:
        written = sign_plugin(args.path, args.key.read_bytes(), args.serial)
    except (OSError, ValueError, PluginLoadError) as exc:
        print(f"wasmd: cannot sign {args.path}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(written)
    return EXIT_OK


def _request_for(args: argparse.Namespace) -> tuple[str, list[Any]]:
    """The RPC a client subcommand stands for."""
    if args.command == "call":
        return args.method, [parse_arg(a) for a in args.args]
    if args.command == "describe":
        return "wasmd.describe", [args.name]
    if args.command == "reload":
        return "wasmd.reload", [args.name] if args.name else []
    if args.command == "load":
        return "wasmd.load", [str(args.path.absolute())]  # the daemon's cwd is not ours
    if args.command == "unload":
        return "wasmd.unload", [args.name]
    return f"wasmd.{args.command}", []


def _command_failed(method: str, result: Any) -> bool:
    """Whether ``result`` is a command plug-in's run that exited non-zero (see abis/command)."""
    return (
        method.endswith(".run")
        and isinstance(result, dict)
        and set(result) == {"exit_code", "stdout", "stderr"}
        and result["exit_code"] != 0
    )


def _client_command(args: argparse.Namespace) -> int:
    from .sync_client import SyncClient  # not .client: a client command needs no anyio

    try:
        client = SyncClient(args.socket)
    except WasmdError as exc:
        return _report_error(exc, as_json=args.json, exit_code=EXIT_UNREACHABLE)
    with client:
        if args.command == "events":
            client.call("wasmd.subscribe", *([args.prefixes] if args.prefixes else []))
            try:
                while True:
                    event = client.next_event()
                    print(_format_event(event, as_json=args.json), flush=True)
            except KeyboardInterrupt:
                return EXIT_OK
        if args.command == "state":
            return _state(client, args)
        method, params = _request_for(args)
        if args.command == "call" and args.stream:
            return _call_stream(client, args, method, params)
        result = client.call(method, *params)
    if args.json:
        _print_json(result)
    elif args.command == "list":
        _print_list(result)
    else:
        _print_result(result)
    return EXIT_FAILED if _command_failed(method, result) else EXIT_OK


def _call_stream(
    client: SyncClient, args: argparse.Namespace, method: str, params: list[Any]
) -> int:
    """``wasmd call --stream``: one line per chunk as it arrives (``--json``: ``{"chunk": v}``
    per line, then ``{"result": v}``), then the result unless it is nil; Ctrl-C cancels."""
    from .streams import DEFAULT_WINDOW

    stream = client.stream(method, *params, window=args.window or DEFAULT_WINDOW)
    try:
        for chunk in stream:
            line = _dumps({"chunk": chunk}) if args.json else _one_line(chunk)
            print(line, flush=True)
    except KeyboardInterrupt:
        stream.close()  # wasmd.cancel: the guest ends at its next epoch tick
        return EXIT_INTERRUPTED
    if args.json:
        print(_dumps({"result": stream.result}))
    elif stream.result is not None:
        print(_one_line(stream.result))
    return EXIT_OK


def _one_line(value: Any) -> str:
    """A chunk as a person reads it: text as text (bytes too, if UTF-8), the rest as JSON."""
    text = _jsonable(value)
    return text if isinstance(text, str) else _dumps(text)


def _state(client: Any, args: argparse.Namespace) -> int:
    from .statecli import print_state, state_command

    result = state_command(client, args)  # None: an export, written already
    if result is not None:
        _print_json(result) if args.json else print_state(result)
    return EXIT_OK


# `wasmd list`'s columns (name, version, ABI, state) are at least this wide, and as wide as
# their longest value: a "component" ABI or a long name does not push its row out of line.
LIST_WIDTHS = (20, 12, 8, 8)


def list_lines(plugins: list[dict[str, Any]]) -> list[str]:
    """``wasmd list`` as text: one aligned row per plug-in, its callable functions last (a
    failed plug-in's reason instead)."""
    rows = [
        (
            item["name"],
            item["version"] or "-",
            item["abi"] or "-",
            item["state"],
            (item.get("error") or "") if item["state"] == "failed" else ", ".join(item["exports"]),
        )
        for item in plugins
    ]
    widths = [max([least, *(len(row[i]) for row in rows)]) for i, least in enumerate(LIST_WIDTHS)]
    return [
        " ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def _print_list(plugins: list[dict[str, Any]]) -> None:
    for line in list_lines(plugins):
        print(line)


def _serve(args: argparse.Namespace) -> int:
    # The daemon's modules (and anyio, logging) load here only: a client command never
    # pays for them.
    import dataclasses
    import logging

    import anyio

    from .config import config_path_from_env, load_config
    from .discovery import search_path
    from .runtime import default_cache_dir
    from .systemd import JournalFormatter, Notifier, activated_socket, watchdog_interval

    config_path = config_path_from_env(args.config, os.environ)
    config = load_config(config_path)
    if args.socket:
        config = config.with_overrides(socket=Path(args.socket))
    if args.log_level:
        config = config.with_overrides(log_level=args.log_level)
    if args.engine:
        config = config.with_overrides(engine=args.engine)
    if args.no_cache:
        config = config.with_overrides(cache_dir=None)
    elif config.cache_dir is None:
        config = config.with_overrides(cache_dir=default_cache_dir(os.environ, os.getuid()))
    handler = logging.StreamHandler(sys.stderr)
    # Under journald, lines carry their priority and journald adds time and unit itself.
    handler.setFormatter(
        JournalFormatter()
        if os.environ.get("JOURNAL_STREAM")
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler])
    dirs = search_path(
        args.plugins, os.environ, config.plugin_dirs, include_defaults=not args.no_default_dirs
    )
    config = dataclasses.replace(
        config,
        plugin_dirs=tuple(dirs),
        watch=config.watch and not args.no_watch,
        poll=config.poll or args.poll,
    )
    systemd = SystemdContext(
        listen_socket=activated_socket(os.environ),
        notifier=Notifier.from_environ(os.environ),
        watchdog_interval=watchdog_interval(os.environ),
    )
    refusal: SocketPathError | None = None
    # This process is the daemon: it alone may set interpreter-wide settings (each thread's
    # stack, the GIL's switch interval); an embedding program's serve() leaves them alone.
    from .server import tune_interpreter

    tune_interpreter()
    try:
        anyio.run(_serve_until_signalled, config, systemd)
    except* SocketPathError as group:
        refusal = _first_leaf(group)
    if refusal is not None:
        # One line with the path and the reason; the task groups' traceback adds nothing.
        print(f"wasmd: {refusal}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _first_leaf(group: BaseExceptionGroup[SocketPathError]) -> SocketPathError:
    """The first exception in ``group`` itself, through the task groups' nesting."""
    error: SocketPathError | BaseExceptionGroup[SocketPathError] = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


class SystemdContext(NamedTuple):  # not a dataclass: a client command must not import dataclasses
    """What systemd handed the process: a listening socket, a notify socket, a watchdog."""

    listen_socket: socket.socket | None
    notifier: Notifier | None
    watchdog_interval: float | None


async def _serve_until_signalled(config: DaemonConfig, systemd: SystemdContext) -> None:
    """SIGTERM/SIGINT stop gracefully, a second one at once; SIGHUP rescans. Signals are
    handled from the start: one during the initial scan stops the daemon at once (nothing
    is served yet), and a rescan runs beside the handler, so a SIGTERM is never queued
    behind a slow reload."""
    import logging

    import anyio

    log = logging.getLogger("wasmd")
    dirs = config.plugin_dirs
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with anyio.create_task_group() as tg:
            handler = _SignalHandler(tg, log)
            tg.start_soon(handler.run, signals)

            async def run(*, task_status: anyio.abc.TaskStatus[Daemon]) -> None:
                from .daemon import serve  # here: client commands never load the daemon

                await serve(
                    config,
                    listen_socket=systemd.listen_socket,
                    notifier=systemd.notifier,
                    watchdog_interval=systemd.watchdog_interval,
                    task_status=task_status,
                )
                tg.cancel_scope.cancel()  # stopped: no more signals to wait for

            info: Daemon = await tg.start(run)
            handler.daemon = info
            log.info(
                "ready: %d plug-ins (%d failed) on %s; search path: %s",
                info.plugins,
                info.failed,
                listening_on(info.socket_path, systemd.listen_socket),
                ":".join(str(d) for d in dirs),
            )


def listening_on(own_path: Path | None, inherited: socket.socket | None) -> str:
    """Where the daemon listens, for its ready line: the path it bound, or the one of the
    socket systemd passed (socket activation: the daemon binds none of its own)."""
    if own_path is not None:
        return str(own_path)
    name = inherited.getsockname() if inherited is not None else None
    if isinstance(name, str) and name:
        return f"{name} (passed by systemd)"
    return "the socket passed by systemd"


class _SignalHandler:
    """What each signal does, before the daemon is ready (``daemon`` None) and after."""

    def __init__(self, tg: anyio.abc.TaskGroup, log: logging.Logger) -> None:
        self.tg = tg
        self.log = log
        self.daemon: Daemon | None = None
        self._rescan_again: bool | None = None  # None: no rescan running

    async def run(self, signals: Any) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            daemon = self.daemon
            if signum == signal.SIGHUP:
                if daemon is None:
                    self.log.info("received SIGHUP during start-up: the scan reads the disk")
                else:
                    self.log.info("received SIGHUP, rescanning plug-in directories")
                    self._rescan(daemon)
            elif daemon is None:
                self.log.info("received %s during start-up, stopping", name)
                self.tg.cancel_scope.cancel()
            elif daemon.stopping:
                self.log.warning("received %s again, stopping now", name)
                self.tg.cancel_scope.cancel()
            else:
                self.log.info("received %s, stopping: calls in flight finish first", name)
                daemon.stop()

    def _rescan(self, daemon: Daemon) -> None:
        """One rescan at a time; SIGHUPs during one ask for one more after it."""
        if self._rescan_again is not None:
            self._rescan_again = True
            return

        async def rescan() -> None:
            self._rescan_again = True
            try:
                while self._rescan_again:
                    self._rescan_again = False
                    await daemon.reload()
            finally:
                self._rescan_again = None

        self.tg.start_soon(rescan)
