"""Writing a backtest's outputs: summary.json, decisions.jsonl, equity.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from adapters.market.history import iso
from bot.backtest.engine import Result


def write_report(directory: str | Path, res: Result, summary: dict[str, Any]) -> list[Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with (d / "decisions.jsonl").open("w", encoding="utf-8") as fh:
        for rec in res.decisions:
            fh.write(json.dumps({**rec, "time": iso(rec["now"])}, default=str) + "\n")
    with (d / "equity.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["ts_utc", "unhedged_usd", "hedged_usd", "protection_usd", "dvol",
                    "engaged_layers"])
        for ts, u, h, dv, eng in zip(res.ts, res.unhedged, res.hedged, res.dvol, res.engaged,
                                     strict=True):
            w.writerow([iso(ts), f"{u:.2f}", f"{h:.2f}", f"{h - u:.2f}", f"{dv:g}",
                        "|".join(eng)])
    return [d / "summary.json", d / "decisions.jsonl", d / "equity.csv"]
