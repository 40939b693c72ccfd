"""``wasmd state``: the command line of the state built-ins (statecontrol.py); cli.py
declares its arguments and loads this module only to run it.

Client side only (no daemon modules): ``wasmd state`` lists the names that have state,
``wasmd state NAME`` its keys and their value sizes, ``--export FILE`` writes every key and
value as one msgpack document (``{"name", "items": [[key, value], ...]}``; ``-`` is
stdout), ``--import FILE`` sets what such a document holds (``--replace``: after deleting
every key), ``--clear`` deletes every key (and the files, when no plug-in of that name is
loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Protocol

import msgpack

from .errors import ErrorCode, WasmdError


class _Calls(Protocol):
    def call(self, method: str, *params: Any) -> Any: ...


def state_command(client: _Calls, args: argparse.Namespace) -> Any:
    """Run ``wasmd state ...``; the result to print (None: nothing to print)."""
    if args.name is None:
        if args.clear or args.export or args.import_file:
            raise WasmdError(ErrorCode.INVALID_PARAMS, "--clear, --export, --import need a NAME")
        return client.call("wasmd.state")
    if args.clear:
        return client.call("wasmd.state_clear", args.name)
    if args.export:
        exported = client.call("wasmd.state_export", args.name)
        data = msgpack.packb(exported, use_bin_type=True)
        if args.export == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            Path(args.export).write_bytes(data)
        return None
    if args.import_file:
        raw = sys.stdin.buffer.read() if args.import_file == "-" else _read(args.import_file)
        try:
            document = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            items = document["items"]
        except Exception:
            raise WasmdError(
                ErrorCode.INVALID_PARAMS, f"{args.import_file} is not a `wasmd state --export`"
            ) from None
        return client.call("wasmd.state_import", args.name, items, args.replace)
    return client.call("wasmd.state", args.name)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise WasmdError(ErrorCode.INVALID_PARAMS, f"{path}: {exc.strerror}") from None


def print_state(result: Any) -> None:
    """The listing as lines: a name per line, or ``SIZE KEY`` per key (KEY as text when it
    is UTF-8, else as JSON of its bytes' escapes)."""
    if "names" in result:
        for name in result["names"]:
            print(name)
        return
    if "entries" in result:
        for key, size in result["entries"]:
            print(f"{size:>10} {_shown(key)}")
        print(f"{result['keys']} keys, {result['bytes']} bytes")
        return
    print(json.dumps(result))


def _shown(key: bytes) -> str:
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return json.dumps(key.decode("latin-1"))
    return text if text.isprintable() else json.dumps(text)
