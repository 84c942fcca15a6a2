"""Imports every domain's models so that Alembic and the metadata see all tables."""

from gridhive.auth import models as auth_models
from gridhive.commands import models as command_models
from gridhive.device_settings import models as device_settings_models
from gridhive.devices import models as device_models
from gridhive.enrollments import models as enrollment_models
from gridhive.events import models as event_models
from gridhive.idempotency import models as idempotency_models
from gridhive.programs import models as program_models
from gridhive.queue import models as queue_models
from gridhive.sites import models as site_models
from gridhive.telemetry import models as telemetry_models
from gridhive.webhooks import models as webhook_models

__all__ = [
    "auth_models",
    "command_models",
    "device_models",
    "device_settings_models",
    "enrollment_models",
    "event_models",
    "idempotency_models",
    "program_models",
    "queue_models",
    "site_models",
    "telemetry_models",
    "webhook_models",
]
