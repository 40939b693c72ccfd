"""Helpers shared by the test modules: atomic replacement and bounded event waits."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

from wasmd import Client


def replace_atomically(path: Path, content: str | bytes) -> None:
    """What careful tools do: write a temporary name (ignored by wasmd), then rename."""
    temporary = path.with_name(path.name + ".tmp")
    data = content.encode() if isinstance(content, str) else content
    temporary.write_bytes(data)
    os.replace(temporary, path)


class Events:
    """A subscription's stream with a bounded wait for the next event."""

    def __init__(self, stream: AsyncIterator[dict[str, Any]]) -> None:
        self.stream = stream

    async def next(self, within: float = 10) -> dict[str, Any]:
        with anyio.fail_after(within):
            return await anext(self.stream)


async def subscribe(client: Client, *prefixes: str) -> Events:
    await client.subscribe(list(prefixes) or ["plugin."])
    return Events(client.events())
