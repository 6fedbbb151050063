"""Session fixtures: one real local chain (and one real fork of it) per test worker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from adapters.anvil import Anvil
from bot.devchain import DevChain
from tests.support import markers
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

# CI explores the same examples every run (a red CI must be reproducible); local runs
# keep exploring new ones and remember failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
# `make test-fast`: every property with at most 10 examples (the full budget is `make test`'s)
settings.register_profile("fast", deadline=None, max_examples=10)
settings.load_profile(os.environ.get("LPHEDGE_HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    markers.apply(items)  # `chain` and `cli`, from the fixtures a test uses
    if settings.get_current_profile_name() == "fast":
        markers.cap_examples(items, settings.get_profile("fast").max_examples)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with markers.process_guard(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with markers.process_guard(item):
        return (yield)


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
