"""Settings, read from `GRIDHIVE_*` environment variables (nested groups use `__`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, model_validator
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


class WebhookSettings(BaseModel):
    # False in production: refuse endpoint URLs that resolve to private, loopback or link-local
    # addresses (at registration and again at each connection). True lets a single-machine
    # install and the simulator deliver to 127.0.0.1.
    allow_private: bool = True
    timeout_s: float = 5.0


class WorkerSettings(BaseModel):
    # `gridhive serve` runs the delivery loop in its own process unless --no-workers.
    in_process: bool = True
    concurrency: int = Field(default=64, ge=1)  # deliveries in flight per process
    lease_s: int = Field(default=60, ge=5)
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Webhook order: "subject" keeps each device's (or site's) messages in order and sends
    # different devices' in parallel; "endpoint" sends an endpoint's messages one at a time,
    # strictly in emission order (about one round trip per message per endpoint).
    ordering: Literal["subject", "endpoint"] = "subject"
    # Requests in flight per endpoint (all workers together), so that a burst of commands
    # does not open more connections to a device maker than this.
    endpoint_window: int = Field(default=64, ge=1, le=1024)
    retry_jitter: float = Field(default=0.1, ge=0, le=0.5)
    suspend_after_s: int = 24 * 3600


class SchedulerSettings(BaseModel):
    """The durable scheduler: timed webhooks, ack deadlines and periodic jobs."""

    poll_interval_s: float = Field(default=1.0, gt=0)
    # Longer than any handler runs (an event tick over 100,000 commands takes seconds): a job
    # whose lease runs out is run again by another worker.
    lease_s: int = Field(default=300, ge=5)
    batch_size: int = Field(default=16, ge=1)  # jobs claimed at once by one scheduler
    retry_jitter: float = Field(default=0.1, ge=0, le=0.5)
    # A command still PENDING this long after it was delivered is sent again (system.md §5).
    ack_deadline_s: int = Field(default=900, ge=1)
    max_resends: int = Field(default=3, ge=0)
    ack_sweep_interval_s: int = Field(default=60, ge=1)
    telemetry_publish_interval_s: int = Field(default=300, ge=1)
    prune_interval_s: int = Field(default=86_400, ge=1)
    # Finished scheduled jobs are kept this long (for inspection), then deleted by the prune.
    job_retention_days: int = Field(default=7, ge=1)


class TelemetrySettings(BaseModel):
    # Interval rows older than this are deleted by `gridhive telemetry prune`: 400 days keeps a
    # full year for baselines and year-on-year reports, plus a month of slack.
    retention_days: int = Field(default=400, ge=1)
    prune_batch_size: int = Field(default=10_000, ge=1)


class MqttSettings(BaseModel):
    url: str | None = None  # mqtt://[user:password@]host[:port], mqtts:// for TLS
    publish_timeout_s: float = 5.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRIDHIVE_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = DEFAULT_DATABASE_URL
    # Connections each process keeps open; see db.engine.create_engine for the sizing.
    database_pool_size: int = Field(default=20, ge=1)
    run_migrations_on_start: bool = True
    log_json: bool = True
    log_level: str = "INFO"
    public_base_url: str = Field(default="http://127.0.0.1:8000")
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()
    webhooks: WebhookSettings = WebhookSettings()
    worker: WorkerSettings = WorkerSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    mqtt: MqttSettings = MqttSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    # GRIDHIVE_WEBHOOK_ALLOW_PRIVATE, the spelling of the system description, sets the same.
    webhook_allow_private: bool | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _legacy_allow_private(self) -> Settings:
        if self.webhook_allow_private is not None:
            self.webhooks.allow_private = self.webhook_allow_private
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
