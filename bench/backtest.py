"""Bench: two years hourly, one position, the example policy's three layers.

    .venv/bin/python bench/backtest.py [HISTORY_DIR]

Prints the load time, the loop's wall time and peak resident memory (getrusage)."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.market.history import parse_iso  # noqa: E402
from bot.backtest.data import load_history  # noqa: E402
from bot.backtest.engine import Config, run, summary  # noqa: E402
from bot.policy_loader import load_policy  # noqa: E402


def main() -> None:
    hist_dir = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/history"
    t0 = time.perf_counter()
    hist = load_history(hist_dir)
    t1 = time.perf_counter()
    policy = load_policy(str(ROOT / "examples" / "policy.toml"))
    cfg = Config(parse_iso("2021-04-01T00:00:00Z"), parse_iso("2022-12-31T00:00:00Z"))
    res = run(hist, policy, cfg)
    t2 = time.perf_counter()
    s = summary(res, cfg)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"hours {s['hours']} ({s['from']} .. {s['to']}), layers {len(policy.layers)}, "
          f"decisions with intents {len(res.decisions)}")
    print(f"load {t1 - t0:.2f} s, run {t2 - t1:.2f} s ({1e6 * (t2 - t1) / s['hours']:.0f} us/hour), "
          f"peak RSS {peak_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
