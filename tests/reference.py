"""A batch reference for every streaming feature, written independently with pandas.

It states each feature's definition as plainly as possible: for event ``i`` of an
entity, take the entity's events ``j`` that reached the engine no later than ``i``
(file order) with ``t_i - w < t_j <= t_i``, and aggregate. A self-join per entity
does exactly that; no state, no pruning, no incremental maths. The streaming
engine must produce the same values, event by event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = 86_400_000
MINUTE = 60_000
NO_PREVIOUS_TX_S = 30 * DAY / 1000
NO_PREVIOUS_VISIT_S = 7 * DAY / 1000


def _events(events: list[dict], topic: str) -> pd.DataFrame:
    rows = [e for e in events if e["topic"] == topic]
    df = pd.DataFrame(rows)
    df["arrival"] = np.arange(len(df))
    ts = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["t"] = (ts - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(milliseconds=1)
    df["hour"], df["weekday"] = ts.dt.hour, ts.dt.day_of_week
    return df


def _pairs(df: pd.DataFrame, entity: str, columns: list[str]) -> pd.DataFrame:
    """Every (i, j) of one entity with j arrived no later than i and t_j <= t_i."""
    left = df[["arrival", entity, "t"]]
    right = df[[entity, "arrival", "t", *columns]].rename(
        columns={"arrival": "arrival_j", "t": "t_j", **{c: c + "_j" for c in columns}})
    pairs = left.merge(right, on=entity)
    return pairs[(pairs.arrival_j <= pairs.arrival) & (pairs.t_j <= pairs.t)]


def _within(pairs: pd.DataFrame, width: int) -> pd.DataFrame:
    return pairs[pairs.t_j > pairs.t - width]


def transaction_features(events: list[dict]) -> dict[str, dict[str, float]]:
    """event_id → every customer feature, from the ``transactions`` events of a file."""
    df = _events(events, "transactions")
    pairs = _pairs(df, "customer_id", ["amount", "terminal_id"])
    out = pd.DataFrame(index=df.arrival)
    out["amount"] = df.set_index("arrival")["amount"]
    for days in (1, 7, 30):
        window = _within(pairs, days * DAY).groupby("arrival")["amount_j"]
        out[f"customer_tx_count_{days}d"] = window.count()
        out[f"customer_avg_amount_{days}d"] = window.mean()
    month = _within(pairs, 30 * DAY).groupby("arrival")["amount_j"]
    mean, std, n = month.mean(), month.std(ddof=1), month.count()
    z = (out["amount"] - mean) / std
    flat = (n < 2) | std.isna() | (std <= 1e-9 * mean.abs().clip(lower=1.0))
    out["amount_zscore_30d"] = z.where(~flat, 0.0)
    earlier = pairs[pairs.arrival_j < pairs.arrival].groupby("arrival")["t_j"].max()
    gap = ((df.set_index("arrival")["t"] - earlier) / 1000).clip(upper=NO_PREVIOUS_TX_S)
    out["seconds_since_last_tx"] = gap.reindex(out.index).fillna(NO_PREVIOUS_TX_S)
    out["distinct_terminals_24h"] = _within(pairs, DAY).groupby("arrival")["terminal_id_j"].nunique()
    out["is_night"] = (df.set_index("arrival")["hour"] <= 6).astype(float)
    out["is_weekend"] = (df.set_index("arrival")["weekday"] >= 5).astype(float)
    out.index = df.event_id
    return out.to_dict(orient="index")


def web_features(events: list[dict]) -> dict[str, dict[str, float | str]]:
    """event_id → every visitor feature, from the ``web-events`` events of a file."""
    df = _events(events, "web-events")
    df["is_view"] = df["type"] == "page_view"
    df["is_intent"] = (df["type"] == "form_submit") | df["page_type"].isin(["demo", "contact"])
    df["is_submit"] = df["type"] == "form_submit"
    df["is_pricing"] = df["is_view"] & (df["page_type"] == "pricing")
    df["is_docs"] = df["is_view"] & (df["page_type"] == "docs")
    df["view_url"] = df["url"].where(df["is_view"])
    flags = ["is_view", "is_intent", "is_submit", "is_pricing", "is_docs"]
    pairs = _pairs(df, "visitor_id", [*flags, "session_id", "view_url"])
    pairs = pairs.merge(df[["arrival", "session_id"]], on="arrival")
    by_event = df.set_index("arrival")
    out = pd.DataFrame(index=df.arrival)
    for name, width in (("30m", 30 * MINUTE), ("24h", DAY), ("7d", 7 * DAY)):
        out[f"page_views_{name}"] = _within(pairs, width).groupby("arrival")["is_view_j"].sum()
    week = _within(pairs, 7 * DAY)
    out["sessions_7d"] = week.groupby("arrival")["session_id_j"].nunique()
    out["distinct_pages_24h"] = _within(pairs, DAY).groupby("arrival")["view_url_j"].nunique()
    out["pricing_views_7d"] = week.groupby("arrival")["is_pricing_j"].sum()
    out["docs_views_7d"] = week.groupby("arrival")["is_docs_j"].sum()
    out["demo_or_form_events_7d"] = week.groupby("arrival")["is_intent_j"].sum()
    out["form_submits_7d"] = week.groupby("arrival")["is_submit_j"].sum()
    same = week[week.session_id_j == week.session_id]
    other = week[week.session_id_j != week.session_id]
    last_other = other.groupby("arrival")["t_j"].max()
    gap = (by_event["t"] - last_other) / 1000
    out["seconds_since_last_visit"] = gap.reindex(out.index).fillna(NO_PREVIOUS_VISIT_S)
    out["current_session_depth"] = same.groupby("arrival")["t_j"].count()
    out["current_session_seconds"] = (by_event["t"] - same.groupby("arrival")["t_j"].min()) / 1000
    spans = week.groupby(["arrival", "session_id_j"])["t_j"].agg(["min", "max"])
    out["avg_session_seconds_7d"] = (spans["max"] - spans["min"]).groupby("arrival").mean() / 1000
    out["is_form_submit"] = by_event["is_submit"].astype(float)
    out["utm_source"] = by_event["utm_source"].fillna("none")
    out["device"] = by_event["device"].fillna("unknown")
    out["country"] = by_event["country"].fillna("unknown")
    out = out.fillna(0)
    out.index = df.event_id
    return out.to_dict(orient="index")


def mismatches(streamed: dict[str, dict], reference: dict[str, dict],
               rel: float = 1e-9) -> list[tuple[str, str, object, object]]:
    """(event_id, feature, streamed, reference) for every value that differs."""
    bad = []
    for event_id, expected in reference.items():
        got = streamed.get(event_id)
        if got is None:
            bad.append((event_id, "<no score>", None, None))
            continue
        for name, want in expected.items():
            have = got.get(name)
            if isinstance(want, str) or isinstance(have, str):
                ok = have == want
            else:
                ok = have is not None and abs(have - want) <= rel * max(1.0, abs(want))
            if not ok:
                bad.append((event_id, name, have, want))
    return bad


def terminal_features(events: list[dict], delay_ms: int = 7 * DAY) -> dict[str, dict[str, float]]:
    """event_id → the terminal features of each transaction, with labels known by ``t``."""
    df = _events(events, "transactions")[["event_id", "terminal_id", "t"]]
    labels = _events(events, "fraud-labels")
    frauds = labels[labels["is_fraud"]].groupby("event_id")["t"].min().rename("label_t")
    df = df.merge(frauds, how="left", left_on="event_id", right_index=True)
    pairs = df.merge(df, on="terminal_id", suffixes=("", "_j"))
    out = pd.DataFrame(index=df.event_id)
    for days in (1, 7, 30):
        end = pairs.t - delay_ms
        window = pairs[(pairs.t_j > end - days * DAY) & (pairs.t_j <= end)]
        known = window[window.label_t_j <= window.t]
        count = window.groupby("event_id")["t_j"].count().reindex(out.index).fillna(0)
        fraud = known.groupby("event_id")["t_j"].count().reindex(out.index).fillna(0)
        out[f"terminal_tx_count_{days}d"] = count
        out[f"terminal_risk_{days}d"] = (fraud / count).where(count > 0, 0.0)
    return out.to_dict(orient="index")
