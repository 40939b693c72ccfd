"""``wasi:keyvalue`` for components: the standard interfaces over a plug-in's durable state.

wasmd provides ``wasi:keyvalue/store@0.2.0-draft`` and ``wasi:keyvalue/atomics@0.2.0-draft``
(the proposal's tag that wasmtime's own implementation follows). One bucket exists,
``"default"`` (``""`` names it too): the plug-in's namespace, the same one the core ABI's
``kv_*`` imports reach (kv.py), with the same atomic calls, quota and limits; a key is the
UTF-8 of its string. ``open`` of any other identifier is ``no-such-store``; without a store
(``[state] enabled = false``, no state directory) it is ``access-denied``. Refusals are
``error.other`` with the reason. ``increment`` keeps a counter as 8 bytes little-endian (as the
SDKs' counter helpers do), wrapping at 2**64. ``list-keys`` pages by 1,000 keys; its cursor is
the number of keys already listed. Other versions of the interfaces (``0.2.0-draft2`` adds the
``cas`` resource) are not provided: a component importing them fails to load, naming them.

One limit of wasmtime-py 50: it cannot hand back ``err`` from ``bucket.get`` (its result's
``ok`` side, an ``option``, accepts any Python value), so a refused ``get`` fails the call as an
``abi_violation`` with the reason instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtime import component as wc

from ..statestore import MAX_KEY, MAX_VALUE
from .host import HostContext, host_function
from .kv import KV_BUSY, KV_FAILED, KV_QUOTA, KV_TOO_LARGE, KV_UNAVAILABLE, with_state

STORE = "wasi:keyvalue/store@0.2.0-draft"
ATOMICS = "wasi:keyvalue/atomics@0.2.0-draft"
PROVIDED = frozenset({STORE, ATOMICS})
BUCKETS = frozenset({"", "default"})
# A host resource type id of wasmd's own, and the one bucket's representation.
_BUCKET_TYPE = 0x6B76
_BUCKET = 1
LIST_PAGE = 1000

_REASONS = {
    KV_QUOTA: "over the plug-in's state quota ([state] max_bytes or max_keys)",
    KV_UNAVAILABLE: "no state here (no store, or outside a call)",
    KV_TOO_LARGE: f"a key over {MAX_KEY} bytes or a value over {MAX_VALUE} bytes",
    KV_FAILED: "the state store failed; the call fails with the reason",
    KV_BUSY: "waiting for the state would deadlock (plug-ins calling each other)",
}


def is_keyvalue(import_name: str) -> bool:
    return import_name.startswith("wasi:keyvalue/")


def define_keyvalue(linker: wc.Linker, import_name: str, ctx: HostContext, enabled: bool) -> bool:
    """Define ``import_name`` if it is one of ``PROVIDED``; False (nothing defined) if not.
    ``enabled``: whether the plug-in has a store (else ``open`` is ``access-denied``)."""
    if import_name not in PROVIDED:
        return False
    with linker.root() as root, root.add_instance(import_name) as instance:
        if import_name == STORE:
            instance.add_resource("bucket", wc.ResourceType.host(_BUCKET_TYPE), _drop_bucket)
            instance.add_func("open", _open(enabled))
            for name, make in _BUCKET_METHODS.items():
                instance.add_func(f"[method]bucket.{name}", make())
        else:
            instance.add_func("increment", _increment())
    return True


def _drop_bucket(_store: Any, _rep: int) -> None:
    """A bucket holds nothing of its own: dropping one frees nothing."""


def _borrowing(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method(store, bucket, ...)``, then the borrow of ``bucket`` released: wasmtime ends
    the call with a trap ("borrow handles still remain") if a host keeps one."""

    def released(store: Any, bucket: Any, *args: Any) -> Any:
        try:
            return method(store, bucket, *args)
        finally:
            if isinstance(bucket, wc.ResourceAny):
                bucket.drop(store)

    return released


def _error(code: int) -> wc.Variant:
    return wc.Variant("other", _REASONS.get(code, f"refused ({code})"))


def _key(key: str) -> bytes | None:
    raw = key.encode("utf-8", errors="surrogatepass")
    return raw if len(raw) <= MAX_KEY else None


def _open(enabled: bool) -> Callable[..., Any]:
    @host_function(f"{STORE}.open")
    def open_bucket(_store: Any, identifier: str) -> Any:
        if identifier not in BUCKETS:
            return wc.Variant("no-such-store")
        if not enabled:
            return wc.Variant("access-denied")
        return wc.ResourceHost.own(_BUCKET, _BUCKET_TYPE)

    return open_bucket


def _get() -> Callable[..., Any]:
    @host_function(f"{STORE}.bucket.get")
    @_borrowing
    def get(_store: Any, _bucket: Any, key: str) -> bytes | None:
        raw = _key(key)
        refused, value = (
            (KV_TOO_LARGE, None)
            if raw is None
            else with_state(lambda namespace, _: namespace.get(raw))
        )
        if refused:  # wasmtime-py cannot return err here (module docstring)
            raise ValueError(f"wasi:keyvalue get refused: {_REASONS.get(refused, refused)}")
        return value

    return get


def _set() -> Callable[..., Any]:
    @host_function(f"{STORE}.bucket.set")
    @_borrowing
    def set_value(_store: Any, _bucket: Any, key: str, value: bytes) -> wc.Variant | None:
        raw = _key(key)
        if raw is None or len(value) > MAX_VALUE:
            return _error(KV_TOO_LARGE)
        data = bytes(value)
        refused, stored = with_state(lambda namespace, quota: namespace.put(raw, data, quota))
        if refused or not stored:
            return _error(refused or KV_QUOTA)
        return None

    return set_value


def _delete() -> Callable[..., Any]:
    @host_function(f"{STORE}.bucket.delete")
    @_borrowing
    def delete(_store: Any, _bucket: Any, key: str) -> wc.Variant | None:
        raw = _key(key)
        if raw is None:
            return _error(KV_TOO_LARGE)
        refused, _ = with_state(lambda namespace, _: namespace.delete(raw))
        return _error(refused) if refused else None

    return delete


def _exists() -> Callable[..., Any]:
    @host_function(f"{STORE}.bucket.exists")
    @_borrowing
    def exists(_store: Any, _bucket: Any, key: str) -> bool | wc.Variant:
        raw = _key(key)
        if raw is None:
            return False  # no key that long can be there
        refused, value = with_state(lambda namespace, _: namespace.get(raw))
        return _error(refused) if refused else value is not None

    return exists


def _list_keys() -> Callable[..., Any]:
    @host_function(f"{STORE}.bucket.list-keys")
    @_borrowing
    def list_keys(_store: Any, _bucket: Any, cursor: int | None) -> wc.Record | wc.Variant:
        start = cursor or 0
        refused, keys = with_state(lambda namespace, _: namespace.keys_page(start, LIST_PAGE + 1))
        if refused or keys is None:
            return _error(refused)
        response = wc.Record()  # a record is its attributes, named as in the WIT
        setattr(response, "keys", [k.decode("utf-8", errors="replace") for k in keys[:LIST_PAGE]])  # noqa: B010
        setattr(response, "cursor", start + LIST_PAGE if len(keys) > LIST_PAGE else None)  # noqa: B010
        return response

    return list_keys


def _increment() -> Callable[..., Any]:
    @host_function(f"{ATOMICS}.increment")
    @_borrowing
    def increment(_store: Any, _bucket: Any, key: str, delta: int) -> int | wc.Variant:
        raw = _key(key)
        if raw is None:
            return _error(KV_TOO_LARGE)
        refused, total = with_state(lambda namespace, quota: _add(namespace, quota, raw, delta))
        if refused:
            return _error(refused)
        if isinstance(total, str):
            return wc.Variant("other", total)
        return total if total is not None else _error(KV_QUOTA)

    return increment


def _add(namespace: Any, quota: Any, key: bytes, delta: int) -> int | str | None:
    """The counter at ``key`` plus ``delta`` (stored; None: over the quota), or why not."""
    current = namespace.get(key)
    if current is not None and len(current) != 8:
        return f"the value of {key!r} is not a counter (8 bytes, little-endian)"
    total = (int.from_bytes(current or bytes(8), "little") + delta) % 2**64
    if not namespace.put(key, total.to_bytes(8, "little"), quota):
        return None
    return total


_BUCKET_METHODS: dict[str, Callable[[], Callable[..., Any]]] = {
    "get": _get,
    "set": _set,
    "delete": _delete,
    "exists": _exists,
    "list-keys": _list_keys,
}
