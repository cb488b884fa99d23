"""Per-visitor state and the web-behaviour features computed from it.

A session is the visitor's run of events sharing one ``session_id``. State is
updated with the current event before features are read.

>>> from stream.events import WebEvent
>>> state = VisitorState()
>>> for ts, page in [(0, "home"), (MINUTE, "pricing"), (2 * MINUTE, "demo")]:
...     event = WebEvent("e", ts, "v1", "s1", "page_view", "/" + page, page)
...     update(state, event)
>>> page_views_30m(state, event), pricing_views_7d(state, event), current_session_depth(state, event)
(3, 1, 3)
"""

from __future__ import annotations

import orjson

from features.time import DAY, MINUTE, SECOND
from features.windows import EventWindow
from stream.events import WebEvent

#: The longest window any visitor feature looks back over.
HORIZON_MS = 7 * DAY
#: Page types and events that show buying intent, counted by ``demo_or_form_events_7d``.
INTENT_PAGES = frozenset({"demo", "contact"})
_PRICING, _INTENT, _OTHER = 2.0, 1.0, 0.0


class VisitorState:
    """What is remembered about one visitor: their page views and their current session."""

    __slots__ = ("views", "newest_ts", "session_id", "session_start", "session_depth",
                 "previous_session_end", "last_ts")

    def __init__(self) -> None:
        self.views = EventWindow()  # value: 2 pricing, 1 demo/contact/form, 0 other
        self.newest_ts = 0
        self.session_id: str | None = None
        self.session_start = 0
        self.session_depth = 0
        self.previous_session_end: int | None = None
        self.last_ts = 0

    def to_bytes(self) -> bytes:
        return orjson.dumps([self.newest_ts, self.views.ts, self.views.values, self.session_id,
                             self.session_start, self.session_depth, self.previous_session_end,
                             self.last_ts])

    @classmethod
    def from_bytes(cls, raw: bytes) -> VisitorState:
        state = cls()
        (state.newest_ts, ts, values, state.session_id, state.session_start, state.session_depth,
         state.previous_session_end, state.last_ts) = orjson.loads(raw)
        state.views = EventWindow(ts, values)
        return state


def _intent(event: WebEvent) -> float:
    if event.page_type == "pricing":
        return _PRICING
    if event.page_type in INTENT_PAGES or event.type == "form_submit":
        return _INTENT
    return _OTHER


def update(state: VisitorState, event: WebEvent) -> None:
    """Add a web event to its visitor's state: the page-view window and the session."""
    state.views.add(event.ts_ms, _intent(event))
    state.newest_ts = max(state.newest_ts, event.ts_ms)
    state.views.prune(state.newest_ts, HORIZON_MS)
    if event.session_id != state.session_id:
        if state.session_id is not None:
            state.previous_session_end = state.last_ts
        state.session_id = event.session_id
        state.session_start = event.ts_ms
        state.session_depth = 0
        state.last_ts = event.ts_ms
    state.session_depth += 1
    state.session_start = min(state.session_start, event.ts_ms)
    state.last_ts = max(state.last_ts, event.ts_ms)


def page_views_30m(state: VisitorState, event: WebEvent) -> int:
    """The visitor's events in ``(t - 30 minutes, t]``, this one included."""
    return state.views.count(event.ts_ms, 30 * MINUTE)


def page_views_24h(state: VisitorState, event: WebEvent) -> int:
    """The visitor's events in ``(t - 24 hours, t]``."""
    return state.views.count(event.ts_ms, DAY)


def page_views_7d(state: VisitorState, event: WebEvent) -> int:
    """The visitor's events in ``(t - 7 days, t]``."""
    return state.views.count(event.ts_ms, 7 * DAY)


def pricing_views_7d(state: VisitorState, event: WebEvent) -> int:
    """The visitor's pricing-page events in ``(t - 7 days, t]``."""
    lo, hi = state.views.span(event.ts_ms, 7 * DAY)
    return sum(1 for value in state.views.values[lo:hi] if value == _PRICING)


def demo_or_form_events_7d(state: VisitorState, event: WebEvent) -> int:
    """The visitor's demo/contact-page events and form submits in ``(t - 7 days, t]``."""
    lo, hi = state.views.span(event.ts_ms, 7 * DAY)
    return sum(1 for value in state.views.values[lo:hi] if value == _INTENT)


def current_session_depth(state: VisitorState, event: WebEvent) -> int:
    """Events so far in the visitor's current session, this one included."""
    return state.session_depth


def current_session_seconds(state: VisitorState, event: WebEvent) -> float:
    """Seconds from the current session's first event to this one."""
    return max(0, event.ts_ms - state.session_start) / SECOND


def seconds_since_last_visit(state: VisitorState, event: WebEvent) -> float:
    """Seconds between the previous session's last event and this session's start (7 days if none)."""
    if state.previous_session_end is None:
        return HORIZON_MS / SECOND
    return max(0, state.session_start - state.previous_session_end) / SECOND


def is_form_submit(state: VisitorState, event: WebEvent) -> float:
    """1.0 when this event is a form submit."""
    return 1.0 if event.type == "form_submit" else 0.0
