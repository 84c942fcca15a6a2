"""Settings, read from `GRIDHIVE_*` environment variables (nested groups use `__`)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./gridhive.db"


class AuthSettings(BaseModel):
    site_token_ttl_s: int = 3600
    session_token_ttl_s: int = 3600
    oauth_token_ttl_s: int = 3600


class LimitSettings(BaseModel):
    # Telemetry batches of 1,000 full items are about 700 kB; 4 MiB leaves room without letting
    # a single request tie up a worker parsing garbage.
    max_body_bytes: int = 4 * 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRIDHIVE_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = 10
    run_migrations_on_start: bool = True
    log_json: bool = True
    log_level: str = "INFO"
    public_base_url: str = Field(default="http://127.0.0.1:8000")
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()


@lru_cache
def get_settings() -> Settings:
    return Settings()
