"""The one settings tree (bot/settings.py): sources in order (init > env > .env > TOML >
default), nested env variables, the flat variables of earlier versions, and every bad
value refused in one line naming its field path and where it came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import UserError
from bot.settings import MULTICALL3_ADDRESS, load_settings
from bot.settings_sources import LEGACY_CHAIN_VARS

ADDR = "0x" + "ab" * 20
FEED = "0x" + "cd" * 20


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No LPHEDGE_* / DATABASE_URL of the developer's, no .env of theirs."""
    import os

    for k in list(os.environ):
        if k.upper().startswith("LPHEDGE_") or k.upper() in ("DATABASE_URL",):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def toml(tmp_path: Path, text: str, name: str = "lphedge.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def refused(*args: object, **kwargs: object) -> str:
    with pytest.raises(UserError) as err:
        load_settings(*args, **kwargs)  # type: ignore[arg-type]
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------------ precedence
def test_each_source_beats_the_ones_below(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = toml(tmp_path, "[market]\ntimeout_s = 2.0\nrate_limit = 7\n")
    s = load_settings()
    assert s.market.timeout_s == 10.0 and "market.timeout_s" not in s.origins  # default
    s = load_settings(cfg)
    assert s.market.timeout_s == 2.0 and s.origins["market.timeout_s"] == str(cfg)
    (tmp_path / ".env").write_text("LPHEDGE_MARKET__TIMEOUT_S=3\n")
    s = load_settings(cfg)
    assert s.market.timeout_s == 3.0
    assert s.origins["market.timeout_s"] == "LPHEDGE_MARKET__TIMEOUT_S in .env"
    monkeypatch.setenv("LPHEDGE_MARKET__TIMEOUT_S", "4")
    s = load_settings(cfg)
    assert s.market.timeout_s == 4.0 and s.origins["market.timeout_s"] == "LPHEDGE_MARKET__TIMEOUT_S"
    s = load_settings(cfg, market={"timeout_s": 5.0})
    assert s.market.timeout_s == 5.0 and s.origins["market.timeout_s"] == "given"
    # the fields no higher source named still come from the file
    assert s.market.rate_limit == 7 and s.origins["market.rate_limit"] == str(cfg)


def test_config_path_from_env_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    a = toml(tmp_path, "[api]\nport = 9001\n", "a.toml")
    b = toml(tmp_path, "[api]\nport = 9002\n", "b.toml")
    (tmp_path / ".env").write_text(f"LPHEDGE_CONFIG={a}\n")
    assert load_settings().api.port == 9001
    monkeypatch.setenv("LPHEDGE_CONFIG", str(b))
    assert load_settings().api.port == 9002
    assert load_settings(a).api.port == 9001  # --config wins


def test_nested_env_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LPHEDGE_MARKET__UNDERLYINGS", '["BTC", "ETH"]')
    monkeypatch.setenv("LPHEDGE_API__PORT", "9100")
    monkeypatch.setenv("LPHEDGE_DB__URL", "sqlite:///x.db")
    monkeypatch.setenv("LPHEDGE_VENUES__DERIBIT__API_KEY_ENV", "DERIBIT_KEY")
    monkeypatch.setenv("LPHEDGE_CHAINS", '[{"name": "arb", "chain_id": 42161, '
                       '"rpc_urls": ["http://a:1", "http://b:2"]}]')
    s = load_settings()
    assert s.market.underlyings == ["BTC", "ETH"]
    assert s.api.port == 9100 and s.api.host == "127.0.0.1"
    assert s.sqlalchemy_url == "sqlite:///x.db"
    assert s.venues["deribit"].api_key_env == "DERIBIT_KEY" and s.venues["deribit"].kind == "ccxt"
    assert s.chain.name == "arb" and s.chain_id == 42161
    assert s.rpc_url_list == ["http://a:1", "http://b:2"]
    assert s.origins["chains.0.rpc_urls"] == "LPHEDGE_CHAINS"
    assert s.origins["venues.deribit.api_key_env"] == "LPHEDGE_VENUES__DERIBIT__API_KEY_ENV"


# ------------------------------------------------------------------------------ legacy flat
def test_flat_variables_set_the_first_chain_and_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LPHEDGE_RPC_URLS", " http://a:1 , http://b:2,")
    monkeypatch.setenv("LPHEDGE_CHAIN_ID", "10")
    monkeypatch.setenv("LPHEDGE_RPC_TIMEOUT", "2.5")
    monkeypatch.setenv("LPHEDGE_RPC_RATE_LIMIT", "7")
    monkeypatch.setenv("LPHEDGE_MULTICALL_ADDRESS", FEED)
    monkeypatch.setenv("LPHEDGE_MULTICALL_CHUNK", "64")
    monkeypatch.setenv("LPHEDGE_OWNER", ADDR)
    monkeypatch.setenv("LPHEDGE_POSITION_MANAGER", FEED)
    monkeypatch.setenv("LPHEDGE_DB_PATH", "here.db")
    s = load_settings()
    assert s.rpc_url_list == ["http://a:1", "http://b:2"] == s.chain.rpc_urls
    assert (s.chain_id, s.rpc_timeout, s.rpc_rate_limit, s.multicall_chunk) == (10, 2.5, 7, 64)
    assert (s.multicall_address, s.owner, s.position_manager) == (FEED, ADDR, FEED)
    assert s.sqlalchemy_url == "sqlite:///here.db"
    assert s.origins["chains.0.rate_limit"] == "LPHEDGE_RPC_RATE_LIMIT"
    assert s.origins["db.url"] == "LPHEDGE_DB_PATH"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")  # wins over the SQLite path
    assert load_settings().sqlalchemy_url == "postgresql://u@h/db"


def test_flat_variable_order_env_dotenv_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = toml(tmp_path, '[[chains]]\nname = "mainnet"\nrpc_urls = ["http://toml:1"]\n'
                         'chain_id = 1\n[db]\nurl = "sqlite:///toml.db"\n')
    (tmp_path / ".env").write_text("LPHEDGE_RPC_URLS=http://dotenv:1\nDATABASE_URL=sqlite:///dotenv.db\n")
    s = load_settings(cfg)
    # the flat variable replaces the field it names and leaves the file's others
    assert s.chain.name == "mainnet" and s.chain_id == 1
    assert s.rpc_url_list == ["http://dotenv:1"] and s.sqlalchemy_url == "sqlite:///dotenv.db"
    assert s.origins["chains.0.rpc_urls"] == "LPHEDGE_RPC_URLS in .env"
    monkeypatch.setenv("LPHEDGE_RPC_URLS", "http://env:1")
    assert load_settings(cfg).rpc_url_list == ["http://env:1"]
    # a nested value names the same thing more precisely: it wins over the flat one
    monkeypatch.setenv("LPHEDGE_DB__URL", "sqlite:///nested.db")
    monkeypatch.setenv("LPHEDGE_CHAINS", '[{"rpc_urls": ["http://nested:1"]}]')
    s = load_settings(cfg)
    assert s.sqlalchemy_url == "sqlite:///nested.db" and s.rpc_url_list == ["http://nested:1"]
    # and a value given by the caller wins over everything
    s = load_settings(cfg, db={"url": "sqlite:///given.db"})
    assert s.sqlalchemy_url == "sqlite:///given.db"


def test_flat_variables_are_all_documented_and_nothing_else_is() -> None:
    """.env.example documents each variable the code reads, and each one it documents
    changes a setting (LPHEDGE_CONFIG picks the file; ANVIL_BIN is for the dev tools)."""
    from adapters.anvil import PROJECT_ROOT

    text = (Path(PROJECT_ROOT) / ".env.example").read_text()
    documented = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))
    for var in [*LEGACY_CHAIN_VARS, "DATABASE_URL", "LPHEDGE_DB_PATH", "LPHEDGE_CONFIG",
                "ANVIL_BIN"]:
        assert var in documented, var
    import os

    for var, example in documented.items():
        if var in ("LPHEDGE_CONFIG", "ANVIL_BIN") or not example:  # empty: read, unset
            assert var in (*LEGACY_CHAIN_VARS, "LPHEDGE_CONFIG", "ANVIL_BIN"), var
            continue
        os.environ[var] = example
        try:
            s = load_settings()
            assert any(src.startswith(var) for src in s.origins.values()), (var, s.origins)
        finally:
            del os.environ[var]


def test_multicall_constant_agrees_with_the_adapter() -> None:
    from adapters.evm.multicall import MULTICALL3_ADDRESS as ADAPTER

    assert MULTICALL3_ADDRESS == ADAPTER


# ------------------------------------------------------------------------------ bad values
def test_bad_value_in_the_file_names_file_and_path(tmp_path: Path) -> None:
    cfg = toml(tmp_path, "[market]\ntimeout_s = -1\n")
    assert refused(cfg) == f"config {cfg}: market.timeout_s must be > 0 and finite, got -1.0"
    cfg = toml(tmp_path, '[[chains]]\nname = "a"\n[[chains]]\nname = "b"\nmulticall_chunk = 0\n')
    assert refused(cfg).startswith(f"config {cfg}: chains[1].multicall_chunk must be calls per")
    cfg = toml(tmp_path, '[venues.x]\nkind = "spaceship"\n')
    assert refused(cfg).startswith(f"config {cfg}: venues.x.kind: Input should be")
    cfg = toml(tmp_path, '[[alerts.sinks]]\nkind = "slack"\n[[alerts.sinks]]\nurl_env = "HOOK"\n')
    assert refused(cfg) == f"config {cfg}: alerts.sinks[1] misses kind"
    cfg = toml(tmp_path, "[market]\nbooks = [{asset = 'USDC', venue = 'nope', symbol = 'X'}]\n")
    assert refused(cfg) == f"config {cfg}: market.books[0]: unknown venue 'nope'"


def test_bad_value_in_env_dotenv_legacy_and_init_names_its_source(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LPHEDGE_API__PORT=70000\n")
    assert refused() == ("setting api.port (LPHEDGE_API__PORT in .env) must be a TCP port in "
                         "[1, 65535], got 70000")
    (tmp_path / ".env").unlink()
    monkeypatch.setenv("LPHEDGE_MARKET__RATE_LIMIT", "0")
    assert refused() == ("setting market.rate_limit (LPHEDGE_MARKET__RATE_LIMIT) must be >= 1 "
                         "(requests per second per source)")
    monkeypatch.delenv("LPHEDGE_MARKET__RATE_LIMIT")
    monkeypatch.setenv("LPHEDGE_MARKET__FOO", "1")
    assert refused() == "setting market (LPHEDGE_MARKET__FOO): unknown key(s) foo"
    monkeypatch.delenv("LPHEDGE_MARKET__FOO")
    monkeypatch.setenv("LPHEDGE_CHAIN_ID", "mainnet")
    assert refused().startswith("setting chains[0].chain_id (LPHEDGE_CHAIN_ID): Input should be a valid integer")
    monkeypatch.delenv("LPHEDGE_CHAIN_ID")
    monkeypatch.setenv("LPHEDGE_CHAINS", "[not json")
    assert "chains" in refused()
    monkeypatch.delenv("LPHEDGE_CHAINS")
    assert refused(daemon={"tick_interval_s": 0}) == (
        "setting daemon.tick_interval_s must be > 0 and finite, got 0.0")


def test_secrets_never_echoed_in_refusals(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LPHEDGE_RPC_URLS", "wss://node.example/v2/SECRETKEY123")
    msg = refused()
    assert msg.startswith("setting chains[0].rpc_urls[0] (LPHEDGE_RPC_URLS) must be an http(s) URL")
    assert "SECRETKEY123" not in msg
    monkeypatch.delenv("LPHEDGE_RPC_URLS")
    # a key pasted where the NAME of its variable belongs is refused without echoing it
    cfg = toml(tmp_path, '[venues.binance]\napi_key_env = "aB3xKq9Zp0TkeyMaterial"\n')
    msg = refused(cfg)
    assert msg.startswith(f"config {cfg}: venues.binance.api_key_env must be the NAME of an environment variable")
    assert "aB3xKq9Zp0TkeyMaterial" not in msg
    cfg = toml(tmp_path, '[venues.binance]\napi_key_env = "K"\napi_key_file = "/k"\n')
    assert refused(cfg) == f"config {cfg}: venues.binance: give api_key_env or api_key_file, not both"


# ------------------------------------------------------------------------------ TOML file
def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    cfg = toml(tmp_path, "[market\n")
    assert refused(cfg).startswith(f"config {cfg}: ")


def test_unknown_keys_refused_by_name(tmp_path: Path) -> None:
    cfg = toml(tmp_path, "colour = 1\nflavour = 2\n")
    assert refused(cfg) == f"config {cfg}: unknown key(s) colour, flavour"
    cfg = toml(tmp_path, "[market]\nunderlying = ['ETH']\n")
    assert refused(cfg) == f"config {cfg}: market: unknown key(s) underlying"
    cfg = toml(tmp_path, "[[chains]]\nrpc_url = 'http://a:1'\n")
    assert refused(cfg) == f"config {cfg}: chains[0]: unknown key(s) rpc_url"
    # a file in the old `signals --config` format says where its keys went
    cfg = toml(tmp_path, "underlyings = ['ETH']\nrpc_url = 'http://a:1'\n")
    assert refused(cfg) == (f"config {cfg}: unknown key(s) rpc_url, underlyings (rpc_url is now "
                            "rpc_urls in [[chains]]; underlyings belongs under [market])")


def test_missing_config_file(tmp_path: Path) -> None:
    assert refused(tmp_path / "nope.toml") == f"config {tmp_path / 'nope.toml'} does not exist"
    assert refused(tmp_path) == f"config {tmp_path} is not a file"


# ------------------------------------------------------------------------------ chains
def test_market_chain_is_resolved_by_name(tmp_path: Path) -> None:
    body = ('[[chains]]\nname = "mainnet"\nrpc_urls = ["http://m:1"]\n'
            '[[chains]]\nname = "base"\nrpc_urls = ["http://b:1", "http://b:2"]\n'
            f'[market]\nchain = "base"\nfeeds = [{{asset = "USDC", label = "x", address = "{FEED}"}}]\n')
    s = load_settings(toml(tmp_path, body))
    assert s.market.rpc_chain.rpc_urls == ["http://b:1", "http://b:2"]
    assert s.chain.name == "mainnet" and s.chain_named("base").name == "base"
    cfg = toml(tmp_path, body.replace('chain = "base"', 'chain = "optimism"'))
    assert refused(cfg) == f"config {cfg}: market.chain 'optimism' names no [[chains]] entry (have mainnet, base)"
    cfg = toml(tmp_path, body.replace('rpc_urls = ["http://b:1", "http://b:2"]', ""))
    assert "market.feeds/pools/tvl_pools need rpc_urls on their chain" in refused(cfg)
    cfg = toml(tmp_path, '[[chains]]\nname = "a"\n[[chains]]\nname = "a"\n')
    assert refused(cfg) == f"config {cfg}: chains: name 'a' is used twice"


def test_addresses_checked_eip55(tmp_path: Path) -> None:
    from eth_utils.address import to_checksum_address

    good = to_checksum_address(ADDR)
    assert load_settings(owner_toml(tmp_path, good)).owner == good
    assert load_settings(owner_toml(tmp_path, ADDR)).owner == ADDR  # all lower case: no checksum
    bad = good[:-1] + (good[-1].lower() if good[-1].isupper() else good[-1].upper())
    if bad[2:] in (bad[2:].lower(), bad[2:].upper()):  # pragma: no cover - digit at the end
        bad = "0x" + bad[2].swapcase() + bad[3:]
    cfg = owner_toml(tmp_path, bad)
    assert refused(cfg) == f"config {cfg}: chains[0].owner '{bad}' is not an address (bad EIP-55 checksum)"


def owner_toml(tmp_path: Path, owner: str) -> Path:
    return toml(tmp_path, f'[[chains]]\nowner = "{owner}"\n')


def test_example_config_loads(tmp_path: Path) -> None:
    """examples/lphedge.toml is a full, valid config."""
    from adapters.anvil import PROJECT_ROOT

    s = load_settings(Path(PROJECT_ROOT) / "examples" / "lphedge.toml")
    assert s.chain.chain_id == 1 and len(s.rpc_url_list) >= 2
    assert s.market.feeds and s.venues and s.alerts.sinks and s.api.host == "127.0.0.1"


# ------------------------------------------------------------------------------ property
SOURCE_VALUES = {"init": 5.0, "env": 4.0, "dotenv": 3.0, "toml": 2.0}  # highest first


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # each example is self-contained
@given(st.lists(st.sampled_from(list(SOURCE_VALUES)), unique=True))
def test_highest_present_source_wins(present: list[str]) -> None:
    """Whatever subset of sources sets market.timeout_s, the value and its origin are
    those of the highest one present (the default when none is)."""
    import contextlib
    import os
    import tempfile

    var = "LPHEDGE_MARKET__TIMEOUT_S"
    with tempfile.TemporaryDirectory() as d, contextlib.chdir(d):
        cfg = Path(d) / "c.toml"
        cfg.write_text(f"[market]\ntimeout_s = {SOURCE_VALUES['toml']}\n" if "toml" in present else "")
        if "dotenv" in present:
            Path(d, ".env").write_text(f"{var}={SOURCE_VALUES['dotenv']}\n")
        if "env" in present:
            os.environ[var] = str(SOURCE_VALUES["env"])
        try:
            init = {"market": {"timeout_s": SOURCE_VALUES["init"]}} if "init" in present else {}
            s = load_settings(cfg, **init)
        finally:
            os.environ.pop(var, None)
    top = next((name for name in SOURCE_VALUES if name in present), None)
    assert s.market.timeout_s == (SOURCE_VALUES[top] if top else 10.0)
    expected_origin = {"init": "given", "env": var, "dotenv": f"{var} in .env", "toml": str(cfg),
                       None: None}[top]
    assert s.origins.get("market.timeout_s") == expected_origin
