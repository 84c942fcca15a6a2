from gridhive.errors import Forbidden, NotFound


class SiteNotFound(NotFound):
    pass


class SiteTokenForAnotherSite(Forbidden):
    pass
