"""Bench: two years hourly, one position, the example policy's three layers.

    .venv/bin/python bench/backtest.py [HISTORY_DIR]

Prints the load time, the signal track's time (the daemon's signal functions every hour),
the loop's wall time (chain, decide(), fills), CPU time and peak resident memory
(getrusage). The machine is shared: CPU time is the steadier number."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.market.history import parse_iso  # noqa: E402
from bot.backtest.data import load_history  # noqa: E402
from bot.backtest.engine import Config, run, signal_track, summary  # noqa: E402
from bot.policy_loader import load_policy  # noqa: E402


def main() -> None:
    hist_dir = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/history"
    c0, t0 = time.process_time(), time.perf_counter()
    hist = load_history(hist_dir)
    t1 = time.perf_counter()
    policy = load_policy(str(ROOT / "examples" / "policy.toml"))
    # the recorded DVOL starts 2021-03-24: the longest real span is ~21 months (15.5k h);
    # two years (17,520 h) scale by the printed per-hour cost
    cfg = Config(parse_iso("2021-03-25T00:00:00Z"), parse_iso("2022-12-31T23:00:00Z"))
    track = signal_track(hist, cfg)
    t2 = time.perf_counter()
    res = run(hist, policy, cfg, track=track)
    t3, c1 = time.perf_counter(), time.process_time()
    s = summary(res, cfg)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"hours {s['hours']} ({s['from']} .. {s['to']}), 1 position, layers "
          f"{len(policy.layers)}, decisions with intents {len(res.decisions)}")
    print(f"load {t1 - t0:.2f} s, signals {t2 - t1:.2f} s, decide+fills {t3 - t2:.2f} s "
          f"({1e6 * (t3 - t1) / s['hours']:.0f} us/hour), total wall {t3 - t0:.2f} s, "
          f"CPU {c1 - c0:.2f} s, peak RSS {peak_kib / 1024:.0f} MiB; two years at this rate: "
          f"{17520 * (t3 - t1) / s['hours']:.1f} s")


if __name__ == "__main__":
    main()
