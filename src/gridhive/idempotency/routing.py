"""Route class that records a POST's answer before the request's transaction commits."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from gridhive.idempotency import service


class IdempotentRoute(APIRoute):
    """Stores 2xx answers of requests that carried an `Idempotency-Key`.

    The route handler runs inside the request's function-scoped dependencies, so the session is
    still open here: the stored answer commits together with the changes it describes.
    The key was checked earlier, when the caller was authenticated (auth.deps).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def record_idempotent_answer(request: Request) -> Response:
            response = await handler(request)
            pending = getattr(request.state, "idempotency", None)
            if pending is not None and 200 <= response.status_code < 300:
                await service.record(
                    request.state.db_session, pending, response.status_code, bytes(response.body)
                )
            return response

        return record_idempotent_answer
