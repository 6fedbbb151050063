"""The act step as a process of its own, for the crash harness (test_crash.py).

Runs ``Executor.run`` over a scripted plan of legs against a Binance USD-M loopback server
(ccxt, signed requests) with a SQLite order store, and SIGKILLs itself at a chosen
checkpoint: ``LPH_KILL_AT=<n>`` kills at the n-th checkpoint reached (1-based, any name),
``LPH_KILL_POINT=<name>:<k>`` at the k-th time checkpoint ``name`` is reached. Without
either it runs to the end and prints one JSON line with the orders' final states.

Environment: LPH_DB (SQLite path), LPH_API_URL, LPH_API_KEY, LPH_API_SECRET (keys from the
environment, never argv), LPH_LEGS (number of legs in the plan).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from decimal import Decimal

from adapters.venues.ccxt_venue import make_ccxt_venue
from bot.act.executor import Executor, Leg
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.order_store import OrderStore

SAFE = "0x5afe00000000000000000000000000000000cafe"
ETH = "ETH/USDT:USDT"
POINTS = ("after_intent_row", "before_send", "after_answer")


def plan(n: int) -> list[Leg]:
    return [Leg("scripted-1", i, "adjust_perp", "binanceusdm", ETH, "buy", Decimal("0.1"),
                Decimal(3100), {"i": i}) for i in range(n)]


def main() -> None:
    kill_at = int(os.environ.get("LPH_KILL_AT", "0"))
    name, _, k = os.environ.get("LPH_KILL_POINT", "").partition(":")
    seen: dict[str, int] = {}
    total = [0]

    def checkpoint(point: str) -> None:
        total[0] += 1
        seen[point] = seen.get(point, 0) + 1
        if total[0] == kill_at or (point == name and seen[point] == int(k or 0)):
            os.kill(os.getpid(), signal.SIGKILL)

    async def run() -> list[str]:
        engine = make_engine(f"sqlite:///{os.environ['LPH_DB']}")
        upgrade(engine)
        venue = make_ccxt_venue("binanceusdm", (ETH,), os.environ["LPH_API_KEY"],
                                os.environ["LPH_API_SECRET"], api_url=os.environ["LPH_API_URL"],
                                timeout_s=10)
        try:
            ex = Executor(OrderStore(engine, 1, SAFE), {"binanceusdm": venue},
                          checkpoint=checkpoint)
            orders = await ex.run(plan(int(os.environ["LPH_LEGS"])))
            return [o.state.value for o in orders]
        finally:
            await venue.close()
            engine.dispose()

    states = asyncio.run(run())
    print(json.dumps({"states": states, "checkpoints": total[0]}))


if __name__ == "__main__":
    main()
