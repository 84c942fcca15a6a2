"""Which older commands the new plan supersedes (system.md §4, "Overlap").

The planner only lists them; the caller cancels them in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from uuid import UUID

from gridhive.events.planning.types import ExistingCommand, PlannedCommand, SupersededCommand

# Only commands still in force can be superseded; CANCELED and OPT_OUT ones already are not.
_IN_FORCE = "OK"


def find_superseded(
    commands: Sequence[PlannedCommand],
    existing: Iterable[ExistingCommand],
    event_id: UUID,
) -> list[SupersededCommand]:
    """Older in-force commands of the same devices whose windows overlap a planned command.

    Each planned command that supersedes something names it in `explanation["supersedes"]`.
    Linear in commands + existing: existing commands are grouped by device first.
    """
    by_device: defaultdict[UUID, list[ExistingCommand]] = defaultdict(list)
    for old in existing:
        if old.status == _IN_FORCE and old.event_id != event_id:
            by_device[old.device_pk].append(old)
    if not by_device:
        return []
    found: dict[UUID, SupersededCommand] = {}
    reason = f"superseded by event {event_id}"
    for command in commands:
        candidates = by_device.get(command.device_pk)
        if not candidates:
            continue
        overlapping = [old for old in candidates if _overlaps(old, command)]
        for old in overlapping:
            entry = found.get(old.command_id)
            if entry is None:
                entry = SupersededCommand(old.command_id, old.device_pk, old.event_id, reason)
                found[old.command_id] = entry
            entry.superseded_by.append(command.id)
        if overlapping:
            # A reason of its own (`PER_COMMAND_REASONS`): the key still holds for the rest.
            command.explanation["supersedes"] = [str(old.command_id) for old in overlapping]
    return list(found.values())


def _overlaps(old: ExistingCommand, new: PlannedCommand) -> bool:
    # Half-open windows: one ending exactly when the other starts does not overlap.
    # A stored command without an end runs until replaced.
    return old.starts_at < new.ends_at and (old.ends_at is None or new.starts_at < old.ends_at)
