"""Decoding and validating input events: untrusted bytes in, typed events or a reason out.

Every event from Kafka is untrusted. ``parse_transaction`` and ``parse_web_event``
either return a typed, frozen event or raise :class:`InvalidEvent` with a short
``reason`` (a Prometheus label and the dead-letter reason) and a ``detail`` that
names the offending field. Nothing else may escape from them.

>>> tx = parse_transaction(b'{"event_id": "t1", "ts": "2026-01-01T00:00:00Z",'
...     b' "customer_id": "c1", "terminal_id": "k1", "amount": 12.5}')
>>> tx.amount, tx.ts_ms
(12.5, 1767225600000)
>>> parse_transaction(b'{"event_id": "t1"}')
Traceback (most recent call last):
...
stream.events.InvalidEvent: missing_field: 'ts' is required
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

#: Events outside these event-time bounds are rejected as absurd (2000-01-01 .. 2100-01-01).
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Largest amount accepted on a single transaction, in its currency.
MAX_AMOUNT = 10_000_000.0
#: Longest time on a page accepted, in milliseconds (one day).
MAX_DURATION_MS = 86_400_000
#: Longest identifier accepted, in characters.
MAX_ID_LENGTH = 200

WEB_EVENT_TYPES = frozenset({"page_view", "click", "form_submit", "scroll", "video_play"})
PAGE_TYPES = frozenset(
    {"home", "product", "pricing", "demo", "docs", "blog", "account", "contact", "other"}
)


class InvalidEvent(ValueError):
    """An input event that cannot be scored; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Transaction:
    """A card payment, as received on ``transactions``."""

    event_id: str
    ts_ms: int
    customer_id: str
    terminal_id: str
    amount: float
    currency: str = "EUR"
    card_present: bool | None = None
    merchant_category: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class WebEvent:
    """A website-behaviour event, as received on ``web-events``."""

    event_id: str
    ts_ms: int
    visitor_id: str
    session_id: str
    type: str
    url: str
    page_type: str
    duration_ms: int | None = None
    referrer: str | None = None
    utm_source: str | None = None
    utm_campaign: str | None = None
    device: str | None = None
    country: str | None = None


def decode_object(raw: bytes) -> dict:
    """Decode one JSON object; anything else is an :class:`InvalidEvent`."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("malformed_json", str(exc)) from None
    if not isinstance(value, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(value).__name__}")
    return value


def parse_ts(value: object, field: str = "ts") -> int:
    """Event time in epoch milliseconds from ISO-8601 (UTC) or epoch milliseconds.

    >>> parse_ts("2026-01-01T00:00:01.500Z"), parse_ts(1767225601500)
    (1767225601500, 1767225601500)
    """
    if isinstance(value, bool):
        raise InvalidEvent("wrong_type", f"{field!r} must be ISO-8601 or epoch ms, got a bool")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidEvent("not_finite", f"{field!r} is {value}")
        ts_ms = int(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent("bad_timestamp", f"{field!r}={value[:40]!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts_ms = (parsed - EPOCH) // timedelta(milliseconds=1)
    else:
        raise InvalidEvent("wrong_type", f"{field!r} must be ISO-8601 or epoch ms")
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise InvalidEvent("out_of_range", f"{field!r}={value!r} is outside 2000..2100")
    return ts_ms


def _text(obj: dict, field: str, required: bool = True) -> str | None:
    value = obj.get(field)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{field!r} is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"{field!r} must be a string")
    if required and not value:
        raise InvalidEvent("missing_field", f"{field!r} is empty")
    if len(value) > MAX_ID_LENGTH and field != "url" and field != "referrer":
        raise InvalidEvent("out_of_range", f"{field!r} is longer than {MAX_ID_LENGTH} characters")
    return value


def _number(obj: dict, field: str, low: float, high: float, required: bool = True) -> float | None:
    value = obj.get(field)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{field!r} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("wrong_type", f"{field!r} must be a number")
    if not math.isfinite(value):
        raise InvalidEvent("not_finite", f"{field!r} is {value}")
    if not low <= value <= high:
        raise InvalidEvent("out_of_range", f"{field!r}={value} is outside [{low}, {high}]")
    return float(value)


def _flag(obj: dict, field: str) -> bool | None:
    value = obj.get(field)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidEvent("wrong_type", f"{field!r} must be a boolean")


def _ts(obj: dict) -> int:
    if obj.get("ts") is None:
        raise InvalidEvent("missing_field", "'ts' is required")
    return parse_ts(obj["ts"])


def transaction_from_dict(obj: dict) -> Transaction:
    """Validate a decoded transaction."""
    return Transaction(
        event_id=_text(obj, "event_id"),
        ts_ms=_ts(obj),
        customer_id=_text(obj, "customer_id"),
        terminal_id=_text(obj, "terminal_id"),
        amount=_number(obj, "amount", 0.0, MAX_AMOUNT),
        currency=_text(obj, "currency", required=False) or "EUR",
        card_present=_flag(obj, "card_present"),
        merchant_category=_text(obj, "merchant_category", required=False),
        lat=_number(obj, "lat", -90.0, 90.0, required=False),
        lon=_number(obj, "lon", -180.0, 180.0, required=False),
    )


def web_event_from_dict(obj: dict) -> WebEvent:
    """Validate a decoded web event."""
    event_type = _text(obj, "type")
    if event_type not in WEB_EVENT_TYPES:
        raise InvalidEvent("unknown_type", f"'type'={event_type[:40]!r} is not a known web event")
    page_type = _text(obj, "page_type")
    if page_type not in PAGE_TYPES:
        raise InvalidEvent("unknown_type", f"'page_type'={page_type[:40]!r} is not a known page")
    duration = _number(obj, "duration_ms", 0, MAX_DURATION_MS, required=False)
    return WebEvent(
        event_id=_text(obj, "event_id"),
        ts_ms=_ts(obj),
        visitor_id=_text(obj, "visitor_id"),
        session_id=_text(obj, "session_id"),
        type=event_type,
        url=_text(obj, "url"),
        page_type=page_type,
        duration_ms=None if duration is None else int(duration),
        referrer=_text(obj, "referrer", required=False),
        utm_source=_text(obj, "utm_source", required=False),
        utm_campaign=_text(obj, "utm_campaign", required=False),
        device=_text(obj, "device", required=False),
        country=_text(obj, "country", required=False),
    )


def parse_transaction(raw: bytes) -> Transaction:
    """Decode and validate a ``transactions`` record value."""
    return transaction_from_dict(decode_object(raw))


def parse_web_event(raw: bytes) -> WebEvent:
    """Decode and validate a ``web-events`` record value."""
    return web_event_from_dict(decode_object(raw))
