"""Errors a user can act on: printed as one line, non-zero exit, no traceback.

The root and its three branches live in policies/errors.py (importable from every layer);
``UserError`` is the historical name for invalid input and stays an alias of that branch.
"""

from __future__ import annotations

from policies.errors import InvalidInput, LphedgeError, Refused, Transient

UserError = InvalidInput

__all__ = ["InvalidInput", "LphedgeError", "Refused", "Transient", "UserError"]
