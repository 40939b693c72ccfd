"""What every ABI module provides (``Abi``), and what they share: the plumbing exports no
request may call, instantiating from a template, and the host functions' outcome of a call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import wasmtime
from wasmtime import component as wc

from ...errors import ErrorCode, WasmdError
from ...manifest import AbiName
from ..host import HostContext, call_state
from ..linker import make_linker
from ..signatures import ExportSignature
from ..traps import CallEnded, GuestFault

if TYPE_CHECKING:
    from ..engine import Engines
    from ..instance import Instance

# Exports that are part of an ABI's plumbing, never callable as methods.
PLUMBING = frozenset({"wasmd_alloc", "_initialize", "_start"})


class Method(Protocol):
    """One callable method: its export, and how a request's params become the call's args."""

    @property
    def signature(self) -> ExportSignature: ...

    def call_signature(self, method: str) -> str:
        """How a request calls it, for people: ``count_vowels(input: bin|str) -> bin``."""
        ...

    def convert(self, params: Sequence[Any]) -> Any:
        """The args ``Abi.call`` takes, from a request's params; ``WasmdError`` (invalid
        params) if they do not fit. Runs before the call waits for an instance."""
        ...


Linked = tuple[wasmtime.InstancePre | None, wasmtime.Module | None]


class Abi(Protocol):
    """One ABI (DESIGN.md section 3): a module of ``wasmd.runtime.abis`` satisfies this.

    Compiling a plug-in asks ``detect`` (in the registry's order, for ``abi = "auto"``),
    ``problems``, ``methods`` and ``link``; an instance is made by ``instantiate`` (unless
    ``keeps_instance`` is false); every call is ``call``, on the hot path.
    """

    name: AbiName
    # False: the ABI keeps no instance between calls; the pool gives each call a bare
    # Instance (a Store, limits, deadline) and ``call`` instantiates in it.
    keeps_instance: bool

    def describe(self) -> str:
        """How a request calls a method, in a few words (``wasmd check``)."""
        ...

    def detect(self, module: wasmtime.Module, functions: Mapping[str, ExportSignature]) -> bool:
        """Whether ``abi = "auto"`` picks this ABI for ``module``."""
        ...

    def problems(
        self, module: wasmtime.Module, functions: Mapping[str, ExportSignature]
    ) -> list[str]:
        """Why ``module`` cannot use this ABI (empty if it can)."""
        ...

    def methods(
        self, exports: Mapping[str, ExportSignature], allowed: set[str] | None
    ) -> dict[str, Method]:
        """What requests may call, by method name; ``allowed`` is the manifest's list."""
        ...

    def link(
        self,
        engines: Engines,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        host: HostContext,
        uses_wasi: bool,
    ) -> Linked:
        """Once per version: the instance template (imports resolved), or a kernel module
        that each instance links against itself. Raises ``wasmtime.WasmtimeError``."""
        ...

    def instantiate(
        self, instance: Instance, deadline_at: float
    ) -> wasmtime.Instance | wc.Instance:
        """The plug-in's module instantiated in ``instance.store``; a component's ABI binds
        the methods in ``instance.callers`` itself and returns the component instance."""
        ...

    def call(self, instance: Instance, export: str, args: Any) -> Any:
        """One call with ``args`` from ``Method.convert``, deadline armed. Raises what
        wasmtime raises, ``GuestFault``, or ``WasmdError``."""
        ...


def link_template(
    engines: Engines,
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    host: HostContext,
    uses_wasi: bool,
) -> Linked:
    """``Abi.link`` for a module whose imports all resolve up front."""
    return make_linker(engine, module, host, uses_wasi).instantiate_pre(module), None


def instantiate_template(instance: Instance, deadline_at: float) -> wasmtime.Instance:
    """``Abi.instantiate`` from the template made by ``link_template``."""
    template = instance.plugin.template
    assert template is not None  # link_template made one
    return template.instantiate(instance.store)


def raise_host_outcome() -> None:
    """Raise what the host functions recorded during the call that just returned."""
    if call_state.ended is not None:
        raise CallEnded(call_state.ended)
    if call_state.guest_trap is not None:
        # Classified as any trap of the call (a timeout, say). Taken out of the thread's
        # state, and no local keeps it: its traceback will hold this frame.
        trap, call_state.guest_trap = call_state.guest_trap, None
        try:
            raise trap
        finally:
            del trap
    if call_state.fault is not None:
        raise GuestFault(call_state.fault)
    if call_state.guest_error is not None:
        raise WasmdError(ErrorCode.TRAP, call_state.guest_error, {"kind": "guest_error"})
