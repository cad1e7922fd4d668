"""Python UDFs of post_popularity, registered by name in Spark (and Flink) from feature.yaml `udfs:`."""

from math import log10

REDDIT_EPOCH = 1134028003  # seconds; the reference time of Reddit's published hot formula


def hot_score(upvotes: int, created_at_seconds: int) -> float:
    """Reddit's hot score: log-scaled votes plus a recency bonus of one point per 12.5 hours of age."""
    if upvotes is None or created_at_seconds is None:
        return None
    return round(log10(max(upvotes, 1)) + (created_at_seconds - REDDIT_EPOCH) / 45000, 7)
