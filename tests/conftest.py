"""Session fixtures: one real local chain (and one real fork of it) per test worker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from adapters.anvil import Anvil
from bot.devchain import DevChain
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

# CI explores the same examples every run (a red CI must be reproducible); local runs
# keep exploring new ones and remember failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


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


@pytest.fixture(scope="session")
def sigchain() -> Iterator[DevChain]:
    """A chain of its own for tests that move anvil's clock, which must not disturb others."""
    chain = DevChain.start(seed_positions=False)
    try:
        yield chain
    finally:
        chain.close()
