"""Settings from the environment and .env (prefix LPHEDGE_), documented in .env.example.

Secrets (keys) are never settings values: settings hold the *path* of a key file or
the *name* of the env variable that holds it.
"""

from __future__ import annotations

import math

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.evm.multicall import MULTICALL3_ADDRESS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LPHEDGE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # chain access
    rpc_urls: str = Field(default="", description="comma-separated RPC URLs, tried in order")
    chain_id: int | None = Field(default=None, description="refuse an RPC on another chain")
    rpc_timeout: float = 10.0
    rpc_rate_limit: int = 50
    multicall_address: str = MULTICALL3_ADDRESS
    multicall_chunk: int = 500

    # what is watched
    owner: str = ""
    position_manager: str = ""

    # storage: DATABASE_URL (any SQLAlchemy URL) wins over the SQLite path
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LPHEDGE_DATABASE_URL")
    )
    db_path: str = "lphedge.db"

    @field_validator("rpc_timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        # nan passes "v <= 0" and inf never times out: both refused by name
        if not math.isfinite(v) or not 0 < v <= 3600:
            raise ValueError(f"must be a number of seconds in (0, 3600], got {v}")
        return v

    @field_validator("rpc_rate_limit")
    @classmethod
    def _rate(cls, v: int) -> int:
        if not 1 <= v <= 100_000:
            raise ValueError(f"must be requests per second in [1, 100000], got {v}")
        return v

    @field_validator("multicall_chunk")
    @classmethod
    def _chunk(cls, v: int) -> int:
        if not 1 <= v <= 10_000:
            raise ValueError(f"must be calls per Multicall3 batch in [1, 10000], got {v}")
        return v

    @property
    def rpc_url_list(self) -> list[str]:
        return [u.strip() for u in self.rpc_urls.split(",") if u.strip()]

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.db_path}"


def load_settings() -> Settings:
    from pydantic import ValidationError

    from bot.errors import UserError

    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise UserError(f"setting LPHEDGE_{field.upper()}: {err['msg']}") from None
