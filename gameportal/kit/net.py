"""The client's address, honouring X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: IPAddress, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in proxies)


def client_ip(
    peer: str | None, forwarded_for: str | None, proxies: tuple[IPNetwork, ...]
) -> str | None:
    """Walk X-Forwarded-For from the right while each hop is a trusted proxy; the first
    untrusted hop is the client. A peer we do not trust cannot speak for anyone else."""
    peer_ip = _parse_ip(peer) if peer else None
    if peer_ip is None:
        return None
    if not forwarded_for or not proxies or not _trusted(peer_ip, proxies):
        return str(peer_ip)
    client = peer_ip
    for hop in reversed(forwarded_for.split(",")):
        hop_ip = _parse_ip(hop)
        if hop_ip is None:
            break  # garbage in the chain: stop at the last address we could trust
        client = hop_ip
        if not _trusted(hop_ip, proxies):
            break
    return str(client)
