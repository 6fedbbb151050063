"""Errors a user can act on, and the one place that maps every error to behaviour.

The root and its three branches live in policies/errors.py (importable from every layer);
``UserError`` is the historical name for invalid input and stays an alias of that branch.

``disposition(exc)`` says what the daemon does next and ``exit_code(exc)`` what the CLI
exits with; both the CLI (bot/cli.py) and the tick loop use them, nothing else decides.
"""

from __future__ import annotations

from enum import StrEnum

from policies.errors import ErrorFamily, InvalidInput, LphedgeError, Refused, Transient, branches_of

UserError = InvalidInput


class Disposition(StrEnum):
    RETRY = "retry next tick"  # Transient: the readings it concerns are unknown this tick
    HALT = "halt new risk"  # InvalidInput / Refused: nothing new until a human acts
    CRASH = "crash"  # a bug or an unexpected failure: stop, let the supervisor restart


EXIT_UNEXPECTED = 1  # anything that is not an LphedgeError: one redacted line, no traceback
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), the shell convention


def disposition(exc: BaseException) -> Disposition:
    """What happens next after ``exc``: retry (Transient), halt new risk (InvalidInput,
    Refused), or crash (anything else, including an error of ours on no branch)."""
    branches = branches_of(type(exc))
    if branches == (Transient,):
        return Disposition.RETRY
    if branches in ((InvalidInput,), (Refused,)):
        return Disposition.HALT
    return Disposition.CRASH


def exit_code(exc: BaseException) -> int:
    """The CLI's exit status for ``exc``: 2 for every error of ours (the class may say
    otherwise through ``exit_code``), 130 for Ctrl-C, 1 for anything unexpected."""
    if isinstance(exc, LphedgeError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_UNEXPECTED


def one_line(exc: BaseException) -> str:
    """The line the CLI prints for ``exc`` (without the "error: " prefix): the message of
    an error of ours, the class name too for anything else; whitespace collapsed to one
    line and every URL redacted (adapters/redact.py) in both cases."""
    from adapters.redact import redact_urls  # bot wires adapters; imported where used

    text = " ".join(str(exc).split())
    if not isinstance(exc, LphedgeError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact_urls(text)


__all__ = ["Disposition", "ErrorFamily", "InvalidInput", "LphedgeError", "Refused", "Transient",
           "UserError", "disposition", "exit_code",
           "one_line"]
