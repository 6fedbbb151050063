"""Benchmark: wall time of `make test-fast` (no chain, no subprocess, properties capped).

    .venv/bin/python -m bench.test_fast

Runs `make test-fast` once in a child process and prints its wall time, the tests it ran
(pytest's summary line) and the machine's load average before and after, since the 2
cores are shared. Goal: < 30 s. The number is printed, not asserted; a failing test is
reported with pytest's summary, and the exit code is make's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 30.0
ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(["make", "--no-print-directory", "test-fast"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-200:]
    verdict = "ok" if wall < GOAL_S else "OVER"
    print(f"make test-fast: {wall:.1f} s (goal < {GOAL_S:.0f} s: {verdict}); {summary.strip('= ')}; "
          f"load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"{os.cpu_count()} cores")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
