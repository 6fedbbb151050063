"""Fast start-up: `lphedge --help` and `lphedge version` import no command module and none
of the heavy libraries (bot/cli.py COMMANDS); the table says what the modules register."""

from __future__ import annotations

import ast
import importlib
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer

import bot.cli

ROOT = Path(__file__).resolve().parents[2]
# what made `lphedge --help` take ~2 s before the table
HEAVY = ("web3", "ccxt", "sqlalchemy", "sqlmodel", "alembic", "eth_account", "eth_utils",
         "eth_abi", "aiohttp", "pydantic", "pydantic_settings", "safe_eth", "hypothesis")
OURS = ("bot", "adapters", "policies")


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lphedge", *args])
    with pytest.raises(SystemExit) as exc:
        bot.cli.main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split())


def test_table_is_what_the_modules_register() -> None:
    modules = sorted(p.stem for p in (ROOT / "bot" / "commands").glob("*.py")
                     if any(isinstance(n, ast.FunctionDef) and n.name == "register"
                            for n in ast.parse(p.read_text()).body))
    assert sorted({m for m, _ in bot.cli.COMMANDS.values()}) == modules  # none forgotten
    registered: dict[str, Any] = {}
    for module in modules:
        sub = typer.Typer()
        __import__(f"bot.commands.{module}", fromlist=["register"]).register(sub)
        for name, cmd in typer.main.get_group(sub).commands.items():
            assert name not in registered, f"{name} registered twice"
            registered[name] = (module, cmd)
    assert set(registered) == set(bot.cli.COMMANDS)
    for name, (module, cmd) in registered.items():
        assert bot.cli.COMMANDS[name][0] == module, name
        assert bot.cli.COMMANDS[name][1] == _first_paragraph(cmd.short_help or cmd.help), name
        assert bot.cli.load_command(name).name == name


def test_help_and_version_load_no_command_module(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    loaded: list[str] = []
    real = importlib.import_module

    def spy(name: str) -> Any:
        loaded.append(name)
        return real(name)

    monkeypatch.setattr("bot.cli.importlib.import_module", spy)
    code, out, err = run_main(monkeypatch, capsys, "--help")
    assert (code, err) == (0, "")
    for name in bot.cli.COMMANDS:
        assert f" {name} " in out, name
    assert loaded == []
    code, out, err = run_main(monkeypatch, capsys, "version")
    assert (code, err) == (0, "")
    assert out == version("lphedge") + "\n"  # pyproject's version, as pip installed it
    code, out, err = run_main(monkeypatch, capsys, "version", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["version"] == version("lphedge")
    assert json.loads(out)["name"] == "lphedge"
    assert loaded == ["bot.commands.version", "bot.commands.version"]


def test_a_command_still_runs_through_the_table(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    code, out, err = run_main(monkeypatch, capsys, "plan", "--state", str(tmp_path / "no.json"),
                              "--policy", str(ROOT / "examples" / "policy.toml"))
    assert code == 2 and out == ""
    assert err == f"error: {tmp_path / 'no.json'}: cannot read: No such file or directory\n"
    code, out, err = run_main(monkeypatch, capsys, "nosuch")
    assert code == 2 and "No such command 'nosuch'" in err


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported: module level, not inside functions,
    not under ``if TYPE_CHECKING``."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _walk(start: str, libraries: tuple[str, ...]) -> tuple[set[str], list[str]]:
    """(our modules reached from ``start`` through module-level imports, parent packages
    included; each module-level import of one of ``libraries`` among them)."""
    todo, seen, found = [start], set(), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages run first
        path = _module_file(name)
        if path is None:
            continue
        for imp in _top_level_imports(path):
            root = imp.split(".")[0]
            if root in libraries:
                found.append(f"{name} imports {imp}")
            elif root in OURS:
                todo.append(imp)
    return seen, found


def test_cli_module_imports_nothing_heavy_statically() -> None:
    """Every module reachable from bot/cli.py through module-level imports imports none of
    HEAVY at module level, and no command module is among them."""
    seen, heavy = _walk("bot.cli", HEAVY)
    assert heavy == []
    assert not {m for m in seen if m.startswith("bot.commands.")}


@pytest.mark.cli
def test_fresh_interpreter_help_imports_nothing_heavy() -> None:
    """The real thing, in a fresh interpreter: `lphedge --help` renders the listing and
    leaves every heavy library and every command module unimported."""
    import subprocess

    code = ("import sys; heavy = set(sys.argv[1:]); sys.argv = ['lphedge', '--help']\n"
            "import bot.cli\n"
            "try:\n    bot.cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & heavy "
            "| {m for m in sys.modules if m.startswith('bot.commands.')}))\n")
    out = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True,
                         timeout=60, check=True, cwd=ROOT)
    assert "positions" in out.stdout
    assert out.stdout.splitlines()[-1] == "LOADED []"


IO_LIBRARIES = ("web3", "ccxt", "sqlalchemy", "sqlmodel", "alembic", "eth_account", "aiohttp",
                "psycopg", "safe_eth")


@pytest.mark.parametrize("command", sorted({m for m, _ in bot.cli.COMMANDS.values()}))
def test_command_modules_import_no_io_library_at_module_level(command: str) -> None:
    """`lphedge <command> --help` imports the command's module: the chain, venue and
    database libraries are imported inside the command bodies, not when the module loads
    (a static walk of module-level imports, ours followed)."""
    assert _walk(f"bot.commands.{command}", IO_LIBRARIES)[1] == []
