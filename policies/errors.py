"""The one error root of lphedge, with three branches that decide what happens next.

- ``InvalidInput``: the operator must fix something (a setting, a file, an argument).
- ``Refused``: a rule said no (governance, risk limits, scope, pre-flight).
- ``Transient``: the outside world failed for now (an RPC, a venue); retry next tick.

The CLI prints any of them as one line with a non-zero exit; the daemon keeps ticking on
``Transient`` (the readings it concerns become unknown) and halts new risk on the other two.
Every message is one line and must never carry a secret (callers redact URLs first).
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
