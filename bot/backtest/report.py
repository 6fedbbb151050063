"""Writing a backtest's outputs: summary.json, decisions.jsonl, equity.csv, chart.png
(matplotlib) and report.html (uPlot from npm, inlined: the file opens offline).

Everything is rendered in memory first and written only when all of it rendered, so a
failure leaves nothing half-written."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.market.history import iso
from bot.backtest.data import BacktestError
from bot.backtest.engine import Result, drawdown_series

ROOT = Path(__file__).resolve().parents[2]
UPLOT_DIR = ROOT / "node_modules" / "uplot" / "dist"
LAYER_COLOURS = ("#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")


def check_report_deps() -> tuple[str, str]:
    js, css = UPLOT_DIR / "uPlot.iife.min.js", UPLOT_DIR / "uPlot.min.css"
    if not js.exists() or not css.exists():
        raise BacktestError(f"--report: uPlot not found at {UPLOT_DIR} (run `npm ci`)")
    return js.read_text(encoding="utf-8"), css.read_text(encoding="utf-8")


def _layers(res: Result) -> list[str]:
    names = set(res.layers)
    for e in res.engaged:
        names.update(e)
    return sorted(names)


def _equity_csv(res: Result, base: float) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ts_utc", "spot", "unhedged_usd", "hedged_usd", "protection_usd",
                "unhedged_drawdown", "hedged_drawdown", "dvol", "atm_iv_30d", "regime",
                "engaged_layers"])
    du, dh = drawdown_series(res.unhedged, base), drawdown_series(res.hedged, base)
    for k, ts in enumerate(res.ts):
        u, h = res.unhedged[k], res.hedged[k]
        w.writerow([iso(ts), f"{res.spot[k]:.2f}", f"{u:.2f}", f"{h:.2f}", f"{h - u:.2f}",
                    f"{du[k]:.6f}", f"{dh[k]:.6f}", f"{res.dvol[k]:g}",
                    f"{res.atm_iv[k]:.4f}", res.regime[k] or "unknown",
                    "|".join(res.engaged[k])])
    return buf.getvalue()


def _png(res: Result, summary: dict[str, Any], base: float) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [datetime.fromtimestamp(t, UTC) for t in res.ts]
    layers = _layers(res)
    fig, ax = plt.subplots(4, 1, figsize=(13, 11), sharex=True,
                           gridspec_kw={"height_ratios": [3, 2, 1.2, 1.6]})
    ax[0].plot(x, res.unhedged, lw=0.9, color="#1f77b4", label="LP unhedged")
    ax[0].plot(x, res.hedged, lw=0.9, color="#d62728", label="LP + protection")
    ax[0].set_ylabel("equity, USD")
    ax[0].legend(loc="upper left")
    ax[0].set_title(f"backtest {summary['from']} .. {summary['to']}  "
                    f"(worst 7-day drawdown: unhedged {summary['unhedged']['worst_7d_drawdown']:.1%}"
                    f", hedged {summary['hedged']['worst_7d_drawdown']:.1%})")
    ax[1].fill_between(x, drawdown_series(res.unhedged, base), 0, color="#1f77b4", alpha=0.35,
                       label="unhedged")
    ax[1].plot(x, drawdown_series(res.hedged, base), lw=0.9, color="#d62728", label="hedged")
    ax[1].set_ylabel("drawdown / start")
    ax[1].legend(loc="lower left")
    for k, name in enumerate(layers):
        on = [name in e for e in res.engaged]
        ax[2].fill_between(x, k, k + 0.8, where=on, step="post",
                           color=LAYER_COLOURS[k % len(LAYER_COLOURS)], lw=0)
    ax[2].set_yticks([k + 0.4 for k in range(len(layers))], layers)
    ax[2].set_ylim(0, max(len(layers), 1))
    ax[2].set_ylabel("engaged")
    ax[3].plot(x, res.dvol, lw=0.9, color="#444", label="DVOL (last known close)")
    ax[3].plot(x, [100 * v for v in res.atm_iv], lw=0.9, color="#17becf",
               label="chain ATM 30-day vol")
    ax[3].set_ylabel("vol points")
    ax[3].legend(loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}
body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} th:first-child,td:first-child{{text-align:left}}
.chart{{margin:1em 0}}</style></head><body>
<h1>{title}</h1>
{tables}
<div id="equity" class="chart"></div><div id="drawdown" class="chart"></div>
<div id="layers" class="chart"></div><div id="iv" class="chart"></div>
<script>{js}</script>
<script>
const D = {data};
const W = Math.min(1200, document.body.clientWidth - 20);
const sync = uPlot.sync("bt");
const cur = {{sync: {{key: sync.key}}}};
function plot(id, title, series, data, extra) {{
  return new uPlot(Object.assign({{title, width: W, height: 260, cursor: cur,
    series: [{{}}].concat(series)}}, extra || {{}}), [D.t].concat(data),
    document.getElementById(id));
}}
plot("equity", "Equity (USD)", [
  {{label: "LP unhedged", stroke: "#1f77b4"}}, {{label: "LP + protection", stroke: "#d62728"}}],
  [D.unhedged, D.hedged]);
plot("drawdown", "Drawdown (fraction of start)", [
  {{label: "unhedged", stroke: "#1f77b4", fill: "rgba(31,119,180,0.2)"}},
  {{label: "hedged", stroke: "#d62728"}}], [D.dd_u, D.dd_h]);
plot("layers", "Layer engagement", D.layers.map((n, k) => (
  {{label: n, stroke: D.colours[k], fill: D.colours[k] + "55", paths: uPlot.paths.stepped({{align: 1}})}})),
  D.engaged, {{height: 120 + 20 * D.layers.length}});
plot("iv", "Implied vol (vol points)", [
  {{label: "DVOL", stroke: "#444"}}, {{label: "chain ATM 30d", stroke: "#17becf"}}], [D.dvol, D.atm]);
</script></body></html>
"""


def _table(rows: list[tuple[str, ...]], head: tuple[str, ...]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    return "".join(out) + "</table>"


def _html(res: Result, summary: dict[str, Any], base: float) -> str:
    js, css = check_report_deps()
    layers = _layers(res)
    data = {
        "t": res.ts, "unhedged": [round(v, 2) for v in res.unhedged],
        "hedged": [round(v, 2) for v in res.hedged],
        "dd_u": [round(v, 5) for v in drawdown_series(res.unhedged, base)],
        "dd_h": [round(v, 5) for v in drawdown_series(res.hedged, base)],
        "dvol": res.dvol, "atm": [round(100 * v, 2) for v in res.atm_iv],
        "layers": layers, "colours": [LAYER_COLOURS[k % len(LAYER_COLOURS)]
                                      for k in range(len(layers))],
        "engaged": [[(k + 0.8) if n in e else None for e in res.engaged]
                    for k, n in enumerate(layers)],
    }
    s = summary
    main = _table([
        ("max drawdown", f"{s['unhedged']['max_drawdown']:.2%}", f"{s['hedged']['max_drawdown']:.2%}"),
        ("worst 7-day drawdown", f"{s['unhedged']['worst_7d_drawdown']:.2%}",
         f"{s['hedged']['worst_7d_drawdown']:.2%}"),
        ("final PnL (USD)", f"{s['unhedged']['final_pnl_usd']:,.0f}",
         f"{s['hedged']['final_pnl_usd']:,.0f}")], ("", "unhedged", "hedged"))
    costs = _table([(k, "-" if s[k] is None else f"{s[k]:,.4g}" if "share" in k
                     else f"{s[k]:,.0f}")
                    for k in ("fee_income_usd", "premium_usd", "option_fees_usd",
                              "delivery_fees_usd", "option_payoff_usd", "perp_fees_usd",
                              "funding_usd", "protection_cost_share", "premium_share_of_fees")],
                   ("", "value"))
    lay = _table([(n, f"{v['hours_engaged']}", f"{v['spend_usd']:,.0f}", f"{v['payoff_usd']:,.0f}")
                  for n, v in s["layers"].items()], ("layer", "hours engaged", "spend USD",
                                                      "payoff USD"))
    unk = _table([(n, ", ".join(f"{a}..{b}" for a, b in spans[:6])
                   + (f" (+{len(spans) - 6} more)" if len(spans) > 6 else ""))
                  for n, spans in s["unknown"].items()], ("unknown", "spans"))
    title = f"lphedge backtest {s['from']} .. {s['to']} ({s['mode']})"
    return _HTML.format(title=html.escape(title), css=css, js=js,
                        data=json.dumps(data, separators=(",", ":")),
                        tables=main + "<br>" + costs + "<br>" + lay + "<br>" + unk)


def write_report(directory: str | Path, res: Result, summary: dict[str, Any],
                 base: float) -> list[Path]:
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise BacktestError(f"--report: {d} exists and is not a directory")
    files: dict[str, str | bytes] = {
        "summary.json": json.dumps(summary, indent=2) + "\n",
        "decisions.jsonl": "".join(json.dumps({**rec, "time": iso(rec["now"])}, default=str)
                                   + "\n" for rec in res.decisions),
        "equity.csv": _equity_csv(res, base),
        "chart.png": _png(res, summary, base),
        "report.html": _html(res, summary, base),
    }
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, body in files.items():
        path = d / name
        tmp = d / (name + ".tmp")
        if isinstance(body, bytes):
            tmp.write_bytes(body)
        else:
            tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
        out.append(path)
    return out
