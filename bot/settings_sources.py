"""How bot/settings.py's tree is read: the sources pydantic-settings does not ship (the
flat variables of earlier versions, the TOML file refusing unknown keys, a recorder of
what each source said) and what is made of the record: where each value came from
(``lphedge config check``) and one line naming the field path and source of a bad value.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

from bot.errors import UserError

__all__ = ["LEGACY_CHAIN_VARS", "LEGACY_DB_VARS", "LEGACY_KEY", "LOAD", "LegacyFlatEnv", "Load",
           "Recorder", "TomlFile", "current_load", "describe", "dotenv_vars", "leaves", "origin"]

LEGACY_KEY = "_legacy_flat_env"
# flat env variable -> field of the first chain
LEGACY_CHAIN_VARS = {
    "LPHEDGE_RPC_URLS": "rpc_urls",
    "LPHEDGE_CHAIN_ID": "chain_id",
    "LPHEDGE_RPC_TIMEOUT": "timeout",
    "LPHEDGE_RPC_RATE_LIMIT": "rate_limit",
    "LPHEDGE_MULTICALL_ADDRESS": "multicall_address",
    "LPHEDGE_MULTICALL_CHUNK": "multicall_chunk",
    "LPHEDGE_OWNER": "owner",
    "LPHEDGE_POSITION_MANAGER": "position_manager",
    "LPHEDGE_MAX_BLOCK_AGE": "max_block_age",
    "LPHEDGE_MAX_BLOCK_LAG": "max_block_lag",
    "LPHEDGE_REORG_DEPTH": "reorg_depth",
}
LEGACY_DB_VARS = ("DATABASE_URL", "LPHEDGE_DATABASE_URL", "LPHEDGE_DB_PATH")
# keys of the old `signals --config` file, for a hint when one is found at the top level
_OLD_SIGNALS_KEYS = {"rpc_url": "rpc_urls in [[chains]]", "database_url": "url in [db]"}


@dataclass
class Load:
    """What one load_settings call knows about its sources (ContextVar: the sources are
    built by a classmethod of pydantic-settings)."""

    config: Path | None = None
    label: str = "config"
    states: dict[str, dict[str, Any]] = field(default_factory=dict)


LOAD: ContextVar[Load | None] = ContextVar("lphedge_settings_load", default=None)


def current_load() -> Load:
    load = LOAD.get()
    return load if load is not None else Load()


def dotenv_vars() -> dict[str, str]:
    from dotenv import dotenv_values

    path = Path(".env")
    if not path.is_file():
        return {}
    return {k.upper(): v for k, v in dotenv_values(path, encoding="utf-8").items() if v}


class _NoFields(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False


class LegacyFlatEnv(_NoFields):
    """The flat variables of earlier versions (environment, then .env), for the first
    chain and the db. A nested value from a higher source wins; the values land on the
    merged data in bot.settings.Settings._merge_legacy (lists are not merged by pydantic-settings, so
    this source cannot simply return chains=[{...}])."""

    def __call__(self) -> dict[str, Any]:
        env = {k.upper(): v for k, v in os.environ.items() if v}
        dot = dotenv_vars()

        def pick(var: str) -> tuple[str, str] | None:
            if var in env:
                return env[var], var
            if var in dot:
                return dot[var], f"{var} in .env"
            return None

        higher = self.current_state
        chain: dict[str, Any] = {}
        db: dict[str, Any] = {}
        origins: dict[str, str] = {}
        if "chains" not in higher:
            for var, name in LEGACY_CHAIN_VARS.items():
                got = pick(var)
                if got is not None:
                    value, origins[f"chains.0.{name}"] = got
                    chain[name] = ([u.strip() for u in value.split(",") if u.strip()]
                                   if name == "rpc_urls" else value)
        given_db = higher.get("db")
        if not (isinstance(given_db, BaseModel) or (isinstance(given_db, dict) and "url" in given_db)):
            for var in LEGACY_DB_VARS:  # DATABASE_URL wins over the SQLite path
                got = pick(var)
                if got is not None:
                    value, origins["db.url"] = got
                    db["url"] = f"sqlite:///{value}" if var == "LPHEDGE_DB_PATH" else value
                    break
        if not chain and not db:
            return {}
        return {LEGACY_KEY: {"chain": chain, "db": db, "origins": origins}}


class TomlFile(TomlConfigSettingsSource):
    """The TOML config file; a syntax error or an unknown top-level key is refused naming
    the file (and the key)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path, label: str) -> None:
        self._label = label
        self._fields = settings_cls.model_fields  # _read_file runs inside super().__init__
        super().__init__(settings_cls, toml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        where = f"{self._label} {file_path}"
        try:
            data = tomllib.loads(Path(file_path).read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{where}: {exc}") from None
        except OSError as exc:
            raise UserError(f"{where}: {exc.strerror}") from None
        fields = self._fields
        unknown = sorted(set(data) - set(fields))
        if unknown:
            market = getattr(fields["market"].annotation, "model_fields", {})
            hints = [f"{k} is now {_OLD_SIGNALS_KEYS[k]}" if k in _OLD_SIGNALS_KEYS
                     else f"{k} belongs under [market]" for k in unknown
                     if k in _OLD_SIGNALS_KEYS or k in market]
            hint = f" ({'; '.join(hints)})" if hints else ""
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}{hint}")
        return data


class Recorder(_NoFields):
    """Lowest of our sources: keeps what every higher source said, for error messages
    naming where a bad value came from and for `lphedge config check`."""

    def __call__(self) -> dict[str, Any]:
        load = LOAD.get()
        if load is not None:
            load.states = dict(self.settings_sources_data)
        return {}



# ------------------------------------------------------------------------------ provenance
def _walk(state: Any, path: tuple[Any, ...]) -> int:
    """How many leading parts of `path` exist in `state` (a source's raw data)."""
    n = 0
    for part in path:
        in_dict = isinstance(state, dict) and part in state
        in_list = isinstance(state, list) and isinstance(part, int) and 0 <= part < len(state)
        if not (in_dict or in_list):
            break
        state = state[part]
        n += 1
    return n


def _env_var(path: tuple[Any, ...], names: set[str]) -> str:
    parts: list[str] = []
    for p in path:
        if not isinstance(p, str):
            break
        parts.append(p.upper())
    for n in range(len(parts), 0, -1):
        var = "LPHEDGE_" + "__".join(parts[:n])
        if var in names:
            return var
    return "LPHEDGE_" + "__".join(parts[:1]) if parts else "the environment"


def origin(load: Load, path: tuple[Any, ...], exact: bool) -> tuple[str, str] | None:
    """(kind, name) of the highest source that set `path`: kind is "init", "env",
    ".env" or "file". Not exact (errors): the source reaching deepest into the path."""
    dotted = ".".join(str(p) for p in path)
    best: tuple[int, tuple[str, str]] | None = None
    for name, state in load.states.items():
        if name == "LegacyFlatEnv":
            origins = state.get(LEGACY_KEY, {}).get("origins", {})
            hits = [k for k in origins if dotted == k or dotted.startswith(k + ".")]
            if hits:
                var = origins[hits[0]]
                kind = ".env" if var.endswith(" in .env") else "env"
                found = (len(hits[0].split(".")), (kind, var))
            else:
                continue
        else:
            depth = _walk(state, path)
            if depth == 0 or (exact and depth < len(path)):
                continue
            if name == "InitSettingsSource":
                found = (depth, ("init", "given"))
            elif name == "EnvSettingsSource":
                found = (depth, ("env", _env_var(path, {k.upper() for k in os.environ})))
            elif name == "DotEnvSettingsSource":
                found = (depth, (".env", _env_var(path, set(dotenv_vars())) + " in .env"))
            else:
                found = (depth, ("file", str(load.config)))
        if exact:
            return found[1]
        if best is None or found[0] > best[0]:
            best = found
    return best[1] if best else None


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaves(v, (*path, k))]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [p for i, v in enumerate(value) for p in leaves(v, (*path, i))]
    return [path]


def _where(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def describe(exc: ValidationError, load: Load) -> str:
    """One line for the first problem: field path, what is wrong, where it came from.
    Unknown and missing keys of one table are said together."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] in ("extra_forbidden", "missing"):
        parent = loc[:-1]
        keys = [str(e["loc"][-1]) for e in errors
                if e["type"] == first["type"] and tuple(e["loc"][:-1]) == parent]
        msg = (f"unknown key(s) {', '.join(keys)}" if first["type"] == "extra_forbidden"
               else f"misses {', '.join(keys)}")
        origin_loc, loc = loc, parent
    else:
        msg = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        origin_loc = loc
    where = _where(loc)
    sep = " " if msg.startswith(("must ", "misses ", "'")) else ": "
    src = origin(load, origin_loc, exact=False)
    if src is None and not loc and load.config is not None:
        src = ("file", str(load.config))
    if src is not None and src[0] == "file":
        return f"{load.label} {src[1]}: {where}{sep if where else ''}{msg}"
    head = f"setting {where}" if where else "settings"
    if src is not None and src[0] != "init":
        head += f" ({src[1]})"
    return f"{head}{sep}{msg}"
