"""Request-time features of user_upvotes: each takes and returns pandas Series, one value per id or row."""

import pandas as pd


def hours_since_last_upvote(last_upvote_at: pd.Series, now: pd.Series) -> pd.Series:
    """Hours from the latest upvote to the request time; null when the window holds no upvote."""
    return (now - last_upvote_at).dt.total_seconds() / 3600.0
