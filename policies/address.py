"""The one address parser: settings, CLI options and state files all use ``parse_address``.

A 20-byte hex address; all-lower or all-upper hex is accepted as is (no checksum to check),
mixed case must carry a valid EIP-55 checksum (a one-character typo in a checksummed address
is refused, never read as another owner). Returns the checksummed form.
"""

from __future__ import annotations

import re

from eth_utils.address import is_checksum_address, to_checksum_address

from policies.errors import InvalidInput

_HEX = re.compile(r"0x[0-9a-fA-F]{40}")


def address_problem(value: object) -> str | None:
    """Why ``value`` is not an address (a phrase after the field name), or None."""
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        return f"{value!r} is not an address (0x and 40 hex digits)"
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        return f"{value!r} is not an address (bad EIP-55 checksum)"
    return None


def parse_address(value: object, field: str) -> str:
    """The checksummed address, or InvalidInput ``<field>: <problem>``."""
    problem = address_problem(value)
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}")
    assert isinstance(value, str)
    return str(to_checksum_address(value))
