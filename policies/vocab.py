"""The one vocabulary of names lphedge reads in policies, state files, settings and overrides.

Signal, level, layer, venue, option-kind, intent and override-kind names are defined here
once; every other module imports them (the policy and state-file validators check names
against these sets). ``Literal`` types are written out for the type checker and pydantic;
the tuples are derived from them, so the two can never disagree.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final, Literal, get_args

# ------------------------------------------------------------------------------ signals
SignalName = Literal["iv_percentile", "term_structure", "tvl_drop", "funding", "depeg", "rsi_macd"]
SIGNAL_NAMES: Final[tuple[str, ...]] = get_args(SignalName)
IV_PERCENTILE: Final = "iv_percentile"  # implied-vol percentile over 90 days
TERM_STRUCTURE: Final = "term_structure"  # IV term structure (backwardation)
TVL_DROP: Final = "tvl_drop"  # pool / protocol TVL drop over 48 h
FUNDING: Final = "funding"  # perp funding spike
DEPEG: Final = "depeg"  # stablecoin depeg / spread
RSI_MACD: Final = "rsi_macd"  # secondary confirmation only
PRIMARY_SIGNALS: Final[tuple[str, ...]] = (IV_PERCENTILE, TERM_STRUCTURE, TVL_DROP, FUNDING, DEPEG)
SECONDARY_SIGNALS: Final[tuple[str, ...]] = (RSI_MACD,)

# ------------------------------------------------------------------------------- levels
LevelName = Literal["calm", "elevated", "stress", "crisis"]  # policies.types.Level, lower-case
TriggerLevel = Literal["elevated", "stress", "crisis"]  # calm never triggers anything
LEVEL_NAMES: Final[tuple[str, ...]] = get_args(LevelName)

# ------------------------------------------------------------------------------- layers
# The three default protection layers, by tenor. A policy may declare its own layers instead
# (any name matching LAYER_NAME_PATTERN, at most MAX_LAYERS); overrides then accept exactly
# the layers the approved policy declares.
SHORT: Final = "short"  # 0-7 days to expiry
INTERMEDIATE: Final = "intermediate"  # 15-45 days
STRUCTURAL: Final = "structural"  # 60+ days
DEFAULT_LAYERS: Final[tuple[str, ...]] = (SHORT, INTERMEDIATE, STRUCTURAL)
LAYER_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"
MAX_LAYERS: Final = 6
_LAYER_NAME = re.compile(LAYER_NAME_PATTERN)


def is_layer_name(name: object) -> bool:
    """Whether ``name`` may name a layer (a policy declares which ones exist)."""
    return isinstance(name, str) and _LAYER_NAME.fullmatch(name) is not None


# ------------------------------------------------------------------------------- venues
# Where options can be bought, where perps can be traded, and the two venues that are not
# exchanges: the paper venue (fills against real books, no orders sent) and the on-chain
# venue (LP exits through the Safe's Roles modifier).
OptionVenue = Literal["deribit", "derive", "okx", "bybit", "binance", "panoptic", "paper"]
PerpVenue = Literal["hyperliquid", "binanceusdm", "bybit", "okx", "deribit", "dydx", "paper"]
OPTION_VENUES: Final[tuple[str, ...]] = get_args(OptionVenue)
PERP_VENUES: Final[tuple[str, ...]] = get_args(PerpVenue)
PAPER: Final = "paper"
ONCHAIN: Final = "onchain"
DERIBIT: Final = "deribit"  # also the DVOL / option-chain market-data source
# ccxt venues the market-data adapters read perp funding from (adapters/market/funding.py)
FundingVenue = Literal["binanceusdm", "bybit", "okx", "hyperliquid", "deribit"]
FUNDING_VENUES: Final[tuple[str, ...]] = get_args(FundingVenue)
VENUES: Final[tuple[str, ...]] = tuple(dict.fromkeys(
    (*OPTION_VENUES, *PERP_VENUES, *FUNDING_VENUES, ONCHAIN)))
# How the bot reaches a configured venue: through ccxt, the paper venue or on-chain.
VenueKind = Literal["ccxt", "paper", "onchain"]
VENUE_KINDS: Final[tuple[str, ...]] = get_args(VenueKind)

# ------------------------------------------------------------------------- option kinds


class OptionKind(StrEnum):
    PUT = "put"
    CALL = "call"


OptionKindName = Literal["put", "call"]
OPTION_KINDS: Final[tuple[str, ...]] = get_args(OptionKindName)

# ------------------------------------------------------------------------------ intents
# What decide() asks for, in the order an executor carries a batch out (exits first, new
# risk last).
IntentKind = Literal["exit_lp", "release_layer", "engage_layer", "close_option",
                     "roll_option", "open_option", "adjust_perp"]
INTENT_KINDS: Final[tuple[str, ...]] = get_args(IntentKind)
EXIT_LP: Final = "exit_lp"
RELEASE_LAYER: Final = "release_layer"
ENGAGE_LAYER: Final = "engage_layer"
CLOSE_OPTION: Final = "close_option"
ROLL_OPTION: Final = "roll_option"
OPEN_OPTION: Final = "open_option"
ADJUST_PERP: Final = "adjust_perp"

DepegAction = Literal["exit_lp", "alert_only"]
DEPEG_ACTIONS: Final[tuple[str, ...]] = get_args(DepegAction)

# ------------------------------------------------------------------------ override kinds
# kind -> the params it requires (bot/governance.py checks them, policies/overrides.py
# applies them).
OVERRIDE_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "pause_layer": ("layer",),
    "resume_layer": ("layer",),
    "close_protection_early": ("layer",),
    "change_cap": ("cap", "value"),
    "disable_hedging": (),
    "emergency_exit": (),
    "pause_new_risk": (),
    "add_protection": ("layer",),
}
OVERRIDE_KINDS: Final[tuple[str, ...]] = tuple(OVERRIDE_PARAMS)
# Tightening: more protection or less risk; everything else is loosening.
TIGHTENING_KINDS: Final[frozenset[str]] = frozenset({"pause_new_risk", "emergency_exit",
                                                     "add_protection"})

__all__ = [
    "ADJUST_PERP",
    "CLOSE_OPTION",
    "DEFAULT_LAYERS",
    "DEPEG",
    "DEPEG_ACTIONS",
    "DERIBIT",
    "ENGAGE_LAYER",
    "EXIT_LP",
    "FUNDING",
    "FUNDING_VENUES",
    "INTENT_KINDS",
    "INTERMEDIATE",
    "IV_PERCENTILE",
    "LAYER_NAME_PATTERN",
    "LEVEL_NAMES",
    "MAX_LAYERS",
    "ONCHAIN",
    "OPEN_OPTION",
    "OPTION_KINDS",
    "OPTION_VENUES",
    "OVERRIDE_KINDS",
    "OVERRIDE_PARAMS",
    "PAPER",
    "PERP_VENUES",
    "PRIMARY_SIGNALS",
    "RELEASE_LAYER",
    "ROLL_OPTION",
    "RSI_MACD",
    "SECONDARY_SIGNALS",
    "SHORT",
    "SIGNAL_NAMES",
    "STRUCTURAL",
    "TERM_STRUCTURE",
    "TIGHTENING_KINDS",
    "TVL_DROP",
    "VENUES",
    "VENUE_KINDS",
    "DepegAction",
    "FundingVenue",
    "IntentKind",
    "LevelName",
    "OptionKind",
    "OptionKindName",
    "OptionVenue",
    "PerpVenue",
    "SignalName",
    "TriggerLevel",
    "VenueKind",
    "is_layer_name",
]


# ------------------------------------------------------------------ how traders quote a pair
# policies/quote.py orients a pool's pair with these lists: a stablecoin is the quote (USD
# at face value, the source named "<symbol> leg"), then ETH, then BTC; the base is the other.
STABLECOINS: Final = frozenset({
    "USDC", "USDC.E", "USDBC", "USDT", "DAI", "USDS", "FRAX", "LUSD", "PYUSD", "GHO",
    "CRVUSD", "TUSD", "BUSD", "USDE", "USDP", "GUSD", "SUSD",
})
# wrapped token -> the asset traders name it by (WETH/USDC is quoted ETH/USDC)
WRAPPED: Final = {"WETH": "ETH", "WBTC": "BTC", "CBBTC": "BTC", "TBTC": "BTC",
                  "WMATIC": "MATIC", "WPOL": "POL", "WAVAX": "AVAX", "WBNB": "BNB"}
# quote preference among volatile assets (higher quotes lower): WBTC/WETH is BTC/ETH
QUOTE_RANK: Final = {"ETH": 2, "BTC": 1}
