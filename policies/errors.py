"""The one error root of lphedge, with three branches that decide what happens next.

- ``InvalidInput``: the operator must fix something (a setting, a file, an argument).
- ``Refused``: a rule said no (governance, risk limits, scope, pre-flight).
- ``Transient``: the outside world failed for now (an RPC, a venue); retry next tick.

Every exception class of the project derives from exactly one branch (tests/policies/
test_errors.py walks the packages to check it). Where callers want to catch one family
whose members mean different things (an observation that failed because of the
configuration or because the RPC is down), the family derives from ``ErrorFamily`` and
each member adds exactly one branch; the family itself is never raised.

bot/errors.py maps them to behaviour in one place: the CLI prints any of them as one
line with exit 2; the daemon keeps ticking on ``Transient`` (the readings it concerns
become unknown) and halts new risk on the other two. Every message is one line and must
never carry a secret (callers redact URLs first).
"""

from __future__ import annotations


class LphedgeError(Exception):
    """Root of every error lphedge raises on purpose."""

    exit_code = 2


class InvalidInput(LphedgeError):
    """Bad input the operator can fix: a setting, a file, an argument."""


class Refused(LphedgeError):
    """A rule said no: governance, a risk limit, the on-chain scope, a pre-flight check."""


class Transient(LphedgeError):
    """The outside world failed for now (unreachable RPC, venue down): retry next tick."""


BRANCHES: tuple[type[LphedgeError], ...] = (InvalidInput, Refused, Transient)


def branches_of(cls: type[BaseException]) -> tuple[type[LphedgeError], ...]:
    """The branches ``cls`` derives from (exactly one for every class that may be raised)."""
    return tuple(b for b in BRANCHES if issubclass(cls, b))


class ErrorFamily(LphedgeError):
    """Base of a family whose members sit on different branches, so that a caller can
    catch the family (``except ObserveError``) while each member still says what happens
    next. Only members that add exactly one branch may be raised."""

    def __init__(self, *args: object) -> None:
        if len(branches_of(type(self))) != 1:
            raise TypeError(f"{type(self).__name__} is an error family: raise one of its members "
                            "(each derives from InvalidInput, Refused or Transient)")
        super().__init__(*args)


__all__ = ["BRANCHES", "ErrorFamily", "InvalidInput", "LphedgeError",
           "Refused", "Transient", "branches_of"]
