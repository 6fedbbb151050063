"""Errors a user can act on: printed as one line, non-zero exit, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unreachable/unsuitable outside thing, explained in one line."""

    exit_code = 2
