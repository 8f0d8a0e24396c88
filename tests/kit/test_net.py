import pytest

from gameportal.kit.net import client_ip, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "1.1.1.1", "203.0.113.5"),  # untrusted peer: header ignored
        ("10.0.0.2", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.2", "6.6.6.6, 1.1.1.1", "1.1.1.1"),  # left of the client is client-made
        ("10.0.0.2", "1.1.1.1, 10.0.0.9", "1.1.1.1"),  # chained trusted proxies
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", "10.0.0.7"),  # all trusted: the farthest
        ("10.0.0.2", "garbage, 1.1.1.1", "1.1.1.1"),
        ("10.0.0.2", "1.1.1.1, garbage", "10.0.0.2"),  # unparsable hop: stop at the proxy
        ("10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.2", "198.51.100.7:5555", "198.51.100.7"),
        ("fd00::1", "2001:db8::2", "2001:db8::2"),
        ("::ffff:10.0.0.2", "1.1.1.1", "1.1.1.1"),  # v4-mapped peer
        (None, "1.1.1.1", None),
        ("not-an-ip", None, None),
    ],
)
def test_client_ip(peer: str | None, xff: str | None, expected: str | None) -> None:
    assert client_ip(peer, xff, PROXIES) == expected


def test_no_proxies_means_the_peer() -> None:
    assert client_ip("10.0.0.2", "1.1.1.1", ()) == "10.0.0.2"
