"""MarketObserver against loopback venues speaking each venue's wire format (ccxt runs for
real): clients kept across ticks, option and perp quotes with the venue's numbers,
staleness verdicts, unknown with reasons, one tick deadline, everything closed."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from bot.observe.market import MarketConfig, MarketObserver
from policies.hedge import OptionKind
from tests.adapters.market.test_venues import CURRENT, D, H, make_tape, option_book
from tests.bot.signals.test_cli import start_all
from tests.support import venue_servers as V

UNDERLYING = 3050.0  # what start_all's Deribit server sends as underlying_price


def config(servers: dict[str, V.VenueServer], **over: object) -> MarketConfig:
    base: dict[str, object] = dict(
        underlyings=("ETH",), funding_venues=("binanceusdm", "hyperliquid", "deribit"),
        api_urls={k: s.url for k, s in servers.items() if k != "defillama"},
        timeout_s=3.0, defillama_url=servers["defillama"].url, defillama_slugs=("uniswap-v3",),
        books=({"asset": "USDC", "venue": "binance", "symbol": "USDC/USDT"},))
    base.update(over)
    return MarketConfig(**base)  # type: ignore[arg-type]


async def stop(servers: dict[str, V.VenueServer]) -> None:
    for s in servers.values():
        await s.stop()


def _sessions(obs: MarketObserver) -> list[object]:
    exchanges = [f.exchange for f in obs._funding.values()] + [v.exchange for v in obs._vol.values()]
    exchanges += [b.exchange for _, b in obs._books]
    return [getattr(e, "session", None) for e in exchanges]


async def test_two_ticks_keep_clients_quotes_and_close() -> None:
    now_ms = int(time.time() * 1000)
    servers = await start_all(now_ms)
    try:
        obs = MarketObserver(config(servers, option_venues=("deribit",),
                                    perp_venues=("binanceusdm", "hyperliquid")))
        async with obs:
            now = now_ms // 1000
            first = await obs.read(now)
            loads = [h for h in servers["deribit"].hits if "get_instruments" in h[1]]
            sessions = _sessions(obs)
            chains = [h for h in servers["deribit"].hits if "get_book_summary_by_currency" in h[1]]
            assert len(chains) == 1  # one fetch gives the term structure and the quotes
            second = await obs.read(now + 60)
            # markets loaded on the first tick only; the same HTTP sessions serve the second
            assert [h for h in servers["deribit"].hits if "get_instruments" in h[1]] == loads
            assert _sessions(obs) == sessions and all(s is not None for s in sessions)
            assert len([h for h in servers["deribit"].hits
                        if "get_book_summary_by_currency" in h[1]]) == 2
        assert all(s is None or s.closed for s in _sessions(obs))  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="closed"):
            await obs.read(now)
    finally:
        await stop(servers)

    # option quotes: the book the server holds, premiums in USD (ETH price x underlying)
    book = option_book(now_ms)
    assert len(first.option_quotes) == len(book)
    by_key = {(q.instrument.expiry, q.instrument.strike, q.instrument.kind): q
              for q in first.option_quotes}
    for o in book:
        q = by_key[(o.expiry_ms // 1000, o.strike, OptionKind.PUT if o.kind == "P" else OptionKind.CALL)]
        assert q.bid == pytest.approx(0.049 * UNDERLYING) and q.ask == pytest.approx(0.051 * UNDERLYING)
        assert q.mark_iv == pytest.approx(o.mark_iv / 100) and q.open_interest == 100.0
        assert q.forward == UNDERLYING and q.instrument.size_step == Decimal("1")
        assert q.instrument.venue == "deribit" and q.instrument.underlying == "ETH"
        assert q.instrument.symbol.startswith("ETH-") and q.instrument.symbol.endswith(f"-{o.kind}")
        assert q.as_of == now_ms // 1000
    # perp quotes: funding per 8 h from each venue's interval (Binance 8 h, Hyperliquid 1 h)
    perps = {q.venue: q for q in first.perp_quotes}
    assert set(perps) == {"binanceusdm", "hyperliquid"}
    assert perps["binanceusdm"].funding_rate_8h == pytest.approx(CURRENT)
    assert perps["hyperliquid"].funding_rate_8h == pytest.approx(CURRENT * 8)
    assert perps["binanceusdm"].size_step == Decimal("0.001")
    assert all(q.mark is None and q.underlying == "ETH" for q in perps.values())
    # signals: known ones are fresh with their input's time; the regime is built from them
    (eth,) = first.underlyings
    sig = {s.name: s for s in eth.signals}
    assert sig["term_structure"].verdict == "fresh" and sig["term_structure"].as_of == now_ms // 1000
    assert sig["funding"].verdict == "fresh" and sig["funding"].level is not None
    assert sig["depeg"].verdict == "fresh"
    assert first.regimes == (eth.regime,) and eth.regime.level is not None
    # the second tick's hysteresis state is the first tick's levels
    assert second.now == now + 60 and obs._levels == second.levels()
    assert first.levels()["ETH:funding"] == eth.regime.signals[0].level


async def test_stale_chain_is_stale_and_down_venue_unknown_with_reason() -> None:
    now_ms = int(time.time() * 1000)
    servers = await start_all(now_ms)
    old = now_ms - 3 * H  # the option chain was last stamped three hours ago
    await servers["deribit"].stop()
    servers["deribit"] = await V.deribit(old, make_tape("deribit", now_ms), CURRENT,
                                         underlying=UNDERLYING, options=option_book(now_ms),
                                         dvol=[(now_ms // D * D - i * D, 50.0) for i in range(100)][::-1]).start()
    await servers["hyperliquid"].stop()  # down
    try:
        async with MarketObserver(config(servers, option_venues=("deribit", "derive"),
                                         perp_venues=("hyperliquid",))) as obs:
            snap = await obs.read(now_ms // 1000)
    finally:
        await stop(servers)
    (eth,) = snap.underlyings
    sig = {s.name: s for s in eth.signals}
    ts = sig["term_structure"]
    assert ts.verdict == "stale" and ts.level is None and ts.as_of == old // 1000
    assert ts.reading.reason.startswith("stale: chain is 10800s old")
    # the quotes are passed on with their real time: decide judges their age itself
    assert snap.option_quotes and all(q.as_of == old // 1000 for q in snap.option_quotes)
    (hl,) = snap.perp_quotes
    assert hl.funding_rate_8h is None  # unknown, not 0
    src = {s.name: s for s in snap.sources}
    assert src["funding:hyperliquid:ETH/USDC:USDC"].status == "unknown"
    assert "unreachable" in src["funding:hyperliquid:ETH/USDC:USDC"].reason
    assert src["funding_history:hyperliquid:ETH"].status == "unknown"
    # a configured option venue without a market-data adapter is said so, not silently empty
    assert src["option_quotes:derive:ETH"].status == "unknown"
    assert src["option_quotes:derive:ETH"].reason == "no option market-data adapter for venue derive"
    assert {q.instrument.venue for q in snap.option_quotes} == {"deribit"}


async def test_one_deadline_for_the_tick() -> None:
    """A venue that never answers is cut at the tick deadline (not its own, longer,
    request timeout): its readings are unknown with that reason; the others are read."""
    now_ms = int(time.time() * 1000)
    servers = await start_all(now_ms)
    servers["binanceusdm"].fault = "timeout"  # never answers
    try:
        async with MarketObserver(config(servers, timeout_s=25.0, deadline_s=2.0,
                                         perp_venues=("binanceusdm",))) as obs:
            snap = await obs.read(now_ms // 1000)
    finally:
        await stop(servers)
    src = {s.name: s for s in snap.sources}
    for name in ("funding:binanceusdm:ETH/USDT:USDT", "funding_history:binanceusdm:ETH"):
        assert src[name].status == "unknown"
        assert src[name].reason == "no answer within the tick deadline of 2s"
    (q,) = snap.perp_quotes
    assert q.funding_rate_8h is None


async def test_everything_down_is_unknown_not_a_crash() -> None:
    now_ms = int(time.time() * 1000)
    servers = await start_all(now_ms)
    await stop(servers)
    async with MarketObserver(config(servers, option_venues=("deribit",),
                                     perp_venues=("binanceusdm",))) as obs:
        snap = await obs.read(now_ms // 1000)
    (eth,) = snap.underlyings
    assert eth.regime.level is None
    assert all(s.verdict == "unknown" and s.as_of is None and s.reading.reason for s in eth.signals)
    assert snap.option_quotes == () and snap.perp_quotes[0].funding_rate_8h is None
    assert {s.status for s in snap.sources} == {"unknown"}
