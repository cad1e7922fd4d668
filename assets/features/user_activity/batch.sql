-- Lifetime upvoting per user, from every partition of the event log up to {{ ds }}.
SELECT
  user_id,
  COUNT(*)                AS upvotes_total,
  COUNT(DISTINCT post_id) AS distinct_posts_total,
  MAX(event_time)         AS last_upvote_at
FROM raw.upvote_events
WHERE ds <= '{{ ds }}'
GROUP BY user_id
