"""A MessagePack-RPC client made of the standard library and msgpack only, run as another uid.

    python peer_client.py SOCKET CALLS_JSON

CALLS_JSON is a list of ``[method, params]``. The calls are made one after another on one
connection, and each outcome is printed as one JSON line: ``{"result": ...}`` or
``{"error": [code, message]}``. A ``wasmd.error`` notification (the daemon refused the
connection, or closed it) is printed as an error and ends the run.

It imports nothing from wasmd on purpose: ``tests/other_uid.py`` copies it, with msgpack,
into a folder the other uid can read, because that uid usually cannot read the checkout.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from typing import Any

import msgpack

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2


def call_all(path: str, calls: list[list[Any]]) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(path)
        unpacker = msgpack.Unpacker(raw=False)
        for msgid, (method, params) in enumerate(calls):
            # Refused at accept, the daemon closes without reading; its reason waits unread.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(msgpack.packb([REQUEST, msgid, method, params]))
            outcome = _outcome_of(msgid, sock, unpacker)
            outcomes.append(outcome)
            if outcome.get("closed"):
                break
    return outcomes


def _outcome_of(msgid: int, sock: socket.socket, unpacker: Any) -> dict[str, Any]:
    while True:
        for message in unpacker:
            if message[0] == RESPONSE and message[1] == msgid:
                error = message[2]
                return {"error": list(error[:2])} if error is not None else {"result": message[3]}
            if message[0] == NOTIFICATION and message[1] == "wasmd.error":
                return {"error": list(message[2][0][:2]), "closed": True}
        try:
            data = sock.recv(65536)
        except ConnectionResetError:  # closed with our request unread
            data = b""
        if not data:
            return {"error": [None, "connection closed"], "closed": True}
        unpacker.feed(data)


if __name__ == "__main__":
    for outcome in call_all(sys.argv[1], json.loads(sys.argv[2])):
        print(json.dumps(outcome))
