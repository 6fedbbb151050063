"""One error root: every exception class of ours derives from exactly one branch.

The classes are discovered by importing every module of policies/, adapters/ and bot/, so a
new exception class on a builtin base (or on two branches) fails here without anyone
having to remember to list it. The branch decides what happens next (bot/errors.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from decimal import Decimal

import pytest

from policies.errors import (
    BRANCHES,
    ErrorFamily,
    InvalidInput,
    LphedgeError,
    Refused,
    Transient,
    branches_of,
)
from policies.risk import BudgetLedger, BudgetLimits, BudgetOverdraw

PACKAGES = ("policies", "adapters", "bot")
SKIP = ("bot.db.migrations",)  # alembic's env.py runs a migration when imported
ROOTS = {LphedgeError, *BRANCHES, ErrorFamily}


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        module = importlib.import_module(pkg)
        names.append(pkg)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{pkg}."):
            if not info.name.startswith(SKIP):
                names.append(info.name)
    return names


def our_exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def is_family(cls: type[BaseException]) -> bool:
    """A family base (catch-all for members on different branches), never raised itself."""
    return issubclass(cls, ErrorFamily) and not branches_of(cls)


def misplaced(classes: dict[str, type[BaseException]]) -> list[str]:
    """Classes on no branch (and not a family) or on more than one branch."""
    bad = []
    for name, cls in classes.items():
        if cls in ROOTS or is_family(cls):
            continue
        if len(branches_of(cls)) != 1:
            bad.append(f"{name} on {[b.__name__ for b in branches_of(cls)] or 'no branch'}")
    return bad


CLASSES = our_exception_classes()

# The intended branch of each class, by name: the meaning, written down once more by hand so
# that a re-base to another branch is a visible decision, not a side effect.
EXPECTED = {
    "policies.policy_file.PolicyError": InvalidInput,
    "policies.state_file.StateError": InvalidInput,
    "policies.risk.BudgetOverdraw": Refused,
    "adapters.evm.rpc.RpcError": Transient,
    "adapters.evm.rpc.RpcUnavailable": Transient,
    "adapters.evm.uniswap_v3.ReadError": InvalidInput,
    "adapters.evm.uniswap_v3.PositionsChanging": Transient,
    "adapters.evm.safe.SafeError": Refused,
    "adapters.evm.roles.RolesError": Refused,
    "adapters.anvil.AnvilNotFound": InvalidInput,
    "adapters.anvil.AnvilFailed": Transient,
    "adapters.safe_tx_service.TxServiceRefused": Refused,
    "adapters.safe_tx_service.TxServiceUnavailable": Transient,
    "adapters.safe_tx_service.ForgedAnswer": Refused,
    "adapters.market.history.HistoryFormatError": InvalidInput,
    "adapters.market.base.SourceError": Transient,
    "adapters.evm.tx.TxReverted": Refused,
    "adapters.evm.tx.TxUnknown": Transient,
    "bot.governance.GovernanceError": Refused,
    "bot.governance.PolicyNotApproved": Refused,
    "bot.governance.OverrideRefused": Refused,
    "bot.governance.PreflightRefused": Refused,
    "bot.audit_store.AlreadyApplied": Refused,
    "bot.backtest.data.BacktestError": InvalidInput,
    "bot.observe.errors.ObserveInvalid": InvalidInput,
    "bot.observe.errors.ObserveUnavailable": Transient,
}
FAMILIES = {"adapters.anvil.AnvilError", "adapters.safe_tx_service.TxServiceError",
            "adapters.evm.tx.TxError", "bot.observe.errors.ObserveError"}


def test_the_walk_finds_the_classes() -> None:
    """Not vacuous: the discovery sees every class named here (and the roots)."""
    missing = (set(EXPECTED) | FAMILIES) - set(CLASSES)
    assert not missing, missing
    assert CLASSES["policies.errors.LphedgeError"] is LphedgeError


def test_every_exception_class_is_on_exactly_one_branch() -> None:
    assert misplaced(CLASSES) == []


def test_families_cannot_be_raised_and_each_member_is_on_one_branch() -> None:
    """Every family (the known ones and any new one) is a catch-all, never raised itself."""
    families = {name for name, cls in CLASSES.items() if is_family(cls) and cls is not ErrorFamily}
    assert families >= FAMILIES
    for name in families:
        cls = CLASSES[name]
        with pytest.raises(TypeError, match="is an error family"):
            cls("field", "problem") if name.endswith("ObserveError") else cls("problem")
        members = [c for c in CLASSES.values() if c is not cls and issubclass(c, cls)]
        assert len(members) >= 2 and all(len(branches_of(c)) == 1 for c in members), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_class_is_on_its_intended_branch(name: str) -> None:
    assert branches_of(CLASSES[name]) == (EXPECTED[name],)


def test_a_class_on_a_builtin_base_or_two_branches_is_caught() -> None:
    """The checker itself: a stray class on Exception, and one on two branches, are named."""
    stray = type("Stray", (RuntimeError,), {})
    both = type("Both", (InvalidInput, Transient), {})
    fine = type("Fine", (Refused,), {})
    assert misplaced({"x.Stray": stray, "x.Both": both, "x.Fine": fine}) == [
        "x.Stray on no branch", "x.Both on ['InvalidInput', 'Transient']"]


def test_observe_error_keeps_field_and_transient_flag() -> None:
    from bot.observe.errors import ObserveError, ObserveInvalid, ObserveUnavailable

    bad = ObserveInvalid("owner", "'0x12' is not a 20-byte hex address")
    down = ObserveUnavailable(None, "cannot reach any RPC endpoint")
    assert isinstance(bad, ObserveError) and isinstance(down, ObserveError)
    assert (bad.field, bad.transient, str(bad)) == (
        "owner", False, "owner: '0x12' is not a 20-byte hex address")
    assert (down.field, down.transient, str(down)) == (None, True, "cannot reach any RPC endpoint")


def _ledger(total: int, cap: int, spent_total: int = 0, spent_session: int = 0) -> BudgetLedger:
    return BudgetLedger(BudgetLimits(total_cents=total, session_cap_cents=cap,
                                     remaining_total_cents=total - spent_total,
                                     remaining_session_cents=cap - spent_session))


def test_budget_overdraw_is_refused_with_exact_cents() -> None:
    ledger = _ledger(total=1_000_000, cap=250_000, spent_session=100_001)  # 1,499.99 left today
    ledger.spend(149_000)
    assert ledger.remaining_cents == 999
    with pytest.raises(BudgetOverdraw) as err:
        ledger.spend(1_000)
    assert isinstance(err.value, Refused) and not isinstance(err.value, AssertionError)
    assert str(err.value) == ("budget overdraw: spending 1000 cents ($10.00) but only 999 cents "
                              "($9.99) left under the session cap")
    assert (err.value.cents, err.value.remaining_cents) == (1_000, 999)
    assert ledger.spent_cents == 149_000  # nothing half-spent
    ledger.spend(999)  # exactly what is left is allowed
    assert ledger.remaining_cents == 0


def test_budget_overdraw_names_the_total_budget_when_it_binds() -> None:
    ledger = _ledger(total=50_000, cap=40_000, spent_total=12_345)  # 376.55 left in total
    with pytest.raises(BudgetOverdraw, match=r"^budget overdraw: spending 3765600 cents "
                       r"\(\$37,656\.00\) but only 37655 cents \(\$376\.55\) left under the "
                       r"total budget$"):
        ledger.spend(int(Decimal("37656.00") * 100))


def test_negative_spend_is_a_bug_not_a_refusal() -> None:
    with pytest.raises(ValueError, match="negative"):
        _ledger(100, 100).spend(-1)
