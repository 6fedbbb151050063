"""Session fixtures: one real local chain (and one real fork of it) per test worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.anvil import Anvil
from bot.devchain import DevChain


@pytest.fixture(scope="session")
def devchain() -> Iterator[DevChain]:
    chain = DevChain.start()
    try:
        yield chain
    finally:
        chain.close()


@pytest.fixture(scope="session")
def forkchain(devchain: DevChain) -> Iterator[Anvil]:
    fork = devchain.fork()
    try:
        yield fork
    finally:
        fork.stop()
