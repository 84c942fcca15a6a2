from __future__ import annotations

from typing import Annotated

from fastapi import Path

DeviceIdPath = Annotated[
    str, Path(alias="deviceId", min_length=1, max_length=255, description="Your device id")
]
