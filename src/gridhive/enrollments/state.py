"""Enrollment status lifecycle: the allowed moves as data, applied by one `transition()`.

Review states (CREATED, SUBMITTED, PENDING, NEEDS_ACTION) lead to a decision: ACTIVE or
REJECTED. An ACTIVE enrollment may be PAUSED and resumed. Any open enrollment may end as
UNENROLLED. REJECTED and UNENROLLED are final: Flip says re-applying after a rejection is not
possible, and an unenrolled site enrolls again with a new enrollment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from gridhive.enrollments.errors import EnrollmentClosed, EnrollmentTransitionRefused
from gridhive.enrollments.models import Enrollment
from gridhive.enrollments.models import EnrollmentStatus as S
from gridhive.errors import FieldError

FINAL = frozenset({S.REJECTED, S.UNENROLLED})
# Only ACTIVE enrollments take part in events; leaving ACTIVE ends the devices' commands.
PARTICIPATING = S.ACTIVE

# A review may move forward (never back to CREATED) or ask for more information.
_REVIEW_NEXT = frozenset({S.SUBMITTED, S.PENDING, S.NEEDS_ACTION})
_DECISIONS = frozenset({S.ACTIVE, S.REJECTED, S.UNENROLLED})

ALLOWED: Mapping[S, frozenset[S]] = {
    S.CREATED: _REVIEW_NEXT | _DECISIONS,
    S.SUBMITTED: (_REVIEW_NEXT - {S.SUBMITTED}) | _DECISIONS,
    S.PENDING: frozenset({S.NEEDS_ACTION}) | _DECISIONS,
    S.NEEDS_ACTION: frozenset({S.SUBMITTED, S.PENDING}) | _DECISIONS,
    S.ACTIVE: frozenset({S.PAUSED, S.UNENROLLED}),
    S.PAUSED: frozenset({S.ACTIVE, S.UNENROLLED}),
    S.REJECTED: frozenset(),
    S.UNENROLLED: frozenset(),
}

# The reason shown to the OEM when the utility gives none.
DEFAULT_REASONS: Mapping[S, str] = {
    S.CREATED: "Created",
    S.SUBMITTED: "Submitted to the utility",
    S.PENDING: "Waiting for the utility's approval",
    S.NEEDS_ACTION: "The utility needs more information",
    S.ACTIVE: "Enrollment approved by utility",
    S.PAUSED: "Paused by the utility",
    S.REJECTED: "Rejected by the utility",
    S.UNENROLLED: "Unenrolled by the utility",
}


def transition(enrollment: Enrollment, to: S, *, reason: str | None = None, now: datetime) -> bool:
    """Move `enrollment` to `to`, stamping its times; False when it is there already.

    A final enrollment refuses every move (EnrollmentClosed), and a move the table does not
    list is refused too (EnrollmentTransitionRefused); both are 409s.
    """
    current = enrollment.status
    if to == current:
        return False
    if current in FINAL:
        raise EnrollmentClosed(
            f"Enrollment {enrollment.id} is already {current}, which is final; "
            "it cannot change any more"
        )
    if to not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current]))
        message = f"cannot go from {current} to {to} (allowed from {current}: {allowed})"
        raise EnrollmentTransitionRefused(
            f"Enrollment {enrollment.id} {message}",
            errors=[FieldError(message=message, path="status")],
        )
    enrollment.status = to
    enrollment.status_reason = reason or DEFAULT_REASONS[to]
    if to == S.ACTIVE and enrollment.enrolled_at is None:
        enrollment.enrolled_at = now
    if to == S.UNENROLLED:
        enrollment.unenrolled_at = now
    enrollment.updated_at = now
    return True
