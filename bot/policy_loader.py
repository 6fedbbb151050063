"""Reading a policy file: the I/O half of policies.policy_file (which stays pure)."""

from __future__ import annotations

import os

from policies.policy_file import Policy, PolicyError, parse_policy


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy file; PolicyError (one line) when unreadable or invalid."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise PolicyError(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError("not UTF-8 text") from None
    return parse_policy(text)
