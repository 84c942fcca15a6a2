"""The portal's branding checks: what a device maker may pass in the session link."""

from __future__ import annotations

import pytest

from gridhive.portal import branding

BASE = "https://cdn.volt.example/brand"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("#0b5394", "#0b5394"), ("#FFF", "#FFF"), ("RebeccaPurple", "rebeccapurple")],
)
def test_hex_and_named_colours_are_taken(value: str, expected: str) -> None:
    assert branding.safe_colour(value) == expected


@pytest.mark.parametrize(
    "value", ["#12", "#1234", "red;", "rgb(1,2,3)", "var(--x)", "notacolour", "", "#ggg"]
)
def test_anything_else_is_not_a_colour(value: str) -> None:
    assert branding.safe_colour(value) is None


def test_a_plain_font_name_goes_first_in_the_stack() -> None:
    assert branding.safe_font("Open  Sans") == f"Open Sans, {branding.FONT_STACK}"


@pytest.mark.parametrize("value", ["Arial;", "inherit", "Font 3", "a" * 41, '"Inter"', "x{y}"])
def test_a_font_that_could_break_out_is_refused(value: str) -> None:
    assert branding.safe_font(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("logo.svg", f"{BASE}/logo.svg"),
        ("volt_logo-2.png", f"{BASE}/volt_logo-2.png"),
        ("https://img.volt.example/a.png", "https://img.volt.example/a.png"),
    ],
)
def test_file_names_sit_under_the_base_and_https_urls_are_kept(value: str, expected: str) -> None:
    assert branding.safe_asset_url(value, BASE) == expected


@pytest.mark.parametrize(
    "value",
    [
        "../logo.png",
        "dir/logo.png",
        "logo.exe",
        "http://img.volt.example/a.png",
        "javascript:alert(1)",
        "https://user@img.volt.example/a.png",
        "https://img.volt.example/a.png' onerror='x",
        "data:image/png;base64,AAAA",
    ],
)
def test_other_asset_references_are_refused(value: str) -> None:
    assert branding.safe_asset_url(value, BASE) is None


def test_without_a_base_url_only_https_urls_are_taken() -> None:
    assert branding.safe_asset_url("logo.svg", None) is None


def test_the_cookie_keeps_what_was_accepted_and_nothing_else() -> None:
    brand = branding.parse_branding(
        {"primaryTextColor": "navy", "secondaryTextColor": "red;}", "other": "x"}, None
    )
    assert brand.accepted == {"primaryTextColor": "navy"}
    again = branding.from_cookie(branding.to_cookie(brand), None)
    assert again.css_vars == {"--text": "navy"}


@pytest.mark.parametrize("value", ["", "!!!", "W10", "bm90IGpzb24", "x" * 5000])
def test_a_damaged_cookie_is_no_branding(value: str) -> None:
    assert branding.from_cookie(value, None) == branding.Branding()
