"""Coverage-guided fuzzing of the sans-IO protocol with atheris (libFuzzer for Python).

    .venv/bin/python tests/fuzz/protocol_atheris.py tests/fuzz/corpus -max_total_time=60

Each input is split into chunks at points the input itself chooses, fed to a
``protocol.Connection``, and drained; the only exception allowed is
``RemoteProtocolError``. Events that do come out are re-encoded, and must decode and encode
to the same bytes. The corpus in ``corpus/`` seeds it with valid requests, responses,
notifications and known garbage; ``test_fuzz.py`` replays it in the ordinary test run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wasmd.protocol import (
    EOF,
    NEED_DATA,
    BadRequest,
    Connection,
    Event,
    Notification,
    RemoteProtocolError,
    Request,
    Response,
)


def check_one_input(data: bytes) -> None:
    """Feed ``data`` in chunks whose sizes its first byte picks; raise on any wrong turn."""
    if not data:
        return
    step = data[0] % 17 + 1
    payload = data[1:]
    connection = Connection(max_message_size=4096)
    events: list[Event] = []
    try:
        for start in range(0, len(payload), step):
            connection.receive_data(payload[start : start + step])
            while (event := connection.next_event()) is not NEED_DATA:
                assert event is not EOF
                events.append(event)
        connection.receive_data(b"")
        while (event := connection.next_event()) is not EOF:
            assert event is not NEED_DATA
            events.append(event)
    except RemoteProtocolError:
        return
    for event in events:
        if isinstance(event, BadRequest):
            continue
        assert isinstance(event, Request | Response | Notification)
        # Compared as bytes: a NaN param is not equal to itself as an object.
        encoder, decoder = Connection(), Connection()
        encoded = encoder.send(event)
        decoder.receive_data(encoded)
        again = decoder.next_event()
        assert isinstance(again, Request | Response | Notification)
        assert encoder.send(again) == encoded


def main() -> None:
    import atheris  # type: ignore[import-untyped]  # an optional extra without stubs

    # Coverage feedback needs the protocol's bytecode instrumented (it is imported above).
    atheris.instrument_func(check_one_input)
    for member in vars(Connection).values():
        function = getattr(member, "__func__", member)
        if hasattr(function, "__code__"):
            atheris.instrument_func(function)
    atheris.Setup(sys.argv, check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
