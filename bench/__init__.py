"""wasmd's benchmark harness: ``python -m bench`` (see docs/benchmarks.md).

Every scenario runs wasmd and its baseline side by side in one process tree, interleaved
round by round, and reports medians with their min-max; nothing here asserts a timing.
"""
