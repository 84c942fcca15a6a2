"""What every page shares: HTML errors instead of JSON, offline assets, a real browser."""

from __future__ import annotations

from typing import Any

import httpx

from gridhive.web.templating import VENDOR
from tests.web.conftest import LiveServer


async def test_an_unknown_page_is_an_html_404_not_the_api_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/no-such-page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text
    assert '"status_code"' not in response.text


async def test_the_api_still_answers_flip_json_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response.json()["status_code"] == 404


async def test_the_browser_libraries_are_served_from_the_install(
    client: httpx.AsyncClient,
) -> None:
    for url in VENDOR.values():
        response = await client.get(url)
        assert response.status_code == 200, url
        assert "javascript" in response.headers["content-type"]
        assert len(response.content) > 10_000


async def test_a_real_browser_renders_the_error_page(live: LiveServer, page: Any) -> None:
    response = await page.goto(f"{live.base_url}/portal/no-such-page")
    assert response.status == 404
    assert await page.locator("h1").inner_text() == "Not found"
