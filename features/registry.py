"""Every feature, declared in one place: its name, the function that computes it, its state.

Adding a feature is one line here plus its function (with a docstring) in the
entity's module; ``tests/unit/test_feature_registry.py`` checks every entry.

>>> sorted(TASK_FEATURES)
['fraud', 'lead']
>>> "customer_tx_count_1d" in TASK_FEATURES["fraud"].features
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from features import customer, visitor


@dataclass(frozen=True)
class FeatureSet:
    """The features of one entity: how to make, update and serialise its state, and each feature."""

    entity: str
    new_state: Callable[[], Any]
    state_from_bytes: Callable[[bytes], Any]
    update: Callable[[Any, Any], None]
    features: dict[str, Callable[[Any, Any], float]]

    def compute(self, state: Any, event: Any) -> dict[str, float]:
        """Every feature of ``event`` given its entity's state (already updated with it)."""
        return {name: fn(state, event) for name, fn in self.features.items()}


CUSTOMER_FEATURES = FeatureSet(
    entity="customer",
    new_state=customer.CustomerState,
    state_from_bytes=customer.CustomerState.from_bytes,
    update=customer.update,
    features={
        "amount": customer.amount,
        "customer_tx_count_1d": customer.tx_count_1d,
        "customer_tx_count_7d": customer.tx_count_7d,
        "customer_avg_amount_1d": customer.avg_amount_1d,
        "customer_avg_amount_7d": customer.avg_amount_7d,
        "seconds_since_last_tx": customer.seconds_since_last_tx,
        "is_night": customer.is_night,
        "is_weekend": customer.is_weekend,
    },
)

VISITOR_FEATURES = FeatureSet(
    entity="visitor",
    new_state=visitor.VisitorState,
    state_from_bytes=visitor.VisitorState.from_bytes,
    update=visitor.update,
    features={
        "page_views_30m": visitor.page_views_30m,
        "page_views_24h": visitor.page_views_24h,
        "page_views_7d": visitor.page_views_7d,
        "pricing_views_7d": visitor.pricing_views_7d,
        "demo_or_form_events_7d": visitor.demo_or_form_events_7d,
        "current_session_depth": visitor.current_session_depth,
        "current_session_seconds": visitor.current_session_seconds,
        "seconds_since_last_visit": visitor.seconds_since_last_visit,
        "is_form_submit": visitor.is_form_submit,
    },
)

#: The feature set each scoring task reads.
TASK_FEATURES: dict[str, FeatureSet] = {"fraud": CUSTOMER_FEATURES, "lead": VISITOR_FEATURES}
