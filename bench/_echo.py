"""The least an HTTP endpoint can do, as the floor the HTTP benches compare gridhive with."""

from __future__ import annotations

from typing import Any

_BODY = b'{"ok":true}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_BODY))]


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, answer 200 with a small JSON (a raw ASGI app: no framework's cost)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
