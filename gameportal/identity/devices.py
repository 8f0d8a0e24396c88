"""What we can tell about a device from its request: type from the User-Agent (uap-core
rules through ua-parser), country from the IP (an offline registry database)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import iptocc
from ua_parser import parse

MAX_USER_AGENT = 512
MAX_FINGERPRINT = 128

# uap-core has no "form factor"; these OS families only run on phones and tablets.
_MOBILE_OS = {
    "iOS",
    "iPadOS",
    "Android",
    "Windows Phone",
    "BlackBerry OS",
    "KaiOS",
    "Tizen",
    "Firefox OS",
    "Symbian OS",
    "HarmonyOS",
    "Sailfish",
    "webOS",
    "Windows Mobile",
}
_DESKTOP_OS = {
    "Windows",
    "Mac OS X",
    "macOS",
    "Linux",
    "Ubuntu",
    "Fedora",
    "Debian",
    "Chrome OS",
    "ChromeOS",
    "FreeBSD",
    "OpenBSD",
    "NetBSD",
    "Solaris",
    "Mint",
    "Arch Linux",
    "Red Hat",
    "SUSE",
    "Gentoo",
    "Kubuntu",
    "Mandriva",
    "CentOS",
}


@lru_cache(maxsize=4096)
def device_type(user_agent: str | None) -> str:
    """MOBILE, DESKTOP or OTHER. Tablets count as MOBILE, bots and tools as OTHER."""
    if not user_agent:
        return "OTHER"
    result = parse(user_agent)
    device = result.device
    if device is not None and device.family == "Spider":
        return "OTHER"
    os_family = result.os.family if result.os is not None else None
    if os_family in _MOBILE_OS:
        return "MOBILE"
    if os_family in _DESKTOP_OS:
        return "DESKTOP"
    if device is not None and device.family not in ("Other", "Generic Feature Phone"):
        # A named handset or tablet with an OS uap-core does not name.
        return "MOBILE" if device.family != "Mac" else "DESKTOP"
    return "OTHER"


def country_for(ip: str | None) -> str | None:
    """ISO 3166 alpha-2 code, or None for private, reserved or unknown addresses."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if not addr.is_global:
        return None
    code = iptocc.country_code(str(addr))
    if not code or len(code) != 2 or not code.isalpha():
        return None
    return str(code).upper()
