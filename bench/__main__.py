"""``python -m bench``: run every scenario, print the table, write the JSON.

    .venv/bin/python -m bench [--quick] [--out FILE.json] [--only 1,3,...]

See docs/benchmarks.md for what each scenario measures and why its baseline is the right one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import loadgen
from .context import Context
from .report import Row, machine_info, notes, skipped, table
from .scenarios import SCENARIOS

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 60 s)")
    parser.add_argument(
        "--out", type=Path, help="write the JSON here (default: bench/results/<time>.json)"
    )
    parser.add_argument(
        "--only", help="comma-separated scenario numbers to run (default: all)", default=""
    )
    args = parser.parse_args(argv)
    chosen = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = chosen - {number for number, _, _ in SCENARIOS}
    if unknown:
        parser.error(f"no scenario {', '.join(sorted(unknown))}")

    rows: list[Row] = []
    loads: list[str] = []  # the 1-minute load average before each scenario: the VM's noise
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="wasmd-bench-") as tmp:
        workdir = Path(tmp)
        gen = loadgen.build(workdir)
        ctx = Context(workdir=workdir, quick=args.quick, loadgen=gen)
        ctx.say(f"{'quick' if args.quick else 'full'} run; {gen.note}")
        for number, title, scenario in SCENARIOS:
            if chosen and number not in chosen:
                continue
            load = os.getloadavg()[0]
            loads.append(f"{number}: {load:.1f}")
            try:
                new = scenario(ctx)
            except Exception as exc:
                traceback.print_exc()
                new = [skipped(number, title, f"failed: {exc!r}")]
            for row in new:
                row.extra["loadavg_before"] = load
            rows += new
        elapsed = time.perf_counter() - ctx.started

    print()
    print(f"wasmd benchmarks ({'quick' if args.quick else 'full'} run, {elapsed:.0f} s)")
    print(f"load generator: {gen.note}")
    print()
    print(table(rows))
    print()
    print(notes(rows))
    print(f"load average before each scenario (nproc {os.cpu_count()}): {', '.join(loads)}")
    missed = [row.id for row in rows if row.met is False]
    print()
    print(f"targets missed: {', '.join(missed) if missed else 'none'}")

    out = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S.json", time.localtime(started))
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(elapsed, 1),
        "quick": args.quick,
        "loadgen": {"kind": gen.kind, "note": gen.note},
        "machine": machine_info(),
        "rows": [row.to_dict() for row in rows],
        "targets_missed": missed,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
