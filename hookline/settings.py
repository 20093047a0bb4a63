"""Settings: one frozen, typed object read from ``HOOKLINE_*`` environment variables.

Nothing reads the environment except :func:`load_settings`; everything else is handed a
:class:`Settings`. A missing or invalid variable raises :class:`SettingsError` whose message
names the variable, so a process stops at start with something a person can act on.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENV_PREFIX = "HOOKLINE_"


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the environment variable."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]
CsvFloats = Annotated[list[float], NoDecode, BeforeValidator(_split_csv)]


# Shortest and longest retention, seconds, the installation's or a tenant's: an hour to
# ten years.
RETENTION_RANGE = (3600, 3650 * 86400)
# Seconds the per-minute delivery rollups are kept before they are folded into hourly ones
# (hookline/retention.py): the dashboard's 7-day charts stay exact.
MINUTE_ROLLUPS_KEPT = 35 * 86400


class Settings(BaseSettings):
    """Every knob of hookline, each with its default and why."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # postgresql://user@host:port/db; required by every command but `dev`, which starts an
    # embedded Postgres when it is unset.
    database_url: str | None = None
    # redis://host:port/db; wakes workers only, never holds state that matters.
    redis_url: str | None = None
    # Signs thin-payload fetch links and dashboard sessions. `dev` makes one per data folder.
    secret_key: str | None = Field(default=None, min_length=32)
    # Base URL that subscribers use to reach this server (fetch links, portal links).
    public_url: str = "http://127.0.0.1:8000"
    # Private networks outbound requests may reach; empty means public addresses only.
    allowed_target_networks: CsvList = Field(default_factory=list)
    # Seconds between attempts after the first one (+-20% jitter); one retry per entry.
    retry_schedule: CsvFloats = Field(
        default_factory=lambda: [
            5.0,
            300.0,
            1800.0,
            7200.0,
            18000.0,
            36000.0,
            50400.0,
            72000.0,
            86400.0,
        ]
    )
    # How long an endpoint may fail without a single success before hookline disables it,
    # seconds (5 days, as Svix); warnings go out at half and at 90% of it. A tenant or an
    # endpoint may set its own.
    endpoint_disable_after: float = Field(default=5 * 86400.0, gt=0)
    # Longest wait a receiver's Retry-After (on 429/503) may ask for, seconds.
    retry_after_cap: float = Field(default=3600.0, gt=0)
    # Default total deadline of one attempt (connect + send + response body), seconds.
    delivery_timeout: float = Field(default=15.0, gt=0, le=30)
    # A PEM file of certificate authorities trusted for HTTPS deliveries besides the
    # system's (a private CA of internal receivers). Certificates are always verified.
    tls_ca_file: Path | None = None
    # Response bytes kept and read at most; a larger body is cut off, not waited for.
    response_max_bytes: int = Field(default=64 * 1024, ge=1024)
    # How long a claimed lane stays leased beyond the attempt deadline before another
    # worker may take it over (a worker that died mid-request).
    lease_margin: float = Field(default=10.0, gt=0)
    # Most requests one worker process keeps in flight at once.
    worker_concurrency: int = Field(default=256, ge=1)
    # Lanes claimed per round trip to Postgres.
    claim_batch: int = Field(default=100, ge=1)
    # Deliveries of one lane sent back to back under one lease (in order, stopping at the
    # first failure): spares a strict endpoint a claim and a record per event.
    lane_batch: int = Field(default=20, ge=1, le=1000)
    # Longest a worker sleeps without looking at Postgres for due work (the sweeper
    # interval): covers a lost wake-up, a flushed Redis, a dead peer's leases.
    sweep_interval: float = Field(default=1.0, gt=0)
    # Prefix of Redis keys and channels, so several installations can share one Redis.
    namespace: str = Field(default="hookline", pattern=r"^[A-Za-z0-9_.:-]+$")
    # Deliveries a replay queues per second unless it asks for another rate (at most
    # 1000): slow enough that a large replay leaves room for live deliveries.
    replay_rate: int = Field(default=50, ge=1, le=1000)
    # Seconds an event is kept once every one of its deliveries is finished (succeeded,
    # failed or cancelled), with its deliveries, attempts and link fetches; a tenant may
    # set its own (PATCH /v1/settings). Nothing pending or retrying is ever removed.
    retention: int = Field(default=30 * 86400, ge=RETENTION_RANGE[0], le=RETENTION_RANGE[1])
    # Seconds between purge passes (one worker at a time runs them; hookline/retention.py).
    # 0: workers never purge (run `hookline purge` from a scheduler of your own instead).
    purge_interval: float = Field(default=300.0, ge=0)
    # Seconds the hourly delivery rollups behind the dashboard's charts are kept (the
    # per-minute ones are folded into hours after MINUTE_ROLLUPS_KEPT).
    rollup_retention: int = Field(default=400 * 86400, ge=MINUTE_ROLLUPS_KEPT)
    # Lifetime of the signed link in thin payloads, seconds.
    fetch_link_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    # Events a tenant may ingest per second (single and batch together), counted across
    # API processes in Redis; past it, 429 with Retry-After. 0: no limit.
    ingest_rate_limit: int = Field(default=10_000, ge=0)
    # After a secret rotation, how long the replaced secrets keep signing beside the new one,
    # seconds: long enough for a subscriber to deploy the new secret (Svix also uses 24h).
    secret_rotation_grace: int = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)
    # Lifetime of a subscriber portal magic link, seconds. Short because whoever holds the
    # link can start a session as that subscriber; it is single use either way.
    portal_link_ttl: int = Field(default=15 * 60, ge=60, le=7 * 24 * 3600)
    # When set, GET /metrics wants it as `Authorization: Bearer <token>`.
    metrics_token: str | None = None
    # Where `hookline worker` serves its own /metrics (0: not at all). The API's /metrics
    # has the ingest side and the database gauges.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Connections in each process's Postgres pool.
    db_pool_size: int = Field(default=10, ge=2)
    # Longest one statement of a migration's transaction may run, seconds (0: no limit);
    # index builds on big tables run outside it, without a limit (hookline/migrations.py).
    migration_statement_timeout: float = Field(default=600.0, ge=0)

    # -- the HTTP edge of `hookline serve` (what one client can hold of the server) --------
    # Connections one process keeps open at once. Past it, the connection that has waited
    # longest without sending a complete request head (a slowloris, an idle keep-alive) is
    # closed to make room; when every connection is busy with a request, the new one is.
    http_max_connections: int = Field(default=4096, ge=16)
    # Requests one process works on at once; past it, 503 with Retry-After.
    http_max_requests: int = Field(default=1024, ge=1)
    # Seconds a client has to send a whole request head (line and headers), from the
    # moment it connects or its previous response was sent.
    http_header_timeout: float = Field(default=10.0, gt=0, le=300)
    # Seconds a client has to send a whole request body once its head is in (a batch of
    # 16 MiB then needs 280 KB/s); a body trickled slower would hold a request slot.
    http_body_timeout: float = Field(default=60.0, gt=0, le=3600)
    # Seconds an idle keep-alive connection stays open between requests.
    http_keepalive_timeout: float = Field(default=5.0, gt=0, le=300)

    # -- fairness between tenants in the worker -------------------------------------------
    # The most of a worker's free slots one tenant may take: a tenant holds at most this
    # share of the slots other tenants leave it, so hanging receivers or a huge backlog of
    # one tenant always leave room for the next (0.5: two busy tenants settle at a third
    # of the slots each, and a third stays free for a newcomer).
    worker_tenant_share: float = Field(default=0.5, gt=0, le=1)

    # -- quotas: what one tenant may create (0: no limit) ---------------------------------
    tenant_max_endpoints: int = Field(default=10_000, ge=0)
    tenant_max_subscribers: int = Field(default=100_000, ge=0)
    tenant_max_event_types: int = Field(default=1_000, ge=0)
    # Deliveries one ingest request (a single event or a batch) may fan out to.
    tenant_max_fanout: int = Field(default=100_000, ge=0)
    # Deliveries a tenant's ingest may create per second, across API processes (fan-out
    # counted, not events); past it, 429 with Retry-After.
    tenant_delivery_rate: int = Field(default=50_000, ge=0)
    # Replays of one tenant queued or running at once.
    tenant_max_replays: int = Field(default=3, ge=0)

    # Earlier values of HOOKLINE_SECRET_KEY (comma-separated), still accepted to decrypt
    # stored secrets and to verify links and sessions made under them, until
    # `hookline secrets reencrypt` has moved everything to the current key.
    previous_secret_keys: CsvList = Field(default_factory=list)
    # GET /metrics without HOOKLINE_METRICS_TOKEN answers 401 unless this is true (for a
    # scraper on a private network that cannot send a token).
    metrics_public: bool = False

    @field_validator("allowed_target_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_file_loads(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=str(value))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load certificates from {value}: {exc}") from None
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_positive(cls, value: list[float]) -> list[float]:
        if any(step < 0 for step in value):
            raise ValueError("retry delays must be zero or more seconds")
        return value

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_target_networks)

    def require(self, *names: str) -> None:
        """Raise :class:`SettingsError` naming the first of ``names`` that is unset."""
        for name in names:
            if getattr(self, name) in (None, ""):
                raise SettingsError(
                    f"{ENV_PREFIX}{name.upper()} is not set; "
                    f"set it in the environment (see README, Configuration)"
                )


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``env`` (default: the process environment) plus ``overrides``."""
    try:
        if env is None:
            return Settings(**overrides)
        values: dict[str, Any] = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in env.items()
            if key.startswith(ENV_PREFIX)
        }
        values.update(overrides)
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
