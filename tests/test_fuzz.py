"""The fuzzers' fast subsets: the atheris corpus replayed, and a live fuzz of the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from .fuzz.protocol_atheris import check_one_input

CORPUS = sorted((Path(__file__).parent / "fuzz" / "corpus").iterdir())


@pytest.mark.parametrize("path", CORPUS, ids=[p.name[:12] for p in CORPUS])
def test_corpus_entry_keeps_the_protocol_consistent(path: Path) -> None:
    check_one_input(path.read_bytes())


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS) >= 20
