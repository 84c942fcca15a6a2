from gridhive.errors import Conflict, NotFound


class ProgramNotFound(NotFound):
    pass


class GroupNotFound(NotFound):
    pass


class GroupAlreadyExists(Conflict):
    pass
