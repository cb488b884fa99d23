"""Website visitors: sessions of page views, clicks and form submits, and conversions.

The site has a fixed number of visitor *slots*; each slot hosts one visitor at
a time, who comes back for a few sessions days apart and then leaves, and a new
visitor takes the slot. That keeps memory bounded in an endless stream while
visitors still return over days. Sessions in a slot follow the web rhythm, at
a rate chosen so web events make up ``web_share`` of the input events.

UTM parameters belong to the session: every event of a session carries the
session's ``utm_source`` and ``utm_campaign`` (``direct`` has no campaign).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from simulator.choice import Weighted
from simulator.clock import SECOND, format_ts
from simulator.config import SimulatorConfig
from simulator.ids import IdMaker
from simulator.merge import EventQueue, Timed
from simulator.rhythm import WEB
from simulator.topics import CONVERSIONS, WEB_EVENTS
from simulator.web_profiles import (
    COUNTRIES,
    DRIFTED_INTENTS,
    DWELL_S,
    FORM_PAGES,
    INTENTS,
    LANDING,
    RETURN_DIRECT,
    SOURCES,
    URLS,
    Intent,
    events_per_session,
)

_MAX_SESSIONS = 30
_MAX_PAGES = 40
_MAX_DWELL_MS = 30 * 60 * SECOND


@dataclass(frozen=True, slots=True)
class Visitor:
    """One person on the website, with their hidden intent and fate."""

    visitor_id: str
    intent: Intent
    device: str
    country: str
    sessions: int
    converts: bool


def geometric(rng: random.Random, mean: float, cap: int) -> int:
    """A count >= 1 with the given mean (a geometric distribution), at most ``cap``.

    >>> geometric(random.Random(0), 1.0, 10)
    1
    """
    more = 1.0 - 1.0 / mean
    n = 1
    while n < cap and rng.random() < more:
        n += 1
    return n


class Website:
    """Generates every visitor's web events and conversion labels."""

    def __init__(self, config: SimulatorConfig, queue: EventQueue) -> None:
        per_slot_day = config.input_events_per_day * config.web_share / config.visitors
        self.sessions_per_day = per_slot_day / events_per_session(INTENTS)
        self.start_ms = config.start_ms
        self.drift_ms = config.drift_ms
        self.conversion_delay_ms = config.conversion_delay_ms
        self.queue = queue
        self._intents = Weighted({i: intent.share for i, intent in enumerate(INTENTS)})
        self._visitor_ids = IdMaker("v", 7)
        self._session_ids = IdMaker("s", 8)
        self._event_ids = IdMaker("w")
        self._conversion_ids = IdMaker("cv", 8)

    def slot(self, rng: random.Random) -> Iterator[Timed]:
        """Endless web events of one visitor slot, in time order."""
        if self.sessions_per_day <= 0:
            return
        t = self.start_ms
        while True:
            visitor = self._new_visitor(rng, t)
            for k in range(visitor.sessions):
                t = WEB.next_time(rng, t, self.sessions_per_day)
                converting = visitor.converts and k == visitor.sessions - 1
                events = self._session(rng, visitor, t, k > 0, converting)
                yield from events
                t = events[-1][0]
                if converting:
                    self._convert(rng, visitor, t)

    def _new_visitor(self, rng: random.Random, t: int) -> Visitor:
        drifted = self.drift_ms is not None and t >= self.drift_ms
        intent = (DRIFTED_INTENTS if drifted else INTENTS)[self._intents.pick(rng)]
        return Visitor(
            visitor_id=self._visitor_ids(),
            intent=intent,
            device=intent.devices.pick(rng),
            country=COUNTRIES.pick(rng),
            sessions=geometric(rng, intent.sessions_mean, _MAX_SESSIONS),
            converts=rng.random() < intent.conversion,
        )

    def _session(
        self, rng: random.Random, visitor: Visitor, t: int, returning: bool, converting: bool
    ) -> list[Timed]:
        intent = visitor.intent
        source = intent.sources.pick(rng)
        if returning and rng.random() < RETURN_DIRECT:
            source = "direct"
        campaigns, referrer = SOURCES[source]
        context = {
            "visitor_id": visitor.visitor_id,
            "session_id": self._session_ids(),
            "utm_source": source,
            "utm_campaign": campaigns[0] if len(campaigns) == 1 else rng.choice(campaigns),
            "device": visitor.device,
            "country": visitor.country,
        }
        pages = geometric(rng, intent.pages_mean, _MAX_PAGES)
        page_type = LANDING[source].pick(rng)
        events: list[Timed] = []
        for i in range(pages):
            last = i == pages - 1
            if converting and last and page_type not in FORM_PAGES:
                page_type = rng.choice(FORM_PAGES)
            url = rng.choice(URLS[page_type])
            dwell = _dwell_ms(rng, page_type)
            page = {"url": url, "page_type": page_type, "referrer": referrer}
            events.append(self._event(t, "page_view", dwell, page, context))
            if rng.random() < intent.click_rate:
                offset = int(dwell * rng.uniform(0.1, 0.8))
                events.append(self._event(t + offset, "click", offset, page, context))
            if page_type in FORM_PAGES and ((converting and last) or rng.random() < intent.stray_submit):
                offset = int(dwell * 0.9)
                events.append(self._event(t + offset, "form_submit", offset, page, context))
            referrer = url
            t += dwell + rng.randint(300, 3000)
            page_type = intent.pages.pick(rng)
        return events

    def _event(self, t: int, kind: str, duration_ms: int, page: dict, context: dict) -> Timed:
        event = {
            "topic": WEB_EVENTS,
            "event_id": self._event_ids(),
            "ts": format_ts(t),
            "visitor_id": context["visitor_id"],
            "session_id": context["session_id"],
            "type": kind,
            "url": page["url"],
            "page_type": page["page_type"],
            "duration_ms": duration_ms,
            "referrer": page["referrer"],
            "utm_source": context["utm_source"],
            "utm_campaign": context["utm_campaign"],
            "device": context["device"],
            "country": context["country"],
        }
        return t, event

    def _convert(self, rng: random.Random, visitor: Visitor, session_end: int) -> None:
        t = session_end + rng.randint(*self.conversion_delay_ms)
        label = {
            "topic": CONVERSIONS,
            "event_id": self._conversion_ids(),
            "ts": format_ts(t),
            "visitor_id": visitor.visitor_id,
            "converted": True,
        }
        self.queue.schedule(t, label)


def _dwell_ms(rng: random.Random, page_type: str) -> int:
    """Time on a page: log-normal around the page type's median, 1 s .. 30 min."""
    ms = DWELL_S[page_type] * SECOND * rng.lognormvariate(0.0, 0.8)
    return int(min(max(ms, SECOND), _MAX_DWELL_MS))
