"""Episode analysis: within a date window, when each layer engaged and released and why,
what it spent and what it paid, and how the hedged and unhedged equity fell.

Everything comes from the run's own decision log and equity series: engage/release
intents with their reasons, fills (spend = premium + fees of buys and roll buys, payoff =
settlements and roll sales) stamped in the window. Options bought in the window but
settled after it show in ``protection_pnl_usd`` (the change of hedged - unhedged over the
window, marks included), not in ``payoff``."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from adapters.market.history import iso
from bot.backtest.data import BacktestError
from bot.backtest.engine import Result, worst_window_drawdown

# the episodes of the recorded set (shared/data/history README), as windows around them
RECORDED = {
    "2021-05-19 crash": ("2021-05-10", "2021-05-31"),
    "2022-05 Luna": ("2022-05-05", "2022-05-20"),
    "2022-06 3AC": ("2022-06-08", "2022-06-25"),
    "2022-11 FTX": ("2022-11-05", "2022-11-20"),
}


def parse_window(text: str) -> tuple[str, int, int]:
    """``NAME=FROM..TO`` or ``FROM..TO`` (UTC dates) -> (name, start, end)."""
    from datetime import UTC, datetime

    name, _, span = text.rpartition("=")
    a, sep, b = span.partition("..")
    try:
        if not sep:
            raise ValueError
        start, end = (int(datetime.fromisoformat(x.strip()).replace(tzinfo=UTC).timestamp())
                      for x in (a, b))
    except ValueError:
        raise BacktestError(f"--episode: expected [NAME=]YYYY-MM-DD..YYYY-MM-DD, got {text!r}"
                            ) from None
    if end <= start:
        raise BacktestError(f"--episode: {text!r} ends before it starts")
    return name or span, start, end


def analyse(res: Result, name: str, start: int, end: int) -> dict[str, Any]:
    """The episode ``[start, end]`` of a run (hours outside the run are clipped)."""
    idx = [k for k, t in enumerate(res.ts) if start <= t <= end]
    if not idx:
        raise BacktestError(f"--episode {name}: {iso(start)}..{iso(end)} is outside the run "
                            f"({iso(res.ts[0])}..{iso(res.ts[-1])})")
    a, b = idx[0], idx[-1]
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    money: dict[str, dict[str, float]] = defaultdict(lambda: {"spend_usd": 0.0,
                                                              "payoff_usd": 0.0,
                                                              "bought": 0.0})
    perp_fees, perp_n, perp_target = 0.0, 0, None
    for rec in res.decisions:
        if not start <= rec["now"] <= end:
            continue
        for it in rec["intents"]:
            act, layer, fill = it["action"], it.get("layer"), it.get("fill", {})
            if act in ("engage_layer", "release_layer"):
                events[layer].append({"time": iso(rec["now"]), "action": act,
                                      "regime": rec["regime"], "reason": it["reason"],
                                      "spot": rec["spot"], "dvol": rec["dvol"]})
            elif act in ("open_option", "roll_option", "close_option"):
                money[layer]["spend_usd"] += fill.get("spend", 0.0)
                money[layer]["payoff_usd"] += fill.get("payoff", 0.0)
                money[layer]["bought"] += float(it.get("size", it.get("open_size", 0)) or 0) \
                    if act != "close_option" else 0.0
            elif act == "adjust_perp":
                perp_fees += fill.get("fee", 0.0)
                perp_n += 1
                perp_target = it.get("target_total")
    hours: dict[str, int] = defaultdict(int)
    for k in range(a, b + 1):
        for n in res.engaged[k]:
            hours[n] += 1
    layers = sorted(set(events) | set(money) | set(hours) | set(res.engaged[a]))
    base = res.unhedged[a]
    return {
        "name": name, "from": iso(res.ts[a]), "to": iso(res.ts[b]),
        "spot": {"start": res.spot[a], "low": min(res.spot[a:b + 1]), "end": res.spot[b]},
        "dvol": {"start": res.dvol[a], "high": max(res.dvol[a:b + 1]), "end": res.dvol[b]},
        "engaged_at_start": list(res.engaged[a]),
        "unhedged_change_usd": round(res.unhedged[b] - res.unhedged[a], 2),
        "hedged_change_usd": round(res.hedged[b] - res.hedged[a], 2),
        "protection_pnl_usd": round((res.hedged[b] - res.unhedged[b])
                                    - (res.hedged[a] - res.unhedged[a]), 2),
        "worst_7d_unhedged": round(worst_window_drawdown(res.unhedged[a:b + 1], 168, base), 4),
        "worst_7d_hedged": round(worst_window_drawdown(res.hedged[a:b + 1], 168, base), 4),
        "layers": {n: {"hours_engaged": hours.get(n, 0), "events": events.get(n, []),
                       "spend_usd": round(money[n]["spend_usd"], 2),
                       "payoff_usd": round(money[n]["payoff_usd"], 2),
                       "bought_eth": round(money[n]["bought"], 3)} for n in layers},
        "perp": {"fees_usd": round(perp_fees, 2), "adjustments": perp_n,
                 "last_target": perp_target},
    }


def to_text(ep: dict[str, Any]) -> str:
    lines = [f"episode {ep['name']}: {ep['from']} .. {ep['to']}; ETH {ep['spot']['start']:,.0f}"
             f" -> low {ep['spot']['low']:,.0f} -> {ep['spot']['end']:,.0f}; DVOL "
             f"{ep['dvol']['start']:g} -> high {ep['dvol']['high']:g}",
             f"  equity change: unhedged {ep['unhedged_change_usd']:+,.0f}, hedged "
             f"{ep['hedged_change_usd']:+,.0f} (protection {ep['protection_pnl_usd']:+,.0f}); "
             f"worst 7d: unhedged {ep['worst_7d_unhedged']:.1%}, hedged "
             f"{ep['worst_7d_hedged']:.1%}",
             f"  engaged at start: {', '.join(ep['engaged_at_start']) or 'none'}"]
    for n, v in ep["layers"].items():
        lines.append(f"  layer {n}: {v['hours_engaged']} h engaged, bought {v['bought_eth']:g} "
                     f"ETH, spent {v['spend_usd']:,.0f}, paid {v['payoff_usd']:,.0f}")
        for e in v["events"]:
            lines.append(f"    {e['time']} {e['action'].replace('_layer', '')} (regime "
                         f"{e['regime']}, ETH {e['spot']:,.0f}, DVOL {e['dvol']:g}): "
                         f"{e['reason']}")
    p = ep["perp"]
    lines.append(f"  perp: {p['adjustments']} adjustments, fees {p['fees_usd']:,.0f}, "
                 f"last target {p['last_target']}")
    return "\n".join(lines)
