from gridhive.errors import Conflict, InvalidState, NotFound


class EventNotFound(NotFound):
    pass


class EventFinished(InvalidState):
    pass


class AmbiguousTarget(Conflict):
    pass
