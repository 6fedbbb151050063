"""Settings from the environment and .env (prefix LPHEDGE_), documented in .env.example.

Secrets (keys) are never settings values: settings hold the *path* of a key file or
the *name* of the env variable that holds it.
"""

from __future__ import annotations

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
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be > 0")
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
