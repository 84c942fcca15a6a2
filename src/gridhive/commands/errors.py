from gridhive.errors import NotFound


class CommandNotFound(NotFound):
    pass
