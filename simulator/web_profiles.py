"""Who visits the website: intent profiles, traffic sources, pages and countries.

Every visitor has a hidden intent. Intent drives what the scorer can see
(pages, devices, sources, return visits, form submits) and whether the visitor
converts, so the observable behaviour carries the signal a lead scorer learns.

>>> round(conversion_rate(INTENTS), 3)
0.07
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulator.choice import Weighted

PAGE_TYPES = ("home", "product", "pricing", "demo", "docs", "blog", "account", "contact")
#: Pages with a form; a converting session ends with a ``form_submit`` on one of them.
FORM_PAGES = ("demo", "contact")
DEVICES = ("desktop", "mobile", "tablet")


@dataclass(frozen=True)
class Intent:
    """A kind of visitor: how often they come, what they read, and how likely they buy."""

    name: str
    share: float
    sessions_mean: float
    pages_mean: float
    conversion: float
    #: Chance of a ``form_submit`` on a form page in a session that does not convert.
    stray_submit: float
    click_rate: float
    pages: Weighted[str]
    devices: Weighted[str]
    sources: Weighted[str]


def _pages(home, product, pricing, demo, docs, blog, account, contact) -> Weighted[str]:
    weights = (home, product, pricing, demo, docs, blog, account, contact)
    return Weighted(dict(zip(PAGE_TYPES, weights, strict=True)))


def _devices(desktop: float, mobile: float, tablet: float) -> Weighted[str]:
    return Weighted(dict(zip(DEVICES, (desktop, mobile, tablet), strict=True)))


BROWSER = Intent(
    name="browser", share=0.55, sessions_mean=1.5, pages_mean=2.5, conversion=0.005,
    stray_submit=0.02, click_rate=0.25,
    pages=_pages(home=20, product=15, pricing=5, demo=1, docs=15, blog=40, account=2, contact=2),
    devices=_devices(desktop=0.40, mobile=0.52, tablet=0.08),
    sources=Weighted({"google": 30, "facebook": 20, "newsletter": 10, "direct": 25,
                      "linkedin": 5, "partner": 10}),
)  # fmt: skip
RESEARCHER = Intent(
    name="researcher", share=0.33, sessions_mean=2.5, pages_mean=4.5, conversion=0.04,
    stray_submit=0.08, click_rate=0.35,
    pages=_pages(home=10, product=30, pricing=15, demo=4, docs=25, blog=10, account=3, contact=3),
    devices=_devices(desktop=0.65, mobile=0.30, tablet=0.05),
    sources=Weighted({"google": 40, "facebook": 5, "newsletter": 15, "direct": 20,
                      "linkedin": 15, "partner": 5}),
)  # fmt: skip
BUYER = Intent(
    name="buyer", share=0.12, sessions_mean=3.0, pages_mean=6.0, conversion=0.45,
    stray_submit=0.15, click_rate=0.45,
    pages=_pages(home=8, product=20, pricing=25, demo=15, docs=10, blog=4, account=8, contact=10),
    devices=_devices(desktop=0.80, mobile=0.17, tablet=0.03),
    sources=Weighted({"google": 35, "facebook": 2, "newsletter": 15, "direct": 20,
                      "linkedin": 25, "partner": 5}),
)  # fmt: skip
#: After drift: buyers come from LinkedIn ads on their phones.
DRIFTED_BUYER = Intent(
    name="buyer", share=0.12, sessions_mean=3.0, pages_mean=6.0, conversion=0.45,
    stray_submit=0.15, click_rate=0.45,
    pages=BUYER.pages,
    devices=_devices(desktop=0.30, mobile=0.62, tablet=0.08),
    sources=Weighted({"google": 15, "facebook": 5, "newsletter": 5, "direct": 15,
                      "linkedin": 55, "partner": 5}),
)  # fmt: skip

INTENTS = (BROWSER, RESEARCHER, BUYER)
DRIFTED_INTENTS = (BROWSER, RESEARCHER, DRIFTED_BUYER)

#: Per utm_source: its campaigns (None: no campaign) and the referrer of the landing page.
SOURCES: dict[str, tuple[tuple[str | None, ...], str | None]] = {
    "google": (("brand_search", "generic_search", "competitor_search"), "https://www.google.com/"),
    "linkedin": (("abm_2026q1", "thought_leadership"), "https://www.linkedin.com/"),
    "newsletter": (("weekly_digest", "product_update"), None),
    "facebook": (("awareness_video", "retargeting"), "https://www.facebook.com/"),
    "partner": ((None,), "https://partners.example.org/directory"),
    "direct": ((None,), None),
}
#: The first page of a session depends on where the visitor came from.
LANDING = {
    "google": _pages(home=30, product=30, pricing=20, demo=5, docs=10, blog=5, account=0, contact=0),
    "linkedin": _pages(home=10, product=25, pricing=5, demo=10, docs=0, blog=50, account=0,
                       contact=0),
    "newsletter": _pages(home=5, product=20, pricing=5, demo=5, docs=5, blog=60, account=0,
                         contact=0),
    "facebook": _pages(home=40, product=10, pricing=0, demo=0, docs=0, blog=50, account=0,
                       contact=0),
    "partner": _pages(home=20, product=40, pricing=10, demo=0, docs=30, blog=0, account=0,
                      contact=0),
    "direct": _pages(home=60, product=5, pricing=10, demo=2, docs=8, blog=0, account=15,
                     contact=0),
}  # fmt: skip
#: Chance a returning visitor types the address instead of following a campaign.
RETURN_DIRECT = 0.5

URLS: dict[str, tuple[str, ...]] = {
    "home": ("/",),
    "product": ("/product/analytics", "/product/integrations", "/product/security",
                "/product/automation", "/product/api"),
    "pricing": ("/pricing",),
    "demo": ("/demo",),
    "docs": ("/docs/getting-started", "/docs/api-reference", "/docs/sdk/python",
             "/docs/sdk/javascript", "/docs/webhooks", "/docs/faq"),
    "blog": ("/blog/real-time-scoring", "/blog/kafka-at-scale", "/blog/lead-scoring-101",
             "/blog/fraud-patterns-2026", "/blog/customer-story-acme", "/blog/release-notes",
             "/blog/streaming-vs-batch", "/blog/feature-stores"),
    "account": ("/account/login", "/account/settings"),
    "contact": ("/contact", "/contact/sales"),
}  # fmt: skip
#: Median seconds spent on each page type.
DWELL_S = {"home": 20, "product": 60, "pricing": 90, "demo": 45, "docs": 120, "blog": 150,
           "account": 30, "contact": 40}  # fmt: skip

COUNTRIES = Weighted({"DE": 25, "FR": 15, "GB": 15, "US": 15, "NL": 8, "ES": 6, "IT": 6,
                      "PL": 4, "SE": 3, "CH": 3})  # fmt: skip


def conversion_rate(intents: Sequence[Intent]) -> float:
    """The share of visitors who eventually convert."""
    return sum(i.share * i.conversion for i in intents) / sum(i.share for i in intents)


def events_per_session(intents: Sequence[Intent]) -> float:
    """Average web events in a session (page views plus clicks), weighting by sessions."""
    sessions = [i.share * i.sessions_mean for i in intents]
    events = [i.pages_mean * (1 + i.click_rate) for i in intents]
    return sum(s * e for s, e in zip(sessions, events, strict=True)) / sum(sessions)
