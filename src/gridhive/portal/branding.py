"""The device maker's branding of the portal: the query parameters of the session link (§7.3).

Every value is checked against a strict pattern before it reaches a page; a value that does not
match is dropped, never passed on. The accepted parameters are kept in a cookie for the session
and checked again on every read, so a cookie edited by hand can at most restyle its own browser
with values that pass the same checks.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

BRAND_COOKIE = "gridhive_portal_brand"

# Branding parameter -> the CSS variable of web/static/gridhive.css it sets.
COLOUR_PARAMETERS = {
    "primaryButtonBackgroundColor": "--primary-bg",
    "primaryButtonBorderColor": "--primary-border",
    "primaryButtonTextColor": "--primary-text",
    "primaryTextColor": "--text",
    "secondaryButtonBackgroundColor": "--secondary-bg",
    "secondaryButtonBorderColor": "--secondary-border",
    "secondaryButtonTextColor": "--secondary-text",
    "secondaryTextColor": "--muted",
}
OTHER_PARAMETERS = ("fontName", "logoFileName", "faviconFileName", "alwaysShowBackButton")
PARAMETERS = (*COLOUR_PARAMETERS, *OTHER_PARAMETERS)

_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
# The CSS named colours (CSS Color Module Level 4), lower case.
CSS_NAMED_COLOURS = frozenset(
    """aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue
    blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk
    crimson cyan darkblue darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki
    darkmagenta darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen
    darkslateblue darkslategray darkslategrey darkturquoise darkviolet deeppink deepskyblue
    dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro ghostwhite
    gold goldenrod gray green greenyellow grey honeydew hotpink indianred indigo ivory khaki
    lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan
    lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen
    lightskyblue lightslategray lightslategrey lightsteelblue lightyellow lime limegreen linen
    magenta maroon mediumaquamarine mediumblue mediumorchid mediumpurple mediumseagreen
    mediumslateblue mediumspringgreen mediumturquoise mediumvioletred midnightblue mintcream
    mistyrose moccasin navajowhite navy oldlace olive olivedrab orange orangered orchid
    palegoldenrod palegreen paleturquoise palevioletred papayawhip peachpuff peru pink plum
    powderblue purple rebeccapurple red rosybrown royalblue saddlebrown salmon sandybrown
    seagreen seashell sienna silver skyblue slateblue slategray slategrey snow springgreen
    steelblue tan teal thistle tomato turquoise violet wheat white whitesmoke yellow
    yellowgreen""".split()
)
# Words of letters and hyphens: written unquoted in CSS (the page escapes quotes), a name of
# this shape is a valid font family and cannot end the declaration it sits in.
_FONT_NAME = re.compile(r"^[A-Za-z][A-Za-z-]*(?: [A-Za-z][A-Za-z-]*){0,4}$")
_CSS_KEYWORDS = frozenset({"inherit", "initial", "unset", "revert", "revert-layer", "default"})
FONT_STACK = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
_FILE_NAME = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.(?:png|svg|jpe?g|gif|webp|ico)$"
)
_URL_UNSAFE = re.compile(r"[\s\"'<>\\`(){}]")


class PortalSettings(BaseSettings):
    """`GRIDHIVE_PORTAL_ASSET_BASE_URL`: where relative logo and favicon file names live.

    Unset, only https URLs are taken for the logo and favicon.
    """

    model_config = SettingsConfigDict(env_prefix="GRIDHIVE_PORTAL_", extra="ignore")

    asset_base_url: str | None = None


@dataclass(frozen=True)
class Branding:
    """What the page template reads (`brand.css_vars`, `brand.favicon`, ...)."""

    accepted: dict[str, str] = field(default_factory=dict)
    css_vars: dict[str, str] = field(default_factory=dict)
    logo: str | None = None
    favicon: str | None = None
    always_show_back: bool = False


def safe_colour(value: str) -> str | None:
    text = value.strip()
    if _HEX_COLOUR.match(text):
        return text
    return text.lower() if text.lower() in CSS_NAMED_COLOURS else None


def safe_font(value: str) -> str | None:
    name = " ".join(value.split())
    if len(name) > 40 or not _FONT_NAME.match(name) or name.lower() in _CSS_KEYWORDS:
        return None
    return f"{name}, {FONT_STACK}"


def safe_asset_url(value: str, base_url: str | None) -> str | None:
    """An https URL, or a plain file name under `base_url`; anything else is refused."""
    text = value.strip()
    if len(text) > 500 or _URL_UNSAFE.search(text):
        return None
    if _FILE_NAME.match(text):
        return f"{base_url.rstrip('/')}/{text}" if base_url else None
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        return None
    return parts.geturl()


def parse_branding(params: Mapping[str, str], base_url: str | None) -> Branding:
    """The branding parameters that pass their checks; the others are left out."""
    accepted: dict[str, str] = {}
    css_vars: dict[str, str] = {}
    for name, variable in COLOUR_PARAMETERS.items():
        if name in params and (colour := safe_colour(params[name])):
            accepted[name], css_vars[variable] = params[name], colour
    if "fontName" in params and (font := safe_font(params["fontName"])):
        accepted["fontName"], css_vars["--font"] = params["fontName"], font
    logo = _asset(params, "logoFileName", base_url, accepted)
    favicon = _asset(params, "faviconFileName", base_url, accepted)
    back = params.get("alwaysShowBackButton", "").strip().lower() == "true"
    if back:
        accepted["alwaysShowBackButton"] = "true"
    return Branding(accepted, css_vars, logo=logo, favicon=favicon, always_show_back=back)


def _asset(
    params: Mapping[str, str], name: str, base_url: str | None, accepted: dict[str, str]
) -> str | None:
    url = safe_asset_url(params[name], base_url) if name in params else None
    if url:
        accepted[name] = params[name]
    return url


def to_cookie(branding: Branding) -> str:
    """The accepted parameters, as cookie-safe text (base64url of JSON)."""
    raw = json.dumps(branding.accepted, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def from_cookie(value: str | None, base_url: str | None) -> Branding:
    """The branding kept for the session, checked again; a damaged cookie is no branding."""
    if not value or len(value) > 4000:
        return Branding()
    try:
        decoded = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except ValueError:
        return Branding()
    if not isinstance(decoded, dict):
        return Branding()
    params = {k: v for k, v in decoded.items() if k in PARAMETERS and isinstance(v, str)}
    return parse_branding(params, base_url)
