"""The on-demand function benchmarks/get_features_latency.py measures: the shape of user_upvotes' own."""

import pandas as pd


def hours_since_last_seen(last_seen_at: pd.Series, now: pd.Series) -> pd.Series:
    """Hours from the entity's last_seen_at to the request time."""
    return (now - last_seen_at).dt.total_seconds() / 3600.0
