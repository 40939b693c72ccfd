"""The commands that reach other machines: ``bridge nats``, ``pull`` and ``push``.

``wasmd.cli`` imports this module only when one of them runs, and this module imports nats-py
or oras only inside the command that needs it: other commands' start-up does not grow. The
exit codes are cli.py's: 0 ok, 1 failed, 2 usage (a bad flag, config or sources file), 3 the
bus or registry cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from .config import DaemonConfig, config_path_from_env, load_config
from .errors import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def run_remote_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "bridge":
            return _bridge_nats(args)
        if args.command == "pull":
            return _pull(args)
        return _push(args)
    except ConfigError as exc:
        print(f"wasmd: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _missing_extra(extra: str, exc: ImportError) -> int:
    print(
        f"wasmd: this needs the `{extra}` extra: pip install 'wasmd[{extra}]' ({exc})",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _daemon_config(explicit: str | None) -> DaemonConfig:
    return load_config(config_path_from_env(explicit, os.environ))


def _read_secret(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the {what}: {exc.strerror}") from None


def _log_to_stderr(level: str) -> None:
    from .systemd import JournalFormatter

    handler = logging.StreamHandler(sys.stderr)
    # Under journald, lines carry their priority and journald adds time and unit itself.
    handler.setFormatter(
        JournalFormatter()
        if os.environ.get("JOURNAL_STREAM")
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _bridge_nats(args: argparse.Namespace) -> int:
    try:
        import anyio

        from .bridge.expose import Exposure, ExposureError, host_token
        from .bridge.nats import BridgeError, BridgeSettings, NatsAuth, run_bridge
    except ImportError as exc:
        return _missing_extra("bridge", exc)
    from .client import resolve_socket

    try:
        exposure = Exposure.parse(args.expose)
    except ExposureError as exc:
        print(f"wasmd: --expose {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.password_file and not args.user:
        print("wasmd: --password-file needs --user", file=sys.stderr)
        return EXIT_USAGE
    if args.max_in_flight < 1:
        print("wasmd: --max-in-flight must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    config = _daemon_config(args.config)
    settings = BridgeSettings(
        servers=tuple(args.server),
        socket=resolve_socket(getattr(args, "socket", None)),
        exposure=exposure,
        host=host_token(args.host or socket.gethostname()),
        max_message_size=config.max_message_size,
        queue=args.queue,
        auth=NatsAuth(
            user=args.user,
            password=_read_secret(args.password_file, "NATS password"),
            token=_read_secret(args.token_file, "NATS token"),
            nkey_seed_file=args.nkey_seed_file,
            creds_file=args.creds,
        ),
        max_in_flight=args.max_in_flight,
    )
    _log_to_stderr(args.log_level)
    try:
        anyio.run(run_bridge, settings, backend="asyncio")
    except BridgeError as exc:
        print(f"wasmd: cannot bridge to NATS at {', '.join(args.server)}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return EXIT_OK


def _pull(args: argparse.Namespace) -> int:
    try:
        from .oci import PullError, iter_sources, pull
    except ImportError as exc:
        return _missing_extra("oci", exc)
    if args.sources:
        if args.ref or args.into or args.name:
            print("wasmd: pull --sources takes no REF, --into or --name", file=sys.stderr)
            return EXIT_USAGE
        jobs = list(iter_sources(args.sources))
    elif not args.ref or not args.into:
        print("wasmd: pull needs REF and --into DIR (or --sources FILE)", file=sys.stderr)
        return EXIT_USAGE
    else:
        jobs = [
            {
                "ref": args.ref,
                "into": args.into,
                "name": args.name,
                "plain_http": args.plain_http,
                "pin": args.pin,
            }
        ]
    config = _daemon_config(args.config)
    if any(job["pin"] for job in jobs) and config.trust_file is None:
        print("wasmd: --pin needs a trust_file in the daemon's config", file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_OK
    for job in jobs:
        try:
            pulled = pull(
                job["ref"],
                job["into"],
                name=job["name"],
                plain_http=job["plain_http"],
                max_module_size=config.max_module_size,
                trust_file=config.trust_file if job["pin"] else None,
            )
        except PullError as exc:
            status = max(status, _pull_failed(args, job["ref"], exc))
            continue
        report = {
            "ref": job["ref"],
            "name": pulled.name,
            "path": str(pulled.path),
            "digest": pulled.manifest_digest,
            "sha256": pulled.module_sha256,
            "size": pulled.size,
            "changed": pulled.changed,
            "pinned_in": str(pulled.pinned) if pulled.pinned else None,
        }
        if args.json:
            print(json.dumps(report, sort_keys=True))
        else:
            what = "pulled" if pulled.changed else "up to date"
            pin = f", pinned in {pulled.pinned}" if pulled.pinned else ""
            print(f"{what}: {job['ref']} -> {pulled.path} ({pulled.size} bytes{pin})")
            print(f"digest: {pulled.manifest_digest}")
            print(f"module sha256: {pulled.module_sha256}")
    return status


def _pull_failed(args: argparse.Namespace, ref: str, exc: Any) -> int:
    if args.json:
        print(json.dumps({"ref": ref, "error": {"kind": exc.kind, "message": str(exc)}}))
    else:
        print(f"wasmd: pull {ref} failed ({exc.kind}): {exc}; nothing was written", file=sys.stderr)
    if exc.kind == "usage":
        return EXIT_USAGE
    return EXIT_UNREACHABLE if exc.kind == "unreachable" else EXIT_FAILED


def _push(args: argparse.Namespace) -> int:
    try:
        from .oci import PullError, push
    except ImportError as exc:
        return _missing_extra("oci", exc)
    try:
        digest = push(args.file, args.ref, plain_http=args.plain_http)
    except OSError as exc:
        print(f"wasmd: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except PullError as exc:
        print(f"wasmd: push {args.ref} failed ({exc.kind}): {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.kind == "unreachable" else EXIT_FAILED
    if args.json:
        print(json.dumps({"ref": args.ref, "digest": digest}))
    else:
        print(f"pushed: {args.file} -> {args.ref}")
        print(f"digest: {digest}")
    return EXIT_OK
