"""The `lphedge signals` config: a TOML file (``--config`` or ``LPHEDGE_SIGNALS_CONFIG``)
naming what is watched (see docs/signals.md), checked in full before anything is read;
a bad file is one UserError line naming the field."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import UserError

DEFAULT_FUNDING_VENUES = ("binanceusdm", "bybit", "okx", "hyperliquid", "deribit")


@dataclass
class SignalsConfig:
    underlyings: list[str] = field(default_factory=lambda: ["ETH"])
    funding_venues: list[str] = field(default_factory=lambda: list(DEFAULT_FUNDING_VENUES))
    api_urls: dict[str, str] = field(default_factory=dict)  # venue -> base URL override
    timeout_s: float = 10.0
    rate_limit: int = 5
    deribit: bool = True
    defillama_url: str = "https://api.llama.fi"
    defillama_slugs: list[str] = field(default_factory=list)
    rpc_url: str = ""
    feeds: list[dict[str, Any]] = field(default_factory=list)  # asset, label, address, heartbeat
    pools: list[dict[str, Any]] = field(default_factory=list)  # asset, label, address, asset_is_token0
    books: list[dict[str, Any]] = field(default_factory=list)  # asset, venue, symbol, invert
    # pool TVL on chain: label, address, feed0, feed1 (Chainlink USD feeds of the tokens),
    # heartbeat0/1; samples kept in the store for the 48 h drop
    tvl_pools: list[dict[str, Any]] = field(default_factory=list)
    database_url: str = "sqlite:///lphedge.db"


# keys of the list items: required, then optional with their types
_ITEM_KEYS: dict[str, tuple[tuple[str, ...], dict[str, type]]] = {
    "feeds": (("asset", "label", "address"), {"heartbeat": int}),
    "pools": (("asset", "label", "address"), {"asset_is_token0": bool}),
    "books": (("asset", "venue", "symbol"), {"invert": bool}),
    "tvl_pools": (("label", "address", "feed0", "feed1"), {"heartbeat0": int, "heartbeat1": int}),
}
_ADDRESS_KEYS = ("address", "feed0", "feed1")


def _where(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def load_config(path: str | None) -> SignalsConfig:
    path = path or os.environ.get("LPHEDGE_SIGNALS_CONFIG")
    if not path:
        return SignalsConfig()
    p = Path(path)
    if not p.exists():
        raise UserError(f"signals config {path} does not exist")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"signals config {path}: {exc}") from None
    known = set(SignalsConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"signals config {path}: unknown key(s) {', '.join(unknown)}")
    from pydantic import TypeAdapter, ValidationError

    try:  # types of every top-level key (a string where a list belongs is refused)
        cfg = TypeAdapter(SignalsConfig).validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"signals config {path}: {_where(first['loc'])}: {first['msg']}"
                        ) from None
    try:
        _check_config(cfg)
    except ValueError as exc:
        raise UserError(f"signals config {path}: {exc}") from None
    return cfg


def _check_config(cfg: SignalsConfig) -> None:
    """Values the types do not catch; ValueError naming the field."""
    import ccxt
    from web3 import Web3

    from adapters.market.funding import DEFAULT_SYMBOLS

    if cfg.timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")
    if cfg.rate_limit < 1:
        raise ValueError("rate_limit must be >= 1 (requests per second per source)")
    if (cfg.feeds or cfg.pools or cfg.tvl_pools) and not cfg.rpc_url:
        raise ValueError("feeds/pools/tvl_pools need rpc_url")
    for venue in cfg.funding_venues:
        if not hasattr(ccxt, venue):
            raise ValueError(f"unknown venue {venue!r}")
        if venue not in DEFAULT_SYMBOLS:
            raise ValueError(f"funding venue {venue!r} is not supported "
                             f"(one of {', '.join(DEFAULT_SYMBOLS)})")
    for kind, (required, optional) in _ITEM_KEYS.items():
        for i, item in enumerate(getattr(cfg, kind)):
            missing = [k for k in required if k not in item]
            if missing:
                raise ValueError(f"{kind}[{i}] misses {', '.join(missing)}")
            extra = sorted(set(item) - set(required) - set(optional))
            if extra:
                raise ValueError(f"{kind}[{i}]: unknown key(s) {', '.join(extra)}")
            for key in required:
                if not isinstance(item[key], str) or not item[key]:
                    raise ValueError(f"{kind}[{i}].{key} must be a non-empty string")
                if key in _ADDRESS_KEYS and not Web3.is_address(item[key]):
                    raise ValueError(f"{kind}[{i}].{key} {item[key]!r} is not an address")
            for key, typ in optional.items():
                value = item.get(key)
                if value is None:
                    continue
                if type(value) is not typ:
                    raise ValueError(f"{kind}[{i}].{key} must be {typ.__name__}, "
                                     f"got {value!r}")
                if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
                    raise ValueError(f"{kind}[{i}].{key} must be > 0 seconds")
            if kind == "books" and not hasattr(ccxt, item["venue"]):
                raise ValueError(f"books[{i}]: unknown venue {item['venue']!r}")
