"""The report files: summary.json, decisions.jsonl, equity.csv, chart.png, report.html.

matplotlib runs fc-list once to build its font cache: marked ``cli`` (starts a process)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from bot.backtest.data import load_history
from bot.backtest.engine import Config, run, summary
from bot.backtest.report import write_report
from tests.bot.backtest.helpers import T0, D, always_on_policy, write_history

pytestmark = pytest.mark.cli
P0 = 2000.0


def test_report_files(tmp_path: Path) -> None:
    h = load_history(write_history(tmp_path / "h", 90, lambda ts: P0, lambda ts: 60.0))
    cfg = Config(T0 + 70 * D, T0 + 80 * D, recenter_days=1000)
    res = run(h, always_on_policy(), cfg)
    s = summary(res, cfg)
    files = write_report(tmp_path / "rep", res, s, cfg.position_usd)
    names = sorted(f.name for f in files)
    assert names == ["chart.png", "decisions.jsonl", "equity.csv", "report.html",
                     "summary.json"]
    png = (tmp_path / "rep" / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, hgt = struct.unpack(">II", png[16:24])
    assert w > 800 and hgt > 600
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "uPlot" in page and "<script src" not in page and "http" not in page.split(
        "<script>")[0]  # no external script or stylesheet: opens offline
    assert json.loads((tmp_path / "rep" / "summary.json").read_text()) == s
    rows = (tmp_path / "rep" / "equity.csv").read_text().splitlines()
    assert len(rows) == len(res.ts) + 1
    lines = (tmp_path / "rep" / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == len(res.decisions) and all(json.loads(x)["intents"] for x in lines)


def test_cli_report_and_episode(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    d = write_history(tmp_path / "h", 90, lambda ts: P0, lambda ts: 60.0)
    pol = Path(__file__).resolve().parents[3] / "examples" / "policy.toml"
    r = CliRunner().invoke(app, ["backtest", "--history", str(d), "--policy", str(pol),
                                 "--from", "2022-03-10", "--to", "2022-03-20", "--json",
                                 "--episode", "mid=2022-03-12..2022-03-15",
                                 "--report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [e["name"] for e in out["episodes"]] == ["mid"]
    assert out["episodes"][0]["from"] == "2022-03-12T00:00:00Z"
    for f in ("summary.json", "decisions.jsonl", "equity.csv", "chart.png", "report.html"):
        assert (tmp_path / "rep" / f).exists()
