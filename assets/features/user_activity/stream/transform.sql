-- Lifetime upvoting per user, updated on every upvote: one row per user, re-emitted when it changes.
-- feature_ts is the event time the values hold as of: the user's latest upvote.
SELECT
  user_id,
  COUNT(*)                AS upvotes_total,
  COUNT(DISTINCT post_id) AS distinct_posts_total,
  MAX(event_time)         AS last_upvote_at,
  MAX(event_time)         AS feature_ts
FROM upvote_events
GROUP BY user_id
