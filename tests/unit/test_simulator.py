"""The simulator's contract: count, order, determinism, schemas, labels and rates."""

from __future__ import annotations

import re
from collections import Counter
from itertools import islice

import pytest

from simulator import SimulatorConfig, simulate, simulate_with_truth
from simulator import topics as sim_topics
from simulator.clock import DAY, parse_ts
from stream import topics

N = 100_000
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OPTIONAL = type(None)
SCHEMAS = {
    "web-events": {
        "event_id": str, "ts": str, "visitor_id": str, "session_id": str, "type": str,
        "url": str, "page_type": str, "duration_ms": int, "referrer": (str, OPTIONAL),
        "utm_source": str, "utm_campaign": (str, OPTIONAL), "device": str, "country": str,
    },
    "transactions": {
        "event_id": str, "ts": str, "customer_id": str, "terminal_id": str, "amount": float,
        "currency": str, "card_present": bool, "merchant_category": str, "lat": float,
        "lon": float,
    },
    "conversions": {"event_id": str, "ts": str, "visitor_id": str, "converted": bool},
    "fraud-labels": {"event_id": str, "ts": str, "is_fraud": bool},
}  # fmt: skip
PAGE_TYPES = {"home", "product", "pricing", "demo", "docs", "blog", "account", "contact"}


@pytest.fixture(scope="module")
def stream() -> list[tuple[dict, str | None]]:
    """100k events at the default config, with ground truth (generated once)."""
    return list(simulate_with_truth(N, seed=0))


@pytest.fixture(scope="module")
def events(stream) -> list[dict]:
    return [event for event, _ in stream]


@pytest.fixture(scope="module")
def by_topic(events) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for event in events:
        grouped.setdefault(event["topic"], []).append(event)
    return grouped


@pytest.mark.parametrize("count", [0, 1, 2_345])
def test_yields_exactly_the_requested_number_of_events(count):
    assert sum(1 for _ in simulate(count, seed=4)) == count


def test_a_negative_count_is_refused():
    with pytest.raises(ValueError, match="events"):
        simulate(-1)


def test_the_same_seed_gives_the_same_events_and_another_seed_others():
    assert list(simulate(3_000, seed=11)) == list(simulate(3_000, seed=11))
    assert list(simulate(3_000, seed=11)) != list(simulate(3_000, seed=12))


def test_the_same_seed_and_config_give_the_same_events_out_of_order_and_drifted():
    config = SimulatorConfig(out_of_order_fraction=0.2, drift_at=SimulatorConfig().start)
    assert list(simulate(3_000, 5, config)) == list(simulate(3_000, 5, config))


def test_endless_mode_is_lazy():
    endless = simulate(None, seed=3)
    first = list(islice(endless, 1_000))
    assert len(first) == 1_000
    assert next(endless)["ts"] >= first[-1]["ts"]


def test_all_four_topics_appear_and_match_the_streaming_edge(by_topic):
    assert set(by_topic) == set(sim_topics.INPUT_TOPICS + sim_topics.LABEL_TOPICS)
    assert sim_topics.INPUT_TOPICS == topics.INPUT_TOPICS
    assert sim_topics.LABEL_TOPICS == topics.LABEL_TOPICS


def test_events_come_in_event_time_order(events):
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)


def test_every_event_follows_its_topic_schema(by_topic):
    for topic, schema in SCHEMAS.items():
        for event in by_topic[topic]:
            assert set(event) == {"topic", *schema}, event
            for name, kind in schema.items():
                assert isinstance(event[name], kind), (name, event)
            assert TS.match(event["ts"]), event


def test_field_values_are_plausible(by_topic):
    web, tx = by_topic["web-events"], by_topic["transactions"]
    assert {e["type"] for e in web} == {"page_view", "click", "form_submit"}
    assert {e["page_type"] for e in web} == PAGE_TYPES
    assert {e["device"] for e in web} == {"desktop", "mobile", "tablet"}
    assert all(len(e["country"]) == 2 and e["country"].isupper() for e in web)
    assert all(e["url"].startswith("/") and e["duration_ms"] >= 0 for e in web)
    assert all(e["amount"] > 0 and round(e["amount"], 2) == e["amount"] for e in tx)
    assert Counter(e["currency"] for e in tx).most_common(1)[0][0] == "EUR"
    assert all(-90 <= e["lat"] <= 90 and -180 <= e["lon"] <= 180 for e in tx)
    assert {True, False} == {e["card_present"] for e in tx}


def test_event_ids_are_unique(by_topic):
    for topic in ("web-events", "transactions", "conversions"):
        ids = [e["event_id"] for e in by_topic[topic]]
        assert len(ids) == len(set(ids)), topic


def test_utm_parameters_are_carried_through_each_session(by_topic):
    seen: dict[str, tuple] = {}
    for e in by_topic["web-events"]:
        utm = (e["visitor_id"], e["utm_source"], e["utm_campaign"], e["device"])
        assert seen.setdefault(e["session_id"], utm) == utm


def test_visitors_return_in_several_sessions(by_topic):
    sessions: dict[str, set[str]] = {}
    for e in by_topic["web-events"]:
        sessions.setdefault(e["visitor_id"], set()).add(e["session_id"])
    returning = sum(len(s) > 1 for s in sessions.values())
    assert 0.15 < returning / len(sessions) < 0.8


def test_web_and_transactions_are_about_half_each_and_span_weeks(events, by_topic):
    web, tx = len(by_topic["web-events"]), len(by_topic["transactions"])
    assert 0.4 < web / (web + tx) < 0.6
    span_days = (parse_ts(events[-1]["ts"]) - parse_ts(events[0]["ts"])) / DAY
    assert 14 < span_days < 42


def test_fraud_is_well_under_one_percent_of_transactions(stream):
    truths = [truth for event, truth in stream if event["topic"] == "transactions"]
    rate = sum(t is not None for t in truths) / len(truths)
    assert 0.001 < rate < 0.006


def test_every_fraud_label_follows_an_earlier_transaction_and_tells_the_truth(stream):
    seen: dict[str, tuple[str, str | None]] = {}
    values = Counter()
    for event, truth in stream:
        if event["topic"] == "transactions":
            seen[event["event_id"]] = (event["ts"], truth)
        elif event["topic"] == "fraud-labels":
            assert event["event_id"] in seen, event
            tx_ts, tx_truth = seen[event["event_id"]]
            delay = parse_ts(event["ts"]) - parse_ts(tx_ts)
            assert DAY <= delay <= 14 * DAY
            assert event["is_fraud"] == (tx_truth is not None)
            values[event["is_fraud"]] += 1
    assert values[True] > 50 and values[False] > 50


def test_every_conversion_follows_its_visitors_session_by_hours(events):
    last_seen: dict[str, int] = {}
    for event in events:
        if event["topic"] == "web-events":
            last_seen[event["visitor_id"]] = parse_ts(event["ts"])
        elif event["topic"] == "conversions":
            assert event["visitor_id"] in last_seen and event["converted"] is True
            hours = (parse_ts(event["ts"]) - last_seen[event["visitor_id"]]) / 3_600_000
            assert 1 <= hours <= 8


def test_a_few_percent_of_visitors_convert_after_submitting_a_form(by_topic):
    visitors = {e["visitor_id"] for e in by_topic["web-events"]}
    submitted = {e["visitor_id"] for e in by_topic["web-events"] if e["type"] == "form_submit"}
    converted = {e["visitor_id"] for e in by_topic["conversions"]}
    assert 0.02 < len(converted) / len(visitors) < 0.12
    assert converted <= submitted


def test_desktop_and_high_intent_pages_convert_more(by_topic):
    converted = {e["visitor_id"] for e in by_topic["conversions"]}
    device, pricing = {}, set()
    for e in by_topic["web-events"]:
        device[e["visitor_id"]] = e["device"]
        if e["page_type"] == "pricing":
            pricing.add(e["visitor_id"])

    def rate(group: set[str]) -> float:
        return len(group & converted) / len(group)

    desktop = {v for v, d in device.items() if d == "desktop"}
    assert rate(desktop) > 1.5 * rate(set(device) - desktop)
    assert rate(pricing) > 1.5 * rate(set(device) - pricing)


def test_late_events_lag_at_most_max_lateness_behind_the_newest():
    config = SimulatorConfig(out_of_order_fraction=0.05, max_lateness_s=600)
    newest, late, tx_seen = 0, 0, set()
    for event in simulate(20_000, seed=9, config=config):
        ts = parse_ts(event["ts"])
        if ts < newest:
            late += 1
            assert event["topic"] in sim_topics.INPUT_TOPICS
            assert newest - ts <= 600_000
        newest = max(newest, ts)
        if event["topic"] == "transactions":
            tx_seen.add(event["event_id"])
        elif event["topic"] == "fraud-labels":
            assert event["event_id"] in tx_seen
    assert 0.02 * 20_000 < late < 0.08 * 20_000
