"""Dashboard pages (HTML, not in the OpenAPI): one router per area, all under /dashboard."""

from __future__ import annotations

from fastapi import APIRouter

from gridhive.dashboard import auth_pages, event_pages, oem_pages, utility_pages

router = APIRouter(include_in_schema=False)
router.include_router(auth_pages.router)
router.include_router(utility_pages.router)
router.include_router(event_pages.router)
router.include_router(oem_pages.router)
