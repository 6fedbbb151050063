"""CLI command: backtest — the LP and its layered protection on recorded history.

`lphedge backtest --history DIR --policy FILE [--from DATE --to DATE] [--range-pct 20]
[--recenter-days 30] [--fee-apr 0.20] [--position-usd 1000000] [--json] [--report DIR]`
runs bot/backtest/engine.py hour by hour through policies.alvh.decide, unchanged."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn
from rich.table import Table

from bot.backtest.data import HOUR, BacktestError, load_history
from bot.backtest.engine import Config, run, summary
from bot.backtest.episodes import RECORDED, analyse, parse_window, to_text
from bot.backtest.report import check_report_deps, write_report
from bot.policy_loader import load_policy
from policies.policy_file import PolicyError


def _date(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BacktestError(f"{name}: not a date (YYYY-MM-DD or ISO 8601): {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _positive(value: float, name: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise BacktestError(f"{name}: must be > 0, got {value}")


def _check_report_dir(d: Path) -> None:
    """--report names a directory that exists or can be made (checked before the run)."""
    if d.exists() and not d.is_dir():
        raise BacktestError(f"--report: {d} exists and is not a directory")
    parent = d
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BacktestError(f"--report {d}: {parent} is not a writable directory")


def register(app: typer.Typer) -> None:
    """Add `backtest` to the app."""

    @app.command("backtest")
    def backtest_cmd(
        history: Annotated[Path, typer.Option("--history", help="history directory")],
        policy: Annotated[Path, typer.Option("--policy", help="policy TOML")],
        date_from: Annotated[str | None, typer.Option("--from", help="start (UTC date)")] = None,
        date_to: Annotated[str | None, typer.Option("--to", help="end (UTC date)")] = None,
        range_pct: Annotated[float, typer.Option("--range-pct", help="LP half-width, %")] = 20.0,
        recenter_days: Annotated[float, typer.Option("--recenter-days")] = 30.0,
        fee_apr: Annotated[float, typer.Option("--fee-apr", help="fee APR while in range")] = 0.20,
        position_usd: Annotated[float, typer.Option("--position-usd")] = 1_000_000.0,
        baseline: Annotated[bool, typer.Option(
            "--baseline", help="naive always-on 30-day put 5% below the range")] = False,
        json_out: Annotated[bool, typer.Option("--json", help="summary as one JSON object")] = False,
        report: Annotated[Path | None, typer.Option("--report", help="write outputs here")] = None,
        episode: Annotated[list[str] | None, typer.Option(
            "--episode", help="[NAME=]FROM..TO: when each layer engaged and why, cost, payoff "
            "(repeatable; 'recorded' = the four episodes of the recorded history)")] = None,
    ) -> None:
        """Backtest the policy on recorded history, hour by hour, with the daemon's decide()."""
        _positive(range_pct, "--range-pct")
        if range_pct >= 100:
            raise BacktestError(f"--range-pct: must be < 100, got {range_pct}")
        _positive(recenter_days, "--recenter-days")
        _positive(position_usd, "--position-usd")
        if not math.isfinite(fee_apr) or fee_apr < 0:
            raise BacktestError(f"--fee-apr: must be >= 0, got {fee_apr}")
        try:
            pol = load_policy(str(policy))
        except PolicyError as exc:
            raise BacktestError(f"{policy}: {exc}") from None
        windows = []
        for text in episode or []:
            if text == "recorded":
                windows += [parse_window(f"{n}={a}..{b}") for n, (a, b) in RECORDED.items()]
            else:
                windows.append(parse_window(text))
        hist = load_history(history)
        start = _date(date_from, "--from")
        end = _date(date_to, "--to")
        if start is None:
            start = max(hist.spot[0][0], hist.dvol[0][0])
            start += -start % HOUR
        if end is None:
            end = hist.spot[-1][0] - hist.spot[-1][0] % HOUR
        for name, a, b in windows:
            if b < start or a > end:
                raise BacktestError(f"--episode {name}: outside --from/--to")
        cfg = Config(start, end, range_pct, recenter_days, fee_apr, position_usd, baseline)
        if report is not None:
            check_report_deps()  # fail before hours of work, not after
            _check_report_dir(report)
        console = Console(stderr=True)
        if json_out or not console.is_terminal:
            res = run(hist, pol, cfg)
        else:
            columns = (*Progress.get_default_columns(), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=True) as bar:
                task = bar.add_task("backtest (hours)", total=(end - start) // HOUR + 1)
                res = run(hist, pol, cfg,
                          progress=lambda done, total: bar.update(task, completed=done))
        out = summary(res, cfg)
        if windows:
            out["episodes"] = [analyse(res, *w) for w in windows]
        if report is not None:
            write_report(report, res, out, cfg.position_usd)
        if json_out:
            print(json.dumps(out))
            return
        t = Table(title=f"backtest {out['from']} .. {out['to']} ({out['hours']} h)")
        t.add_column("")
        t.add_column("unhedged", justify="right")
        t.add_column("hedged", justify="right")
        for k in ("max_drawdown", "worst_7d_drawdown"):
            t.add_row(k, f"{out['unhedged'][k]:.2%}", f"{out['hedged'][k]:.2%}")
        t.add_row("final PnL", f"${out['unhedged']['final_pnl_usd']:,.2f}",
                  f"${out['hedged']['final_pnl_usd']:,.2f}")
        Console().print(t)
        for k in ("fee_income_usd", "premium_usd", "option_fees_usd", "option_payoff_usd",
                  "funding_usd", "perp_fees_usd", "protection_cost_share"):
            print(f"{k}: {out[k]}")
        for name, s in out["layers"].items():
            print(f"layer {name}: {s['hours_engaged']} h engaged, spent ${s['spend_usd']:,.2f}, "
                  f"paid ${s['payoff_usd']:,.2f}")
        for name, spans in out["unknown"].items():
            print(f"unknown {name}: " + ", ".join(f"{a}..{b}" for a, b in spans[:5])
                  + (" ..." if len(spans) > 5 else ""))
        for ep in out.get("episodes", []):
            print(to_text(ep))
