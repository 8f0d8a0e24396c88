import pytest

from gameportal.identity.devices import country_for, device_type

UA = {
    "iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "ipad": "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/16.0 Mobile/15E148 Safari/604.1",
    "android_tablet": "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/120.0 Safari/537.36",
    "windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0 Safari/537.36",
    "mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.0 Safari/605.1.15",
    "linux": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl": "curl/8.4.0",
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("iphone", "MOBILE"),
        ("ipad", "MOBILE"),  # tablets count as mobile
        ("android_tablet", "MOBILE"),
        ("windows", "DESKTOP"),
        ("mac", "DESKTOP"),
        ("linux", "DESKTOP"),
        ("googlebot", "OTHER"),  # bots are never a player's device
        ("curl", "OTHER"),
    ],
)
def test_device_type(name: str, expected: str) -> None:
    assert device_type(UA[name]) == expected


def test_missing_user_agent_is_other() -> None:
    assert device_type(None) == "OTHER"
    assert device_type("") == "OTHER"


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("8.8.8.8", "US"),
        ("81.2.69.160", "GB"),
        ("2001:4860:4860::8888", "US"),
        ("10.1.2.3", None),
        ("192.168.0.1", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("fe80::1", None),
        ("not-an-ip", None),
        (None, None),
    ],
)
def test_country_for(ip: str | None, expected: str | None) -> None:
    assert country_for(ip) == expected
