"""A chain of our own: these tests move anvil's clock, which must not disturb others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.devchain import DevChain


@pytest.fixture(scope="session")
def sigchain() -> Iterator[DevChain]:
    chain = DevChain.start(seed_positions=False)
    try:
        yield chain
    finally:
        chain.close()
