"""Ending something ends its commands: use cases that change a lower domain and commands at once.

Deleting a device, unenrolling, and a utility pausing, rejecting or unenrolling change devices
or enrollments, which may not import commands (system.md §3, house-style layers). These
functions make both changes in the caller's transaction, so the OEM never holds a command for a
device or an enrollment that is gone, and gets `command.canceled` for each one.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gridhive.commands import service
from gridhive.devices import service as device_service
from gridhive.devices.models import Device
from gridhive.enrollments import service as enrollment_service
from gridhive.enrollments import state as enrollment_state
from gridhive.enrollments import utility as enrollment_utility
from gridhive.enrollments.models import Enrollment
from gridhive.enrollments.schemas import UtilityEnrollmentUpdate


async def delete_device(session: AsyncSession, device: Device) -> None:
    """Mark the device deleted and cancel its unfinished commands, whatever their program."""
    await device_service.delete_device(session, device)
    await service.cancel_unfinished(
        session, device_pks=[device.pk], reason=f"Device '{device.id}' was deleted"
    )


async def unenroll(session: AsyncSession, enrollment: Enrollment) -> Enrollment:
    """The homeowner leaves the program: UNENROLLED, and the program's commands end."""
    await enrollment_service.unenroll(session, enrollment)
    await _cancel_program_commands(session, enrollment)
    return enrollment


async def update_enrollment_for_utility(
    session: AsyncSession, enrollment: Enrollment, data: UtilityEnrollmentUpdate
) -> Enrollment:
    """The utility's PATCH; a status that no longer takes part in events (PAUSED, REJECTED,
    UNENROLLED) ends the devices' commands of this program's events."""
    changed = await enrollment_utility.update_enrollment(session, enrollment, data)
    if changed and enrollment.status != enrollment_state.PARTICIPATING:
        await _cancel_program_commands(session, enrollment)
    return enrollment


async def _cancel_program_commands(session: AsyncSession, enrollment: Enrollment) -> None:
    # Only this program's events: a device may also carry commands of another program's event.
    await service.cancel_unfinished(
        session,
        device_pks=[link.device_pk for link in enrollment.devices],
        program_id=enrollment.program_id,
        reason=f"Enrollment {enrollment.id} is {enrollment.status}",
    )
