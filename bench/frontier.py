"""Sweep: the whole recorded history over a grid of policy settings (issue 13's numbers).

    .venv/bin/python bench/frontier.py [--history DIR] [--policy FILE] [--grid FILE]
        [--from DATE] [--to DATE] [--jobs N] [--json OUT] [--markdown]

Each setting is the policy file with some fields replaced (dotted paths; ``layers.*.x``
sets x in every layer). The signal track is computed once (it does not depend on the
policy) and every setting runs through bot.backtest.engine.run, i.e. policies.alvh.decide.
Per setting it prints the worst-7-day-drawdown ratio (hedged / unhedged) and the cost
share ((premium + option fees + perp fees + funding paid) / fee income), marks the
frontier (no other setting better on both) and the targets: ratio <= 0.5, cost share
<= 0.25, and better than the naive always-on put baseline on both.

A grid file is TOML: ``[[setting]]`` tables with ``name`` and ``set = { "perp.hedge_ratio"
= 1.0, ... }`` (a path to a missing value deletes nothing; in code, None deletes);
without one, GRID below is used."""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.backtest.chain import Params  # noqa: E402
from bot.backtest.data import HOUR, History, load_history  # noqa: E402
from bot.backtest.engine import Config, run, signal_track, summary  # noqa: E402
from bot.backtest.episodes import RECORDED, analyse, parse_window, to_text  # noqa: E402
from policies.policy_file import policy_from_dict  # noqa: E402
from policies.types import SignalReading  # noqa: E402

TARGET_RATIO = 0.5
TARGET_COST = 0.25

UNRECORDED: dict[str, Any] = {"layers.*.trigger.signals.term_structure": None,
                              "layers.*.trigger.signals.tvl_drop": None}
# (name, overrides): perp hedge ratio x options budget, and the example policy as is
GRID: list[tuple[str, dict[str, Any]]] = [
    ("example", {}),
    ("options only", {"perp.enabled": False}),
    ("perp 0.5, budget 0.25", {"budget.share_of_expected_fees": 0.25}),
    ("perp 0.75", {"perp.hedge_ratio": 0.75}),
    ("perp 0.75, budget 0.25", {"perp.hedge_ratio": 0.75, "budget.share_of_expected_fees": 0.25}),
    ("perp 1.0", {"perp.hedge_ratio": 1.0}),
    ("perp 1.0, budget 0.25", {"perp.hedge_ratio": 1.0, "budget.share_of_expected_fees": 0.25}),
    ("perp 1.0, budget 0.1", {"perp.hedge_ratio": 1.0, "budget.share_of_expected_fees": 0.1}),
    ("perp 1.0, band 0.05, budget 0.25", {"perp.hedge_ratio": 1.0, "perp.rebalance_band": 0.05,
                                          "budget.share_of_expected_fees": 0.25}),
    ("perp 1.0, budget 1.0", {"perp.hedge_ratio": 1.0, "budget.share_of_expected_fees": 1.0}),
    # triggers on signals with no recorded history (term_structure, tvl_drop) are never
    # known in the backtest, and an unknown trigger holds a layer engaged (D4): drop them
    ("recorded triggers", UNRECORDED),
    ("recorded triggers, perp 1.0", {**UNRECORDED, "perp.hedge_ratio": 1.0}),
    ("recorded triggers, perp 1.0, budget 0.25", {**UNRECORDED, "perp.hedge_ratio": 1.0,
                                                  "budget.share_of_expected_fees": 0.25}),
    ("recorded triggers, perp 1.0, budget 0.1", {**UNRECORDED, "perp.hedge_ratio": 1.0,
                                                 "budget.share_of_expected_fees": 0.1}),
    ("perp 1.0, band 0.2, budget 0.1", {"perp.hedge_ratio": 1.0, "perp.rebalance_band": 0.2,
                                        "budget.share_of_expected_fees": 0.1}),
    ("recorded triggers, perp 1.0, band 0.2, budget 0.15", {
        **UNRECORDED, "perp.hedge_ratio": 1.0, "perp.rebalance_band": 0.2,
        "budget.share_of_expected_fees": 0.15}),
]

_STATE: dict[str, Any] = {}  # shared with forked workers (history, track, config)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (dotted, ``*`` = every key) to ``value``; ``None`` deletes it."""
    head, _, rest = path.partition(".")
    if head == "*":
        for sub in data.values():
            _set(sub, rest, value)
        return
    if not rest:
        if value is None:
            data.pop(head, None)
        else:
            data[head] = value
        return
    if value is None and head not in data:
        return
    _set(data.setdefault(head, {}), rest, value)


def variant(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for path, value in overrides.items():
        _set(data, path, value)
    return data


def _date(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def _one(item: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    name, overrides = item
    hist: History = _STATE["history"]
    cfg: Config = _STATE["cfg"]
    t0 = time.perf_counter()
    try:
        if name == "baseline":
            res = run(hist, policy_from_dict(_STATE["policy"]),
                      Config(**{**cfg.__dict__, "baseline": True}), _STATE["params"])
            s = summary(res, Config(**{**cfg.__dict__, "baseline": True}))
        else:
            pol = policy_from_dict(variant(_STATE["policy"], overrides))
            track: list[list[SignalReading]] = _STATE["track"]
            res = run(hist, pol, cfg, _STATE["params"], track=track)
            s = summary(res, cfg)
    except Exception as exc:  # a setting the policy schema refuses: reported, sweep goes on
        return {"name": name, "set": overrides, "error": str(exc).splitlines()[0]}
    un, he = s["unhedged"]["worst_7d_drawdown"], s["hedged"]["worst_7d_drawdown"]
    return {"name": name, "set": overrides, "seconds": round(time.perf_counter() - t0, 1),
            "worst_7d_unhedged": un, "worst_7d_hedged": he,
            "ratio": round(he / un, 4) if un < 0 else None,
            "cost_share": s["protection_cost_share"],
            "premium_share": s["premium_share_of_fees"],
            "final_pnl_unhedged": s["unhedged"]["final_pnl_usd"],
            "final_pnl_hedged": s["hedged"]["final_pnl_usd"],
            "max_dd_hedged": s["hedged"]["max_drawdown"],
            "premium_usd": s["premium_usd"], "option_payoff_usd": s["option_payoff_usd"],
            "funding_usd": s["funding_usd"], "perp_fees_usd": s["perp_fees_usd"],
            "fee_income_usd": s["fee_income_usd"], "layers": s["layers"],
            "summary": s, "episodes": episodes(res) if name in _STATE["episodes_for"] else []}


def episodes(res: Any) -> list[dict[str, Any]]:
    """The recorded episodes inside the run (bot/backtest/episodes.py)."""
    out = []
    for n, (a, b) in RECORDED.items():
        _, start, end = parse_window(f"{n}={a}..{b}")
        if res.ts[0] <= start and end <= res.ts[-1]:
            out.append(analyse(res, n, start, end))
    return out


def mark(rows: list[dict[str, Any]]) -> None:
    base = next(r for r in rows if r["name"] == "baseline" and "error" not in r)
    ok = [r for r in rows if "error" not in r and r["name"] != "baseline"]
    for r in ok:
        r["frontier"] = not any(
            o is not r and o["ratio"] <= r["ratio"] and o["cost_share"] <= r["cost_share"]
            and (o["ratio"] < r["ratio"] or o["cost_share"] < r["cost_share"]) for o in ok)
        r["meets_ratio"] = r["ratio"] <= TARGET_RATIO
        r["meets_cost"] = r["cost_share"] <= TARGET_COST
        r["beats_baseline"] = (r["ratio"] < base["ratio"]
                               and r["cost_share"] < base["cost_share"])
        r["meets_all"] = r["meets_ratio"] and r["meets_cost"] and r["beats_baseline"]


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| setting | worst 7d unhedged | worst 7d hedged | ratio | cost share | premium "
           "share | final PnL hedged | frontier | targets |",
           "|---|---:|---:|---:|---:|---:|---:|:-:|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['name']} | error: {r['error']} | | | | | | | |")
            continue
        t = ("baseline" if r["name"] == "baseline" else
             "all met" if r["meets_all"] else ", ".join(
                 x for x, ok in (("ratio", r["meets_ratio"]), ("cost", r["meets_cost"]),
                                 ("beats baseline", r["beats_baseline"])) if ok) or "none")
        out.append(f"| {r['name']} | {r['worst_7d_unhedged']:.1%} | {r['worst_7d_hedged']:.1%} "
                   f"| {r['ratio']:.3f} | {r['cost_share']:.3f} | {r['premium_share']:.3f} "
                   f"| {r['final_pnl_hedged']:,.0f} | {'*' if r.get('frontier') else ''} "
                   f"| {t} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default="/work/shared/data/history")
    ap.add_argument("--policy", default=str(ROOT / "examples" / "policy.toml"))
    ap.add_argument("--grid")
    ap.add_argument("--from", dest="date_from", default="2021-04-01")
    ap.add_argument("--to", dest="date_to", default="2022-12-31")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--episodes", default="example;baseline",
                    help="settings whose recorded episodes are analysed (separated by ;)")
    ap.add_argument("--only", help="run only these settings (names separated by ;)")
    a = ap.parse_args()
    grid = GRID
    if a.grid:
        with open(a.grid, "rb") as fh:
            grid = [(g["name"], dict(g.get("set", {}))) for g in tomllib.load(fh)["setting"]]
    if a.only:
        keep = {x.strip() for x in a.only.split(";")}
        grid = [g for g in grid if g[0] in keep]
    _STATE["episodes_for"] = {x.strip() for x in a.episodes.split(";")}
    with open(a.policy, "rb") as fh:
        _STATE["policy"] = tomllib.load(fh)
    t0 = time.perf_counter()
    _STATE["history"] = load_history(a.history)
    cfg = Config(_date(a.date_from), _date(a.date_to))
    _STATE["cfg"] = cfg
    _STATE["params"] = Params.load()  # once: a file edited mid-sweep changes nothing
    _STATE["track"] = signal_track(_STATE["history"], cfg, _STATE["params"])
    t1 = time.perf_counter()
    items = [("baseline", {}), *grid]
    rows = []
    with multiprocessing.get_context("fork").Pool(max(a.jobs, 1)) as pool:
        for r in pool.imap(_one, items, chunksize=1):  # in grid order, as each finishes
            print(json.dumps({k: v for k, v in r.items() if k not in ("summary", "episodes")}),
                  file=sys.stderr, flush=True)
            rows.append(r)
    mark(rows)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "policies",
                            "bot/backtest"], capture_output=True, text=True).stdout.strip()
    head = (f"sweep {a.date_from}..{a.date_to}, {(cfg.end - cfg.start) // HOUR + 1} h, "
            f"{len(grid)} settings + baseline, policy {Path(a.policy).name}, commit {commit}"
            + (" (+ uncommitted changes in policies/ or bot/backtest/)" if dirty else "")
            + f"; signals {t1 - t0:.0f} s once, runs {time.perf_counter() - t1:.0f} s "
            f"on {a.jobs} processes")
    print(head)
    if a.markdown:
        print(markdown(rows))
        for r in rows:
            for ep in r.get("episodes", []):
                print(f"\n[{r['name']}]\n" + to_text(ep))
    else:
        for r in rows:
            print(json.dumps(r))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"head": head, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
