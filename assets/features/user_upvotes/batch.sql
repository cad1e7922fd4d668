-- Upvote activity per user over the 7 days ending with {{ ds }}.
SELECT
  user_id,
  COUNT(*)                                         AS upvotes_7d,
  COUNT(DISTINCT post_id)                          AS distinct_items_7d,
  SUM(CASE WHEN ds = '{{ ds }}' THEN 1 ELSE 0 END) AS upvotes_1d,
  MAX(event_time)                                  AS last_upvote_at
FROM raw.upvote_events
WHERE ds BETWEEN date_format(date_sub('{{ ds }}', 6), 'yyyy-MM-dd') AND '{{ ds }}'
GROUP BY user_id
