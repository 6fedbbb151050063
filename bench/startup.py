"""Benchmark: how long the `lphedge` command takes to start.

    .venv/bin/python -m bench.startup [--runs N]

Runs `lphedge --help` and `lphedge version` N times each as real processes (the console
script pip installed next to this interpreter) and prints the median wall time of each,
beside `python -c pass` measured the same way in the same run (the interpreter's own
start-up on this machine, under its current load) and the ratio to it. Goal: < 0.5 s for
both on the 2-core machine. The numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 0.5
LPHEDGE = str(Path(sys.executable).parent / "lphedge")


def median_wall(argv: list[str], runs: int) -> float:
    """Median wall seconds of ``argv`` run to completion, output discarded; one warm-up
    run first (page cache, .pyc files) that is not counted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LPHEDGE_")}
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       env=env)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    ref = median_wall([sys.executable, "-c", "pass"], args.runs)
    print(f"start-up, median of {args.runs} runs (load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores):")
    print(f"  {'python -c pass':<18} {ref:6.3f} s  (reference)")
    for argv in (["--help"], ["version"]):
        t = median_wall([LPHEDGE, *argv], args.runs)
        verdict = "ok" if t < GOAL_S else "OVER"
        print(f"  {'lphedge ' + ' '.join(argv):<18} {t:6.3f} s  = {t / ref:5.1f} x python -c pass"
              f"  (goal < {GOAL_S} s: {verdict})")


if __name__ == "__main__":
    main()
