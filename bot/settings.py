"""The one settings tree of lphedge (pydantic-settings), documented in .env.example and
examples/lphedge.toml.

Sources, highest first:

1. values given to ``load_settings(**values)`` (CLI options);
2. the environment: prefix ``LPHEDGE_``, nesting with ``__`` (``LPHEDGE_MARKET__TIMEOUT_S``,
   ``LPHEDGE_DB__URL``); lists and tables as JSON (``LPHEDGE_CHAINS='[{"name": ...}]'``);
3. ``.env`` in the working directory, same names;
4. one TOML file: ``--config FILE`` or ``LPHEDGE_CONFIG`` (pydantic-settings'
   TomlConfigSettingsSource; an unknown top-level key is refused, naming it);
5. defaults.

The flat variables of earlier versions still work and set the first chain and the db:
LPHEDGE_RPC_URLS (comma-separated), LPHEDGE_CHAIN_ID, LPHEDGE_RPC_TIMEOUT,
LPHEDGE_RPC_RATE_LIMIT, LPHEDGE_MULTICALL_ADDRESS, LPHEDGE_MULTICALL_CHUNK, LPHEDGE_OWNER,
LPHEDGE_POSITION_MANAGER, DATABASE_URL (or LPHEDGE_DATABASE_URL) and LPHEDGE_DB_PATH. They
sit between .env and the TOML file; a nested value (``LPHEDGE_CHAINS``, ``LPHEDGE_DB__URL``)
from the environment or .env beats them.

Secrets (keys) are never settings values: a venue or alert sink names the env variable
that holds its key, or the path of a key file, and nothing here reads either. RPC URLs may
carry a provider key in their path; they are redacted (adapters/redact.py) wherever shown.

A bad value is one InvalidInput line naming the field path and where it came from, e.g.
``config lphedge.toml: market.books[0]: unknown venue 'nope'`` or
``setting chains[0].timeout (LPHEDGE_RPC_TIMEOUT) must be a number of seconds in (0, 3600], got nan``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
    with_config,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from bot.errors import UserError
from bot.settings_sources import (
    LEGACY_KEY,
    LOAD,
    LegacyFlatEnv,
    Load,
    Recorder,
    TomlFile,
    current_load,
    describe,
    dotenv_vars,
    leaves,
    origin,
)
from policies.vocab import FUNDING_VENUES, VenueKind

# Multicall3's deterministic address (the same on most chains). Written out rather than
# imported from adapters.evm.multicall, which pulls in web3 (~1 s) for every command that
# reads a setting; tests/bot/test_settings.py checks that the two agree.
MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"
DEFAULT_FUNDING_VENUES = FUNDING_VENUES


# ------------------------------------------------------------------------------ field checks
# Each raises ValueError with a message that reads after the field path: "must ..." and
# "misses ..." and "'<value>' ..." follow it with a space, anything else with ": " (see _describe).
def _address(v: Any) -> str:
    from policies.address import address_problem  # the one address parser (EIP-55 for mixed case)

    problem = address_problem(v)
    if problem is not None:
        raise ValueError(problem)
    return str(v)


def _optional_address(v: Any) -> str:
    return "" if v == "" else _address(v)


def _non_empty(v: Any) -> Any:
    if not isinstance(v, str) or not v:
        raise ValueError("must be a non-empty string")
    return v


def _strict(typ: type) -> Any:
    """TOML and JSON give typed values: the wrong type is refused, never coerced."""

    def check(v: Any) -> Any:
        if type(v) is not typ:
            raise ValueError(f"must be {typ.__name__}, got {v!r}")
        return v

    return check


def _positive_seconds(v: int) -> int:
    if v <= 0:
        raise ValueError("must be > 0 seconds")
    return v


def _positive_finite(v: float) -> float:
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"must be > 0 and finite, got {v}")
    return v


def _rpc_timeout(v: float) -> float:
    # nan passes "v <= 0" and inf never times out: both refused by name
    if not math.isfinite(v) or not 0 < v <= 3600:
        raise ValueError(f"must be a number of seconds in (0, 3600], got {v}")
    return v


def _rpc_rate(v: int) -> int:
    if not 1 <= v <= 100_000:
        raise ValueError(f"must be requests per second in [1, 100000], got {v}")
    return v


def _chunk(v: int) -> int:
    if not 1 <= v <= 10_000:
        raise ValueError(f"must be calls per Multicall3 batch in [1, 10000], got {v}")
    return v


def _source_rate(v: int) -> int:
    if v < 1:
        raise ValueError("must be >= 1 (requests per second per source)")
    return v


def _port(v: int) -> int:
    if not 1 <= v <= 65535:
        raise ValueError(f"must be a TCP port in [1, 65535], got {v}")
    return v


def _rpc_url(v: Any) -> str:
    if not isinstance(v, str) or not v.startswith(("http://", "https://")):
        from adapters.redact import redact_urls

        raise ValueError(f"must be an http(s) URL, got {redact_urls(str(v))!r}")
    return v


def _http_url(v: Any) -> str:
    """A venue or API base URL (the same check as an RPC URL's)."""
    return _rpc_url(v)


# sqlalchemy.engine.make_url's own pattern for the scheme (importing sqlalchemy here would
# cost every command ~0.3 s); the value is not echoed: a database URL may carry a password
_DB_URL = re.compile(r"^[\w+]+://")


def _db_url(v: Any) -> str:
    if not isinstance(v, str) or not _DB_URL.match(v):
        raise ValueError("must be a SQLAlchemy URL (dialect[+driver]://..., e.g. sqlite:///lphedge.db)")
    return v


def _env_name(v: str) -> str:
    # the NAME of a variable; upper case keeps a pasted key (mixed case) from passing, and
    # the value is not echoed in case it is one
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", v):
        raise ValueError("must be the NAME of an environment variable (A-Z, 0-9, _), "
                         "never the key itself")
    return v


def _ccxt_venue(v: str) -> str:
    import ccxt

    if v not in ccxt.exchanges:
        raise ValueError(f"unknown venue {v!r}")
    return v


def _funding_venue(v: str) -> str:
    _ccxt_venue(v)
    if v not in FUNDING_VENUES:  # the vocabulary (adapters/market/funding.py's tables match it)
        raise ValueError(f"funding venue {v!r} is not supported "
                         f"(one of {', '.join(FUNDING_VENUES)})")
    return v


Address = Annotated[str, BeforeValidator(_address)]
OptAddress = Annotated[str, BeforeValidator(_optional_address)]  # "" = not configured
NonEmpty = Annotated[str, BeforeValidator(_non_empty)]
StrictBool = Annotated[bool, BeforeValidator(_strict(bool))]
Heartbeat = Annotated[int, AfterValidator(_positive_seconds), BeforeValidator(_strict(int))]
EnvName = Annotated[str, AfterValidator(_env_name)]
RpcUrl = Annotated[str, BeforeValidator(_rpc_url)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------ chains
class ChainSettings(_Section):
    """One chain: where to read it and what is watched on it."""

    name: NonEmpty = "default"
    chain_id: Annotated[int, Field(gt=0)] | None = None  # refuse an RPC serving another chain
    rpc_urls: list[RpcUrl] = []  # tried in order; a transport failure moves to the next
    timeout: Annotated[float, AfterValidator(_rpc_timeout)] = 10.0  # seconds per request
    rate_limit: Annotated[int, AfterValidator(_rpc_rate)] = 50  # requests/s per URL
    multicall_address: Address = MULTICALL3_ADDRESS
    multicall_chunk: Annotated[int, AfterValidator(_chunk)] = 500  # calls per eth_call
    position_manager: OptAddress = ""  # Uniswap v3 NonfungiblePositionManager
    swap_router: OptAddress = ""
    owner: OptAddress = ""  # the watched Safe that holds the positions
    # governance reads (issue 9): pinned to one block no older than this (seconds, by the
    # local clock) and, with 2+ URLs, at most this many blocks behind every other URL
    max_block_age: Annotated[float, Field(gt=0)] = 300.0
    max_block_lag: Annotated[int, Field(ge=0)] = 2
    # on-chain transactions (issue 11, bot/tx_journal.py): a confirmed transaction is
    # re-checked by block hash until it is this many blocks deep (a reorg is detected)
    reorg_depth: Annotated[int, Field(ge=1, le=10_000)] = 12


# ------------------------------------------------------------------------------ db
class DbSettings(_Section):
    url: Annotated[str, AfterValidator(_db_url)] = "sqlite:///lphedge.db"  # any SQLAlchemy URL


# ------------------------------------------------------------------------------ market
@with_config(ConfigDict(extra="forbid"))
class Feed(TypedDict):
    """A Chainlink USD feed of a stable asset (depeg)."""

    asset: NonEmpty
    label: NonEmpty
    address: Address
    heartbeat: NotRequired[Heartbeat]  # staleness bound, seconds (default 86400)


@with_config(ConfigDict(extra="forbid"))
class StablePool(TypedDict):
    """A Uniswap v3 stable pool's price of `asset` (depeg)."""

    asset: NonEmpty
    label: NonEmpty
    address: Address
    asset_is_token0: NotRequired[StrictBool]


@with_config(ConfigDict(extra="forbid"))
class Book(TypedDict):
    """A CEX order book quoting a stable asset (depeg); invert for quote/asset books."""

    asset: NonEmpty
    venue: NonEmpty
    symbol: NonEmpty
    invert: NotRequired[StrictBool]


def _book_venue(b: Book) -> Book:
    _ccxt_venue(b["venue"])
    return b


@with_config(ConfigDict(extra="forbid"))
class TvlPool(TypedDict):
    """A pool whose TVL (balances x Chainlink USD prices of its tokens) is watched."""

    label: NonEmpty
    address: Address
    feed0: Address
    feed1: Address
    heartbeat0: NotRequired[Heartbeat]
    heartbeat1: NotRequired[Heartbeat]


class MarketSettings(_Section):
    """What `lphedge signals` (and the daemon's observe step) reads; docs/signals.md."""

    underlyings: list[NonEmpty] = ["ETH"]
    funding_venues: list[Annotated[str, AfterValidator(_funding_venue)]] = list(DEFAULT_FUNDING_VENUES)
    api_urls: dict[str, Annotated[str, AfterValidator(_http_url)]] = {}  # venue -> base URL override
    timeout_s: Annotated[float, AfterValidator(_positive_finite)] = 10.0
    rate_limit: Annotated[int, AfterValidator(_source_rate)] = 5  # requests/s per source
    deribit: bool = True
    defillama_url: Annotated[str, AfterValidator(_http_url)] = "https://api.llama.fi"
    defillama_slugs: list[NonEmpty] = []
    chain: str | None = None  # the [[chains]] entry for on-chain readings (default: first)
    feeds: list[Feed] = []
    pools: list[StablePool] = []
    books: list[Annotated[Book, AfterValidator(_book_venue)]] = []
    tvl_pools: list[TvlPool] = []
    _rpc_chain: ChainSettings | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _selects_something(self) -> MarketSettings:
        """An empty selection is an error, never an empty answer with exit 0."""
        if not self.underlyings and not (self.defillama_slugs or self.feeds or self.pools
                                         or self.books or self.tvl_pools):
            raise ValueError("underlyings is empty and no feeds, pools, books, tvl_pools or "
                             "defillama_slugs are given: nothing to watch")
        return self

    @property
    def rpc_chain(self) -> ChainSettings:
        """The chain the on-chain readings (feeds, pools, tvl_pools) use."""
        if self._rpc_chain is None:
            raise RuntimeError("market settings not resolved against a chain list")
        return self._rpc_chain


# ------------------------------------------------------------------------------ venues
class VenueSettings(_Section):
    """A trading venue. Its key is the NAME of an env variable or a key file PATH."""

    kind: VenueKind = "ccxt"  # policies/vocab.py
    exchange: str | None = None  # ccxt id; default: the venue's own name
    api_url: str | None = None
    testnet: bool = False
    api_key_env: EnvName | None = None
    api_key_file: Path | None = None
    api_secret_env: EnvName | None = None
    api_secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_source_each(self) -> VenueSettings:
        for what in ("api_key", "api_secret"):
            if getattr(self, f"{what}_env") and getattr(self, f"{what}_file"):
                raise ValueError(f"give {what}_env or {what}_file, not both")
        return self


# ------------------------------------------------------------------------------ alerts
class AlertSink(_Section):
    """A notification sink (placeholder until the alerts issue): webhook URLs carry their
    token, so they too come from a named env variable or a file."""

    kind: Literal["slack", "discord", "telegram", "hmac_json", "apprise"]
    url_env: EnvName | None = None
    url_file: Path | None = None
    secret_env: EnvName | None = None  # HMAC key (hmac_json) or bot token (telegram)
    secret_file: Path | None = None
    min_level: Literal["info", "warning", "critical"] = "warning"


class AlertsSettings(_Section):
    sinks: list[AlertSink] = []


# ------------------------------------------------------------------------------ api, daemon
class ApiSettings(_Section):
    host: str = "127.0.0.1"  # loopback unless you put a proxy in front
    port: Annotated[int, AfterValidator(_port)] = 8787
    token_file: Path | None = None  # bearer token for everything but /health


class DaemonSettings(_Section):
    tick_interval_s: Annotated[float, AfterValidator(_positive_finite)] = 60.0
    policy_file: Path | None = None  # the approved policy the daemon runs


# ------------------------------------------------------------------------------ the tree
class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LPHEDGE_", env_nested_delimiter="__", env_file=".env",
        env_file_encoding="utf-8", extra="ignore",
    )

    chains: Annotated[list[ChainSettings], Field(min_length=1)] = [ChainSettings()]
    db: DbSettings = DbSettings()
    market: MarketSettings = MarketSettings()
    venues: dict[str, VenueSettings] = {}
    alerts: AlertsSettings = AlertsSettings()
    api: ApiSettings = ApiSettings()
    daemon: DaemonSettings = DaemonSettings()

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        load = current_load()
        sources: list[PydanticBaseSettingsSource] = [
            init_settings, env_settings, dotenv_settings, LegacyFlatEnv(settings_cls)]
        if load.config is not None:
            sources.append(TomlFile(settings_cls, load.config, load.label))
        sources.append(Recorder(settings_cls))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _merge_legacy(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        legacy = data.pop(LEGACY_KEY, None)
        if legacy and legacy["chain"] and isinstance(data.get("chains", []), list):
            chains = list(data.get("chains") or [{}])
            if isinstance(chains[0], dict):
                chains[0] = {**chains[0], **legacy["chain"]}
            data["chains"] = chains
        if legacy and legacy["db"]:
            db = data.get("db")
            data["db"] = {**(db if isinstance(db, dict) else {}), **legacy["db"]}
        # checked on the raw data, before the fields: the missing chain is the first thing
        # to say about a config with feeds and no RPC
        market = data.get("market")
        if isinstance(market, dict) and any(market.get(k) for k in ("feeds", "pools", "tvl_pools")):
            chains = data.get("chains") or [{}]
            if isinstance(chains, list):
                named = [c for c in chains if _get(c, "name", "default") == market.get("chain")]
                chain = (named or chains)[0]
                if not _get(chain, "rpc_urls", None):
                    raise ValueError("market.feeds/pools/tvl_pools need rpc_urls on their "
                                     "chain ([[chains]] rpc_urls or LPHEDGE_RPC_URLS)")
        return data

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        names = [c.name for c in self.chains]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"chains: name {dup[0]!r} is used twice")
        wanted = self.market.chain
        if wanted is not None and wanted not in names:
            raise ValueError(f"market.chain {wanted!r} names no [[chains]] entry "
                             f"(have {', '.join(names)})")
        self.market._rpc_chain = self.chain_named(wanted) if wanted else self.chains[0]
        return self

    # ---------------------------------------------------------------- accessors
    def chain_named(self, name: str) -> ChainSettings:
        for c in self.chains:
            if c.name == name:
                return c
        raise UserError(f"no chain named {name!r} in the settings "
                        f"(have {', '.join(c.name for c in self.chains)})")

    @property
    def chain(self) -> ChainSettings:
        """The default chain: the first of [[chains]] (where the flat variables land)."""
        return self.chains[0]

    @property
    def rpc_url_list(self) -> list[str]:
        return list(self.chain.rpc_urls)

    @property
    def chain_id(self) -> int | None:
        return self.chain.chain_id

    @property
    def rpc_timeout(self) -> float:
        return self.chain.timeout

    @property
    def rpc_rate_limit(self) -> int:
        return self.chain.rate_limit

    @property
    def multicall_address(self) -> str:
        return self.chain.multicall_address

    @property
    def multicall_chunk(self) -> int:
        return self.chain.multicall_chunk

    @property
    def owner(self) -> str:
        return self.chain.owner

    @property
    def position_manager(self) -> str:
        return self.chain.position_manager

    @property
    def sqlalchemy_url(self) -> str:
        return self.db.url

    @property
    def origins(self) -> dict[str, str]:
        """Where each value that is not a default came from: dotted path (list items by
        index, e.g. ``chains.0.rpc_urls``) -> "LPHEDGE_RPC_URLS", "<file>", ".env", ..."""
        return dict(self._origins)


def _get(obj: Any, key: str, default: Any) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def load_settings(config: str | Path | None = None, *, label: str = "config",
                  **values: Any) -> Settings:
    """The settings from every source (module docstring); `config` is the TOML file
    (default: LPHEDGE_CONFIG), `values` the CLI options (highest); `label` names the file
    in messages. Bad input: one UserError line naming the field path."""
    from pydantic_settings import SettingsError

    path = config or os.environ.get("LPHEDGE_CONFIG") or dotenv_vars().get("LPHEDGE_CONFIG")
    load = Load(label=label)
    if path:
        load.config = Path(path)
        if not load.config.exists():
            raise UserError(f"{label} {path} does not exist")
        if not load.config.is_file():
            raise UserError(f"{label} {path} is not a file")
    token = LOAD.set(load)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise UserError(describe(exc, load)) from None
    except SettingsError as exc:  # e.g. LPHEDGE_CHAINS is not JSON; names the field only
        raise UserError(f"settings: {' '.join(str(exc).split())}") from None
    finally:
        LOAD.reset(token)
    dump = settings.model_dump(mode="json")
    for leaf in leaves(dump):
        got = origin(load, leaf, exact=True)
        if got is not None:
            settings._origins[".".join(str(p) for p in leaf)] = got[1]
    return settings
