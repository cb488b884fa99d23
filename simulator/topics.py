"""The topics simulated events belong to (the ``"topic"`` field of each event).

They equal the names in ``stream.topics``; they are repeated here so that the
simulator stays a pure-Python package with no dependency on the streaming edge
(a unit test checks the two agree).
"""

from __future__ import annotations

WEB_EVENTS = "web-events"
TRANSACTIONS = "transactions"
CONVERSIONS = "conversions"
FRAUD_LABELS = "fraud-labels"

INPUT_TOPICS = (WEB_EVENTS, TRANSACTIONS)
LABEL_TOPICS = (CONVERSIONS, FRAUD_LABELS)
