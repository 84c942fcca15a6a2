from gridhive.errors import InvalidState, NotFound


class SettingsRequestNotFound(NotFound):
    pass


class SettingsOutcomeConflict(InvalidState):
    """A final outcome was already reported and a different one arrives."""
