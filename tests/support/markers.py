"""The `chain` and `cli` markers, applied at collection, and a guard that keeps them honest.

- ``chain``: the test uses a local chain (anvil): one of its fixtures, directly or through
  another fixture (pytest's ``item.fixturenames`` is the closure), is in CHAIN_FIXTURES or
  is declared to return a DevChain or an Anvil (``-> Iterator[Anvil]`` etc.).
- ``cli``: the test starts a subprocess: the ``lphedge`` entry point, or a server such as
  PostgreSQL (a fixture declared to return a PostgresServer). Modules that spawn in the
  test body say so with ``pytestmark = pytest.mark.cli`` (or ``chain`` for anvil).

``make test-fast`` deselects both. So that a new test cannot silently slip a process into
the fast set, the guard (an audit hook: every ``subprocess.Popen``, which
``asyncio.create_subprocess_exec`` also goes through) fails any test that starts a process
while carrying neither marker.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# session fixtures that start anvil (tests/conftest.py, tests/bot/governance/conftest.py)
CHAIN_FIXTURES = frozenset({"devchain", "forkchain", "sigchain", "gov_chain"})
# fixtures that start some other process (tests/support/postgres.py)
PROCESS_FIXTURES = frozenset({"postgres_server"})
# ... and any fixture whose declared return type names one of these
CHAIN_TYPES = re.compile(r"\b(DevChain|Anvil)\b")
PROCESS_TYPES = re.compile(r"\bPostgresServer\b")

SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec", "os.system"})


def apply(items: list[pytest.Item]) -> None:
    """Add ``chain`` / ``cli`` to every item whose fixtures start a process."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        returns = " ".join(_return_types(item))
        if names & CHAIN_FIXTURES or CHAIN_TYPES.search(returns):
            item.add_marker(pytest.mark.chain)
        if names & PROCESS_FIXTURES or PROCESS_TYPES.search(returns):
            item.add_marker(pytest.mark.cli)


def _return_types(item: pytest.Item) -> Iterator[str]:
    """The declared return types of every fixture the item uses (strings, as written)."""
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        for fixturedef in defs:
            ann = getattr(fixturedef.func, "__annotations__", {}).get("return")
            if ann is not None:
                yield ann if isinstance(ann, str) else repr(ann)


class _Guard:
    """Which test is running and whether it may start a process."""

    current: str | None = None  # node id of a running test that may NOT spawn
    installed = False

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls.current is not None and event in SPAWN_EVENTS:
            what = args[0] if args else ""
            raise RuntimeError(
                f"{cls.current} started a process ({event} {what!r}) but is marked neither "
                "`chain` nor `cli`: add `pytestmark = pytest.mark.cli` (or chain) to its module "
                "so that `make test-fast` leaves it out"
            )


@contextmanager
def process_guard(item: pytest.Item) -> Iterator[None]:
    """While ``item`` is set up and run, a process start fails the test unless it is
    marked ``chain`` or ``cli``. Not around teardown: the last test of a session also
    tears down session fixtures it never used (stopping PostgreSQL runs pg_ctl)."""
    if not _Guard.installed:
        sys.addaudithook(_Guard.hook)  # cannot be removed; inert while current is None
        _Guard.installed = True
    allowed = item.get_closest_marker("chain") or item.get_closest_marker("cli")
    _Guard.current = None if allowed else item.nodeid
    try:
        yield
    finally:
        _Guard.current = None


def cap_examples(items: list[pytest.Item], cap: int) -> None:
    """Run every hypothesis property with at most ``cap`` examples (``make test-fast``;
    ``make test`` keeps each test's own budget). An explicit ``@settings(max_examples=...)``
    outranks any profile, so the cap goes onto the settings hypothesis reads when the test
    runs (``_hypothesis_internal_use_settings``, read at call time by ``@given``)."""
    from hypothesis import settings

    seen: set[int] = set()
    for item in items:
        fn = getattr(item, "obj", None)
        current = getattr(fn, "_hypothesis_internal_use_settings", None)
        if current is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        if current.max_examples > cap:
            fn._hypothesis_internal_use_settings = settings(current, max_examples=cap)  # type: ignore[union-attr]
