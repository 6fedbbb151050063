"""Settings out of bounds are refused by name, never turned into an internal error."""

from __future__ import annotations

import pytest

from bot.errors import UserError
from bot.settings import load_settings

BAD = [
    ("LPHEDGE_RPC_TIMEOUT", "nan"),
    ("LPHEDGE_RPC_TIMEOUT", "inf"),
    ("LPHEDGE_RPC_TIMEOUT", "-1"),
    ("LPHEDGE_RPC_TIMEOUT", "0"),
    ("LPHEDGE_RPC_TIMEOUT", "1e9"),
    ("LPHEDGE_MULTICALL_CHUNK", "0"),
    ("LPHEDGE_MULTICALL_CHUNK", "-5"),
    ("LPHEDGE_MULTICALL_CHUNK", "1000000"),
    ("LPHEDGE_RPC_RATE_LIMIT", "0"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path, name: str, value: str) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError) as err:
        load_settings()
    msg = str(err.value)
    assert name in msg and "\n" not in msg


def test_good_settings_pass(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LPHEDGE_RPC_TIMEOUT", "2.5")
    monkeypatch.setenv("LPHEDGE_MULTICALL_CHUNK", "1")
    s = load_settings()
    assert s.rpc_timeout == 2.5 and s.multicall_chunk == 1
