"""Bad history and arguments: one-line errors naming the file or field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.backtest.data import BacktestError, load_history
from bot.backtest.engine import Config, run
from bot.cli import app
from tests.bot.backtest.helpers import T0, D, always_on_policy, write_history


def _dir(tmp_path: Path) -> Path:
    return write_history(tmp_path / "h", 70, lambda ts: 2000.0, lambda ts: 60.0)


def _one_line(exc: pytest.ExceptionInfo[BacktestError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_column(tmp_path: Path) -> None:
    d = _dir(tmp_path)
    f = d / "eth_usdt_1h.csv"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(["ts_utc,open,high,low"] + [",".join(x.split(",")[:4])
                                                      for x in lines[1:]]) + "\n")
    with pytest.raises(BacktestError) as e:
        load_history(d)
    assert "eth_usdt_1h.csv: missing column 'close'" in _one_line(e)


def test_unsorted(tmp_path: Path) -> None:
    d = _dir(tmp_path)
    f = d / "eth_dvol_1d.csv"
    lines = f.read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BacktestError) as e:
        load_history(d)
    assert _one_line(e) == "eth_dvol_1d.csv:7: timestamps not ascending"


@pytest.mark.parametrize("content,why", [("", "empty file (no header, no rows)"),
                                         ("ts_utc,open,high,low,close\n", "empty file (header only)")])
def test_empty(tmp_path: Path, content: str, why: str) -> None:
    d = _dir(tmp_path)
    (d / "eth_usdt_1h.csv").write_text(content)
    with pytest.raises(BacktestError) as e:
        load_history(d)
    assert _one_line(e) == f"eth_usdt_1h.csv: {why}"


def test_range_outside_data(tmp_path: Path) -> None:
    h = load_history(_dir(tmp_path))
    with pytest.raises(BacktestError) as e:
        run(h, always_on_policy(), Config(T0 + 60 * D, T0 + 80 * D))
    assert _one_line(e).startswith("--from/--to: range ")


def test_gap_in_range(tmp_path: Path) -> None:
    d = _dir(tmp_path)
    f = d / "eth_usdt_1h.csv"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:1001] + lines[1031:]) + "\n")  # 30 bars missing
    h = load_history(d)
    with pytest.raises(BacktestError) as e:
        run(h, always_on_policy(), Config(T0 + 30 * D, T0 + 60 * D))
    assert "gap of 31 h" in _one_line(e)


def test_cli_json_keys_and_error_line(tmp_path: Path) -> None:
    d = _dir(tmp_path)
    pol = Path(__file__).resolve().parents[3] / "examples" / "policy.toml"
    r = CliRunner().invoke(app, ["backtest", "--history", str(d), "--policy", str(pol),
                                 "--from", "2022-02-15", "--to", "2022-03-01", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    for k in ("from", "to", "hours", "unhedged", "hedged", "fee_income_usd", "premium_usd",
              "option_fees_usd", "funding_usd", "protection_cost_share", "layers", "unknown"):
        assert k in out
    for side in ("unhedged", "hedged"):
        assert set(out[side]) == {"max_drawdown", "worst_7d_drawdown", "final_pnl_usd"}
    assert out["from"] == "2022-02-15T00:00:00Z" and out["hours"] == 14 * 24 + 1
    r = CliRunner().invoke(app, ["backtest", "--history", str(d), "--policy", str(pol),
                                 "--from", "2025-01-01", "--json"])
    assert r.exit_code != 0
    assert isinstance(r.exception, BacktestError)


def test_history_closes_are_stamped_at_bar_end() -> None:
    from adapters.market.history import Bar, closes
    bars = [Bar(0, 1.0, 2.0, 0.5, 1.5), Bar(3600, 1.5, 1.5, 1.0, 1.2)]
    assert closes(bars, 3600) == [(3600, 1.5), (7200, 1.2)]
    with pytest.raises(ValueError, match="bar_seconds"):
        closes(bars, 0)


@pytest.mark.parametrize("arg,why", [
    ("2022-02-15", "--episode: expected [NAME=]YYYY-MM-DD..YYYY-MM-DD, got '2022-02-15'"),
    ("x=2022-02-20..2022-02-16", "--episode: 'x=2022-02-20..2022-02-16' ends before it starts"),
    ("late=2023-01-01..2023-02-01", "--episode late: outside --from/--to"),
])
def test_cli_bad_episode_is_one_line_before_any_work(tmp_path: Path, arg: str, why: str) -> None:
    d = _dir(tmp_path)
    pol = Path(__file__).resolve().parents[3] / "examples" / "policy.toml"
    r = CliRunner().invoke(app, ["backtest", "--history", str(d), "--policy", str(pol),
                                 "--from", "2022-02-15", "--to", "2022-03-01",
                                 "--episode", arg, "--report", str(tmp_path / "rep")])
    assert isinstance(r.exception, BacktestError) and str(r.exception) == why
    assert not (tmp_path / "rep").exists()  # nothing written
