from __future__ import annotations

from collections.abc import Sequence

from gridhive.errors import Conflict, FieldError, InvalidState, NotFound, Unprocessable


class EnrollmentNotFound(NotFound):
    pass


class EnrollmentConflict(Conflict):
    """Another enrollment already holds the site's place in the program, or its devices."""


class EnrollmentClosed(InvalidState):
    """The enrollment is already over (UNENROLLED or REJECTED)."""


class EnrollmentInvalid(Unprocessable):
    @classmethod
    def from_errors(cls, errors: Sequence[FieldError]) -> EnrollmentInvalid:
        """One 422 naming every problem, so the app can fix them all in one go."""
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return cls(f"Cannot enroll: {first.path}: {first.message}{more}", errors=list(errors))


class EnrollmentTransitionRefused(InvalidState):
    """The lifecycle does not allow this move (e.g. ACTIVE to REJECTED)."""
