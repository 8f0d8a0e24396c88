"""Which campaigns' IP ranges hold an address: one sorted table per address family.

Every range is an interval of integers. The starts and ends of all ranges cut the address
space into elementary intervals inside which the answer cannot change; the index keeps
their sorted boundaries and, for each, the frozen set of campaign ids covering it, so a
lookup is one `bisect` and one list access, whatever the number of ranges or campaigns.

An IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d) are one client: the mapped
form is looked up as IPv4, and an IPv6 range that covers part of ::ffff:0:0/96 counts for
the IPv4 addresses it maps (so `::/0` holds every IPv4 address too).
"""

from __future__ import annotations

import socket
import uuid
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_network

_EMPTY: frozenset[uuid.UUID] = frozenset()
_V4_SIZE = 1 << 32
_MAPPED_START = 0xFFFF << 32  # ::ffff:0.0.0.0
_MAPPED_END = _MAPPED_START + _V4_SIZE  # exclusive


@dataclass(frozen=True, slots=True)
class _Table:
    """Sorted `bounds`; `sets[i]` holds the campaigns covering [bounds[i], bounds[i + 1])
    (the last one, past every range, is empty)."""

    bounds: list[int]
    sets: list[frozenset[uuid.UUID]]

    def lookup(self, value: int) -> frozenset[uuid.UUID]:
        i = bisect_right(self.bounds, value) - 1
        return self.sets[i] if i >= 0 else _EMPTY

    @classmethod
    def build(cls, intervals: list[tuple[int, int, uuid.UUID]]) -> _Table:
        """`intervals`: (start, end exclusive, campaign id). A sweep over the sorted
        boundaries keeps a count of open ranges per campaign (one campaign's ranges may
        overlap) and a bit mask of the campaigns with any open; equal masks share one
        frozen set."""
        slot: dict[uuid.UUID, int] = {}
        events: list[tuple[int, int, int]] = []  # (point, +1 open / -1 close, campaign slot)
        for start, end, cid in intervals:
            bit = slot.setdefault(cid, len(slot))
            events.append((start, 1, bit))
            events.append((end, -1, bit))
        events.sort()
        ids = list(slot)
        open_count = [0] * len(ids)
        mask = 0
        cache: dict[int, frozenset[uuid.UUID]] = {0: _EMPTY}
        bounds: list[int] = []
        sets: list[frozenset[uuid.UUID]] = []
        last = _EMPTY
        count = len(events)
        i = 0
        while i < count:
            point = events[i][0]
            while i < count and events[i][0] == point:
                _, step, bit = events[i]
                before = open_count[bit]
                open_count[bit] = before + step
                if before == 0 or before + step == 0:
                    mask ^= 1 << bit
                i += 1
            found = cache.get(mask)
            if found is None:
                found = frozenset(ids[b] for b in range(mask.bit_length()) if mask >> b & 1)
                cache[mask] = found
            if found is not last:  # the same campaigns on both sides need no boundary
                bounds.append(point)
                sets.append(found)
                last = found
        return cls(bounds, sets)


def _parse(cidr: str) -> tuple[int, int, int]:
    """(version, first address, end exclusive) of a CIDR, host bits ignored. The common
    form (address/prefix) goes through the C `inet_pton`, 10x `ip_network`; anything
    else, and every error, is `ip_network`'s."""
    address, _, prefix = cidr.partition("/")
    bits, family = (128, socket.AF_INET6) if ":" in address else (32, socket.AF_INET)
    if prefix.isascii() and prefix.isdigit() and len(prefix) <= 3 and int(prefix) <= bits:
        try:
            value = int.from_bytes(socket.inet_pton(family, address), "big")
        except (OSError, ValueError):
            pass
        else:
            size = 1 << (bits - int(prefix))
            start = value & ~(size - 1)
            return (4 if bits == 32 else 6), start, start + size
    net = ip_network(cidr, strict=False)
    start = int(net.network_address)
    return net.version, start, start + net.num_addresses


class IpRangeIndex:
    """Immutable once built; safe to share between tasks and to swap whole on a change."""

    __slots__ = ("_v4", "_v6", "range_count")

    def __init__(self, v4: _Table, v6: _Table, range_count: int) -> None:
        self._v4 = v4
        self._v6 = v6
        self.range_count = range_count

    @classmethod
    def build(cls, ranges: Iterable[tuple[uuid.UUID, str]]) -> IpRangeIndex:
        """From (campaign id, CIDR) pairs. Host bits set in a CIDR are ignored (the
        database's `cidr` type and the admin API refuse them anyway); a malformed CIDR
        raises ValueError."""
        v4: list[tuple[int, int, uuid.UUID]] = []
        v6: list[tuple[int, int, uuid.UUID]] = []
        count = 0
        for campaign_id, cidr in ranges:
            version, start, end = _parse(cidr)
            count += 1
            if version == 4:
                v4.append((start, end, campaign_id))
                continue
            v6.append((start, end, campaign_id))
            lo, hi = max(start, _MAPPED_START), min(end, _MAPPED_END)
            if lo < hi:  # the IPv4 addresses this IPv6 range covers in mapped form
                v4.append((lo - _MAPPED_START, hi - _MAPPED_START, campaign_id))
        return cls(_Table.build(v4), _Table.build(v6), count)

    def campaigns_for(self, ip: IPv4Address | IPv6Address | None) -> frozenset[uuid.UUID]:
        """The ids of the campaigns with a range holding `ip` (empty for None)."""
        if ip is None:
            return _EMPTY
        if ip.version == 4:
            return self._v4.lookup(int(ip))
        value = int(ip)
        if _MAPPED_START <= value < _MAPPED_END:
            return self._v4.lookup(value - _MAPPED_START)
        return self._v6.lookup(value)
