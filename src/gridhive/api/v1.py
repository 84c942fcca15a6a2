"""Every router of the service, in one place."""

from __future__ import annotations

from fastapi import APIRouter

from gridhive.auth.router import admin_router as auth_admin_router
from gridhive.auth.router import oauth_router
from gridhive.programs.router import admin_router as programs_admin_router

router = APIRouter()
router.include_router(oauth_router)
router.include_router(auth_admin_router)
router.include_router(programs_admin_router)
