"""The command line: it parses, calls the library, and prints. No logic lives only here."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from .check import check_plugin
from .client import SyncClient
from .config import DaemonConfig, config_path_from_env, load_config
from .daemon import Daemon, serve
from .discovery import search_path
from .errors import ConfigError, SocketPathError, WasmdError
from .runtime import default_cache_dir
from .runtime.abis import describe_abi
from .systemd import JournalFormatter, Notifier, activated_socket, watchdog_interval

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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


def _print_json(value: Any) -> None:
    print(json.dumps(_jsonable(value), indent=2, sort_keys=True))


def _format_event(event: dict[str, Any], *, as_json: bool) -> str:
    if as_json:
        return json.dumps(_jsonable(event), sort_keys=True)
    fields = {k: v for k, v in event.items() if k not in ("type", "seq", "time")}
    return f"{event.get('seq', '-')} {event['type']} {json.dumps(_jsonable(fields))}"


def parse_arg(text: str) -> Any:
    """A call argument: JSON if it parses (42, 1.5, true, "x", [1], {...}), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", help="the daemon's socket (default: $WASMD_SOCKET, ...)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")

    parser = argparse.ArgumentParser(prog="wasmd", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("serve", parents=[common], help="run the daemon")
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

    p = commands.add_parser("call", parents=[common], help="call PLUGIN.EXPORT")
    p.add_argument("method")
    p.add_argument("args", nargs="*", help="arguments, each JSON or a plain string")

    commands.add_parser("list", parents=[common], help="list plug-ins")
    p = commands.add_parser("describe", parents=[common], help="describe a plug-in")
    p.add_argument("name")
    commands.add_parser("stats", parents=[common], help="counters and latencies")
    commands.add_parser("metrics", parents=[common], help="Prometheus metrics (text format)")
    commands.add_parser("version", parents=[common], help="versions of wasmd and wasmtime")
    commands.add_parser("ping", parents=[common], help="check that the daemon answers")
    p = commands.add_parser("events", parents=[common], help="follow lifecycle events")
    p.add_argument("prefixes", nargs="*", help="event type prefixes, e.g. plugin.")
    p = commands.add_parser("reload", parents=[common], help="rescan plug-in directories")
    p.add_argument("name", nargs="?")
    p = commands.add_parser("check", parents=[common], help="validate a plug-in offline")
    p.add_argument("path", type=Path)
    return parser


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
        return _client_command(args)
    except WasmdError as exc:
        print(f"wasmd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as exc:
        print(f"wasmd: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _check(args: argparse.Namespace) -> int:
    report = check_plugin(args.path)
    if args.json:
        _print_json(report.to_dict())
    elif report.ok:
        print("\n".join(_check_lines(report.path, report.description)))
    else:
        for problem in report.problems:
            print(f"{report.path}: {problem}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


def _request_for(args: argparse.Namespace) -> tuple[str, list[Any]]:
    """The RPC a client subcommand stands for."""
    if args.command == "call":
        return args.method, [parse_arg(a) for a in args.args]
    if args.command == "describe":
        return "wasmd.describe", [args.name]
    if args.command == "reload":
        return "wasmd.reload", [args.name] if args.name else []
    return f"wasmd.{args.command}", []


def _check_lines(path: str, d: dict[str, Any]) -> list[str]:
    """`wasmd check`'s human report: ABI, methods, imports that trap, capabilities."""
    lines = [
        f"{path}: ok — plug-in {d['name']}, ABI {d['abi']} ({describe_abi(d['abi'])}),"
        f" version {d['version']}"
    ]
    signatures = {e["name"]: e for e in d["exports"]}
    for method in d["methods"]:
        export = signatures.get(method) or signatures.get("_start", {})
        params, results = ", ".join(export.get("params", [])), ", ".join(export.get("results", []))
        lines.append(f"  method {d['name']}.{method}  export ({params}) -> ({results})")
    for export in d["exports"]:
        if export["name"] not in d["methods"]:
            lines.append(f"  export {export['name']} (not callable as a method)")
    for name in d["trapping_imports"]:
        lines.append(f"  import {name} is provided by nothing: calling it traps")
    caps = d["capabilities"]
    granted = [f"args {caps['args']}"] if caps["args"] else []
    granted += [f"env {', '.join(caps['env'])}"] if caps["env"] else []
    granted += [
        f"{'read-write' if g['writable'] else 'read-only'} {g['host']} as {g['guest']}"
        for g in caps["preopens"]
    ]
    lines.append(f"  grants: {'; '.join(granted) if granted else 'nothing (deny by default)'}")
    limits = d["limits"]
    lines.append(
        f"  limits: {limits['timeout_ms']} ms per call, {limits['memory_max']} bytes of "
        f"memory, {limits['instances']} instance(s), mode {limits['mode']}"
    )
    return lines


def _client_command(args: argparse.Namespace) -> int:
    with SyncClient(args.socket) as client:
        if args.command == "events":
            client.call("wasmd.subscribe", *([args.prefixes] if args.prefixes else []))
            try:
                while True:
                    event = client.next_event()
                    print(_format_event(event, as_json=args.json), flush=True)
            except KeyboardInterrupt:
                return EXIT_OK
        method, params = _request_for(args)
        result = client.call(method, *params)
    if args.json or args.command != "list":
        _print_json(result) if args.json or not isinstance(result, str) else print(result)
    else:
        for item in result:
            state = item["state"] if item["state"] != "failed" else f"failed: {item.get('error')}"
            exports = ", ".join(item["exports"])
            print(
                f"{item['name']:<20} {item['version'] or '-':<12} {item['abi'] or '-':<8} "
                f"{state:<8} {exports}"
            )
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
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
    options = {
        "plugin_dirs": dirs,
        "watch": not args.no_watch,
        "force_polling": args.poll,
        "listen_socket": activated_socket(os.environ),
        "notifier": Notifier.from_environ(os.environ),
        "watchdog_interval": watchdog_interval(os.environ),
    }
    refusal: SocketPathError | None = None
    try:
        anyio.run(_serve_until_signalled, config, options)
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


async def _serve_until_signalled(config: DaemonConfig, options: dict[str, Any]) -> None:
    """SIGTERM/SIGINT stop gracefully, a second one at once; SIGHUP rescans. Signals are
    handled from the start: one during the initial scan stops the daemon at once (nothing
    is served yet), and a rescan runs beside the handler, so a SIGTERM is never queued
    behind a slow reload."""
    log = logging.getLogger("wasmd")
    dirs = options["plugin_dirs"]
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with anyio.create_task_group() as tg:
            handler = _SignalHandler(tg, log)
            tg.start_soon(handler.run, signals)

            async def run(*, task_status: anyio.abc.TaskStatus[Daemon]) -> None:
                await serve(config, **options, task_status=task_status)
                tg.cancel_scope.cancel()  # stopped: no more signals to wait for

            info: Daemon = await tg.start(run)
            handler.daemon = info
            log.info(
                "ready: %d plug-ins (%d failed) on %s; search path: %s",
                info.plugins,
                info.failed,
                info.socket_path,
                ":".join(str(d) for d in dirs),
            )


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
