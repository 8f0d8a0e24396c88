"""The IP range index answers as checking every range with `ip in network` would, for
IPv4, IPv6 and IPv4-mapped IPv6 addresses, and builds 10,000 ranges quickly."""

from __future__ import annotations

import random
import time
import uuid
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameportal.liveops.ipranges import IpRangeIndex, _parse

A, B, C = (uuid.UUID(int=i) for i in (1, 2, 3))
MAPPED = IPv6Network("::ffff:0:0/96")


def naive(
    ranges: list[tuple[uuid.UUID, str]], ip: IPv4Address | IPv6Address | None
) -> frozenset[uuid.UUID]:
    """The reference: an address matches a network holding it, and an IPv4 address and
    its IPv4-mapped IPv6 form are one client (either form in the network matches)."""
    if ip is None:
        return frozenset()
    forms: list[IPv4Address | IPv6Address] = [ip]
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        forms.append(ip.ipv4_mapped)
    if isinstance(ip, IPv4Address):
        forms.append(IPv6Address(int(MAPPED.network_address) + int(ip)))
    found = set()
    for cid, cidr in ranges:
        net = ip_network(cidr)
        if any(form.version == net.version and form in net for form in forms):
            found.add(cid)
    return frozenset(found)


RANGES = [
    (A, "10.0.0.0/8"),
    (B, "10.1.0.0/16"),
    (B, "10.1.2.0/24"),  # overlaps the campaign's own wider range
    (C, "192.0.2.128/25"),
    (A, "2001:db8::/32"),
    (C, "2001:db8:1::/48"),
    (B, "::ffff:198.51.100.0/120"),  # an IPv4 range written in mapped form
]


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.0.0.0", {A}),
        ("10.1.2.3", {A, B}),
        ("10.1.255.255", {A, B}),
        ("10.2.0.0", {A}),
        ("10.255.255.255", {A}),
        ("11.0.0.0", set()),
        ("9.255.255.255", set()),
        ("192.0.2.127", set()),
        ("192.0.2.128", {C}),
        ("192.0.2.255", {C}),
        ("193.0.0.0", set()),
        ("0.0.0.1", set()),
        ("255.255.255.255", set()),
        ("2001:db8::1", {A}),
        ("2001:db8:1::5", {A, C}),
        ("2001:db9::", set()),
        ("::", set()),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", set()),
        # IPv4-mapped IPv6 is looked up as IPv4.
        ("::ffff:10.1.2.3", {A, B}),
        ("::ffff:192.0.2.200", {C}),
        ("::ffff:11.0.0.1", set()),
        # A mapped-form range covers the IPv4 addresses it maps, in either form.
        ("198.51.100.7", {B}),
        ("::ffff:198.51.100.7", {B}),
        ("198.51.101.0", set()),
    ],
)
def test_lookups(ip: str, expected: set[uuid.UUID]) -> None:
    index = IpRangeIndex.build(RANGES)
    address = ip_address(ip)
    assert index.campaigns_for(address) == expected
    assert index.campaigns_for(address) == naive(RANGES, address)


def test_no_address_and_no_ranges() -> None:
    assert IpRangeIndex.build(RANGES).campaigns_for(None) == frozenset()
    empty = IpRangeIndex.build([])
    assert empty.campaigns_for(ip_address("10.0.0.1")) == frozenset()
    assert empty.campaigns_for(ip_address("2001:db8::1")) == frozenset()
    assert empty.range_count == 0


def test_whole_spaces() -> None:
    ranges = [(A, "0.0.0.0/0"), (B, "::/0")]
    index = IpRangeIndex.build(ranges)
    assert index.campaigns_for(IPv4Address(0)) == {A, B}  # ::/0 holds ::ffff:0.0.0.0
    assert index.campaigns_for(ip_address("255.255.255.255")) == {A, B}
    assert index.campaigns_for(ip_address("::ffff:1.2.3.4")) == {A, B}
    assert index.campaigns_for(ip_address("2001:db8::1")) == {B}
    assert index.campaigns_for(ip_address("::")) == {B}


def test_single_hosts_and_malformed_input() -> None:
    index = IpRangeIndex.build([(A, "203.0.113.9/32"), (B, "2001:db8::9/128")])
    assert index.campaigns_for(ip_address("203.0.113.9")) == {A}
    assert index.campaigns_for(ip_address("203.0.113.8")) == frozenset()
    assert index.campaigns_for(ip_address("203.0.113.10")) == frozenset()
    assert index.campaigns_for(ip_address("2001:db8::9")) == {B}
    assert index.campaigns_for(ip_address("2001:db8::a")) == frozenset()
    with pytest.raises(ValueError):
        IpRangeIndex.build([(A, "not-a-network")])


def _v4_networks() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, p: str(IPv4Network((n, p), strict=False)),
        # Clustered in a small space so ranges overlap and addresses land in them.
        st.integers(0, 2**32 - 1).map(lambda n: (n & 0x0000FFFF) | 0x0A000000)
        | st.integers(0, 2**32 - 1),
        st.integers(0, 32),
    )


def _v6_networks() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, p: str(IPv6Network((n, p), strict=False)),
        st.integers(0, 2**128 - 1)
        | st.integers(0, 2**32 - 1).map(lambda n: int(MAPPED.network_address) + n)
        | st.integers(0, 2**16 - 1).map(lambda n: (0x20010DB8 << 96) | n),
        st.integers(0, 128),
    )


def _addresses() -> st.SearchStrategy[IPv4Address | IPv6Address]:
    v4 = st.integers(0, 2**32 - 1).map(IPv4Address) | st.integers(0, 0xFFFF).map(
        lambda n: IPv4Address(0x0A000000 | n)
    )
    v6 = st.integers(0, 2**128 - 1).map(IPv6Address) | st.integers(0, 0xFFFF).map(
        lambda n: IPv6Address((0x20010DB8 << 96) | n)
    )
    mapped = v4.map(lambda a: IPv6Address(int(MAPPED.network_address) + int(a)))
    return v4 | v6 | mapped


@settings(max_examples=300, deadline=None)
@given(
    ranges=st.lists(
        st.tuples(st.sampled_from([A, B, C]), _v4_networks() | _v6_networks()), max_size=25
    ),
    probes=st.lists(_addresses(), min_size=1, max_size=20),
)
def test_index_agrees_with_checking_every_network(
    ranges: list[tuple[uuid.UUID, str]], probes: list[IPv4Address | IPv6Address]
) -> None:
    index = IpRangeIndex.build(ranges)
    # Probe the networks' own edges too: first, last and just outside.
    edges: list[IPv4Address | IPv6Address] = []
    for _, cidr in ranges:
        net = ip_network(cidr)
        top = 2**32 - 1 if net.version == 4 else 2**128 - 1
        cls = IPv4Address if net.version == 4 else IPv6Address
        first, last = int(net.network_address), int(net.broadcast_address)
        edges += [cls(first), cls(last)]
        edges += [cls(first - 1)] if first > 0 else []
        edges += [cls(last + 1)] if last < top else []
    for ip in probes + edges:
        assert index.campaigns_for(ip) == naive(ranges, ip), ip


def _many_ranges(count: int, campaigns: int) -> list[tuple[uuid.UUID, str]]:
    rng = random.Random(7)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(campaigns)]
    out = []
    for i in range(count):
        if i % 5 == 4:
            net: IPv4Network | IPv6Network = IPv6Network(
                ((0x2001 << 112) | (rng.getrandbits(48) << 64), rng.randrange(32, 65)),
                strict=False,
            )
        else:
            net = IPv4Network((rng.getrandbits(32), rng.randrange(8, 33)), strict=False)
        out.append((ids[i % campaigns], str(net)))
    return out


def test_ten_thousand_ranges_build_well_under_a_second() -> None:
    ranges = _many_ranges(10_000, 100)
    started = time.process_time()  # CPU time: other processes on the machine do not count
    index = IpRangeIndex.build(ranges)
    assert time.process_time() - started < 1.0
    assert index.range_count == 10_000
    parsed = [(cid, ip_network(cidr)) for cid, cidr in ranges]
    rng = random.Random(8)
    for cid, net in rng.sample(parsed, 100):
        inside = net.network_address + rng.randrange(net.num_addresses)
        expected = {other for other, n in parsed if n.version == inside.version and inside in n}
        assert cid in expected
        assert index.campaigns_for(inside) == expected


def _reference_parse(cidr: str) -> tuple[int, int, int]:
    net = ip_network(cidr, strict=False)
    return net.version, int(net.network_address), int(net.network_address) + net.num_addresses


@settings(max_examples=300, deadline=None)
@given(cidr=_v4_networks() | _v6_networks())
def test_parse_equals_ip_network(cidr: str) -> None:
    assert _parse(cidr) == _reference_parse(cidr)


@pytest.mark.parametrize(
    "cidr",
    [
        "10.1.2.3/24",  # host bits: ignored, as ip_network(strict=False) does
        "10.0.0.0",
        "2001:db8::1",
        "::ffff:1.2.3.0/120",
        "10.0.0.0/255.0.0.0",  # netmask form: ip_network's path
        "fe80::1%eth0/64",
    ],
)
def test_parse_odd_but_valid_forms(cidr: str) -> None:
    assert _parse(cidr) == _reference_parse(cidr)


@pytest.mark.parametrize(
    "cidr",
    [
        "",
        "/",
        "10.0.0.0/33",
        "2001:db8::/129",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/ 8",
        "10.0.0.0/8_0",
        "10.0.0.0/٨",
        "10.0.0/8",
        "010.0.0.0/8",
        "10.0.0.256/32",
        "1.2.3.4/24/5",
        " 10.0.0.0/8",
        "2001:db8:::/32",
        "not-a-network",
    ],
)
def test_parse_refuses_what_ip_network_refuses(cidr: str) -> None:
    with pytest.raises(ValueError):
        _reference_parse(cidr)
    with pytest.raises(ValueError):
        _parse(cidr)
