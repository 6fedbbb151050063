"""`lphedge positions` and the live tick read through the chain's configured rate limit
(requests/s per RPC URL, LPHEDGE_RPC_RATE_LIMIT / chains.rate_limit), not the observer's
default: the connection the observer reads through carries the setting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.devchain import DevChain
from bot.observe.positions import PositionsObserver
from tests.support.cli import lphedge


def test_positions_reads_through_the_settings_rate_limit(devchain: DevChain,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    enter = PositionsObserver.__aenter__

    async def spy(self: PositionsObserver) -> Any:
        seen.append(self._conn.rate_limit)
        return await enter(self)

    monkeypatch.setattr(PositionsObserver, "__aenter__", spy)
    out = lphedge("positions", "--json", "--rpc-url", devchain.url,
                  "--owner", devchain.addresses["safe"],
                  "--position-manager", devchain.addresses["position_manager"],
                  env={"LPHEDGE_RPC_RATE_LIMIT": "7"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)  # the real positions were read through that connection
    assert seen == [7]  # not the observer's default of 50


def test_live_config_carries_the_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.anvil import PROJECT_ROOT
    from bot.assemble import live_config
    from bot.settings import load_settings
    from policies.policy_file import parse_policy

    policy = parse_policy((PROJECT_ROOT / "examples" / "policy.toml").read_text())
    monkeypatch.setenv("LPHEDGE_RPC_RATE_LIMIT", "9")
    assert live_config(load_settings(), policy).rate_limit == 9
