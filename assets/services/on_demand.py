"""Request-time features of the feature services: each takes and returns pandas Series, one value per row."""

import pandas as pd


def upvotes_1d_share(upvotes_1d: pd.Series, upvotes_7d: pd.Series) -> pd.Series:
    """upvotes_1d / upvotes_7d as a float; null where the week holds no upvote (or the values are missing)."""
    week = upvotes_7d.astype("float64")
    return upvotes_1d.astype("float64") / week.where(week > 0)
