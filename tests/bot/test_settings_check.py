"""`lphedge config check` in-process: the resolved settings with every secret masked, where
each value came from, and one line naming the field for anything bad (exit 2)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

RPC_KEY = "Zq8RPCKEYx7"
BASIC_PW = "Bp4ssw0rdRPC"
DB_PW = "hunter2DBpw"
VENUE_KEY = "vK3yMaterialNeverShown"
HOOK_TOKEN = "T000/B000/XXXhooktoken"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in list(os.environ):
        if k.upper().startswith("LPHEDGE_") or k.upper() == "DATABASE_URL":
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """bot.cli.main as the entry point runs it (exit code and the one error line)."""
    from bot.cli import main

    monkeypatch.setattr(sys, "argv", ["lphedge", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def planted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Secrets everywhere a careless config would put them."""
    key_file = tmp_path / "deribit.secret"
    key_file.write_text(VENUE_KEY)
    monkeypatch.setenv("DERIBIT_CLIENT_ID", VENUE_KEY)
    monkeypatch.setenv("LPHEDGE_RPC_URLS", f"https://eth.example/v2/{RPC_KEY},"
                                           f"https://bob:{BASIC_PW}@rpc2.example:8545/")
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://lphedge:{DB_PW}@db.example:5432/lphedge")
    cfg = tmp_path / "lphedge.toml"
    cfg.write_text(f"""
[[chains]]
name = "mainnet"
chain_id = 1
[market.api_urls]
deribit = "https://www.deribit.com/api/v2?token={RPC_KEY}"
[venues.deribit]
api_key_env = "DERIBIT_CLIENT_ID"
api_secret_file = "{key_file}"
api_url = "https://user:{BASIC_PW}@venue.example/"
[[alerts.sinks]]
kind = "slack"
url_env = "SLACK_WEBHOOK_URL"
""")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"https://hooks.slack.com/services/{HOOK_TOKEN}")
    return cfg


@pytest.mark.parametrize("as_json", [False, True])
def test_secrets_masked(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        tmp_path: Path, as_json: bool) -> None:
    cfg = planted(monkeypatch, tmp_path)
    code, out, err = run(monkeypatch, capsys, "config", "check", "--config", str(cfg),
                         *(["--json"] if as_json else []))
    assert code == 0 and err == ""
    for secret in (RPC_KEY, BASIC_PW, DB_PW, VENUE_KEY, HOOK_TOKEN, "bob:", "hooks.slack"):
        assert secret not in out, secret
    # what is shown instead: host and port, the db user without the password
    assert "https://eth.example/..." in out and "https://rpc2.example:8545/..." in out
    assert "postgresql+psycopg://lphedge:***@db.example:5432/lphedge" in out
    assert "https://www.deribit.com/..." in out
    if as_json:
        doc = json.loads(out)
        assert doc["settings"]["chains"][0]["name"] == "mainnet"
        assert doc["sources"]["chains.0.rpc_urls"] == "LPHEDGE_RPC_URLS"
        assert doc["sources"]["chains.0.name"] == str(cfg)
        assert doc["sources"]["db.url"] == "DATABASE_URL"
        assert doc["keys"] == {
            "venues.deribit.api_key_env": "DERIBIT_CLIENT_ID: set",
            "venues.deribit.api_secret_file": f"{tmp_path / 'deribit.secret'}: present",
            "alerts.sinks.0.url_env": "SLACK_WEBHOOK_URL: set",
        }
        assert "market.timeout_s" not in doc["sources"]  # a default
    else:
        assert 'chains.0.name = "mainnet"  # ' + str(cfg) in out
        assert "market.timeout_s = 10.0  # default" in out
        assert "# venues.deribit.api_key_env: DERIBIT_CLIENT_ID: set" in out


def test_key_material_is_never_read(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    """The key file is looked at (present / MISSING), never opened."""
    import builtins

    cfg = planted(monkeypatch, tmp_path)
    key_file = str(tmp_path / "deribit.secret")
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        assert str(file) != key_file, "the key file was opened"
        return real_open(file, *args, **kwargs)

    import io

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)  # what pathlib's read_text/read_bytes call
    monkeypatch.setattr(os, "open", lambda *a, **k: pytest.fail(f"os.open{a}"))
    monkeypatch.delenv("DERIBIT_CLIENT_ID")
    code, out, _ = run(monkeypatch, capsys, "config", "check", "--config", str(cfg), "--json")
    keys = json.loads(out)["keys"]
    assert code == 0 and keys["venues.deribit.api_secret_file"].endswith(": present")
    assert keys["venues.deribit.api_key_env"] == "DERIBIT_CLIENT_ID: NOT SET"


@pytest.mark.parametrize(("toml", "env", "line"), [
    ("[market]\ntimeout_s = 0\n", {}, "config {cfg}: market.timeout_s must be > 0 and finite, got 0.0"),
    ("[market]\ncolour = 1\n", {}, "config {cfg}: market: unknown key(s) colour"),
    ("[market\n", {}, None),
    ("", {"LPHEDGE_RPC_TIMEOUT": "inf"},
     "setting chains[0].timeout (LPHEDGE_RPC_TIMEOUT) must be a number of seconds in (0, 3600], got inf"),
    ("", {"LPHEDGE_DB__URL": "nonsense"},
     "setting db.url (LPHEDGE_DB__URL) must be a SQLAlchemy URL (dialect[+driver]://..., e.g. sqlite:///lphedge.db)"),
    ("", {"LPHEDGE_RPC_URLS": f"ws://node.example/{RPC_KEY}"},
     "setting chains[0].rpc_urls[0] (LPHEDGE_RPC_URLS) must be an http(s) URL, got 'ws://node.example/...'"),
])
def test_bad_field_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path, toml: str, env: dict[str, str], line: str | None) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, out, err = run(monkeypatch, capsys, "config", "check", "--config", str(cfg))
    assert code == 2 and out == "" and err.count("\n") == 1 and RPC_KEY not in err
    if line is None:
        assert err.startswith(f"error: config {cfg}: ")
    else:
        assert err == f"error: {line.format(cfg=cfg)}\n"
