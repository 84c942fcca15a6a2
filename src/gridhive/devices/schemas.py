"""Flip's Device (§9.2) and its inputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from gridhive.kit.schemas import InputSchema, Schema, UTCDatetime

ExternalId = Annotated[str, Field(min_length=1, max_length=255)]
Watts = Annotated[int, Field(ge=0, le=10_000_000)]


class BatteryAttributes(InputSchema):
    battery_capacity_wh: Annotated[int, Field(ge=1, le=100_000_000)]
    battery_power_input_w: Watts
    battery_power_output_w: Watts


class BatteryAttributesUpdate(InputSchema):
    battery_capacity_wh: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    battery_power_input_w: Watts | None = None
    battery_power_output_w: Watts | None = None


class DeviceConfiguration(InputSchema):
    reserve_percentage: Annotated[int, Field(ge=0, le=100)] = 0


class DeviceCreate(InputSchema):
    """DeviceCreateIn. `site_id` may be left out; when sent it must match the site."""

    id: ExternalId
    site_id: ExternalId | None = None
    manufacturer_name: Annotated[str, Field(min_length=1, max_length=200)]
    product_name: Annotated[str, Field(min_length=1, max_length=200)]
    serial_number: Annotated[str, Field(max_length=200)] | None = None
    type: Literal["BATTERY", "EV_CHARGER"]
    attributes: dict[str, Any]
    configuration: DeviceConfiguration | None = None
    install_date: UTCDatetime | None = None

    @model_validator(mode="after")
    def _battery_attributes(self) -> DeviceCreate:
        if self.type == "BATTERY":
            self.attributes = battery_attributes(self.attributes)
        return self


def battery_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a battery's ratings, naming each bad one (`attributes.battery_capacity_wh`)."""
    try:
        return BatteryAttributes.model_validate(raw).model_dump()
    except ValidationError as exc:
        problems = "; ".join(
            f"attributes.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(f"invalid battery attributes ({problems})") from None


class DeviceUpdate(InputSchema):
    attributes: BatteryAttributesUpdate | None = None
    configuration: DeviceConfiguration | None = None


class DeviceRead(Schema):
    id: str
    site_id: str
    manufacturer_name: str
    product_name: str
    serial_number: str | None
    type: Literal["BATTERY", "EV_CHARGER"]
    attributes: dict[str, Any]
    configuration: dict[str, Any]
    install_date: UTCDatetime | None
    created_at: UTCDatetime
    updated_at: UTCDatetime
