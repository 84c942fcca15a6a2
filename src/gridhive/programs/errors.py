from gridhive.errors import NotFound


class ProgramNotFound(NotFound):
    pass
