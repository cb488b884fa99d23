"""Every feature, declared in one place: its name, the function that computes it, its entity.

Adding a feature is one line here plus its function (with a docstring) in the
entity's module; ``tests/unit/test_feature_registry.py`` checks every entry, and
``tests/reference.py`` (the batch reference) must compute it too.

>>> sorted(TASK_FEATURES)
['fraud', 'lead']
>>> "customer_tx_count_30d" in TASK_FEATURES["fraud"].features
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from features import customer, terminal, visitor


@dataclass(frozen=True)
class FeatureSet:
    """The features of one entity: its state type, how an event updates it, and each feature."""

    entity: str
    #: a class with ``newest_ts``, ``to_list()`` and ``from_list(data)``
    state_type: type
    update: Callable[[Any, Any, int], None]
    features: dict[str, Callable[[Any, Any], float | int | str]]
    #: the longest window of any feature: state idle longer than this (plus lateness) expires
    longest_window_ms: int

    def compute(self, state: Any, event: Any) -> dict[str, float | int | str]:
        """Every feature of ``event`` given its entity's state (already updated with it)."""
        return {name: fn(state, event) for name, fn in self.features.items()}


CUSTOMER_FEATURES = FeatureSet(
    entity="customer",
    state_type=customer.CustomerState,
    update=customer.update,
    longest_window_ms=customer.LONGEST_WINDOW_MS,
    features={
        "amount": customer.amount,
        "customer_tx_count_1d": customer.tx_count_1d,
        "customer_tx_count_7d": customer.tx_count_7d,
        "customer_tx_count_30d": customer.tx_count_30d,
        "customer_avg_amount_1d": customer.avg_amount_1d,
        "customer_avg_amount_7d": customer.avg_amount_7d,
        "customer_avg_amount_30d": customer.avg_amount_30d,
        "amount_zscore_30d": customer.amount_zscore_30d,
        "seconds_since_last_tx": customer.seconds_since_last_tx,
        "distinct_terminals_24h": customer.distinct_terminals_24h,
        "is_night": customer.is_night,
        "is_weekend": customer.is_weekend,
    },
)

VISITOR_FEATURES = FeatureSet(
    entity="visitor",
    state_type=visitor.VisitorState,
    update=visitor.update,
    longest_window_ms=visitor.LONGEST_WINDOW_MS,
    features={
        "page_views_30m": visitor.page_views_30m,
        "page_views_24h": visitor.page_views_24h,
        "page_views_7d": visitor.page_views_7d,
        "sessions_7d": visitor.sessions_7d,
        "distinct_pages_24h": visitor.distinct_pages_24h,
        "pricing_views_7d": visitor.pricing_views_7d,
        "docs_views_7d": visitor.docs_views_7d,
        "demo_or_form_events_7d": visitor.demo_or_form_events_7d,
        "form_submits_7d": visitor.form_submits_7d,
        "seconds_since_last_visit": visitor.seconds_since_last_visit,
        "current_session_depth": visitor.current_session_depth,
        "current_session_seconds": visitor.current_session_seconds,
        "avg_session_seconds_7d": visitor.avg_session_seconds_7d,
        "is_form_submit": visitor.is_form_submit,
        "utm_source": visitor.utm_source,
        "device": visitor.device,
        "country": visitor.country,
    },
)

#: The feature set each scoring task reads.
TASK_FEATURES: dict[str, FeatureSet] = {"fraud": CUSTOMER_FEATURES, "lead": VISITOR_FEATURES}

#: Features a task gets from outside its entity's state: the fraud task's terminal risk
#: (``features/terminal.py``), which needs every customer's transactions and the fraud labels.
TERMINAL_FEATURES = terminal.FEATURE_NAMES
