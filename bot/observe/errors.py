"""The one error an observer raises: which input is at fault (if any) and whether a retry
next tick may succeed. Fields are configuration names, never CLI flags."""

from __future__ import annotations

from bot.errors import UserError


class ObserveError(UserError):
    """An observation failed. `field` names the configuration input at fault (e.g. "owner",
    "position_manager", "rpc_urls", "chain_id"), or None when the outside world is at fault;
    `transient` is True when the next tick may succeed unchanged (an unreachable RPC)."""

    def __init__(self, field: str | None, problem: str, *, transient: bool = False) -> None:
        self.field = field
        self.problem = problem
        self.transient = transient
        super().__init__(f"{field}: {problem}" if field else problem)
