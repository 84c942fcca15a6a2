"""The Jinja2 environment of every page, and the static files served at /static."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from gridhive import __version__

_PACKAGE = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"
# Versioned vendor files: a new version gets a new URL, so browsers never run a stale copy.
VENDOR = {
    "htmx": f"{STATIC_URL}/vendor/htmx-2.0.11.min.js",
    "chart": f"{STATIC_URL}/vendor/chart-4.6.1.umd.min.js",
}


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return value.strftime(fmt) if value else "—"


def _kw(watts: float | int | None) -> str:
    return "—" if watts is None else f"{watts / 1000:,.1f} kW"


def _kwh(wh: float | int | None) -> str:
    return "—" if wh is None else f"{wh / 1000:,.1f} kWh"


def _environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(_PACKAGE / "web" / "templates"),
                FileSystemLoader(_PACKAGE / "portal" / "templates"),
                FileSystemLoader(_PACKAGE / "dashboard" / "templates"),
            ]
        ),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, kw=_kw, kwh=_kwh)
    env.globals.update(vendor=VENDOR, static=STATIC_URL, version=__version__)
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """Render a page (or an HTMX fragment) with `request` available to the template."""
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code)
