"""How a request reaches an export: one module per ABI (DESIGN.md section 3), each an ``Abi``.

Nothing outside this package compares ABI names: a compiled plug-in holds its ABI module,
and the pool and the instance ask it (``keeps_instance``, ``instantiate``, ``call``).
Adding an ABI is a module here that satisfies ``Abi``, its name in ``manifest.AbiName``, and
its line in ``_DETECTION_ORDER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

import wasmtime

from ...manifest import AbiName
from ..signatures import ExportSignature
from . import command, component, core, extism, msgpack
from .base import Abi, Method

__all__ = ["ABIS", "Abi", "Method", "describe_abi", "detect_abi"]

# ``abi = "auto"`` asks each in this order; the first that claims a module wins (core
# claims every module). A component is told by its header before any is asked; the
# component ABI claims no module.
_DETECTION_ORDER: tuple[Abi, ...] = (component, extism, msgpack, command, core)

ABIS: Mapping[AbiName, Abi] = {abi.name: abi for abi in _DETECTION_ORDER}
assert set(ABIS) == set(get_args(AbiName)), "every ABI name needs its module"


def detect_abi(module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> Abi:
    """The ABI ``abi = "auto"`` picks. ``functions`` is ``function_exports(module)``,
    computed once per load by the caller: walking the exports costs milliseconds for a
    module with thousands of them."""
    return next(abi for abi in _DETECTION_ORDER if abi.detect(module, functions))


def describe_abi(name: str) -> str:
    """How requests call methods of the ABI called ``name`` ("" for a name it does not know)."""
    return next((abi.describe() for abi in _DETECTION_ORDER if abi.name == name), "")
