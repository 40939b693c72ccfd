"""A WebAssembly component plug-in in Python, built with componentize-py (build.py).

``wit/notes.wit`` is the contract; componentize-py generates the ``wit_world`` package
these classes implement and the bindings to wasmd's host interface (``wasmd:host/api``).
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.notes import Note, Order
from wit_world.imports import api

NOTES: list[Note] = []  # kept by the instance between calls


class Notes(exports.Notes):
    def add(self, note: Note) -> int:
        NOTES.append(note)
        api.log(api.Level.INFO, f"note {len(NOTES)}: {note.title}")
        return len(NOTES)

    def all(self, order: Order) -> list[Note]:
        return list(reversed(NOTES)) if order == Order.NEWEST else list(NOTES)

    def find(self, tag: str) -> Note | None:
        return next((note for note in NOTES if tag in note.tags), None)

    def remove(self, index: int) -> Note:
        if not 1 <= index <= len(NOTES):
            raise Err(f"no note {index}: there are {len(NOTES)}")
        return NOTES.pop(index - 1)
