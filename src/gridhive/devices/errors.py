from gridhive.errors import Conflict, NotFound


class DeviceNotFound(NotFound):
    pass


class DeviceAlreadyExists(Conflict):
    pass
