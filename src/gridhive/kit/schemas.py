"""Base classes for wire schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

from gridhive.kit.time import isoformat_z

# Datetimes always leave gridhive as ISO 8601 UTC with a `Z`.
UTCDatetime = Annotated[datetime, PlainSerializer(isoformat_z, return_type=str, when_used="json")]


class Schema(BaseModel):
    """Response and internal schema: built from ORM objects, unknown input ignored."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class InputSchema(BaseModel):
    """Request body schema.

    Unknown fields are ignored, never rejected: Flip's rule is that deprecated request fields are
    accepted and ignored, and clients written for newer or older Flip versions send extra ones.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
