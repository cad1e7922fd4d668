-- Rendered from feature.yaml `aggregations:` by `featctl render`; do not edit.
-- Each feature over its window of days ending with {{ ds }} (partition ds holds the window ending at ds+1 00:00 UTC).
SELECT
  `user_id`,
  COUNT(*) AS `upvotes_7d`,
  COUNT(DISTINCT `post_id`) AS `distinct_items_7d`,
  COUNT(CASE WHEN ds = '{{ ds }}' THEN 1 END) AS `upvotes_1d`,
  MAX(`event_time`) AS `last_upvote_at`
FROM raw.upvote_events
WHERE ds BETWEEN date_format(date_sub('{{ ds }}', 6), 'yyyy-MM-dd') AND '{{ ds }}'
GROUP BY `user_id`
