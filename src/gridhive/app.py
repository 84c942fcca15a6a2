"""create_app(settings) -> FastAPI: the one ASGI application serving every door."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from gridhive import __version__
from gridhive.api import handlers
from gridhive.api.middleware import BodySizeLimit, RequestId
from gridhive.api.v1 import router as v1_router
from gridhive.commands.fast_ack import FastAck
from gridhive.config import Settings, get_settings
from gridhive.dashboard.router import router as dashboard_router
from gridhive.db import sqlite_big_write
from gridhive.db.engine import READ_ONLY_OPTION, create_engine
from gridhive.db.migrate import upgrade_with_engine
from gridhive.db.session import make_sessionmaker
from gridhive.portal.router import router as portal_router
from gridhive.telemetry.router import webhook_docs as telemetry_webhook_docs
from gridhive.web import errors as page_errors
from gridhive.web.templating import STATIC_DIR, STATIC_URL
from gridhive.workers import metrics
from gridhive.workers.runner import run_in_background

OPENAPI_TAGS = [
    {"name": "Cloud API", "description": "Server-to-server calls of a device maker's cloud."},
    {"name": "Mobile App API", "description": "Calls of the homeowner's app, with a site token."},
    {"name": "Utility API", "description": "Programs, enrollments, groups, events, telemetry."},
    {"name": "Admin", "description": "The platform operator: organisations, keys, programs."},
    {"name": "OAuth", "description": "Client-credentials access tokens."},
    {"name": "Webhooks", "description": "Webhook endpoints, delivery log, delivery mode."},
    {"name": "Operations", "description": "Health, readiness and metrics."},
]


class GridhiveAPI(FastAPI):
    """FastAPI with the acknowledgement's fast lane (`commands.fast_ack`) in front of its whole
    middleware stack: the lane answers the common ack without any of it, and hands the rest to
    the stack as it came."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front = FastAck(super().__call__, self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)


def create_app(settings: Settings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        db_engine = engine or create_engine(
            settings.database_url, pool_size=settings.database_pool_size
        )
        if own_engine and settings.run_migrations_on_start:
            await upgrade_with_engine(db_engine)
        app.state.engine = db_engine
        app.state.sessionmaker = make_sessionmaker(db_engine)
        # Everything loaded at start-up lives as long as the process: keep it out of the
        # collector's scans (measured: about a quarter less CPU per telemetry batch).
        gc.freeze()
        try:
            async with run_in_background(app.state.sessionmaker, settings):
                yield
        finally:
            await sqlite_big_write.settle(db_engine)  # a checkpoint under way ends cleanly
            if own_engine:
                await db_engine.dispose()

    app = GridhiveAPI(
        title="gridhive",
        version=__version__,
        description=(
            "A virtual power plant and demand-response platform speaking the Flip Energy APIs. "
            "Errors always carry `{code, message, status_code, errors, detail}`."
        ),
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    if engine is not None:
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
    handlers.install(app)
    page_errors.install(app)
    app.include_router(v1_router)
    app.webhooks.include_router(telemetry_webhook_docs)
    app.include_router(portal_router)
    app.include_router(dashboard_router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    _add_health_routes(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(RequestId)
    return app


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["Operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/metrics", tags=["Operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: deliveries by state and type, queue depth and age, endpoints."""
        return await metrics.render(app.state.sessionmaker)

    @app.get("/readyz", tags=["Operations"], responses={503: {"description": "Database down"}})
    async def readyz() -> JSONResponse:
        """The database answers."""
        try:
            async with app.state.engine.connect() as connection:
                connection = await connection.execution_options(**{READ_ONLY_OPTION: True})
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready"
            return handlers.error_response(503, f"Database not reachable: {type(exc).__name__}")
        return JSONResponse({"status": "ready"})
