"""The README says what the code does: every config key the daemon accepts is in its table,
and every CLI example runs as shown against a real daemon serving a copy of ``plugins.d``."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasmd import DaemonConfig, SyncClient

from .conftest import serve_command
from .processes import copy_bundled_examples, reaped, until

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
WASMD = ".venv/bin/wasmd"
# A plug-in version (a sha256 prefix) changes with the plug-in's bytes, not with the README.
VERSION = re.compile(r"\b[0-9a-f]{12}\b")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_every_config_key_is_in_the_readme() -> None:
    table = section("Configuration")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    accepted = {field.name for field in dataclasses.fields(DaemonConfig)}
    assert documented == accepted


def console_examples() -> list[tuple[str, str]]:
    """(command line, expected output) for every ``$ `` line of the README's console blocks."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            examples.append((command, output.rstrip("\n")))
    return examples


def matches(expected: str, actual: str) -> bool:
    """``...`` in the README stands for anything (lines included); versions are not compared."""
    expected, actual = VERSION.sub("<version>", expected), VERSION.sub("<version>", actual)
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, re.S) is not None


@pytest.fixture
def readme_daemon(short_tmp: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """``wasmd serve --plugins plugins.d`` as the README starts it, in a copy of the repo's
    ``plugins.d``; yields that folder's parent (the examples' working directory) and the
    environment the examples run in (``WASMD_SOCKET`` set, as the README says)."""
    copy_bundled_examples(short_tmp / "plugins.d")
    sock = short_tmp / "wasmd.sock"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WASMD_SOCKET": str(sock)}
    command = serve_command(short_tmp / "plugins.d", "--socket", str(sock))
    with reaped(command, stderr=subprocess.PIPE, text=True, env=env) as daemon:
        assert daemon.stderr is not None
        for line in daemon.stderr:  # readiness is announced on the log
            if "daemon.ready" in line:
                break
        else:
            pytest.fail("the daemon exited before it was ready")
        try:
            yield short_tmp, env
        finally:
            daemon.terminate()
            daemon.communicate(timeout=30)


def run_example(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command, comments=True)
    assert argv[0] == WASMD, f"a README example that is not {WASMD}: {command}"
    return subprocess.run(
        [sys.executable, "-m", "wasmd", *argv[1:]],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # as a terminal shows them: errors are on stderr
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_readme_cli_examples_run_as_shown(readme_daemon: tuple[Path, dict[str, str]]) -> None:
    cwd, env = readme_daemon
    examples = console_examples()
    assert len(examples) >= 10
    for command, expected in examples:
        result = run_example(command, cwd, env)
        actual = result.stdout.rstrip("\n")
        assert matches(expected, actual), f"$ {command}\nREADME:\n{expected}\nprinted:\n{actual}"
        fails = expected.startswith(("wasmd: ", '{\n  "error"'))
        assert result.returncode == (1 if fails else 0), f"$ {command}: exit {result.returncode}"


def live_directory_steps() -> list[tuple[str, str]]:
    """(shell command, the event it causes) from the README's live-directory block."""
    block = re.search(r"The plug-in directories are live\..*?```sh\n(.*?)```", README, re.S)
    assert block is not None
    steps = []
    for line in block[1].splitlines():
        command, _, comment = line.partition("  # ")
        steps.append((command.strip(), comment.split(":")[0].strip()))
    return steps


@pytest.mark.slow
def test_readme_live_directory_example(readme_daemon: tuple[Path, dict[str, str]]) -> None:
    cwd, env = readme_daemon
    follow = [sys.executable, "-m", "wasmd", "events", "--json", "plugin."]
    with reaped(follow, stdout=subprocess.PIPE, text=True, env=env) as follower:
        assert follower.stdout is not None
        events: queue.Queue[dict[str, object]] = queue.Queue()
        stream = follower.stdout

        def read() -> None:
            for line in stream:
                events.put(json.loads(line))

        threading.Thread(target=read, daemon=True).start()
        try:
            with SyncClient(env["WASMD_SOCKET"], timeout=10) as client:
                until(
                    lambda: client.call("wasmd.stats")["daemon"]["subscribers"] > 0,
                    what="the follower subscribing",
                )
            for command, expected in live_directory_steps():
                subprocess.run(["sh", "-c", command], cwd=cwd, check=True, timeout=30)
                seen: list[tuple[object, object]] = []
                while not seen or seen[-1] != (expected, "calc"):
                    event = events.get(timeout=30)
                    seen.append((event["type"], event.get("plugin")))
        finally:
            follower.terminate()
