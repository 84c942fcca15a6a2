from gridhive.errors import NotFound


class WebhookEndpointNotFound(NotFound):
    pass
