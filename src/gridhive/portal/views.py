"""What the portal's pages show, read through the same services as the Mobile App API.

Each function gathers one page's data for the viewer's one site; the words a homeowner reads
(times in the program's time zone, what the battery will do) are made here, not in templates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.auth.service import Principal
from gridhive.devices import service as device_service
from gridhive.devices.models import Device
from gridhive.enrollments import service as enrollment_service
from gridhive.enrollments.errors import EnrollmentNotFound
from gridhive.enrollments.models import OPEN_STATUSES, Enrollment
from gridhive.events import service as event_service
from gridhive.events.errors import EventNotFound
from gridhive.events.models import Event, SiteEvent
from gridhive.events.state import event_status
from gridhive.kit.pagination import MAX_LIMIT, Page
from gridhive.kit.time import utc_now
from gridhive.programs import service as program_service
from gridhive.programs.errors import ProgramNotFound
from gridhive.programs.models import Program
from gridhive.sites import service as site_service
from gridhive.sites.models import Site
from gridhive.web.errors import PortalSessionEnded

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
# What each battery mode means for the homeowner's battery.
MODE_WORDS = {
    "DISCHARGE": "discharges to power your home and send energy to the grid",
    "CHARGE": "charges",
    "STANDBY": "holds its charge (no charging or discharging)",
    "BACKUP": "keeps its charge for backup",
    "SELF_CONSUMPTION": "powers your home from its own energy",
    "SAVINGS": "runs in savings mode",
}
# What each enrollment status means for the homeowner.
STATUS_WORDS = {
    "CREATED": "We have your enrollment and will send it to the utility.",
    "SUBMITTED": "Sent to the utility for review.",
    "PENDING": "Waiting for the utility to approve your enrollment.",
    "ACTIVE": "You are enrolled: your battery takes part in this program's events.",
    "NEEDS_ACTION": "The utility needs more information; check your email for the next step.",
    "PAUSED": "Paused by the utility: your battery takes no part in events for now.",
    "REJECTED": "The utility could not accept this enrollment.",
    "UNENROLLED": "You left this program.",
}


async def viewer_site(session: AsyncSession, viewer: Principal) -> Site:
    """The one site of the portal session (gone only if the device maker deleted it)."""
    site = await site_service.get_site_by_pk(session, viewer.site_pk) if viewer.site_pk else None
    if site is None:
        raise PortalSessionEnded("This home is no longer available. Open the portal from your app.")
    return site


def parse_id(text: str, not_found: type[Exception], what: str) -> uuid.UUID:
    """A path id; text that is not a UUID names nothing, so it is a 404 like an unknown id."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise not_found(f"No {what} with id '{text[:100]}'") from None


# Programs and enrollments -----------------------------------------------------------------------


@dataclass(frozen=True)
class EnrollmentView:
    enrollment: Enrollment
    program: Program

    @property
    def is_open(self) -> bool:
        return self.enrollment.status in OPEN_STATUSES

    @property
    def status_words(self) -> str:
        return STATUS_WORDS.get(self.enrollment.status, "")


@dataclass(frozen=True)
class HomePage:
    site: Site
    enrollments: list[EnrollmentView]
    programs: list[Program]
    upcoming_events: int

    @property
    def open_enrollments(self) -> list[EnrollmentView]:
        return [view for view in self.enrollments if view.is_open]

    @property
    def past_enrollments(self) -> list[EnrollmentView]:
        return [view for view in self.enrollments if not view.is_open]


async def home_page(session: AsyncSession, site: Site) -> HomePage:
    """The site's enrollments and, while it has no open one, the programs it can join."""
    enrollments = await _enrollment_views(session, site)
    programs: list[Program] = []
    if not any(view.is_open for view in enrollments):
        devices = await device_service.search_devices(session, site=site)
        programs = await enrollment_service.offered_programs(session, site=site, devices=devices)
    upcoming = await event_service.search_site_events(
        session, site_pk=site.pk, statuses=("UPCOMING", "ACTIVE"), page=Page(limit=MAX_LIMIT)
    )
    return HomePage(site, enrollments, programs, len(upcoming))


async def _enrollment_views(session: AsyncSession, site: Site) -> list[EnrollmentView]:
    enrollments = await enrollment_service.search_enrollments(session, site=site)
    programs = {
        program_id: await program_service.get_program_or_raise(session, program_id)
        for program_id in {e.program_id for e in enrollments}
    }
    return [EnrollmentView(e, programs[e.program_id]) for e in enrollments]


async def enrollment_of_site(
    session: AsyncSession, site: Site, enrollment_id: str
) -> EnrollmentView:
    """One of the site's enrollments; another site's is a 404, as in the API."""
    found = parse_id(enrollment_id, EnrollmentNotFound, "enrollment")
    enrollment = await enrollment_service.get_enrollment_or_raise(
        session, site=site, enrollment_id=found
    )
    program = await program_service.get_program_or_raise(session, enrollment.program_id)
    return EnrollmentView(enrollment, program)


@dataclass(frozen=True)
class ProgramPage:
    program: Program
    devices: list[Device]
    enrollment: Enrollment | None


async def program_page(session: AsyncSession, site: Site, program_id: str) -> ProgramPage:
    """A program offered to the site (or one it is enrolled in) with its eligible devices.

    Any other program is a 404 here: the portal shows a homeowner only what their home can join.
    """
    found = parse_id(program_id, ProgramNotFound, "program")
    devices = await device_service.search_devices(session, site=site)
    enrollments = await enrollment_service.search_open_enrollments(session, site=site)
    enrollment = next((e for e in enrollments if e.program_id == found), None)
    offered = await enrollment_service.offered_programs(session, site=site, devices=devices)
    program = next((p for p in offered if p.id == found), None)
    if program is None and enrollment is not None:
        program = await program_service.get_program_or_raise(session, found)
    if program is None:
        raise ProgramNotFound(f"No program with id {found} for this home")
    eligible = [d for d in devices if d.type in program.eligible_device_types]
    return ProgramPage(program, eligible, enrollment)


def participation_months(months: Sequence[int]) -> str:
    if sorted(months) == list(range(1, 13)):
        return "All year"
    return ", ".join(MONTHS[m - 1] for m in sorted(months))


# Events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionView:
    window: str
    what: str


@dataclass
class EventView:
    event: Event
    site_event: SiteEvent
    status: str
    program: Program
    window: str
    actions: list[ActionView] = field(default_factory=list)

    @property
    def can_opt_out(self) -> bool:
        return self.site_event.is_participating and self.status in ("UPCOMING", "ACTIVE")

    @property
    def can_opt_in(self) -> bool:
        return not self.site_event.is_participating and self.status == "UPCOMING"


@dataclass(frozen=True)
class EventsPage:
    active: list[EventView]
    upcoming: list[EventView]
    past: list[EventView]


async def events_page(session: AsyncSession, site: Site) -> EventsPage:
    """The site's events: happening now, coming (soonest first) and past (newest first)."""
    rows = await event_service.search_site_events(
        session, site_pk=site.pk, statuses=(), page=Page(limit=MAX_LIMIT)
    )
    now = utc_now()
    programs: dict[uuid.UUID, Program] = {}
    views = [
        await _event_view(session, event, site_event, now, programs) for event, site_event in rows
    ]
    by_status = {
        status: [v for v in views if v.status == status] for status in ("ACTIVE", "UPCOMING")
    }
    past = [v for v in views if v.status in ("COMPLETED", "CANCELED")]
    return EventsPage(by_status["ACTIVE"], by_status["UPCOMING"][::-1], past)


async def event_of_site(
    session: AsyncSession, site: Site, event_id: str
) -> tuple[Event, SiteEvent]:
    """One of the site's events; another site's is a 404, as in the API."""
    found = parse_id(event_id, EventNotFound, "event")
    return await event_service.get_site_event_or_raise(session, site_pk=site.pk, event_id=found)


async def _event_view(
    session: AsyncSession,
    event: Event,
    site_event: SiteEvent,
    now: datetime,
    programs: dict[uuid.UUID, Program],
) -> EventView:
    if event.program_id not in programs:
        programs[event.program_id] = await program_service.get_program_or_raise(
            session, event.program_id
        )
    program = programs[event.program_id]
    zone = ZoneInfo(program.timezone)
    actions = [_action_view(action, zone) for action in event.actions]
    window = time_window(event.starts_at, event.ends_at, zone)
    return EventView(event, site_event, event_status(event, now), program, window, actions)


def _action_view(action: dict[str, Any], zone: ZoneInfo) -> ActionView:
    starts_at = datetime.fromisoformat(str(action["starts_at"]).replace("Z", "+00:00"))
    ends_at = starts_at + timedelta(seconds=int(action["duration_s"]))
    return ActionView(time_window(starts_at, ends_at, zone), battery_words(action))


def battery_words(action: dict[str, Any]) -> str:
    """E.g. "Your battery discharges to power your home ... at up to 4.0 kW, keeping 20%"."""
    text = f"Your battery {MODE_WORDS.get(str(action.get('mode')), 'follows the event')}"
    setpoint = action.get("setpoint_w")
    if isinstance(setpoint, int | float) and setpoint > 0 and action.get("setpoint_mode") != "EVEN":
        text += f" at up to {setpoint / 1000:,.1f} kW"
    reserve = action.get("backup_reserve_percentage")
    if isinstance(reserve, int | float):
        text += f", keeping at least {reserve:.0f}% charged for you"
    return text + "."


def time_window(starts_at: datetime, ends_at: datetime, zone: ZoneInfo) -> str:
    """E.g. "Tue 24 Nov, 5:00 pm to 7:00 pm PST" in the program's time zone."""
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    dash = "\N{EN DASH}"
    first = f"{start:%a} {start.day} {start:%b}, {_clock(start)}"
    if end.date() == start.date():
        return f"{first} {dash} {_clock(end)} {end:%Z}"
    return f"{first} {dash} {end:%a} {end.day} {end:%b}, {_clock(end)} {end:%Z}"


def _clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment:%M} {'am' if moment.hour < 12 else 'pm'}"
