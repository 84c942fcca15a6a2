from gridhive.errors import Forbidden, NotFound, Unauthorized


class InvalidCredentials(Unauthorized):
    code = "UNAUTHORIZED"


class WrongPrincipal(Forbidden):
    """The credential is valid but this door is not for it (OEM key on a utility route...)."""


class OrganizationNotFound(NotFound):
    pass


class ApiKeyNotFound(NotFound):
    pass
