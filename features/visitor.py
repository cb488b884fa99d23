"""Per-visitor state and the web-behaviour features computed from it.

Every window ``(t - w, t]`` is in event time over the visitor's events that
reached the engine up to and including the one being scored (added first). A
session is the visitor's events sharing one ``session_id``.

>>> from stream.events import WebEvent
>>> state = VisitorState()
>>> for ts, page in [(0, "home"), (60_000, "pricing"), (120_000, "demo")]:
...     event = WebEvent("e", ts, "v1", "s1", "page_view", "/" + page, page)
...     update(state, event, lateness_ms=0)
>>> page_views_30m(state, event), pricing_views_7d(state, event), current_session_depth(state, event)
(3, 1, 3)
>>> current_session_seconds(state, event), distinct_pages_24h(state, event)
(120.0, 3)
"""

from __future__ import annotations

from features.time import DAY, MINUTE, SECOND
from features.windows import EventWindow
from stream.events import WebEvent

#: The longest window any visitor feature looks back over.
LONGEST_WINDOW_MS = 7 * DAY
#: Pages that show buying intent, counted by ``demo_or_form_events_7d``.
INTENT_PAGES = frozenset({"demo", "contact"})

# What each remembered event was, as bit flags (the window's integer value).
PAGE_VIEW, PRICING, DOCS, INTENT, FORM_SUBMIT = 1, 2, 4, 8, 16


def event_flags(event: WebEvent) -> int:
    """The bit flags remembered for an event.

    >>> event_flags(WebEvent("e", 0, "v", "s", "form_submit", "/demo", "demo")) == INTENT | FORM_SUBMIT
    True
    """
    flags = 0
    if event.type == "page_view":
        flags |= PAGE_VIEW
        if event.page_type == "pricing":
            flags |= PRICING
        elif event.page_type == "docs":
            flags |= DOCS
    if event.type == "form_submit":
        flags |= FORM_SUBMIT | INTENT
    elif event.page_type in INTENT_PAGES:
        flags |= INTENT
    return flags


class VisitorState:
    """What is remembered about one visitor: their events' time, kind, session and page."""

    __slots__ = ("events", "sessions", "urls", "newest_ts", "current_index")

    def __init__(self) -> None:
        self.events = EventWindow()  # values: event_flags
        self.sessions: list[str] = []  # parallel to events
        self.urls: list[str] = []  # parallel to events ("" when not a page view)
        self.newest_ts = 0
        self.current_index = 0

    def to_list(self) -> list:
        return [self.newest_ts, self.current_index, self.events.ts, self.events.values,
                self.sessions, self.urls]

    @classmethod
    def from_list(cls, data: list) -> VisitorState:
        state = cls()
        state.newest_ts, state.current_index, ts, values, state.sessions, state.urls = data
        state.events = EventWindow(ts, values)
        return state


def update(state: VisitorState, event: WebEvent, lateness_ms: int) -> None:
    """Add a web event to its visitor's state and prune what no window can still need."""
    flags = event_flags(event)
    index = state.events.add(event.ts_ms, flags)
    state.sessions.insert(index, event.session_id)
    state.urls.insert(index, event.url if flags & PAGE_VIEW else "")
    state.newest_ts = max(state.newest_ts, event.ts_ms)
    cut = state.events.prune(state.newest_ts, LONGEST_WINDOW_MS + lateness_ms)
    if cut:
        del state.sessions[:cut], state.urls[:cut]
    state.current_index = index - cut


def _flags_in(state: VisitorState, event: WebEvent, width: int) -> list[int]:
    lo, hi = state.events.span(event.ts_ms, width)
    return state.events.values[lo:hi]


def _counter(flag: int, width: int, doc: str):
    def count(state: VisitorState, event: WebEvent) -> int:
        return sum(1 for flags in _flags_in(state, event, width) if flags & flag)

    count.__doc__ = doc
    return count


page_views_30m = _counter(PAGE_VIEW, 30 * MINUTE, "Page views in ``(t - 30min, t]``.")
page_views_24h = _counter(PAGE_VIEW, DAY, "Page views in ``(t - 24h, t]``.")
page_views_7d = _counter(PAGE_VIEW, 7 * DAY, "Page views in ``(t - 7d, t]``.")
pricing_views_7d = _counter(PRICING, 7 * DAY, "Pricing-page views in ``(t - 7d, t]``.")
docs_views_7d = _counter(DOCS, 7 * DAY, "Docs-page views in ``(t - 7d, t]``.")
demo_or_form_events_7d = _counter(
    INTENT, 7 * DAY, "Events on demo or contact pages, and form submits, in ``(t - 7d, t]``.")
form_submits_7d = _counter(FORM_SUBMIT, 7 * DAY, "Form submits in ``(t - 7d, t]``.")


def sessions_7d(state: VisitorState, event: WebEvent) -> int:
    """Distinct sessions with an event in ``(t - 7d, t]``, the current one included."""
    lo, hi = state.events.span(event.ts_ms, 7 * DAY)
    return len(set(state.sessions[lo:hi]))


def distinct_pages_24h(state: VisitorState, event: WebEvent) -> int:
    """Distinct URLs among the page views in ``(t - 24h, t]``."""
    lo, hi = state.events.span(event.ts_ms, DAY)
    return len({url for url in state.urls[lo:hi] if url})


def _session_times(state: VisitorState, event: WebEvent) -> dict[str, tuple[int, int]]:
    """First and last event time of each session with events in ``(t - 7d, t]``."""
    lo, hi = state.events.span(event.ts_ms, 7 * DAY)
    times: dict[str, tuple[int, int]] = {}
    for ts, session in zip(state.events.ts[lo:hi], state.sessions[lo:hi], strict=True):
        first, last = times.get(session, (ts, ts))
        times[session] = (min(first, ts), max(last, ts))
    return times


def current_session_depth(state: VisitorState, event: WebEvent) -> int:
    """Events of the current session in ``(t - 7d, t]``, this one included."""
    lo, hi = state.events.span(event.ts_ms, 7 * DAY)
    return sum(1 for session in state.sessions[lo:hi] if session == event.session_id)


def current_session_seconds(state: VisitorState, event: WebEvent) -> float:
    """Seconds from the current session's first event (within 7 days) to this one."""
    lo, hi = state.events.span(event.ts_ms, 7 * DAY)
    first = next(ts for ts, session in zip(state.events.ts[lo:hi], state.sessions[lo:hi], strict=True)
                 if session == event.session_id)
    return (event.ts_ms - first) / SECOND


def seconds_since_last_visit(state: VisitorState, event: WebEvent) -> float:
    """Seconds since the visitor's latest event of another session (at most 7 days)."""
    lo, hi = state.events.span(event.ts_ms, 7 * DAY)
    for index in range(hi - 1, lo - 1, -1):
        if state.sessions[index] != event.session_id:
            return (event.ts_ms - state.events.ts[index]) / SECOND
    return LONGEST_WINDOW_MS / SECOND


def avg_session_seconds_7d(state: VisitorState, event: WebEvent) -> float:
    """Mean length (last − first event) of the sessions with events in ``(t - 7d, t]``."""
    times = _session_times(state, event)
    return sum(last - first for first, last in times.values()) / len(times) / SECOND


def is_form_submit(state: VisitorState, event: WebEvent) -> float:
    """1.0 when this event is a form submit."""
    return 1.0 if event.type == "form_submit" else 0.0


def utm_source(state: VisitorState, event: WebEvent) -> str:
    """The event's UTM source (categorical), ``"none"`` when absent."""
    return event.utm_source or "none"


def device(state: VisitorState, event: WebEvent) -> str:
    """The event's device (categorical), ``"unknown"`` when absent."""
    return event.device or "unknown"


def country(state: VisitorState, event: WebEvent) -> str:
    """The event's country (categorical), ``"unknown"`` when absent."""
    return event.country or "unknown"
