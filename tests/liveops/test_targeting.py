"""Targeting: each rule kind alone and together, schedule edges, segments, and `explain`
agreeing with `matches` while saying why."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from gameportal.liveops.targeting import (
    Campaign,
    Facts,
    ProgressFacts,
    Segment,
    accept_language_tags,
    compile_campaign,
    explain,
    matches,
)
from tests.liveops.support import GAME, NOW, campaign, campaign_row, facts, rule

Progress = dict[uuid.UUID, ProgressFacts]


def _check(c: Campaign, f: Facts, in_ip_ranges: bool = False) -> bool:
    """`matches`, checked against `explain`'s verdicts."""
    verdicts = explain(c, f, in_ip_ranges)
    assert [v.kind for v in verdicts] == [
        "active",
        "schedule",
        "countries",
        "ipRanges",
        "deviceTypes",
        "languages",
        "segment",
    ]
    result = matches(c, f, in_ip_ranges)
    assert result == all(v.matched for v in verdicts)
    return result


def _verdict(c: Campaign, f: Facts, kind: str, in_ip_ranges: bool = False) -> tuple[bool, str]:
    (v,) = [v for v in explain(c, f, in_ip_ranges) if v.kind == kind]
    return v.matched, v.detail


def test_compile_from_rows() -> None:
    control = rule(3, payload={"price": 4.99}, content_ids=[str(GAME)])
    other = rule(1, payload={"price": 3.99}, active=False, end_at=NOW)
    row = campaign_row(
        [control, other],
        targeting={
            "countries": ["de", "AT"],
            "ipRanges": ["10.0.0.0/8"],
            "deviceTypes": ["mobile"],
            "languages": ["pt-BR", "EN"],
            "segment": {"gameId": str(GAME), "minLevel": 3, "hasAchievement": "first-win"},
        },
        coverage=0.5,
        hash_seed="spring",
        exclusion_group="store",
    )
    c = compile_campaign(row, {control.id: control, other.id: other}, False)
    assert c.id == row.id and c.name == "Spring sale"
    assert c.hash_seed == "spring" and c.coverage == 0.5 and c.exclusion_group == "store"
    assert c.countries == frozenset({"DE", "AT"}) and c.device_types == frozenset({"MOBILE"})
    assert c.languages == frozenset({"pt", "en"})
    assert c.has_ip_ranges  # listed in the rules even though no rows were said to exist
    assert c.segment == Segment(GAME, min_level=3, has_achievement="first-win")
    assert [v.id for v in c.variants] == [control.id, other.id]  # order kept, control first
    assert c.variants[0].weight == 3 and c.variants[0].payload == {"price": 4.99}
    assert c.variants[0].content_ids == (GAME,)
    assert c.variants[1].active is False and c.variants[1].end_at == NOW


def test_compile_defaults_match_everyone() -> None:
    v = rule()
    row = campaign_row([v], targeting={"countries": [], "deviceTypes": None})
    row.hash_seed = ""
    c = compile_campaign(row, {v.id: v}, False)
    assert c.countries is None and c.device_types is None and c.languages is None
    assert c.segment is None and not c.has_ip_ranges
    assert c.hash_seed == str(row.id)  # the default seed: the campaign's id
    assert _check(c, facts(ip=None, country=None, device_type="OTHER", languages=()))


def test_compile_skips_unknown_variant_ids() -> None:
    v = rule()
    row = campaign_row([v])
    row.ab_variants = [uuid.uuid4(), v.id]
    assert [x.id for x in compile_campaign(row, {v.id: v}, False).variants] == [v.id]


def test_inactive_campaign() -> None:
    c = campaign(active=False)
    assert not _check(c, facts())
    assert _verdict(c, facts(), "active") == (False, "campaign is inactive")


@pytest.mark.parametrize(
    ("country", "expected"), [("DE", True), ("AT", True), ("FR", False), (None, False)]
)
def test_countries(country: str | None, expected: bool) -> None:
    c = campaign(targeting={"countries": ["DE", "AT"]})
    assert _check(c, facts(country=country)) is expected


def test_country_detail_names_the_resolved_country() -> None:
    c = campaign(targeting={"countries": ["AT", "DE"]})
    assert _verdict(c, facts(country="FR"), "countries") == (
        False,
        "IP 203.0.113.7 resolved to FR, not one of AT, DE",
    )
    assert _verdict(c, facts(country="DE"), "countries") == (
        True,
        "IP 203.0.113.7 resolved to DE, one of AT, DE",
    )
    matched, detail = _verdict(c, facts(ip="10.0.0.1", country=None), "countries")
    assert not matched and "10.0.0.1 resolved to no country" in detail


@pytest.mark.parametrize(
    ("device", "expected"), [("MOBILE", True), ("DESKTOP", True), ("OTHER", False)]
)
def test_device_types(device: str, expected: bool) -> None:
    c = campaign(targeting={"deviceTypes": ["MOBILE", "DESKTOP"]})
    assert _check(c, facts(device_type=device)) is expected
    matched, detail = _verdict(c, facts(device_type=device), "deviceTypes")
    assert matched is expected and f"device type {device}" in detail


@pytest.mark.parametrize(
    ("languages", "expected"),
    [(("pt",), True), (("fr", "pt"), True), (("en",), False), ((), False)],
)
def test_languages(languages: tuple[str, ...], expected: bool) -> None:
    c = campaign(targeting={"languages": ["pt", "es"]})
    assert _check(c, facts(languages=languages)) is expected


def test_language_matches_on_primary_tag() -> None:
    c = campaign(targeting={"languages": ["pt-BR"]})
    tags = accept_language_tags("pt-PT;q=0.9, en-GB")
    assert tags == ("en", "pt")
    assert _check(c, facts(languages=tags))
    assert _verdict(c, facts(languages=tags), "languages") == (True, "language pt is one of pt")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ()),
        ("", ()),
        ("de-CH, de;q=0.9, en;q=0.8, *;q=0.5", ("de", "en")),
        ("fr;q=0.1, es;q=0.7, it", ("it", "es", "fr")),
        ("en;q=0, fr", ("fr",)),
        ("en;q=abc, fr;q=2, de;q=nan, nl", ("nl",)),
        ("zh_Hant_TW, x1-bad, ;q=1, ja", ("zh", "ja")),
        (", ".join(["en"] * 1000), ("en",)),
    ],
)
def test_accept_language_tags(header: str | None, expected: tuple[str, ...]) -> None:
    assert accept_language_tags(header) == expected


def test_ip_ranges_come_from_the_caller() -> None:
    c = campaign(ip_ranges=True)
    assert _check(c, facts(), in_ip_ranges=True)
    assert not _check(c, facts(), in_ip_ranges=False)
    assert _verdict(c, facts(ip=None), "ipRanges")[0] is False
    no_ranges = campaign()
    assert _check(no_ranges, facts(), in_ip_ranges=False)


def test_schedule_edges_start_inclusive_end_exclusive() -> None:
    start, end = NOW, NOW + timedelta(days=7)
    c = campaign(start_at=start, end_at=end)
    tick = timedelta(microseconds=1)
    assert not _check(c, facts(now=start - tick))
    assert _check(c, facts(now=start))
    assert _check(c, facts(now=end - tick))
    assert not _check(c, facts(now=end))
    matched, detail = _verdict(c, facts(now=end), "schedule")
    assert not matched and detail == (
        "2026-05-08T12:00:00Z is at or after endAt 2026-05-08T12:00:00Z"
    )
    matched, detail = _verdict(c, facts(now=start - tick), "schedule")
    assert not matched and "before startAt 2026-05-01T12:00:00Z" in detail


def test_open_ended_schedules() -> None:
    assert _check(campaign(start_at=NOW), facts(now=NOW + timedelta(days=3650)))
    assert not _check(campaign(start_at=NOW), facts(now=NOW - timedelta(seconds=1)))
    assert _check(campaign(end_at=NOW), facts(now=NOW - timedelta(days=3650)))
    assert not _check(campaign(end_at=NOW), facts(now=NOW))


def _progress(level: int = 5, points: int = 100, *achievements: str) -> Progress:
    return {GAME: ProgressFacts(level=level, points=points, achievements=frozenset(achievements))}


@pytest.mark.parametrize(
    ("progress", "failure"),
    [
        (_progress(5, 100, "first-win"), None),
        (_progress(4, 100, "first-win"), None),
        (_progress(3, 100, "first-win"), "level 3 is below minLevel 4"),
        (_progress(11, 100, "first-win"), "level 11 is above maxLevel 10"),
        (_progress(10, 50, "first-win"), None),
        (_progress(5, 49, "first-win"), "points 49 are below minPoints 50"),
        (_progress(5, 100), "achievement 'first-win' not unlocked"),
        ({}, f"no progress in game {GAME}"),
        ({uuid.uuid4(): _progress()[GAME]}, f"no progress in game {GAME}"),
    ],
)
def test_segments(progress: Progress, failure: str | None) -> None:
    segment = {
        "gameId": str(GAME),
        "minLevel": 4,
        "maxLevel": 10,
        "minPoints": 50,
        "hasAchievement": "first-win",
    }
    c = campaign(targeting={"segment": segment})
    f = facts(progress=progress)
    assert _check(c, f) is (failure is None)
    matched, detail = _verdict(c, f, "segment")
    assert matched is (failure is None)
    if failure is not None:
        assert detail == failure


def test_segment_with_only_a_game_needs_progress_in_it() -> None:
    c = campaign(targeting={"segment": {"gameId": str(GAME)}})
    assert _check(c, facts(progress=_progress(1, 0)))
    assert not _check(c, facts())  # anonymous


def test_all_kinds_must_match_and_explain_names_the_failing_one() -> None:
    c = campaign(
        ip_ranges=True,
        targeting={
            "countries": ["DE"],
            "deviceTypes": ["MOBILE"],
            "languages": ["de"],
            "segment": {"gameId": str(GAME), "minLevel": 2},
        },
        start_at=NOW - timedelta(days=1),
        end_at=NOW + timedelta(days=1),
    )
    good = facts(progress=_progress(2, 0))
    assert _check(c, good, in_ip_ranges=True)
    for bad, kind in [
        (facts(country="AT", progress=_progress(2, 0)), "countries"),
        (facts(device_type="DESKTOP", progress=_progress(2, 0)), "deviceTypes"),
        (facts(languages=("en",), progress=_progress(2, 0)), "languages"),
        (facts(progress=_progress(1, 0)), "segment"),
        (facts(now=NOW + timedelta(days=1), progress=_progress(2, 0)), "schedule"),
    ]:
        assert not _check(c, bad, in_ip_ranges=True)
        failed = [v.kind for v in explain(c, bad, True) if not v.matched]
        assert failed == [kind]
    assert [v.kind for v in explain(c, good, False) if not v.matched] == ["ipRanges"]
