"""`gridhive admin`: organisations, keys and programs, for the platform operator."""

from __future__ import annotations

import enum
import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth import service as auth_service
from gridhive.auth.models import OrgKind
from gridhive.auth.schemas import ApiKeyCreated, ApiKeyRead, OrganizationRead
from gridhive.cli.common import DatabaseUrlOption, JsonOption, emit, run_in_session, settings_for
from gridhive.programs import service as program_service
from gridhive.programs.schemas import ProgramAdminRead, ProgramCreate
from gridhive.webhooks import endpoints as webhook_endpoints
from gridhive.webhooks.models import DeliveryMode
from gridhive.webhooks.schemas import DeliverySettingsRead

app = typer.Typer(help="Organisations, API keys and programs.", no_args_is_help=True)

OPERATOR_ORG_NAME = "Platform operator"


class OrgKindChoice(enum.StrEnum):
    utility = "utility"
    oem = "oem"


@app.command("create-org")
def create_org(
    kind: Annotated[OrgKindChoice, typer.Option(help="utility or oem")],
    name: Annotated[str, typer.Option(help="Display name")],
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a utility or a device maker (OEM)."""

    async def work(session: AsyncSession) -> OrganizationRead:
        org = await auth_service.create_organization(session, kind=OrgKind(kind.value), name=name)
        return OrganizationRead.model_validate(org)

    emit(run_in_session(database_url, work), as_json=as_json)


@app.command("list-orgs")
def list_orgs(database_url: DatabaseUrlOption = None, as_json: JsonOption = False) -> None:
    """List every organisation."""

    async def work(session: AsyncSession) -> list[OrganizationRead]:
        orgs = await auth_service.search_organizations(session)
        return [OrganizationRead.model_validate(o) for o in orgs]

    emit(run_in_session(database_url, work), as_json=as_json)


@app.command("create-key")
def create_key(
    org: Annotated[uuid.UUID, typer.Option("--org", help="Organisation id")],
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; the full key is printed once and never stored."""

    async def work(session: AsyncSession) -> ApiKeyCreated:
        key, text = await auth_service.create_api_key(session, org_id=org, name=name)
        return ApiKeyCreated(id=key.id, org_id=key.org_id, key=text)

    emit(run_in_session(database_url, work), as_json=as_json)


@app.command("create-admin-key")
def create_admin_key(
    name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key for the admin API (/admin/v1), creating the operator organisation if needed."""

    async def work(session: AsyncSession) -> ApiKeyCreated:
        operators = await auth_service.search_organizations(session, kind=OrgKind.OPERATOR)
        operator = (
            operators[0]
            if operators
            else await auth_service.create_organization(
                session, kind=OrgKind.OPERATOR, name=OPERATOR_ORG_NAME
            )
        )
        key, text = await auth_service.create_api_key(session, org_id=operator.id, name=name)
        return ApiKeyCreated(id=key.id, org_id=key.org_id, key=text)

    emit(run_in_session(database_url, work), as_json=as_json)


@app.command("list-keys")
def list_keys(
    org: Annotated[uuid.UUID, typer.Option("--org", help="Organisation id")],
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List an organisation's keys (prefixes only)."""

    async def work(session: AsyncSession) -> list[ApiKeyRead]:
        await auth_service.get_organization_or_raise(session, org)
        keys = await auth_service.search_api_keys(session, org_id=org)
        return [ApiKeyRead.from_key(k, prefix=auth_service.key_prefix(k)) for k in keys]

    emit(run_in_session(database_url, work), as_json=as_json)


@app.command("revoke-key")
def revoke_key(
    key_id: Annotated[uuid.UUID, typer.Argument(help="Key id")],
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key at once (and the OAuth tokens issued from it)."""

    async def work(session: AsyncSession) -> ApiKeyRead:
        key = await auth_service.revoke_api_key(session, key_id)
        return ApiKeyRead.from_key(key, prefix=auth_service.key_prefix(key))

    emit(run_in_session(database_url, work), as_json=as_json)


@app.command("create-program")
def create_program(
    utility: Annotated[uuid.UUID, typer.Option("--utility", help="Utility organisation id")],
    file: Annotated[
        Path,
        typer.Option(
            "--file", help="Program JSON file", exists=True, dir_okay=False, readable=True
        ),
    ],
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a program for a utility from a JSON file (Flip's Program fields, territory, rules)."""
    try:
        data = ProgramCreate.model_validate(json.loads(file.read_text()))
    except json.JSONDecodeError as exc:
        typer.echo(f"error: {file} is not valid JSON: {exc}", err=True)
        raise typer.Exit(1) from exc
    except ValidationError as exc:
        typer.echo(f"error: {file} is not a valid program:", err=True)
        for err in exc.errors():
            typer.echo(f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}", err=True)
        raise typer.Exit(1) from exc

    async def work(session: AsyncSession) -> ProgramAdminRead:
        program = await program_service.create_program(session, utility_id=utility, data=data)
        return ProgramAdminRead.model_validate(program)

    emit(run_in_session(database_url, work), as_json=as_json)


class DeliveryModeChoice(enum.StrEnum):
    webhook = "webhook"
    mqtt = "mqtt"
    polling = "polling"


@app.command("set-delivery-mode")
def set_delivery_mode(
    org: Annotated[uuid.UUID, typer.Option("--org", help="Organisation id")],
    mode: Annotated[DeliveryModeChoice, typer.Option(help="webhook, mqtt or polling")],
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """How an organisation receives its messages from now on (webhook, mqtt or polling)."""
    if mode is DeliveryModeChoice.mqtt and settings_for(database_url).mqtt.url is None:
        typer.echo("warning: GRIDHIVE_MQTT__URL is not set here; workers need it", err=True)

    async def work(session: AsyncSession) -> DeliverySettingsRead:
        await auth_service.get_organization_or_raise(session, org)
        return await webhook_endpoints.set_delivery_mode(
            session, org, DeliveryMode(mode.value), mqtt_available=True
        )

    emit(run_in_session(database_url, work), as_json=as_json)
