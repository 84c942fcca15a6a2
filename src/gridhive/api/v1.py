"""Every router of the service, in one place."""

from __future__ import annotations

from fastapi import APIRouter

from gridhive.auth.router import admin_router as auth_admin_router
from gridhive.auth.router import oauth_router
from gridhive.commands.router import mobile_router as commands_mobile_router
from gridhive.commands.router import router as commands_router
from gridhive.commands.router import utility_router as commands_utility_router
from gridhive.device_settings.router import cloud_router as device_settings_cloud_router
from gridhive.device_settings.router import mobile_router as device_settings_mobile_router
from gridhive.devices.router import router as devices_router
from gridhive.enrollments.router import cloud_router as enrollments_cloud_router
from gridhive.enrollments.router import mobile_router as enrollments_mobile_router
from gridhive.enrollments.router import utility_router as enrollments_utility_router
from gridhive.events.router import mobile_router as events_mobile_router
from gridhive.events.router import utility_router as events_utility_router
from gridhive.programs.router import admin_router as programs_admin_router
from gridhive.programs.router import cloud_router as programs_cloud_router
from gridhive.programs.router import utility_router as programs_utility_router
from gridhive.sites.router import cloud_router as sites_cloud_router
from gridhive.sites.router import mobile_router as sites_mobile_router
from gridhive.telemetry.router import cloud_router as telemetry_cloud_router
from gridhive.telemetry.router import utility_router as telemetry_utility_router
from gridhive.webhooks.router import router as webhooks_router

router = APIRouter()
router.include_router(oauth_router)
router.include_router(auth_admin_router)
router.include_router(programs_admin_router)
router.include_router(sites_cloud_router)
router.include_router(sites_mobile_router)
router.include_router(devices_router)
router.include_router(device_settings_mobile_router)
router.include_router(device_settings_cloud_router)
router.include_router(commands_router)
router.include_router(commands_mobile_router)
router.include_router(commands_utility_router)
router.include_router(programs_cloud_router)
router.include_router(enrollments_cloud_router)
router.include_router(enrollments_mobile_router)
router.include_router(enrollments_utility_router)
router.include_router(programs_utility_router)
router.include_router(events_utility_router)
router.include_router(events_mobile_router)
router.include_router(telemetry_cloud_router)
router.include_router(telemetry_utility_router)
router.include_router(webhooks_router)
