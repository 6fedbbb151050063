"""`lphedge signals --json` and `lphedge history download` as a user runs them (the real
entry point: in process through tests/support/cli.py, and as a subprocess where only a
process shows it: every HTTP session closed, nothing 'Unclosed' at exit), against loopback
venues and the anvil chain."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from adapters.anvil import PROJECT_ROOT
from adapters.market.history import (
    FUNDING_HEADER,
    OHLC_HEADER,
    load_funding,
    load_ohlc,
    write_funding,
    write_ohlc,
)
from tests.adapters.market.test_venues import CURRENT, D, H, make_tape, option_book
from tests.policies.signals.test_replay import HISTORY
from tests.support import venue_servers as V
from tests.support.cli import lphedge

LPHEDGE = str(Path(sys.executable).parent / "lphedge")


async def run(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        LPHEDGE, *args, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def run_here(*args: str) -> tuple[int, str, str]:
    """The same through bot.cli.main in this process, in a worker thread: the command runs
    its own event loop while this one keeps serving the loopback venues."""
    r = await asyncio.to_thread(lphedge, *args)
    return r.returncode, r.stdout, r.stderr


def invoke_error(*args: str) -> str:
    """Run the CLI in-process; return the UserError message it raised (exit 2 via main)."""
    from typer.testing import CliRunner

    from bot.cli import app
    from bot.errors import UserError

    result = CliRunner().invoke(app, list(args))
    assert isinstance(result.exception, UserError), (result.exception, result.output)
    return str(result.exception)


async def start_all(now_ms: int) -> dict[str, V.VenueServer]:
    today = now_ms // D * D
    servers = {}
    for venue in ("binanceusdm", "bybit", "okx", "hyperliquid"):
        spike = 0.004 if venue == "binanceusdm" else None
        servers[venue] = await getattr(V, venue)(now_ms, make_tape(venue, now_ms, spike=spike),
                                                 CURRENT).start()
    dvol = [(today - i * D, 50.0 + (i % 17)) for i in range(120)][::-1]
    candles = [(today - i * D, 3000.0 + 20 * (i % 5)) for i in range(210)][::-1]
    servers["deribit"] = await V.deribit(
        now_ms, make_tape("deribit", now_ms), CURRENT, underlying=3050.0,
        options=option_book(now_ms), dvol=dvol, candles=candles).start()
    servers["binance"] = await V.binance_spot(now_ms, {"USDCUSDT": (0.9987, 0.9989)}).start()
    day = 86400
    tvl = [(today // 1000 - (9 - i) * day, 5.0e9) for i in range(10)]
    tvl[-1] = (today // 1000, 4.5e9)  # -10% in a day
    servers["defillama"] = await V.defillama({"uniswap-v3": tvl}).start()
    return servers


def write_config(tmp_path: Path, servers: dict[str, V.VenueServer], extra: str = "",
                 chains: str = "") -> Path:
    urls = "\n".join(f'{k} = "{s.url}"' for k, s in servers.items() if k != "defillama")
    cfg = tmp_path / "signals.toml"
    cfg.write_text(f"""
{chains}
[db]
url = "sqlite:///{tmp_path / 'state.db'}"
[market]
underlyings = ["ETH"]
timeout_s = 30.0
defillama_url = "{servers['defillama'].url}"
defillama_slugs = ["uniswap-v3"]
books = [{{asset = "USDC", venue = "binance", symbol = "USDC/USDT"}}]
{extra}
[market.api_urls]
{urls}
""")
    return cfg


@pytest.mark.cli
async def test_signals_json_end_to_end(tmp_path, sigchain):
    from tests.adapters.market.test_chain import FEED_SOL, deploy_feed
    from tests.adapters.market.test_chain import feed_artifact as _fa  # noqa: F401
    from tests.support.solc import compile_contract

    feed = deploy_feed(sigchain, compile_contract(FEED_SOL, "TestAggregatorV3"), 99_300_000)
    now_ms = int(time.time() * 1000)
    servers = await start_all(now_ms)
    extra = (f'feeds = [{{asset = "USDC", label = "USDC/USD", address = "{feed.address}", '
             f'heartbeat = 86400}}]')
    cfg = write_config(tmp_path, servers, extra, f'[[chains]]\nrpc_urls = ["{sigchain.url}"]')
    try:
        code, out, err = await run("signals", "--json", "--config", str(cfg))
    finally:
        for s in servers.values():
            await s.stop()
    assert code == 0, err
    assert "Unclosed" not in err, err  # every HTTP session (venues, RPC) closed: quiet stderr
    doc = json.loads(out)
    (eth,) = doc["regimes"]
    sig = {s["name"]: s for s in eth["signals"]}
    assert set(sig) == {"funding", "iv_percentile", "term_structure", "rsi_macd", "depeg",
                        "tvl_drop"}
    assert sig["funding"]["level"] == "crisis"  # the Binance spike
    assert sig["funding"]["evidence"]["venues"]["binanceusdm"]["latest_rate"] == 0.004
    current = {s["name"]: s for s in doc["sources"] if s["name"].startswith("funding:")
               and "value" in s}
    assert current["funding:binanceusdm:ETH/USDT:USDT"]["value"] == CURRENT
    assert current["funding:hyperliquid:ETH/USDC:USDC"]["extra"]["interval_hours"] == 1.0
    assert sig["term_structure"]["level"] == "crisis"
    assert sig["term_structure"]["evidence"]["front_iv"] == pytest.approx(0.905)
    assert sig["depeg"]["level"] == "elevated"  # Chainlink 0.993: -70 bps
    assert sig["depeg"]["evidence"]["worst_source"] == "chainlink:USDC/USD"
    assert sig["depeg"]["evidence"]["sources"]["binance:USDC/USDT"].get("bps") == pytest.approx(-12), sig["depeg"]["evidence"]["sources"]
    assert sig["tvl_drop"]["level"] == "elevated"  # -10% over 48h
    # DVOL of day i back is 50 + i % 17: the latest (50) is the window's minimum, tied by
    # every 17th day; the share at or below it is ceil(points / 17) / points
    iv = sig["iv_percentile"]["evidence"]
    assert iv["latest"] == 50.0 and iv["points"] in (90, 91)
    assert iv["percentile"] == pytest.approx(100 * -(-iv["points"] // 17) / iv["points"])
    assert sig["iv_percentile"]["level"] == "calm"
    assert eth["level"] == "crisis"
    # two crisis signals (funding, term structure): the tie goes to the later name
    assert eth["reason"].startswith("term_structure crisis: backwardation")
    # hysteresis state was stored and is read back on the next run
    from bot.db import open_engine
    from bot.market_store import MarketStore
    levels = MarketStore(open_engine(f"sqlite:///{tmp_path}/state.db")).load_levels()
    assert levels["ETH:funding"].name == "CRISIS" and levels["USDC:depeg"].name == "ELEVATED"


async def test_signals_all_sources_down_is_unknown_not_a_crash(tmp_path):
    now_ms = int(time.time() * 1000)
    servers = await start_all(now_ms)
    for s in servers.values():
        await s.stop()  # every venue is down
    cfg = write_config(tmp_path, servers)
    code, out, err = await run_here("signals", "--json", "--config", str(cfg), "--no-state")
    assert code == 0, err
    doc = json.loads(out)
    (eth,) = doc["regimes"]
    assert eth["level"] == "unknown" and "no primary signal known" in eth["reason"]
    assert all(s["level"] == "unknown" and s["reason"] for s in eth["signals"])
    assert {s["status"] for s in doc["sources"]} == {"unknown"}
    assert all(("unreachable" in s["reason"] or "unavailable" in s["reason"])
               for s in doc["sources"]), doc["sources"]
    # the human view says the same
    code, out, err = await run_here("signals", "--config", str(cfg), "--no-state")
    assert code == 0 and "unknown" in out


@pytest.mark.parametrize("content,msg", [
    ("foo = 1", "unknown key(s) foo"),
    ("[market]\ntimeout_s = -1", "timeout_s must be > 0"),
    ('[market]\nfunding_venues = ["nope"]', "unknown venue 'nope'"),
    ('[market]\nfeeds = [{asset = "USDC", label = "x", address = "0x1"}]', "feeds/pools/tvl_pools need rpc_url"),
    ('[market]\nbooks = [{asset = "USDC"}]', "books[0] misses venue, symbol"),
    ("this is not toml", "signals config"),
    # each of these used to crash later (a traceback turned into "error: ValueError: ...",
    # exit 1) or, for a string where a list belongs, to watch "E", "T", "H" silently
    ('[market]\nunderlyings = "ETH"', "underlyings: Input should be a valid list"),
    ('[market]\ntimeout_s = "x"', "timeout_s: Input should be a valid number"),
    ('[market]\napi_urls = "x"', "api_urls: Input should be a valid dictionary"),
    ("[market]\nrate_limit = 0", "rate_limit must be >= 1"),
    ('[market]\nfunding_venues = ["kraken"]', "funding venue 'kraken' is not supported"),
    ('[market]\nbooks = [{asset = "USDC", venue = "nope", symbol = "X/Y"}]', "books[0]: unknown venue 'nope'"),
    ('[market]\nbooks = ["x"]', "books[0]: Input should be a valid dictionary"),
    ('[[chains]]\nrpc_urls = ["http://127.0.0.1:9"]\n[market]\nfeeds = [{asset = "USDC", label = "x", address = "0x1"}]',
     "feeds[0].address '0x1' is not an address"),
    ('[[chains]]\nrpc_urls = ["http://127.0.0.1:9"]\n[market]\nfeeds = [{asset = "USDC", label = "x", address = '
     f'"{"0x" + "ab" * 20}", heartbeet = 3600}}]', "feeds[0]: unknown key(s) heartbeet"),
    ('[[chains]]\nrpc_urls = ["http://127.0.0.1:9"]\n[market]\nfeeds = [{asset = "USDC", label = "x", address = '
     f'"{"0x" + "ab" * 20}", heartbeat = "day"}}]', "feeds[0].heartbeat must be int, got 'day'"),
    ('[[chains]]\nrpc_urls = ["http://127.0.0.1:9"]\n[market]\ntvl_pools = [{label = "p", address = '
     f'"{"0x" + "ab" * 20}", feed0 = "{"0x" + "cd" * 20}", feed1 = "{"0x" + "cd" * 20}", '
     'heartbeat0 = -5}]', "tvl_pools[0].heartbeat0 must be > 0 seconds"),
    ('[[chains]]\nrpc_urls = ["http://127.0.0.1:9"]\n[market]\npools = [{asset = "USDC", label = "x", address = '
     f'"{"0x" + "ab" * 20}", asset_is_token0 = "yes"}}]',
     "pools[0].asset_is_token0 must be bool, got 'yes'"),
])
def test_signals_bad_config_refused(tmp_path, content, msg):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    err = invoke_error("signals", "--json", "--config", str(cfg), "--no-state")
    assert msg in err and "\n" not in err, err


async def test_bad_config_is_one_line_on_stderr(tmp_path):
    """Through the real entry point (bot.cli.main): `error: <msg>`, exit 2, nothing on stdout."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text("foo = 1")
    code, out, err = await run_here("signals", "--json", "--config", str(cfg), "--no-state")
    assert code == 2 and out == ""
    assert err == f"error: signals config {cfg}: unknown key(s) foo\n"


@pytest.mark.parametrize("url,shown", [
    ("postgresql://bob:hunter2@127.0.0.1:1/db", "database postgresql://bob:***@127.0.0.1:1/db: "),
    ("nonsense", "signals config "),  # refused by the settings: db.url must be a SQLAlchemy URL
])
def test_signals_bad_database_hides_its_password(tmp_path, url, shown):
    cfg = tmp_path / "db.toml"
    cfg.write_text(f'[market]\nunderlyings = ["ETH"]\nfunding_venues = []\nderibit = false\n[db]\nurl = "{url}"\n')
    err = invoke_error("signals", "--json", "--config", str(cfg))
    assert err.startswith(shown) and "hunter2" not in err and "\n" not in err, err


def test_signals_missing_config_file(tmp_path):
    err = invoke_error("signals", "--config", str(tmp_path / "nope.toml"))
    assert err == f"signals config {tmp_path / 'nope.toml'} does not exist"


# ----------------------------------------------------------------------------- history
async def test_history_download_funding_ohlcv_dvol_load_like_recorded(tmp_path):
    now_ms = int(time.time() * 1000)
    today = now_ms // D * D
    tape = make_tape("binanceusdm", now_ms, days=20)
    fund = await V.binanceusdm(now_ms, tape, CURRENT).start()
    spot = await V.binance_spot(now_ms, {"ETHUSDT": (3000.0, 3000.1)}).start()
    spot.data["klines"] = [(today - (2000 - i) * H, 3000.0 + i % 7, 3010.0 + i % 7,
                            2990.0 + i % 7, 3001.0 + i % 7) for i in range(2000)]
    dvol = [(today - i * D, 60.0 + (i % 9) / 4) for i in range(100)][::-1]
    deri = await V.deribit(now_ms, make_tape("deribit", now_ms, days=2), CURRENT,
                           dvol=dvol).start()
    deri.data["page"] = 25
    since = time.strftime("%Y-%m-%d", time.gmtime(today / 1000 - 15 * 86400))
    until = time.strftime("%Y-%m-%d", time.gmtime(today / 1000))
    try:
        code, out, err = await run_here("history", "download", "funding", "--venue", "binanceusdm",
                                   "--since", since, "--until", until, "--api-url", fund.url,
                                   "--out", str(tmp_path / "f.csv"), "--json")
        assert code == 0, err
        info = json.loads(out)
        code, _, err = await run_here("history", "download", "ohlcv", "--venue", "binance",
                                 "--symbol", "ETH/USDT", "--timeframe", "1h", "--since", since,
                                 "--until", until, "--api-url", spot.url,
                                 "--out", str(tmp_path / "o.csv"))
        assert code == 0, err
        code, _, err = await run_here("history", "download", "dvol", "--since", since, "--until",
                                 until, "--api-url", deri.url, "--out", str(tmp_path / "d.csv"))
        assert code == 0, err
    finally:
        for s in (fund, spot, deri):
            await s.stop()
    start_s = today // 1000 - 15 * 86400
    end_s = today // 1000
    funding = load_funding(tmp_path / "f.csv")
    want = [(t // 1000, r) for t, r in tape.rows() if start_s <= t // 1000 <= end_s]
    assert [(p.ts, p.rate) for p in funding] == want and info["rows"] == len(want)
    assert {p.interval_hours for p in funding} == {8.0}
    ohlc = load_ohlc(tmp_path / "o.csv")
    want_k = [(t // 1000, c) for t, _o, _h, _l, c in spot.data["klines"]
              if start_s <= t // 1000 <= end_s]
    assert [(b.ts, b.close) for b in ohlc] == want_k and len(want_k) == 15 * 24
    d = load_ohlc(tmp_path / "d.csv")
    assert [(b.ts, b.close) for b in d] == [(t // 1000, v) for t, v in dvol
                                           if start_s <= t // 1000 <= end_s]
    # same header and timestamp format as the recorded files
    for mine, recorded in (("f.csv", "eth_funding_binance.csv"), ("o.csv", "eth_usdt_1h.csv"),
                           ("d.csv", "eth_dvol_1d.csv")):
        a = (tmp_path / mine).read_text().splitlines()
        b = (HISTORY / recorded).read_text().splitlines()
        assert a[0] == b[0]
        assert len(a[1].split(",")[0]) == len(b[1].split(",")[0]) == 20  # 2022-05-12T00:00:00Z


async def test_history_download_malformed_answer_writes_nothing(tmp_path):
    """A garbage answer used to be written as an empty CSV with exit 0."""
    now_ms = int(time.time() * 1000)
    fund = await V.binanceusdm(now_ms, make_tape("binanceusdm", now_ms, days=5), CURRENT).start()
    fund.fault, fund.fault_paths = "malformed", ("fundingRate",)
    since = time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000 - 3 * 86400))
    try:
        code, out, err = await run_here("history", "download", "funding", "--venue", "binanceusdm",
                                   "--since", since, "--api-url", fund.url,
                                   "--out", str(tmp_path / "f.csv"))
    finally:
        await fund.stop()
    assert code == 2 and out == ""
    assert err == ("error: history download funding: malformed response: binanceusdm "
                   "funding history answer is not JSON\n")
    assert not (tmp_path / "f.csv").exists()


async def test_history_download_unknown_market_is_named(tmp_path):
    spot = await V.binance_spot(int(time.time() * 1000), {"ETHUSDT": (3000.0, 3000.1)}).start()
    try:
        code, out, err = await run_here("history", "download", "ohlcv", "--venue", "binance",
                                   "--symbol", "NOPE/USDT", "--since", "2024-01-01",
                                   "--until", "2024-01-02", "--api-url", spot.url,
                                   "--out", str(tmp_path / "o.csv"))
    finally:
        await spot.stop()
    assert code == 2 and out == ""
    assert err == "error: history download ohlcv: binance has no market NOPE/USDT\n"
    assert not (tmp_path / "o.csv").exists()


def test_recorded_files_round_trip_through_the_writer(tmp_path):
    for name, loader, writer, header in (
        ("eth_funding_dydx.csv", load_funding, write_funding, FUNDING_HEADER),
        ("eth_dvol_1d.csv", load_ohlc, write_ohlc, OHLC_HEADER),
    ):
        rows = loader(HISTORY / name)
        n = writer(tmp_path / name, rows)
        assert n == len(rows)
        assert loader(tmp_path / name) == rows
        assert (tmp_path / name).read_text().splitlines()[0] == ",".join(header)


def test_history_download_out_must_be_writable(tmp_path):
    args = ["history", "download", "funding", "--since", "2024-01-01", "--until",
            "2024-01-02", "--api-url", "http://127.0.0.1:9", "--out"]
    assert invoke_error(*args, str(tmp_path)) == f"--out {tmp_path} is a directory"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = invoke_error(*args, str(blocker / "sub" / "x.csv"))
    assert err == f"--out {blocker / 'sub' / 'x.csv'}: {blocker} is not a writable directory"


@pytest.mark.parametrize("args,msg", [
    (["history", "download", "trades", "--since", "2024-01-01", "--out", "x.csv"],
     "kind 'trades'"),
    (["history", "download", "funding", "--since", "yesterday", "--out", "x.csv"],
     "--since 'yesterday'"),
    (["history", "download", "funding", "--since", "2024-02-01", "--until", "2024-01-01",
      "--out", "x.csv"], "--until must be after --since"),
    (["history", "download", "ohlcv", "--since", "2024-01-01", "--timeframe", "7s",
      "--api-url", "http://127.0.0.1:9", "--out", "x.csv"], "timeframe '7s'"),
    (["history", "download", "funding", "--venue", "nope", "--since", "2024-01-01",
      "--out", "x.csv"], "--venue 'nope' is not a ccxt venue"),
    (["history", "download", "funding", "--venue", "kraken", "--since", "2024-01-01",
      "--out", "x.csv"], "--venue 'kraken' has no default perp symbol: give --symbol"),
    (["history", "download", "funding", "--since", "2024-01-01", "--until", "2024-01-02",
      "--api-url", "http://127.0.0.1:9", "--out", "x.csv"], "venue unreachable"),
])
def test_history_download_bad_input(tmp_path, args, msg):
    args = [a if a != "x.csv" else str(tmp_path / "x.csv") for a in args]
    err = invoke_error(*args)
    assert msg in err and "\n" not in err, err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.cli
async def test_signals_pool_tvl_history_gives_intraday_48h_drop(tmp_path, sigchain):
    """Two runs of `lphedge signals` 25 h apart (anvil's clock): the pool TVL samples are
    kept in the store, and the drop after half the liquidity left shows on the second run."""
    from tests.adapters.market.test_chain import FEED_SOL, advance, deploy_feed
    from tests.support.solc import compile_contract

    art = compile_contract(FEED_SOL, "TestAggregatorV3")
    a = sigchain.deploy_token("tUSDC", 6)
    b = sigchain.deploy_token("tUSDT", 6)
    pool = sigchain.create_pool(a, b, 500, 1)
    me = sigchain.deployer.address
    big = sigchain.mint(pool, -100, 100, 600_000 * 10**6, 600_000 * 10**6, recipient=me)
    sigchain.mint(pool, -100, 100, 400_000 * 10**6, 400_000 * 10**6, recipient=me)
    feeds = [deploy_feed(sigchain, art, 100_000_000) for _ in range(2)]
    cfg = tmp_path / "tvl.toml"
    cfg.write_text(f"""
[[chains]]
rpc_urls = ["{sigchain.url}"]
[db]
url = "sqlite:///{tmp_path / 'state.db'}"
[market]
underlyings = []
tvl_pools = [{{label = "tUSDC/tUSDT/500", address = "{pool}", feed0 = "{feeds[0].address}", feed1 = "{feeds[1].address}"}}]
""")

    async def tvl_signal() -> dict:
        code, out, err = await run("signals", "--json", "--config", str(cfg))
        assert code == 0, err
        assert "Unclosed" not in err, err
        doc = json.loads(out)
        (src,) = [s for s in doc["sources"] if s["name"].startswith("tvl:")]
        assert src["status"] == "ok", src
        assert doc["regimes"] == []
        (sig,) = doc["shared_signals"]
        assert sig["name"] == "tvl_drop" and sig["evidence"]["subject"] == "tvl:tUSDC/tUSDT/500"
        src["signal"] = sig
        return src

    first = await tvl_signal()
    # and the signal itself: not enough history yet -> unknown with the reason
    from bot.db import open_engine
    from bot.market_store import MarketStore
    from policies import signals as S

    engine = open_engine(f"sqlite:///{tmp_path / 'state.db'}")
    series = MarketStore(engine).tvl_series("tvl:tUSDC/tUSDT/500", 0)
    assert series == [(first["as_of"], first["value"])]
    assert first["signal"]["level"] == "unknown"
    assert "history covers 0.0h, need 24h" in first["signal"]["reason"]

    advance(sigchain, 25 * 3600)
    for f in feeds:  # the feeds keep beating
        sigchain.transact(f.functions.updateAnswer(100_000_000))
    npm = sigchain.contract("NonfungiblePositionManager", sigchain.addresses["position_manager"])
    liq = npm.functions.positions(big).call()[7]
    sigchain.transact(npm.functions.decreaseLiquidity((big, liq, 0, 0, 2**63)))
    sigchain.transact(npm.functions.collect((big, me, 2**128 - 1, 2**128 - 1)))
    second = await tvl_signal()
    assert second["as_of"] - first["as_of"] >= 25 * 3600
    drop = (first["value"] - second["value"]) / first["value"]
    assert drop == pytest.approx(0.6, abs=0.01)
    series = MarketStore(engine).tvl_series("tvl:tUSDC/tUSDT/500", 0)
    assert len(series) == 2
    reading = S.tvl_drop(series, second["as_of"])
    assert reading.level.name == "CRISIS" and reading.evidence["drop"] == pytest.approx(drop)
    assert second["signal"]["level"] == "crisis"
    assert second["signal"]["evidence"]["drop"] == pytest.approx(drop)
    levels = MarketStore(engine).load_levels()
    assert levels["tvl:tUSDC/tUSDT/500:tvl_drop"].name == "CRISIS"
