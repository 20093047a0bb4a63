"""The services a web request works with, built once per process by the composition root
(``composition/web.py``) and put on the app's state: one typed object, read by the API's
routes and the dashboard's pages alike."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import Request

from hookline.db import Pool
from hookline.doorbell import Doorbell
from hookline.group_commit import GroupCommit
from hookline.metrics import Metrics
from hookline.rates import IngestRates
from hookline.settings import Settings
from hookline.vault import Vault


@dataclass(frozen=True)
class Services:
    settings: Settings
    pool: Pool
    redis: Redis
    doorbell: Doorbell
    metrics: Metrics
    rates: IngestRates
    vault: Vault
    ingest: GroupCommit


def services(request: Request) -> Services:
    """The services of the app serving ``request``."""
    found: Services = request.app.state.services
    return found
