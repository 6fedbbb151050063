"""What an observer raises: which input is at fault (if any) and whether a retry next tick
may succeed. Fields are configuration names, never CLI flags.

``ObserveError`` is the family callers catch; each failure is raised as one of its two
members, so the branch (policies/errors.py) says what happens next:
``ObserveInvalid`` (InvalidInput: a configured address, URL or chain id is wrong) and
``ObserveUnavailable`` (Transient: the RPC is unreachable or the answer changed under us)."""

from __future__ import annotations

from policies.errors import ErrorFamily, InvalidInput, Transient


class ObserveError(ErrorFamily):
    """An observation failed. `field` names the configuration input at fault (e.g. "owner",
    "position_manager", "rpc_urls", "chain_id"), or None when the outside world is at fault;
    `transient` is True when the next tick may succeed unchanged (an unreachable RPC)."""

    def __init__(self, field: str | None, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)

    @property
    def transient(self) -> bool:
        return isinstance(self, Transient)


class ObserveInvalid(ObserveError, InvalidInput):
    """The configuration is wrong (an address, a URL, the chain id): the operator must fix it."""


class ObserveUnavailable(ObserveError, Transient):
    """The RPC is unreachable, refused, or the positions changed while read: retry next tick."""
