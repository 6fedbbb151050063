"""The CLI maps errors in one place (bot/errors.py): one line on stderr, no traceback, exit 2
for every error of ours (whatever its branch), 1 for anything unexpected (redacted), 130
for Ctrl-C. In-process: bot.cli.main with argv and the app monkeypatched."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

import bot.cli
from adapters.evm.rpc import RpcUnavailable
from bot.errors import Disposition, UserError, disposition, exit_code
from bot.observe.errors import ObserveInvalid, ObserveUnavailable
from policies.errors import InvalidInput, LphedgeError, Refused, Transient
from policies.policy_file import PolicyError
from policies.risk import BudgetOverdraw

KEY = "SECRETKEY0123456789"


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
             raises: Callable[[], None] | None = None) -> tuple[int, str, str]:
    """bot.cli.main with ``argv``; ``raises`` (if given) is the only command of the app."""
    if raises is not None:
        app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
        app.command("boom")(raises)
        app.command("other")(lambda: None)  # two commands: typer keeps the sub-command name
        monkeypatch.setattr(bot.cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["lphedge", *argv])
    with pytest.raises(SystemExit) as exited:
        bot.cli.main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def _raise(exc: BaseException) -> Callable[[], None]:
    def command() -> None:
        raise exc
    return command


@pytest.mark.parametrize("exc, line, branch, what_next", [
    (RpcUnavailable(f"cannot reach any RPC endpoint (http://127.0.0.1:9/v2/{KEY}: ConnectError)"),
     "cannot reach any RPC endpoint (http://127.0.0.1:9/... ConnectError)", Transient, Disposition.RETRY),
    (ObserveUnavailable(None, "cannot reach any RPC endpoint"), "cannot reach any RPC endpoint",
     Transient, Disposition.RETRY),
    (BudgetOverdraw(1_000, 999, "session cap"),
     "budget overdraw: spending 1000 cents ($10.00) but only 999 cents ($9.99) left under the session cap",
     Refused, Disposition.HALT),
    (PolicyError("layers.weekly.max_days: Field required"), "layers.weekly.max_days: Field required",
     InvalidInput, Disposition.HALT),
    (ObserveInvalid("owner", "'0x12' is not a 20-byte hex address"),
     "owner: '0x12' is not a 20-byte hex address", InvalidInput, Disposition.HALT),
])
def test_each_branch_gives_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: LphedgeError, line: str,
    branch: type[LphedgeError], what_next: Disposition,
) -> None:
    assert isinstance(exc, branch)
    assert (disposition(exc), exit_code(exc)) == (what_next, 2)
    code, out, err = run_main(monkeypatch, capsys, ["boom"], _raise(exc))
    assert (code, out, err) == (2, "", f"error: {line}\n")
    assert KEY not in err and "Traceback" not in err


def test_unexpected_exception_is_one_redacted_line_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exc = RuntimeError(f"pool read failed at https://bob:hunter2@rpc.example:8545/v2/{KEY}?x=1\n  at line 2")
    assert (disposition(exc), exit_code(exc)) == (Disposition.CRASH, 1)
    code, out, err = run_main(monkeypatch, capsys, ["boom"], _raise(exc))
    assert (code, out) == (1, "")
    assert err == "error: RuntimeError: pool read failed at https://rpc.example:8545/... at line 2\n"
    assert KEY not in err and "hunter2" not in err and "Traceback" not in err


def test_keyboard_interrupt_exits_130_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(KeyboardInterrupt()) == 130
    assert run_main(monkeypatch, capsys, ["boom"], _raise(KeyboardInterrupt())) == (130, "", "")


def test_disposition_table() -> None:
    assert disposition(Transient("x")) == Disposition.RETRY and Disposition.RETRY.value == "retry next tick"
    assert disposition(Refused("x")) == disposition(InvalidInput("x")) == Disposition.HALT
    assert Disposition.HALT.value == "halt new risk"
    assert disposition(UserError("x")) == Disposition.HALT  # UserError is InvalidInput
    assert disposition(LphedgeError("no branch")) == Disposition.CRASH  # only the branches say
    assert disposition(ValueError("x")) == disposition(AssertionError()) == Disposition.CRASH
    assert Disposition.CRASH.value == "crash"


def test_real_command_bad_input_through_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The real app: a missing policy file is InvalidInput, one line naming the file, exit 2."""
    missing = tmp_path / "nope.toml"
    code, out, err = run_main(monkeypatch, capsys, ["plan", "--state", str(tmp_path / "s.json"),
                                                    "--policy", str(missing)])
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {missing}: cannot read") and err.count("\n") == 1
