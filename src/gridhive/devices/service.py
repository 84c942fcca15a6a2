"""Devices of a site: created directly or by commissioning, updated, deleted softly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.devices.errors import DeviceAlreadyExists, DeviceNotFound
from gridhive.devices.models import Device, DeviceType
from gridhive.devices.schemas import DeviceCreate, DeviceUpdate
from gridhive.errors import FieldError, Unprocessable
from gridhive.kit.pagination import Page
from gridhive.kit.time import utc_now
from gridhive.sites.models import Site


def _live(tenant_id: uuid.UUID) -> sa.Select[Device]:
    return sa.select(Device).where(Device.tenant_id == tenant_id, Device.deleted_at.is_(None))


async def get_device(session: AsyncSession, *, site: Site, device_id: str) -> Device | None:
    return await session.scalar(
        _live(site.tenant_id).where(Device.site_pk == site.pk, Device.id == device_id)
    )


async def get_device_or_raise(session: AsyncSession, *, site: Site, device_id: str) -> Device:
    device = await get_device(session, site=site, device_id=device_id)
    if device is None:
        raise DeviceNotFound(f"No device with id '{device_id}' at site '{site.id}'")
    return device


async def search_devices(
    session: AsyncSession, *, site: Site, page: Page | None = None
) -> Sequence[Device]:
    stmt = (
        _live(site.tenant_id)
        .where(Device.site_pk == site.pk)
        .order_by(Device.created_at, Device.pk)
    )
    if page is not None:
        stmt = stmt.offset(page.skip).limit(page.limit)
    return (await session.scalars(stmt)).unique().all()


async def get_devices_by_ids(
    session: AsyncSession, *, site: Site, device_ids: Sequence[str]
) -> dict[str, Device]:
    """The site's live devices among `device_ids`, keyed by id (missing ones are absent)."""
    rows = await session.scalars(
        _live(site.tenant_id).where(Device.site_pk == site.pk, Device.id.in_(set(device_ids)))
    )
    return {device.id: device for device in rows.unique()}


async def create_device(session: AsyncSession, *, site: Site, data: DeviceCreate) -> Device:
    _check_site_id(site, data, path="site_id")
    existing = await session.scalar(_live(site.tenant_id).where(Device.id == data.id))
    if existing is not None:
        raise DeviceAlreadyExists(
            f"A device with id '{data.id}' already exists",
            errors=[FieldError(message="already exists", path="id")],
        )
    device = Device(
        tenant_id=site.tenant_id, site=site, site_pk=site.pk, id=data.id, created_at=utc_now()
    )
    _apply(device, data)
    session.add(device)
    await session.flush()
    return device


async def upsert_devices(
    session: AsyncSession, *, site: Site, devices: Sequence[DeviceCreate]
) -> list[Device]:
    """Commissioning: create new devices, update the ones the site already has.

    A device id already used at another of the OEM's sites is refused: moving a battery between
    homes is a delete and a new commission, so that its history stays with the first home.
    """
    ids = [d.id for d in devices]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise Unprocessable.field(
            "devices", f"device ids repeated: {', '.join(sorted(duplicates))}"
        )
    existing = {
        d.id: d
        for d in (await session.scalars(_live(site.tenant_id).where(Device.id.in_(ids)))).unique()
    }
    result = []
    for index, data in enumerate(devices):
        _check_site_id(site, data, path=f"devices.{index}.site_id")
        device = existing.get(data.id)
        if device is not None and device.site_pk != site.pk:
            raise DeviceAlreadyExists(
                f"Device '{data.id}' belongs to another site ('{device.site.id}')",
                errors=[FieldError(message="belongs to another site", path=f"devices.{index}.id")],
            )
        if device is None:
            device = Device(
                tenant_id=site.tenant_id,
                site=site,
                site_pk=site.pk,
                id=data.id,
                created_at=utc_now(),
            )
            session.add(device)
        _apply(device, data)
        result.append(device)
    await session.flush()
    return result


async def update_device(session: AsyncSession, device: Device, data: DeviceUpdate) -> Device:
    if data.attributes is not None:
        for field, value in data.attributes.model_dump(exclude_unset=True).items():
            if value is None:
                raise Unprocessable.field(f"attributes.{field}", "cannot be null")
            setattr(device, field, value)
    if data.configuration is not None:
        device.reserve_percentage = data.configuration.reserve_percentage
    device.updated_at = utc_now()
    await session.flush()
    return device


async def delete_device(session: AsyncSession, device: Device) -> None:
    """Mark deleted: its telemetry, commands and events stay readable for history."""
    device.deleted_at = utc_now()
    device.updated_at = device.deleted_at
    await session.flush()


def _check_site_id(site: Site, data: DeviceCreate, *, path: str) -> None:
    if data.site_id is not None and data.site_id != site.id:
        raise Unprocessable.field(path, f"site_id '{data.site_id}' does not match site '{site.id}'")


def _apply(device: Device, data: DeviceCreate) -> None:
    device.type = DeviceType(data.type)
    device.manufacturer_name = data.manufacturer_name
    device.product_name = data.product_name
    device.serial_number = data.serial_number
    device.install_date = data.install_date
    if data.configuration is not None:
        device.reserve_percentage = data.configuration.reserve_percentage
    attributes: dict[str, Any] = dict(data.attributes)
    if device.type == DeviceType.BATTERY:
        device.battery_capacity_wh = attributes["battery_capacity_wh"]
        device.battery_power_input_w = attributes["battery_power_input_w"]
        device.battery_power_output_w = attributes["battery_power_output_w"]
        device.extra_attributes = {}
    else:
        device.extra_attributes = attributes
    device.updated_at = utc_now()
