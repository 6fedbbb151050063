"""Benchmark and cross-check policies.lp_math against @uniswap/v3-sdk.

    .venv/bin/python -m bench.lp_math [--n N] [--seed S] [--repeat R] [--json]

Generates N seeded random inputs (ticks across the whole range and near MIN/MAX,
full-range and narrow positions, liquidity up to 2**128-1, random sqrt prices),
runs them through policies.lp_math here and through the v3-sdk in node
(bench/lp_math_sdk.mjs), compares every result, and reports throughput measured
inside each runtime (one warm-up pass, best of R; process start, JSON and
string/JSBI conversion excluded). Exit status 1 if any result differs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from policies.lp_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    amounts_for_liquidity,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

SDK_SCRIPT = Path(__file__).with_name("lp_math_sdk.mjs")
UINT128_MAX = (1 << 128) - 1
T = TypeVar("T")

Pos = tuple[int, int, int, int, int]  # sqrt_price_x96, tick, tick_lower, tick_upper, liquidity


def _rand_tick(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.1:
        return rng.randint(MIN_TICK, MIN_TICK + 200)
    if r < 0.2:
        return rng.randint(MAX_TICK - 200, MAX_TICK)
    if r < 0.5:
        return rng.randint(-100_000, 100_000)
    return rng.randint(MIN_TICK, MAX_TICK)


def _rand_sqrt(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.05:
        return MIN_SQRT_RATIO + rng.randint(0, 1000)
    if r < 0.1:
        return MAX_SQRT_RATIO - 1 - rng.randint(0, 1000)
    if r < 0.3:
        # exactly on a tick boundary
        return get_sqrt_ratio_at_tick(rng.randint(MIN_TICK, MAX_TICK - 1))
    t = rng.randint(MIN_TICK, MAX_TICK - 1)
    lo, hi = get_sqrt_ratio_at_tick(t), get_sqrt_ratio_at_tick(t + 1)
    return rng.randint(lo, hi - 1)


def _rand_liquidity(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.05:
        return UINT128_MAX
    if r < 0.1:
        return rng.randint(0, 1000)
    return rng.getrandbits(rng.randint(1, 128))


def _rand_position(rng: random.Random) -> Pos:
    r = rng.random()
    if r < 0.1:
        lower, upper = MIN_TICK, MAX_TICK  # full range (tick spacing 1)
    elif r < 0.2:
        lower = rng.randint(MIN_TICK, MIN_TICK + 500)
        upper = lower + rng.randint(1, 5000)
    elif r < 0.3:
        upper = rng.randint(MAX_TICK - 500, MAX_TICK)
        lower = upper - rng.randint(1, 5000)
    elif r < 0.7:
        lower = rng.randint(-300_000, 300_000)
        upper = lower + rng.randint(1, 20_000)
    else:
        a, b = rng.randint(MIN_TICK, MAX_TICK), rng.randint(MIN_TICK, MAX_TICK)
        lower, upper = min(a, b), max(a, b)
        if lower == upper:
            upper = lower + 1 if upper < MAX_TICK else upper
            lower = upper - 1
    # Current price: below, inside (incl. exactly on the edges), or above the range.
    r = rng.random()
    if r < 0.2 and lower > MIN_TICK:
        sqrt = rng.randint(MIN_SQRT_RATIO, get_sqrt_ratio_at_tick(lower) - 1)
    elif r < 0.4 and upper < MAX_TICK:
        sqrt = rng.randint(get_sqrt_ratio_at_tick(upper), MAX_SQRT_RATIO - 1)
    elif r < 0.45:
        sqrt = get_sqrt_ratio_at_tick(lower)
    elif r < 0.5 and upper < MAX_TICK:
        sqrt = get_sqrt_ratio_at_tick(upper)
    else:
        sqrt = rng.randint(get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper) - 1)
    return sqrt, get_tick_at_sqrt_ratio(sqrt), lower, upper, _rand_liquidity(rng)


def generate(n: int, seed: int) -> tuple[list[int], list[int], list[Pos]]:
    rng = random.Random(seed)
    ticks = [_rand_tick(rng) for _ in range(n)]
    ticks[:4] = [MIN_TICK, MAX_TICK, 0, -1][: min(4, n)]
    sqrts = [_rand_sqrt(rng) for _ in range(n)]
    sqrts[:2] = [MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1][: min(2, n)]
    positions = [_rand_position(rng) for _ in range(n)]
    return ticks, sqrts, positions


def _best(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    out = fn()  # warm-up, like the node side
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_python(
    ticks: list[int], sqrts: list[int], positions: list[Pos], repeat: int
) -> tuple[dict[str, float], dict[str, Any]]:
    sr = get_sqrt_ratio_at_tick
    ts = get_tick_at_sqrt_ratio
    afl = amounts_for_liquidity

    def amounts() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        down = [afl(s, t, lo, up, liq, False) for s, t, lo, up, liq in positions]
        up_ = [afl(s, t, lo, up, liq, True) for s, t, lo, up, liq in positions]
        return down, up_

    t_sqrt, r_sqrt = _best(lambda: [sr(t) for t in ticks], repeat)
    t_tick, r_tick = _best(lambda: [ts(s) for s in sqrts], repeat)
    t_amt, (r_down, r_up) = _best(amounts, repeat)
    seconds = {"sqrt_at_tick": t_sqrt, "tick_at_sqrt": t_tick, "amounts": t_amt}
    results = {
        "sqrt_at_tick": r_sqrt,
        "tick_at_sqrt": r_tick,
        "amounts_down": r_down,
        "amounts_up": r_up,
    }
    return seconds, results


def run_sdk(
    ticks: list[int], sqrts: list[int], positions: list[Pos], repeat: int
) -> dict[str, Any]:
    node = os.environ.get("NODE") or shutil.which("node")
    if node is None:
        raise SystemExit("error: node not found (set NODE or put node on PATH)")
    payload = json.dumps(
        {
            "ticks": ticks,
            "sqrts": [str(s) for s in sqrts],
            "positions": [[str(s), t, lo, up, str(liq)] for s, t, lo, up, liq in positions],
            "repeat": repeat,
        }
    )
    proc = subprocess.run(
        [node, str(SDK_SCRIPT)],
        input=payload,
        capture_output=True,
        text=True,
        cwd=SDK_SCRIPT.parent.parent,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: {SDK_SCRIPT.name} failed: {proc.stderr.strip()[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _pairs(raw: list[list[str]]) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in raw]


def compare(py: dict[str, Any], sdk: dict[str, Any]) -> dict[str, int]:
    sres = sdk["results"]
    sdk_sqrt = [int(x) for x in sres["sqrt_at_tick"]]
    sdk_tick = [int(x) for x in sres["tick_at_sqrt"]]
    checks: dict[str, tuple[list[Any], list[Any]]] = {
        "sqrt_at_tick": (py["sqrt_at_tick"], sdk_sqrt),
        "tick_at_sqrt": (py["tick_at_sqrt"], sdk_tick),
        "amounts_down": (py["amounts_down"], _pairs(sres["amounts_down"])),
        "amounts_up": (py["amounts_up"], _pairs(sres["amounts_up"])),
        "position_down": (py["amounts_down"], _pairs(sres["position_down"])),
        "position_up": (py["amounts_up"], _pairs(sres["position_up"])),
    }
    mismatches: dict[str, int] = {}
    for name, (a, b) in checks.items():
        if len(a) != len(b):
            mismatches[name] = max(len(a), len(b))
            continue
        mismatches[name] = sum(1 for x, y in zip(a, b, strict=True) if x != y)
    return mismatches


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.lp_math", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="inputs per operation (default 20000)")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes, best kept (default 3)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        print("error: --n and --repeat must be >= 1", file=sys.stderr)
        return 2

    ticks, sqrts, positions = generate(args.n, args.seed)
    py_seconds, py_results = run_python(ticks, sqrts, positions, args.repeat)
    sdk = run_sdk(ticks, sqrts, positions, args.repeat)
    mismatches = compare(py_results, sdk)

    n = args.n
    sdk_s = sdk["seconds"]
    rows = [
        # name, python seconds, sdk seconds, what one op is
        ("getSqrtRatioAtTick", py_seconds["sqrt_at_tick"], sdk_s["sqrt_at_tick"], "1 call"),
        ("getTickAtSqrtRatio", py_seconds["tick_at_sqrt"], sdk_s["tick_at_sqrt"], "1 call"),
        (
            "position amounts (SqrtPriceMath)",
            py_seconds["amounts"],
            sdk_s["amounts"],
            "burn+mint amounts",
        ),
        (
            "position amounts (sdk Position)",
            py_seconds["amounts"],
            sdk_s["amounts_position"],
            "burn+mint amounts",
        ),
    ]
    table = [
        {
            "op": name,
            "unit": unit,
            "python_ops_per_s": n / py,
            "sdk_ops_per_s": n / js,
            "ratio_python_over_sdk": js / py,
        }
        for name, py, js, unit in rows
    ]
    total_mismatches = sum(mismatches.values())
    report = {
        "n": n,
        "seed": args.seed,
        "repeat": args.repeat,
        "sdk_version": sdk.get("sdk_version"),
        "python": sys.version.split()[0],
        "mismatches": mismatches,
        "total_mismatches": total_mismatches,
        "throughput": table,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"lp_math vs @uniswap/v3-sdk {report['sdk_version']}  "
            f"(n={n}, seed={args.seed}, best of {args.repeat}, python {report['python']})"
        )
        print()
        print(f"{'operation':34} {'python ops/s':>14} {'sdk ops/s':>14} {'python/sdk':>11}")
        for row in table:
            print(
                f"{row['op']:34} {row['python_ops_per_s']:>14,.0f} {row['sdk_ops_per_s']:>14,.0f} "
                f"{row['ratio_python_over_sdk']:>10.2f}x"
            )
        print()
        print("mismatches: " + ", ".join(f"{k}={v}" for k, v in mismatches.items()))
        print("RESULT: " + ("all results identical" if total_mismatches == 0 else "MISMATCH"))
    return 0 if total_mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
