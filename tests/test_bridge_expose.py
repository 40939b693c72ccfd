"""The NATS bridge's allow-list, subjects and payload codec: pure functions, no servers."""

from __future__ import annotations

import msgpack
import pytest

from wasmd.bridge.expose import (
    Exposure,
    ExposureError,
    decode_params,
    encode_reply,
    event_subject,
    host_token,
    method_of,
    probe_subject,
    timeout_of,
)
from wasmd.errors import ErrorCode, WasmdError


def test_nothing_is_exposed_by_default() -> None:
    exposure = Exposure.parse([])
    assert exposure.empty
    assert exposure.subjects() == []
    assert not exposure.allows("math.add")
    assert exposure.describe() == "nothing"


def test_plugins_and_single_exports() -> None:
    exposure = Exposure.parse(["math", "text.upper", "math.add"])
    assert exposure.subjects() == ["wasmd.call.math.>", "wasmd.call.text.upper"]
    assert exposure.allows("math.add")
    assert exposure.allows("math.iface.func")  # a component's interface export
    assert exposure.allows("text.upper")
    assert not exposure.allows("text.lower")
    assert not exposure.allows("other.x")
    assert not exposure.allows("math")  # no export
    assert exposure.allows_plugin("text")
    assert not exposure.allows_plugin("other")


def test_everything_still_leaves_the_builtins_out() -> None:
    exposure = Exposure.parse(["*"])
    assert exposure.subjects() == ["wasmd.call.>"]
    assert exposure.allows("anything.x")
    assert not exposure.allows("wasmd.load")
    assert not exposure.allows_plugin("wasmd")


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("wasmd", "never exposed"),
        ("wasmd.ping", "never exposed"),
        ("Math", "not *, PLUGIN or PLUGIN.EXPORT"),
        ("math.", "not a NATS subject"),
        ("math.a*", "not a NATS subject"),
        ("math.a b", "not a NATS subject"),
        ("math.>", "not a NATS subject"),
        ("", "not *, PLUGIN"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, fragment: str) -> None:
    with pytest.raises(ExposureError, match=fragment.replace("*", r"\*")):
        Exposure.parse([pattern])


def test_subjects_and_names() -> None:
    assert method_of("wasmd.call.math.add") == "math.add"
    assert method_of("wasmd.call.") is None
    assert method_of("other.math.add") is None
    assert host_token("web1.example.com") == "web1_example_com"
    assert host_token("") == "_"
    assert event_subject("a", "plugin.loaded") == "wasmd.events.a.plugin.loaded"


def test_params_and_replies() -> None:
    assert decode_params(b"", 1024, "m.e") == []
    assert decode_params(msgpack.packb([1, "x", b"y"]), 1024, "m.e") == [1, "x", b"y"]
    with pytest.raises(WasmdError) as info:
        decode_params(msgpack.packb({"a": 1}), 1024, "m.e")
    assert info.value.code == ErrorCode.INVALID_REQUEST
    with pytest.raises(WasmdError, match="not MessagePack"):
        decode_params(b"\xc1", 1024, "m.e")
    with pytest.raises(WasmdError, match="max_message_size"):
        decode_params(msgpack.packb([b"x" * 1010]), 1024, "m.e")
    assert msgpack.unpackb(encode_reply(None, b"ok")) == [None, b"ok"]
    error = WasmdError(ErrorCode.METHOD_NOT_FOUND, "no", {"kind": "x"})
    assert msgpack.unpackb(encode_reply(error)) == [[2, "no", {"kind": "x"}], None]


def test_timeout_header() -> None:
    assert timeout_of(None) is None
    assert timeout_of({"Wasmd-Timeout-Ms": "250"}) == 0.25
    assert timeout_of({"Wasmd-Timeout-Ms": "soon"}) is None
    assert timeout_of({"Wasmd-Timeout-Ms": "nan"}) is None


def test_only_request_mux_inboxes_are_probed() -> None:
    assert probe_subject("_INBOX.abc.def", "p1") == "_INBOX.abc.p1"
    assert probe_subject("_INBOX.abc", "p1") is None  # one subscription per request
    assert probe_subject("replies.abc.def", "p1") is None  # the caller's own scheme
    assert probe_subject("_INBOX.abc.def.ghi", "p1") is None
